//! Each thread's hot entries of one memoized function: the local hit's
//! path.
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
//! Layout: what a hit reads of a way (the alias, the slot's [`SlotHead`]
//! and the value's address) is 32 bytes, and a set of [`WAYS`] ways is two
//! cache lines, aligned: a hit on one of the two most recent ways of its set
//! reads one line of the table. What keeps those addresses valid (the
//! [`Held`]) and the key's fingerprint live in a parallel array that only
//! misses and the occasional touch read.
//!
//! Each alias has two sets (from its low and its high 64 bits), and an
//! entry goes to the first unless only the second has a vacant way: a hit
//! reads the second set only when the first does not hold its alias. With
//! one set only, the keys of a set that more keys map to than it has ways
//! would replace each other in turn and every read of them miss (up to one
//! in twenty reads of a 1,000-key working set, depending on which sets the
//! per-process secret crowds).
//!
//! An alias is an address, not an identity. A stream of at most 15 bytes
//! has an injective alias (see `raw_short`: no two streams of one function
//! share one), so its way needs no other check. A longer stream's alias is
//! a keyed hash: its way keeps the whole stream (with the anchor, off the
//! lines a short hit reads) and serves only a caller whose stream equals
//! it. A way's kind is the low bit of its `life` pointer (a [`SlotHead`] is
//! 8-aligned), so a short lookup never matches a long way or the reverse.
//!
//! Coherence is the slot's: a write, removal, eviction, clear or
//! invalidation of the key marks its slot dead, and the entry stops
//! serving at once. Entries are added by the key text's path after a local
//! hit there, and only for functions without freshness options (their hits
//! read the value's meta and the clock: they take the text's path).

use std::any::TypeId;
use std::marker::PhantomData;

use cachefn_backends::{clock, sweep_epoch, Held, KeyText, Memory, SlotHead};

use crate::cache::Timed;

/// One hot entry in this many goes to the store instead, so that its
/// eviction policy still sees which entries are hot.
const TOUCH_EVERY: u32 = 128;
/// Misses that add no entry after the tier's pin budget refused one.
const BACKOFF: u32 = 64;
/// Sets of a table when it first holds an entry.
const FIRST_SETS: usize = 4;
/// The most sets of a table ([`WAYS`] entries each).
const MAX_SETS: usize = 1024;
/// Buffers of vacated long ways a table keeps for new ones.
const SPARE_STREAMS: usize = 2 * WAYS;
/// Entries per set: with fewer, a set that more keys map to than it has
/// ways misses on every read of a key cycle (two ways: 8% of 1,000 keys).
const WAYS: usize = 4;

/// The liveness a vacant way points at: dead, so a vacant way never
/// serves, whatever alias is looked up (no separate "occupied" test).
static VACANT: SlotHead = SlotHead::dead();

/// What a hit reads of one entry.
#[derive(Clone, Copy)]
struct Way {
    alias: u128,
    /// The head of the held slot (or [`VACANT`]), valid while the way's
    /// [`Anchor`] holds the slot; its low bit ([`LONG`]) set when the way is
    /// a long stream's, whose [`Anchor::stream`] a hit must compare.
    life: *const SlotHead,
    /// The value inside the held slot, of the table's type.
    value: *const (),
}

const EMPTY: Way = Way {
    alias: 0,
    life: &VACANT,
    value: std::ptr::null(),
};

/// [`WAYS`] ways, most recent first, in two aligned cache lines.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Set {
    ways: [Way; WAYS],
}

const EMPTY_SET: Set = Set {
    ways: [EMPTY; WAYS],
};

/// The tag of a long stream's way, in the low bit of [`Way::life`].
const LONG: usize = 1;
const _: () = assert!(std::mem::align_of::<SlotHead>() > LONG);

/// What keeps a way's addresses valid, its key's fingerprint (to touch the
/// entry in the store now and then), and a long stream's whole stream.
struct Anchor {
    held: Held,
    fp: u128,
    /// The raw stream the way was made for, when it has more than 15 bytes.
    stream: Option<Vec<u8>>,
}

/// One thread's hot entries of one memoized function (of one resolved
/// cache).
pub(super) struct Hot {
    sets: Vec<Set>,
    /// `anchors[s][w]` anchors `sets[s].ways[w]` (`None`: the way is vacant).
    anchors: Vec<[Option<Anchor>; WAYS]>,
    /// The value type of every entry (a generic function's site may see
    /// several: the first one to add an entry owns the table).
    ty: Option<TypeId>,
    ticks: u32,
    /// Entries held (for growing).
    len: usize,
    /// The sweep epoch the table was last swept in.
    swept: u64,
    /// Buffers of vacated long ways, for [`Hot::keep_stream`].
    spare: Vec<Vec<u8>>,
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
            sets: Vec::new(),
            anchors: Vec::new(),
            ty: None,
            ticks: 0,
            len: 0,
            swept: 0,
            spare: Vec::new(),
            backoff: 0,
            _not_send: PhantomData,
        }
    }

    /// The two sets an alias may be in: from its low and its high half
    /// (a table without sets gives indices past its end).
    #[inline(always)]
    fn sets_of(&self, alias: u128) -> (usize, usize) {
        let mask = self.sets.len().wrapping_sub(1);
        ((alias as usize) & mask, ((alias >> 64) as usize) & mask)
    }

    /// Where `alias` is: its set and way.
    #[inline(always)]
    fn find(&self, alias: u128) -> Option<(usize, usize)> {
        let (first, second) = self.sets_of(alias);
        let in_set = |s: usize| {
            let set = self.sets.get(s)?;
            set.ways
                .iter()
                .position(|w| w.alias == alias)
                .map(|w| (s, w))
        };
        in_set(first).or_else(|| in_set(second))
    }

    /// The value of `alias` (and `stream`, see [`Hot::get_into`]), if this
    /// table holds it and its slot is live.
    #[inline]
    pub(super) fn get<T: Clone + 'static>(
        &mut self,
        alias: u128,
        stream: &[u8],
        local: &Memory,
    ) -> Option<T> {
        let mut out = std::mem::MaybeUninit::uninit();
        // SAFETY: `get_into` wrote `out` when it returns true.
        self.get_into(alias, stream, local, &mut out)
            .then(|| unsafe { out.assume_init() })
    }

    /// [`Hot::get`], the clone written into `out` (`true`: written). The
    /// clone goes straight where the caller wants it: returned in an
    /// `Option`, a `String` would be moved twice more with 16-byte copies
    /// of its 8-byte fields, each waiting for the stores before it to reach
    /// the cache (a store-forwarding stall).
    ///
    /// `stream` is empty for a stream of at most 15 bytes (its alias is
    /// injective) and the whole raw stream otherwise: a long way serves only
    /// the stream it was made for.
    #[inline(always)]
    pub(super) fn get_into<T: Clone + 'static>(
        &mut self,
        alias: u128,
        stream: &[u8],
        local: &Memory,
        out: &mut std::mem::MaybeUninit<T>,
    ) -> bool {
        if self.ty != Some(TypeId::of::<T>()) {
            return false;
        }
        let Some((s, w)) = self.find(alias) else {
            return false;
        };
        let way = self.sets[s].ways[w];
        let long = way.life.addr() & LONG;
        if long != usize::from(!stream.is_empty()) || (long != 0 && !self.same_stream(s, w, stream))
        {
            return false;
        }
        let life = way.life.map_addr(|a| a & !LONG);
        // SAFETY: `life` is `VACANT` or the head of the slot that
        // `anchors[s][w]` holds (they change together; the tag bit is off).
        if !unsafe { &*life }.is_live(clock::now_ms()) {
            return false;
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(TOUCH_EVERY) {
            self.touch(s, w, local);
        }
        // SAFETY: the way is live, so not vacant: `value` points at the `T`
        // inside the slot that `anchors[s][w]` keeps alive (an entry is made
        // only from a `Timed<T>` of the table's type, checked above), and a
        // slot's value never changes.
        out.write(unsafe { &*(way.value as *const T) }.clone());
        true
    }

    /// Whether `sets[s].ways[w]` was made for exactly `stream`.
    #[inline(never)]
    fn same_stream(&self, s: usize, w: usize, stream: &[u8]) -> bool {
        self.anchors[s][w]
            .as_ref()
            .and_then(|o| o.stream.as_deref())
            .is_some_and(|own| own == stream)
    }

    /// Let the store's eviction policy see that `sets[s].ways[w]` is hot.
    #[cold]
    #[inline(never)]
    fn touch(&self, s: usize, w: usize, local: &Memory) {
        if let Some(o) = &self.anchors[s][w] {
            local.touch(o.fp);
        }
    }

    /// Vacate `sets[s].ways[w]` (giving back its charge).
    fn vacate(&mut self, s: usize, w: usize) {
        if let Some(owner) = self.anchors[s][w].take() {
            self.sets[s].ways[w] = EMPTY;
            self.len -= 1;
            if let (Some(stream), true) = (owner.stream, self.spare.len() < SPARE_STREAMS) {
                self.spare.push(stream);
            }
        }
    }

    /// A copy of `stream` for a new long way, in a vacated way's buffer
    /// when one is big enough: a set that more keys map to than it has
    /// ways keeps replacing its entries, and must not allocate each time.
    fn keep_stream(&mut self, stream: &[u8]) -> Vec<u8> {
        let mut kept = match self.spare.iter().position(|b| b.capacity() >= stream.len()) {
            Some(i) => self.spare.swap_remove(i),
            // A few sizes only (64, 128, 256: a raw stream has at most
            // `RAW_MAX` bytes), so that buffers fit the streams that follow.
            None => Vec::with_capacity(stream.len().next_power_of_two().max(64)),
        };
        kept.clear();
        kept.extend_from_slice(stream);
        kept
    }

    /// Hold `key`'s entry of `local` (under `fp`) under `alias` and
    /// `stream` (empty for a short stream, see [`Hot::get_into`]), if it is
    /// a `Timed<T>` and the tier's budget has room.
    #[cold]
    pub(super) fn insert<T: 'static, K: KeyText + ?Sized>(
        &mut self,
        alias: u128,
        stream: &[u8],
        fp: u128,
        key: &K,
        local: &Memory,
    ) {
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
            self.retain(|o| o.held.is_live(now));
        }
        if self.sets.is_empty() {
            self.spare = Vec::with_capacity(SPARE_STREAMS);
            self.sets = vec![EMPTY_SET; FIRST_SETS];
            self.anchors = (0..FIRST_SETS).map(|_| Default::default()).collect();
        } else if self.len * 2 >= self.sets.len() * WAYS && self.sets.len() < MAX_SETS {
            self.grow();
        }
        // Make room first (giving back a charge): the budget may then have
        // room for the new entry. The entry goes to whichever of its two
        // sets has a vacant way (so that a set which more keys map to than
        // it has ways overflows into their other sets, rather than make
        // them take turns and all miss); when neither has, the least recent
        // way of the first goes.
        let (first, second) = self.sets_of(alias);
        for s in [first, second] {
            for w in 0..WAYS {
                let stale = self.anchors[s][w]
                    .as_ref()
                    .is_some_and(|o| self.sets[s].ways[w].alias == alias || !o.held.is_live(now));
                if stale {
                    self.vacate(s, w);
                }
            }
        }
        let s = match self.anchors[first].iter().any(Option::is_none) {
            false if self.anchors[second].iter().any(Option::is_none) => second,
            _ => first,
        };
        if self.anchors[s].iter().all(Option::is_some) {
            self.vacate(s, WAYS - 1);
        }
        let Some(held) = local.hold(fp, key) else {
            self.backoff = BACKOFF;
            return;
        };
        let Some(timed) = held.slot().value().as_any().downcast_ref::<Timed<T>>() else {
            return;
        };
        let long = !stream.is_empty();
        let way = Way {
            alias,
            life: (held.slot().head() as *const SlotHead)
                .map_addr(|a| a | (usize::from(long) * LONG)),
            value: &timed.value as *const T as *const (),
        };
        let free = self.anchors[s]
            .iter()
            .position(Option::is_none)
            .unwrap_or(WAYS - 1);
        let stream = long.then(|| self.keep_stream(stream));
        self.sets[s].ways[..=free].rotate_right(1);
        self.anchors[s][..=free].rotate_right(1);
        self.sets[s].ways[0] = way;
        self.anchors[s][0] = Some(Anchor { held, fp, stream });
        self.len += 1;
    }

    fn retain(&mut self, keep: impl Fn(&Anchor) -> bool) {
        for s in 0..self.sets.len() {
            for w in 0..WAYS {
                if self.anchors[s][w].as_ref().is_some_and(|o| !keep(o)) {
                    self.vacate(s, w);
                }
            }
        }
    }

    /// Four times the sets, entries kept where they fit.
    fn grow(&mut self) {
        let n = (self.sets.len() * 4).min(MAX_SETS);
        let old_sets = std::mem::replace(&mut self.sets, vec![EMPTY_SET; n]);
        let old_owners = std::mem::replace(
            &mut self.anchors,
            (0..n).map(|_| Default::default()).collect(),
        );
        self.len = 0;
        for (set, anchors) in old_sets.iter().zip(old_owners) {
            for (way, owner) in set.ways.iter().zip(anchors) {
                let Some(owner) = owner else { continue };
                let (first, second) = self.sets_of(way.alias);
                let vacant = [first, second].into_iter().find_map(|s| {
                    let w = self.anchors[s].iter().position(Option::is_none)?;
                    Some((s, w))
                });
                if let Some((s, w)) = vacant {
                    self.sets[s].ways[w] = *way;
                    self.anchors[s][w] = Some(owner);
                    self.len += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::Meta;

    fn key(fp: u128) -> String {
        format!("k{fp}")
    }

    fn tier_with(keys: impl IntoIterator<Item = u128>) -> Memory {
        let tier = Memory::with_capacity(800);
        for fp in keys {
            let value = Timed {
                value: format!("v{fp}"),
                meta: Meta::ALWAYS,
            };
            tier.insert(fp, &format!("k{fp}"), value, Duration::from_secs(60));
        }
        tier
    }

    /// A vacant way (alias 0, the `VACANT` head) never serves, not even
    /// the alias 0; a held entry serves until its slot dies.
    #[test]
    fn vacant_ways_never_serve_and_dead_slots_stop_serving() {
        let tier = tier_with([1, 2]);
        let mut hot = Hot::new();
        assert_eq!(hot.get::<String>(0, &[], &tier), None);
        hot.insert::<String, _>(0x55, &[], 1, &*key(1), &tier);
        hot.insert::<String, _>(0x66, &[], 2, &*key(2), &tier);
        assert_eq!(hot.get::<String>(0, &[], &tier), None);
        assert_eq!(hot.get::<String>(0x55, &[], &tier).as_deref(), Some("v1"));
        assert_eq!(hot.get::<String>(0x66, &[], &tier).as_deref(), Some("v2"));
        // Another type never reads the table's values.
        assert_eq!(hot.get::<u64>(0x55, &[], &tier), None);
        tier.remove(1, "k1");
        assert_eq!(hot.get::<String>(0x55, &[], &tier), None);
        assert_eq!(hot.get::<String>(0x66, &[], &tier).as_deref(), Some("v2"));
    }

    /// Entries survive growth, and ways and their holds stay paired
    /// (each alias reads its own value) through rotations and evictions.
    #[test]
    fn ways_and_holds_stay_paired_through_growth_and_eviction() {
        let tier = tier_with(1..=90);
        let mut hot = Hot::new();
        for fp in 1..=90u128 {
            // Aliases that crowd a few sets, to force rotations and
            // evictions of the least recent way.
            hot.insert::<String, _>(fp << 12 | (fp % 3), &[], fp, &*key(fp), &tier);
        }
        let mut served = 0;
        for fp in 1..=90u128 {
            if let Some(v) = hot.get::<String>(fp << 12 | (fp % 3), &[], &tier) {
                assert_eq!(v, format!("v{fp}"));
                served += 1;
            }
        }
        assert!(served >= 8, "{served}");
        assert_eq!(tier.front_held().0, hot.len as u64);
    }

    #[test]
    fn a_set_is_two_aligned_lines() {
        assert_eq!(std::mem::size_of::<Way>(), 32);
        assert_eq!(std::mem::size_of::<Set>(), 128);
        assert_eq!(std::mem::align_of::<Set>(), 64);
    }

    /// A set that more keys map to than it has ways overflows into each
    /// key's second set (from the alias's high half), so that all of them
    /// are served, rather than the last ones evicting the first in turn.
    #[test]
    fn a_full_set_overflows_into_the_second_choice() {
        let tier = tier_with(1..=6);
        let mut hot = Hot::new();
        // Six aliases whose first set is 0 and whose second sets differ.
        let alias = |fp: u128| ((fp % 3 + 1) << 64) | (fp << 8);
        for fp in 1..=6u128 {
            hot.insert::<String, _>(alias(fp), &[], fp, &*key(fp), &tier);
        }
        assert_eq!(hot.sets.len(), FIRST_SETS, "no growth: six of sixteen ways");
        for fp in 1..=6u128 {
            assert_eq!(
                hot.get::<String>(alias(fp), &[], &tier),
                Some(format!("v{fp}")),
                "key {fp}"
            );
        }
    }

    /// A long stream's way serves only that stream: another stream with
    /// the same alias (a collision) is a miss, and so is a short lookup
    /// of a long way's alias, and the reverse.
    #[test]
    fn long_ways_serve_only_their_own_stream() {
        let tier = tier_with([1, 2]);
        let mut hot = Hot::new();
        let (a, b) = ([7u8; 40], [8u8; 40]);
        hot.insert::<String, _>(0x77, &a, 1, &*key(1), &tier);
        assert_eq!(hot.get::<String>(0x77, &a, &tier).as_deref(), Some("v1"));
        assert_eq!(hot.get::<String>(0x77, &b, &tier), None);
        assert_eq!(hot.get::<String>(0x77, &a[..39], &tier), None);
        assert_eq!(hot.get::<String>(0x77, &[], &tier), None);
        hot.insert::<String, _>(0x88, &[], 2, &*key(2), &tier);
        assert_eq!(hot.get::<String>(0x88, &a, &tier), None);
        assert_eq!(hot.get::<String>(0x88, &[], &tier).as_deref(), Some("v2"));
        // A way is made only for the key it was asked for.
        let mut other = Hot::new();
        other.insert::<String, _>(0x99, &[], 2, "k1", &tier);
        assert_eq!(other.get::<String>(0x99, &[], &tier), None);
    }
}
