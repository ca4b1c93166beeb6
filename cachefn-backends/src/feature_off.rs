//! Stand-ins for the backends whose cargo feature is off, so that
//! `Redis::open(url)` without the `redis` feature is one error that names
//! the feature and the line to write in `Cargo.toml`, instead of "no
//! `Redis` in `backends`".
//!
//! Each stand-in is an uninhabited type with the real one's constructors
//! (`open`, `builder`). A constructor requires its argument's type to
//! implement a gate trait that only [`Nothing`] implements; the gate's
//! `on_unimplemented` message is the error. `builder`'s return type is
//! left to inference, so the builder calls chained after it are not
//! checked again (rustc reports nothing more about an expression once it
//! is in error). The stand-in implements [`Backend`], so that passing it to
//! `CacheBuilder::shared` adds no error of its own.
//!
//! They exist exactly when the real types do not (this crate's features
//! decide both, `cachefn`'s only turn them on), and are hidden from the
//! docs.

use std::convert::Infallible;
use std::time::Duration;

use crate::{Backend, Error};

/// Every gate is implemented for this type, which nobody can name or
/// construct, so that rustc does not suggest implementing the gate.
#[allow(dead_code)] // Never constructed: it only implements the gates.
enum Nothing {}

/// The gate, the uninhabited type and its `Backend` impl; the constructors
/// are written out below, outside the macro, so that rustc's "required by a
/// bound in `Redis::open`" note shows a plain function.
macro_rules! stand_in {
    // The messages are written out: a diagnostic attribute takes literals only.
    ($(#[$cfg:meta])* $name:ident, $gate:ident, $message:literal, $label:literal, $note:literal) => {
        $(#[$cfg])*
        #[doc(hidden)]
        #[diagnostic::on_unimplemented(message = $message, label = $label, note = $note)]
        pub trait $gate {}

        $(#[$cfg])*
        #[diagnostic::do_not_recommend]
        impl $gate for Nothing {}

        $(#[$cfg])*
        #[doc(hidden)]
        pub struct $name(Infallible);

        $(#[$cfg])*
        impl Backend for $name {
            fn name(&self) -> &'static str {
                match self.0 {}
            }
            fn get(&self, _: &str) -> Result<Option<Vec<u8>>, Error> {
                match self.0 {}
            }
            fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), Error> {
                match self.0 {}
            }
            fn add(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, Error> {
                match self.0 {}
            }
            fn delete(&self, _: &str) -> Result<bool, Error> {
                match self.0 {}
            }
            fn incr(&self, _: &str, _: i64) -> Result<i64, Error> {
                match self.0 {}
            }
            fn clear_prefix(&self, _: &str) -> Result<(), Error> {
                match self.0 {}
            }
        }
    };
}

stand_in!(
    #[cfg(not(feature = "redis"))]
    Redis,
    NeedsTheRedisFeature,
    "`Redis` needs the `redis` feature of cachefn",
    "`cachefn::backends::Redis` is compiled only with the `redis` feature",
    "turn it on in Cargo.toml: cachefn = {{ version = \"0.1\", features = [\"redis\"] }}"
);
stand_in!(
    #[cfg(not(feature = "redis-cluster"))]
    RedisCluster,
    NeedsTheRedisClusterFeature,
    "`RedisCluster` needs the `redis-cluster` feature of cachefn",
    "`cachefn::backends::RedisCluster` is compiled only with the `redis-cluster` feature",
    "turn it on in Cargo.toml: cachefn = {{ version = \"0.1\", features = [\"redis-cluster\"] }}"
);
stand_in!(
    #[cfg(not(feature = "memcached"))]
    Memcached,
    NeedsTheMemcachedFeature,
    "`Memcached` needs the `memcached` feature of cachefn",
    "`cachefn::backends::Memcached` is compiled only with the `memcached` feature",
    "turn it on in Cargo.toml: cachefn = {{ version = \"0.1\", features = [\"memcached\"] }}"
);
stand_in!(
    #[cfg(not(feature = "disk"))]
    Disk,
    NeedsTheDiskFeature,
    "`Disk` needs the `disk` feature of cachefn",
    "`cachefn::backends::Disk` is compiled only with the `disk` feature",
    "turn it on in Cargo.toml: cachefn = {{ version = \"0.1\", features = [\"disk\"] }}"
);

// `open` and `builder` of each: the argument's type must implement the gate.
// `builder` returns whatever the caller's chain expects, so nothing chained
// after it is reported.

#[cfg(not(feature = "redis"))]
impl Redis {
    /// Needs the `redis` feature.
    pub fn open<U: NeedsTheRedisFeature>(_url: U) -> Result<Redis, Error> {
        unreachable!("no type implements the gate")
    }

    /// Needs the `redis` feature.
    pub fn builder<U: NeedsTheRedisFeature, B>(_url: U) -> B {
        unreachable!("no type implements the gate")
    }
}

#[cfg(not(feature = "redis-cluster"))]
impl RedisCluster {
    /// Needs the `redis-cluster` feature.
    pub fn open<U: NeedsTheRedisClusterFeature>(_urls: U) -> Result<RedisCluster, Error> {
        unreachable!("no type implements the gate")
    }

    /// Needs the `redis-cluster` feature.
    pub fn builder<U: NeedsTheRedisClusterFeature, B>(_urls: U) -> B {
        unreachable!("no type implements the gate")
    }
}

#[cfg(not(feature = "memcached"))]
impl Memcached {
    /// Needs the `memcached` feature.
    pub fn open<U: NeedsTheMemcachedFeature>(_url: U) -> Result<Memcached, Error> {
        unreachable!("no type implements the gate")
    }

    /// Needs the `memcached` feature.
    pub fn builder<U: NeedsTheMemcachedFeature, B>(_url: U) -> B {
        unreachable!("no type implements the gate")
    }
}

#[cfg(not(feature = "disk"))]
impl Disk {
    /// Needs the `disk` feature.
    pub fn open<D: NeedsTheDiskFeature>(_dir: D) -> Result<Disk, Error> {
        unreachable!("no type implements the gate")
    }

    /// Needs the `disk` feature.
    pub fn builder<D: NeedsTheDiskFeature, B>(_dir: D) -> B {
        unreachable!("no type implements the gate")
    }
}
