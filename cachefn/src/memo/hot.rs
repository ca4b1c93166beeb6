//! Each thread's hot entries of one memoized function: the local hit's
//! path (issue 13).
//!
//! A memoized call first hashes its arguments' raw serde stream (see
//! `key::raw`), and looks that alias up in this table, which lives in the
//! thread's resolved state of the function (one thread-local access finds
//! both the function's cache and its hot entries). An entry holds the local
//! tier's slot (a [`Held`], charged to the tier's pin budget like a front
//! cache entry, so the memory that per-thread caches keep alive stays
//! bounded) and a typed pointer to the value inside it: a hit checks that
//! the slot is live, clones the value, and writes nothing shared. No key
//! text is written, no downcast made.
//!
//! Coherence is the slot's: a write, removal, eviction, clear or
//! invalidation of the key marks its slot dead, and the entry stops
//! serving at once. Entries are added by the key text's path after a local
//! hit there, and only for functions without freshness options (their hits
//! read the value's meta and the clock: they take the text's path).

use std::any::TypeId;
use std::marker::PhantomData;

use cachefn_backends::{clock, sweep_epoch, Held, Memory};

use crate::cache::Timed;

/// One hot entry in this many goes to the store instead, so that its
/// eviction policy still sees which entries are hot.
const TOUCH_EVERY: u32 = 128;
/// Misses that add no entry after the tier's pin budget refused one.
const BACKOFF: u32 = 64;
/// Entries of a table when it first holds one.
const FIRST_LEN: usize = 16;
/// The largest table (entries, [`WAYS`] per set).
const MAX_LEN: usize = 4096;
/// Entries per set: with fewer, a set that more keys map to than it has
/// ways misses on every read of a key cycle (two ways: 8% of 1,000 keys).
const WAYS: usize = 4;

struct Entry {
    alias: u128,
    /// The key's fingerprint, to touch the entry in the store now and then.
    fp: u128,
    held: Held,
    /// The value inside `held`'s slot, of the table's type.
    value: *const (),
}

/// One thread's hot entries of one memoized function (of one resolved
/// cache), [`WAYS`] per set, most recent first.
pub(super) struct Hot {
    entries: Vec<Option<Entry>>,
    /// The value type of every entry (a generic function's site may see
    /// several: the first one to add an entry owns the table).
    ty: Option<TypeId>,
    ticks: u32,
    /// Entries held (for growing).
    len: usize,
    /// The sweep epoch the table was last swept in.
    swept: u64,
    /// Misses left before the next try after the tier's pin budget refused
    /// an entry: while it is full (of other functions' or threads' hot
    /// entries) a miss must not pay for a store lookup and a refusal each
    /// time.
    backoff: u32,
    _not_send: PhantomData<*const ()>,
}

impl Hot {
    pub(super) const fn new() -> Hot {
        Hot {
            entries: Vec::new(),
            ty: None,
            ticks: 0,
            len: 0,
            swept: 0,
            backoff: 0,
            _not_send: PhantomData,
        }
    }

    #[inline(always)]
    fn set(&self, alias: u128) -> usize {
        (alias as usize) & (self.entries.len().wrapping_sub(1) & !(WAYS - 1))
    }

    /// The value of `alias`, if this table holds it and its slot is live.
    #[inline(always)]
    pub(super) fn get<T: Clone + 'static>(&mut self, alias: u128, local: &Memory) -> Option<T> {
        if self.ty != Some(TypeId::of::<T>()) {
            return None;
        }
        let set = self.set(alias);
        let way = self
            .entries
            .get(set..set + WAYS)?
            .iter()
            .flatten()
            .find(|e| e.alias == alias)?;
        if !way.held.is_live(clock::now_ms()) {
            return None;
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % TOUCH_EVERY == 0 {
            drop(local.get(way.fp));
        }
        // SAFETY: `value` points at the `T` inside the slot that `held`
        // keeps alive (an entry is made only from a `Timed<T>` of the
        // table's type, checked above), and a slot's value never changes.
        Some(unsafe { &*(way.value as *const T) }.clone())
    }

    /// Hold `fp`'s entry of `local` under `alias`, if it is a `Timed<T>`
    /// and the tier's budget has room.
    #[cold]
    pub(super) fn insert<T: 'static>(&mut self, alias: u128, fp: u128, local: &Memory) {
        let ty = TypeId::of::<T>();
        if *self.ty.get_or_insert(ty) != ty {
            return;
        }
        if self.backoff > 0 {
            self.backoff -= 1;
            return;
        }
        let now = clock::now_ms();
        let epoch = sweep_epoch();
        if epoch != self.swept {
            self.swept = epoch;
            self.retain(|e| e.held.is_live(now));
        }
        if self.entries.is_empty() {
            self.entries.resize_with(FIRST_LEN, || None);
        } else if self.len * 2 >= self.entries.len() && self.entries.len() < MAX_LEN {
            self.grow();
        }
        let set = self.set(alias);
        let ways = &mut self.entries[set..set + WAYS];
        // Make room first (giving back a charge): the budget may then have
        // room for the new entry. The least recent way goes when all are
        // taken.
        let mut freed = 0;
        for e in ways.iter_mut() {
            if e.as_ref()
                .is_some_and(|e| e.alias == alias || !e.held.is_live(now))
            {
                *e = None;
                freed += 1;
            }
        }
        if ways.iter().all(Option::is_some) {
            ways[WAYS - 1] = None;
            freed += 1;
        }
        self.len -= freed;
        let Some(held) = local.hold(fp) else {
            self.backoff = BACKOFF;
            return;
        };
        let Some(timed) = held.slot().value().as_any().downcast_ref::<Timed<T>>() else {
            return;
        };
        let value = &timed.value as *const T as *const ();
        let ways = &mut self.entries[set..set + WAYS];
        let free = ways.iter().position(Option::is_none).unwrap_or(WAYS - 1);
        ways[..=free].rotate_right(1);
        ways[0] = Some(Entry {
            alias,
            fp,
            held,
            value,
        });
        self.len += 1;
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        for e in &mut self.entries {
            if e.as_ref().is_some_and(|e| !keep(e)) {
                *e = None;
                self.len -= 1;
            }
        }
    }

    /// Four times the sets, entries kept where they fit.
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.entries);
        self.entries
            .resize_with((old.len() * 4).min(MAX_LEN), || None);
        self.len = 0;
        for e in old.into_iter().flatten() {
            let set = self.set(e.alias);
            if let Some(way) = self.entries[set..set + WAYS]
                .iter_mut()
                .find(|w| w.is_none())
            {
                *way = Some(e);
                self.len += 1;
            }
        }
    }
}
