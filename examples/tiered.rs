//! A local tier in front of Redis: `REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example tiered --features redis`.
//!
//! Start a server first if none runs: `redis-server --port 6379 --save ""`.
//! Run it twice: the second process is served by the first one's work.

use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memory, Redis};
use cachefn::{quickcache, Cache};

#[quickcache(timeout = 300, local_timeout = 10)]
fn report(day: u32) -> String {
    std::thread::sleep(Duration::from_millis(500));
    format!(
        "report for day {day}, computed by process {}",
        std::process::id()
    )
}

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    println!("{label:<44} {:>10.3?}", start.elapsed());
    out
}

fn main() -> Result<(), cachefn::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let redis = Redis::open(&url)?;
    if let Err(e) = redis.get("cachefn:ping") {
        eprintln!("no Redis answers at {url} ({e}).");
        eprintln!("Start one with `redis-server --port 6379 --save \"\"`, or set REDIS_URL.");
        eprintln!("(Memoized calls would still work: they just run the body when Redis is down.)");
        std::process::exit(1);
    }
    cachefn::set_default(
        Cache::builder()
            .local(Memory::with_capacity(10_000))
            .shared(redis)
            .prefix("tiered-example")
            .build(),
    );

    let first = timed("first call (Redis, or the body)", || report(1));
    println!("  -> {first}");
    timed("second call (local tier)", || report(1));
    let stats = cachefn::default_cache().stats();
    println!(
        "local hits {}, shared hits {}, misses {}",
        stats.local_hits, stats.shared_hits, stats.misses
    );
    println!("Run me again: the next process reads the value from Redis instead of computing it.");
    println!("`report::clear(1)` removes it from every tier; this run leaves it for the next one.");
    Ok(())
}
