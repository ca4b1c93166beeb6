//! The shared store under a [`Memory`](super::Memory) tier: a
//! [`quick_cache`] map from key fingerprints to slots, weighed by the slots'
//! weights, which marks the slots it evicts dead.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::Slot;

/// Marks evicted slots dead, and drops up to two of them after the shard
/// lock is released (as quick_cache's default lifecycle does).
#[derive(Clone, Copy, Default)]
pub(super) struct KillOnEvict;

impl quick_cache::Lifecycle<u128, Arc<Slot>> for KillOnEvict {
    type RequestState = [Option<Arc<Slot>>; 2];

    #[inline]
    fn begin_request(&self) -> Self::RequestState {
        [None, None]
    }

    #[inline]
    fn on_evict(&self, state: &mut Self::RequestState, _fp: u128, slot: Arc<Slot>) {
        slot.kill();
        if let Some(free) = state.iter_mut().find(|s| s.is_none()) {
            *free = Some(slot);
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct SlotWeighter;

impl quick_cache::Weighter<u128, Arc<Slot>> for SlotWeighter {
    #[inline]
    fn weight(&self, _key: &u128, slot: &Arc<Slot>) -> u64 {
        slot.weight
    }
}

/// Keys of the store are 128-bit fingerprints from a good hash already, so the
/// map hashes them by folding rather than hashing them again.
#[derive(Clone, Copy, Default)]
pub(super) struct FoldHasher(u64);

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
pub(super) struct BuildFold;

impl BuildHasher for BuildFold {
    type Hasher = FoldHasher;
    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0)
    }
}

/// The map, keyed by fingerprint.
pub(super) type Store =
    quick_cache::sync::Cache<u128, Arc<Slot>, SlotWeighter, BuildFold, KillOnEvict>;

/// A store for up to `items` entries (an estimate, for sizing the table) of
/// total weight `weight`.
pub(super) fn store(items: usize, weight: u64) -> Store {
    Store::with(items, weight, SlotWeighter, BuildFold, KillOnEvict)
}
