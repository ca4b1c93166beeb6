// Many options used correctly together, plus every helper.
// A test target of its own (see tests/Cargo.toml), so clippy sees it: the
// code stays as a user would write it.
#![allow(clippy::manual_is_multiple_of)]
use serde::{Deserialize, Serialize};

cachefn::config::quickcache! {
    timeout = 600,
    local_timeout = 5,
    version = 3,
    cache_none = true,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub slug: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub org: Org,
}

impl User {
    pub fn handle(&self) -> String {
        format!("@{}", self.name)
    }
}

#[cachefn::quickcache(
    vary_on = ["user.id", "user.org.slug", "user.handle()", "page"],
    timeout = 60,
    local_timeout = 10,
    skip_arg = "force",
    cache = "pages",
    name = "blog.profile-page_v",
    version = 2,
)]
fn profile(user: &User, page: u32, force: bool) -> String {
    let _ = force;
    format!("{}:{page}", user.name)
}

#[cachefn::quickcache(vary_on = "id", cache_none = false)]
fn find(id: u64, _trace: &str) -> Option<String> {
    (id % 2 == 0).then(|| id.to_string())
}

#[cachefn::quickcache]
fn parse(text: String) -> Result<u64, std::num::ParseIntError> {
    text.parse()
}

#[cachefn::quickcache]
fn unit() {}

pub struct Tenant {
    pub tenant: String,
}

impl Tenant {
    #[cachefn::quickcache(vary_on = ["self.tenant", "id"], timeout = 30)]
    pub fn score(&self, id: u64) -> u64 {
        self.tenant.len() as u64 + id
    }

    #[cachefn::quickcache]
    fn total(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

fn main() {
    cachefn::register("pages", cachefn::Cache::memory());

    let user = User {
        id: 7,
        name: "ann".into(),
        org: Org {
            slug: "acme".into(),
        },
    };
    assert_eq!(profile(&user, 1, false), "ann:1");
    assert_eq!(profile::get_cached(&user, 1).as_deref(), Some("ann:1"));
    profile::set_cached(&user, 2, "preset".to_owned()).unwrap();
    assert_eq!(profile(&user, 2, false), "preset");
    assert_eq!(profile(&user, 2, true), "ann:2");
    let key = profile::key(&user, 1);
    assert!(key.as_str().contains("blog.profile-page_v:v2"), "{key}");
    profile::clear(&user, 1).unwrap();
    assert_eq!(profile::get_cached(&user, 1), None);
    profile::clear_all().unwrap();

    assert_eq!(find(2, "a"), Some("2".to_owned()));
    assert_eq!(find::get_cached(2), Some(Some("2".to_owned())));
    assert_eq!(find(3, "b"), None);
    assert_eq!(find::get_cached(3), None);
    find::clear(2).unwrap();
    find::clear_all().unwrap();
    let _ = find::key(4);
    find::set_cached(4, Some("four".to_owned())).unwrap();
    assert_eq!(find(4, "c"), Some("four".to_owned()));

    assert_eq!(parse("12".to_owned()), Ok(12));
    assert!(parse("x".to_owned()).is_err());
    assert_eq!(parse::get_cached("12".to_owned()), Some(12));
    assert_eq!(parse::get_cached("x".to_owned()), None);
    assert!(parse::key("12".to_owned()).as_str().contains(":v3:"));
    parse::set_cached("5".to_owned(), 6).unwrap();
    assert_eq!(parse("5".to_owned()), Ok(6));
    parse::clear("5".to_owned()).unwrap();
    parse::clear_all().unwrap();

    unit();
    assert_eq!(unit::get_cached(), Some(()));
    unit::set_cached(()).unwrap();
    let _ = unit::key();
    unit::clear().unwrap();
    unit::clear_all().unwrap();

    let t = Tenant {
        tenant: "acme".into(),
    };
    assert_eq!(t.score(1), 5);
    assert_eq!(t.score_get_cached(1), Some(5));
    t.score_set_cached(2, 99).unwrap();
    assert_eq!(t.score(2), 99);
    let _ = t.score_key(1);
    t.score_clear(1).unwrap();
    assert_eq!(t.score_get_cached(1), None);
    Tenant::score_clear_all().unwrap();

    assert_eq!(t.total(1, 2), 3);
    assert_eq!(Tenant::total_get_cached(1, 2), Some(3));
    Tenant::total_set_cached(1, 2, 4).unwrap();
    let _ = Tenant::total_key(1, 2);
    Tenant::total_clear(1, 2).unwrap();
    Tenant::total_clear_all().unwrap();
}
