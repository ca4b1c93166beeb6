//! A circuit breaker around a shared tier.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::{clock, Backend, BoxFuture, Error};

/// Consecutive failures that open the circuit.
pub const TRIP_AFTER: u32 = 3;
/// How long an open circuit skips the backend before one call probes it.
pub const COOL_DOWN: Duration = Duration::from_secs(1);

/// Wraps a [`Backend`]: after [`TRIP_AFTER`] consecutive failures it stops
/// calling it for [`COOL_DOWN`] (calls fail at once, with no timeout to
/// wait out), then lets one call through to probe; a success closes the
/// circuit, so a server that comes back is used again by itself.
///
/// Only outages count ([`Error::is_outage`]: connection refused, reset or
/// closed, timeouts). A server that answers with an error is alive: a
/// refused write (Redis `OOM` or `READONLY`, a full disk), "not a counter"
/// or any other [`Failure::Refused`](crate::Failure::Refused) counts as an
/// answer, so reads keep going to a store that refuses writes. Every cache
/// built with `Cache::builder().shared(..)` wraps its shared tier in one.
///
/// ```
/// # #[cfg(feature = "redis")] {
/// use cachefn::backends::{Backend, CircuitBreaker, Redis};
///
/// // Nothing listens on port 1: the first calls fail, then the circuit opens.
/// let tier = CircuitBreaker::new(Redis::open("redis://127.0.0.1:1/0").unwrap());
/// for _ in 0..10 {
///     assert!(tier.get("k").is_err());
/// }
/// assert!(tier.is_open());
/// # }
/// ```
pub struct CircuitBreaker<B> {
    backend: B,
    failures: AtomicU32,
    /// `clock::now_ms()` until which calls are skipped; 0 when closed.
    open_until: AtomicU64,
}

impl<B: Backend> CircuitBreaker<B> {
    /// A closed circuit around `backend`.
    pub fn new(backend: B) -> Self {
        CircuitBreaker {
            backend,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    /// `true` while calls are being skipped.
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) > clock::now_ms()
    }

    fn open_error(&self) -> Error {
        Error::backend(
            self.backend.name(),
            format!(
                "skipped: {TRIP_AFTER} calls in a row failed, so the circuit is open; one call probes the server every {COOL_DOWN:?}"
            ),
        )
    }

    /// Whether a call may go through now; `Err` while the circuit is open.
    /// Returns the deadline seen, for [`record`](Self::record).
    fn admit(&self) -> Result<u64, Error> {
        let until = self.open_until.load(Ordering::Acquire);
        if until != 0 {
            let now = clock::now_ms();
            if now < until {
                return Err(self.open_error());
            }
            // Half-open: the caller that moves the deadline probes; the others wait it out.
            let next = now + COOL_DOWN.as_millis() as u64;
            if self
                .open_until
                .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Err(self.open_error());
            }
        }
        Ok(until)
    }

    /// Counts the outcome of an admitted call: an outage counts towards
    /// opening the circuit; anything the store answered (a value, or a
    /// refusal) closes it.
    fn record<R>(&self, until: u64, outcome: Result<R, Error>) -> Result<R, Error> {
        match outcome {
            Err(e) if e.is_outage() => {
                let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if n >= TRIP_AFTER {
                    let next = clock::now_ms() + COOL_DOWN.as_millis() as u64;
                    self.open_until.store(next, Ordering::Release);
                    if until != 0 {
                        tracing::debug!(target: "cachefn", backend = self.backend.name(), error = %e,
                            "circuit breaker: the probe failed; the circuit stays open for {COOL_DOWN:?}");
                    } else if n == TRIP_AFTER {
                        tracing::debug!(target: "cachefn", backend = self.backend.name(), error = %e,
                            "circuit breaker opened: {TRIP_AFTER} calls in a row failed; calls are skipped for {COOL_DOWN:?}, then one probes");
                    }
                }
                Err(e)
            }
            other => {
                if until != 0 || self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Release);
                    self.open_until.store(0, Ordering::Release);
                    if until != 0 {
                        tracing::debug!(target: "cachefn", backend = self.backend.name(),
                            "circuit breaker closed: the probe got an answer");
                    }
                }
                other
            }
        }
    }

    fn guard<R>(&self, f: impl FnOnce(&B) -> Result<R, Error>) -> Result<R, Error> {
        let until = self.admit()?;
        self.record(until, f(&self.backend))
    }

    fn guard_async<'a, R: Send + 'a>(
        &'a self,
        f: impl FnOnce(&'a B) -> BoxFuture<'a, Result<R, Error>> + Send + 'a,
    ) -> BoxFuture<'a, Result<R, Error>> {
        Box::pin(async move {
            let until = self.admit()?;
            let outcome = f(&self.backend).await;
            self.record(until, outcome)
        })
    }
}

impl<B: Backend> Backend for CircuitBreaker<B> {
    fn name(&self) -> &'static str {
        self.backend.name()
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.guard(|b| b.get(key))
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.guard(|b| b.set(key, value, ttl))
    }
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.guard(|b| b.add(key, value, ttl))
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.guard(|b| b.delete(key))
    }
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.guard(|b| b.incr(key, delta))
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        self.guard(|b| b.clear_prefix(prefix))
    }
    fn has(&self, key: &str) -> Result<bool, Error> {
        self.guard(|b| b.has(key))
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.guard(|b| b.get_many(keys))
    }
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        self.guard(|b| b.set_many(items, ttl))
    }
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        self.guard(|b| b.delete_many(keys))
    }
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        self.guard_async(move |b| b.get_async(key))
    }
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.guard_async(move |b| b.set_async(key, value, ttl))
    }
    fn add_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard_async(move |b| b.add_async(key, value, ttl))
    }
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard_async(move |b| b.delete_async(key))
    }
    fn incr_async<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64, Error>> {
        self.guard_async(move |b| b.incr_async(key, delta))
    }
    fn clear_prefix_async<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.guard_async(move |b| b.clear_prefix_async(prefix))
    }
    fn has_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard_async(move |b| b.has_async(key))
    }
    fn get_many_async<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Error>> {
        self.guard_async(move |b| b.get_many_async(keys))
    }
    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8])],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.guard_async(move |b| b.set_many_async(items, ttl))
    }
    fn delete_many_async<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<(), Error>> {
        self.guard_async(move |b| b.delete_many_async(keys))
    }
    fn invalidations(&self) -> Option<crate::InvalidationFeed> {
        self.backend.invalidations()
    }
    // Leases go through the breaker too: an open circuit makes a
    // `single_flight = "shared"` function compute per process at once.
    fn lease_acquire(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.guard(|b| b.lease_acquire(key, token, ttl))
    }
    fn lease_renew(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.guard(|b| b.lease_renew(key, token, ttl))
    }
    fn lease_release(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.guard(|b| b.lease_release(key, token))
    }
    fn get_or_lease(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<crate::GetOrLease, Error> {
        self.guard(|b| b.get_or_lease(key, lease, token, ttl))
    }
    fn get_or_lease_async<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<crate::GetOrLease, Error>> {
        self.guard_async(move |b| b.get_or_lease_async(key, lease, token, ttl))
    }
    fn store_leased(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        lease: &str,
        token: &[u8],
    ) -> Result<bool, Error> {
        self.guard(|b| b.store_leased(key, value, ttl, lease, token))
    }
    fn store_leased_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        lease: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard_async(move |b| b.store_leased_async(key, value, ttl, lease, token))
    }
    fn lease_acquire_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard_async(move |b| b.lease_acquire_async(key, token, ttl))
    }
    fn lease_renew_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard_async(move |b| b.lease_renew_async(key, token, ttl))
    }
    fn lease_release_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.guard_async(move |b| b.lease_release_async(key, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
        calls: AtomicU32,
        /// Another name than "flaky", to tell this breaker's events apart.
        name: Option<&'static str>,
    }

    impl Backend for Flaky {
        fn name(&self) -> &'static str {
            self.name.unwrap_or("flaky")
        }
        fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                Err(Error::backend("flaky", "down"))
            } else {
                Ok(None)
            }
        }
        fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), Error> {
            // A store that is alive but refuses writes (full, read-only).
            Err(Error::refused("flaky", "OOM command not allowed"))
        }
        fn add(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, Error> {
            Ok(true)
        }
        fn delete(&self, _: &str) -> Result<bool, Error> {
            Ok(false)
        }
        fn incr(&self, key: &str, _: i64) -> Result<i64, Error> {
            Err(Error::NotACounter(key.into()))
        }
        fn clear_prefix(&self, _: &str) -> Result<(), Error> {
            Ok(())
        }
    }

    #[test]
    fn opens_after_failures_then_probes_and_closes() {
        let b = CircuitBreaker::new(Flaky::default());
        b.backend.down.store(true, Ordering::SeqCst);
        for _ in 0..20 {
            assert!(b.get("k").is_err());
        }
        assert_eq!(
            b.backend.calls.load(Ordering::SeqCst),
            TRIP_AFTER,
            "then skipped"
        );
        assert!(b.is_open());
        b.backend.down.store(false, Ordering::SeqCst);
        std::thread::sleep(COOL_DOWN + Duration::from_millis(50));
        assert_eq!(b.get("k").unwrap(), None, "the probe succeeds");
        assert!(!b.is_open());
        assert!(b.get("k").is_ok());
        // A healthy server's refusal does not count as a failure.
        for _ in 0..10 {
            assert!(matches!(b.incr("k", 1), Err(Error::NotACounter(_))));
        }
        assert!(!b.is_open());
    }

    #[test]
    fn refused_writes_never_open_the_circuit() {
        let b = CircuitBreaker::new(Flaky::default());
        for _ in 0..20 {
            let e = b.set("k", b"v", COOL_DOWN).unwrap_err();
            assert!(!e.is_outage(), "{e}");
        }
        assert!(!b.is_open(), "a store that answers is alive");
        for _ in 0..5 {
            assert_eq!(b.get("k").unwrap(), None, "reads still reach the store");
        }
        assert_eq!(b.backend.calls.load(Ordering::SeqCst), 5);
        // Refusals between outages reset the count: only consecutive outages trip.
        b.backend.down.store(true, Ordering::SeqCst);
        for _ in 0..TRIP_AFTER - 1 {
            assert!(b.get("k").is_err());
            assert!(b.set("k", b"v", COOL_DOWN).is_err());
        }
        assert!(!b.is_open());
    }

    /// Collects the messages of the events whose `backend` is "logged".
    /// Installed as the global subscriber: a scoped one would race with the
    /// other tests' threads over the callsites' cached interest.
    struct Events(std::sync::Mutex<Vec<String>>);

    impl tracing::Subscriber for Events {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            #[derive(Default)]
            struct Fields {
                message: String,
                backend: String,
            }
            impl tracing::field::Visit for Fields {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        self.message = format!("{v:?}");
                    }
                }
                fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                    if f.name() == "backend" {
                        self.backend = v.to_owned();
                    }
                }
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            if fields.backend == "logged" {
                self.0.lock().unwrap().push(fields.message);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn opening_a_failed_probe_and_closing_are_logged_once_each() {
        static EVENTS: std::sync::OnceLock<std::sync::Arc<Events>> = std::sync::OnceLock::new();
        let events = EVENTS.get_or_init(|| {
            let events = std::sync::Arc::new(Events(Default::default()));
            tracing::subscriber::set_global_default(events.clone()).unwrap();
            events
        });
        let b = CircuitBreaker::new(Flaky {
            name: Some("logged"),
            ..Flaky::default()
        });
        b.backend.down.store(true, Ordering::SeqCst);
        for _ in 0..10 {
            let _ = b.get("k");
        }
        std::thread::sleep(COOL_DOWN + Duration::from_millis(50));
        let _ = b.get("k"); // the probe fails
        b.backend.down.store(false, Ordering::SeqCst);
        std::thread::sleep(COOL_DOWN + Duration::from_millis(50));
        b.get("k").unwrap(); // the probe succeeds
        b.get("k").unwrap();
        let seen = events.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:#?}");
        assert!(seen[0].starts_with("circuit breaker opened"), "{seen:#?}");
        assert!(seen[1].contains("probe failed"), "{seen:#?}");
        assert!(seen[2].starts_with("circuit breaker closed"), "{seen:#?}");
    }
}
