//! Change feeds: how a shared tier tells the local tiers of a process which
//! keys other clients changed. A backend that has one returns it from
//! [`Backend::invalidations`](crate::Backend::invalidations); the cachefn
//! runtime subscribes each tiered cache to it.

use std::sync::{Arc, Weak};

/// A follower of a shared tier's changes: a cache's local tier, told which
/// of its keys changed. The cachefn runtime implements it; applications do
/// not.
pub trait InvalidationSink: Send + Sync {
    /// The key `prefix:key` changed or was deleted in the shared tier (by
    /// any client): drop the local copy of `key` (the text after `prefix:`).
    fn invalidate(&self, key: &str);
    /// Every key may have changed (`FLUSHDB`, `FLUSHALL`): drop every local copy.
    fn flush(&self);
    /// The feed cannot vouch for the local tier (a connection broke or went
    /// silent, or is not set up yet): drop every local copy and keep no new
    /// ones until [`InvalidationSink::resume`].
    fn suspend(&self);
    /// The feed is live again for this prefix: local copies may be kept.
    fn resume(&self);
    /// The shared tier cannot report changes (a Redis older than 6, or a
    /// proxy): the follower is resumed and its local copies live out their
    /// local lifetimes. Called once per follower, with the reason.
    fn unsupported(&self, why: &str);
}

/// What serves a feed's followers: one Redis server, or every master of a
/// cluster.
pub(crate) trait Source: Send + Sync {
    fn follow(&self, prefix: &str, sink: Weak<dyn InvalidationSink>);
    /// Where the changes come from, for `Debug`.
    fn describe(&self) -> String;
}

/// A handle on a shared tier's change feed (for Redis and Redis Cluster:
/// `CLIENT TRACKING` connections, one per process and server); from
/// [`Backend::invalidations`](crate::Backend::invalidations).
///
/// Nothing connects until a follower registers.
///
/// ```
/// use cachefn::backends::{Backend, Null};
///
/// // A tier without a change feed: local copies live their local lifetime.
/// assert!(Null.invalidations().is_none());
/// # #[cfg(feature = "redis")] {
/// let redis = cachefn::backends::Redis::open("redis://127.0.0.1:6379")?;
/// let feed = redis.invalidations(); // Some: nothing connects yet
/// assert!(feed.is_some());
/// # }
/// # Ok::<(), cachefn::Error>(())
/// ```
#[derive(Clone)]
pub struct InvalidationFeed {
    source: Arc<dyn Source>,
}

impl InvalidationFeed {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(source: Arc<dyn Source>) -> Self {
        InvalidationFeed { source }
    }

    /// Follow every change under `prefix:` (the cache's prefix, without the
    /// colon) for as long as `sink` lives. The sink is suspended at once and
    /// resumed when the shared tier confirms that it reports changes (for
    /// a cluster: when every master does).
    pub fn follow(&self, prefix: &str, sink: Weak<dyn InvalidationSink>) {
        self.source.follow(prefix, sink);
    }
}

impl std::fmt::Debug for InvalidationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidationFeed")
            .field("source", &self.source.describe())
            .finish()
    }
}
