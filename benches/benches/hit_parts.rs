//! Where a cachefn hit's time goes: the full hit next to its parts, measured
//! alone through cachefn's public pieces.
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench hit_parts -- --warm-up-time 1 --measurement-time 2
//! ```

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachefn::__private::KeyBuilder;
use cachefn::backends::{clock, LocalValue, Memory};
use common::{cycle, with_cachefn, Caches};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use xxhash_rust::xxh3::xxh3_128;

#[cachefn::quickcache(timeout = 300)]
fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

struct Val(String);

impl LocalValue for Val {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, cachefn::Error> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn size_hint(&self) -> usize {
        self.0.len()
    }
}

fn hit_parts(c: &mut Criterion) {
    let keys = common::key_sequence();
    let Caches { dash, .. } = Caches::warmed(&keys);
    for &k in &keys {
        square(k);
    }
    let texts: Vec<String> = keys
        .iter()
        .map(|&k| with_cachefn::render::key(k).as_str().to_owned())
        .collect();
    let head = texts[0]
        .rsplit_once(':')
        .map(|(h, _)| h.to_owned())
        .expect("a key");
    // Keys' heads live in statics; leak this one to get the same lifetime.
    let head: &'static str = Box::leak(head.into_boxed_str());
    let fps: Vec<u128> = texts.iter().map(|t| xxh3_128(t.as_bytes())).collect();
    let mem = Memory::with_capacity(10_000);
    for (t, &fp) in texts.iter().zip(&fps) {
        mem.insert(fp, t, Val(t.clone()), Duration::from_secs(300));
    }
    let counter = AtomicU64::new(0);
    let arc = Arc::new(0u64);

    println!(
        "size_of::<KeyBuilder>() = {} bytes; key text e.g. {:?} ({} bytes)",
        std::mem::size_of::<KeyBuilder>(),
        texts[0],
        texts[0].len()
    );

    let mut g = c.benchmark_group("hit_parts");
    g.bench_function("full: cachefn render -> String", |b| {
        cycle(b, &keys, with_cachefn::render)
    });
    g.bench_function("full: cachefn square -> u64", |b| cycle(b, &keys, square));
    g.bench_function("ref: dashmap get+clone", |b| {
        cycle(b, &keys, |k| dash.get(&k).map(|v| v.clone()))
    });
    g.bench_function("part: KeyBuilder::new+part", |b| {
        cycle(b, &keys, |k| {
            let mut kb = KeyBuilder::new(black_box(head));
            kb.part(&k);
            black_box(&kb);
        })
    });
    g.bench_function("part: xxh3_128(key text)", |b| {
        let mut i = 0;
        b.iter(|| {
            let t = &texts[i];
            i += 1;
            if i == texts.len() {
                i = 0;
            }
            xxh3_128(black_box(t.as_bytes()))
        })
    });
    g.bench_function("part: from_utf8(key text)", |b| {
        let mut i = 0;
        b.iter(|| {
            let t = &texts[i];
            i += 1;
            if i == texts.len() {
                i = 0;
            }
            std::str::from_utf8(black_box(t.as_bytes())).is_ok()
        })
    });
    g.bench_function("part: Memory::get(fp) (Arc<Slot> in+out)", |b| {
        let mut i = 0;
        b.iter(|| {
            let (fp, t) = (fps[i], texts[i].as_str());
            i += 1;
            if i == fps.len() {
                i = 0;
            }
            mem.get(black_box(fp), t).is_some()
        })
    });
    g.bench_function("part: Memory::get + downcast + clone", |b| {
        let mut i = 0;
        b.iter(|| {
            let (fp, t) = (fps[i], texts[i].as_str());
            i += 1;
            if i == fps.len() {
                i = 0;
            }
            mem.get(black_box(fp), t).and_then(|s| {
                s.value()
                    .as_any()
                    .downcast_ref::<Val>()
                    .map(|v| v.0.clone())
            })
        })
    });
    g.bench_function("part: clock::now_ms", |b| b.iter(clock::now_ms));
    g.bench_function("part: AtomicU64::fetch_add (1 locked op)", |b| {
        b.iter(|| counter.fetch_add(1, Ordering::Relaxed))
    });
    g.bench_function("part: Arc clone+drop (2 locked ops)", |b| {
        b.iter(|| drop(black_box(Arc::clone(&arc))))
    });
    g.finish();
}

criterion_group!(benches, hit_parts);
criterion_main!(benches);
