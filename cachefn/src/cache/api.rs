//! The low-level typed API of [`Cache`]. Every method that can reach the
//! shared tier is written once, as an `async fn ..._io`; the sync method runs
//! it with [`block_on`] and its async twin (`api_async.rs`) awaits it.

use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use super::preload::Known;
use super::write::{clamp_ttl, Entry, Put};
use super::{expiry_for, min_ttl, Cache, Encoded, Owned, Plan};
use crate::io::{block_on, Io};
use crate::key::Key;
use crate::{Error, Storable};

impl Cache {
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
        block_on(self.get_or_set_io::<T, _>(Io::Blocking, &key, ttl, async { f() }))
    }

    /// The value under `key` as a `T`; `None` when absent, expired, of
    /// another type, or when the shared tier cannot be read.
    ///
    /// ```
    /// let cache = cachefn::Cache::memory();
    /// assert_eq!(cache.get::<String>("nothing"), None);
    /// ```
    pub fn get<T: DeserializeOwned + 'static>(&self, key: impl AsRef<str>) -> Option<T> {
        block_on(self.get_io(Io::Blocking, &Key::new(key)))
    }

    /// Store `value` under `key` for `ttl` (`Duration::ZERO`: until evicted).
    ///
    /// # Errors
    ///
    /// When the value cannot be encoded, or the shared tier cannot be
    /// written (the local tier then holds no stale value for the key).
    pub fn set<T: Storable>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        block_on(self.set_io(Io::Blocking, &Key::new(key), value, ttl))
    }

    /// Store `value` only if `key` holds nothing; `true` if it was stored.
    /// Atomic in the shared tier when there is one, else in the local tier.
    ///
    /// # Errors
    ///
    /// As [`Cache::set`].
    pub fn add<T: Storable>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, Error> {
        block_on(self.add_io(Io::Blocking, &Key::new(key), value, ttl))
    }

    /// Remove `key` from every tier; `true` if something was removed.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub fn delete(&self, key: impl AsRef<str>) -> Result<bool, Error> {
        let key = Key::new(key);
        block_on(self.remove(Io::Blocking, key.stored(), key.fingerprint()))
    }

    /// The values under `keys`, in order: one round trip to the shared tier
    /// for the keys the local tier does not hold. The value type is the one
    /// type argument (`keys` is `impl AsRef<str>`):
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cachefn::Cache::memory();
    /// cache.set("a", &1u32, Duration::from_secs(60))?;
    /// assert_eq!(cache.get_many::<u32>(&["a", "b"]), vec![Some(1), None]);
    /// # Ok::<(), cachefn::Error>(())
    /// ```
    pub fn get_many<T: DeserializeOwned + 'static>(
        &self,
        keys: &[impl AsRef<str>],
    ) -> Vec<Option<T>> {
        block_on(self.get_many_io(Io::Blocking, keys))
    }

    /// Store every `(key, value)` pair for `ttl`: one round trip to the
    /// shared tier.
    ///
    /// # Errors
    ///
    /// As [`Cache::set`]; on error no pair is left stale in the local tier.
    pub fn set_many<K: AsRef<str>, T: Storable>(
        &self,
        items: &[(K, T)],
        ttl: Duration,
    ) -> Result<(), Error> {
        block_on(self.set_many_io(Io::Blocking, items, ttl))
    }

    /// Remove every key: one round trip to the shared tier.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<(), Error> {
        block_on(self.delete_many_io(Io::Blocking, keys))
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
        block_on(self.incr_io(Io::Blocking, &Key::new(key), delta))
    }

    /// [`incr`](Cache::incr) by `-delta`.
    ///
    /// # Errors
    ///
    /// As [`Cache::incr`].
    pub fn decr(&self, key: impl AsRef<str>, delta: i64) -> Result<i64, Error> {
        self.incr(key.as_ref(), negate(key.as_ref(), delta)?)
    }

    /// `true` when `key` holds a live value in some tier.
    pub fn has(&self, key: impl AsRef<str>) -> bool {
        block_on(self.has_io(Io::Blocking, &Key::new(key)))
    }

    /// Remove every entry of this cache: all of its local tier, and the keys
    /// under its prefix in the shared tier, never anything else on the server.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub fn clear(&self) -> Result<(), Error> {
        block_on(self.remove_prefix(Io::Blocking, ""))
    }
}

/// `-delta` for `decr`.
pub(super) fn negate(key: &str, delta: i64) -> Result<i64, Error> {
    delta
        .checked_neg()
        .ok_or_else(|| Error::NotACounter(format!("{key} (a decrement of i64::MIN overflows)")))
}

// ----- the implementations, for both APIs ---------------------------------

impl Cache {
    /// `get_or_set` for both APIs: the read-through path, typed as [`Owned`].
    pub(super) async fn get_or_set_io<T, Fut>(&self, io: Io, key: &Key, ttl: Duration, f: Fut) -> T
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let plan = Plan {
            text: key.stored(),
            fp: key.fingerprint(),
            ttl,
            local_ttl: self.inner.local_ttl,
            cache_none: true,
            none_ttl: None,
            freshness: super::Freshness::default(),
            site: None,
            early_drawn: false,
            shared_flight: false,
        };
        self.read_through::<Owned<T>, _>(io, &plan, false, f).await
    }

    pub(super) async fn get_io<T: DeserializeOwned + 'static>(
        &self,
        io: Io,
        key: &Key,
    ) -> Option<T> {
        let fp = key.fingerprint();
        if let Some(local) = &self.inner.local {
            if let Some(slot) = local.get(fp, key.stored()) {
                if let Some(v) = self.decode_slot::<T>(&slot) {
                    self.inner.counters.local_hits.add();
                    return Some(v);
                }
            }
        }
        let text = key.stored();
        let Some(read) = self.read_shared::<T>(io, text, fp, None, true).await else {
            self.inner.counters.misses.add();
            return None;
        };
        self.inner.counters.shared_hits.add();
        let (value, bytes) = (read.value, read.bytes);
        self.back_fill(text, fp, &bytes, read.seen, self.inner.local_ttl, || {
            Some(Encoded(bytes.clone()))
        });
        Some(value)
    }

    pub(super) async fn set_io<T: Storable>(
        &self,
        io: Io,
        key: &Key,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.put_value(io, key, value, ttl, Put::Replace)
            .await
            .map(drop)
    }

    pub(super) async fn add_io<T: Storable>(
        &self,
        io: Io,
        key: &Key,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.put_value(io, key, value, ttl, Put::IfAbsent).await
    }

    /// `set` or `add` of one value: encoded, stored in every tier, kept
    /// locally encoded for the local lifetime of the low-level API.
    async fn put_value<T: Storable>(
        &self,
        io: Io,
        key: &Key,
        value: &T,
        ttl: Duration,
        how: Put<'_>,
    ) -> Result<bool, Error> {
        let ttl = clamp_ttl(ttl);
        let bytes = self.encode_entry(key.stored(), value, expiry_for(ttl), 0)?;
        let entry = Entry {
            text: key.stored(),
            fp: key.fingerprint(),
            bytes: Some(&bytes),
            kept: Some((Encoded(bytes.clone()), self.local_ttl_for(ttl))),
        };
        self.put(io, vec![entry], how, ttl).await
    }

    /// How long the low-level API keeps a value stored for `ttl` locally:
    /// `ttl` in a cache without a shared tier, else at most the cache's
    /// local lifetime.
    fn local_ttl_for(&self, ttl: Duration) -> Duration {
        match self.inner.shared {
            Some(_) => min_ttl(self.inner.local_ttl, ttl),
            None => ttl,
        }
    }

    pub(super) async fn get_many_io<T: DeserializeOwned + 'static, K: AsRef<str>>(
        &self,
        io: Io,
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
                .and_then(|l| l.get(key.fingerprint(), key.stored()));
            let mut v = hit.and_then(|slot| self.decode_slot::<T>(&slot));
            if v.is_some() {
                self.inner.counters.local_hits.add();
            } else {
                match self.preloaded(key.fingerprint()) {
                    Known::Unknown => missing.push(i),
                    Known::Miss => {}
                    Known::Bytes(bytes, _) => {
                        v = self.decode_read(key.stored(), &bytes);
                        if v.is_some() {
                            self.inner.counters.shared_hits.add();
                        }
                    }
                }
            }
            out.push(v);
        }
        if let (Some(shared), false) = (self.inner.shared.as_deref(), missing.is_empty()) {
            let stored: Vec<String> = missing
                .iter()
                .map(|&i| self.stored(keys[i].stored()))
                .collect();
            let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
            match io.get_many(shared, &refs).await {
                Ok(found) => {
                    for (&i, bytes) in missing.iter().zip(found) {
                        if let Some(v) = bytes.and_then(|b| self.decode_read(keys[i].stored(), &b))
                        {
                            self.inner.counters.shared_hits.add();
                            out[i] = Some(v);
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

    pub(super) async fn set_many_io<K: AsRef<str>, T: Storable>(
        &self,
        io: Io,
        items: &[(K, T)],
        ttl: Duration,
    ) -> Result<(), Error> {
        let ttl = clamp_ttl(ttl);
        let mut encoded = Vec::with_capacity(items.len());
        for (k, v) in items {
            let key = Key::new(k);
            let bytes = self.encode_entry(key.stored(), v, expiry_for(ttl), 0)?;
            encoded.push((key, bytes));
        }
        if encoded.is_empty() {
            return Ok(());
        }
        let local_ttl = self.local_ttl_for(ttl);
        let entries = encoded
            .iter()
            .map(|(k, bytes)| Entry {
                text: k.stored(),
                fp: k.fingerprint(),
                bytes: Some(bytes),
                kept: Some((Encoded(bytes.clone()), local_ttl)),
            })
            .collect();
        self.put(io, entries, Put::Replace, ttl).await.map(drop)
    }

    pub(super) async fn delete_many_io<K: AsRef<str>>(
        &self,
        io: Io,
        keys: &[K],
    ) -> Result<(), Error> {
        let keys: Vec<Key> = keys.iter().map(Key::new).collect();
        let keys: Vec<(&str, u128)> = keys.iter().map(|k| (k.stored(), k.fingerprint())).collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.remove_keys(io, &keys).await.map(drop)
    }

    pub(super) async fn incr_io(&self, io: Io, key: &Key, delta: i64) -> Result<i64, Error> {
        self.incr_key(io, key.stored(), key.fingerprint(), delta)
            .await
    }

    pub(super) async fn has_io(&self, io: Io, key: &Key) -> bool {
        if let Some(local) = &self.inner.local {
            if local.get(key.fingerprint(), key.stored()).is_some() {
                return true;
            }
        }
        match self.preloaded(key.fingerprint()) {
            Known::Bytes(..) => return true,
            Known::Miss => return false,
            Known::Unknown => {}
        }
        match self.inner.shared.as_deref() {
            Some(shared) => io
                .has(shared, &self.stored(key.stored()))
                .await
                .inspect_err(|e| self.shared_failed("has", e))
                .unwrap_or(false),
            None => false,
        }
    }
}
