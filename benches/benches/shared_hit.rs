//! The Redis shared tier against raw redis-rs calls, in one run, on a
//! `redis-server` this bench starts on a free loopback port:
//!
//! - a memoized call served by Redis (local tier off) vs a raw `GET` of the
//!   same bytes on the same kind of (sync) connection;
//! - a miss plus store vs a raw `GET` + `SET`;
//! - the local hit of a tiered cache vs the local hit of a memory-only cache;
//! - `Cache::set` of a tiered, coherent cache (local tier + Redis + change
//!   feed: the store-and-mark step) and of a shared-only cache vs a raw
//!   `SET PX` of the same bytes;
//! - served by Redis, 1 KiB and 16 KiB values: unsigned (checked against
//!   their key) and signed (`CacheBuilder::signing_key`), vs a raw `GET`.
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench shared_hit -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use common::cycle;
use criterion::{criterion_group, criterion_main, Criterion};

const KEYS: u64 = 100;

#[quickcache(cache = "bench-shared-only", local_timeout = 0)]
fn shared_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(cache = "bench-shared-only", local_timeout = 0)]
fn fresh_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(cache = "bench-tiered")]
fn tiered_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(cache = "bench-memory")]
fn memory_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

/// A page of `kib` KiB.
fn big_page(id: u64, kib: usize) -> String {
    format!("<p>{id}</p>").repeat(kib * 1024 / 8)
}

#[quickcache(cache = "bench-shared-only", local_timeout = 0)]
fn page_unsigned(id: u64, kib: usize) -> String {
    big_page(id, kib)
}

#[quickcache(cache = "bench-signed", local_timeout = 0)]
fn page_signed(id: u64, kib: usize) -> String {
    big_page(id, kib)
}

fn shared_tier(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        eprintln!("shared_hit: no redis-server, nothing to measure");
        return;
    };
    let url = server.url();
    let shared_only = Cache::builder()
        .shared(Redis::open(&url).unwrap())
        .prefix("bench")
        .build();
    cachefn::register("bench-shared-only", shared_only.clone());
    cachefn::register(
        "bench-tiered",
        Cache::builder()
            .local(Memory::with_capacity(10_000))
            .shared(Redis::open(&url).unwrap())
            .prefix("bench")
            .build(),
    );
    cachefn::register("bench-memory", Cache::memory());
    cachefn::register(
        "bench-signed",
        Cache::builder()
            .shared(Redis::open(&url).unwrap())
            .prefix("bench")
            .signing_key("a signing key for the bench, 32 bytes or more")
            .build(),
    );

    let keys: Vec<u64> = (0..KEYS).collect();
    let stored: Vec<String> = keys
        .iter()
        .map(|&k| shared_only.storage_key(shared_page::key(k)))
        .collect();
    for &k in &keys {
        shared_page(k);
        tiered_page(k);
        tiered_page(k);
        memory_page(k);
    }
    let mut raw = server.raw();

    let mut g = c.benchmark_group("shared_tier");
    g.bench_function("cachefn: memoized call served by Redis", |b| {
        cycle(b, &keys, shared_page)
    });
    g.bench_function("raw redis-rs: GET of the same bytes", |b| {
        cycle(b, &keys, |k| {
            redis::cmd("GET")
                .arg(&stored[k as usize])
                .query::<Vec<u8>>(&mut raw)
                .unwrap()
        })
    });
    let next = AtomicU64::new(1_000_000);
    g.bench_function("cachefn: miss + store", |b| {
        b.iter(|| fresh_page(next.fetch_add(1, Ordering::Relaxed)))
    });
    g.bench_function("raw redis-rs: GET + SET", |b| {
        b.iter(|| {
            let k = format!("bench:raw:{}", next.fetch_add(1, Ordering::Relaxed));
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut raw).unwrap();
            redis::cmd("SET")
                .arg(&k)
                .arg(b"<p>x</p>".as_slice())
                .arg("EX")
                .arg(300)
                .query::<()>(&mut raw)
                .unwrap();
        })
    });
    let tiered = cachefn::cache("bench-tiered").unwrap();
    let set_keys: Vec<String> = (0..KEYS).map(|k| format!("set:{k}")).collect();
    let set_stored: Vec<String> = set_keys.iter().map(|k| tiered.storage_key(k)).collect();
    let ttl = std::time::Duration::from_secs(300);
    let value = "<p>x</p>".to_owned();
    interleaved_sets(&tiered, &shared_only, &set_keys, &set_stored, &mut raw);
    g.bench_function("cachefn: set, tiered coherent cache", |b| {
        cycle(b, &keys, |k| {
            tiered.set(&set_keys[k as usize], &value, ttl).unwrap()
        })
    });
    g.bench_function("cachefn: set, shared-only cache", |b| {
        cycle(b, &keys, |k| {
            shared_only.set(&set_keys[k as usize], &value, ttl).unwrap()
        })
    });
    // The very bytes cachefn stores (its header and the payload).
    let encoded: Vec<u8> = redis::cmd("GET")
        .arg(&set_stored[0])
        .query(&mut raw)
        .unwrap();
    g.bench_function("raw redis-rs: SET PX", |b| {
        cycle(b, &keys, |k| {
            redis::cmd("SET")
                .arg(&set_stored[k as usize])
                .arg(&encoded)
                .arg("PX")
                .arg(300_000)
                .query::<()>(&mut raw)
                .unwrap()
        })
    });
    g.bench_function("cachefn: local hit, tiered cache", |b| {
        cycle(b, &keys, tiered_page)
    });
    g.bench_function("cachefn: local hit, memory-only cache", |b| {
        cycle(b, &keys, memory_page)
    });
    for kib in [1, 16] {
        let stored: Vec<String> = keys
            .iter()
            .map(|&k| shared_only.storage_key(page_unsigned::key(k, kib)))
            .collect();
        for &k in &keys {
            page_unsigned(k, kib);
            page_signed(k, kib);
        }
        g.bench_function(format!("raw redis-rs: GET of a {kib} KiB value"), |b| {
            cycle(b, &keys, |k| {
                redis::cmd("GET")
                    .arg(&stored[k as usize])
                    .query::<Vec<u8>>(&mut raw)
                    .unwrap()
            })
        });
        g.bench_function(
            format!("cachefn: served by Redis, {kib} KiB, checked"),
            |b| cycle(b, &keys, |k| page_unsigned(k, kib)),
        );
        g.bench_function(
            format!("cachefn: served by Redis, {kib} KiB, signed"),
            |b| cycle(b, &keys, |k| page_signed(k, kib)),
        );
    }
    g.finish();
    drop(server);
}

/// The three writers in alternating batches (so that a change in the
/// machine's load hits all of them), each batch's cost per `set`; prints
/// the median of each and their ratios to the raw `SET`.
fn interleaved_sets(
    tiered: &Cache,
    shared_only: &Cache,
    keys: &[String],
    stored: &[String],
    raw: &mut redis::Connection,
) {
    const ROUNDS: usize = 40;
    let ttl = std::time::Duration::from_secs(300);
    let value = "<p>x</p>".to_owned();
    tiered.set(&keys[0], &value, ttl).unwrap();
    let encoded: Vec<u8> = redis::cmd("GET").arg(&stored[0]).query(raw).unwrap();
    let per_set = |f: &mut dyn FnMut(usize)| {
        let start = std::time::Instant::now();
        for i in 0..keys.len() {
            f(i);
        }
        start.elapsed().as_secs_f64() * 1e6 / keys.len() as f64
    };
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut t, mut s, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        t.push(per_set(&mut |i| tiered.set(&keys[i], &value, ttl).unwrap()));
        s.push(per_set(&mut |i| {
            shared_only.set(&keys[i], &value, ttl).unwrap()
        }));
        r.push(per_set(&mut |i| {
            redis::cmd("SET")
                .arg(&stored[i])
                .arg(&encoded)
                .arg("PX")
                .arg(300_000)
                .query::<()>(raw)
                .unwrap()
        }));
    }
    let (t, s, r) = (median(&mut t), median(&mut s), median(&mut r));
    println!(
        "interleaved sets: tiered coherent {t:.1} us, shared-only {s:.1} us, raw SET {r:.1} us; \
         tiered/raw = {:.2}, shared-only/raw = {:.2}",
        t / r,
        s / r
    );
    // Spaced sets: 2 ms apart, so that whatever a write sets off in the
    // background (the change feed's work) is done before the next: the
    // cost on the writer's own path.
    let spaced = |f: &mut dyn FnMut(usize)| {
        let mut took = Vec::with_capacity(keys.len());
        for i in 0..keys.len() {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let start = std::time::Instant::now();
            f(i);
            took.push(start.elapsed().as_secs_f64() * 1e6);
        }
        median(&mut took)
    };
    let (mut t, mut r) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS / 4 {
        t.push(spaced(&mut |i| tiered.set(&keys[i], &value, ttl).unwrap()));
        r.push(spaced(&mut |i| {
            redis::cmd("SET")
                .arg(&stored[i])
                .arg(&encoded)
                .arg("PX")
                .arg(300_000)
                .query::<()>(raw)
                .unwrap()
        }));
    }
    let (t, r) = (median(&mut t), median(&mut r));
    println!(
        "spaced sets: tiered coherent {t:.1} us, raw SET {r:.1} us; tiered/raw = {:.2}",
        t / r
    );
}

criterion_group!(benches, shared_tier);
criterion_main!(benches);
