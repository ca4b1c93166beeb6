//! Leases on a Redis Cluster (`single_flight = "shared"`): the commands of
//! a single Redis (see `redis/lease.rs`), each routed to the master of the
//! lease key's slot, with `MOVED`/`ASK` followed as for any key.

use std::time::Duration;

use super::{Cluster, RedisCluster};
use crate::redis::lease::{acquire_args, done, lease_ms, release_args, renew_args, taken};
use crate::{BoxFuture, Error};

impl Cluster {
    fn acquire_lease(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        let px = lease_ms(ttl);
        self.router
            .call(key, &acquire_args(key, token, ttl, &px), taken)
    }

    fn renew_lease(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        let px = lease_ms(ttl);
        self.router.call(key, &renew_args(key, token, &px), done)
    }

    fn release_lease(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.router.call(key, &release_args(key, token), done)
    }
}

impl RedisCluster {
    pub(super) fn acquire_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.inner.acquire_lease(key, token, ttl)
    }

    pub(super) fn renew_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.inner.renew_lease(key, token, ttl)
    }

    pub(super) fn release_lease(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.inner.release_lease(key, token)
    }

    /// The blocking call on an I/O thread (arguments copied into the job).
    pub(super) fn acquire_lease_async(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, Error>> {
        let (key, token) = (key.to_owned(), token.to_vec());
        self.offload(move |c| c.acquire_lease(&key, &token, ttl))
    }

    pub(super) fn renew_lease_async(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, Error>> {
        let (key, token) = (key.to_owned(), token.to_vec());
        self.offload(move |c| c.renew_lease(&key, &token, ttl))
    }

    pub(super) fn release_lease_async(
        &self,
        key: &str,
        token: &[u8],
    ) -> BoxFuture<'static, Result<bool, Error>> {
        let (key, token) = (key.to_owned(), token.to_vec());
        self.offload(move |c| c.release_lease(&key, &token))
    }
}
