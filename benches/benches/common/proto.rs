//! Prototypes of a cheaper hit path, built only from cachefn's public
//! pieces ([`Memory`], [`Slot`], its clock), to show what the suggested
//! changes to the runtime would buy. Not cachefn code: the local tier here
//! is a private [`Memory`] holding the same keys as `render`.
//!
//! - [`Proto::get_direct`]: the key text built in a small stack buffer
//!   (`head`, `:`, itoa) and hashed with xxh3-128 (the same fingerprint as
//!   cachefn's), then `Memory::get`, downcast and clone; no stats counter.
//! - [`Proto::get_l0`]: the same key, then a thread-local 4-way set-associative
//!   front cache of `Arc<Slot>`s, validated by a write generation of the
//!   tier and the slot's expiry: a hit writes no shared cache line.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachefn::backends::{clock, LocalValue, Memory, Slot};
use xxhash_rust::xxh3::xxh3_128;

/// A `String` in the prototype's tier.
struct Val(String);

impl LocalValue for Val {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, cachefn::Error> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn size_hint(&self) -> usize {
        self.0.len()
    }
}

/// Sets of the thread-local front cache, and entries per set.
const L0_SETS: usize = 1024;
const L0_WAYS: usize = 4;

#[derive(Clone, Default)]
struct L0Set {
    entries: [L0Entry; L0_WAYS],
    next: usize,
}

#[derive(Clone, Default)]
struct L0Entry {
    fp: u128,
    generation: u64,
    expires_at: u64,
    slot: Option<Arc<Slot>>,
}

/// Bytes of the prototype's key buffer.
const KEY_BUF: usize = 80;

thread_local! {
    static L0: RefCell<Vec<L0Set>> = const { RefCell::new(Vec::new()) };
}

/// A prototype memoized `render` over its own [`Memory`].
pub struct Proto {
    /// `name:vN:` padded with zeros, copied whole (a fixed-size copy).
    head: [u8; KEY_BUF],
    head_len: usize,
    mem: Memory,
    /// Bumped by every write to `mem` (a real version would bump it in
    /// `Memory::insert/remove/clear*` and on eviction, or flag the `Slot`).
    generation: AtomicU64,
}

impl Proto {
    /// A tier holding `render(k)` for every `k` of `keys`, under the same key
    /// text and fingerprint as cachefn's `render` (checked).
    pub fn warmed(keys: &[u64]) -> Proto {
        let sample = super::with_cachefn::render::key(0);
        let head = sample
            .as_str()
            .strip_suffix(":0")
            .expect("key ends with the argument");
        assert!(
            head.len() + 1 + 20 <= KEY_BUF,
            "head too long for the prototype"
        );
        let mut padded = [0u8; KEY_BUF];
        padded[..head.len()].copy_from_slice(head.as_bytes());
        padded[head.len()] = b':';
        let proto = Proto {
            head: padded,
            head_len: head.len() + 1,
            mem: Memory::with_capacity(super::CAPACITY),
            generation: AtomicU64::new(1),
        };
        for &k in keys {
            let mut buf = proto.head;
            let len = proto.key_text(k, &mut buf);
            let text = std::str::from_utf8(&buf[..len]).expect("ASCII");
            let fp = xxh3_128(text.as_bytes());
            assert_eq!(fp, super::with_cachefn::render::key(k).fingerprint());
            proto.mem.insert(
                fp,
                text,
                Box::new(Val(super::body(k))),
                Duration::from_secs(super::TTL_SECS),
            );
            proto.generation.fetch_add(1, Ordering::Release);
        }
        for &k in keys {
            assert_eq!(proto.get_direct(k), Some(super::body(k)));
            assert_eq!(proto.get_l0(k), Some(super::body(k)));
        }
        proto
    }

    /// Write the argument after the head already in `buf`; the key's length.
    #[inline(always)]
    fn key_text(&self, id: u64, buf: &mut [u8; KEY_BUF]) -> usize {
        let mut n = itoa::Buffer::new();
        let digits = n.format(id).as_bytes();
        let h = self.head_len;
        buf[h..h + digits.len()].copy_from_slice(digits);
        h + digits.len()
    }

    #[inline]
    fn fingerprint(&self, id: u64) -> u128 {
        let mut buf = self.head;
        let len = self.key_text(id, &mut buf);
        xxh3_128(&buf[..len])
    }

    #[inline]
    fn clone_of(slot: &Slot) -> Option<String> {
        slot.value()
            .as_any()
            .downcast_ref::<Val>()
            .map(|v| v.0.clone())
    }

    /// Stack key, `Memory::get`, clone.
    #[inline]
    pub fn get_direct(&self, id: u64) -> Option<String> {
        let slot = self.mem.get(self.fingerprint(id))?;
        Self::clone_of(&slot)
    }

    /// Stack key, thread-local front cache, `Memory::get` on its miss.
    #[inline]
    pub fn get_l0(&self, id: u64) -> Option<String> {
        let fp = self.fingerprint(id);
        let generation = self.generation.load(Ordering::Acquire);
        let now = clock::now_ms();
        L0.with(|l0| {
            let mut l0 = l0.borrow_mut();
            if l0.is_empty() {
                l0.resize(L0_SETS, L0Set::default());
            }
            let set = &mut l0[(fp as usize) & (L0_SETS - 1)];
            for e in &set.entries {
                if e.fp == fp && e.generation == generation && now < e.expires_at {
                    if let Some(slot) = &e.slot {
                        return Self::clone_of(slot);
                    }
                }
            }
            let slot = self.mem.get(fp)?;
            let v = Self::clone_of(&slot);
            let expires_at = slot
                .remaining(now)
                .map_or(u64::MAX, |d| now + d.as_millis() as u64);
            let way = set.next;
            set.next = (way + 1) % L0_WAYS;
            set.entries[way] = L0Entry {
                fp,
                generation,
                expires_at,
                slot: Some(slot),
            };
            v
        })
    }
}
