//! Async memoization against sync memoization and raw redis-rs, in one run:
//!
//! - the local hit of a memoized `async fn` vs the local hit of the same
//!   memoized sync `fn` (goal: at most 1.15x, issue 13), first as best of
//!   9 interleaved rounds (printed), then as two criterion groups;
//! - a shared hit through the async Redis connection under 64 concurrent
//!   tasks vs raw redis-rs `GET`s on one multiplexed connection under 64
//!   tasks (goal: at most 1.15x). The bench starts its own `redis-server`.
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench async_hit -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use common::key_sequence;
use criterion::{criterion_group, criterion_main, Criterion};

const KEYS: u64 = 1_000;
const TASKS: u64 = 64;

#[quickcache(cache = "bench-async-local")]
async fn async_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

// A cache of its own: 2 x 1,000 hot keys of one thread in one 10,000-entry
// tier would pass the eighth of its bound that per-thread hot entries may
// hold, and the second function's hits would then go to the store.
#[quickcache(cache = "bench-sync-local")]
fn sync_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[quickcache(cache = "bench-async-shared", local_timeout = 0)]
async fn shared_page(id: u64) -> String {
    format!("<p>{id}</p>")
}

fn local_hit(c: &mut Criterion) {
    cachefn::register("bench-async-local", Cache::memory());
    cachefn::register("bench-sync-local", Cache::memory());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The keys the benches read (so that every measured call is a hit).
    let keys = key_sequence();
    rt.block_on(async {
        for &k in &keys {
            async_page(k).await;
            sync_page(k);
        }
    });
    interleaved(&rt, &keys);
    let mut g = c.benchmark_group("async_local_hit");
    // Both loops are the same code inside the same runtime (the key cycle
    // of `common::cycle`, written out): they differ only in the call, so
    // the ratio is the `async fn`'s own cost and not the harness's.
    g.bench_function("cachefn: sync fn, local hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut i = 0;
                for _ in 0..iters {
                    let k = keys[i];
                    i += 1;
                    if i == keys.len() {
                        i = 0;
                    }
                    std::hint::black_box(sync_page(std::hint::black_box(k)));
                }
                start.elapsed()
            })
        })
    });
    g.bench_function(
        "cachefn: async fn, local hit (awaited on a current_thread runtime)",
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let mut i = 0;
                    for _ in 0..iters {
                        let k = keys[i];
                        i += 1;
                        if i == keys.len() {
                            i = 0;
                        }
                        std::hint::black_box(async_page(std::hint::black_box(k)).await);
                    }
                    start.elapsed()
                })
            })
        },
    );
    g.finish();
}

/// The async/sync ratio measured the way the `scaling` bench measures:
/// best of 9 rounds of 1M hits each, the two loops alternating inside one
/// `block_on`, so that a burst of outside load spoils one round of each
/// rather than all of one (criterion's two groups run one after the
/// other, and on a busy 2-core machine their ratio moves by ±0.1).
fn interleaved(rt: &tokio::runtime::Runtime, keys: &[u64]) {
    const HITS: usize = 1_000_000;
    rt.block_on(async {
        let (mut sync_best, mut async_best) = (f64::MAX, f64::MAX);
        for _ in 0..9 {
            let start = Instant::now();
            for i in 0..HITS {
                std::hint::black_box(sync_page(std::hint::black_box(keys[i % keys.len()])));
            }
            sync_best = sync_best.min(start.elapsed().as_nanos() as f64 / HITS as f64);
            let start = Instant::now();
            for i in 0..HITS {
                let k = std::hint::black_box(keys[i % keys.len()]);
                std::hint::black_box(async_page(k).await);
            }
            async_best = async_best.min(start.elapsed().as_nanos() as f64 / HITS as f64);
        }
        println!(
            "local hit, best of 9 interleaved rounds: sync fn {sync_best:.1} ns, \
             async fn {async_best:.1} ns, async/sync {:.3}x",
            async_best / sync_best
        );
    });
}

/// Run `op` `iters` times in all, spread over 64 tasks; the wall time.
fn under_64_tasks<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async {
        let per_task = iters.div_ceil(TASKS).max(1);
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let op = op.clone();
                tokio::spawn(async move {
                    for i in 0..per_task {
                        op((t * per_task + i) % KEYS).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Scale to `iters` operations.
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_task * TASKS) as f64)
    })
}

fn shared_hit(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        eprintln!("async_hit: no redis-server, the shared-tier half is not measured");
        return;
    };
    let url = server.url();
    cachefn::register(
        "bench-async-shared",
        Cache::builder()
            .shared(Redis::open(&url).unwrap())
            .prefix("bench")
            .build(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let (conn, stored) = rt.block_on(async {
        for k in 0..KEYS {
            shared_page(k).await;
        }
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let cache = cachefn::cache("bench-async-shared").unwrap();
        let stored: Vec<String> = (0..KEYS)
            .map(|k| cache.storage_key(shared_page::key(k)))
            .collect();
        (conn, std::sync::Arc::new(stored))
    });

    let mut g = c.benchmark_group("async_shared_hit_64_tasks");
    g.bench_function("cachefn: memoized async fn served by Redis", |b| {
        b.iter_custom(|iters| {
            under_64_tasks(&rt, iters, |k| async move {
                std::hint::black_box(shared_page(k).await);
            })
        })
    });
    // Where the difference goes: the backend alone, then the low-level API.
    let backend = std::sync::Arc::new(Redis::open(&url).unwrap());
    g.bench_function(
        "cachefn-backends: Redis::get_async (the backend alone)",
        |b| {
            b.iter_custom(|iters| {
                let (backend, stored) = (backend.clone(), stored.clone());
                under_64_tasks(&rt, iters, move |k| {
                    let (backend, stored) = (backend.clone(), stored.clone());
                    async move {
                        let v = backend.get_async(&stored[k as usize]).await.unwrap();
                        std::hint::black_box(v);
                    }
                })
            })
        },
    );
    let keys: std::sync::Arc<Vec<cachefn::Key>> =
        std::sync::Arc::new((0..KEYS).map(shared_page::key).collect());
    let cache = cachefn::cache("bench-async-shared").unwrap();
    g.bench_function("cachefn: Cache::get_async (low-level API)", |b| {
        b.iter_custom(|iters| {
            let (cache, keys) = (cache.clone(), keys.clone());
            under_64_tasks(&rt, iters, move |k| {
                let (cache, keys) = (cache.clone(), keys.clone());
                async move {
                    let v = cache.get_async::<String>(&keys[k as usize]).await;
                    std::hint::black_box(v.unwrap());
                }
            })
        })
    });
    g.bench_function("redis-rs: GET on one multiplexed connection", |b| {
        b.iter_custom(|iters| {
            let (conn, stored) = (conn.clone(), stored.clone());
            under_64_tasks(&rt, iters, move |k| {
                let mut conn = conn.clone();
                let stored = stored.clone();
                async move {
                    let v: Vec<u8> = redis::cmd("GET")
                        .arg(&stored[k as usize])
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    std::hint::black_box(v);
                }
            })
        })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, local_hit, shared_hit);
criterion_main!(benches);
