//! Counters of what a cache did.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 8;

/// One counter split over cache lines, so that threads counting hits at the
/// same time do not contend on one line.
#[derive(Default)]
pub(crate) struct Counter {
    stripes: [Padded; STRIPES],
}

#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn stripe() -> usize {
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
    /// Count one. A load and a store on this thread's own stripe, not a
    /// locked read-modify-write: threads have their own stripes (up to
    /// eight), so counts are exact until more threads share a stripe, and
    /// then may miss an increment now and then. Counters are statistics.
    #[inline]
    pub(crate) fn add(&self) {
        let c = &self.stripes[stripe()].0;
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
    /// Count `n` (rare events: a plain atomic add).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
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

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) local_hits: Counter,
    pub(crate) shared_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) shared_errors: Counter,
    pub(crate) undecodable: Counter,
    pub(crate) invalidations: Counter,
}

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// ```
/// let cache = cachefn::Cache::memory();
/// let _ = cache.get::<u32>("absent");
/// assert_eq!(cache.stats().misses, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads served by the local tier.
    pub local_hits: u64,
    /// Reads served by the shared tier.
    pub shared_hits: u64,
    /// Reads that found nothing (a memoized body ran, or `get` returned `None`).
    pub misses: u64,
    /// Shared-tier operations that failed (server down, timeout).
    pub shared_errors: u64,
    /// Values found but not decodable as the wanted type (another type,
    /// another version, foreign or corrupt bytes): counted as misses too.
    pub undecodable: u64,
    /// Local entries dropped because the shared tier reported a change
    /// (another process, or any client, wrote or deleted the key), or
    /// because the invalidation feed was lost and the local tier emptied.
    pub invalidations: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            local_hits: self.local_hits.get(),
            shared_hits: self.shared_hits.get(),
            misses: self.misses.get(),
            shared_errors: self.shared_errors.get(),
            undecodable: self.undecodable.get(),
            invalidations: self.invalidations.get(),
        }
    }
}
