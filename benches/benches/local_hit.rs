//! The cost of one cache hit (a warm key, one thread) for cachefn and four
//! other ways to cache `render(id: u64) -> String`, side by side in one
//! criterion group.
//!
//! Every contender is warmed with the same 1,000 keys and then read in the
//! same fixed order, cycling, so every measured call is a hit that clones a
//! `String` out of the cache (and the bench drops it).
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench local_hit -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use common::{cycle, with_cached, with_cachefn, Caches};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn local_hit(c: &mut Criterion) {
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

criterion_group!(benches, local_hit);
criterion_main!(benches);
