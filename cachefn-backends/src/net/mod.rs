//! What the blocking network clients (Redis, memcached) share: a socket
//! bounded by one deadline per call, and a bounded connection pool.

pub(crate) mod conns;
pub(crate) mod deadline;

use std::time::Duration;

/// The shortest connect or response timeout a network tier takes (a
/// shorter one is raised to it): a socket refuses a zero timeout, and a
/// zero deadline fails every call at once.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(1);
