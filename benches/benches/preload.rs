//! Preload scopes and batch reads on a `redis-server` this bench starts on a
//! free loopback port, in one run:
//!
//! - a page of 50 memoized fragments, preloaded (one MGET) vs not (50 GETs)
//!   (goal: at least 5x faster);
//! - `get_many` of 100 keys vs 100 `get`s.
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench preload -- --warm-up-time 1 --measurement-time 3
//! ```

use std::time::Duration;

use cachefn::backends::Redis;
use cachefn::{quickcache, Cache, Key};
use cachefn_tests::redis_server::RedisServer;
use criterion::{criterion_group, criterion_main, Criterion};

#[quickcache(cache = "bench-preload", local_timeout = 0)]
fn fragment(id: u32) -> String {
    format!("<li>fragment {id}</li>")
}

fn page() -> String {
    (0..50).map(fragment).collect()
}

fn preload(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        eprintln!("preload: no redis-server, nothing to measure");
        return;
    };
    // No local tier: every read goes to Redis unless a scope serves it.
    let cache = Cache::builder()
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("bench")
        .build();
    cachefn::register("bench-preload", cache.clone());
    let keys: Vec<Key> = (0..50).map(fragment::key).collect();
    let expected = page();

    let mut g = c.benchmark_group("page_of_50_fragments");
    g.bench_function("cachefn: 50 memoized calls (50 GETs)", |b| {
        b.iter(|| assert_eq!(page().len(), expected.len()))
    });
    g.bench_function("cachefn: the same inside preload (1 MGET)", |b| {
        b.iter(|| assert_eq!(cache.preload(&keys, page).len(), expected.len()))
    });
    g.finish();

    let items: Vec<(String, u64)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
    cache.set_many(&items, Duration::from_secs(600)).unwrap();
    let names: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let mut g = c.benchmark_group("read_100_keys");
    g.bench_function("cachefn: 100 gets", |b| {
        b.iter(|| {
            let n = names
                .iter()
                .filter(|k| cache.get::<u64>(k).is_some())
                .count();
            assert_eq!(n, 100);
        })
    });
    g.bench_function("cachefn: get_many of 100 (1 MGET)", |b| {
        b.iter(|| {
            let got = cache.get_many::<u64>(&names);
            assert_eq!(got.len(), 100);
        })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, preload);
criterion_main!(benches);
