//! What the blocking network clients (Redis, memcached) share: a socket
//! bounded by one deadline per call, and a bounded connection pool.

pub(crate) mod conns;
pub(crate) mod deadline;

use std::time::Duration;

/// The shortest connect or response timeout a network tier takes (a
/// shorter one is raised to it): a socket refuses a zero timeout, and a
/// zero deadline fails every call at once.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The connection limits every network tier's builder takes (Redis, Redis
/// Cluster, memcached): their defaults and their bounds, in one place.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) max_idle: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_reply_size: usize,
}

impl Limits {
    pub(crate) const DEFAULT: Limits = Limits {
        connect_timeout: Duration::from_millis(250),
        response_timeout: Duration::from_millis(250),
        max_idle: 16,
        max_connections: 32,
        max_reply_size: 32 << 20,
    };

    /// At least [`MIN_TIMEOUT`].
    pub(crate) fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout.max(MIN_TIMEOUT);
    }

    /// At least [`MIN_TIMEOUT`].
    pub(crate) fn set_response_timeout(&mut self, timeout: Duration) {
        self.response_timeout = timeout.max(MIN_TIMEOUT);
    }

    /// At least 1 (and the pool keeps at most `max_connections`).
    pub(crate) fn set_max_idle(&mut self, connections: usize) {
        self.max_idle = connections.max(1);
    }

    /// At least 1.
    pub(crate) fn set_max_connections(&mut self, connections: usize) {
        self.max_connections = connections.max(1);
    }

    /// At least 1 KiB.
    pub(crate) fn set_max_reply_size(&mut self, bytes: usize) {
        self.max_reply_size = bytes.max(1024);
    }
}
