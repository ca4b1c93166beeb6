//! The shared tier's side of a read: one read of a key ([`Cache::read_shared`],
//! preload scopes included) and one back-fill of the local tier
//! ([`Cache::back_fill`]), for the read-through path and the low-level API
//! alike.

use std::time::Duration;

use cachefn_backends::{clock, LocalValue};
use serde::de::DeserializeOwned;

use super::preload::Known;
use super::{Cache, Flavor, Plan};
use crate::codec;
use crate::freshness::{min_ttl, state, Meta, State};
use crate::io::Io;
use crate::stats::{Event, SiteStats};

/// A value decoded from the shared tier, with its bytes and the local tier's
/// write generation from before the read.
pub(crate) struct SharedRead<T> {
    pub(crate) value: T,
    pub(crate) bytes: Vec<u8>,
    pub(crate) seen: Option<u64>,
}

/// How long a value read from the shared tier may live in the local tier:
/// at most `local_ttl`, never past the entry's own expiry. `None`: do not
/// back-fill (`local_ttl` is zero, or the entry has just expired).
fn back_fill_ttl(bytes: &[u8], local_ttl: Duration) -> Option<Duration> {
    if local_ttl.is_zero() {
        return None;
    }
    match codec::expiry(bytes) {
        Some(0) | None => Some(local_ttl),
        Some(at) => match at.saturating_sub(clock::unix_ms()) {
            0 => None,
            left => Some(min_ttl(local_ttl, Duration::from_millis(left))),
        },
    }
}

impl Cache {
    /// The shared tier's value of `plan`'s key, back-filling the local tier
    /// for at most `plan.local_ttl` and never past its logical expiry; with
    /// its bytes and meta.
    pub(crate) async fn shared_value<F: Flavor>(
        &self,
        io: Io,
        plan: &Plan<'_>,
    ) -> Option<(F::Value, Vec<u8>, Meta)> {
        let read = self
            .read_shared::<F::Value>(io, plan.text, plan.fp, plan.site, false)
            .await?;
        self.tally(plan.site, Event::SharedHit);
        let SharedRead { value, bytes, seen } = read;
        Some(self.keep_shared::<F>(plan, value, bytes, seen))
    }

    /// The shared tier's `bytes` for `plan`'s key, read by another call
    /// than [`Cache::shared_value`] (`seen`: the local tier's write
    /// generation before that read): decoded, counted and back-filled as
    /// that function does. `None`: not readable as an `F::Value`.
    pub(crate) fn shared_bytes<F: Flavor>(
        &self,
        plan: &Plan<'_>,
        bytes: Vec<u8>,
        seen: Option<u64>,
    ) -> Option<(F::Value, Vec<u8>, Meta)> {
        let value = self.decode_shared::<F::Value>(plan.text, &bytes, plan.site)?;
        self.tally(plan.site, Event::SharedHit);
        Some(self.keep_shared::<F>(plan, value, bytes, seen))
    }

    /// Keep a value read from the shared tier in the local tier too, unless
    /// the key was written since `seen`.
    fn keep_shared<F: Flavor>(
        &self,
        plan: &Plan<'_>,
        value: F::Value,
        bytes: Vec<u8>,
        seen: Option<u64>,
    ) -> (F::Value, Vec<u8>, Meta) {
        let meta = Meta::of_bytes(&bytes);
        let local_meta = meta.for_local(&plan.freshness);
        self.back_fill(plan.text, plan.fp, &bytes, seen, plan.local_ttl, || {
            F::keep(&value, Some(&bytes), local_meta)
        });
        (value, bytes, meta)
    }

    /// The shared tier's value of `plan`'s key if it is there and fresh
    /// (or drawn for an early refresh): what a value computed by another
    /// process looks like.
    pub(crate) async fn shared_fresh<F: Flavor>(
        &self,
        io: Io,
        plan: &Plan<'_>,
    ) -> Option<(F::Value, Vec<u8>, Meta)> {
        let (v, bytes, meta) = self.shared_value::<F>(io, plan).await?;
        matches!(
            state(&meta, &plan.freshness, clock::now_ms()),
            State::Fresh | State::Early
        )
        .then_some((v, bytes, meta))
    }

    /// The one read of the shared tier for a key (`text`, `fp`): the bytes
    /// a preload scope holds, or a `GET`; decoded as a `T` bound to the key
    /// (or, for the low-level `get`, `counters`: a plain counter as an
    /// `i64`), with the local tier's write generation from before the read
    /// (the scope's, from before its `MGET`), so that a back-fill loses to
    /// any write, delete, clear or invalidation that happened meanwhile.
    /// Failures and undecodable bytes are counted, for `site` too.
    pub(crate) async fn read_shared<T: DeserializeOwned + 'static>(
        &self,
        io: Io,
        text: &str,
        fp: u128,
        site: Option<&SiteStats>,
        counters: bool,
    ) -> Option<SharedRead<T>> {
        let shared = self.inner.shared.as_deref()?;
        let mut seen = self.inner.local.as_ref().map(|l| l.generation(fp));
        let bytes = match self.preloaded(fp) {
            Known::Bytes(bytes, at) => {
                // The scope's generation, from before its read.
                seen = at;
                bytes.to_vec()
            }
            Known::Miss => return None,
            Known::Unknown => match io.get(shared, &self.stored(text)).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return None,
                Err(e) => {
                    self.shared_failed("get", &e);
                    if let Some(site) = site {
                        site.note(Event::SharedError);
                    }
                    return None;
                }
            },
        };
        let counter = counters
            .then(|| codec::decode_counter::<T>(&bytes))
            .flatten();
        let value = match counter {
            Some(n) => n,
            None => self.decode_shared::<T>(text, &bytes, site)?,
        };
        Some(SharedRead { value, bytes, seen })
    }

    /// Keep `kept` (made only when it is stored) in the local tier for a
    /// value read from the shared tier as `bytes`, for at most `local_ttl`
    /// and never past the entry's own expiry, unless the key was written,
    /// removed or cleared since the read began (`seen`).
    pub(crate) fn back_fill<V: LocalValue>(
        &self,
        text: &str,
        fp: u128,
        bytes: &[u8],
        seen: Option<u64>,
        local_ttl: Duration,
        kept: impl FnOnce() -> Option<V>,
    ) {
        let (Some(tier), Some(seen)) = (&self.inner.local, seen) else {
            return;
        };
        let Some(ttl) = back_fill_ttl(bytes, local_ttl) else {
            return;
        };
        if let Some(kept) = kept() {
            tier.insert_if_unchanged(fp, text, kept, ttl, seen);
        }
    }
}
