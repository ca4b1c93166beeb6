//! The bounded, typed, in-process tier.

use std::any::Any;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock;
use crate::Error;

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
    /// About how many bytes the value occupies, for a byte-bounded [`Memory`].
    fn size_hint(&self) -> usize;
}

/// One entry of a [`Memory`] tier: the key it was stored under, when it
/// expires, and the value.
pub struct Slot {
    key: Box<str>,
    expires_at: u64,
    weight: u64,
    value: Box<dyn LocalValue>,
}

impl Slot {
    /// The key the entry was stored under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The stored value.
    pub fn value(&self) -> &dyn LocalValue {
        &*self.value
    }

    /// How long the entry has left to live at `now` ([`clock::now_ms`]);
    /// `None` when it never expires.
    pub fn remaining(&self, now: u64) -> Option<Duration> {
        (self.expires_at != u64::MAX)
            .then(|| Duration::from_millis(self.expires_at.saturating_sub(now)))
    }

    fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

#[derive(Clone, Copy)]
struct SlotWeighter;

impl quick_cache::Weighter<u128, Arc<Slot>> for SlotWeighter {
    #[inline]
    fn weight(&self, _key: &u128, slot: &Arc<Slot>) -> u64 {
        slot.weight
    }
}

/// Keys of the store are 128-bit fingerprints from a good hash already, so the
/// map hashes them by folding rather than hashing them again.
#[derive(Clone, Copy, Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).rotate_left(23);
        }
    }
    #[inline]
    fn write_u128(&mut self, fp: u128) {
        self.0 = (fp as u64) ^ ((fp >> 64) as u64);
    }
}

#[derive(Clone, Copy, Default)]
struct BuildFold;

impl BuildHasher for BuildFold {
    type Hasher = FoldHasher;
    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0)
    }
}

type Store = quick_cache::sync::Cache<
    u128,
    Arc<Slot>,
    SlotWeighter,
    BuildFold,
    quick_cache::sync::DefaultLifecycle<u128, Arc<Slot>>,
>;

/// Per-entry bookkeeping counted against a byte budget on top of key and value.
const SLOT_OVERHEAD: u64 = 96;

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
/// Give it to a cache as its local tier (`cachefn::Cache::builder().local(..)`):
///
/// ```
/// use cachefn_backends::Memory;
///
/// let tier = Memory::with_capacity(10_000);
/// assert_eq!(tier.capacity(), 10_000);
/// assert!(tier.is_empty());
/// ```
pub struct Memory {
    store: Store,
    by_bytes: bool,
    /// Serialises read-modify-write operations (`incr`) against each other.
    rmw: Mutex<()>,
}

impl Memory {
    /// A tier that holds up to `entries` entries (at least 1).
    pub fn with_capacity(entries: usize) -> Self {
        let entries = entries.max(1);
        Memory {
            store: Store::with(
                entries,
                entries as u64,
                SlotWeighter,
                BuildFold,
                Default::default(),
            ),
            by_bytes: false,
            rmw: Mutex::new(()),
        }
    }

    /// A tier bounded by the approximate number of bytes its keys and values
    /// take (encoded size plus a fixed overhead per entry). A single value
    /// larger than a shard's share of the budget is not kept.
    pub fn with_max_bytes(bytes: u64) -> Self {
        let bytes = bytes.max(SLOT_OVERHEAD);
        Memory {
            store: Store::with(
                (bytes / 512).max(16) as usize,
                bytes,
                SlotWeighter,
                BuildFold,
                Default::default(),
            ),
            by_bytes: true,
            rmw: Mutex::new(()),
        }
    }

    /// The live entry under `fp`, if any. An expired entry is removed and
    /// reads as absent.
    #[inline]
    pub fn get(&self, fp: u128) -> Option<Arc<Slot>> {
        let slot = self.store.get(&fp)?;
        if slot.is_expired(clock::now_ms()) {
            self.store.remove_if(&fp, |s| Arc::ptr_eq(s, &slot));
            return None;
        }
        Some(slot)
    }

    /// Store `value` under `fp` (the fingerprint of `key`) for `ttl`
    /// (`Duration::ZERO`: until evicted), replacing any entry.
    pub fn insert(&self, fp: u128, key: &str, value: Box<dyn LocalValue>, ttl: Duration) {
        let expires_at = if ttl.is_zero() {
            u64::MAX
        } else {
            clock::now_ms().saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64)
        };
        let weight = if self.by_bytes {
            SLOT_OVERHEAD + key.len() as u64 + value.size_hint() as u64
        } else {
            1
        };
        let slot = Slot {
            key: key.into(),
            expires_at,
            weight,
            value,
        };
        self.store.insert(fp, Arc::new(slot));
    }

    /// Remove the entry under `fp`; `true` if a live one was there.
    pub fn remove(&self, fp: u128) -> bool {
        let now = clock::now_ms();
        matches!(self.store.remove(&fp), Some((_, slot)) if !slot.is_expired(now))
    }

    /// Remove every entry whose key starts with `prefix`.
    pub fn clear_prefix(&self, prefix: &str) {
        self.store.retain(|_, slot| !slot.key.starts_with(prefix));
    }

    /// Remove every entry.
    pub fn clear(&self) {
        self.store.clear();
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
            .finish()
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

    fn val(n: usize) -> Box<dyn LocalValue> {
        Box::new(Bytes(vec![7; n]))
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
        assert!(m.get(1).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(m.get(1).is_none());
        assert!(m.get(2).unwrap().remaining(clock::now_ms()).is_none());
        assert!(m.remove(2));
        assert!(!m.remove(2));
    }

    #[test]
    fn clear_prefix_keeps_others() {
        let m = Memory::with_capacity(10);
        m.insert(1, "f:v1:1", val(1), Duration::ZERO);
        m.insert(2, "f:v1:2", val(1), Duration::ZERO);
        m.insert(3, "g:v1:1", val(1), Duration::ZERO);
        m.clear_prefix("f:");
        assert!(m.get(1).is_none() && m.get(2).is_none());
        assert_eq!(m.get(3).unwrap().key(), "g:v1:1");
    }
}
