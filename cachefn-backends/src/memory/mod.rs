//! The bounded, typed, in-process tier.

mod front;
mod store;

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sync::Mutex;

use crate::clock;
use crate::Error;

use front::PinBudget;
pub use front::{sweep_epoch, Held};
use store::Store;

/// A value held by [`Memory`]: typed, so that a hit clones a value instead of
/// decoding bytes.
///
/// The cachefn runtime provides the implementations (a typed value, or bytes
/// written through the low-level API); a user of cachefn never implements it.
pub trait LocalValue: Any + Send + Sync {
    /// The value, for a downcast to its concrete type.
    fn as_any(&self) -> &dyn Any;
    /// The value as the cache's codec stores it in a byte-level tier
    /// (header and payload), for a read that wants bytes or another type.
    fn encode(&self) -> Result<Vec<u8>, Error>;
    /// About how many bytes of heap memory the value owns, beyond its own
    /// inline size (which the tier counts itself): the buffers of its
    /// strings, vectors and maps, their allocator overhead included. A
    /// byte-bounded [`Memory`] weighs entries with it, so an estimate that
    /// errs high keeps the bound; one that errs low breaks it.
    fn size_hint(&self) -> usize;
}

/// The full key of a lookup in a [`Memory`] tier. Entries are addressed by
/// a fingerprint, and a fingerprint is an address, not an identity: a
/// lookup serves an entry only when the key it was stored under is this
/// key, so that two keys whose fingerprints collide (by chance, or chosen
/// by whoever picks the arguments) never get each other's values.
///
/// Implemented for `str`; the cachefn runtime implements it for its key
/// builder, which compares without making a string.
///
/// ```
/// use cachefn_backends::KeyText;
///
/// assert!("user:42".is_key("user:42"));
/// assert!(!"user:42".is_key("user:43"));
/// ```
pub trait KeyText {
    /// Whether `stored`, the key an entry was stored under, is this key.
    fn is_key(&self, stored: &str) -> bool;
}

impl KeyText for str {
    #[inline]
    fn is_key(&self, stored: &str) -> bool {
        self == stored
    }
}

/// One entry of a [`Memory`] tier: the key it was stored under, when it
/// expires, and the value.
///
/// The slot is aligned to a cache line, so that the `Arc` reference counts in
/// front of it (which change when a slot is shared or released) never share
/// a line with what hits on other threads read: the expiry, the `dead` flag
/// and the value, which is stored inline (one allocation per entry).
#[repr(C, align(64))]
pub struct Slot<V: ?Sized = dyn LocalValue> {
    head: SlotHead,
    weight: u64,
    key: Box<str>,
    value: V,
}

/// What tells whether a [`Slot`] may still be served: its expiry and
/// whether the tier still holds it. A sized part at the slot's start, so
/// that a per-thread cache can keep a thin pointer to it next to its key
/// (see [`Slot::head`]) and check a hit without a fat pointer or a second
/// cache line.
///
/// ```
/// use cachefn::backends::{clock, SlotHead};
///
/// // A head that never serves: a vacant entry of a per-thread cache can
/// // point at it instead of being tested for vacancy.
/// static VACANT: SlotHead = SlotHead::dead();
/// assert!(!VACANT.is_live(clock::now_ms()));
/// ```
#[repr(C)]
pub struct SlotHead {
    expires_at: u64,
    /// Set once the tier no longer holds this slot (replaced, removed,
    /// evicted, cleared): threads' front caches then stop serving it.
    dead: AtomicBool,
    /// How many threads' front caches hold this slot (see `front`).
    fronts: AtomicU32,
}

impl SlotHead {
    /// The head of no slot: never live (for a `static`: see the example
    /// on [`SlotHead`]).
    pub const fn dead() -> SlotHead {
        SlotHead {
            expires_at: 0,
            dead: AtomicBool::new(true),
            fronts: AtomicU32::new(0),
        }
    }

    /// Whether the tier still holds the slot and it has not expired at
    /// `now` ([`clock::now_ms`]).
    #[inline(always)]
    pub fn is_live(&self, now: u64) -> bool {
        !self.dead.load(Ordering::Acquire) && now < self.expires_at
    }
}

impl Slot {
    /// The key the entry was stored under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The stored value.
    pub fn value(&self) -> &dyn LocalValue {
        &self.value
    }

    /// How long the entry has left to live at `now` ([`clock::now_ms`]);
    /// `None` when it never expires.
    pub fn remaining(&self, now: u64) -> Option<Duration> {
        (self.head.expires_at != u64::MAX)
            .then(|| Duration::from_millis(self.head.expires_at.saturating_sub(now)))
    }

    /// The slot's expiry and liveness, at its start (see [`SlotHead`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::backends::{clock, Error, LocalValue, Memory};
    ///
    /// struct Page(Vec<u8>);
    /// impl LocalValue for Page {
    ///     fn as_any(&self) -> &dyn std::any::Any { self }
    ///     fn encode(&self) -> Result<Vec<u8>, Error> { Ok(self.0.clone()) }
    ///     fn size_hint(&self) -> usize { self.0.len() }
    /// }
    ///
    /// let tier = Memory::with_capacity(800);
    /// tier.insert(1, "k", Page(b"<p>".to_vec()), Duration::ZERO);
    /// let held = tier.hold(1, "k").expect("live");
    /// assert!(held.slot().head().is_live(clock::now_ms()));
    /// tier.remove(1, "k");
    /// assert!(!held.slot().head().is_live(clock::now_ms()));
    /// ```
    #[inline(always)]
    pub fn head(&self) -> &SlotHead {
        &self.head
    }

    #[inline]
    fn is_expired(&self, now: u64) -> bool {
        now >= self.head.expires_at
    }

    #[inline]
    fn is_live(&self, now: u64) -> bool {
        self.head.is_live(now)
    }

    fn kill(&self) {
        self.head.dead.store(true, Ordering::Release);
    }
}

/// Stripes of the lock that orders writers of one key.
const WRITE_STRIPES: usize = 64;

#[inline]
fn stripe(fp: u128) -> usize {
    (fp as usize) % WRITE_STRIPES
}

/// What an entry of a byte-bounded tier costs beyond its [`Slot`] (whose
/// inline size, value included, is counted from its type), its key's bytes
/// and its value's heap ([`LocalValue::size_hint`]): the slot's reference
/// counts (padded to a cache line), the allocator's overhead on the key,
/// and the store's entry and table space.
const ENTRY_OVERHEAD: u64 = 64 + 16 + 64;

/// The bounded in-process tier: typed values, a time to live per entry,
/// sharded so that concurrent hits take no global lock.
///
/// It holds at most the given number of entries (or bytes, with
/// [`Memory::with_max_bytes`]) and evicts the least valuable ones first
/// ([`quick_cache`]'s CLOCK-Pro policy, chosen by benchmark: see the
/// `local_hit` bench). Expired entries are dropped when read and are the first
/// to go under pressure.
///
/// Entries are addressed by a 128-bit fingerprint of their key, which the
/// cachefn runtime computes without allocating; the key text is kept beside
/// the value for prefix clears.
///
/// # Front caches, and what the bound covers
///
/// Each thread keeps a small front cache (4,096 entries, four-way) of the
/// slots it read recently, so that a hit writes no memory shared with other
/// threads and hits scale across cores. A slot that the tier replaces,
/// removes, evicts or clears is marked dead and no front cache serves it
/// again.
///
/// The bound holds for the whole process: the front caches of all threads
/// together keep at most **one eighth of the bound** alive on top of it
/// (entries the tier has evicted but a front cache still holds), however
/// many threads there are and whether or not they ever call again. So a
/// tier of `with_capacity(n)` keeps at most `n + n / 8` entries alive, and
/// one of `with_max_bytes(b)` about `b + b / 8` bytes, plus the values being
/// read at that moment and each reading thread's front-cache table (128 KiB,
/// allocated on its first read). In a byte-bounded tier an entry larger than
/// 1/512 of the bound is never kept in front caches (a hit on it is
/// dominated by its clone anyway).
///
/// Give it to a cache as its local tier (`cachefn::Cache::builder().local(..)`):
///
/// ```
/// use cachefn::backends::Memory;
///
/// let tier = Memory::with_capacity(10_000);
/// assert_eq!(tier.capacity(), 10_000);
/// assert!(tier.is_empty());
/// ```
pub struct Memory {
    store: Store,
    by_bytes: bool,
    /// What threads' front caches may keep alive of this tier; it also
    /// tells this tier's front entries from other tiers'.
    front: Arc<PinBudget>,
    /// Orders writers of one key, so that the slot a write replaces is
    /// always the one it marks dead.
    writers: [Mutex<()>; WRITE_STRIPES],
    /// Bumped by every write to a stripe's keys, and (`global`) by every
    /// clear: a back-fill from a slower tier checks that nothing was written
    /// since it started reading (see [`Memory::insert_if_unchanged`]).
    generations: [AtomicU64; WRITE_STRIPES],
    global_generation: AtomicU64,
    /// Serialises read-modify-write operations (`incr`) against each other.
    rmw: Mutex<()>,
    /// Set while the tier may not be filled ([`Memory::suspend`]); read by
    /// writers only, under their stripe's lock, never by a hit.
    suspended: AtomicBool,
}

impl Memory {
    /// A tier that holds up to `entries` entries (at least 1).
    ///
    /// Threads' front caches keep at most `entries / 8` more alive (see
    /// [`Memory`]).
    pub fn with_capacity(entries: usize) -> Self {
        let entries = entries.max(1);
        Memory::new(store::store(entries, entries as u64), false)
    }

    /// A tier bounded by the number of bytes its entries take: for each
    /// entry, its slot (with the value's inline size), its key, the heap
    /// memory its value owns ([`LocalValue::size_hint`]: for a cached
    /// function's value, an estimate of its strings', vectors' and maps'
    /// buffers, allocator overhead included) and a fixed overhead of about
    /// 150 bytes. A single value larger than a shard's share of the budget
    /// is not kept.
    ///
    /// Threads' front caches keep at most `bytes / 8` more alive (see
    /// [`Memory`]): the process holds at most about `bytes + bytes / 8` for
    /// this tier, whatever the number of threads.
    ///
    /// ```
    /// use cachefn::backends::Memory;
    ///
    /// let tier = Memory::with_max_bytes(64 << 20);
    /// assert_eq!(tier.capacity(), 64 << 20);
    /// ```
    pub fn with_max_bytes(bytes: u64) -> Self {
        let bytes = bytes.max(ENTRY_OVERHEAD);
        Memory::new(store::store((bytes / 512).max(16) as usize, bytes), true)
    }

    fn new(store: Store, by_bytes: bool) -> Self {
        Memory {
            front: PinBudget::for_bound(store.capacity(), by_bytes),
            store,
            by_bytes,
            writers: std::array::from_fn(|_| Mutex::new(())),
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            global_generation: AtomicU64::new(0),
            rmw: Mutex::new(()),
            suspended: AtomicBool::new(false),
        }
    }

    /// Run `f` on the live entry under `fp` stored under `key`, if any,
    /// and return its result.
    ///
    /// This is the hit path: it usually finds the slot in this thread's
    /// front cache and writes nothing shared. An expired entry is removed and
    /// reads as absent; an entry stored under another key with the same
    /// fingerprint reads as absent too. `f` may itself read this tier (it
    /// then takes the slower path).
    #[inline]
    pub fn read<K: KeyText + ?Sized, R>(
        &self,
        fp: u128,
        key: &K,
        f: impl FnOnce(&Slot) -> R,
    ) -> Option<R> {
        let now = clock::now_ms();
        let mut f = Some(f);
        // A front entry serves only the key its slot was stored under.
        let mut checked = Some(|slot: &Slot| match key.is_key(&slot.key) {
            true => f.take().map(|f| f(slot)),
            false => None,
        });
        if let Ok(Some(out)) = front::read(&self.front, fp, now, &mut checked) {
            return out;
        }
        // `checked` borrows `f` until here (its last use above).
        let slot = self.get_at(fp, key, now)?;
        let out = f.take().map(|f| f(&slot));
        front::remember(&self.front, fp, slot, now);
        out
    }

    /// A hold on the live entry under `fp`, for a per-thread cache of the
    /// caller's own: cachefn's memoized functions keep one per function,
    /// typed and looked up by a hash of the arguments. The hold counts
    /// against the same budget as the front caches (so what per-thread
    /// caches keep alive stays within an eighth of the bound, however many
    /// threads hold what); `None` when there is no live entry or no room
    /// in the budget. Whoever holds a slot must check
    /// [`Held::is_live`] before serving it (a write, removal, eviction or
    /// invalidation of the key ends it), and should drop holds on slots
    /// that are no longer live when [`sweep_epoch`] moves on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::backends::{clock, Error, LocalValue, Memory};
    ///
    /// struct Page(Vec<u8>);
    /// impl LocalValue for Page {
    ///     fn as_any(&self) -> &dyn std::any::Any { self }
    ///     fn encode(&self) -> Result<Vec<u8>, Error> { Ok(self.0.clone()) }
    ///     fn size_hint(&self) -> usize { self.0.len() }
    /// }
    ///
    /// let tier = Memory::with_capacity(800);
    /// tier.insert(1, "k", Page(b"<p>".to_vec()), Duration::ZERO);
    /// let held = tier.hold(1, "k").expect("live, and the budget has room");
    /// assert_eq!(held.slot().key(), "k");
    /// assert_eq!(tier.front_held(), (1, 100));
    /// assert!(held.is_live(clock::now_ms()));
    /// assert!(tier.hold(1, "another key").is_none());
    /// tier.remove(1, "k");
    /// assert!(!held.is_live(clock::now_ms()));
    /// drop(held);
    /// assert_eq!(tier.front_held(), (0, 100));
    /// ```
    pub fn hold<K: KeyText + ?Sized>(&self, fp: u128, key: &K) -> Option<Held> {
        let now = clock::now_ms();
        Held::take(&self.front, self.get_at(fp, key, now)?, now)
    }

    /// The live entry under `fp` stored under `key`, if any, as a shared
    /// handle. Prefer [`Memory::read`] on hot paths: this one bypasses the
    /// front cache.
    pub fn get<K: KeyText + ?Sized>(&self, fp: u128, key: &K) -> Option<Arc<Slot>> {
        self.get_at(fp, key, clock::now_ms())
    }

    /// Tell the eviction policy that the entry under `fp` is in use (a
    /// per-thread cache that serves it without asking the tier calls this
    /// now and then).
    pub fn touch(&self, fp: u128) {
        drop(self.store.get(&fp));
    }

    fn get_at<K: KeyText + ?Sized>(&self, fp: u128, key: &K, now: u64) -> Option<Arc<Slot>> {
        let slot = self.store.get(&fp)?;
        if !key.is_key(&slot.key) {
            return None;
        }
        if slot.is_expired(now) {
            if let Some((_, s)) = self.store.remove_if(&fp, |s| Arc::ptr_eq(s, &slot)) {
                s.kill();
            }
            return None;
        }
        Some(slot)
    }

    /// How much of this tier threads' front caches hold now, in the tier's
    /// unit (entries, or bytes for [`Memory::with_max_bytes`]), and the most
    /// they may hold (an eighth of [`Memory::capacity`]).
    ///
    /// ```
    /// use cachefn::backends::Memory;
    ///
    /// let tier = Memory::with_capacity(800);
    /// assert_eq!(tier.front_held(), (0, 100));
    /// ```
    pub fn front_held(&self) -> (u64, u64) {
        (self.front.pinned(), self.front.limit())
    }

    /// Store `value` under `fp` (the fingerprint of `key`) for `ttl`
    /// (`Duration::ZERO`: until evicted), replacing any entry.
    pub fn insert<V: LocalValue>(&self, fp: u128, key: &str, value: V, ttl: Duration) {
        let slot = self.slot(key, value, ttl);
        let _writer = self.writer(fp);
        if self.is_suspended() {
            return;
        }
        self.insert_locked(fp, slot);
    }

    /// The write generation of `fp`'s entry: it changes whenever the entry
    /// is written, removed or cleared.
    pub fn generation(&self, fp: u128) -> u64 {
        self.generations[stripe(fp)]
            .load(Ordering::Acquire)
            .wrapping_add(self.global_generation.load(Ordering::Acquire))
    }

    /// [`Memory::insert`], unless the entry's [`Memory::generation`] is no
    /// longer `seen`: a value read from a slower tier must not overwrite a
    /// write or a removal that happened while it was being read. `true` if
    /// stored.
    ///
    /// When it is not stored because something changed meanwhile, whatever
    /// the tier now holds under `fp` is removed too: it may be an older
    /// value back-filled by a read that overlapped this one (two reads
    /// racing a write of the shared tier; the slower may carry the older
    /// value), and a reader that has seen the newer value must never be
    /// served the older one afterwards. The cost is one more miss when the
    /// entry was in fact current.
    pub fn insert_if_unchanged<V: LocalValue>(
        &self,
        fp: u128,
        key: &str,
        value: V,
        ttl: Duration,
        seen: u64,
    ) -> bool {
        let slot = self.slot(key, value, ttl);
        let _writer = self.writer(fp);
        if self.is_suspended() {
            return false;
        }
        if self.generation(fp) != seen {
            if let Some((_, old)) = self.store.remove(&fp) {
                self.generations[stripe(fp)].fetch_add(1, Ordering::AcqRel);
                old.kill();
            }
            return false;
        }
        self.insert_locked(fp, slot);
        true
    }

    /// [`Memory::insert`] only if no live entry of `key` is under `fp` (an
    /// entry of another key with the same fingerprint is replaced); `true`
    /// if stored.
    pub fn insert_if_absent<V: LocalValue>(
        &self,
        fp: u128,
        key: &str,
        value: V,
        ttl: Duration,
    ) -> bool {
        let slot = self.slot(key, value, ttl);
        let _writer = self.writer(fp);
        if self.get(fp, key).is_some() || self.is_suspended() {
            return false;
        }
        self.insert_locked(fp, slot);
        true
    }

    fn slot<V: LocalValue>(&self, key: &str, value: V, ttl: Duration) -> Arc<Slot> {
        let expires_at = if ttl.is_zero() {
            u64::MAX
        } else {
            clock::now_ms().saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64)
        };
        let weight = if self.by_bytes {
            (ENTRY_OVERHEAD + std::mem::size_of::<Slot<V>>() as u64)
                .saturating_add(key.len() as u64)
                .saturating_add(value.size_hint() as u64)
        } else {
            1
        };
        Arc::new(Slot {
            head: SlotHead {
                expires_at,
                dead: AtomicBool::new(false),
                fronts: AtomicU32::new(0),
            },
            weight,
            key: key.into(),
            value,
        })
    }

    /// Replace `fp`'s entry; the caller holds its writer lock.
    fn insert_locked(&self, fp: u128, slot: Arc<Slot>) {
        self.generations[stripe(fp)].fetch_add(1, Ordering::AcqRel);
        if let Some(old) = self.store.peek(&fp) {
            old.kill();
        }
        self.store.insert(fp, slot);
    }

    fn writer(&self, fp: u128) -> crate::sync::MutexGuard<'_, ()> {
        self.writers[stripe(fp)].lock()
    }

    /// Remove `key`'s entry under `fp`; `true` if a live one was there. An
    /// entry of another key with the same fingerprint stays, but every
    /// back-fill of `fp` that began before this call is refused (see
    /// [`Memory::insert_if_unchanged`]).
    pub fn remove<K: KeyText + ?Sized>(&self, fp: u128, key: &K) -> bool {
        let now = clock::now_ms();
        let _writer = self.writer(fp);
        self.generations[stripe(fp)].fetch_add(1, Ordering::AcqRel);
        match self.store.remove_if(&fp, |slot| key.is_key(&slot.key)) {
            Some((_, slot)) => {
                slot.kill();
                !slot.is_expired(now)
            }
            None => false,
        }
    }

    /// [`Memory::remove`], unless the live entry under `fp` passes `keep`:
    /// `true` if a live entry was removed. `keep` runs under the key's
    /// writer lock, so no write of the key lands between the test and the
    /// removal (keep it short: writers of other keys may share the lock).
    /// Kept, nothing changes, the write generation included; otherwise the
    /// generation moves as with [`Memory::remove`] (a back-fill or write
    /// that began before loses), even when nothing was there. For a caller
    /// that checks a local copy against a slower tier.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn_backends::{Error, LocalValue, Memory};
    ///
    /// struct Page(Vec<u8>);
    /// impl LocalValue for Page {
    ///     fn as_any(&self) -> &dyn std::any::Any { self }
    ///     fn encode(&self) -> Result<Vec<u8>, Error> { Ok(self.0.clone()) }
    ///     fn size_hint(&self) -> usize { self.0.len() }
    /// }
    ///
    /// let tier = Memory::with_capacity(100);
    /// tier.insert(1, "k", Page(b"v1".to_vec()), Duration::ZERO);
    /// let is = |v: &'static [u8]| move |slot: &cachefn_backends::Slot| slot.value().encode().unwrap() == v;
    /// assert!(!tier.remove_unless(1, is(b"v1")), "the current value stays");
    /// assert!(tier.remove_unless(1, is(b"v0")), "another one goes");
    /// assert!(tier.get(1, "k").is_none());
    /// ```
    pub fn remove_unless(&self, fp: u128, keep: impl FnOnce(&Slot) -> bool) -> bool {
        let now = clock::now_ms();
        let _writer = self.writer(fp);
        if let Some(slot) = self.store.peek(&fp) {
            if !slot.is_expired(now) && keep(&slot) {
                return false;
            }
        }
        self.generations[stripe(fp)].fetch_add(1, Ordering::AcqRel);
        match self.store.remove(&fp) {
            Some((_, slot)) => {
                slot.kill();
                !slot.is_expired(now)
            }
            None => false,
        }
    }

    /// Remove every entry whose key starts with `prefix`.
    pub fn clear_prefix(&self, prefix: &str) {
        self.global_generation.fetch_add(1, Ordering::AcqRel);
        self.store.retain(|_, slot| {
            let keep = !slot.key.starts_with(prefix);
            if !keep {
                slot.kill();
            }
            keep
        });
    }

    /// Remove every entry.
    pub fn clear(&self) {
        self.clear_with(|_| {});
    }

    /// Remove every entry, calling `dropped` with each removed entry's key
    /// (to count what went, per function).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::backends::{Error, LocalValue, Memory};
    ///
    /// struct Page(Vec<u8>);
    /// impl LocalValue for Page {
    ///     fn as_any(&self) -> &dyn std::any::Any { self }
    ///     fn encode(&self) -> Result<Vec<u8>, Error> { Ok(self.0.clone()) }
    ///     fn size_hint(&self) -> usize { self.0.len() }
    /// }
    ///
    /// let tier = Memory::with_capacity(100);
    /// tier.insert(1, "f:v1:1", Page(b"x".to_vec()), Duration::from_secs(60));
    /// let mut keys = Vec::new();
    /// tier.clear_with(|k| keys.push(k.to_owned()));
    /// assert_eq!(keys, ["f:v1:1"]);
    /// assert!(tier.is_empty());
    /// ```
    pub fn clear_with(&self, dropped: impl FnMut(&str)) {
        self.global_generation.fetch_add(1, Ordering::AcqRel);
        let dropped = std::cell::RefCell::new(dropped);
        self.store.retain(|_, slot| {
            (dropped.borrow_mut())(&slot.key);
            slot.kill();
            false
        });
    }

    /// Empty the tier and keep it empty: until [`Memory::resume`], every
    /// insert is ignored (reads miss and go to the slower tier). For a
    /// tier that can no longer learn which of its entries another process
    /// replaced (its invalidation feed is lost). Returns how many entries
    /// were dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::backends::Memory;
    ///
    /// let tier = Memory::with_capacity(100);
    /// tier.suspend();
    /// assert!(tier.is_suspended());
    /// tier.resume();
    /// assert!(!tier.is_suspended());
    /// ```
    pub fn suspend(&self) -> usize {
        let mut held = 0;
        self.suspend_with(|_| held += 1);
        held
    }

    /// [`Memory::suspend`], calling `dropped` with each dropped entry's key.
    pub fn suspend_with(&self, dropped: impl FnMut(&str)) {
        self.suspended.store(true, Ordering::SeqCst);
        // A writer that saw the flag clear holds its stripe's lock until
        // its entry is in: after taking every lock once, the clear below
        // removes every such entry, and later writers see the flag.
        for w in &self.writers {
            drop(w.lock());
        }
        self.clear_with(dropped);
    }

    /// Accept inserts again after [`Memory::suspend`]. A back-fill whose
    /// read began before this call is still refused (the write generation
    /// moves), since that read may predate the feed's return.
    pub fn resume(&self) {
        self.global_generation.fetch_add(1, Ordering::AcqRel);
        self.suspended.store(false, Ordering::SeqCst);
    }

    /// `true` between [`Memory::suspend`] and [`Memory::resume`].
    pub fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::SeqCst)
    }

    /// Run `f` while no other [`Memory::read_modify_write`] on this tier runs,
    /// for read-modify-write operations such as counters.
    pub fn read_modify_write<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.rmw.lock();
        f()
    }

    /// How many entries are held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// `true` when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The bound: entries, or bytes for [`Memory::with_max_bytes`].
    pub fn capacity(&self) -> u64 {
        self.store.capacity()
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("by_bytes", &self.by_bytes)
            .field("front_held", &self.front_held())
            .finish()
    }
}

impl Drop for Memory {
    /// Marks every slot dead and asks threads to sweep their front caches,
    /// so that what they hold of this tier is released as they read again.
    fn drop(&mut self) {
        self.clear();
        front::request_sweep(clock::now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);
    impl LocalValue for Bytes {
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn encode(&self) -> Result<Vec<u8>, Error> {
            Ok(self.0.clone())
        }
        fn size_hint(&self) -> usize {
            self.0.len()
        }
    }

    /// Any key: these tests address entries by fingerprint alone.
    struct AnyKey;
    impl KeyText for AnyKey {
        fn is_key(&self, _: &str) -> bool {
            true
        }
    }
    const ANY: &AnyKey = &AnyKey;

    fn val(n: usize) -> Bytes {
        Bytes(vec![7; n])
    }

    #[test]
    fn a_suspended_tier_stays_empty_and_refuses_back_fills_read_before_resume() {
        let m = Memory::with_capacity(100);
        m.insert(1, "a", val(1), Duration::ZERO);
        assert_eq!(m.suspend(), 1);
        assert!(m.get(1, ANY).is_none());
        let seen = m.generation(2);
        m.insert(2, "b", val(1), Duration::ZERO);
        assert!(!m.insert_if_absent(3, "c", val(1), Duration::ZERO));
        assert!(m.is_empty());
        m.resume();
        // A read that began while suspended may predate the feed's return.
        assert!(!m.insert_if_unchanged(2, "b", val(1), Duration::ZERO, seen));
        let seen = m.generation(2);
        assert!(m.insert_if_unchanged(2, "b", val(1), Duration::ZERO, seen));
        // An invalidation (`remove`) moves the generation too.
        let seen = m.generation(2);
        m.remove(2, ANY);
        assert!(!m.insert_if_unchanged(2, "b", val(1), Duration::ZERO, seen));
    }

    #[test]
    fn bounded_by_entries() {
        let m = Memory::with_capacity(100);
        for i in 0..10_000u128 {
            m.insert(i, &format!("k{i}"), val(1), Duration::ZERO);
        }
        assert!(m.len() <= 110, "held {}", m.len());
    }

    #[test]
    fn bounded_by_bytes() {
        let m = Memory::with_max_bytes(64 * 1024);
        for i in 0..10_000u128 {
            m.insert(i, "k", val(1000), Duration::ZERO);
        }
        assert!(m.len() * 1000 <= 70 * 1024, "held {}", m.len());
    }

    #[test]
    fn expiry_and_remove() {
        let m = Memory::with_capacity(10);
        m.insert(1, "a", val(1), Duration::from_millis(30));
        m.insert(2, "b", val(1), Duration::ZERO);
        assert!(m.get(1, ANY).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(m.get(1, ANY).is_none());
        assert!(m.get(2, ANY).unwrap().remaining(clock::now_ms()).is_none());
        assert!(m.remove(2, ANY));
        assert!(!m.remove(2, ANY));
    }

    fn read_u(m: &Memory, fp: u128) -> Option<usize> {
        m.read(fp, ANY, |s| s.value().size_hint())
    }

    #[test]
    fn front_cache_never_serves_a_replaced_or_removed_slot() {
        let m = Memory::with_capacity(100);
        m.insert(1, "a", val(1), Duration::ZERO);
        for _ in 0..40 {
            assert_eq!(read_u(&m, 1), Some(1));
        }
        m.insert(1, "a", val(2), Duration::ZERO);
        for _ in 0..40 {
            assert_eq!(read_u(&m, 1), Some(2), "replaced");
        }
        m.remove(1, ANY);
        assert_eq!(read_u(&m, 1), None, "removed");
        m.insert(1, "a", val(3), Duration::ZERO);
        assert_eq!(read_u(&m, 1), Some(3));
        m.clear();
        assert_eq!(read_u(&m, 1), None, "cleared");
        m.insert(1, "a", val(4), Duration::ZERO);
        assert_eq!(read_u(&m, 1), Some(4));
        m.clear_prefix("a");
        assert_eq!(read_u(&m, 1), None, "prefix-cleared");
        // Another tier with the same fingerprints is a different entry.
        let other = Memory::with_capacity(10);
        m.insert(1, "a", val(5), Duration::ZERO);
        assert_eq!(read_u(&m, 1), Some(5));
        assert_eq!(read_u(&other, 1), None);
    }

    #[test]
    fn front_cache_never_serves_an_evicted_slot() {
        let m = Memory::with_capacity(10);
        m.insert(0, "k0", val(1), Duration::ZERO);
        assert_eq!(read_u(&m, 0), Some(1));
        assert_eq!(m.front_held(), (1, 1), "this thread's front cache holds k0");
        // Other keys, each read twice from the store (so that they, not k0,
        // are the ones the policy keeps), until the store evicts k0. `peek`
        // leaves k0's own standing alone; reads of the front cache never
        // reach the store (this thread reads twice in all, far from a
        // pass-through).
        let mut i = 1u128;
        while m.store.peek(&0).is_some() {
            assert!(i < 100_000, "the store never evicted k0");
            m.insert(i << 64, "k", val(1), Duration::ZERO);
            m.get(i << 64, ANY);
            m.get(i << 64, ANY);
            i += 1;
        }
        assert_eq!(m.front_held(), (1, 1), "the front cache still holds it");
        assert_eq!(
            read_u(&m, 0),
            None,
            "evicted from the tier, so gone from the front too"
        );
        assert_eq!(m.front_held(), (0, 1), "and the front cache let go of it");
    }

    #[test]
    fn front_cache_sees_writes_from_other_threads() {
        let m = Memory::with_capacity(100);
        m.insert(9, "k", val(1), Duration::ZERO);
        assert_eq!(read_u(&m, 9), Some(1));
        std::thread::scope(|s| {
            s.spawn(|| m.insert(9, "k", val(7), Duration::ZERO));
        });
        assert_eq!(read_u(&m, 9), Some(7));
    }

    /// Two reads of the shared tier race a write there: the first read gets
    /// the old value, the second the new one, and the first back-fills
    /// first. The second must not leave the old value behind for the
    /// readers that come after it (it has returned the new one already).
    #[test]
    fn a_losing_back_fill_leaves_no_older_value_behind() {
        let m = Memory::with_capacity(10);
        let slow = m.generation(5); // read 1 starts, gets the old value
        let fast = m.generation(5); // read 2 starts, gets the new value
        assert!(m.insert_if_unchanged(5, "k", val(1), Duration::ZERO, slow));
        assert!(!m.insert_if_unchanged(5, "k", val(2), Duration::ZERO, fast));
        assert_eq!(read_u(&m, 5), None, "the old value was dropped");
    }

    #[test]
    fn back_fills_lose_to_writes_that_happened_meanwhile() {
        let m = Memory::with_capacity(10);
        let seen = m.generation(5);
        m.insert(5, "k", val(2), Duration::ZERO); // a write while the slow read ran
        assert!(!m.insert_if_unchanged(5, "k", val(1), Duration::ZERO, seen));
        // The loser never leaves its value, and drops what it cannot vouch
        // for (one more miss; see the next test for why).
        assert_eq!(read_u(&m, 5), None);
        let seen = m.generation(5);
        m.remove(5, ANY);
        assert!(!m.insert_if_unchanged(5, "k", val(1), Duration::ZERO, seen));
        let seen = m.generation(5);
        m.clear();
        assert!(!m.insert_if_unchanged(5, "k", val(1), Duration::ZERO, seen));
        let seen = m.generation(5);
        assert!(m.insert_if_unchanged(5, "k", val(1), Duration::ZERO, seen));
        assert!(!m.insert_if_absent(5, "k", val(3), Duration::ZERO));
        assert!(m.insert_if_absent(6, "k", val(3), Duration::ZERO));
    }

    #[test]
    fn front_caches_charge_a_shared_slot_once_and_give_it_back() {
        let m = Memory::with_capacity(800);
        assert_eq!(m.front_held(), (0, 100));
        m.insert(1, "a", val(1), Duration::ZERO);
        let read = std::sync::Barrier::new(5);
        let exit = std::sync::Barrier::new(5);
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        assert_eq!(read_u(&m, 1), Some(1));
                        read.wait();
                        exit.wait();
                    })
                })
                .collect();
            read.wait();
            assert_eq!(m.front_held().0, 1, "four holders, one charge");
            exit.wait();
            for t in threads {
                t.join().unwrap();
            }
        });
        assert_eq!(m.front_held().0, 0, "the threads' exit gave it back");
    }

    #[test]
    fn front_caches_never_hold_more_than_their_share() {
        let m = Memory::with_capacity(800);
        std::thread::scope(|s| {
            for t in 0..8u128 {
                let m = &m;
                s.spawn(move || {
                    for k in 0..2_000u128 {
                        let fp = (k << 64) | (t << 32) | k;
                        m.insert(fp, "k", val(1), Duration::ZERO);
                        read_u(m, fp);
                        assert!(m.front_held().0 <= 100, "{:?}", m.front_held());
                    }
                });
            }
        });
    }

    #[test]
    fn byte_weight_counts_the_slot_not_only_the_value() {
        let m = Memory::with_max_bytes(100_000);
        for i in 0..10_000u128 {
            m.insert(i, "k", val(0), Duration::ZERO);
        }
        // Each entry takes its slot (64 bytes), the key and the overhead.
        let per_entry = ENTRY_OVERHEAD + 64 + 1;
        assert!(m.len() as u64 * per_entry <= 100_000, "held {}", m.len());
    }

    #[test]
    fn clear_prefix_keeps_others() {
        let m = Memory::with_capacity(10);
        m.insert(1, "f:v1:1", val(1), Duration::ZERO);
        m.insert(2, "f:v1:2", val(1), Duration::ZERO);
        m.insert(3, "g:v1:1", val(1), Duration::ZERO);
        m.clear_prefix("f:");
        assert!(m.get(1, ANY).is_none() && m.get(2, ANY).is_none());
        assert_eq!(m.get(3, ANY).unwrap().key(), "g:v1:1");
    }

    /// Two keys under one fingerprint (a collision, chosen or not): each
    /// lookup sees only its own key's entry, through the front cache too.
    #[test]
    fn a_fingerprint_is_an_address_not_an_identity() {
        let m = Memory::with_capacity(100);
        m.insert(7, "f:v1:a", val(1), Duration::ZERO);
        for _ in 0..300 {
            assert_eq!(m.read(7, "f:v1:a", |s| s.value().size_hint()), Some(1));
            assert_eq!(m.read(7, "f:v1:b", |s| s.value().size_hint()), None);
        }
        assert!(m.get(7, "f:v1:b").is_none() && m.hold(7, "f:v1:b").is_none());
        assert!(!m.remove(7, "f:v1:b"), "another key's entry is not removed");
        assert!(m.get(7, "f:v1:a").is_some());
        // `b` is absent though `a` sits under its fingerprint.
        assert!(m.insert_if_absent(7, "f:v1:b", val(2), Duration::ZERO));
        assert_eq!(m.read(7, "f:v1:b", |s| s.value().size_hint()), Some(2));
        assert_eq!(m.read(7, "f:v1:a", |s| s.value().size_hint()), None);
    }
}
