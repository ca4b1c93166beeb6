//! A small user of the packaged crates: a memoized function, its generated
//! helpers, and with `redis-tokio` an `async fn` over a Redis tier that
//! cannot be reached (the call still returns its body's value).

use std::sync::atomic::{AtomicUsize, Ordering};

use cachefn::quickcache;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[quickcache(vary_on = "user.id", timeout = 300)]
fn greeting(user: &User) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("hello, {}", user.name)
}

#[cfg(feature = "redis-tokio")]
#[quickcache(cache = "unreachable-redis", timeout = 60)]
async fn cube(n: u64) -> u64 {
    n * n * n
}

fn main() {
    let ann = User {
        id: 1,
        name: "Ann".into(),
    };
    println!("{}", greeting(&ann));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_runs_once_per_key() {
        let ann = User {
            id: 7,
            name: "Ann".into(),
        };
        assert_eq!(greeting(&ann), "hello, Ann");
        assert_eq!(greeting(&ann), "hello, Ann");
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
        greeting::clear(&ann).unwrap();
        assert_eq!(greeting(&ann), "hello, Ann");
        assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    }

    #[cfg(feature = "redis-tokio")]
    #[test]
    fn an_async_call_survives_an_unreachable_redis() {
        // Nothing listens on port 1.
        let redis = cachefn::backends::Redis::open("redis://127.0.0.1:1/0").unwrap();
        cachefn::register(
            "unreachable-redis",
            cachefn::Cache::builder().shared(redis).build(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(cube(3)), 27);
    }
}
