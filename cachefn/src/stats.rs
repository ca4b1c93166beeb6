//! Counters of what a cache did.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 8;

/// One counter split over cache lines, so that threads counting hits at the
/// same time do not contend on one line.
pub(crate) struct Counter {
    stripes: [Padded; STRIPES],
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

#[repr(align(128))]
struct Padded(AtomicU64);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline(always)]
pub(crate) fn stripe() -> usize {
    STRIPE
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                i = NEXT.fetch_add(1, Ordering::Relaxed) as usize % STRIPES;
                s.set(i);
            }
            i
        })
        .unwrap_or(0)
}

impl Counter {
    pub(crate) const fn new() -> Counter {
        Counter {
            stripes: [const { Padded(AtomicU64::new(0)) }; STRIPES],
        }
    }

    /// Count one. A load and a store on this thread's own stripe, not a
    /// locked read-modify-write: threads have their own stripes (up to
    /// eight), so counts are exact until more threads share a stripe, and
    /// then may miss an increment now and then. Counters are statistics.
    #[inline]
    pub(crate) fn add(&self) {
        self.add_at(stripe());
    }

    /// [`Counter::add`] on a stripe already looked up (two counters
    /// counting one event look it up once).
    #[inline(always)]
    pub(crate) fn add_at(&self, stripe: usize) {
        let c = &self.stripes[stripe % STRIPES].0;
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
    /// Count `n` (rare events: a plain atomic add).
    pub(crate) fn add_n(&self, n: u64) {
        self.stripes[0].0.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|p| p.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// One [`Counter`] for every field of [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) local_hits: Counter,
    pub(crate) shared_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) stale_hits: Counter,
    pub(crate) early_refreshes: Counter,
    pub(crate) shared_errors: Counter,
    pub(crate) undecodable: Counter,
    pub(crate) invalidations: Counter,
    pub(crate) unauthenticated: Counter,
}

/// A snapshot of counters: a cache's, from [`Cache::stats`](crate::Cache::stats),
/// or one memoized function's in this process, from its `f::stats()` helper
/// (`m_stats()` for a method `m`).
///
/// ```
/// let cache = cachefn::Cache::memory();
/// let _ = cache.get::<u32>("absent");
/// assert_eq!(cache.stats().misses, 1);
///
/// #[cachefn::quickcache]
/// fn square(n: u64) -> u64 { n * n }
///
/// square(3);
/// square(3);
/// let s = square::stats();
/// assert_eq!((s.misses, s.local_hits), (1, 1));
/// ```
///
/// `Stats` implements `serde::Serialize` (a struct of its counters, by
/// field name), so that a stats endpoint can return it as it is, e.g.
/// `axum::Json(cachefn::default_cache().stats())`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads served by the local tier.
    pub local_hits: u64,
    /// Reads served by the shared tier.
    pub shared_hits: u64,
    /// Reads that found nothing (a memoized body ran, or `get` returned `None`).
    pub misses: u64,
    /// Expired entries served while one caller recomputed them
    /// (`stale_while_revalidate`), or because recomputing them failed
    /// (`stale_if_error`).
    pub stale_hits: u64,
    /// Live entries recomputed ahead of their expiry (`early_refresh`).
    pub early_refreshes: u64,
    /// Shared-tier operations that failed (server down, timeout).
    pub shared_errors: u64,
    /// Values found but not decodable as the wanted type (another type,
    /// another version, foreign or corrupt bytes): counted as misses too.
    pub undecodable: u64,
    /// Local entries dropped because the shared tier reported a change
    /// (another process, or any client, wrote or deleted the key), or
    /// because the invalidation feed was lost and the local tier emptied.
    /// A function's `f::stats()` counts its own entries; a cache's
    /// `stats()` counts all of them.
    pub invalidations: u64,
    /// Values from the shared tier whose signature did not verify (unsigned,
    /// or signed with a key this cache does not accept): counted as misses
    /// too. Only a cache with
    /// [`CacheBuilder::signing_key`](crate::CacheBuilder::signing_key)
    /// verifies signatures.
    pub unauthenticated: u64,
}

/// Every field of a `Stats` value with its name, in declaration order. The
/// pattern has no `..`: a field added to `Stats` does not compile until it
/// is listed here, and then it is serialized.
macro_rules! named_fields {
    ($stats:expr; $($field:ident),* $(,)?) => {{
        let Stats { $($field),* } = $stats;
        [$((stringify!($field), $field)),*]
    }};
}

/// By hand rather than derived: serde's `derive` would add proc-macro
/// crates to the default build.
impl serde::Serialize for Stats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let fields = named_fields!(*self;
            local_hits,
            shared_hits,
            misses,
            stale_hits,
            early_refreshes,
            shared_errors,
            undecodable,
            invalidations,
            unauthenticated,
        );
        let mut out = serializer.serialize_struct("Stats", fields.len())?;
        for (name, value) in fields {
            out.serialize_field(name, &value)?;
        }
        out.end()
    }
}

impl Counters {
    pub(crate) const fn new() -> Counters {
        Counters {
            local_hits: Counter::new(),
            shared_hits: Counter::new(),
            misses: Counter::new(),
            stale_hits: Counter::new(),
            early_refreshes: Counter::new(),
            shared_errors: Counter::new(),
            undecodable: Counter::new(),
            invalidations: Counter::new(),
            unauthenticated: Counter::new(),
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            local_hits: self.local_hits.get(),
            shared_hits: self.shared_hits.get(),
            misses: self.misses.get(),
            stale_hits: self.stale_hits.get(),
            early_refreshes: self.early_refreshes.get(),
            shared_errors: self.shared_errors.get(),
            undecodable: self.undecodable.get(),
            invalidations: self.invalidations.get(),
            unauthenticated: self.unauthenticated.get(),
        }
    }

    #[inline(always)]
    fn counter(&self, event: Event) -> &Counter {
        match event {
            Event::LocalHit => &self.local_hits,
            Event::SharedHit => &self.shared_hits,
            Event::Miss => &self.misses,
            Event::Stale => &self.stale_hits,
            Event::EarlyRefresh => &self.early_refreshes,
            Event::SharedError => &self.shared_errors,
            Event::Undecodable => &self.undecodable,
            Event::Unauthenticated => &self.unauthenticated,
        }
    }

    /// Count `event`.
    #[inline]
    pub(crate) fn note(&self, event: Event) {
        self.counter(event).add();
    }
}

/// Something a read-through call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    LocalHit,
    SharedHit,
    Miss,
    Stale,
    EarlyRefresh,
    SharedError,
    Undecodable,
    Unauthenticated,
}

/// What counts an invalidation of a key in its function's counters: set
/// by the memoized-function layer, which knows which function a key's head
/// belongs to (this layer does not).
static PER_FUNCTION: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Have `count` called with the key of every local copy the change feed
/// drops (`crate::memo` does, when its first function resolves).
pub(crate) fn on_invalidated(count: fn(&str)) {
    let _ = PER_FUNCTION.set(count);
}

/// The local copy of `key` (without the cache's prefix) was dropped
/// because the shared tier reported a change: count it for its function,
/// if it is a memoized function's.
pub(crate) fn invalidated(key: &str) {
    if let Some(count) = PER_FUNCTION.get() {
        count(key);
    }
}

/// One memoized function's counters in this process, and (feature
/// `metrics`) its handles in the `metrics` facade, registered once.
pub(crate) struct SiteStats {
    pub(crate) counters: Counters,
    /// The function's name (its keys' head without the version), for logs.
    pub(crate) name: Box<str>,
    #[cfg(feature = "metrics")]
    metrics: SiteMetrics,
}

#[cfg(feature = "metrics")]
struct SiteMetrics {
    local_hit: metrics::Counter,
    shared_hit: metrics::Counter,
    stale: metrics::Counter,
    miss: metrics::Counter,
    shared_errors: metrics::Counter,
    compute: metrics::Histogram,
}

impl SiteStats {
    pub(crate) fn new(name: &str) -> SiteStats {
        SiteStats {
            counters: Counters::new(),
            name: name.into(),
            #[cfg(feature = "metrics")]
            metrics: {
                let f = name.to_owned();
                let calls = |result: &'static str| metrics::counter!("cachefn_calls_total", "function" => f.clone(), "result" => result);
                SiteMetrics {
                    local_hit: calls("local_hit"),
                    shared_hit: calls("shared_hit"),
                    stale: calls("stale"),
                    miss: calls("miss"),
                    shared_errors: metrics::counter!("cachefn_shared_errors_total", "function" => f.clone()),
                    compute: metrics::histogram!("cachefn_compute_seconds", "function" => f),
                }
            },
        }
    }

    /// Count `event` for this function (and report it to `metrics`).
    #[inline]
    pub(crate) fn note(&self, event: Event) {
        self.note_at(event, stripe());
    }

    /// [`SiteStats::note`] on this thread's stripe, already looked up.
    #[inline(always)]
    pub(crate) fn note_at(&self, event: Event, stripe: usize) {
        self.counters.counter(event).add_at(stripe);
        #[cfg(feature = "metrics")]
        {
            let m = &self.metrics;
            match event {
                Event::LocalHit => m.local_hit.increment(1),
                Event::SharedHit => m.shared_hit.increment(1),
                Event::Stale => m.stale.increment(1),
                Event::Miss => m.miss.increment(1),
                Event::SharedError => m.shared_errors.increment(1),
                Event::EarlyRefresh | Event::Undecodable | Event::Unauthenticated => {}
            }
        }
    }

    /// The body ran for `took`.
    #[inline]
    pub(crate) fn computed(&self, took: std::time::Duration) {
        #[cfg(feature = "metrics")]
        self.metrics.compute.record(took.as_secs_f64());
        let _ = took;
    }
}
