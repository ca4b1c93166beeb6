//! The memcached shared tier against a raw memcached `get`, in one run, on a
//! `memcached` this bench starts on a free loopback port. The cache has no
//! local tier, so every call below is a round trip to memcached:
//!
//! - a memoized call served by memcached;
//! - `Cache::get` of the same kind of value;
//! - `Backend::get` on the `Memcached` tier (no cache around it);
//! - a raw text-protocol `get` of the same stored bytes on one plain
//!   connection (the floor: one round trip, no generation items).
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench memcached -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use cachefn::backends::{Backend, Memcached};
use cachefn::{quickcache, Cache};
use cachefn_tests::memcached_server::MemcachedServer;
use common::cycle;
use criterion::{criterion_group, criterion_main, Criterion};

const KEYS: u64 = 100;

#[quickcache(cache = "bench-memcached", local_timeout = 0)]
fn mc_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

fn memcached_tier(c: &mut Criterion) {
    let Some(server) = MemcachedServer::start() else {
        eprintln!("memcached: no memcached binary, nothing to measure");
        return;
    };
    let url = server.url();
    let cache = Cache::builder()
        .shared(Memcached::open(&url).unwrap())
        .prefix("bench")
        .build();
    cachefn::register("bench-memcached", cache.clone());
    let tier = Memcached::open(&url).unwrap();

    let keys: Vec<u64> = (0..KEYS).collect();
    let stored: Vec<String> = keys
        .iter()
        .map(|&k| cache.storage_key(mc_page::key(k)))
        .collect();
    let names: Vec<String> = keys.iter().map(|k| format!("page:{k}")).collect();
    for &k in &keys {
        mc_page(k);
        cache
            .set(
                &names[k as usize],
                &format!("<p>{k}</p>"),
                std::time::Duration::from_secs(300),
            )
            .unwrap();
    }
    for (k, s) in stored.iter().enumerate() {
        assert!(tier.get(s).unwrap().is_some(), "key {k} is stored");
    }
    let mut raw = server.raw();

    let mut g = c.benchmark_group("memcached_tier");
    g.bench_function("cachefn: memoized call served by memcached", |b| {
        cycle(b, &keys, mc_page)
    });
    g.bench_function("cachefn: Cache::get served by memcached", |b| {
        cycle(b, &keys, |k| {
            cache.get::<String>(&names[k as usize]).unwrap()
        })
    });
    g.bench_function("Memcached tier: Backend::get", |b| {
        cycle(b, &keys, |k| {
            tier.get(&stored[k as usize]).unwrap().unwrap()
        })
    });
    g.bench_function("raw client: text-protocol get of the same bytes", |b| {
        cycle(b, &keys, |k| raw.get(&stored[k as usize]).unwrap())
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, memcached_tier);
criterion_main!(benches);
