//! The async twins of the low-level API (feature `tokio`). Each awaits the
//! same implementation as its sync method, with the shared tier reached
//! through the backend's non-blocking `_async` methods.

use std::future::Future;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use super::api::negate;
use super::Cache;
use crate::io::Io;
use crate::key::Key;
use crate::{Error, Storable};

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
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
        self.get_or_set_io::<T, _>(Io::Async, &key, ttl, async { f().await })
            .await
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
    pub async fn set_async<T: Storable>(
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
    pub async fn add_async<T: Storable>(
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
        self.remove(Io::Async, key.stored(), key.fingerprint())
            .await
    }

    /// [`get_many`](Cache::get_many) without blocking the executor: one
    /// round trip.
    pub async fn get_many_async<T: DeserializeOwned + 'static>(
        &self,
        keys: &[impl AsRef<str>],
    ) -> Vec<Option<T>> {
        self.get_many_io(Io::Async, keys).await
    }

    /// [`set_many`](Cache::set_many) without blocking the executor: one
    /// round trip.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_many`].
    pub async fn set_many_async<K: AsRef<str>, T: Storable>(
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
