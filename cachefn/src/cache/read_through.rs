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
//! With `single_flight = "shared"` the leader then takes the key's lease in
//! the shared tier before the body, or waits for the process that holds it
//! ([`crate::shared_flight`]): one computation across processes.
//!
//! Freshness (`stale_while_revalidate`, `stale_if_error`, `early_refresh`)
//! is part of this path, not beside it. Every value carries its logical
//! expiry and the body's run time ([`Meta`]; in the codec header for bytes);
//! tiers keep it past that expiry for the stale windows. A value found past
//! its expiry but inside the `stale_while_revalidate` window, or found live
//! when XFetch draws an early refresh, makes the caller that wins
//! [`Flights::try_lead`](crate::flight::Flights) recompute it in its own
//! call while every other caller is served the value at once. Past the
//! window callers wait as for a miss; a body that returns `Err` then falls
//! back to the stale `Ok` inside the `stale_if_error` window.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachefn_backends::{clock, KeyText, LocalValue, Slot};
use serde::{de::DeserializeOwned, Serialize};

use super::lead::SharedLead;
use super::preload::Known;
use super::write::{Entry, Put};
use super::Cache;
use crate::codec;
use crate::entry::{Encoded, Payload};
use crate::flight::{Joined, Leader};
use crate::freshness::{
    error_servable, expiry_for, min_ttl, state, ttl_ms, Freshness, Meta, State,
};
use crate::io::Io;
use crate::shared_flight::Lease;
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
    /// Whether an uncached result is a failure (`Err`) that a stale value
    /// may stand in for (`stale_if_error`).
    const FALLIBLE: bool = false;
    /// The part of `ret` to cache, if it is cached at all.
    fn cacheable(ret: &Self::Ret, cache_none: bool) -> Option<&Self::Value>;
    /// A `None` of an `Option` function: it lives [`Plan::none_ttl`].
    #[inline]
    fn is_none(_value: &Self::Value) -> bool {
        false
    }
    /// A return value from a cached value.
    fn from_value(value: Self::Value) -> Self::Ret;
    /// What the local tier keeps for `value` (`bytes`: its encoding, when
    /// one was made; `meta`: its expiry and run time). `None`: keep nothing.
    fn keep(value: &Self::Value, bytes: Option<&[u8]>, meta: Meta) -> Option<Self::Kept>;
    /// A kept value read without decoding, when it is of this flavor's own
    /// kind (a typed value of exactly `Value`), with its [`Meta`]; `None`
    /// sends the reader through the codec.
    fn typed(kept: &dyn LocalValue) -> Option<(Self::Value, Meta)>;
    /// [`Flavor::typed`] without the meta (which a function without
    /// freshness options never reads: it may sit on another cache line).
    #[inline]
    fn typed_value(kept: &dyn LocalValue) -> Option<Self::Value> {
        Self::typed(kept).map(|(v, _)| v)
    }
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
    fn keep(_: &T, bytes: Option<&[u8]>, _: Meta) -> Option<Encoded> {
        bytes.map(|b| Encoded(b.to_vec()))
    }
    #[inline]
    fn typed(_: &dyn LocalValue) -> Option<(T, Meta)> {
        None
    }
}

/// The flight a refresh of a stale entry runs under: not
/// the key's own flight, which callers that find nothing wait on (they then
/// read the stale entry and are served it, instead of waiting for the
/// refresh).
fn refresh_fp(fp: u128) -> u128 {
    fp.rotate_left(64) ^ 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834
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
    /// Lifetime of a `None` of an `Option` function, when shorter than
    /// `ttl` (`none_timeout`); see [`Plan::for_value`].
    pub(crate) none_ttl: Option<Duration>,
    /// Stale serving and early refresh (zero for `get_or_set`).
    pub(crate) freshness: Freshness,
    /// The memoized function's own counters (`None`: `get_or_set`).
    pub(crate) site: Option<&'a SiteStats>,
    /// The caller's hit check already drew an early refresh (XFetch) for
    /// the local value: do not draw again.
    pub(crate) early_drawn: bool,
    /// `single_flight = "shared"`: a cold key is computed once across
    /// processes (see [`crate::shared_flight`]).
    pub(crate) shared_flight: bool,
}

impl<'a> Plan<'a> {
    /// This plan for storing `value`: a `None` lives `none_ttl` instead of
    /// `ttl` (and so at most that long in the local tier too). Chosen once,
    /// before a store, so that every tier and the value's header agree.
    pub(crate) fn for_value<F: Flavor>(&self, value: &F::Value) -> Plan<'a> {
        match self.none_ttl {
            Some(ttl) if F::is_none(value) => Plan {
                ttl,
                none_ttl: None,
                ..*self
            },
            _ => Plan { ..*self },
        }
    }

    fn name(&self) -> &str {
        self.site.map_or("", |s| &s.name)
    }
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

    /// The local tier's value of `plan`'s key with its [`Meta`], whatever
    /// its freshness; counts nothing but undecodable bytes.
    #[inline]
    fn local_read<F: Flavor>(&self, plan: &Plan<'_>) -> Option<(F::Value, Meta)> {
        self.inner
            .local
            .as_ref()?
            .read(plan.fp, plan.text, |slot: &Slot| {
                self.read_kept::<F>(slot.value(), plan.site)
            })?
    }

    /// The local tier's value of `fp` if it is fresh for `freshness` (the
    /// memoized hit: no clock is read unless an option needs it), counted
    /// as a local hit of the cache. `Err`: none, or a stale value, or one
    /// that XFetch drew for an early refresh (`Err(true)`): the read-through
    /// path decides what to do with it.
    #[inline]
    pub(crate) fn local_fresh<F: Flavor, K: KeyText + ?Sized>(
        &self,
        fp: u128,
        key: &K,
        freshness: &Freshness,
        site: &SiteStats,
    ) -> Result<F::Value, bool> {
        let Some(local) = self.inner.local.as_ref() else {
            return Err(false);
        };
        if freshness.is_off() {
            let read = local.read(fp, key, |slot: &Slot| {
                F::typed_value(slot.value()).or_else(|| self.decode_value::<F::Value>(slot.value()))
            });
            return match read {
                Some(Some(value)) => {
                    self.count_local_hit(site);
                    Ok(value)
                }
                _ => Err(false),
            };
        }
        let Some(Some((value, meta))) = local.read(fp, key, |slot: &Slot| {
            self.read_kept::<F>(slot.value(), None)
        }) else {
            return Err(false);
        };
        if meta.fresh_until != u64::MAX {
            match state(&meta, freshness, clock::now_ms()) {
                State::Fresh => {}
                State::Early => return Err(true),
                State::Stale | State::Expired => return Err(false),
            }
        }
        self.count_local_hit(site);
        Ok(value)
    }

    /// A local hit, in the cache's counters and the function's: one
    /// stripe lookup for both.
    #[inline(always)]
    pub(crate) fn count_local_hit(&self, site: &SiteStats) {
        self.count_local_hit_at(site, crate::stats::stripe());
    }

    /// [`Cache::count_local_hit`] on this thread's stripe, already known.
    #[inline(always)]
    pub(crate) fn count_local_hit_at(&self, site: &SiteStats, stripe: usize) {
        self.inner.counters.local_hits.add_at(stripe);
        site.note_at(Event::LocalHit, stripe);
    }

    /// The local tier's value of `fp` as an `F::Value`, fresh or not: a
    /// typed value of that type is cloned, anything else goes through the
    /// codec's checks.
    #[inline]
    pub(crate) fn local_value<F: Flavor>(&self, fp: u128, text: &str) -> Option<F::Value> {
        let value = self.inner.local.as_ref()?.read(fp, text, |slot: &Slot| {
            self.read_kept::<F>(slot.value(), None).map(|(v, _)| v)
        })??;
        self.inner.counters.local_hits.add();
        Some(value)
    }

    /// A kept value as an `F::Value` with its meta: typed, or through the codec.
    #[inline]
    fn read_kept<F: Flavor>(
        &self,
        kept: &dyn LocalValue,
        site: Option<&SiteStats>,
    ) -> Option<(F::Value, Meta)> {
        if let Some(found) = F::typed(kept) {
            return Some(found);
        }
        self.with_kept_bytes(kept, site, |bytes| {
            let value = self.decode_local::<F::Value>(bytes, site)?;
            Some((value, Meta::of_bytes(bytes)))
        })
    }

    /// A kept value (local tier or flight payload) read as a `T` through
    /// the codec: a value of another type is a miss.
    pub(crate) fn decode_value<T: DeserializeOwned + 'static>(
        &self,
        kept: &dyn LocalValue,
    ) -> Option<T> {
        self.with_kept_bytes(kept, None, |bytes| self.decode_local(bytes, None))
    }

    /// `f` on `kept`'s encoding: borrowed when it is kept encoded, made
    /// otherwise (an encoding that fails counts as undecodable).
    fn with_kept_bytes<R>(
        &self,
        kept: &dyn LocalValue,
        site: Option<&SiteStats>,
        f: impl FnOnce(&[u8]) -> Option<R>,
    ) -> Option<R> {
        match kept.as_any().downcast_ref::<Encoded>() {
            Some(Encoded(bytes)) => f(bytes),
            None => match kept.encode() {
                Ok(bytes) => f(&bytes),
                Err(_) => {
                    self.tally(site, Event::Undecodable);
                    None
                }
            },
        }
    }

    /// Bytes this process made or checked already (the local tier's, a
    /// flight's payload) as a `T`: no key or signature to check again.
    fn decode_local<T: DeserializeOwned + 'static>(
        &self,
        bytes: &[u8],
        site: Option<&SiteStats>,
    ) -> Option<T> {
        match codec::decode_bound::<T>(bytes, None) {
            Ok(v) => Some(v),
            Err(_) => {
                self.tally(site, Event::Undecodable);
                None
            }
        }
    }

    fn payload_value<F: Flavor>(&self, plan: &Plan<'_>, payload: &Payload) -> Option<F::Value> {
        self.read_kept::<F>(&**payload, plan.site).map(|(v, _)| v)
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
            return Box::pin(self.compute::<F, B>(io, plan, body, None, None)).await;
        }
        let fr = &plan.freshness;
        // A value past its expiry that may stand in for a failing body.
        let mut fallback = None;
        if let Some((v, meta)) = self.local_read::<F>(plan) {
            let now = clock::now_ms();
            let st = match state(&meta, fr, now) {
                State::Fresh if plan.early_drawn && now < meta.fresh_until => State::Early,
                st => st,
            };
            match st {
                State::Fresh => {
                    self.tally(plan.site, Event::LocalHit);
                    return F::from_value(v);
                }
                // An early refresh leads the key's own flight: callers that
                // find the entry expired meanwhile wait for it rather than
                // compute it a second time.
                State::Early => match self.inner.flights.try_lead(io, plan.fp, plan.text) {
                    Some(leader) => {
                        self.tally(plan.site, Event::EarlyRefresh);
                        tracing::debug!(target: "cachefn", function = %plan.name(), key = %plan.text,
                            "early refresh: recomputing a live entry before it expires");
                        return Box::pin(self.compute::<F, B>(
                            io,
                            plan,
                            body,
                            Some(leader),
                            Some(v),
                        ))
                        .await;
                    }
                    None => {
                        self.tally(plan.site, Event::LocalHit);
                        return F::from_value(v);
                    }
                },
                State::Stale => {
                    let servable = error_servable(&meta, fr, now);
                    return self.revalidate::<F, B>(io, plan, body, v, servable).await;
                }
                State::Expired => {
                    if error_servable(&meta, fr, now) {
                        fallback = Some(v);
                    }
                }
            }
        }
        // Bytes preloaded by this caller's scope are in memory already: no
        // flight to wait for.
        if let Known::Bytes(..) = self.preloaded(plan.fp) {
            if let Some((v, _, meta)) = self.shared_value::<F>(io, plan).await {
                if matches!(
                    state(&meta, fr, clock::now_ms()),
                    State::Fresh | State::Early
                ) {
                    return F::from_value(v);
                }
            }
        }
        match self.inner.flights.join(io, plan.fp, plan.text).await {
            Joined::Lead(leader) => {
                // Another leader may have stored the value since our miss;
                // it wrote the local tier too, so checking that is enough.
                if let Some((v, meta)) = self.local_read::<F>(plan) {
                    if matches!(
                        state(&meta, fr, clock::now_ms()),
                        State::Fresh | State::Early
                    ) {
                        self.tally(plan.site, Event::LocalHit);
                        leader.finish(|| F::keep(&v, None, meta).map(payload));
                        return F::from_value(v);
                    }
                }
                // A plain read first: a shared hit costs one GET, whatever
                // `single_flight` says. On a miss, `single_flight = "shared"`
                // reads again and takes the lease in one call (unless a
                // preload scope knows the key).
                let mut lead = None;
                let mut found = self.shared_value::<F>(io, plan).await;
                if found.is_none()
                    && plan.shared_flight
                    && matches!(self.preloaded(plan.fp), Known::Unknown)
                {
                    match self.lead_shared::<F>(io, plan, true).await {
                        SharedLead::Found(v, bytes, meta) => found = Some((v, bytes, meta)),
                        other => lead = Some(other),
                    }
                }
                if let Some((v, bytes, meta)) = found {
                    let now = clock::now_ms();
                    match state(&meta, fr, now) {
                        State::Fresh | State::Early => {
                            leader.finish(|| F::keep(&v, Some(&bytes), meta).map(payload));
                            return F::from_value(v);
                        }
                        State::Stale => {
                            // The callers waiting on us get the stale value
                            // now; one caller recomputes it.
                            leader.finish(|| F::keep(&v, Some(&bytes), meta).map(payload));
                            let servable = error_servable(&meta, fr, now);
                            return self.revalidate::<F, B>(io, plan, body, v, servable).await;
                        }
                        State::Expired => {
                            if error_servable(&meta, fr, now) {
                                fallback = Some(v);
                            }
                        }
                    }
                }
                if plan.shared_flight {
                    return Box::pin(
                        self.compute_shared::<F, B>(io, plan, body, leader, fallback, lead),
                    )
                    .await;
                }
                Box::pin(self.compute::<F, B>(io, plan, body, Some(leader), fallback)).await
            }
            Joined::Value(shared) => match self.payload_value::<F>(plan, &shared) {
                Some(v) => F::from_value(v),
                // The leader cached another type under this key (a
                // `get_or_set` of another type, say): compute ours.
                None => Box::pin(self.compute::<F, B>(io, plan, body, None, fallback)).await,
            },
            Joined::Alone => Box::pin(self.compute::<F, B>(io, plan, body, None, fallback)).await,
        }
    }

    /// A stale value inside the `stale_while_revalidate` window: the caller
    /// that leads the key's flight recomputes it in its own call (the body
    /// borrows its arguments); every other caller is served `stale` at once.
    /// `servable`: `stale` may stand in for a failing body (`stale_if_error`).
    async fn revalidate<F, B>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        body: B,
        stale: F::Value,
        servable: bool,
    ) -> F::Ret
    where
        F: Flavor,
        B: Future<Output = F::Ret>,
    {
        match self
            .inner
            .flights
            .try_lead(io, refresh_fp(plan.fp), plan.text)
        {
            Some(leader) => {
                tracing::debug!(target: "cachefn", function = %plan.name(), key = %plan.text,
                    "stale entry: recomputing it while other callers are served the stale value");
                let fallback = servable.then_some(stale);
                Box::pin(self.compute::<F, B>(io, plan, body, Some(leader), fallback)).await
            }
            None => {
                self.tally(plan.site, Event::Stale);
                tracing::debug!(target: "cachefn", function = %plan.name(), key = %plan.text,
                    "serving a stale entry while another caller recomputes it");
                F::from_value(stale)
            }
        }
    }

    /// [`Cache::compute`] for `single_flight = "shared"`: this process's
    /// leader first takes the key's lease in the shared tier, or waits for
    /// the process that holds it and hands its value to our waiters.
    /// `lead`: what the leader's first call already decided, if it made one.
    async fn compute_shared<F, B>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        body: B,
        leader: Leader<'_>,
        fallback: Option<F::Value>,
        lead: Option<SharedLead<F>>,
    ) -> F::Ret
    where
        F: Flavor,
        B: Future<Output = F::Ret>,
    {
        let lead = match lead {
            Some(lead) => lead,
            None => self.lead_shared::<F>(io, plan, false).await,
        };
        let lease = match lead {
            SharedLead::Landed(v, bytes, meta) | SharedLead::Found(v, bytes, meta) => {
                leader.finish(|| F::keep(&v, Some(&bytes), meta).map(payload));
                return F::from_value(v);
            }
            SharedLead::Holder(lease) => Some(lease),
            SharedLead::Alone => None,
        };
        self.compute_leased::<F, B>(io, plan, body, Some(leader), fallback, lease)
            .await
    }

    /// Run the body, store what is cacheable, and hand it to the waiters.
    /// `fallback`: a value past its expiry to return instead of a result
    /// that is not cached (an `Err`), for `stale_if_error`.
    ///
    /// Not an `async fn` of its own: it is [`Cache::compute_leased`]'s
    /// future, so that a body that recurses through the cache (a memoized
    /// `fib`) pays no extra poll frame per level.
    #[allow(clippy::manual_async_fn)]
    fn compute<'s, 'p, 'k, 'l, F, B>(
        &'s self,
        io: Io,
        plan: &'p Plan<'k>,
        body: B,
        leader: Option<Leader<'l>>,
        fallback: Option<F::Value>,
    ) -> impl Future<Output = F::Ret> + use<'s, 'p, 'k, 'l, F, B>
    where
        F: Flavor,
        B: Future<Output = F::Ret>,
    {
        self.compute_leased::<F, B>(io, plan, body, leader, fallback, None)
    }

    /// [`Cache::compute`] by the holder of the key's `lease` (shared
    /// single-flight), if any: its store is fenced (it writes only while
    /// the lease is ours, and gives the lease up in the same step), and a
    /// result that is not stored gives the lease up before returning, so
    /// that the next process can take over at once. A panic or a
    /// cancellation drops the lease, which hands the release to the
    /// keeper's thread.
    async fn compute_leased<F, B>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        body: B,
        leader: Option<Leader<'_>>,
        fallback: Option<F::Value>,
        lease: Option<Lease>,
    ) -> F::Ret
    where
        F: Flavor,
        B: Future<Output = F::Ret>,
    {
        self.tally(plan.site, Event::Miss);
        tracing::debug!(target: "cachefn", function = %plan.name(), key = %plan.text,
            "miss: running the body");
        // If this future is dropped while the body runs, `leader` drops
        // with it and a waiter takes over.
        let started = Instant::now();
        let ret = body.await;
        let took = started.elapsed();
        if let Some(site) = plan.site {
            site.computed(took);
        }
        let value = F::cacheable(&ret, plan.cache_none);
        if value.is_none() && F::FALLIBLE {
            if let Some(stale) = fallback {
                // stale-if-error: the error is not cached; the old value is
                // served (to the waiters too).
                self.tally(plan.site, Event::Stale);
                tracing::debug!(target: "cachefn", function = %plan.name(), key = %plan.text,
                    "the body failed; serving the stale value (stale_if_error)");
                if let Some(leader) = leader {
                    leader.finish(|| F::keep(&stale, None, Meta::ALWAYS).map(payload));
                }
                return F::from_value(stale);
            }
        }
        let run_ms = took.as_millis().min(u128::from(u32::MAX)) as u32;
        let (bytes, kept_meta) = self
            .store_computed::<F>(io, plan, value, run_ms, lease)
            .await;
        if let Some(leader) = leader {
            leader.finish(|| {
                value.and_then(|v| F::keep(v, bytes.as_deref(), kept_meta).map(payload))
            });
        }
        ret
    }

    /// After the body: store its cacheable `value` (fenced by `lease`, the
    /// key's shared lease if this process holds it) and settle the lease.
    /// Returns the stored bytes, if made, and the kept meta.
    ///
    /// A boxed future built in a frame of its own: a body that recurses
    /// through the cache (a memoized `fib`) runs inside
    /// [`Cache::compute_leased`]'s poll, whose stack frame then holds a
    /// pointer for all this, not room for its futures at every level.
    #[inline(never)]
    #[allow(clippy::type_complexity)]
    fn store_computed<'a, F: Flavor>(
        &'a self,
        io: Io,
        plan: &'a Plan<'a>,
        value: Option<&'a F::Value>,
        run_ms: u32,
        lease: Option<Lease>,
    ) -> Pin<Box<impl Future<Output = (Option<Vec<u8>>, Meta)> + 'a>> {
        Box::pin(async move {
            let Some(v) = value else {
                // Nothing to store: the next process may take over at once.
                if let Some(lease) = lease {
                    lease.release(io).await;
                }
                return (None, Meta::ALWAYS);
            };
            let (stored, bytes, meta) = self
                .store_timed::<F>(io, plan, v, run_ms, lease.as_ref())
                .await;
            match (stored, lease) {
                (Err(e @ Error::Encode(_)), lease) => {
                    self.encode_failed(plan.text, &e);
                    if let Some(lease) = lease {
                        lease.release(io).await;
                    }
                }
                (Ok(stored), Some(lease)) => {
                    if !stored {
                        tracing::debug!(target: "cachefn", function = %plan.name(), key = %plan.text,
                            "shared single-flight: the lease was lost while the body ran \
                             (lapsed, taken over or cleared); its value was not stored");
                    }
                    // Given up by the store, or no longer ours.
                    lease.settled();
                }
                // A failed store: dropped, the lease is released in the
                // background.
                _ => {}
            }
            (bytes, meta)
        })
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
        let (result, bytes, _) = self.store_timed::<F>(io, plan, value, 0, None).await;
        (result.map(drop), bytes)
    }

    /// [`Cache::store_value`] of a value the body computed in `run_ms`,
    /// fenced by `lease` when the caller holds the key's (see
    /// [`Cache::put`]). Entries live `plan.ttl` logically (the header's
    /// expiry) and are kept the stale windows longer in every tier. Returns
    /// whether the value was stored (`false`: the lease was lost), its
    /// bytes, and the kept meta.
    async fn store_timed<F: Flavor>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        value: &F::Value,
        run_ms: u32,
        lease: Option<&Lease>,
    ) -> (Result<bool, Error>, Option<Vec<u8>>, Meta) {
        let plan = &plan.for_value::<F>(value);
        let shared = self.inner.shared.as_deref();
        let fr = &plan.freshness;
        let ttl = super::write::clamp_ttl(plan.ttl);
        let fresh_until_unix = expiry_for(ttl);
        let meta = Meta {
            fresh_until: if ttl.is_zero() {
                u64::MAX
            } else {
                clock::now_ms().saturating_add(ttl_ms(ttl))
            },
            fresh_until_unix,
            run_ms,
        };
        let local_meta = meta.for_local(fr);
        // How long tiers keep the entry: its lifetime and the stale windows.
        let kept_ttl = if ttl.is_zero() {
            ttl
        } else {
            ttl.saturating_add(fr.window())
        };
        let bytes = if shared.is_some() || F::KEEPS_BYTES {
            match self.encode_entry(plan.text, value, fresh_until_unix, run_ms) {
                Ok(b) => Some(b),
                Err(e) => {
                    // Nothing is stored: no older copy may stay either.
                    self.forget_local(plan.fp, plan.text);
                    return (Err(e), None, local_meta);
                }
            }
        } else {
            None
        };
        // A local copy lives `local_timeout` (as long as the shared entry
        // when `local_timeout` is at least `timeout`); in a cache without a
        // shared tier, as long as the entry.
        let local_ttl = match shared {
            None => kept_ttl,
            Some(_) if !ttl.is_zero() && plan.local_ttl >= ttl => kept_ttl,
            Some(_) => min_ttl(plan.local_ttl, ttl),
        };
        let keep = !(shared.is_some() && plan.local_ttl.is_zero());
        let kept = keep
            .then(|| F::keep(value, bytes.as_deref(), local_meta))
            .flatten()
            .map(|k| (k, local_ttl));
        let entry = Entry {
            text: plan.text,
            fp: plan.fp,
            bytes: bytes.as_deref(),
            kept,
        };
        let how = lease.map_or(Put::Replace, Put::Leased);
        let stored = self.put(io, vec![entry], how, kept_ttl).await;
        if let (Err(_), Some(site)) = (&stored, plan.site) {
            site.note(Event::SharedError);
        }
        (stored, bytes, local_meta)
    }
}
