//! Contenders shared by the `local_hit` and `scaling` benches: the same
//! `render(id: u64) -> String` memoized or cached five ways, and the key
//! sequence every contender is read with.

// Each bench target compiles this module separately and uses a subset of it.
#![allow(dead_code)]

use std::time::Duration;

use criterion::{black_box, Bencher};

/// Cycle through `keys`, one hit per iteration.
#[inline]
pub fn cycle<R>(b: &mut Bencher<'_>, keys: &[u64], mut hit: impl FnMut(u64) -> R) {
    let mut i = 0;
    b.iter(|| {
        let k = keys[i];
        i += 1;
        if i == keys.len() {
            i = 0;
        }
        hit(black_box(k))
    });
}

/// Distinct keys in the working set; every read after warming is a hit.
pub const KEYS: usize = 1_000;
/// Time to live of every contender (seconds).
pub const TTL_SECS: u64 = 300;
/// Capacity of the bounded contenders (cachefn's default local tier holds 10,000).
pub const CAPACITY: usize = 10_000;

/// The body every contender caches.
#[inline(never)]
pub fn body(id: u64) -> String {
    format!("<p>{id}</p>")
}

/// The key sequence every contender is read with: the keys `0..KEYS` in a
/// fixed pseudo-random order (so no contender gets a sequential pattern).
pub fn key_sequence() -> Vec<u64> {
    let mut keys: Vec<u64> = (0..KEYS as u64).collect();
    // Fisher-Yates with a fixed xorshift seed: the same order on every run.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..keys.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        keys.swap(i, j);
    }
    // Spread ids over the u64 range a little, as real ids would be.
    keys.iter().map(|k| k * 7_919 + 1_000_003).collect()
}

/// 1. cachefn: the attribute with its default in-memory cache.
pub mod with_cachefn {
    /// Memoized by cachefn.
    #[cachefn::quickcache(timeout = 300)]
    pub fn render(id: u64) -> String {
        super::body(id)
    }
}

/// 5. The `cached` crate's macro with a TTL (`time` seconds: a `TimedCache`).
pub mod with_cached {
    // The macro's expansion names `Duration` unqualified.
    use std::time::Duration;

    /// Memoized by `cached`.
    #[cached::proc_macro::cached(time = 300)]
    pub fn render(id: u64) -> String {
        super::body(id)
    }
}

/// 2. A raw `DashMap`: no TTL, no bound, the floor.
pub fn dashmap() -> dashmap::DashMap<u64, String> {
    dashmap::DashMap::with_capacity(CAPACITY)
}

/// 3. `quick_cache::sync::Cache` (the store under cachefn's local tier).
pub fn quick_cache() -> quick_cache::sync::Cache<u64, String> {
    quick_cache::sync::Cache::new(CAPACITY)
}

/// 4. `moka::sync::Cache` with a time to live.
pub fn moka() -> moka::sync::Cache<u64, String> {
    moka::sync::Cache::builder()
        .max_capacity(CAPACITY as u64)
        .time_to_live(Duration::from_secs(TTL_SECS))
        .build()
}

/// The three contenders that are values (cachefn and `cached` keep theirs
/// in statics), and [`Caches::warmed`] to fill all five.
pub struct Caches {
    pub dash: dashmap::DashMap<u64, String>,
    pub quick: quick_cache::sync::Cache<u64, String>,
    pub moka: moka::sync::Cache<u64, String>,
}

impl Caches {
    /// All five contenders hold every key of `keys` (checked).
    pub fn warmed(keys: &[u64]) -> Caches {
        let caches = Caches {
            dash: dashmap(),
            quick: quick_cache(),
            moka: moka(),
        };
        for &k in keys {
            drop(with_cachefn::render(k));
            caches.dash.insert(k, body(k));
            caches.quick.insert(k, body(k));
            caches.moka.insert(k, body(k));
            drop(with_cached::render(k));
        }
        for &k in keys {
            let want = Some(body(k));
            assert_eq!(
                with_cachefn::render::get_cached(k),
                want,
                "cachefn not warm"
            );
            assert_eq!(
                caches.dash.get(&k).map(|v| v.clone()),
                want,
                "dashmap not warm"
            );
            assert_eq!(caches.quick.get(&k), want, "quick_cache not warm");
            assert_eq!(caches.moka.get(&k), want, "moka not warm");
        }
        {
            use cached::Cached;
            let store = with_cached::RENDER.lock().expect("cached's lock");
            assert_eq!(store.cache_size(), keys.len(), "cached not warm");
        }
        caches
    }
}
