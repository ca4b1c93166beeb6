//! The low-level typed API of [`Cache`]. Every method that can reach the
//! shared tier is written once, as an `async fn ..._io`; the sync method runs
//! it with [`block_on`] and its async twin (`api_async.rs`) awaits it.

use std::time::Duration;

use cachefn_backends::clock;
use serde::{de::DeserializeOwned, Serialize};

use super::preload::Known;
use super::{expiry_for, min_ttl, Cache, Encoded, Owned, Plan, Typed};
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
        let Some(read) = self.read_shared::<T>(io, key.stored(), fp).await else {
            self.inner.counters.misses.add();
            return None;
        };
        self.inner.counters.shared_hits.add();
        Some(
            self.back_fill(fp, key.stored(), read, self.inner.local_ttl, |_, bytes| {
                Encoded(bytes)
            }),
        )
    }

    pub(super) async fn set_io<T: Storable>(
        &self,
        io: Io,
        key: &Key,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        let bytes = self.encode_for(key.stored(), value, expiry_for(ttl), 0)?;
        self.set_encoded_io(io, key, &bytes, ttl).await
    }

    /// Store encoded bytes in every tier.
    pub(super) async fn set_encoded_io(
        &self,
        io: Io,
        key: &Key,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<(), Error> {
        let mut local_ttl = ttl;
        if let Some(shared) = self.inner.shared.as_deref() {
            local_ttl = min_ttl(self.inner.local_ttl, ttl);
            let own = self.own_write(key.fingerprint());
            let set = io.set(shared, &self.stored(key.stored()), bytes, ttl).await;
            self.note_preloaded(key.fingerprint(), set.is_ok().then_some(bytes));
            let kept = Some(Encoded(bytes.to_vec()));
            self.own_write_done(own, set.is_ok(), key.stored(), kept, local_ttl);
            if let Err(e) = set {
                self.shared_failed("set", &e);
                return Err(e);
            }
            return Ok(());
        }
        if let Some(local) = &self.inner.local {
            local.insert(
                key.fingerprint(),
                key.stored(),
                Encoded(bytes.to_vec()),
                local_ttl,
            );
        }
        Ok(())
    }

    pub(super) async fn add_io<T: Storable>(
        &self,
        io: Io,
        key: &Key,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let bytes = self.encode_for(key.stored(), value, expiry_for(ttl), 0)?;
        if let Some(shared) = self.inner.shared.as_deref() {
            let added = io
                .add(shared, &self.stored(key.stored()), &bytes, ttl)
                .await
                .inspect_err(|e| self.shared_failed("add", e))?;
            if added {
                self.note_preloaded(key.fingerprint(), Some(&bytes));
            }
            if let (true, Some(local)) = (added, &self.inner.local) {
                let ttl = min_ttl(self.inner.local_ttl, ttl);
                local.insert(key.fingerprint(), key.stored(), Encoded(bytes), ttl);
            }
            return Ok(added);
        }
        let Some(local) = &self.inner.local else {
            return Ok(false);
        };
        Ok(local.insert_if_absent(key.fingerprint(), key.stored(), Encoded(bytes), ttl))
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
                    Known::Bytes(bytes) => {
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
        let mut encoded = Vec::with_capacity(items.len());
        for (k, v) in items {
            let k = Key::new(k);
            let bytes = self.encode_for(k.stored(), v, expiry_for(ttl), 0)?;
            encoded.push((k, bytes));
        }
        let mut local_ttl = ttl;
        if let Some(shared) = self.inner.shared.as_deref() {
            local_ttl = min_ttl(self.inner.local_ttl, ttl);
            let stored: Vec<String> = encoded
                .iter()
                .map(|(k, _)| self.stored(k.stored()))
                .collect();
            let pairs: Vec<(&str, &[u8])> = stored
                .iter()
                .zip(&encoded)
                .map(|(s, (_, b))| (s.as_str(), b.as_slice()))
                .collect();
            let set = io.set_many(shared, &pairs, ttl).await;
            for (k, bytes) in &encoded {
                self.note_preloaded(k.fingerprint(), set.is_ok().then_some(&bytes[..]));
            }
            if let Err(e) = set {
                self.shared_failed("set_many", &e);
                for (k, _) in &encoded {
                    self.forget_local(k.fingerprint(), k.stored());
                }
                return Err(e);
            }
        }
        if let Some(local) = &self.inner.local {
            for (k, bytes) in encoded {
                local.insert(k.fingerprint(), k.stored(), Encoded(bytes), local_ttl);
            }
        }
        Ok(())
    }

    pub(super) async fn delete_many_io<K: AsRef<str>>(
        &self,
        io: Io,
        keys: &[K],
    ) -> Result<(), Error> {
        let keys: Vec<Key> = keys.iter().map(Key::new).collect();
        for k in &keys {
            self.forget_local(k.fingerprint(), k.stored());
        }
        if let Some(shared) = self.inner.shared.as_deref() {
            let stored: Vec<String> = keys.iter().map(|k| self.stored(k.stored())).collect();
            let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
            let deleted = io.delete_many(shared, &refs).await;
            for k in &keys {
                self.forget_local(k.fingerprint(), k.stored());
                self.note_preloaded(k.fingerprint(), None);
            }
            deleted.inspect_err(|e| self.shared_failed("delete_many", e))?;
        }
        Ok(())
    }

    pub(super) async fn incr_io(&self, io: Io, key: &Key, delta: i64) -> Result<i64, Error> {
        let fp = key.fingerprint();
        if let Some(shared) = self.inner.shared.as_deref() {
            self.forget_local(fp, key.stored());
            let n = io.incr(shared, &self.stored(key.stored()), delta).await;
            self.forget_local(fp, key.stored());
            self.forget_preloaded(Some(fp));
            return n.inspect_err(|e| self.shared_failed("incr", e));
        }
        let Some(local) = &self.inner.local else {
            return Ok(delta);
        };
        local.read_modify_write(|| {
            let (current, ttl) = match local.get(fp, key.stored()) {
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
            local.insert(fp, key.stored(), Typed(next), ttl);
            Ok(next)
        })
    }

    pub(super) async fn has_io(&self, io: Io, key: &Key) -> bool {
        if let Some(local) = &self.inner.local {
            if local.get(key.fingerprint(), key.stored()).is_some() {
                return true;
            }
        }
        match self.preloaded(key.fingerprint()) {
            Known::Bytes(_) => return true,
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
