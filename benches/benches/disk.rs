//! The `Disk` tier against the `cached` crate's disk store (`DiskCache`, on
//! sled 0.34 in cached 0.56), in one run, on the same filesystem: get and
//! set of 1 KiB and 100 KiB string values.
//!
//! Contenders, each with a 300 s time to live:
//!
//! - `cachefn Disk (bytes)`: the backend itself, `Backend::get` / `set` of
//!   the string's bytes;
//! - `cachefn Cache<Disk>`: the typed API of a cache whose only tier is the
//!   disk (`Cache::get::<String>` / `set`), the like-for-like of `cached`;
//! - `cached DiskCache`: `IOCached::cache_get` / `cache_set` (the value is
//!   cloned outside the timed part, since `cache_set` takes it by value).
//!
//! Neither syncs to disk per write by default (cached's sled flushes in the
//! background every 500 ms); the `durable set` group compares both with a
//! flush per write (`sync_writes(true)` vs `set_sync_to_disk_on_cache_change(true)`).
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench disk -- --warm-up-time 1 --measurement-time 3
//! ```

use std::path::PathBuf;
use std::time::Duration;

use cached::{DiskCache, IOCached};
use cachefn::backends::{Backend, Disk};
use cachefn::Cache;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

const KEYS: usize = 100;
const TTL: Duration = Duration::from_secs(300);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("cachefn-bench-disk-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn cached_store(name: &str, durable: bool) -> DiskCache<String, String> {
    DiskCache::new(name)
        .set_disk_directory(scratch(name))
        .set_lifespan(TTL)
        .set_sync_to_disk_on_cache_change(durable)
        .build()
        .unwrap()
}

fn disk(name: &str, durable: bool) -> Disk {
    Disk::builder(scratch(name))
        .sync_writes(durable)
        .build()
        .unwrap()
}

fn sizes() -> [(&'static str, String); 2] {
    [
        ("1KiB", "x".repeat(1024)),
        ("100KiB", "y".repeat(100 * 1024)),
    ]
}

fn bench_disk(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("bench:page:{i}")).collect();
    let mut i = 0usize;
    let mut next = move || {
        i = (i + 1) % KEYS;
        i
    };

    for (size, value) in sizes() {
        let raw = disk(&format!("raw-{size}"), false);
        let typed = Cache::builder()
            .shared(disk(&format!("typed-{size}"), false))
            .prefix("bench")
            .build();
        let theirs = cached_store(&format!("cached-{size}"), false);
        for k in &keys {
            raw.set(k, value.as_bytes(), TTL).unwrap();
            typed.set(k, &value, TTL).unwrap();
            theirs.cache_set(k.clone(), value.clone()).unwrap();
        }

        let mut g = c.benchmark_group(format!("disk get {size}"));
        g.bench_function("cachefn Disk (bytes)", |b| {
            b.iter(|| black_box(raw.get(&keys[next()]).unwrap().unwrap()))
        });
        g.bench_function("cachefn Cache<Disk>", |b| {
            b.iter(|| black_box(typed.get::<String>(&keys[next()]).unwrap()))
        });
        g.bench_function("cached DiskCache", |b| {
            b.iter(|| black_box(theirs.cache_get(&keys[next()]).unwrap().unwrap()))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("disk set {size}"));
        g.bench_function("cachefn Disk (bytes)", |b| {
            b.iter(|| raw.set(&keys[next()], value.as_bytes(), TTL).unwrap())
        });
        g.bench_function("cachefn Cache<Disk>", |b| {
            b.iter(|| typed.set(&keys[next()], &value, TTL).unwrap())
        });
        g.bench_function("cached DiskCache", |b| {
            b.iter_batched(
                || (keys[next()].clone(), value.clone()),
                |(k, v)| theirs.cache_set(k, v).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    for (size, value) in sizes() {
        let raw = disk(&format!("durable-{size}"), true);
        let theirs = cached_store(&format!("cached-durable-{size}"), true);
        let mut g = c.benchmark_group(format!("disk durable set {size}"));
        g.sample_size(10);
        g.bench_function("cachefn Disk (bytes), sync_writes", |b| {
            b.iter(|| raw.set(&keys[next()], value.as_bytes(), TTL).unwrap())
        });
        g.bench_function("cached DiskCache, sync on change", |b| {
            b.iter_batched(
                || (keys[next()].clone(), value.clone()),
                |(k, v)| theirs.cache_set(k, v).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("cachefn-bench-disk-{}", std::process::id())),
    );
}

criterion_group!(benches, bench_disk);
criterion_main!(benches);
