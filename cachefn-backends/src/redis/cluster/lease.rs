//! Leases on a Redis Cluster (`single_flight = "shared"`): the commands of
//! a single Redis (see `redis/lease.rs`), each routed to the master of the
//! lease key's slot, with `MOVED`/`ASK` followed as for any key.

use std::time::Duration;

use super::Cluster;
use crate::redis::lease::{acquire_args, done, lease_ms, release_args, renew_args, taken};
use crate::Error;

impl Cluster {
    pub(super) fn acquire_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        let px = lease_ms(ttl);
        self.router
            .call(key, &acquire_args(key, token, ttl, &px), taken)
    }

    pub(super) fn renew_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        let px = lease_ms(ttl);
        self.router.call(key, &renew_args(key, token, &px), done)
    }

    pub(super) fn release_lease(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.router.call(key, &release_args(key, token), done)
    }
}
