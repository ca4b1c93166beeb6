//! A slow function becomes instant: `cargo run -p cachefn-examples --example quickstart`.
//!
//! Runs on the in-memory default cache; no server needed.

use std::time::{Duration, Instant};

use cachefn::quickcache;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// Pretend this queries a database and renders a template.
#[quickcache(
    vary_on = "user.id",
    timeout = 300,
    local_timeout = 10,
    skip_arg = "force"
)]
fn sidebar(user: &User, force: bool) -> String {
    std::thread::sleep(Duration::from_millis(300));
    format!(
        "<aside>{}'s sidebar, rendered at {:?}</aside>",
        user.name,
        Instant::now()
    )
}

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    println!("{label:<38} {:>10.3?}", start.elapsed());
    out
}

fn main() -> Result<(), cachefn::Error> {
    let ann = User {
        id: 1001,
        name: "Ann".into(),
    };

    let first = timed("first call (runs the body)", || sidebar(&ann, false));
    let second = timed("second call (local hit)", || sidebar(&ann, false));
    assert_eq!(first, second);

    let refreshed = timed("force = true (refresh, runs the body)", || {
        sidebar(&ann, true)
    });
    assert_ne!(first, refreshed);
    let after = timed("after the refresh (hit, new value)", || {
        sidebar(&ann, false)
    });
    assert_eq!(after, refreshed);

    println!("key: {}", sidebar::key(&ann));
    sidebar::clear(&ann)?;
    timed("after sidebar::clear (runs the body)", || {
        sidebar(&ann, false)
    });
    timed("and a hit again", || sidebar(&ann, false));

    let stats = cachefn::default_cache().stats();
    println!("local hits: {}, misses: {}", stats.local_hits, stats.misses);
    if cfg!(debug_assertions) {
        println!(
            "(a debug build: `cargo run --release -p cachefn-examples --example quickstart` shows hits in nanoseconds)"
        );
    }
    Ok(())
}
