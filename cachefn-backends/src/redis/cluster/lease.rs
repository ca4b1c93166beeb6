//! Leases on a Redis Cluster (`single_flight = "shared"`): the commands of
//! a single Redis (see `redis/lease.rs`), each routed to the master of the
//! lease key's slot, with `MOVED`/`ASK` followed as for any key.
//!
//! The get-or-lease script touches two keys, which a cluster runs in one
//! script only when both are in one slot: when the stored key has a hash
//! tag (`{...}`, from the cache's prefix or an argument that is a map), its
//! lease key (`key#lease`) shares it. Otherwise the steps are taken one by
//! one, as [`Backend::get_or_lease`](crate::Backend::get_or_lease)'s
//! default does. Keys are never renamed to share a slot: that would move
//! every stored value.

use std::time::Duration;

use super::slots::key_slot;
use super::Cluster;
use crate::redis::lease::{
    acquire_args, done, get_or_lease_args, got_or_leased, lease_ms, release_args, renew_args, taken,
};
use crate::{Error, GetOrLease};

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

    pub(super) fn get_or_lease_in_slot(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<GetOrLease, Error> {
        if key_slot(key.as_bytes()) != key_slot(lease.as_bytes()) {
            return crate::backend::get_or_lease_by_steps(self, key, lease, token, ttl);
        }
        let px = lease_ms(ttl);
        self.router.call(
            key,
            &get_or_lease_args(key, lease, token, &px),
            got_or_leased,
        )
    }
}
