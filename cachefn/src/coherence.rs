//! Local tiers that follow the shared tier. A cache with a local tier and a
//! shared tier that has a change feed (Redis, Redis Cluster: `CLIENT
//! TRACKING`, see `cachefn_backends::InvalidationFeed`) is an
//! `InvalidationSink` of that feed: the feed
//! calls it from its own thread, and nothing here runs on a read.
//!
//! The feed reports every write under the prefix, this process's own
//! included (BCAST mode; `NOLOOP` would only spare the feed's own
//! connection). So that a process's own `set` does not drop the value it
//! has just kept locally, a write expected to produce an invalidation is
//! counted before it is sent ([`OwnWrites`]), and the first invalidation of
//! that key afterwards is taken as its echo. The local copy is stored only
//! if nothing else touched the key while the write ran (the write
//! generation taken before it): a change by another process that lands
//! between our write and our local store removes the copy instead.

use std::collections::HashMap;
use std::time::Duration;

use cachefn_backends::sync::Mutex;
use cachefn_backends::LocalValue;

use crate::cache::Cache;

/// The writes of this process whose invalidation echo has not arrived yet.
#[derive(Default)]
pub(crate) struct OwnWrites {
    state: Mutex<OwnState>,
}

#[derive(Default)]
struct OwnState {
    /// The feed is down or not set up: no echo is expected (none may come).
    suspended: bool,
    pending: HashMap<u128, u32>,
}

impl OwnWrites {
    pub(crate) fn new() -> Self {
        OwnWrites {
            state: Mutex::new(OwnState {
                suspended: true,
                pending: HashMap::new(),
            }),
        }
    }

    fn expect(&self, fp: u128) -> bool {
        let mut s = self.state.lock();
        if s.suspended {
            return false;
        }
        *s.pending.entry(fp).or_default() += 1;
        true
    }

    fn forget(&self, fp: u128) {
        let mut s = self.state.lock();
        if let Some(n) = s.pending.get_mut(&fp) {
            *n -= 1;
            if *n == 0 {
                s.pending.remove(&fp);
            }
        }
    }

    /// `true` if this invalidation is the echo of one of our writes.
    fn is_echo(&self, fp: u128) -> bool {
        let mut s = self.state.lock();
        match s.pending.get_mut(&fp) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    s.pending.remove(&fp);
                }
                true
            }
            None => false,
        }
    }

    fn set_suspended(&self, suspended: bool) {
        let mut s = self.state.lock();
        s.suspended = suspended;
        s.pending.clear();
    }
}

/// A write of one key to the shared tier, from before it is sent until its
/// value is kept locally.
pub(crate) struct OwnWrite {
    fp: u128,
    seen: Option<u64>,
    echo: bool,
}

impl Cache {
    /// Call before writing `fp` to the shared tier with a write that always
    /// changes the key when it succeeds (`SET`).
    pub(crate) fn own_write(&self, fp: u128) -> OwnWrite {
        let seen = self.inner.local.as_ref().map(|l| l.generation(fp));
        let echo = self.inner.own.as_ref().is_some_and(|o| o.expect(fp));
        OwnWrite { fp, seen, echo }
    }

    /// After the shared write: keep `value` locally for `ttl` if it
    /// succeeded (`kept`) and nothing else wrote the key meanwhile; else
    /// make sure no older local copy survives.
    pub(crate) fn own_write_done<V: LocalValue>(
        &self,
        w: OwnWrite,
        ok: bool,
        text: &str,
        kept: Option<V>,
        ttl: Duration,
    ) {
        if !ok && w.echo {
            if let Some(own) = &self.inner.own {
                own.forget(w.fp);
            }
        }
        let Some(local) = &self.inner.local else {
            return;
        };
        let stored = match (ok, kept, w.seen) {
            (true, Some(v), Some(seen)) => local.insert_if_unchanged(w.fp, text, v, ttl, seen),
            _ => false,
        };
        if !stored {
            local.remove(w.fp, text);
        }
    }
}

mod sink {
    use cachefn_backends::InvalidationSink;

    use crate::cache::Inner;
    use crate::key;

    impl InvalidationSink for Inner {
        fn invalidate(&self, key: &str) {
            self.shared_flight.changed(key);
            let fp = key::fingerprint(key.as_bytes());
            if self.own.as_ref().is_some_and(|o| o.is_echo(fp)) {
                return;
            }
            if let Some(local) = &self.local {
                // `remove` moves the key's write generation: a read of the
                // shared tier that began before this change cannot
                // back-fill the old value after it.
                if local.remove(fp, key) {
                    self.counters.invalidations.add_n(1);
                    crate::memo::invalidated(key);
                }
            }
        }

        fn flush(&self) {
            self.shared_flight.changed_all();
            if let Some(local) = &self.local {
                let mut held = 0;
                local.clear_with(|key| {
                    held += 1;
                    crate::memo::invalidated(key);
                });
                self.counters.invalidations.add_n(held);
            }
        }

        fn suspend(&self) {
            if let Some(own) = &self.own {
                own.set_suspended(true);
            }
            if let Some(local) = &self.local {
                let mut held = 0;
                local.suspend_with(|key| {
                    held += 1;
                    crate::memo::invalidated(key);
                });
                self.counters.invalidations.add_n(held);
            }
        }

        fn resume(&self) {
            if let Some(local) = &self.local {
                local.resume();
            }
            if let Some(own) = &self.own {
                own.set_suspended(false);
            }
        }

        fn unsupported(&self, why: &str) {
            if let Some(own) = &self.own {
                own.set_suspended(true);
            }
            tracing::warn!(target: "cachefn", prefix = %self.prefix, reason = why,
                "the Redis tier cannot report other processes' writes; local copies live up to \
                 their local lifetime (local_timeout). Use Redis 6 or later without a proxy for \
                 coherent local tiers, or CacheBuilder::invalidation(false) to silence this");
        }
    }
}
