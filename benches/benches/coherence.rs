//! Coherent local tiers (Redis `CLIENT TRACKING`), on a `redis-server` this
//! bench starts on a free loopback port:
//!
//! - invalidation latency: from the start of A's `SET` (another cache,
//!   without a local tier) to the moment B's local copy is gone, p50/p99
//!   over a few thousand writes (printed; goal p99 < 5 ms);
//! - the cost of a write (`Cache::set`) with coherence on against off
//!   (printed; no extra round trip);
//! - a local hit with coherence on against off (criterion).
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench coherence -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::time::{Duration, Instant};

use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use common::cycle;
use criterion::{criterion_group, criterion_main, Criterion};

const KEYS: u64 = 100;
const WRITES: usize = 3_000;

#[quickcache(cache = "bench-coherent")]
fn coherent_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(cache = "bench-incoherent")]
fn incoherent_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

fn tiered(url: &str, prefix: &str, invalidation: bool) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(10_000))
        .shared(Redis::open(url).unwrap())
        .prefix(prefix)
        .invalidation(invalidation)
        .build()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Until B keeps `key` locally (its feed is set up, its read back-filled).
fn hold(b: &Cache, key: &str, want: u64) {
    let start = Instant::now();
    while b.local().unwrap().get::<u64>(key) != Some(want) {
        assert_eq!(b.get::<u64>(key), Some(want));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "B never kept {key}"
        );
    }
}

/// Every command the server ran so far, pings (the feed's) left out.
fn commands_but_ping(raw: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(raw).unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_ping:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn latency(url: &str, raw: &mut redis::Connection) {
    let a = Cache::builder()
        .shared(Redis::open(url).unwrap())
        .prefix("lat")
        .build();
    let b = tiered(url, "lat", true);
    let ttl = Duration::from_secs(600);
    a.set("k", &0u64, ttl).unwrap();
    hold(&b, "k", 0);
    let mut lat = Vec::with_capacity(WRITES);
    for i in 1..=WRITES as u64 {
        let start = Instant::now();
        a.set("k", &i, ttl).unwrap();
        while b.local().unwrap().get::<u64>("k").is_some() {
            assert!(start.elapsed() < Duration::from_secs(5), "no invalidation");
        }
        lat.push(start.elapsed());
        hold(&b, "k", i);
    }
    lat.sort();
    println!(
        "coherence: invalidation latency A SET -> B drop over {WRITES} writes: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // A write's cost, coherence on against off, interleaved in rounds.
    let on = tiered(url, "w-on", true);
    let off = tiered(url, "w-off", false);
    let (mut t_on, mut t_off) = (Duration::ZERO, Duration::ZERO);
    let (mut c_on, mut c_off) = (0, 0);
    for round in 0..10u64 {
        for (cache, total, commands) in
            [(&on, &mut t_on, &mut c_on), (&off, &mut t_off, &mut c_off)]
        {
            let before = commands_but_ping(raw);
            let start = Instant::now();
            for i in 0..300u64 {
                cache
                    .set(format!("k{i}"), &(round * 1000 + i), ttl)
                    .unwrap();
            }
            *total += start.elapsed();
            // The first INFO call counts itself.
            *commands += commands_but_ping(raw) - before - 1;
        }
    }
    println!(
        "coherence: Redis commands per Cache::set, on {:.2} / off {:.2}",
        c_on as f64 / 3000.0,
        c_off as f64 / 3000.0
    );
    println!(
        "coherence: Cache::set mean, on {:?} / off {:?} = {:.2}",
        t_on / 3000,
        t_off / 3000,
        t_on.as_secs_f64() / t_off.as_secs_f64()
    );
}

fn coherence(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        eprintln!("coherence: no redis-server, nothing to measure");
        return;
    };
    let url = server.url();
    latency(&url, &mut server.raw());

    let on = tiered(&url, "hit-on", true);
    cachefn::register("bench-coherent", on.clone());
    cachefn::register("bench-incoherent", tiered(&url, "hit-off", false));
    let keys: Vec<u64> = (0..KEYS).collect();
    // Until every key is a local hit (the feed confirms tracking first).
    let start = Instant::now();
    while on.local_store().unwrap().len() < KEYS as usize {
        for &k in &keys {
            coherent_page(k);
            incoherent_page(k);
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }
    let mut g = c.benchmark_group("coherence_local_hit");
    g.bench_function("coherence on", |b| cycle(b, &keys, coherent_page));
    g.bench_function("coherence off", |b| cycle(b, &keys, incoherent_page));
    g.finish();
    drop(server);
}

criterion_group!(benches, coherence);
criterion_main!(benches);
