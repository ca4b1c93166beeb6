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

/// [`cycle`] over keys of any type, each lent to the hit.
#[inline]
pub fn cycle_ref<K, R>(b: &mut Bencher<'_>, keys: &[K], mut hit: impl FnMut(&K) -> R) {
    let mut i = 0;
    b.iter(|| {
        let k = &keys[i];
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

// ----- long arguments --------------------------------------------------------

/// The lengths of the string arguments the long-argument rows read with.
pub const ARG_LENS: [usize; 3] = [16, 64, 200];

/// The body the string contenders cache: a page for a query.
#[inline(never)]
pub fn page_body(q: &str) -> String {
    format!("<p>{q}</p>")
}

/// `KEYS` distinct lowercase queries of `len` bytes (the index in front,
/// then letters from a fixed xorshift), in the order of [`key_sequence`].
pub fn queries(len: usize) -> Vec<String> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ len as u64;
    let mut all: Vec<String> = (0..KEYS)
        .map(|i| {
            let mut s = format!("{i:04}");
            s.truncate(len);
            while s.len() < len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(char::from(b'a' + (x % 26) as u8));
            }
            s
        })
        .collect();
    // The same fixed pseudo-random order as the integer keys.
    let order = key_sequence();
    let rank = |k: u64| ((k - 1_000_003) / 7_919) as usize;
    let mut out = Vec::with_capacity(KEYS);
    for &k in &order {
        out.push(std::mem::take(&mut all[rank(k)]));
    }
    out
}

/// A composite argument: a page number and a query.
#[derive(serde::Serialize, Clone, PartialEq, Eq, Hash)]
pub struct Search<'a> {
    pub page: u64,
    pub q: &'a str,
}

/// The cache of the long-argument functions: three functions of 1,000
/// keys for each of three lengths, 9,000 entries, which the default cache
/// (10,000 entries, an eighth of them held in threads' hot entries) would
/// not keep hot. A local tier of 100,000 entries holds them all hot, as
/// the default cache holds `render`'s 1,000. Registered before any
/// contender is warmed (a registration drops every thread's hot entries).
pub fn register_arg_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        cachefn::register(
            "bench-args",
            cachefn::Cache::builder()
                .local(cachefn::backends::Memory::with_capacity(100_000))
                .build(),
        );
    });
}

/// The same functions with string and composite arguments, memoized by
/// cachefn: `&str`, `String` (the caller gives up its own copy) and a
/// struct of a `u64` and a `&str`.
pub mod with_cachefn_str {
    use super::Search;

    /// Memoized by cachefn, keyed by a borrowed string.
    #[cachefn::quickcache(cache = "bench-args", timeout = 300)]
    pub fn page(q: &str) -> String {
        super::page_body(q)
    }

    /// Memoized by cachefn, keyed by an owned string.
    #[cachefn::quickcache(cache = "bench-args", timeout = 300)]
    pub fn page_owned(q: String) -> String {
        super::page_body(&q)
    }

    /// Memoized by cachefn, keyed by a struct.
    #[cachefn::quickcache(cache = "bench-args", timeout = 300)]
    pub fn search(s: &Search<'_>) -> String {
        super::page_body(s.q)
    }
}

/// The peers for the long-argument rows, keyed by the same `String` (the
/// composite by `(u64, String)`), warmed with the same keys and values.
pub struct StrCaches {
    pub queries: Vec<String>,
    pub pairs: Vec<(u64, String)>,
    pub dash: dashmap::DashMap<String, String>,
    pub quick: quick_cache::sync::Cache<String, String>,
    pub dash_pair: dashmap::DashMap<(u64, String), String>,
    pub quick_pair: quick_cache::sync::Cache<(u64, String), String>,
}

impl StrCaches {
    /// Every contender holds every query of `len` bytes (checked).
    pub fn warmed(len: usize) -> StrCaches {
        register_arg_cache();
        let queries = queries(len);
        let pairs: Vec<(u64, String)> = queries
            .iter()
            .enumerate()
            .map(|(i, q)| (i as u64, q.clone()))
            .collect();
        let c = StrCaches {
            dash: dashmap::DashMap::with_capacity(CAPACITY),
            quick: quick_cache::sync::Cache::new(CAPACITY),
            dash_pair: dashmap::DashMap::with_capacity(CAPACITY),
            quick_pair: quick_cache::sync::Cache::new(CAPACITY),
            queries,
            pairs,
        };
        for (q, (p, pq)) in c.queries.iter().zip(&c.pairs) {
            drop(with_cachefn_str::page(q));
            drop(with_cachefn_str::page_owned(q.clone()));
            drop(with_cachefn_str::search(&Search { page: *p, q: pq }));
            c.dash.insert(q.clone(), page_body(q));
            c.quick.insert(q.clone(), page_body(q));
            c.dash_pair.insert((*p, pq.clone()), page_body(pq));
            c.quick_pair.insert((*p, pq.clone()), page_body(pq));
        }
        for (q, (p, pq)) in c.queries.iter().zip(&c.pairs) {
            let want = Some(page_body(q));
            let s = Search { page: *p, q: pq };
            assert_eq!(
                with_cachefn_str::page::get_cached(q),
                want,
                "cachefn not warm"
            );
            assert_eq!(with_cachefn_str::page_owned::get_cached(q.clone()), want);
            assert_eq!(with_cachefn_str::search::get_cached(&s), want);
            assert_eq!(c.dash.get(q).map(|v| v.clone()), want, "dashmap not warm");
            assert_eq!(c.quick.get(q.as_str()), want, "quick_cache not warm");
            assert_eq!(c.dash_pair.get(&(*p, pq.clone())).map(|v| v.clone()), want);
            assert_eq!(c.quick_pair.get(&(*p, pq.clone())), want);
        }
        c
    }
}
