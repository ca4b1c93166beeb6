//! Leases on a Redis Cluster (`single_flight = "shared"`): the commands of
//! a single Redis (see `redis/lease.rs`), each routed to the master of the
//! lease key's slot, with `MOVED`/`ASK` followed as for any key.
//!
//! The get-or-lease and store-leased scripts touch two keys, the value's
//! and its lease's, which a cluster runs in one script only when both are
//! in one slot. So a lease is named to share its value's slot: the runtime
//! asks for `K#lease` (`K` the value's stored key); when that hashes to
//! another slot than `K` (no hash tag in `K`), the lease is kept under
//! `K{K}#lease` instead, whose hash tag is `K` itself. That name still
//! starts with `K`, so the prefix clears of `Cache::clear` and
//! `f::clear_all` remove leases as they do on a single Redis. Every lease
//! command maps the name the same way, in every process.
//!
//! What remains: a `K` whose own braces defeat both names (an empty `{}`
//! before any other pair, as an empty map argument writes, or a `}` before
//! any `{`; never a key without braces) keeps its lease in another slot; for it the read and the lease are
//! taken step by step, as [`Backend::get_or_lease`](crate::Backend::get_or_lease)'s
//! default does, and the fenced store is two steps (release, then `SET`),
//! as [`Backend::store_leased`](crate::Backend::store_leased)'s default
//! does: a holder that lost its lease still never stores, but a successor
//! that takes the lease between the two steps and stores first is
//! overwritten. Values are never renamed: that would move every one.

use std::borrow::Cow;
use std::time::Duration;

use super::slots::key_slot;
use super::Cluster;
use crate::redis::lease::{
    acquire_args, done, get_or_lease_args, got_or_leased, lease_ms, release_args, renew_args,
    store_leased_args, store_ms, taken,
};
use crate::{Error, GetOrLease};

/// What the runtime appends to a value's key to name its lease.
const SUFFIX: &str = "#lease";

/// Where the lease the runtime calls `lease` is kept: in its value's slot
/// when a name can put it there (see the module's docs).
pub(super) fn lease_name(lease: &str) -> Cow<'_, str> {
    let Some(key) = lease.strip_suffix(SUFFIX) else {
        return Cow::Borrowed(lease);
    };
    let slot = key_slot(key.as_bytes());
    if key_slot(lease.as_bytes()) == slot {
        return Cow::Borrowed(lease);
    }
    let tagged = format!("{key}{{{key}}}{SUFFIX}");
    if key_slot(tagged.as_bytes()) == slot {
        Cow::Owned(tagged)
    } else {
        Cow::Borrowed(lease)
    }
}

impl Cluster {
    pub(super) fn acquire_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        let key = lease_name(key);
        let px = lease_ms(ttl);
        self.router
            .call(&key, &acquire_args(&key, token, ttl, &px), taken)
    }

    pub(super) fn renew_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        let key = lease_name(key);
        let px = lease_ms(ttl);
        self.router.call(&key, &renew_args(&key, token, &px), done)
    }

    pub(super) fn release_lease(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        let key = lease_name(key);
        self.router.call(&key, &release_args(&key, token), done)
    }

    pub(super) fn get_or_lease_in_slot(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<GetOrLease, Error> {
        let named = lease_name(lease);
        if key_slot(key.as_bytes()) != key_slot(named.as_bytes()) {
            return crate::backend::get_or_lease_by_steps(self, key, lease, token, ttl);
        }
        let px = lease_ms(ttl);
        self.router.call(
            key,
            &get_or_lease_args(key, &named, token, &px),
            got_or_leased,
        )
    }

    pub(super) fn store_leased_in_slot(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        lease: &str,
        token: &[u8],
    ) -> Result<bool, Error> {
        let named = lease_name(lease);
        if key_slot(key.as_bytes()) != key_slot(named.as_bytes()) {
            return crate::backend::store_leased_by_steps(self, key, value, ttl, lease, token);
        }
        let px = store_ms(ttl);
        self.router.call(
            key,
            &store_leased_args(key, &named, token, value, &px),
            done,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_shares_its_values_slot_when_a_name_can_put_it_there() {
        for key in ["p:a", "p:b", "blog:f:v1:3", "p:{a=1}", "{p}:a", "p:{a=1}{}"] {
            let lease = format!("{key}#lease");
            let named = lease_name(&lease);
            assert_eq!(
                key_slot(named.as_bytes()),
                key_slot(key.as_bytes()),
                "{key} -> {named}"
            );
            assert!(named.starts_with(key), "{named}: found by prefix clears");
            assert!(named.ends_with(SUFFIX), "{named}");
        }
        // A tag already shared, or one the value's own braces defeat: as asked.
        assert_eq!(lease_name("{p}:a#lease"), "{p}:a#lease");
        assert_eq!(lease_name("p:{#lease"), "p:{#lease");
        assert_eq!(lease_name("p:}#lease"), "p:}#lease");
        assert_eq!(lease_name("p:{}#lease"), "p:{}#lease");
        assert_eq!(lease_name("no-suffix"), "no-suffix");
        // Without a tag, the tagged name.
        assert_eq!(lease_name("p:a#lease"), "p:a{p:a}#lease");
    }
}
