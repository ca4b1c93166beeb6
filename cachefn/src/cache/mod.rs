//! [`Cache`]: tiers composed behind one typed API.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachefn_backends::{Backend, Memory, Slot};
use serde::de::DeserializeOwned;

use crate::codec::{self, Binding, Signer};
use crate::flight::Flights;
use crate::key;
use crate::log::RateLimited;
use crate::stats::{Counters, Stats};
use crate::Error;

/// Entries in the local tier of [`Cache::memory()`].
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Namespace of a cache built without [`CacheBuilder::prefix`].
pub const DEFAULT_PREFIX: &str = "cachefn";
/// Local lifetime of entries read from or written to a shared tier through
/// the low-level API (memoized functions use their `local_timeout`): the
/// library's default `local_timeout`.
pub const DEFAULT_LOCAL_TTL: Duration =
    Duration::from_secs(crate::registry::LIBRARY_DEFAULTS.local_timeout);
const MAX_PREFIX_LEN: usize = 48;
/// The longest lifetime an entry is given in any tier: 100 years (of
/// 365.25 days). A longer `ttl` passed to [`Cache::set`] and its siblings
/// (up to `Duration::MAX`) is kept this long, in effect forever; Redis
/// would refuse an expiry past `i64` milliseconds, and the entry would not
/// be stored at all. `#[quickcache]` refuses longer durations at compile
/// time.
///
/// ```
/// use std::time::Duration;
/// let cache = cachefn::Cache::memory();
/// cache.set("forever", &1u8, Duration::MAX)?;
/// assert_eq!(cache.get::<u8>("forever"), Some(1));
/// assert_eq!(cachefn::MAX_TTL, Duration::from_secs(3_155_760_000));
/// # Ok::<(), cachefn::Error>(())
/// ```
pub const MAX_TTL: Duration = Duration::from_secs(100 * 31_557_600);

mod api;
#[cfg(feature = "tokio")]
mod api_async;
mod lead;
mod preload;
mod read_through;
mod shared_read;
mod sink;
mod write;

pub(crate) use crate::entry::{Encoded, Timed, Typed};
pub(crate) use crate::freshness::{expiry_for, min_ttl, Freshness, Meta};
pub(crate) use read_through::{Flavor, Owned, Plan};

/// A cache: an optional bounded local tier ([`Memory`]) in front of an
/// optional shared tier (any [`Backend`]), under a key prefix.
///
/// Cloning is cheap and shares the cache. Reads try the local tier, then the
/// shared tier, and back-fill the local tier from a shared hit; writes and
/// deletes go to every tier.
///
/// Values are typed with serde (`T: Serialize + DeserializeOwned`). A value
/// stored as one type and read as another is a miss, never a wrong value.
///
/// ```
/// use std::time::Duration;
/// use cachefn::Cache;
///
/// let cache = Cache::memory();
/// let ttl = Duration::from_secs(60);
///
/// cache.set("greeting", &"hello".to_string(), ttl)?;
/// assert_eq!(cache.get::<String>("greeting").as_deref(), Some("hello"));
/// assert_eq!(cache.get::<u64>("greeting"), None); // another type: a miss
///
/// assert!(cache.add("greeting", &"again".to_string(), ttl)? == false);
/// assert_eq!(cache.incr("visits", 1)?, 1);
/// assert_eq!(cache.get::<i64>("visits"), Some(1));
///
/// let answer: u32 = cache.get_or_set("answer", ttl, || 42);
/// assert_eq!(answer, 42);
/// assert!(cache.delete("answer")?);
/// # Ok::<(), cachefn::Error>(())
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) local: Option<Arc<Memory>>,
    pub(crate) shared: Option<Arc<dyn Backend>>,
    pub(crate) prefix: Box<str>,
    local_ttl: Duration,
    /// The per-tier handles, made on first use.
    local_only: OnceLock<Cache>,
    shared_only: OnceLock<Cache>,
    flights: Flights,
    pub(crate) counters: Counters,
    pub(crate) shared_log: RateLimited,
    /// This process's recent writes, whose invalidations are checked
    /// against the shared tier (see `crate::coherence`): set for a cache
    /// that follows its shared tier's change feed.
    pub(crate) own: Option<crate::coherence::OwnWrites>,
    /// Leases and waiters of `single_flight = "shared"`.
    pub(crate) shared_flight: crate::shared_flight::SharedFlight,
    /// Signs what this cache writes to its shared tier and verifies what
    /// it reads there ([`CacheBuilder::signing_key`]).
    pub(crate) signer: Option<Arc<Signer>>,
}

/// Builds a [`Cache`]; from [`Cache::builder`].
///
/// ```
/// use cachefn::{Cache, backends::{Memory, Null}};
///
/// let cache = Cache::builder()
///     .local(Memory::with_capacity(10_000))
///     .shared(Null)
///     .prefix("blog")
///     .build();
/// assert_eq!(cache.prefix(), "blog");
/// ```
#[must_use]
pub struct CacheBuilder {
    local: Option<Arc<Memory>>,
    shared: Option<Arc<dyn Backend>>,
    prefix: String,
    local_ttl: Duration,
    invalidation: bool,
    lease_timeout: Duration,
    signing_key: Option<Vec<u8>>,
    fallback_keys: Vec<Vec<u8>>,
}

/// The shortest signing key [`CacheBuilder::signing_key`] accepts.
const MIN_SIGNING_KEY: usize = 32;

fn signing_secret(key: &[u8], what: &str) -> Vec<u8> {
    assert!(
        key.len() >= MIN_SIGNING_KEY,
        "cachefn: a {what} must have at least {MIN_SIGNING_KEY} bytes (this one has {}): \
         use 32 random bytes or more, e.g. from `openssl rand -base64 48`",
        key.len()
    );
    key.to_vec()
}

impl CacheBuilder {
    /// The in-process tier, bounded, checked first.
    pub fn local(mut self, tier: Memory) -> Self {
        self.local = Some(Arc::new(tier));
        self
    }

    /// The tier shared by every process (Redis, memcached, disk, ...),
    /// behind a [`CircuitBreaker`](cachefn_backends::CircuitBreaker): after
    /// a few failures in a row it is skipped for a second, then probed.
    pub fn shared(mut self, backend: impl Backend) -> Self {
        self.shared = Some(Arc::new(cachefn_backends::CircuitBreaker::new(backend)));
        self
    }

    /// The namespace of every key this cache stores in its shared tier
    /// (`prefix:key`), and the only keys [`Cache::clear`] removes there.
    /// Characters other than `[A-Za-z0-9_.-]` are escaped (`:` too, so that
    /// no prefix is the start of another); a prefix longer than 48 bytes is
    /// shortened with a hash. Empty means the default, `"cachefn"`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long an entry read from or written to the shared tier through the
    /// low-level API stays in the local tier (default 10 s). Memoized
    /// functions use their own `local_timeout`.
    pub fn local_ttl(mut self, ttl: Duration) -> Self {
        self.local_ttl = ttl;
        self
    }

    /// Whether the local tier follows the shared tier's changes (default
    /// `true`). With a Redis (6 or later) or Redis Cluster shared tier and a
    /// local tier, every change that any client makes under the cache's
    /// prefix drops this process's local copy of the key, typically within
    /// milliseconds; a process that loses an invalidation connection (for a
    /// cluster: to any master), or cannot confirm it is alive within about
    /// a second, empties its local tier and fills it again only once every
    /// connection is back. One background thread and connection per process
    /// and Redis server (each master of a cluster, followed through
    /// failovers and resharding) serve every cache.
    ///
    /// The feed is the shared tier's
    /// [`Backend::invalidations`](cachefn_backends::Backend::invalidations),
    /// which wrappers forward. A cache follows it from the moment it is
    /// built; until the server confirms tracking (a round trip), its local
    /// tier is not filled.
    ///
    /// `false`, and shared tiers without a change feed (memcached, disk, a
    /// Redis older than 6 or a proxy without `CLIENT TRACKING`, which is
    /// logged once): local copies live up to their local lifetime
    /// (`local_timeout`, [`CacheBuilder::local_ttl`]), whatever other
    /// processes write.
    ///
    /// ```
    /// use cachefn::{Cache, backends::{Memory, Null}};
    ///
    /// let cache = Cache::builder()
    ///     .local(Memory::with_capacity(1_000))
    ///     .shared(Null)
    ///     .invalidation(false)
    ///     .build();
    /// assert_eq!(cache.stats().invalidations, 0);
    /// ```
    pub fn invalidation(mut self, on: bool) -> Self {
        self.invalidation = on;
        self
    }

    /// How long the lease of a `#[quickcache(single_flight = "shared")]`
    /// computation lives in the shared tier unless renewed (default 10 s,
    /// at least 100 ms). While the body runs, its process renews the lease
    /// every third of this, so a long body keeps it; a process that dies
    /// mid-body stops renewing, and once its lease lapses another process
    /// computes the key. A shorter lease replaces a dead holder sooner, at
    /// the cost of more renewals. It also bounds waiting: a caller waits
    /// at most six lease lifetimes for a value another process, or another
    /// caller in this process, is computing, then computes it itself (so a
    /// body that calls its own key from a thread it joins, or a task it
    /// awaits, is slow rather than stuck).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::{Cache, backends::{Memory, Null}};
    ///
    /// let cache = Cache::builder()
    ///     .local(Memory::with_capacity(1_000))
    ///     .shared(Null) // a Redis or RedisCluster tier in production
    ///     .lease_timeout(Duration::from_secs(3))
    ///     .build();
    /// # drop(cache);
    /// ```
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.lease_timeout = timeout;
        self
    }

    /// Sign every value this cache writes to its shared tier, and accept
    /// from it only values whose signature verifies under this key (or a
    /// [fallback](CacheBuilder::signing_key_fallbacks)): whoever can write
    /// to the shared server can then no longer plant a value that this
    /// cache returns. A value that does not verify (unsigned, signed with
    /// another key, damaged) is a miss, counted in
    /// [`Stats::unauthenticated`](crate::Stats::unauthenticated).
    ///
    /// Give every process that shares the tier the same key, at least 32
    /// random bytes (`&[u8]`, `String`, `Vec<u8>`, ...), from your secrets
    /// store. The key never appears in `Debug` output, errors or logs.
    ///
    /// What it does not stop: the replay of an older value of the same
    /// key, signed by this deployment, before that value expires; and
    /// counters (`incr`, `decr`), which the server keeps as plain integers.
    /// The local tier is in-process and is not verified again on a hit.
    ///
    /// ```
    /// use cachefn::{Cache, backends::{Memory, Null}};
    ///
    /// let secret = "a secret of at least 32 bytes, from a secrets store";
    /// let cache = Cache::builder()
    ///     .local(Memory::with_capacity(10_000))
    ///     .shared(Null) // Redis, memcached, disk, ...
    ///     .signing_key(secret)
    ///     .build();
    /// assert!(!format!("{cache:?}").contains(secret));
    /// ```
    ///
    /// # Panics
    ///
    /// When `key` has fewer than 32 bytes.
    pub fn signing_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.signing_key = Some(signing_secret(key.as_ref(), "signing key"));
        self
    }

    /// Keys whose signatures are still accepted on read, while what the
    /// cache writes is signed with [`CacheBuilder::signing_key`]: rotate a
    /// key by making the old one a fallback, deploying, and dropping it
    /// once the values it signed have expired.
    ///
    /// ```
    /// use cachefn::{Cache, backends::{Memory, Null}};
    ///
    /// let cache = Cache::builder()
    ///     .local(Memory::with_capacity(10_000))
    ///     .shared(Null)
    ///     .signing_key("the new secret, at least 32 bytes long")
    ///     .signing_key_fallbacks(["the old secret, at least 32 bytes long"])
    ///     .build();
    /// # drop(cache);
    /// ```
    ///
    /// # Panics
    ///
    /// When a key has fewer than 32 bytes. Fallbacks without a
    /// [`signing_key`](CacheBuilder::signing_key) are ignored.
    pub fn signing_key_fallbacks<K: AsRef<[u8]>>(
        mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Self {
        self.fallback_keys = keys
            .into_iter()
            .map(|k| signing_secret(k.as_ref(), "fallback signing key"))
            .collect();
        self
    }

    /// The cache.
    pub fn build(self) -> Cache {
        let feed = match (&self.shared, &self.local) {
            (Some(shared), Some(_)) if self.invalidation => shared.invalidations(),
            _ => None,
        };
        let signer = self
            .signing_key
            .map(|key| Arc::new(Signer::new(&key, &self.fallback_keys)));
        let mut cache = Cache::from_tiers(
            self.local,
            self.shared,
            clean_prefix(&self.prefix).into(),
            self.local_ttl,
            signer,
        );
        if let Some(inner) = Arc::get_mut(&mut cache.inner) {
            inner.shared_flight = crate::shared_flight::SharedFlight::new(self.lease_timeout);
            inner.flights =
                Flights::new(crate::shared_flight::process_max_wait(self.lease_timeout));
            if feed.is_some() {
                inner.own = Some(crate::coherence::OwnWrites::new());
            }
        }
        if let Some(feed) = feed {
            let sink: std::sync::Weak<dyn cachefn_backends::InvalidationSink> =
                Arc::downgrade(&cache.inner) as _;
            feed.follow(&cache.inner.prefix, sink);
        }
        cache
    }
}

fn clean_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        return DEFAULT_PREFIX.to_owned();
    }
    // No `:` survives, so the first `:` of a stored key always ends the
    // prefix: caches "app" and "app:sessions" never share or clear each
    // other's keys.
    key::shorten(&key::escape_text(prefix), MAX_PREFIX_LEN, b'#')
}

impl Default for Cache {
    fn default() -> Self {
        Cache::memory()
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.inner.prefix)
            .field("local", &self.inner.local)
            .field("shared", &self.inner.shared.as_ref().map(|b| b.name()))
            .field("signed", &self.inner.signer.is_some())
            .finish()
    }
}

impl Cache {
    /// A builder for a cache with chosen tiers.
    pub fn builder() -> CacheBuilder {
        CacheBuilder {
            local: None,
            shared: None,
            prefix: String::new(),
            local_ttl: DEFAULT_LOCAL_TTL,
            invalidation: true,
            lease_timeout: crate::shared_flight::DEFAULT_LEASE_TIMEOUT,
            signing_key: None,
            fallback_keys: Vec::new(),
        }
    }

    /// An in-process cache of [`DEFAULT_CAPACITY`] entries: the default
    /// cache of `#[quickcache]`. No server needed.
    pub fn memory() -> Cache {
        Cache::builder()
            .local(Memory::with_capacity(DEFAULT_CAPACITY))
            .build()
    }

    /// A cache that stores nothing: every memoized call runs its body.
    pub fn null() -> Cache {
        // No breaker: `Null` never fails (and the breaker's code is not
        // compiled into every build for it).
        let mut builder = Cache::builder();
        builder.shared = Some(Arc::new(cachefn_backends::Null));
        builder.build()
    }

    /// The namespace of this cache's keys in its shared tier.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The local tier alone, as a [`Cache`] with the same low-level API and
    /// prefix (weppy's `cache.ram(...)`): its reads and writes touch only
    /// this process's memory, never the shared tier. `None` for a cache
    /// without a local tier. The handle has its own [`stats`](Cache::stats).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachefn::{Cache, backends::{Memory, Null}};
    ///
    /// let cache = Cache::builder().local(Memory::with_capacity(100)).shared(Null).build();
    /// let local = cache.local().unwrap();
    /// local.set("seen", &true, Duration::from_secs(5))?;
    /// assert_eq!(cache.get::<bool>("seen"), Some(true));         // the tiered cache sees it
    /// assert_eq!(cache.shared().unwrap().get::<bool>("seen"), None); // the shared tier does not
    /// # Ok::<(), cachefn::Error>(())
    /// ```
    pub fn local(&self) -> Option<&Cache> {
        let memory = self.inner.local.as_ref()?;
        Some(
            self.inner
                .local_only
                .get_or_init(|| self.tier_handle(Some(memory.clone()), None)),
        )
    }

    /// The shared tier alone, as a [`Cache`] with the same low-level API and
    /// prefix (weppy's `cache.redis(...)`): its reads and writes go to the
    /// shared tier only, and leave this process's local tier as it is.
    /// `None` for a cache without a shared tier.
    pub fn shared(&self) -> Option<&Cache> {
        let backend = self.inner.shared.as_ref()?;
        Some(
            self.inner
                .shared_only
                .get_or_init(|| self.tier_handle(None, Some(backend.clone()))),
        )
    }

    fn tier_handle(&self, local: Option<Arc<Memory>>, shared: Option<Arc<dyn Backend>>) -> Cache {
        Cache::from_tiers(
            local,
            shared,
            self.inner.prefix.clone(),
            self.inner.local_ttl,
            self.inner.signer.clone(),
        )
    }

    /// A cache over these tiers, with its own single-flight and counters.
    fn from_tiers(
        local: Option<Arc<Memory>>,
        shared: Option<Arc<dyn Backend>>,
        prefix: Box<str>,
        local_ttl: Duration,
        signer: Option<Arc<Signer>>,
    ) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                local,
                shared,
                prefix,
                local_ttl,
                local_only: OnceLock::new(),
                shared_only: OnceLock::new(),
                flights: Flights::new(crate::shared_flight::process_max_wait(
                    crate::shared_flight::DEFAULT_LEASE_TIMEOUT,
                )),
                counters: Counters::default(),
                shared_log: RateLimited::new(),
                own: None,
                shared_flight: crate::shared_flight::SharedFlight::new(
                    crate::shared_flight::DEFAULT_LEASE_TIMEOUT,
                ),
                signer,
            }),
        }
    }

    /// The local tier's store, if the cache has one: its size, capacity and
    /// entry-level operations.
    pub fn local_store(&self) -> Option<&Memory> {
        self.inner.local.as_deref()
    }

    /// What the cache counted since it was built.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The key as stored in the shared tier: `prefix:key`.
    pub fn storage_key(&self, key: impl AsRef<str>) -> String {
        self.stored(&key::normalize(key.as_ref()))
    }

    pub(crate) fn stored(&self, text: &str) -> String {
        let mut s = String::with_capacity(self.inner.prefix.len() + 1 + text.len());
        s.push_str(&self.inner.prefix);
        s.push(':');
        s.push_str(text);
        s
    }

    /// Decode bytes read from the shared tier under `text`: bound to that
    /// key, and signed with an accepted key when the cache verifies
    /// signatures. What does not check out is counted (in the function's
    /// counters too) and is a miss.
    pub(crate) fn decode_shared<T: DeserializeOwned + 'static>(
        &self,
        text: &str,
        bytes: &[u8],
        site: Option<&crate::stats::SiteStats>,
    ) -> Option<T> {
        let parts = [&*self.inner.prefix, ":", text];
        let binding = Binding {
            key: &parts,
            signer: self.inner.signer.as_deref(),
        };
        match codec::decode_bound::<T>(bytes, Some(binding)) {
            Ok(v) => Some(v),
            Err(e) => {
                let event = match e {
                    codec::DecodeError::Unauthenticated => crate::stats::Event::Unauthenticated,
                    _ => crate::stats::Event::Undecodable,
                };
                self.tally(site, event);
                if self.inner.shared_log.allow() {
                    tracing::debug!(target: "cachefn", key = %crate::log::KeyDigest(text),
                        reason = %e, "a value from the shared tier was not used");
                }
                None
            }
        }
    }

    /// What the low-level reads (`get`, `get_many`) make of bytes from the
    /// shared tier: a value bound to `text`, or a counter (`incr`), which
    /// the server keeps as plain decimal text, read as an `i64`.
    pub(crate) fn decode_read<T: DeserializeOwned + 'static>(
        &self,
        text: &str,
        bytes: &[u8],
    ) -> Option<T> {
        codec::decode_counter::<T>(bytes).or_else(|| self.decode_shared::<T>(text, bytes, None))
    }

    pub(crate) fn shared_failed(&self, op: &str, err: &Error) {
        self.inner.counters.shared_errors.add();
        if self.inner.shared_log.allow() {
            tracing::warn!(target: "cachefn", op, error = %err, prefix = %self.inner.prefix,
                "shared cache tier failed; serving without it");
        }
    }

    pub(crate) fn encode_failed(&self, text: &str, err: &Error) {
        if self.inner.shared_log.allow() {
            tracing::warn!(target: "cachefn", key = %crate::log::KeyDigest(text), error = %err, prefix = %self.inner.prefix,
                "a computed value could not be encoded; it was returned but not cached");
        }
    }

    pub(crate) fn decode_slot<T: DeserializeOwned + 'static>(&self, slot: &Slot) -> Option<T> {
        self.decode_value::<T>(slot.value())
    }

    pub(crate) fn forget_local(&self, fp: u128, text: &str) {
        if let Some(local) = &self.inner.local {
            local.remove(fp, text);
        }
    }
}
