//! The byte-level storage trait that shared tiers implement.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, InvalidationFeed};

/// A store of bytes under string keys: the shape of a shared tier (Redis,
/// memcached, disk) or of the [`Null`](crate::Null) store.
///
/// Keys arrive already namespaced and normalised by the cache: printable
/// ASCII without spaces, at most 250 bytes. Values are opaque bytes that the
/// cache encodes and checks itself, so a backend never interprets them,
/// except for counters (`incr`), which are stored as decimal text the way
/// Redis and memcached keep them.
///
/// Six methods are required; the batch methods and `has` have default
/// implementations that loop, which a networked backend overrides to use one
/// round trip. `ttl == Duration::ZERO` means "no expiry".
///
/// Every method has an `_async` twin returning a [`BoxFuture`]. By default a
/// twin runs the sync method when polled, which is right for a store that
/// never blocks (memory, null). A backend that waits on a disk or on a
/// blocking client implements only the blocking methods and is wrapped in
/// [`Offloaded`](crate::Offloaded), whose twins run them on I/O threads of
/// its own (this is how `Disk` and `Memcached` are written); one with a
/// native async client (Redis) overrides the twins.
///
/// Errors mean "could not reach or use the store". A missing key is
/// `Ok(None)`, never an error.
///
/// Three optional methods, [`lease_acquire`](Self::lease_acquire),
/// [`lease_renew`](Self::lease_renew) and
/// [`lease_release`](Self::lease_release) (and their twins), give
/// `#[quickcache(single_flight = "shared")]` its cross-process lease. A
/// store that does not override them answers [`Failure::Refused`]
/// ("unsupported"), and such functions then compute once per process. A
/// fourth, [`get_or_lease`](Self::get_or_lease), reads a value or takes
/// its lease in one call, and a fifth, [`store_leased`](Self::store_leased),
/// stores the holder's value only while its lease is still its own; their
/// defaults take the steps with the other methods, so a store overrides
/// them only to save round trips (and, for `store_leased`, to make the
/// check and the write one atomic step).
///
/// [`Failure::Refused`]: crate::Failure::Refused
///
/// # Example
///
/// A backend that stores nothing (this is how [`Null`](crate::Null) is written):
///
/// ```
/// use std::time::Duration;
/// use cachefn::backends::{Backend, Error};
///
/// struct Forgetful;
///
/// impl Backend for Forgetful {
///     fn name(&self) -> &'static str { "forgetful" }
///     fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, Error> { Ok(None) }
///     fn set(&self, _key: &str, _value: &[u8], _ttl: Duration) -> Result<(), Error> { Ok(()) }
///     fn add(&self, _key: &str, _value: &[u8], _ttl: Duration) -> Result<bool, Error> { Ok(true) }
///     fn delete(&self, _key: &str) -> Result<bool, Error> { Ok(false) }
///     fn incr(&self, _key: &str, delta: i64) -> Result<i64, Error> { Ok(delta) }
///     fn clear_prefix(&self, _prefix: &str) -> Result<(), Error> { Ok(()) }
/// }
///
/// assert_eq!(Forgetful.get_many(&["a", "b"]).unwrap(), vec![None, None]);
/// ```
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and errors (`"redis"`, `"null"`).
    fn name(&self) -> &'static str;

    /// The bytes under `key`, or `None` when absent or expired.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Store `value` under `key` for `ttl`, replacing any value.
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error>;

    /// Store only if `key` is absent; `true` if stored. Must be atomic.
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error>;

    /// Remove `key`; `true` if something was removed.
    fn delete(&self, key: &str) -> Result<bool, Error>;

    /// Atomically add `delta` to the decimal counter under `key` (a missing
    /// key starts at 0) and return the new value.
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error>;

    /// Remove every key that starts with `prefix`, and nothing else.
    /// Must never flush a whole server.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error>;

    /// `true` when `key` holds a value.
    fn has(&self, key: &str) -> Result<bool, Error> {
        Ok(self.get(key)?.is_some())
    }

    /// The values of `keys`, in order. Override to use one round trip.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Store every pair for `ttl`. Override to use one round trip.
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        items.iter().try_for_each(|(k, v)| self.set(k, v, ttl))
    }

    /// Remove every key. Override to use one round trip.
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        keys.iter().try_for_each(|k| self.delete(k).map(drop))
    }

    /// [`get`](Self::get) without blocking the executor.
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        Box::pin(async move { self.get(key) })
    }

    /// [`set`](Self::set) without blocking the executor.
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.set(key, value, ttl) })
    }

    /// [`add`](Self::add) without blocking the executor.
    fn add_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { self.add(key, value, ttl) })
    }

    /// [`delete`](Self::delete) without blocking the executor.
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { self.delete(key) })
    }

    /// [`incr`](Self::incr) without blocking the executor.
    fn incr_async<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64, Error>> {
        Box::pin(async move { self.incr(key, delta) })
    }

    /// [`clear_prefix`](Self::clear_prefix) without blocking the executor.
    fn clear_prefix_async<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.clear_prefix(prefix) })
    }

    /// [`has`](Self::has) without blocking the executor.
    fn has_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { self.has(key) })
    }

    /// [`get_many`](Self::get_many) without blocking the executor.
    fn get_many_async<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Error>> {
        Box::pin(async move { self.get_many(keys) })
    }

    /// [`set_many`](Self::set_many) without blocking the executor.
    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8])],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.set_many(items, ttl) })
    }

    /// [`delete_many`](Self::delete_many) without blocking the executor.
    fn delete_many_async<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.delete_many(keys) })
    }

    /// The tier's change feed, if it has one: how the local tiers of a
    /// process learn that another client changed a key (Redis and Redis
    /// Cluster: `CLIENT TRACKING`). The cachefn runtime subscribes every
    /// cache with a local tier to it. `None` (the default): local copies
    /// live out their local lifetime. A wrapper forwards its inner tier's.
    ///
    /// ```
    /// use cachefn::backends::{Backend, CircuitBreaker, Null};
    ///
    /// assert!(CircuitBreaker::new(Null).invalidations().is_none());
    /// ```
    fn invalidations(&self) -> Option<InvalidationFeed> {
        None
    }

    /// Take the lease `key` for `ttl` if nobody holds it, marking it with
    /// `token` (unique to this acquisition): `Ok(true)` if taken, `Ok(false)`
    /// if another holder has it. Must be atomic across every client of the
    /// store (Redis: `SET key token NX PX ms`). A lease lapses by itself
    /// after `ttl` unless [renewed](Self::lease_renew), so a holder that
    /// dies is replaced.
    ///
    /// This is how `#[quickcache(single_flight = "shared")]` computes a cold
    /// key once across processes. The default answers
    /// [`Failure::Refused`](crate::Failure::Refused) ("unsupported"): the
    /// cache then computes once per process instead. Override all three
    /// lease methods, or none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::backends::{Backend, Failure, Null};
    ///
    /// // A store without leases says so; callers fall back to per-process work.
    /// let e = Null.lease_acquire("k#lease", b"token", Duration::from_secs(10)).unwrap_err();
    /// assert_eq!(e.failure(), Some(Failure::Refused));
    /// ```
    fn lease_acquire(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        let _ = (key, token, ttl);
        Err(no_leases(self.name()))
    }

    /// Extend the lease `key` to `ttl` from now, only if it is still marked
    /// with `token` (atomically: compare and `PEXPIRE`). `Ok(false)`: the
    /// lease lapsed or another holder has it now.
    fn lease_renew(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        let _ = (key, token, ttl);
        Err(no_leases(self.name()))
    }

    /// Give up the lease `key`, only if it is still marked with `token`
    /// (atomically: compare and `DEL`), so a holder whose lease lapsed never
    /// removes its successor's. `Ok(true)` if it was removed.
    fn lease_release(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        let _ = (key, token);
        Err(no_leases(self.name()))
    }

    /// Read `key`; if it holds no value, take the lease `lease` for `ttl`
    /// (as [`lease_acquire`](Self::lease_acquire) does): the cold miss of
    /// `single_flight = "shared"` in one call.
    ///
    /// [`GetOrLease::Taken`] promises that `key` held no value while the
    /// lease was already ours, so the holder never computes a value that
    /// has landed. Redis does both in one round trip (a Lua script); a
    /// Redis Cluster too when both keys are in one slot. The default takes
    /// the steps one by one: `get`, then `lease_acquire`, then `get` again
    /// once the lease is ours (releasing it if the value landed meanwhile);
    /// a store without leases answers the read's value, or the lease's
    /// refusal.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::backends::{Backend, Failure, Null};
    ///
    /// // No value, and no leases in this store: the lease's refusal
    /// // (`single_flight = "shared"` then computes once per process).
    /// let ttl = Duration::from_secs(10);
    /// let e = Null.get_or_lease("k", "k#lease", b"token", ttl).unwrap_err();
    /// assert_eq!(e.failure(), Some(Failure::Refused));
    /// ```
    fn get_or_lease(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<GetOrLease, Error> {
        get_or_lease_by_steps(self, key, lease, token, ttl)
    }

    /// [`get_or_lease`](Self::get_or_lease) without blocking the executor.
    fn get_or_lease_async<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<GetOrLease, Error>> {
        Box::pin(async move {
            if let Some(bytes) = self.get_async(key).await? {
                return Ok(GetOrLease::Value(bytes));
            }
            if !self.lease_acquire_async(lease, token, ttl).await? {
                return Ok(GetOrLease::Held);
            }
            match self.get_async(key).await {
                Ok(None) => Ok(GetOrLease::Taken),
                found => {
                    let _ = self.lease_release_async(lease, token).await;
                    found.map(|v| v.map_or(GetOrLease::Held, GetOrLease::Value))
                }
            }
        })
    }

    /// Store `value` under `key` for `ttl` only while the lease `lease` is
    /// still marked with `token`, and give the lease up: `Ok(true)` if
    /// stored, `Ok(false)` (nothing written) if the lease lapsed, was
    /// taken by another holder or was removed (a clear). This is the
    /// store of a `single_flight = "shared"` holder: a holder that lost
    /// its lease (paused past it, say) computed from data that may be
    /// older than its successor's, and must not overwrite that.
    ///
    /// Redis does it in one round trip (a Lua script); a Redis Cluster too,
    /// where it names leases so that each shares its value's slot. The
    /// default takes two steps, [`lease_release`](Self::lease_release)
    /// then [`set`](Self::set): not atomic (a successor that takes the
    /// lease between them and stores first is overwritten), but a holder
    /// whose lease is gone never stores.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn_backends::{Backend, Failure, Null};
    ///
    /// // A store without leases has no lease to check.
    /// let ttl = Duration::from_secs(60);
    /// let e = Null.store_leased("k", b"v", ttl, "k#lease", b"token").unwrap_err();
    /// assert_eq!(e.failure(), Some(Failure::Refused));
    /// ```
    fn store_leased(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        lease: &str,
        token: &[u8],
    ) -> Result<bool, Error> {
        store_leased_by_steps(self, key, value, ttl, lease, token)
    }

    /// [`store_leased`](Self::store_leased) without blocking the executor.
    fn store_leased_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        lease: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if !self.lease_release_async(lease, token).await? {
                return Ok(false);
            }
            self.set_async(key, value, ttl).await.map(|()| true)
        })
    }

    /// [`lease_acquire`](Self::lease_acquire) without blocking the executor.
    fn lease_acquire_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { self.lease_acquire(key, token, ttl) })
    }

    /// [`lease_renew`](Self::lease_renew) without blocking the executor.
    fn lease_renew_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { self.lease_renew(key, token, ttl) })
    }

    /// [`lease_release`](Self::lease_release) without blocking the executor.
    fn lease_release_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { self.lease_release(key, token) })
    }
}

/// What [`Backend::get_or_lease`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetOrLease {
    /// The key's value (no lease was taken).
    Value(Vec<u8>),
    /// No value, and the lease is now ours.
    Taken,
    /// No value, and another holder has the lease.
    Held,
}

/// What a store without leases answers (a refusal: the store is fine, it
/// just cannot do this).
fn no_leases(backend: &'static str) -> Error {
    Error::refused(
        backend,
        "this store has no leases (single_flight = \"shared\" needs Redis or Redis Cluster): \
         computing once per process instead",
    )
}

/// [`Backend::get_or_lease`] as separate calls: `GET`, `SET NX` the lease,
/// and `GET` again once the lease is ours (a value that landed in between
/// is answered, and the lease given back). The default of the trait, and a
/// Redis Cluster's way when the key and its lease sit in different slots.
pub(crate) fn get_or_lease_by_steps<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    lease: &str,
    token: &[u8],
    ttl: Duration,
) -> Result<GetOrLease, Error> {
    if let Some(bytes) = backend.get(key)? {
        return Ok(GetOrLease::Value(bytes));
    }
    if !backend.lease_acquire(lease, token, ttl)? {
        return Ok(GetOrLease::Held);
    }
    match backend.get(key) {
        Ok(None) => Ok(GetOrLease::Taken),
        found => {
            // The value landed between the read and the lease (or the
            // second read failed): give the lease back.
            let _ = backend.lease_release(lease, token);
            found.map(|v| v.map_or(GetOrLease::Held, GetOrLease::Value))
        }
    }
}

/// [`Backend::store_leased`] as separate calls: give the lease up (only if
/// it is still ours), then `SET`. The default of the trait, and a Redis
/// Cluster's way for a key whose lease cannot share its slot.
pub(crate) fn store_leased_by_steps<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    value: &[u8],
    ttl: Duration,
    lease: &str,
    token: &[u8],
) -> Result<bool, Error> {
    if !backend.lease_release(lease, token)? {
        return Ok(false);
    }
    backend.set(key, value, ttl).map(|()| true)
}

/// The future a backend's `_async` method returns: boxed, so that
/// [`Backend`] stays usable as `dyn Backend`, and `Send`, so that a memoized
/// `async fn` stays `Send`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `impl Backend for $ty` handing every method, the `_async` twins
/// included, to `$inner`: an expression of `$s` (the `&self`) that is a
/// reference to another backend. For wrappers that add nothing to the calls
/// (`Arc`, `Box`, a tier type around its [`Offloaded`](crate::Offloaded) client).
macro_rules! delegate_backend {
    (impl[$($gen:tt)*] for $ty:ty, |$s:ident| $inner:expr) => {
        impl<$($gen)*> $crate::Backend for $ty {
            fn name(&self) -> &'static str { let $s = self; $crate::Backend::name($inner) }
            fn get(&self, key: &str) -> Result<Option<Vec<u8>>, $crate::Error> { let $s = self; $crate::Backend::get($inner, key) }
            fn set(&self, key: &str, value: &[u8], ttl: ::std::time::Duration) -> Result<(), $crate::Error> { let $s = self; $crate::Backend::set($inner, key, value, ttl) }
            fn add(&self, key: &str, value: &[u8], ttl: ::std::time::Duration) -> Result<bool, $crate::Error> { let $s = self; $crate::Backend::add($inner, key, value, ttl) }
            fn delete(&self, key: &str) -> Result<bool, $crate::Error> { let $s = self; $crate::Backend::delete($inner, key) }
            fn incr(&self, key: &str, delta: i64) -> Result<i64, $crate::Error> { let $s = self; $crate::Backend::incr($inner, key, delta) }
            fn clear_prefix(&self, prefix: &str) -> Result<(), $crate::Error> { let $s = self; $crate::Backend::clear_prefix($inner, prefix) }
            fn has(&self, key: &str) -> Result<bool, $crate::Error> { let $s = self; $crate::Backend::has($inner, key) }
            fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, $crate::Error> { let $s = self; $crate::Backend::get_many($inner, keys) }
            fn set_many(&self, items: &[(&str, &[u8])], ttl: ::std::time::Duration) -> Result<(), $crate::Error> { let $s = self; $crate::Backend::set_many($inner, items, ttl) }
            fn delete_many(&self, keys: &[&str]) -> Result<(), $crate::Error> { let $s = self; $crate::Backend::delete_many($inner, keys) }
            fn get_async<'a>(&'a self, key: &'a str) -> $crate::BoxFuture<'a, Result<Option<Vec<u8>>, $crate::Error>> { let $s = self; $crate::Backend::get_async($inner, key) }
            fn set_async<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: ::std::time::Duration) -> $crate::BoxFuture<'a, Result<(), $crate::Error>> { let $s = self; $crate::Backend::set_async($inner, key, value, ttl) }
            fn add_async<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: ::std::time::Duration) -> $crate::BoxFuture<'a, Result<bool, $crate::Error>> { let $s = self; $crate::Backend::add_async($inner, key, value, ttl) }
            fn delete_async<'a>(&'a self, key: &'a str) -> $crate::BoxFuture<'a, Result<bool, $crate::Error>> { let $s = self; $crate::Backend::delete_async($inner, key) }
            fn incr_async<'a>(&'a self, key: &'a str, delta: i64) -> $crate::BoxFuture<'a, Result<i64, $crate::Error>> { let $s = self; $crate::Backend::incr_async($inner, key, delta) }
            fn clear_prefix_async<'a>(&'a self, prefix: &'a str) -> $crate::BoxFuture<'a, Result<(), $crate::Error>> { let $s = self; $crate::Backend::clear_prefix_async($inner, prefix) }
            fn has_async<'a>(&'a self, key: &'a str) -> $crate::BoxFuture<'a, Result<bool, $crate::Error>> { let $s = self; $crate::Backend::has_async($inner, key) }
            fn get_many_async<'a>(&'a self, keys: &'a [&'a str]) -> $crate::BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, $crate::Error>> { let $s = self; $crate::Backend::get_many_async($inner, keys) }
            fn set_many_async<'a>(&'a self, items: &'a [(&'a str, &'a [u8])], ttl: ::std::time::Duration) -> $crate::BoxFuture<'a, Result<(), $crate::Error>> { let $s = self; $crate::Backend::set_many_async($inner, items, ttl) }
            fn delete_many_async<'a>(&'a self, keys: &'a [&'a str]) -> $crate::BoxFuture<'a, Result<(), $crate::Error>> { let $s = self; $crate::Backend::delete_many_async($inner, keys) }
            fn invalidations(&self) -> Option<$crate::InvalidationFeed> { let $s = self; $crate::Backend::invalidations($inner) }
            fn lease_acquire(&self, key: &str, token: &[u8], ttl: ::std::time::Duration) -> Result<bool, $crate::Error> { let $s = self; $crate::Backend::lease_acquire($inner, key, token, ttl) }
            fn lease_renew(&self, key: &str, token: &[u8], ttl: ::std::time::Duration) -> Result<bool, $crate::Error> { let $s = self; $crate::Backend::lease_renew($inner, key, token, ttl) }
            fn lease_release(&self, key: &str, token: &[u8]) -> Result<bool, $crate::Error> { let $s = self; $crate::Backend::lease_release($inner, key, token) }
            fn get_or_lease(&self, key: &str, lease: &str, token: &[u8], ttl: ::std::time::Duration) -> Result<$crate::GetOrLease, $crate::Error> { let $s = self; $crate::Backend::get_or_lease($inner, key, lease, token, ttl) }
            fn get_or_lease_async<'a>(&'a self, key: &'a str, lease: &'a str, token: &'a [u8], ttl: ::std::time::Duration) -> $crate::BoxFuture<'a, Result<$crate::GetOrLease, $crate::Error>> { let $s = self; $crate::Backend::get_or_lease_async($inner, key, lease, token, ttl) }
            fn store_leased(&self, key: &str, value: &[u8], ttl: ::std::time::Duration, lease: &str, token: &[u8]) -> Result<bool, $crate::Error> { let $s = self; $crate::Backend::store_leased($inner, key, value, ttl, lease, token) }
            fn store_leased_async<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: ::std::time::Duration, lease: &'a str, token: &'a [u8]) -> $crate::BoxFuture<'a, Result<bool, $crate::Error>> { let $s = self; $crate::Backend::store_leased_async($inner, key, value, ttl, lease, token) }
            fn lease_acquire_async<'a>(&'a self, key: &'a str, token: &'a [u8], ttl: ::std::time::Duration) -> $crate::BoxFuture<'a, Result<bool, $crate::Error>> { let $s = self; $crate::Backend::lease_acquire_async($inner, key, token, ttl) }
            fn lease_renew_async<'a>(&'a self, key: &'a str, token: &'a [u8], ttl: ::std::time::Duration) -> $crate::BoxFuture<'a, Result<bool, $crate::Error>> { let $s = self; $crate::Backend::lease_renew_async($inner, key, token, ttl) }
            fn lease_release_async<'a>(&'a self, key: &'a str, token: &'a [u8]) -> $crate::BoxFuture<'a, Result<bool, $crate::Error>> { let $s = self; $crate::Backend::lease_release_async($inner, key, token) }
        }
    };
}
#[allow(unused_imports)] // used by the feature-gated tiers
pub(crate) use delegate_backend;

delegate_backend!(impl[B: Backend + ?Sized] for Arc<B>, |s| &**s);
delegate_backend!(impl[B: Backend + ?Sized] for Box<B>, |s| &**s);

/// A backend that stores nothing: every read misses, every write succeeds.
///
/// Use it to switch caching off without touching the memoized functions
/// (tests, debugging), as cachelib's `NullCache` does.
///
/// ```
/// use std::time::Duration;
/// use cachefn::backends::{Backend, Null};
///
/// Null.set("k", b"v", Duration::from_secs(60)).unwrap();
/// assert_eq!(Null.get("k").unwrap(), None);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Null;

impl Backend for Null {
    fn name(&self) -> &'static str {
        "null"
    }
    fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
    fn set(&self, _key: &str, _value: &[u8], _ttl: Duration) -> Result<(), Error> {
        Ok(())
    }
    fn add(&self, _key: &str, _value: &[u8], _ttl: Duration) -> Result<bool, Error> {
        Ok(true)
    }
    fn delete(&self, _key: &str) -> Result<bool, Error> {
        Ok(false)
    }
    fn incr(&self, _key: &str, delta: i64) -> Result<i64, Error> {
        Ok(delta)
    }
    fn clear_prefix(&self, _prefix: &str) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::sync::Mutex;

    /// A store with leases but without its own `get_or_lease`: the default
    /// steps. `land_on_lease`: a value lands as the lease is taken (the
    /// race the second read is for).
    #[derive(Default)]
    struct Steps {
        map: Mutex<HashMap<String, Vec<u8>>>,
        land_on_lease: Option<(&'static str, &'static [u8])>,
    }

    impl Backend for Steps {
        fn name(&self) -> &'static str {
            "steps"
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.map.lock().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8], _: Duration) -> Result<(), Error> {
            self.map.lock().insert(key.into(), value.to_vec());
            Ok(())
        }
        fn add(&self, key: &str, value: &[u8], _: Duration) -> Result<bool, Error> {
            let mut map = self.map.lock();
            if map.contains_key(key) {
                return Ok(false);
            }
            map.insert(key.into(), value.to_vec());
            Ok(true)
        }
        fn delete(&self, key: &str) -> Result<bool, Error> {
            Ok(self.map.lock().remove(key).is_some())
        }
        fn incr(&self, _: &str, delta: i64) -> Result<i64, Error> {
            Ok(delta)
        }
        fn clear_prefix(&self, _: &str) -> Result<(), Error> {
            Ok(())
        }
        fn lease_acquire(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
            let taken = self.add(key, token, ttl)?;
            if let (true, Some((k, v))) = (taken, self.land_on_lease) {
                self.set(k, v, ttl)?;
            }
            Ok(taken)
        }
        fn lease_renew(&self, key: &str, token: &[u8], _: Duration) -> Result<bool, Error> {
            Ok(self.map.lock().get(key).is_some_and(|t| t == token))
        }
        fn lease_release(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
            let mut map = self.map.lock();
            if map.get(key).is_some_and(|t| t == token) {
                map.remove(key);
                return Ok(true);
            }
            Ok(false)
        }
    }

    #[test]
    fn the_default_get_or_lease_takes_the_steps() {
        let ttl = Duration::from_secs(10);
        let b = Steps::default();
        assert_eq!(
            b.get_or_lease("k", "k#l", b"1", ttl).unwrap(),
            GetOrLease::Taken
        );
        assert_eq!(
            b.get_or_lease("k", "k#l", b"2", ttl).unwrap(),
            GetOrLease::Held
        );
        b.set("k", b"v", ttl).unwrap();
        assert_eq!(
            b.get_or_lease("k", "k#l", b"2", ttl).unwrap(),
            GetOrLease::Value(b"v".to_vec())
        );
        assert!(b.lease_release("k#l", b"1").unwrap());
        assert!(
            !b.map.lock().contains_key("k#l"),
            "no lease taken for a value"
        );
    }

    #[test]
    fn a_value_that_lands_before_the_lease_is_answered_and_the_lease_given_back() {
        let ttl = Duration::from_secs(10);
        let b = Steps {
            land_on_lease: Some(("k", b"landed")),
            ..Steps::default()
        };
        assert_eq!(
            b.get_or_lease("k", "k#l", b"1", ttl).unwrap(),
            GetOrLease::Value(b"landed".to_vec())
        );
        assert!(
            !b.map.lock().contains_key("k#l"),
            "the lease was given back"
        );
        let b = Steps {
            land_on_lease: Some(("j", b"landed")),
            ..Steps::default()
        };
        let answer = crate::pool::tests::block_on(b.get_or_lease_async("j", "j#l", b"1", ttl));
        assert_eq!(answer.unwrap(), GetOrLease::Value(b"landed".to_vec()));
        assert!(!b.map.lock().contains_key("j#l"), "given back");
    }
}
