use std::sync::atomic::{AtomicUsize, Ordering};

use cachefn::quickcache;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[quickcache(
    vary_on = "user.id",
    timeout = 300,
    local_timeout = 10,
    skip_arg = "force"
)]
fn sidebar(user: &User, force: bool) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("sidebar of {}", user.name)
}

struct Svc {
    tenant: u32,
}

impl Svc {
    #[quickcache(vary_on = ["self.tenant", "id"])]
    fn get(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("{}-{id}", self.tenant))
    }
}

#[test]
fn smoke() {
    let u = User {
        id: 7,
        name: "ann".into(),
    };
    assert_eq!(sidebar(&u, false), "sidebar of ann");
    assert_eq!(sidebar(&u, false), "sidebar of ann");
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    sidebar(&u, true);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    sidebar::clear(&u).unwrap();
    sidebar(&u, false);
    assert_eq!(RUNS.load(Ordering::SeqCst), 3);
    println!("{}", sidebar::key(&u));
    let s = Svc { tenant: 3 };
    assert_eq!(s.get(5).unwrap(), "3-5");
    println!("{}", s.get_key(5));
    assert_eq!(s.get_get_cached(5), Some("3-5".to_string()));
}
