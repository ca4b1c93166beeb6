//! The cost of one cache hit (a warm key, one thread) for cachefn and four
//! other ways to cache `render(id: u64) -> String`, side by side in one
//! criterion group; then (`local_hit_args`) a memoized function of a
//! string or composite argument against `dashmap` and `quick_cache` keyed
//! by the same `String`.
//!
//! Every contender is warmed with the same 1,000 keys and then read in the
//! same fixed order, cycling, so every measured call is a hit that clones a
//! `String` out of the cache (and the bench drops it).
//!
//! The long-argument rows, for queries of 16, 64 and 200 bytes:
//!
//! - `cachefn &str` / `dashmap &str` / `quick_cache &str`: looked up by a
//!   borrowed `&str` (the maps by `Borrow<str>`);
//! - `cachefn String` / `dashmap String` / `quick_cache String`: the caller
//!   has its own `String` (cloned in the loop, in every row), which the
//!   memoized function takes and the maps borrow;
//! - `cachefn (u64, &str)` / `dashmap (u64, String)` / `quick_cache (u64,
//!   String)`: a struct of a page number and the query, the maps keyed by
//!   the tuple (looked up by a tuple held by the bench).
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench local_hit -- --warm-up-time 1 --measurement-time 3
//! cargo bench -j2 -p cachefn-benches --bench local_hit -- local_hit_args/64
//! ```

mod common;

use common::{
    cycle, cycle_ref, with_cached, with_cachefn, with_cachefn_str, Caches, Search, StrCaches,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn local_hit(c: &mut Criterion) {
    common::register_arg_cache();
    let keys = common::key_sequence();
    let Caches { dash, quick, moka } = Caches::warmed(&keys);

    let mut g = c.benchmark_group("local_hit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cachefn", |b| cycle(b, &keys, with_cachefn::render));
    g.bench_function("dashmap", |b| {
        cycle(b, &keys, |k| dash.get(&k).map(|v| v.clone()))
    });
    g.bench_function("quick_cache", |b| cycle(b, &keys, |k| quick.get(&k)));
    g.bench_function("moka", |b| cycle(b, &keys, |k| moka.get(&k)));
    g.bench_function("cached", |b| cycle(b, &keys, with_cached::render));
    g.finish();
}

fn local_hit_args(c: &mut Criterion) {
    let mut g = c.benchmark_group("local_hit_args");
    g.throughput(Throughput::Elements(1));
    for len in common::ARG_LENS {
        let s = StrCaches::warmed(len);
        let (q, p) = (&s.queries, &s.pairs);
        g.bench_function(format!("{len}/cachefn &str"), |b| {
            cycle_ref(b, q, |k| with_cachefn_str::page(k))
        });
        g.bench_function(format!("{len}/dashmap &str"), |b| {
            cycle_ref(b, q, |k| s.dash.get(k.as_str()).map(|v| v.clone()))
        });
        g.bench_function(format!("{len}/quick_cache &str"), |b| {
            cycle_ref(b, q, |k| s.quick.get(k.as_str()))
        });
        g.bench_function(format!("{len}/cachefn String"), |b| {
            cycle_ref(b, q, |k| with_cachefn_str::page_owned(k.clone()))
        });
        g.bench_function(format!("{len}/dashmap String"), |b| {
            cycle_ref(b, q, |k| {
                let k = k.clone();
                s.dash.get(&k).map(|v| v.clone())
            })
        });
        g.bench_function(format!("{len}/quick_cache String"), |b| {
            cycle_ref(b, q, |k| {
                let k = k.clone();
                s.quick.get(&k)
            })
        });
        g.bench_function(format!("{len}/cachefn (u64, &str)"), |b| {
            cycle_ref(b, p, |(page, q)| {
                with_cachefn_str::search(&Search { page: *page, q })
            })
        });
        g.bench_function(format!("{len}/dashmap (u64, String)"), |b| {
            cycle_ref(b, p, |k| s.dash_pair.get(k).map(|v| v.clone()))
        });
        g.bench_function(format!("{len}/quick_cache (u64, String)"), |b| {
            cycle_ref(b, p, |k| s.quick_pair.get(k))
        });
    }
    g.finish();
}

criterion_group!(benches, local_hit, local_hit_args);
criterion_main!(benches);
