//! Storage backends for [cachefn](https://docs.rs/cachefn).
//!
//! Two kinds of store live here:
//!
//! - [`Memory`], the bounded in-process tier. It keeps typed values so that a
//!   local hit clones instead of decoding.
//! - [`Backend`] implementations, byte stores that can be shared between
//!   processes: [`Null`] here, Redis, memcached and disk behind their cargo
//!   features.
//!
//! Users reach these through `cachefn::backends`; the runtime (keys, the
//! codec, tiers, single-flight) lives in the `cachefn` crate.
//!
//! # Feature flags
//!
//! The default build has no network client. Each networked or on-disk
//! backend is behind a feature of its own:
//!
//! - `redis`: `Redis`, a shared tier on the `redis` crate.
//! - `redis-cluster`: `RedisCluster`, the same guarantees on a Redis (or
//!   Valkey) Cluster: keys routed by hash slot, one round trip per master
//!   for batches, failovers followed.
//! - `memcached`: `Memcached`, a shared tier on memcached 1.6.10+ (meta
//!   protocol over std TCP, no client crate); clears by prefix with
//!   generation items instead of a key scan.
//! - `disk`: `Disk`, a persistent, bounded cache in a local directory that
//!   the processes of one machine share; crash-safe (one checksummed file
//!   per entry, written atomically).
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod breaker;
pub mod clock;
mod error;
mod invalidation;
mod memory;
mod pool;
#[doc(hidden)]
pub mod sync;

#[cfg(feature = "disk")]
mod disk;
#[cfg(not(all(
    feature = "redis",
    feature = "redis-cluster",
    feature = "memcached",
    feature = "disk"
)))]
mod feature_off;
#[cfg(feature = "memcached")]
mod memcached;
#[cfg(any(feature = "redis", feature = "memcached"))]
mod net;
#[cfg(feature = "redis")]
mod redis;

pub use backend::{Backend, BoxFuture, GetOrLease, Null};
pub use breaker::{CircuitBreaker, COOL_DOWN, TRIP_AFTER};
#[cfg(feature = "disk")]
#[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
pub use disk::{Disk, DiskBuilder, DiskUsage};
pub use error::{Error, Failure, Source};
#[cfg(not(all(
    feature = "redis",
    feature = "redis-cluster",
    feature = "memcached",
    feature = "disk"
)))]
#[doc(hidden)]
pub use feature_off::*;
pub use invalidation::{Current, InvalidationFeed, InvalidationSink, Verdict, CHECKED_MAX};
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub use memcached::{Memcached, MemcachedBuilder};
pub use memory::{sweep_epoch, Held, KeyText, LocalValue, Memory, Slot, SlotHead};
pub use pool::Offloaded;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{Redis, RedisBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT};
#[cfg(feature = "redis-cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
pub use redis::{RedisCluster, RedisClusterBuilder};
