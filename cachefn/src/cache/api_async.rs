//! The async twins of the low-level API (feature `tokio`). Each awaits the
//! same implementation as its sync method, with the shared tier reached
//! through the backend's non-blocking `_async` methods.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use super::api::{decode_shared, negate};
use super::{expiry_for, Cache};
use crate::codec;
use crate::flight_async::AsyncJoined;
use crate::io::Io;
use crate::key::Key;
use crate::Error;

impl Cache {
    /// [`get_or_set`](Cache::get_or_set) with an async computation.
    ///
    /// Concurrent tasks on one absent key wait for a single run of `f`. If
    /// the task running it is cancelled (its future dropped) or panics, one
    /// waiting task runs `f` instead; none waits forever.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cachefn::Cache::memory();
    /// let n: u64 = cache.get_or_set_async("answer", Duration::from_secs(30), || async { 42 }).await;
    /// assert_eq!(n, 42);
    /// # });
    /// ```
    pub async fn get_or_set_async<T, F, Fut>(&self, key: impl AsRef<str>, ttl: Duration, f: F) -> T
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let key = Key::new(key);
        let mut f = Some(f);
        loop {
            if let Some(v) = self.get_key_io::<T>(Io::Async, &key, false).await {
                return v;
            }
            match self.async_flights().join(key.fingerprint()).await {
                AsyncJoined::Lead(leader) => {
                    if let Some(v) = self.get_key_io::<T>(Io::Async, &key, true).await {
                        return v;
                    }
                    self.count_miss();
                    let value = (f.take().expect("f runs once"))().await;
                    let bytes = codec::encode(&value, expiry_for(ttl)).ok().map(Arc::new);
                    if let Some(bytes) = &bytes {
                        let _ = self.set_encoded_io(Io::Async, &key, bytes, ttl).await;
                    }
                    leader.finish(|| bytes.map(|b| b as crate::flight::Shared));
                    return value;
                }
                AsyncJoined::Alone => {
                    self.count_miss();
                    let value = (f.take().expect("f runs once"))().await;
                    let _ = self.set_io(Io::Async, &key, &value, ttl).await;
                    return value;
                }
                AsyncJoined::Value(shared) => {
                    if let Some(v) = decode_shared(&shared) {
                        return v;
                    }
                }
            }
        }
    }

    /// [`get`](Cache::get) without blocking the executor.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cachefn::Cache::memory();
    /// cache.set_async("k", &7u32, Duration::from_secs(30)).await?;
    /// assert_eq!(cache.get_async::<u32>("k").await, Some(7));
    /// assert!(cache.delete_async("k").await?);
    /// assert_eq!(cache.incr_async("hits", 2).await?, 2);
    /// # Ok::<(), cachefn::Error>(()) }).unwrap();
    /// ```
    pub async fn get_async<T: DeserializeOwned + 'static>(
        &self,
        key: impl AsRef<str>,
    ) -> Option<T> {
        self.get_io(Io::Async, &Key::new(key)).await
    }

    /// [`set`](Cache::set) without blocking the executor.
    ///
    /// # Errors
    ///
    /// As [`Cache::set`].
    pub async fn set_async<T: Serialize + DeserializeOwned + 'static>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.set_io(Io::Async, &Key::new(key), value, ttl).await
    }

    /// [`add`](Cache::add) without blocking the executor.
    ///
    /// # Errors
    ///
    /// As [`Cache::set`].
    pub async fn add_async<T: Serialize + DeserializeOwned + 'static>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.add_io(Io::Async, &Key::new(key), value, ttl).await
    }

    /// [`delete`](Cache::delete) without blocking the executor.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub async fn delete_async(&self, key: impl AsRef<str>) -> Result<bool, Error> {
        let key = Key::new(key);
        self.remove(Io::Async, key.as_str(), key.fingerprint())
            .await
    }

    /// [`get_many`](Cache::get_many) without blocking the executor: one
    /// round trip.
    pub async fn get_many_async<T: DeserializeOwned + 'static, K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Vec<Option<T>> {
        self.get_many_io(Io::Async, keys).await
    }

    /// [`set_many`](Cache::set_many) without blocking the executor: one
    /// round trip.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_many`].
    pub async fn set_many_async<K: AsRef<str>, T: Serialize + DeserializeOwned + 'static>(
        &self,
        items: &[(K, T)],
        ttl: Duration,
    ) -> Result<(), Error> {
        self.set_many_io(Io::Async, items, ttl).await
    }

    /// [`delete_many`](Cache::delete_many) without blocking the executor:
    /// one round trip.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub async fn delete_many_async<K: AsRef<str>>(&self, keys: &[K]) -> Result<(), Error> {
        self.delete_many_io(Io::Async, keys).await
    }

    /// [`incr`](Cache::incr) without blocking the executor.
    ///
    /// # Errors
    ///
    /// As [`Cache::incr`].
    pub async fn incr_async(&self, key: impl AsRef<str>, delta: i64) -> Result<i64, Error> {
        self.incr_io(Io::Async, &Key::new(key), delta).await
    }

    /// [`decr`](Cache::decr) without blocking the executor.
    ///
    /// # Errors
    ///
    /// As [`Cache::incr`].
    pub async fn decr_async(&self, key: impl AsRef<str>, delta: i64) -> Result<i64, Error> {
        let delta = negate(key.as_ref(), delta)?;
        self.incr_async(key, delta).await
    }

    /// [`has`](Cache::has) without blocking the executor.
    pub async fn has_async(&self, key: impl AsRef<str>) -> bool {
        self.has_io(Io::Async, &Key::new(key)).await
    }

    /// [`clear`](Cache::clear) without blocking the executor.
    ///
    /// # Errors
    ///
    /// When the shared tier cannot be reached.
    pub async fn clear_async(&self) -> Result<(), Error> {
        self.remove_prefix(Io::Async, "").await
    }
}
