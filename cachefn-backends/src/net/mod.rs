//! What the blocking network clients (Redis, memcached) share: a socket
//! bounded by one deadline per call, and a bounded connection pool.

pub(crate) mod conns;
pub(crate) mod deadline;
