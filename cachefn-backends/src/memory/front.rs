//! Each thread's front cache of recently read slots, and the per-tier budget
//! that bounds what the front caches of all threads keep alive together.
//!
//! A hit in the front cache reads the slot's `dead` flag and expiry and
//! writes no memory shared with other threads (no lock word, no reference
//! count), so hits on several cores do not contend. But a front entry holds
//! its slot: a slot the tier evicted stays in memory until every front cache
//! that holds it lets go. Two rules bound that memory, whatever the number of
//! threads and whether they ever call again:
//!
//! - **A pin budget per tier.** A slot enters front caches only if the tier's
//!   [`PinBudget`] has room for its weight; the first front entry holding a
//!   slot charges it, the last one to let go releases it (a slot held by many
//!   threads is charged once). So the slots held by front caches, live or
//!   dead, weigh at most the budget: one [`FRONT_SHARE`]th of the tier's bound.
//! - **Sweeps.** When the budget refuses a slot, a process-wide sweep epoch
//!   moves on (at most every [`SWEEP_EVERY_MS`]), and every thread drops its
//!   entries for dead or expired slots, giving their charges back, the next
//!   time it fills its front cache (a thread that reads at all does so at
//!   least once every [`PASS_THROUGH_EVERY`] reads). Threads that never
//!   call again keep theirs, within the budget.
//!
//! The hit path is what it was without the budget: it reads the front entry
//! and the slot, and writes nothing shared.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Slot;

/// Sets (of [`WAYS`] entries) in each thread's front cache.
const FRONT_SETS: usize = 1024;
const WAYS: usize = 4;
/// One front-cache hit in this many goes to the shared store instead, so
/// that its eviction policy still sees which entries are hot (and the
/// thread sees a sweep request).
const PASS_THROUGH_EVERY: u32 = 128;
/// The front caches of all threads together keep at most one
/// `FRONT_SHARE`th of a tier's bound (entries or bytes) alive.
pub(crate) const FRONT_SHARE: u64 = 8;
/// In a byte-bounded tier, a slot heavier than this share of the pin budget
/// never enters a front cache: a few large values must not crowd out the
/// small hot ones, and a hit on a large value is dominated by its clone.
const LARGEST_SLOT_SHARE: u64 = 64;
/// Minimum time between two sweep requests.
const SWEEP_EVERY_MS: u64 = 20;

/// What the front caches of all threads may keep alive of one tier, in the
/// tier's weight unit (entries or bytes). Aligned to a cache line: front
/// fills write it, hits never read it.
#[repr(align(64))]
pub(super) struct PinBudget {
    pinned: AtomicU64,
    limit: u64,
    largest: u64,
}

impl PinBudget {
    /// The budget of a tier bounded to `bound` (entries, or bytes when
    /// `by_bytes`).
    pub(super) fn for_bound(bound: u64, by_bytes: bool) -> Arc<PinBudget> {
        let limit = (bound / FRONT_SHARE).max(1);
        let largest = if by_bytes {
            limit / LARGEST_SLOT_SHARE
        } else {
            limit
        };
        Arc::new(PinBudget {
            pinned: AtomicU64::new(0),
            limit,
            largest,
        })
    }

    /// The weight charged now: of the distinct slots front caches hold.
    pub(super) fn pinned(&self) -> u64 {
        self.pinned.load(Ordering::Acquire)
    }

    /// The most the front caches may hold.
    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    /// Charge `weight` if that keeps the total within the limit (so the
    /// total never exceeds it, even for a moment).
    fn try_charge(&self, weight: u64) -> bool {
        self.pinned
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pinned| {
                pinned
                    .checked_add(weight)
                    .filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, weight: u64) {
        self.pinned.fetch_sub(weight, Ordering::AcqRel);
    }

    /// Take one front cache's hold on `slot`: the first hold charges the
    /// slot's weight, further ones are free. `false` (no hold taken) when
    /// the budget has no room for it.
    ///
    /// Invariant: `pinned` is at least the weight of the slots whose
    /// `fronts` count is not zero, because a hold charges before it makes
    /// the count leave zero and releases after it made the count reach zero.
    fn hold(&self, slot: &Slot) -> bool {
        let mut holders = slot.head.fronts.load(Ordering::Acquire);
        loop {
            if holders == 0 {
                if !self.try_charge(slot.weight) {
                    return false;
                }
                match slot
                    .head
                    .fronts
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return true,
                    Err(now) => {
                        // Another thread took the first hold meanwhile.
                        self.release(slot.weight);
                        holders = now;
                    }
                }
            } else {
                match slot.head.fronts.compare_exchange_weak(
                    holders,
                    holders + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return true,
                    Err(now) => holders = now,
                }
            }
        }
    }
}

/// A hold on one slot of a tier, charged to the tier's pin budget (the
/// first hold on a slot charges its weight, the last one to let go releases
/// it): what a front entry is, and what a caller's own per-thread cache of
/// hot entries keeps (see [`Memory::hold`](super::Memory::hold), whose
/// example takes one).
pub struct Held {
    slot: Arc<Slot>,
    /// The tier's budget; it also identifies the tier (a budget lives as
    /// long as a tier or a hold refers to it, so no other tier's budget
    /// can have its address meanwhile).
    budget: Arc<PinBudget>,
}

impl Held {
    /// A hold on `slot` of `budget`'s tier, if the budget has room for it
    /// (else a sweep of the front caches is requested).
    pub(super) fn take(budget: &Arc<PinBudget>, slot: Arc<Slot>, now: u64) -> Option<Held> {
        if slot.weight > budget.largest {
            return None;
        }
        if !budget.hold(&slot) {
            request_sweep(now);
            return None;
        }
        Some(Held {
            slot,
            budget: budget.clone(),
        })
    }

    /// The held slot, dead or alive.
    #[inline]
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// Whether the tier still holds the slot and it has not expired at
    /// `now` ([`crate::clock::now_ms`]): a hold on a slot that is not live
    /// must not serve it.
    #[inline(always)]
    pub fn is_live(&self, now: u64) -> bool {
        self.slot.is_live(now)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.slot.head.fronts.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.budget.release(self.slot.weight);
        }
    }
}

/// The sweep epoch: when it moves on, per-thread caches of held slots drop
/// their entries for dead or expired slots the next time they add one. It
/// moves on when a tier's pin budget refuses a hold (at most every 20 ms).
///
/// ```
/// let seen = cachefn::backends::sweep_epoch();
/// // ... later, before adding an entry to a per-thread cache:
/// if cachefn::backends::sweep_epoch() != seen {
///     // drop the entries whose slots are no longer live
/// }
/// ```
pub fn sweep_epoch() -> u64 {
    SWEEP_EPOCH.load(Ordering::Acquire)
}

/// One front entry: a held slot of the tier whose budget this is.
struct FrontEntry {
    fp: u128,
    held: Held,
}

impl FrontEntry {
    #[inline]
    fn is(&self, budget: &Arc<PinBudget>, fp: u128) -> bool {
        self.fp == fp && Arc::ptr_eq(&self.held.budget, budget)
    }
}

/// A small per-thread cache of recently read slots, in front of the shared
/// store (four-way set associative, most recent way first).
struct Front {
    entries: Vec<Option<FrontEntry>>,
    ticks: u32,
    /// The sweep epoch this front cache was last swept in.
    swept: u64,
}

impl Front {
    /// Drop the entries of dead or expired slots (of every tier).
    fn sweep(&mut self, now: u64) {
        for e in &mut self.entries {
            if e.as_ref().is_some_and(|e| !e.held.is_live(now)) {
                *e = None;
            }
        }
    }
}

thread_local! {
    static FRONT: RefCell<Front> = const {
        RefCell::new(Front { entries: Vec::new(), ticks: 0, swept: 0 })
    };
}

/// Moved on to ask every thread to sweep its front cache.
static SWEEP_EPOCH: AtomicU64 = AtomicU64::new(0);
/// When [`SWEEP_EPOCH`] last moved ([`crate::clock::now_ms`]).
static LAST_SWEEP_MS: AtomicU64 = AtomicU64::new(0);

/// Ask every thread to sweep its front cache when it next fills it (at most
/// once per [`SWEEP_EVERY_MS`]).
pub(super) fn request_sweep(now: u64) {
    let last = LAST_SWEEP_MS.load(Ordering::Relaxed);
    if now >= last.saturating_add(SWEEP_EVERY_MS)
        && LAST_SWEEP_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        SWEEP_EPOCH.fetch_add(1, Ordering::Release);
    }
}

#[inline]
fn front_set(fp: u128) -> usize {
    ((fp >> 64) as usize % FRONT_SETS) * WAYS
}

/// This thread's front entry of `budget`'s tier under `fp`: `f` run on its
/// slot if it is live. `Ok(None)` or `Err` (and `f` left in place) when there is none,
/// when it is dead or expired (the entry is dropped), or on the one hit in
/// [`PASS_THROUGH_EVERY`] that must go to the store.
#[inline(always)]
pub(super) fn read<R, F: FnOnce(&Slot) -> R>(
    budget: &Arc<PinBudget>,
    fp: u128,
    now: u64,
    f: &mut Option<F>,
) -> Result<Option<R>, std::thread::AccessError> {
    // `try_with`: during thread teardown the front cache may be gone
    // (`Err`); the store still answers.
    FRONT.try_with(|front| {
        let mut front = front.try_borrow_mut().ok()?;
        front.ticks = front.ticks.wrapping_add(1);
        if front.ticks % PASS_THROUGH_EVERY == 0 || front.entries.is_empty() {
            return None;
        }
        let set = front_set(fp);
        for way in set..set + WAYS {
            if let Some(e) = &front.entries[way] {
                if e.is(budget, fp) {
                    if !e.held.is_live(now) {
                        front.entries[way] = None;
                        return None;
                    }
                    let f = f.take()?;
                    return Some(f(&e.held.slot));
                }
            }
        }
        None
    })
}

/// Put `slot` (just read from `budget`'s tier under `fp`) in this thread's
/// front cache, if the budget has room for it.
pub(super) fn remember(budget: &Arc<PinBudget>, fp: u128, slot: Arc<Slot>, now: u64) {
    let _ = FRONT.try_with(|front| {
        let Ok(mut front) = front.try_borrow_mut() else {
            return;
        };
        if front.entries.is_empty() {
            front.entries.resize_with(FRONT_SETS * WAYS, || None);
        }
        let epoch = SWEEP_EPOCH.load(Ordering::Acquire);
        if epoch != front.swept {
            front.swept = epoch;
            front.sweep(now);
        }
        let set = front_set(fp);
        let ways = &mut front.entries[set..set + WAYS];
        // Already held (a pass-through read of a front-cache hit): done.
        if ways
            .iter()
            .flatten()
            .any(|held| held.is(budget, fp) && Arc::ptr_eq(&held.held.slot, &slot))
        {
            return;
        }
        // Drop this set's dead entries, and an older copy of this key.
        for e in ways.iter_mut() {
            if e.as_ref()
                .is_some_and(|held| held.is(budget, fp) || !held.held.is_live(now))
            {
                *e = None;
            }
        }
        if slot.weight > budget.largest {
            return;
        }
        // The least recent way makes room (giving back its charge) even when
        // the budget then refuses this slot: a thread that moves on to other
        // keys lets go of the old ones.
        if ways.iter().all(Option::is_some) {
            ways[WAYS - 1] = None;
        }
        let Some(held) = Held::take(budget, slot, now) else {
            return;
        };
        let free = ways.iter().position(Option::is_none).unwrap_or(WAYS - 1);
        ways[..=free].rotate_right(1);
        ways[0] = Some(FrontEntry { fp, held });
    });
}
