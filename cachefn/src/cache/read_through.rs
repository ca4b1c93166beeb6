//! The one read-through path. Every way of reading through a cache — a
//! memoized sync call, a memoized async call, [`Cache::get_or_set`] and
//! [`Cache::get_or_set_async`] — is this function:
//!
//! ```text
//! local tier → join the key's flight → (leader) local tier again → shared
//! tier → body → store → hand the value to the waiters
//! ```
//!
//! Entry points differ only in how they wait ([`Io`]: block or await) and
//! in how they type the value (a [`Flavor`]). Waiters always receive the
//! value as the local tier keeps it ([`Payload`]), and read it back as their
//! own type through the same checks as a local read, so a waiter of another
//! type gets a miss, never a wrong value.
//!
//! Callers of one cold key join its flight *before* the shared tier is
//! read: a cold key costs one shared read per process, not one per caller.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cachefn_backends::LocalValue;
use serde::{de::DeserializeOwned, Serialize};

use super::{expiry_for, min_ttl, Cache, Encoded, SharedRead};
use crate::codec;
use crate::flight::{Joined, Leader, Payload};
use crate::io::Io;
use crate::preload::Known;
use crate::stats::{Event, SiteStats};
use crate::Error;

/// How an entry point types what it reads, stores and hands to waiters.
pub(crate) trait Flavor {
    /// What the body returns and the caller gets.
    type Ret;
    /// What is cached.
    type Value: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// How the local tier keeps a value.
    type Kept: LocalValue;
    /// Whether [`Flavor::keep`] needs the value's encoded bytes.
    const KEEPS_BYTES: bool;
    /// The part of `ret` to cache, if it is cached at all.
    fn cacheable(ret: &Self::Ret, cache_none: bool) -> Option<&Self::Value>;
    /// A return value from a cached value.
    fn from_value(value: Self::Value) -> Self::Ret;
    /// What the local tier keeps for `value` (`bytes`: its encoding, when
    /// one was made). `None`: keep nothing.
    fn keep(value: &Self::Value, bytes: Option<&[u8]>) -> Option<Self::Kept>;
    /// A kept value read without decoding, when it is of this flavor's own
    /// kind (a typed value of exactly `Value`); `None` sends the reader
    /// through the codec.
    fn typed(kept: &dyn LocalValue) -> Option<Self::Value>;
}

/// The flavor of `get_or_set`: any serde value, kept encoded (it need not
/// be `Clone`).
pub(crate) struct Owned<T>(std::marker::PhantomData<T>);

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Flavor for Owned<T> {
    type Ret = T;
    type Value = T;
    type Kept = Encoded;
    const KEEPS_BYTES: bool = true;
    #[inline]
    fn cacheable(ret: &T, _: bool) -> Option<&T> {
        Some(ret)
    }
    #[inline]
    fn from_value(value: T) -> T {
        value
    }
    fn keep(_: &T, bytes: Option<&[u8]>) -> Option<Encoded> {
        bytes.map(|b| Encoded(b.to_vec()))
    }
    #[inline]
    fn typed(_: &dyn LocalValue) -> Option<T> {
        None
    }
}

/// Where and for how long one read-through call caches its value.
pub(crate) struct Plan<'a> {
    /// The key (without the cache's prefix).
    pub(crate) text: &'a str,
    pub(crate) fp: u128,
    /// Lifetime in the shared tier (and in a cache with only a local tier).
    pub(crate) ttl: Duration,
    /// Lifetime in the local tier of a cache that also has a shared tier.
    pub(crate) local_ttl: Duration,
    pub(crate) cache_none: bool,
    /// The memoized function's own counters (`None`: `get_or_set`).
    pub(crate) site: Option<&'a SiteStats>,
}

fn payload<K: LocalValue>(kept: K) -> Payload {
    Arc::new(kept)
}

impl Cache {
    /// Count `event` in the cache's counters and in the function's.
    #[inline]
    pub(crate) fn tally(&self, site: Option<&SiteStats>, event: Event) {
        self.inner.counters.note(event);
        if let Some(site) = site {
            site.note(event);
        }
    }

    /// [`Cache::local_value`], counted for `plan`'s function too.
    #[inline]
    fn local_value_of<F: Flavor>(&self, plan: &Plan<'_>) -> Option<F::Value> {
        let value = self.inner.local.as_ref()?.read(plan.fp, |slot| {
            F::typed(slot.value()).or_else(|| self.decode_kept::<F::Value>(slot.value(), plan.site))
        })??;
        self.tally(plan.site, Event::LocalHit);
        Some(value)
    }

    /// The local tier's value of `fp` as an `F::Value`: a typed value of
    /// that type is cloned, anything else goes through the codec's checks.
    #[inline]
    pub(crate) fn local_value<F: Flavor>(&self, fp: u128) -> Option<F::Value> {
        let value = self.inner.local.as_ref()?.read(fp, |slot| {
            F::typed(slot.value()).or_else(|| self.decode_value::<F::Value>(slot.value()))
        })??;
        self.inner.counters.local_hits.add();
        Some(value)
    }

    /// A kept value (local tier or flight payload) read as a `T` through
    /// the codec: a value of another type is a miss.
    pub(crate) fn decode_value<T: DeserializeOwned + 'static>(
        &self,
        kept: &dyn LocalValue,
    ) -> Option<T> {
        self.decode_kept(kept, None)
    }

    fn decode_kept<T: DeserializeOwned + 'static>(
        &self,
        kept: &dyn LocalValue,
        site: Option<&SiteStats>,
    ) -> Option<T> {
        let decoded = match kept.as_any().downcast_ref::<Encoded>() {
            Some(Encoded(bytes)) => codec::decode::<T>(bytes),
            None => match kept.encode() {
                Ok(bytes) => codec::decode::<T>(&bytes),
                Err(_) => Err(codec::DecodeError::Corrupt),
            },
        };
        match decoded {
            Ok(v) => Some(v),
            Err(_) => {
                self.tally(site, Event::Undecodable);
                None
            }
        }
    }

    fn payload_value<F: Flavor>(&self, plan: &Plan<'_>, payload: &Payload) -> Option<F::Value> {
        F::typed(&**payload).or_else(|| self.decode_kept::<F::Value>(&**payload, plan.site))
    }

    /// Read `plan`'s key through the cache: the cached value, or `body`'s
    /// result (run at most once, and by one caller per key in this process
    /// at a time). `refresh` skips every read: the body runs and its result
    /// replaces the cached value.
    pub(crate) async fn read_through<F, B>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        refresh: bool,
        body: B,
    ) -> F::Ret
    where
        F: Flavor,
        B: Future<Output = F::Ret>,
    {
        // The miss path is boxed: its future (the body's, the store's) is
        // large, and a hit would otherwise carry and copy its space.
        if refresh {
            return Box::pin(self.compute::<F, B>(io, plan, body, None)).await;
        }
        if let Some(v) = self.local_value_of::<F>(plan) {
            return F::from_value(v);
        }
        // Bytes preloaded by this caller's scope are in memory already: no
        // flight to wait for.
        if let Known::Bytes(_) = self.preloaded(plan.fp) {
            if let Some(v) = self.shared_value::<F>(io, plan).await {
                return F::from_value(v.0);
            }
        }
        match self.inner.flights.join(io, plan.fp).await {
            Joined::Lead(leader) => {
                // Another leader may have stored the value since our miss;
                // it wrote the local tier too, so checking that is enough.
                if let Some(v) = self.local_value_of::<F>(plan) {
                    leader.finish(|| F::keep(&v, None).map(payload));
                    return F::from_value(v);
                }
                if let Some((v, bytes)) = self.shared_value::<F>(io, plan).await {
                    leader.finish(|| F::keep(&v, Some(&bytes)).map(payload));
                    return F::from_value(v);
                }
                Box::pin(self.compute::<F, B>(io, plan, body, Some(leader))).await
            }
            Joined::Value(shared) => match self.payload_value::<F>(plan, &shared) {
                Some(v) => F::from_value(v),
                // The leader cached another type under this key (a
                // `get_or_set` of another type, say): compute ours.
                None => Box::pin(self.compute::<F, B>(io, plan, body, None)).await,
            },
            Joined::Alone => Box::pin(self.compute::<F, B>(io, plan, body, None)).await,
        }
    }

    /// Run the body, store what is cacheable, and hand it to the waiters.
    async fn compute<F, B>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        body: B,
        leader: Option<Leader<'_>>,
    ) -> F::Ret
    where
        F: Flavor,
        B: Future<Output = F::Ret>,
    {
        self.tally(plan.site, Event::Miss);
        match plan.site {
            Some(site) => tracing::debug!(target: "cachefn", function = %site.name, key = %plan.text,
                refresh = leader.is_none(), "miss: running the body"),
            None => tracing::debug!(target: "cachefn", key = %plan.text, "miss: running the body"),
        }
        // If this future is dropped while the body runs, `leader` drops
        // with it and a waiter takes over.
        let started = std::time::Instant::now();
        let ret = body.await;
        if let Some(site) = plan.site {
            site.computed(started.elapsed());
        }
        let value = F::cacheable(&ret, plan.cache_none);
        let mut bytes = None;
        if let Some(v) = value {
            let stored = self.store_value::<F>(io, plan, v).await;
            bytes = stored.1;
            if let Err(e @ Error::Encode(_)) = stored.0 {
                self.encode_failed(plan.text, &e);
            }
        }
        if let Some(leader) = leader {
            leader.finish(|| value.and_then(|v| F::keep(v, bytes.as_deref()).map(payload)));
        }
        ret
    }

    /// The shared tier's value of `plan`'s key, back-filling the local tier
    /// for at most `plan.local_ttl`; with its bytes.
    pub(crate) async fn shared_value<F: Flavor>(
        &self,
        io: Io,
        plan: &Plan<'_>,
    ) -> Option<(F::Value, Vec<u8>)> {
        let read = self.read_shared_of::<F::Value>(io, plan).await?;
        self.tally(plan.site, Event::SharedHit);
        let SharedRead { value, bytes, seen } = read;
        if let (Some(tier), Some(seen)) = (&self.inner.local, seen) {
            if let Some(ttl) = super::back_fill_ttl(&bytes, plan.local_ttl) {
                if let Some(kept) = F::keep(&value, Some(&bytes)) {
                    tier.insert_if_unchanged(plan.fp, plan.text, kept, ttl, seen);
                }
            }
        }
        Some((value, bytes))
    }

    /// [`Cache::read_shared`], counted for `plan`'s function too.
    async fn read_shared_of<T: DeserializeOwned + 'static>(
        &self,
        io: Io,
        plan: &Plan<'_>,
    ) -> Option<SharedRead<T>> {
        let shared = self.inner.shared.as_deref()?;
        let seen = self.inner.local.as_ref().map(|l| l.generation(plan.fp));
        let bytes = match self.preloaded(plan.fp) {
            Known::Bytes(bytes) => bytes.to_vec(),
            Known::Miss => return None,
            Known::Unknown => match io.get(shared, &self.stored(plan.text)).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return None,
                Err(e) => {
                    self.shared_failed("get", &e);
                    if let Some(site) = plan.site {
                        site.note(Event::SharedError);
                    }
                    return None;
                }
            },
        };
        match codec::decode::<T>(&bytes) {
            Ok(value) => Some(SharedRead { value, bytes, seen }),
            Err(_) => {
                self.tally(plan.site, Event::Undecodable);
                None
            }
        }
    }

    /// Store a value in every tier: encoded in the shared tier for
    /// `plan.ttl`, kept in the local tier for `plan.local_ttl` when there is
    /// a shared tier, else `plan.ttl`. Returns the outcome and the encoded
    /// bytes, when they were made. A failed shared write leaves no local
    /// copy (it would outlive what every other process sees).
    pub(crate) async fn store_value<F: Flavor>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        value: &F::Value,
    ) -> (Result<(), Error>, Option<Vec<u8>>) {
        let shared = self.inner.shared.as_deref();
        let mut bytes = None;
        let mut result = Ok(());
        if shared.is_some() || F::KEEPS_BYTES {
            match codec::encode(value, expiry_for(plan.ttl)) {
                Ok(b) => bytes = Some(b),
                Err(e) => result = Err(e),
            }
        }
        let mut local_ttl = plan.ttl;
        if let Some(shared) = shared {
            local_ttl = min_ttl(plan.local_ttl, plan.ttl);
            if let Some(b) = &bytes {
                let set = io.set(shared, &self.stored(plan.text), b, plan.ttl).await;
                self.note_preloaded(plan.fp, set.is_ok().then_some(&b[..]));
                if let Err(e) = set {
                    self.shared_failed("set", &e);
                    if let Some(site) = plan.site {
                        site.note(Event::SharedError);
                    }
                    result = Err(e);
                }
            }
        }
        if let Some(local) = &self.inner.local {
            let keep = result.is_ok() && !(shared.is_some() && plan.local_ttl.is_zero());
            match keep.then(|| F::keep(value, bytes.as_deref())).flatten() {
                Some(kept) => local.insert(plan.fp, plan.text, kept, local_ttl),
                None => {
                    local.remove(plan.fp);
                }
            }
        }
        (result, bytes)
    }
}
