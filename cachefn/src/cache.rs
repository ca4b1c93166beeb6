//! [`Cache`]: tiers composed behind one typed API.

use std::sync::Arc;
use std::time::Duration;

use cachefn_backends::{clock, Backend, LocalValue, Memory, Slot};
use serde::{de::DeserializeOwned, Serialize};

use crate::codec::{self, DecodeError};
use crate::flight::{Flights, Joined};
use crate::key::{self, Key};
use crate::log::RateLimited;
use crate::stats::{Counters, Stats};
use crate::Error;

/// Entries in the local tier of [`Cache::memory()`].
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Namespace of a cache built without [`CacheBuilder::prefix`].
pub const DEFAULT_PREFIX: &str = "cachefn";
/// Local lifetime of entries read from or written to a shared tier through
/// the low-level API (memoized functions use their `local_timeout`).
pub const DEFAULT_LOCAL_TTL: Duration = Duration::from_secs(10);
const MAX_PREFIX_LEN: usize = 48;

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
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    local: Option<Memory>,
    shared: Option<Box<dyn Backend>>,
    prefix: Box<str>,
    local_ttl: Duration,
    flights: Flights,
    counters: Counters,
    shared_log: RateLimited,
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
    local: Option<Memory>,
    shared: Option<Box<dyn Backend>>,
    prefix: String,
    local_ttl: Duration,
}

impl CacheBuilder {
    /// The in-process tier, bounded, checked first.
    pub fn local(mut self, tier: Memory) -> Self {
        self.local = Some(tier);
        self
    }

    /// The tier shared by every process (Redis, memcached, disk, ...),
    /// behind a [`CircuitBreaker`](cachefn_backends::CircuitBreaker): after
    /// a few failures in a row it is skipped for a second, then probed.
    pub fn shared(mut self, backend: impl Backend) -> Self {
        self.shared = Some(Box::new(cachefn_backends::CircuitBreaker::new(backend)));
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

    /// The cache.
    pub fn build(self) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                local: self.local,
                shared: self.shared,
                prefix: clean_prefix(&self.prefix).into(),
                local_ttl: self.local_ttl,
                flights: Flights::new(),
                counters: Counters::default(),
                shared_log: RateLimited::new(),
            }),
        }
    }
}

fn clean_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        return DEFAULT_PREFIX.to_owned();
    }
    // No `:` survives, so the first `:` of a stored key always ends the
    // prefix: caches "app" and "app:sessions" never share or clear each
    // other's keys.
    let escaped = key::escape_text(prefix);
    if escaped.len() <= MAX_PREFIX_LEN {
        return escaped;
    }
    let hash = xxhash_rust::xxh3::xxh3_128(escaped.as_bytes());
    format!("{}#{hash:032x}", &escaped[..MAX_PREFIX_LEN - 33])
}

/// A value decoded from the shared tier, with its bytes and the local tier's
/// write generation from before the read.
struct SharedRead<T> {
    value: T,
    bytes: Vec<u8>,
    seen: Option<u64>,
}

/// A typed value in the local tier: a hit clones it, decoding nothing.
pub(crate) struct Typed<T>(pub(crate) T);

impl<T: Serialize + Send + Sync + 'static> LocalValue for Typed<T> {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        codec::encode(&self.0, 0)
    }
    fn size_hint(&self) -> usize {
        postcard::experimental::serialized_size(&self.0).unwrap_or(0)
    }
}

/// Encoded bytes in the local tier (values stored through the low-level API).
pub(crate) struct Encoded(pub(crate) Vec<u8>);

impl LocalValue for Encoded {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        Ok(self.0.clone())
    }
    fn size_hint(&self) -> usize {
        self.0.len()
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().min(u64::MAX as u128) as u64
}

/// The Unix-ms expiry to record for a value stored now for `ttl`.
fn expiry_for(ttl: Duration) -> u64 {
    if ttl.is_zero() {
        0
    } else {
        clock::unix_ms().saturating_add(ttl_ms(ttl))
    }
}

/// The smaller of two lifetimes, where zero means "no expiry".
fn min_ttl(a: Duration, b: Duration) -> Duration {
    match (a.is_zero(), b.is_zero()) {
        (true, _) => b,
        (_, true) => a,
        _ => a.min(b),
    }
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
        Cache::builder().shared(cachefn_backends::Null).build()
    }

    /// The namespace of this cache's keys in its shared tier.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The local tier, if the cache has one.
    pub fn local(&self) -> Option<&Memory> {
        self.inner.local.as_ref()
    }

    /// What the cache counted since it was built.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The key as stored in the shared tier: `prefix:key`.
    pub fn storage_key(&self, key: impl AsRef<str>) -> String {
        self.stored(&key::normalize(key.as_ref()))
    }

    fn stored(&self, text: &str) -> String {
        let mut s = String::with_capacity(self.inner.prefix.len() + 1 + text.len());
        s.push_str(&self.inner.prefix);
        s.push(':');
        s.push_str(text);
        s
    }

    pub(crate) fn has_shared(&self) -> bool {
        self.inner.shared.is_some()
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.flights
    }

    pub(crate) fn count_miss(&self) {
        self.inner.counters.misses.add();
    }

    fn shared_failed(&self, op: &str, err: &Error) {
        self.inner.counters.shared_errors.add();
        if self.inner.shared_log.allow() {
            tracing::warn!(target: "cachefn", op, error = %err, prefix = %self.inner.prefix,
                "shared cache tier failed; serving without it");
        }
    }

    // ----- typed access used by memoized functions ------------------------

    /// A local hit of a value of type `T`, cloned.
    #[inline]
    pub(crate) fn local_typed<T: Clone + DeserializeOwned + 'static>(&self, fp: u128) -> Option<T> {
        let value = self.inner.local.as_ref()?.read(fp, |slot| {
            match slot.value().as_any().downcast_ref::<Typed<T>>() {
                Some(Typed(value)) => Some(value.clone()),
                None => self.decode_slot::<T>(slot),
            }
        })??;
        self.inner.counters.local_hits.add();
        Some(value)
    }

    fn decode_slot<T: DeserializeOwned + 'static>(&self, slot: &Slot) -> Option<T> {
        let bytes = match slot.value().as_any().downcast_ref::<Encoded>() {
            Some(Encoded(bytes)) => codec::decode::<T>(bytes),
            None => slot
                .value()
                .encode()
                .map_err(|_| DecodeError::Corrupt)
                .and_then(|b| codec::decode::<T>(&b)),
        };
        match bytes {
            Ok(v) => Some(v),
            Err(_) => {
                self.inner.counters.undecodable.add();
                None
            }
        }
    }

    /// The shared tier's value of type `T` under `text`, back-filling the
    /// local tier for at most `local_ttl`.
    pub(crate) fn shared_typed<T>(&self, text: &str, fp: u128, local_ttl: Duration) -> Option<T>
    where
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let read = self.read_shared::<T>(text, fp)?;
        self.inner.counters.shared_hits.add();
        Some(self.back_fill(fp, text, read, local_ttl, |v, _| Typed(v.clone())))
    }

    /// Read `text` from the shared tier and decode it as a `T`, counting
    /// failures and undecodable bytes. The local tier's write generation is
    /// taken before the read, so that [`Cache::back_fill`] loses to any
    /// write, delete or clear that happened while the read ran.
    fn read_shared<T: DeserializeOwned + 'static>(
        &self,
        text: &str,
        fp: u128,
    ) -> Option<SharedRead<T>> {
        let shared = self.inner.shared.as_ref()?;
        let seen = self.inner.local.as_ref().map(|l| l.generation(fp));
        let bytes = match shared.get(&self.stored(text)) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                self.shared_failed("get", &e);
                return None;
            }
        };
        match codec::decode::<T>(&bytes) {
            Ok(value) => Some(SharedRead { value, bytes, seen }),
            Err(_) => {
                self.inner.counters.undecodable.add();
                None
            }
        }
    }

    /// Copy a value just read from the shared tier into the local tier, for
    /// at most `local_ttl` and never past the entry's own expiry, unless the
    /// entry was written, removed or cleared since the read started. `local`
    /// makes the local tier's value, only when one is stored. Returns the value.
    fn back_fill<T, V: LocalValue>(
        &self,
        fp: u128,
        text: &str,
        read: SharedRead<T>,
        local_ttl: Duration,
        local: impl FnOnce(&T, Vec<u8>) -> V,
    ) -> T {
        if let (Some(tier), Some(seen)) = (&self.inner.local, read.seen) {
            if let Some(ttl) = back_fill_ttl(&read.bytes, local_ttl) {
                tier.insert_if_unchanged(fp, text, local(&read.value, read.bytes), ttl, seen);
            }
        }
        read.value
    }

    /// Store a typed value: encoded in the shared tier for `ttl`, typed in
    /// the local tier for `local_ttl` when there is a shared tier, else `ttl`.
    pub(crate) fn store_typed<T>(
        &self,
        text: &str,
        fp: u128,
        value: &T,
        ttl: Duration,
        local_ttl: Duration,
    ) -> Result<(), Error>
    where
        T: Clone + Serialize + Send + Sync + 'static,
    {
        let mut result = Ok(());
        let mut local_ttl_eff = ttl;
        if let Some(shared) = &self.inner.shared {
            local_ttl_eff = min_ttl(local_ttl, ttl);
            result = codec::encode(value, expiry_for(ttl))
                .and_then(|bytes| shared.set(&self.stored(text), &bytes, ttl));
            if let Err(e) = &result {
                if !matches!(e, Error::Encode(_)) {
                    self.shared_failed("set", e);
                }
            }
        }
        if let Some(local) = &self.inner.local {
            if result.is_ok() && !(self.has_shared() && local_ttl.is_zero()) {
                local.insert(fp, text, Typed(value.clone()), local_ttl_eff);
            } else {
                local.remove(fp);
            }
        }
        result
    }

    /// Remove one key from every tier.
    pub(crate) fn remove(&self, text: &str, fp: u128) -> Result<bool, Error> {
        let local = self.inner.local.as_ref().is_some_and(|l| l.remove(fp));
        let shared = match &self.inner.shared {
            Some(s) => {
                let removed = s.delete(&self.stored(text));
                // Again: a read of the shared tier that raced the delete may
                // have put the old value back.
                self.forget_local(fp);
                removed.inspect_err(|e| self.shared_failed("delete", e))?
            }
            None => false,
        };
        Ok(local || shared)
    }

    fn forget_local(&self, fp: u128) {
        if let Some(local) = &self.inner.local {
            local.remove(fp);
        }
    }

    /// Remove every key that starts with `start` from every tier.
    pub(crate) fn remove_prefix(&self, start: &str) -> Result<(), Error> {
        if let Some(local) = &self.inner.local {
            local.clear_prefix(start);
        }
        if let Some(shared) = &self.inner.shared {
            let cleared = shared.clear_prefix(&self.stored(start));
            // Again: reads that raced the shared clear may have back-filled.
            if let Some(local) = &self.inner.local {
                local.clear_prefix(start);
            }
            cleared.inspect_err(|e| self.shared_failed("clear", e))?;
        }
        Ok(())
    }

    // ----- the low-level API ----------------------------------------------

    /// The value under `key`, computing and storing it with `f` when absent
    /// (weppy's `cache(key, f, ttl)`).
    ///
    /// Concurrent callers of one absent key in this process wait for a single
    /// run of `f` and then read what it stored. If `f` panics, the panic
    /// reaches its caller and one waiting caller runs `f` instead. If the
    /// value cannot be stored (a shared tier is down), it is still returned.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cachefn::Cache::memory();
    /// let page: String = cache.get_or_set("page:home", Duration::from_secs(30), || "<h1>hi</h1>".into());
    /// assert_eq!(page, "<h1>hi</h1>");
    /// ```
    pub fn get_or_set<T, F>(&self, key: impl AsRef<str>, ttl: Duration, f: F) -> T
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> T,
    {
        let key = Key::new(key);
        let mut f = Some(f);
        loop {
            if let Some(v) = self.get_key::<T>(&key, false) {
                return v;
            }
            match self.inner.flights.join(key.fingerprint()) {
                Joined::Lead(leader) => {
                    if let Some(v) = self.get_key::<T>(&key, true) {
                        return v;
                    }
                    self.inner.counters.misses.add();
                    let value = (f.take().expect("f runs once"))();
                    // Waiters get the encoded value, not a second run of `f`.
                    let bytes = codec::encode(&value, expiry_for(ttl)).ok().map(Arc::new);
                    if let Some(bytes) = &bytes {
                        let _ = self.set_encoded(&key, bytes, ttl);
                    }
                    leader.finish(|| bytes.map(|b| b as crate::flight::Shared));
                    return value;
                }
                Joined::Alone => {
                    self.inner.counters.misses.add();
                    let value = (f.take().expect("f runs once"))();
                    let _ = self.set_key(&key, &value, ttl);
                    return value;
                }
                Joined::Value(shared) => {
                    if let Some(v) = shared
                        .downcast_ref::<Vec<u8>>()
                        .and_then(|b| codec::decode::<T>(b).ok())
                    {
                        return v;
                    }
                    // Shared by a memoized function of another type: read again.
                }
            }
        }
    }

    /// The value under `key` as a `T`; `None` when absent, expired, of
    /// another type, or when the shared tier cannot be read.
    ///
    /// ```
    /// let cache = cachefn::Cache::memory();
    /// assert_eq!(cache.get::<String>("nothing"), None);
    /// ```
    pub fn get<T: DeserializeOwned + 'static>(&self, key: impl AsRef<str>) -> Option<T> {
        let v = self.get_key(&Key::new(key), false);
        if v.is_none() {
            self.inner.counters.misses.add();
        }
        v
    }

    fn get_key<T: DeserializeOwned + 'static>(&self, key: &Key, quiet: bool) -> Option<T> {
        let fp = key.fingerprint();
        if let Some(local) = &self.inner.local {
            if let Some(slot) = local.get(fp) {
                if let Some(v) = self.decode_slot::<T>(&slot) {
                    if !quiet {
                        self.inner.counters.local_hits.add();
                    }
                    return Some(v);
                }
            }
        }
        let read = self.read_shared::<T>(key.as_str(), fp)?;
        if !quiet {
            self.inner.counters.shared_hits.add();
        }
        Some(
            self.back_fill(fp, key.as_str(), read, self.inner.local_ttl, |_, bytes| {
                Encoded(bytes)
            }),
        )
    }

    /// Store `value` under `key` for `ttl` (`Duration::ZERO`: until evicted).
    ///
    /// # Errors
    ///
    /// When the value cannot be encoded, or the shared tier cannot be
    /// written (the local tier then holds no stale value for the key).
    pub fn set<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.set_key(&Key::new(key), value, ttl)
    }

    fn set_key<T: Serialize + ?Sized>(
        &self,
        key: &Key,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        let bytes = codec::encode(value, expiry_for(ttl))?;
        self.set_encoded(key, &bytes, ttl)
    }

    /// Store encoded bytes in every tier.
    fn set_encoded(&self, key: &Key, bytes: &[u8], ttl: Duration) -> Result<(), Error> {
        let mut local_ttl = ttl;
        if let Some(shared) = &self.inner.shared {
            local_ttl = min_ttl(self.inner.local_ttl, ttl);
            if let Err(e) = shared.set(&self.stored(key.as_str()), bytes, ttl) {
                self.shared_failed("set", &e);
                self.forget_local(key.fingerprint());
                return Err(e);
            }
        }
        if let Some(local) = &self.inner.local {
            local.insert(
                key.fingerprint(),
                key.as_str(),
                Encoded(bytes.to_vec()),
                local_ttl,
            );
        }
        Ok(())
    }

    /// Store `value` only if `key` holds nothing; `true` if it was stored.
    /// Atomic in the shared tier when there is one, else in the local tier.
    ///
    /// # Errors
    ///
    /// As [`Cache::set`].
    pub fn add<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let key = Key::new(key);
        let bytes = codec::encode(value, expiry_for(ttl))?;
        if let Some(shared) = &self.inner.shared {
            let added = shared
                .add(&self.stored(key.as_str()), &bytes, ttl)
                .inspect_err(|e| self.shared_failed("add", e))?;
            if let (true, Some(local)) = (added, &self.inner.local) {
                let ttl = min_ttl(self.inner.local_ttl, ttl);
                local.insert(key.fingerprint(), key.as_str(), Encoded(bytes), ttl);
            }
            return Ok(added);
        }
        let Some(local) = &self.inner.local else {
            return Ok(false);
        };
        Ok(local.insert_if_absent(key.fingerprint(), key.as_str(), Encoded(bytes), ttl))
    }

    /// Remove `key` from every tier; `true` if something was removed.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub fn delete(&self, key: impl AsRef<str>) -> Result<bool, Error> {
        let key = Key::new(key);
        self.remove(key.as_str(), key.fingerprint())
    }

    /// The values under `keys`, in order: one round trip to the shared tier
    /// for the keys the local tier does not hold.
    pub fn get_many<T: DeserializeOwned + 'static, K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Vec<Option<T>> {
        let keys: Vec<Key> = keys.iter().map(Key::new).collect();
        let mut out: Vec<Option<T>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let hit = self
                .inner
                .local
                .as_ref()
                .and_then(|l| l.get(key.fingerprint()));
            let v = hit.and_then(|slot| self.decode_slot::<T>(&slot));
            if v.is_some() {
                self.inner.counters.local_hits.add();
            } else {
                missing.push(i);
            }
            out.push(v);
        }
        if let (Some(shared), false) = (&self.inner.shared, missing.is_empty()) {
            let stored: Vec<String> = missing
                .iter()
                .map(|&i| self.stored(keys[i].as_str()))
                .collect();
            let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
            match shared.get_many(&refs) {
                Ok(found) => {
                    for (&i, bytes) in missing.iter().zip(found) {
                        match bytes.map(|b| codec::decode::<T>(&b)) {
                            Some(Ok(v)) => {
                                self.inner.counters.shared_hits.add();
                                out[i] = Some(v);
                            }
                            Some(Err(_)) => self.inner.counters.undecodable.add(),
                            None => {}
                        }
                    }
                }
                Err(e) => self.shared_failed("get_many", &e),
            }
        }
        for v in &out {
            if v.is_none() {
                self.inner.counters.misses.add();
            }
        }
        out
    }

    /// Store every `(key, value)` pair for `ttl`: one round trip to the
    /// shared tier.
    ///
    /// # Errors
    ///
    /// As [`Cache::set`]; on error no pair is left stale in the local tier.
    pub fn set_many<K: AsRef<str>, T: Serialize>(
        &self,
        items: &[(K, T)],
        ttl: Duration,
    ) -> Result<(), Error> {
        let mut encoded = Vec::with_capacity(items.len());
        for (k, v) in items {
            encoded.push((Key::new(k), codec::encode(v, expiry_for(ttl))?));
        }
        let mut local_ttl = ttl;
        if let Some(shared) = &self.inner.shared {
            local_ttl = min_ttl(self.inner.local_ttl, ttl);
            let stored: Vec<String> = encoded
                .iter()
                .map(|(k, _)| self.stored(k.as_str()))
                .collect();
            let pairs: Vec<(&str, &[u8])> = stored
                .iter()
                .zip(&encoded)
                .map(|(s, (_, b))| (s.as_str(), b.as_slice()))
                .collect();
            if let Err(e) = shared.set_many(&pairs, ttl) {
                self.shared_failed("set_many", &e);
                for (k, _) in &encoded {
                    self.forget_local(k.fingerprint());
                }
                return Err(e);
            }
        }
        if let Some(local) = &self.inner.local {
            for (k, bytes) in encoded {
                local.insert(k.fingerprint(), k.as_str(), Encoded(bytes), local_ttl);
            }
        }
        Ok(())
    }

    /// Remove every key: one round trip to the shared tier.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<(), Error> {
        let keys: Vec<Key> = keys.iter().map(Key::new).collect();
        for k in &keys {
            self.forget_local(k.fingerprint());
        }
        if let Some(shared) = &self.inner.shared {
            let stored: Vec<String> = keys.iter().map(|k| self.stored(k.as_str())).collect();
            let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
            let deleted = shared.delete_many(&refs);
            for k in &keys {
                self.forget_local(k.fingerprint());
            }
            deleted.inspect_err(|e| self.shared_failed("delete_many", e))?;
        }
        Ok(())
    }

    /// Atomically add `delta` to the counter under `key` (a missing key
    /// starts at 0) and return the new value. Read it back with
    /// `get::<i64>`.
    ///
    /// # Errors
    ///
    /// [`Error::NotACounter`] when the key holds something else; a shared
    /// tier's error when it cannot be reached.
    pub fn incr(&self, key: impl AsRef<str>, delta: i64) -> Result<i64, Error> {
        let key = Key::new(key);
        let fp = key.fingerprint();
        if let Some(shared) = &self.inner.shared {
            self.forget_local(fp);
            let n = shared.incr(&self.stored(key.as_str()), delta);
            self.forget_local(fp);
            return n.inspect_err(|e| self.shared_failed("incr", e));
        }
        let Some(local) = &self.inner.local else {
            return Ok(delta);
        };
        local.read_modify_write(|| {
            let (current, ttl) = match local.get(fp) {
                None => (0, Duration::ZERO),
                Some(slot) => {
                    let Some(n) = self.decode_slot::<i64>(&slot) else {
                        return Err(Error::NotACounter(key.to_string()));
                    };
                    (n, slot.remaining(clock::now_ms()).unwrap_or(Duration::ZERO))
                }
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| Error::NotACounter(format!("{key} (overflow)")))?;
            local.insert(fp, key.as_str(), Typed(next), ttl);
            Ok(next)
        })
    }

    /// [`incr`](Cache::incr) by `-delta`.
    ///
    /// # Errors
    ///
    /// As [`Cache::incr`].
    pub fn decr(&self, key: impl AsRef<str>, delta: i64) -> Result<i64, Error> {
        let Some(negated) = delta.checked_neg() else {
            return Err(Error::NotACounter(format!(
                "{} (a decrement of i64::MIN overflows)",
                key.as_ref()
            )));
        };
        self.incr(key, negated)
    }

    /// `true` when `key` holds a live value in some tier.
    pub fn has(&self, key: impl AsRef<str>) -> bool {
        let key = Key::new(key);
        if let Some(local) = &self.inner.local {
            if local.get(key.fingerprint()).is_some() {
                return true;
            }
        }
        match &self.inner.shared {
            Some(shared) => shared
                .has(&self.stored(key.as_str()))
                .inspect_err(|e| self.shared_failed("has", e))
                .unwrap_or(false),
            None => false,
        }
    }

    /// Remove every entry of this cache: all of its local tier, and the keys
    /// under its prefix in the shared tier, never anything else on the server.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub fn clear(&self) -> Result<(), Error> {
        if let Some(local) = &self.inner.local {
            local.clear();
        }
        if let Some(shared) = &self.inner.shared {
            let cleared = shared.clear_prefix(&self.stored(""));
            // Again: reads that raced the shared clear may have back-filled.
            if let Some(local) = &self.inner.local {
                local.clear();
            }
            cleared.inspect_err(|e| self.shared_failed("clear", e))?;
        }
        Ok(())
    }
}
