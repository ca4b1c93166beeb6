//! Every write of a [`Cache`], in one place: storing values ([`Cache::put`]:
//! `set`, `set_many`, `add`, a memoized call's or a refresh's computed
//! value, `get_or_set`, `f::set_cached`, and the fenced store of a
//! `single_flight = "shared"` holder), removing keys
//! ([`Cache::remove_keys`]: `delete`, `delete_many`, `f::clear`), counters
//! ([`Cache::incr_key`]) and prefix clears ([`Cache::remove_prefix`]:
//! `clear`, `f::clear_all`), for the sync and the async API alike.
//!
//! Each goes through a [`Writing`](crate::coherence::Writing) begun before
//! its shared command is sent, so none can forget what coherence needs
//! (see `crate::coherence`): the local tier's write generation is taken
//! first, a store whose echo will come is marked, the local copy is kept
//! only if nothing changed the key meanwhile, and a write whose outcome is
//! unknown (an error, a cancelled future) leaves no local copy. Preload
//! scopes learn each outcome here too. Values are encoded here only
//! ([`Cache::encode_entry`]).

use std::time::Duration;

use cachefn_backends::LocalValue;
use serde::{de::DeserializeOwned, Serialize};

use super::{Cache, MAX_TTL};
use crate::codec;
use crate::coherence::{Outcome, Writing};
use crate::io::Io;
use crate::shared_flight::Lease;
use crate::Error;

/// One key of a [`Cache::put`].
pub(crate) struct Entry<'a, V> {
    /// The key (without the cache's prefix).
    pub(crate) text: &'a str,
    pub(crate) fp: u128,
    /// The encoded value (needed when the cache has a shared tier).
    pub(crate) bytes: Option<&'a [u8]>,
    /// What the local tier keeps once the value is stored, and how long
    /// (`None`: nothing).
    pub(crate) kept: Option<(V, Duration)>,
}

/// How [`Cache::put`] stores.
#[derive(Clone, Copy)]
pub(crate) enum Put<'a> {
    /// Whatever the key holds (`SET`; one round trip for many keys).
    Replace,
    /// Only where the key holds nothing (`add`): one key.
    IfAbsent,
    /// Only while this lease is ours, giving it up (a shared single-flight
    /// holder's store): one key.
    Leased(&'a Lease),
}

/// A lifetime the shared tier can keep: at most [`MAX_TTL`].
pub(crate) fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.min(MAX_TTL)
}

impl Cache {
    /// Encode a value to store under `text`, expiring logically at
    /// `expires_unix_ms` (0: never), computed in `run_ms`. The only place
    /// where writes encode: bound to its stored key (`prefix:text`) and,
    /// with a signing key, signed, when the cache has a shared tier; for a
    /// cache without one, bound to this process only.
    pub(crate) fn encode_entry<T: Serialize + DeserializeOwned + 'static>(
        &self,
        text: &str,
        value: &T,
        expires_unix_ms: u64,
        run_ms: u32,
    ) -> Result<Vec<u8>, Error> {
        let parts = [&*self.inner.prefix, ":", text];
        let binding = match self.inner.shared {
            Some(_) => codec::Binding {
                key: &parts,
                signer: self.inner.signer.as_deref(),
            },
            None => codec::Binding::to(codec::IN_PROCESS),
        };
        codec::encode_bound(value, expires_unix_ms, run_ms, binding)
    }

    /// Store `entries` in every tier, the shared one for `ttl` (one round
    /// trip), each local copy for its own lifetime. `Ok(true)` if stored;
    /// `Ok(false)` if `how` said not to ([`Put::IfAbsent`] found a value,
    /// [`Put::Leased`] found the lease lost). A failed shared write
    /// returns its error, and leaves no local copy of any entry.
    pub(crate) async fn put<V: LocalValue>(
        &self,
        io: Io,
        entries: Vec<Entry<'_, V>>,
        how: Put<'_>,
        ttl: Duration,
    ) -> Result<bool, Error> {
        debug_assert!(
            matches!(how, Put::Replace) || entries.len() == 1,
            "add and leased stores take one key"
        );
        let ttl = clamp_ttl(ttl);
        let Some(shared) = self.inner.shared.as_deref() else {
            return Ok(self.put_local(entries, how));
        };
        let mut writing = self.begin_write(entries.iter().map(|e| (e.fp, e.bytes)));
        let stored: Vec<String> = entries.iter().map(|e| self.stored(e.text)).collect();
        fn bytes<'a, V>(e: &Entry<'a, V>) -> &'a [u8] {
            e.bytes.unwrap_or_default()
        }
        let (op, outcome) = match (how, &entries[..]) {
            (Put::IfAbsent, [e]) => ("add", io.add(shared, &stored[0], bytes(e), ttl).await),
            (Put::Leased(lease), [e]) => {
                let (key, token) = (lease.key(), lease.token());
                let done = io
                    .store_leased(shared, &stored[0], bytes(e), ttl, key, token)
                    .await;
                ("store", done)
            }
            (_, [e]) => (
                "set",
                io.set(shared, &stored[0], bytes(e), ttl)
                    .await
                    .map(|()| true),
            ),
            _ => {
                let pairs: Vec<(&str, &[u8])> = stored
                    .iter()
                    .zip(&entries)
                    .map(|(s, e)| (s.as_str(), bytes(e)))
                    .collect();
                (
                    "set_many",
                    io.set_many(shared, &pairs, ttl).await.map(|()| true),
                )
            }
        };
        for (i, e) in entries.into_iter().enumerate() {
            let settled = match &outcome {
                Ok(true) => {
                    self.note_preloaded(e.fp, e.bytes, writing.seen(i));
                    Outcome::Stored(e.kept)
                }
                Ok(false) => {
                    if let Put::Leased(_) = how {
                        // The successor's value is there, not ours.
                        self.forget_preloaded(Some(e.fp));
                    }
                    Outcome::Unchanged
                }
                Err(_) => {
                    self.forget_preloaded(Some(e.fp));
                    Outcome::Dropped
                }
            };
            writing.settle(i, e.text, settled);
        }
        outcome.inspect_err(|e| self.shared_failed(op, e))
    }

    /// [`Cache::put`] for a cache without a shared tier.
    fn put_local<V: LocalValue>(&self, entries: Vec<Entry<'_, V>>, how: Put<'_>) -> bool {
        let Some(local) = &self.inner.local else {
            return !matches!(how, Put::IfAbsent);
        };
        let mut stored = true;
        for e in entries {
            match (e.kept, how) {
                (Some((v, ttl)), Put::IfAbsent) => {
                    stored &= local.insert_if_absent(e.fp, e.text, v, ttl);
                }
                (Some((v, ttl)), _) => local.insert(e.fp, e.text, v, ttl),
                (None, _) => {
                    local.remove(e.fp, e.text);
                }
            }
        }
        stored
    }

    /// Remove `keys` (text, fingerprint) from every tier: one round trip.
    /// `true` if something was removed (for one key; for several, the
    /// shared tier does not say).
    pub(crate) async fn remove_keys(&self, io: Io, keys: &[(&str, u128)]) -> Result<bool, Error> {
        let local = self.inner.local.as_ref();
        let mut removed = false;
        for &(text, fp) in keys {
            removed |= local.is_some_and(|l| l.remove(fp, text));
        }
        let Some(shared) = self.inner.shared.as_deref() else {
            return Ok(removed);
        };
        let mut writing = self.begin_write(keys.iter().map(|&(_, fp)| (fp, None)));
        let stored: Vec<String> = keys.iter().map(|(text, _)| self.stored(text)).collect();
        let (op, outcome) = match &stored[..] {
            [one] => ("delete", io.delete(shared, one).await),
            many => {
                let refs: Vec<&str> = many.iter().map(String::as_str).collect();
                (
                    "delete_many",
                    io.delete_many(shared, &refs).await.map(|()| false),
                )
            }
        };
        for (i, &(text, fp)) in keys.iter().enumerate() {
            match outcome {
                Ok(_) => self.note_preloaded(fp, None, writing.seen(i)),
                Err(_) => self.forget_preloaded(Some(fp)),
            }
            writing.settle::<super::Encoded>(i, text, Outcome::Dropped);
        }
        let shared_removed = outcome.inspect_err(|e| self.shared_failed(op, e))?;
        Ok(removed || shared_removed)
    }

    /// Remove one key from every tier; `true` if something was removed.
    pub(crate) async fn remove(&self, io: Io, text: &str, fp: u128) -> Result<bool, Error> {
        self.remove_keys(io, &[(text, fp)]).await
    }

    /// Atomically add `delta` to the counter under `text` (a missing key
    /// starts at 0) and return the new count: in the shared tier, whose
    /// local copies are dropped (the next read fetches the count), or in
    /// the local tier of a cache without one.
    pub(crate) async fn incr_key(
        &self,
        io: Io,
        text: &str,
        fp: u128,
        delta: i64,
    ) -> Result<i64, Error> {
        let Some(shared) = self.inner.shared.as_deref() else {
            return self.incr_local(text, fp, delta);
        };
        self.forget_local(fp, text);
        let mut writing = self.begin_write([(fp, None)]);
        let n = io.incr(shared, &self.stored(text), delta).await;
        self.forget_preloaded(Some(fp));
        writing.settle::<super::Encoded>(0, text, Outcome::Dropped);
        // A value that is not a counter is the caller's mistake, not a
        // failing tier (and its error names the key: not for the logs).
        n.inspect_err(|e| {
            if !matches!(e, Error::NotACounter(_)) {
                self.shared_failed("incr", e)
            }
        })
    }

    /// [`Cache::incr_key`] in the local tier alone.
    fn incr_local(&self, text: &str, fp: u128, delta: i64) -> Result<i64, Error> {
        let Some(local) = &self.inner.local else {
            return Ok(delta);
        };
        local.read_modify_write(|| {
            let (current, ttl) = match local.get(fp, text) {
                None => (0, Duration::ZERO),
                Some(slot) => {
                    let Some(n) = self.decode_slot::<i64>(&slot) else {
                        return Err(Error::NotACounter(text.to_owned()));
                    };
                    let left = slot.remaining(cachefn_backends::clock::now_ms());
                    (n, left.unwrap_or(Duration::ZERO))
                }
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| Error::NotACounter(format!("{text} (overflow)")))?;
            local.insert(fp, text, super::Typed(next), ttl);
            Ok(next)
        })
    }

    /// Begin a write of `keys` (see [`Writing::begin`]).
    fn begin_write<'b>(
        &self,
        keys: impl IntoIterator<Item = (u128, Option<&'b [u8]>)>,
    ) -> Writing<'_> {
        Writing::begin(self.inner.local.as_deref(), self.inner.own.as_ref(), keys)
    }

    /// Empty the local tier of the keys that start with `start` (`""`:
    /// every key).
    pub(crate) fn clear_local(&self, start: &str) {
        crate::coherence::clear_local(self.inner.local.as_deref(), start);
    }

    /// Remove every key that starts with `start` (`""`: every key of the
    /// cache) from every tier.
    pub(crate) async fn remove_prefix(&self, io: Io, start: &str) -> Result<(), Error> {
        let Some(shared) = self.inner.shared.as_deref() else {
            self.clear_local(start);
            return Ok(());
        };
        let mut writing = Writing::begin_clear(self.inner.local.as_deref(), start);
        let cleared = io.clear_prefix(shared, &self.stored(start)).await;
        self.forget_preloaded(None);
        writing.settle_clear();
        cleared.inspect_err(|e| self.shared_failed("clear", e))
    }
}
