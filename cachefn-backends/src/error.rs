//! The one error type of cachefn.

use std::fmt;

/// What went wrong in a cache operation.
///
/// Memoized calls never return this: a failing tier turns into a miss and the
/// function body runs. It comes back from operations that were asked to
/// change a cache (`clear`, `set`, `set_cached`, ...) and could not.
///
/// ```
/// let err = cachefn_backends::Error::backend("redis", "connection refused");
/// assert_eq!(err.to_string(), "cache backend `redis` failed: connection refused");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A storage backend could not do what was asked (server down, timeout, I/O error).
    Backend {
        /// Which backend (`"redis"`, `"memory"`, ...).
        backend: &'static str,
        /// What it reported.
        message: String,
    },
    /// A value could not be encoded for storage (its `Serialize` impl failed).
    Encode(String),
    /// A key could not be built from the arguments (a `Serialize` impl of an argument failed).
    Key(String),
    /// `#[quickcache(cache = "name")]` or [`cachefn::cache`] named a cache that was never registered.
    ///
    /// [`cachefn::cache`]: https://docs.rs/cachefn
    UnknownCache(String),
    /// The value stored under a key is not a counter (for `incr` / `decr`).
    NotACounter(String),
    /// A memoized function whose caching was turned off when it was first
    /// used, because caching it could serve wrong values (its key head is
    /// another function's, say); the message says why and what to change.
    /// Its calls run the body; its helpers return this.
    Disabled(String),
}

impl Error {
    /// An error reported by a backend.
    pub fn backend(backend: &'static str, message: impl Into<String>) -> Self {
        Error::Backend {
            backend,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Backend { backend, message } => {
                write!(f, "cache backend `{backend}` failed: {message}")
            }
            Error::Encode(msg) => write!(
                f,
                "could not encode the value for the cache: {msg} (check the type's Serialize impl)"
            ),
            Error::Key(msg) => write!(
                f,
                "could not build a cache key from the arguments: {msg} (check the argument's Serialize impl)"
            ),
            Error::UnknownCache(name) => write!(
                f,
                "no cache is registered under the name `{name}`: call cachefn::register(\"{name}\", cache) at start-up"
            ),
            Error::Disabled(why) => write!(f, "caching of this function is disabled: {why}"),
            Error::NotACounter(key) => write!(
                f,
                "the value under `{key}` is not a counter: incr/decr need a key that is absent or holds an i64"
            ),
        }
    }
}

impl std::error::Error for Error {}
