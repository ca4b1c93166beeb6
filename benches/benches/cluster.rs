//! The Redis Cluster shared tier against raw redis-rs cluster calls, in one
//! run, on a cluster of six `redis-server` processes (three masters) this
//! bench starts on free loopback ports:
//!
//! - a memoized call served by the cluster (local tier off) vs a raw
//!   redis-rs `ClusterConnection` `GET` of the same bytes;
//! - `get_many` of 100 keys over the three masters vs 100 raw cluster `GET`s;
//! - a page of 50 memoized fragments inside a `preload` scope vs without.
//!
//! Before criterion's runs it prints the first comparison's median ratio
//! over 30 alternating rounds of 1,000 calls each, which drifts less with
//! the machine's load than two benchmarks measured one after the other.
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench cluster -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::time::{Duration, Instant};

use cachefn::backends::{Backend, RedisCluster};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_cluster::RedisClusterServers;
use common::cycle;
use criterion::{criterion_group, criterion_main, Criterion};

const KEYS: u64 = 100;

#[quickcache(cache = "bench-cluster", local_timeout = 0)]
fn cluster_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(cache = "bench-cluster", local_timeout = 0)]
fn fragment(id: u64) -> String {
    format!("<li>{id}</li>")
}

fn page() -> String {
    (0..50).map(fragment).collect()
}

fn cluster_tier(c: &mut Criterion) {
    let Some(cluster) = RedisClusterServers::start() else {
        eprintln!("cluster: no redis-server/redis-cli, nothing to measure");
        return;
    };
    let urls = cluster.urls();
    let shared_only = Cache::builder()
        .shared(RedisCluster::open(&urls).unwrap())
        .prefix("bench")
        .build();
    cachefn::register("bench-cluster", shared_only.clone());
    let keys: Vec<u64> = (0..KEYS).collect();
    let stored: Vec<String> = keys
        .iter()
        .map(|&k| shared_only.storage_key(cluster_page::key(k)))
        .collect();
    for &k in &keys {
        cluster_page(k);
    }
    page();
    let mut raw = redis::cluster::ClusterClient::new(urls.clone())
        .and_then(|c| c.get_connection())
        .expect("a redis-rs cluster connection");
    let backend = RedisCluster::open(&urls).unwrap();
    let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
    assert!(backend.get_many(&refs).unwrap().iter().all(Option::is_some));

    // On a shared machine the load drifts between criterion's benchmarks:
    // first the same comparison in alternating rounds, whose median ratio
    // the drift barely moves.
    paired(
        "memoized call / raw redis-rs cluster GET",
        |k| drop(cluster_page(k)),
        |k| {
            redis::cmd("GET")
                .arg(&stored[k as usize])
                .query::<Vec<u8>>(&mut raw)
                .unwrap();
        },
        &keys,
    );

    let mut g = c.benchmark_group("cluster_tier");
    g.bench_function("cachefn: memoized call served by the cluster", |b| {
        cycle(b, &keys, cluster_page)
    });
    g.bench_function("raw redis-rs cluster: GET of the same bytes", |b| {
        cycle(b, &keys, |k| {
            redis::cmd("GET")
                .arg(&stored[k as usize])
                .query::<Vec<u8>>(&mut raw)
                .unwrap()
        })
    });
    g.bench_function("cachefn: RedisCluster::get of the same bytes", |b| {
        cycle(b, &keys, |k| backend.get(&stored[k as usize]).unwrap())
    });
    g.bench_function("cachefn: get_many of 100 keys (3 masters)", |b| {
        b.iter(|| backend.get_many(&refs).unwrap())
    });
    g.bench_function("raw redis-rs cluster: 100 GETs", |b| {
        b.iter(|| {
            refs.iter()
                .map(|k| {
                    redis::cmd("GET")
                        .arg(*k)
                        .query::<Vec<u8>>(&mut raw)
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
    });
    let page_keys: Vec<cachefn::Key> = (0..50).map(fragment::key).collect();
    g.bench_function("cachefn: page of 50 fragments, preloaded", |b| {
        b.iter(|| shared_only.preload(page_keys.iter().cloned(), page))
    });
    g.bench_function("cachefn: page of 50 fragments, not preloaded", |b| {
        b.iter(page)
    });
    g.finish();
    drop(raw);
    drop(cluster);
    std::thread::sleep(Duration::from_millis(10));
}

/// Time `a` and `b` over `keys` in 30 alternating rounds and print the
/// median of the per-round ratios a/b (and each side's median call).
fn paired(what: &str, mut a: impl FnMut(u64), mut b: impl FnMut(u64), keys: &[u64]) {
    let round = |f: &mut dyn FnMut(u64)| {
        let start = Instant::now();
        for &k in keys.iter().cycle().take(1_000) {
            f(criterion::black_box(k));
        }
        start.elapsed() / 1_000
    };
    let mut ratios = Vec::new();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let x = round(&mut a);
        let y = round(&mut b);
        ratios.push(x.as_secs_f64() / y.as_secs_f64());
        ta.push(x);
        tb.push(y);
    }
    ratios.sort_by(f64::total_cmp);
    ta.sort();
    tb.sort();
    eprintln!(
        "{what}: median ratio {:.3} over 30 alternating rounds ({:?} vs {:?} per call)",
        ratios[15], ta[15], tb[15]
    );
}

criterion_group!(benches, cluster_tier);
criterion_main!(benches);
