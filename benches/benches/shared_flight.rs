//! The cold miss of `single_flight = "shared"` against `"process"`, in one
//! run, on a `redis-server` this bench starts on a free loopback port (or
//! skips, saying why). Every iteration computes a key nobody has computed:
//!
//! - cachefn, tiered cache (local tier + Redis, invalidation feed on),
//!   `single_flight = "process"` (read, body, store) vs `"shared"` (read;
//!   on a miss, read again and lease in one script; body, store; the lease
//!   is released in the background);
//! - the same protocols as raw redis-rs calls on one sync connection:
//!   `GET`, `SET` (process); the five round trips of the first shared
//!   version (`GET`, `SET NX PX`, `GET`, `SET`, `EVAL` release); and the
//!   script and store of the unfenced version (`EVAL` get-or-lease, `SET`;
//!   cachefn sends a plain `GET` first, so that a shared hit stays one
//!   `GET`; the release is left out, as the caller does not wait for it);
//!   and the whole cold miss of the unfenced (`GET`, `EVAL`, `SET`) and of
//!   the fenced version (`GET`, `EVAL` get-or-lease, `EVAL` store-leased,
//!   which gives the lease up too: no release after it).
//!
//! Before criterion's runs, the two cachefn contenders also run in
//! alternating batches (so that a change in the machine's load hits both),
//! for cold misses and for shared-tier hits (no local copy), and the
//! ratios of their medians are printed.
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench shared_flight -- --warm-up-time 1 --measurement-time 3
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[quickcache(cache = "bench-sf-process", timeout = 300, single_flight = "process")]
fn page_process(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(cache = "bench-sf-shared", timeout = 300, single_flight = "shared")]
fn page_shared(id: u64) -> String {
    format!("<p>{id}</p>")
}

/// Served by Redis (no local copy): a shared hit of each kind.
#[quickcache(
    cache = "bench-sf-process",
    timeout = 300,
    local_timeout = 0,
    single_flight = "process"
)]
fn hit_process(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(
    cache = "bench-sf-shared",
    timeout = 300,
    local_timeout = 0,
    single_flight = "shared"
)]
fn hit_shared(id: u64) -> String {
    format!("<p>{id}</p>")
}

/// The lease scripts, as the shared tier sends them.
const GET_OR_LEASE: &str = "local v = redis.call('get', KEYS[1]) \
     if v then return v end \
     if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end \
     return 0";
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('del', KEYS[1]) else return 0 end";
/// The holder's fenced store: `SET` the value and `DEL` the lease while the
/// lease holds our token.
const STORE_LEASED: &str = "if redis.call('get', KEYS[2]) ~= ARGV[1] then return 0 end \
     if ARGV[3] == '0' then redis.call('set', KEYS[1], ARGV[2]) \
     else redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end \
     redis.call('del', KEYS[2]) \
     return 1";

fn tiered(url: &str, prefix: &str) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(200_000))
        .shared(Redis::open(url).unwrap())
        .prefix(prefix)
        .lease_timeout(Duration::from_secs(10))
        .build()
}

fn cold_miss(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        eprintln!("shared_flight: no redis-server, nothing to measure");
        return;
    };
    let url = server.url();
    cachefn::register("bench-sf-process", tiered(&url, "bsp"));
    cachefn::register("bench-sf-shared", tiered(&url, "bss"));
    let mut raw = server.raw();
    let next = AtomicU64::new(0);
    let fresh = || next.fetch_add(1, Ordering::Relaxed);
    let value = b"<p>x</p>".as_slice();

    interleaved(&url);
    let mut g = c.benchmark_group("cold_miss");
    g.bench_function("cachefn: single_flight = process", |b| {
        b.iter(|| page_process(black_box(fresh())))
    });
    g.bench_function("cachefn: single_flight = shared", |b| {
        b.iter(|| page_shared(black_box(fresh())))
    });
    g.bench_function("raw: GET, SET (process)", |b| {
        b.iter(|| {
            let k = format!("raw:p:{}", fresh());
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut raw).unwrap();
            redis::cmd("SET")
                .arg(&k)
                .arg(value)
                .arg("PX")
                .arg(300_000)
                .query::<()>(&mut raw)
                .unwrap();
        })
    });
    g.bench_function("raw: GET, SET NX, GET, SET, EVAL (shared, before)", |b| {
        b.iter(|| {
            let k = format!("raw:s:{}", fresh());
            let lease = format!("{k}#lease");
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut raw).unwrap();
            let _: Option<String> = redis::cmd("SET")
                .arg(&lease)
                .arg("token")
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query(&mut raw)
                .unwrap();
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut raw).unwrap();
            redis::cmd("SET")
                .arg(&k)
                .arg(value)
                .arg("PX")
                .arg(300_000)
                .query::<()>(&mut raw)
                .unwrap();
            let _: i64 = redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(&lease)
                .arg("token")
                .query(&mut raw)
                .unwrap();
        })
    });
    g.bench_function("raw: GET, EVAL get-or-lease, SET (shared, unfenced)", |b| {
        b.iter(|| {
            let k = format!("raw:u:{}", fresh());
            let lease = format!("{k}#lease");
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut raw).unwrap();
            let _: redis::Value = redis::cmd("EVAL")
                .arg(GET_OR_LEASE)
                .arg(2)
                .arg(&k)
                .arg(&lease)
                .arg("token")
                .arg(10_000)
                .query(&mut raw)
                .unwrap();
            redis::cmd("SET")
                .arg(&k)
                .arg(value)
                .arg("PX")
                .arg(300_000)
                .query::<()>(&mut raw)
                .unwrap();
        })
    });
    g.bench_function(
        "raw: GET, EVAL get-or-lease, EVAL store-leased (shared, fenced)",
        |b| {
            b.iter(|| {
                let k = format!("raw:f:{}", fresh());
                let lease = format!("{k}#lease");
                let _: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut raw).unwrap();
                let _: redis::Value = redis::cmd("EVAL")
                    .arg(GET_OR_LEASE)
                    .arg(2)
                    .arg(&k)
                    .arg(&lease)
                    .arg("token")
                    .arg(10_000)
                    .query(&mut raw)
                    .unwrap();
                let _: i64 = redis::cmd("EVAL")
                    .arg(STORE_LEASED)
                    .arg(2)
                    .arg(&k)
                    .arg(&lease)
                    .arg("token")
                    .arg(value)
                    .arg(300_000)
                    .query(&mut raw)
                    .unwrap();
            })
        },
    );
    g.bench_function("raw: EVAL get-or-lease, SET (shared, now)", |b| {
        b.iter(|| {
            let k = format!("raw:n:{}", fresh());
            let lease = format!("{k}#lease");
            let _: redis::Value = redis::cmd("EVAL")
                .arg(GET_OR_LEASE)
                .arg(2)
                .arg(&k)
                .arg(&lease)
                .arg("token")
                .arg(10_000)
                .query(&mut raw)
                .unwrap();
            redis::cmd("SET")
                .arg(&k)
                .arg(value)
                .arg("PX")
                .arg(300_000)
                .query::<()>(&mut raw)
                .unwrap();
        })
    });
    g.finish();
    drop(server);
}

/// The two contenders in alternating batches (so that a change in the
/// machine's load hits both), each batch's cost per key; prints the median
/// of each and their ratio.
fn interleaved(url: &str) {
    const BATCH: u64 = 300;
    const ROUNDS: usize = 30;
    static NEXT: AtomicU64 = AtomicU64::new(1 << 40);
    let per_key = |f: &dyn Fn(u64) -> String| {
        let start = std::time::Instant::now();
        for _ in 0..BATCH {
            black_box(f(NEXT.fetch_add(1, Ordering::Relaxed)));
        }
        start.elapsed().as_secs_f64() * 1e6 / BATCH as f64
    };
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut process, mut shared) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        process.push(per_key(&|k| page_process(k)));
        shared.push(per_key(&|k| page_shared(k)));
    }
    let (p, s) = (median(&mut process), median(&mut shared));
    println!(
        "interleaved cold misses: process {p:.1} us/key, shared {s:.1} us/key, shared/process = {:.2}",
        s / p
    );
    // The shared cold miss against the same protocol as raw calls on one
    // sync connection: GET, get-or-lease, then SET (unfenced) or the
    // store-leased script (fenced).
    let mut conn = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap();
    let value = b"<p>x</p>".as_slice();
    let mut raw_cold = |fenced: bool| {
        let start = std::time::Instant::now();
        for _ in 0..BATCH {
            let k = format!("raw:i:{}", NEXT.fetch_add(1, Ordering::Relaxed));
            let lease = format!("{k}#lease");
            let _: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut conn).unwrap();
            let _: redis::Value = redis::cmd("EVAL")
                .arg(GET_OR_LEASE)
                .arg(2)
                .arg(&k)
                .arg(&lease)
                .arg("token")
                .arg(10_000)
                .query(&mut conn)
                .unwrap();
            if fenced {
                let _: i64 = redis::cmd("EVAL")
                    .arg(STORE_LEASED)
                    .arg(2)
                    .arg(&k)
                    .arg(&lease)
                    .arg("token")
                    .arg(value)
                    .arg(300_000)
                    .query(&mut conn)
                    .unwrap();
            } else {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(value)
                    .arg("PX")
                    .arg(300_000)
                    .query::<()>(&mut conn)
                    .unwrap();
            }
        }
        start.elapsed().as_secs_f64() * 1e6 / BATCH as f64
    };
    let (mut shared, mut unfenced, mut fenced) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        shared.push(per_key(&|k| page_shared(k)));
        unfenced.push(raw_cold(false));
        fenced.push(raw_cold(true));
    }
    let (s, u, f) = (
        median(&mut shared),
        median(&mut unfenced),
        median(&mut fenced),
    );
    println!(
        "interleaved shared cold misses: cachefn {s:.1} us/key, raw GET+EVAL+SET {u:.1} us, \
         raw GET+EVAL+EVAL store-leased {f:.1} us; cachefn/unfenced = {:.2}, cachefn/fenced = {:.2}",
        s / u,
        s / f
    );
    // Shared hits (no local copy): the same keys, computed once.
    for k in 0..BATCH {
        hit_process(k);
        hit_shared(k);
    }
    let hits = |f: &dyn Fn(u64) -> String| {
        let start = std::time::Instant::now();
        for k in 0..BATCH {
            black_box(f(k));
        }
        start.elapsed().as_secs_f64() * 1e6 / BATCH as f64
    };
    let (mut process, mut shared) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        process.push(hits(&|k| hit_process(k)));
        shared.push(hits(&|k| hit_shared(k)));
    }
    let (p, s) = (median(&mut process), median(&mut shared));
    println!(
        "interleaved shared hits: process {p:.1} us/key, shared {s:.1} us/key, shared/process = {:.2}",
        s / p
    );
    // The same hits as raw calls: `GET` against the get-or-lease script.
    let mut raw = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap();
    let stored: Vec<String> = (0..BATCH)
        .map(|k| {
            cachefn::cache("bench-sf-shared")
                .unwrap()
                .storage_key(hit_shared::key(k))
        })
        .collect();
    let mut raw_hits = |script: bool| {
        let start = std::time::Instant::now();
        for key in &stored {
            let cmd = if script {
                let mut c = redis::cmd("EVAL");
                c.arg(GET_OR_LEASE)
                    .arg(2)
                    .arg(key)
                    .arg(format!("{key}#lease"));
                c.arg("token").arg(10_000);
                c
            } else {
                let mut c = redis::cmd("GET");
                c.arg(key);
                c
            };
            black_box(cmd.query::<redis::Value>(&mut raw).unwrap());
        }
        start.elapsed().as_secs_f64() * 1e6 / BATCH as f64
    };
    let (mut get, mut eval) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        get.push(raw_hits(false));
        eval.push(raw_hits(true));
    }
    let (g, e) = (median(&mut get), median(&mut eval));
    println!(
        "interleaved raw hits: GET {g:.1} us, EVAL get-or-lease {e:.1} us, EVAL/GET = {:.2}",
        e / g
    );
}

criterion_group!(benches, cold_miss);
criterion_main!(benches);
