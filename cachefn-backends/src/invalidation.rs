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

    /// The key `prefix:key` changed, as [`invalidate`](Self::invalidate)
    /// says, for a follower that may need the key's current value to
    /// decide what to drop: one that wrote the key itself, say, and cannot
    /// tell its own write from another client's by the message alone
    /// (Redis merges the changes of one key in one event-loop turn into
    /// one message, and names no writer).
    ///
    /// [`Verdict::Check`] asks the feed to read the key on its own
    /// connection and call [`current`](Self::current) with what it found.
    /// That read is ordered after every change the feed has reported and
    /// before any change it reports later (one connection carries both),
    /// so a local copy equal to it is current. The default drops the copy
    /// ([`invalidate`](Self::invalidate)) and asks for nothing.
    fn changed(&self, key: &str) -> Verdict {
        self.invalidate(key);
        Verdict::Done
    }

    /// What `prefix:key` held when the feed read it after
    /// [`changed`](Self::changed) (or this method) answered
    /// [`Verdict::Check`]; [`Verdict::Check`] again asks for another read
    /// (the follower wrote the key meanwhile, say, and this value may
    /// predate its write). The default drops the local copy. A feed whose
    /// connection breaks before the answer suspends its followers instead.
    fn current(&self, key: &str, value: Current<'_>) -> Verdict {
        let _ = value;
        self.invalidate(key);
        Verdict::Done
    }
}

/// What an [`InvalidationSink::changed`] asks of its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing more: the follower has dealt with the change.
    Done,
    /// Read the key's current value and call
    /// [`InvalidationSink::current`] with it.
    Check,
}

/// A key's value as a feed read it for [`InvalidationSink::current`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current<'a> {
    /// The key's whole value (at most [`CHECKED_MAX`] bytes).
    Value(&'a [u8]),
    /// No value (or an empty one).
    Absent,
    /// Not known: longer than [`CHECKED_MAX`], not a string, or the read
    /// failed. The follower must treat the key as changed.
    Unknown,
}

/// The longest value a feed reads back for [`InvalidationSink::current`]
/// (1 MiB): a longer one is [`Current::Unknown`], so a follower should
/// not ask to check a key whose value it knows is longer.
pub const CHECKED_MAX: usize = 1 << 20;

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
