//! A page of 50 cached fragments, rendered with and without a preload scope:
//! `REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example preload --features redis`.
//!
//! Start a server first if none runs: `redis-server --port 6379 --save ""`.
//! The shared tier is wrapped in a backend that counts the round trips.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Redis};
use cachefn::{quickcache, Cache, Error, Key};

/// Forwards to Redis and counts every call (one call = one round trip).
struct Counted {
    redis: Redis,
    trips: Arc<AtomicUsize>,
}

impl Counted {
    fn trip(&self) {
        self.trips.fetch_add(1, Ordering::Relaxed);
    }
}

impl Backend for Counted {
    fn name(&self) -> &'static str {
        "counted redis"
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.trip();
        self.redis.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.trip();
        self.redis.set(key, value, ttl)
    }
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.trip();
        self.redis.add(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.trip();
        self.redis.delete(key)
    }
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.trip();
        self.redis.incr(key, delta)
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        self.trip();
        self.redis.clear_prefix(prefix)
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.trip();
        self.redis.get_many(keys)
    }
}

#[quickcache(timeout = 300, local_timeout = 0)]
fn fragment(id: u32) -> String {
    std::thread::sleep(Duration::from_millis(2)); // a query, in real life
    format!("<li>fragment {id}</li>")
}

fn page() -> String {
    (0..50).map(fragment).collect()
}

fn main() -> Result<(), Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let redis = Redis::open(&url)?;
    if let Err(e) = redis.get("cachefn:ping") {
        eprintln!("no Redis answers at {url} ({e}).");
        eprintln!("Start one with `redis-server --port 6379 --save \"\"`, or set REDIS_URL.");
        std::process::exit(1);
    }
    let trips = Arc::new(AtomicUsize::new(0));
    // No local tier (and `local_timeout = 0`): every read shows up in Redis.
    let cache = Cache::builder()
        .shared(Counted {
            redis,
            trips: trips.clone(),
        })
        .prefix("preload-example")
        .build();
    cachefn::set_default(cache.clone());
    cache.clear()?;
    let keys: Vec<Key> = (0..50).map(fragment::key).collect();

    let measure = |label: &str, render: &dyn Fn() -> String| {
        trips.store(0, Ordering::Relaxed);
        let start = Instant::now();
        let html = render();
        println!(
            "{label:<40} {:>3} round trips {:>10.3?}  ({} bytes)",
            trips.load(Ordering::Relaxed),
            start.elapsed(),
            html.len()
        );
    };
    measure("cold page, inside preload", &|| cache.preload(&keys, page));
    measure("warm page, without preload", &page);
    measure("warm page, inside preload", &|| cache.preload(&keys, page));
    println!(
        "A cold page inside a scope: 1 MGET finds nothing, then 50 SETs (no GET per fragment)."
    );
    Ok(())
}
