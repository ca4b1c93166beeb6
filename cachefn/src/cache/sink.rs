//! A cache as its shared tier's change feed sees it: each event wakes the
//! cache's shared single-flight waiters, then goes to
//! [`Follow`](crate::coherence::Follow), which keeps the local tier
//! coherent.

use cachefn_backends::{Current, InvalidationSink, Verdict};

use super::Inner;
use crate::coherence::Follow;

impl Inner {
    fn follow(&self) -> Follow<'_> {
        Follow {
            local: self.local.as_deref(),
            own: self.own.as_ref(),
            counters: &self.counters,
        }
    }
}

impl InvalidationSink for Inner {
    fn invalidate(&self, key: &str) {
        self.shared_flight.changed(key);
        self.follow().invalidate(key);
    }

    fn changed(&self, key: &str) -> Verdict {
        self.shared_flight.changed(key);
        self.follow().changed(key)
    }

    fn current(&self, key: &str, value: Current<'_>) -> Verdict {
        self.follow().current(key, value)
    }

    fn flush(&self) {
        self.shared_flight.changed_all();
        self.follow().flush();
    }

    fn suspend(&self) {
        self.follow().suspend();
    }

    fn resume(&self) {
        self.follow().resume();
    }

    fn unsupported(&self, why: &str) {
        self.follow().unsupported();
        tracing::warn!(target: "cachefn", prefix = %self.prefix, reason = why,
            "the Redis tier cannot report other processes' writes; local copies live up to \
             their local lifetime (local_timeout). Use Redis 6 or later without a proxy for \
             coherent local tiers, or CacheBuilder::invalidation(false) to silence this");
    }
}
