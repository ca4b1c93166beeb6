//! The one error type of cachefn.

use std::fmt;
use std::sync::Arc;

/// What went wrong in a cache operation.
///
/// Memoized calls never return this: a failing tier turns into a miss and the
/// function body runs. It comes back from operations that were asked to
/// change a cache (`clear`, `set`, `set_cached`, ...) and could not.
///
/// The error a backend reported (an [`std::io::Error`], a `redis` error, ...)
/// stays reachable through [`std::error::Error::source`].
///
/// ```
/// use cachefn::backends::{Error, Failure};
///
/// let err = Error::backend("redis", "connection refused");
/// assert_eq!(err.to_string(), "cache backend `redis` failed: connection refused");
/// assert!(err.is_outage());
///
/// // A server that answers with an error is alive: not an outage.
/// let full = Error::refused("redis", "OOM command not allowed");
/// assert_eq!(full.failure(), Some(Failure::Refused));
/// assert!(!full.is_outage());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A storage backend could not do what was asked (server down, timeout,
    /// I/O error, or a refusal such as Redis `OOM`): [`failure`](Error::failure)
    /// says which kind.
    #[non_exhaustive]
    Backend {
        /// Which backend (`"redis"`, `"memory"`, ...).
        backend: &'static str,
        /// What it reported.
        message: String,
        /// Whether the store was unavailable or answered with a refusal.
        failure: Failure,
        /// The underlying error, when there is one (also [`std::error::Error::source`]).
        source: Option<Source>,
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

/// What a backend failure says about the store's health. The circuit breaker
/// ([`CircuitBreaker`](crate::CircuitBreaker)) trips only on
/// [`Unavailable`](Failure::Unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// The store could not be reached or did not answer in time: connection
    /// refused, reset or closed, a timeout, a broken reply, an I/O error.
    /// An outage.
    Unavailable,
    /// The store is alive and answered with a refusal: Redis `OOM`,
    /// `READONLY` or `WRONGTYPE`, memcached `SERVER_ERROR`, a full or
    /// read-only disk, a reply larger than the tier accepts, a key the store
    /// cannot hold. Other keys and reads keep working.
    Refused,
}

/// The underlying error of an [`Error::Backend`], shared (cheap to clone).
///
/// Compared by identity: two errors with equal messages but separate
/// sources are not equal.
#[derive(Clone)]
pub struct Source(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Source {
    /// The error itself.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Source {}

impl Error {
    /// An outage reported by a backend: the store could not be reached or
    /// did not answer in time ([`Failure::Unavailable`]).
    pub fn backend(backend: &'static str, message: impl Into<String>) -> Self {
        Error::Backend {
            backend,
            message: message.into(),
            failure: Failure::Unavailable,
            source: None,
        }
    }

    /// A refusal reported by a backend that is alive ([`Failure::Refused`]):
    /// the circuit breaker does not count it.
    pub fn refused(backend: &'static str, message: impl Into<String>) -> Self {
        Error::Backend {
            backend,
            message: message.into(),
            failure: Failure::Refused,
            source: None,
        }
    }

    /// The same error with `source` as its [`std::error::Error::source`]
    /// (for [`Error::Backend`]; other variants are returned unchanged).
    ///
    /// ```
    /// use std::error::Error as _;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply");
    /// let err = cachefn::Error::backend("redis", "no reply within 250ms").with_source(io);
    /// let source = err.source().unwrap().downcast_ref::<std::io::Error>().unwrap();
    /// assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
    /// ```
    pub fn with_source(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        match self {
            Error::Backend {
                backend,
                message,
                failure,
                ..
            } => Error::Backend {
                backend,
                message,
                failure,
                source: Some(Source(Arc::new(source))),
            },
            other => other,
        }
    }

    /// Which kind of backend failure this is; `None` for the other variants.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            Error::Backend { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    /// `true` when a store could not be reached or did not answer in time
    /// ([`Failure::Unavailable`]): what the circuit breaker counts.
    pub fn is_outage(&self) -> bool {
        self.failure() == Some(Failure::Unavailable)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Backend {
                backend, message, ..
            } => {
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

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Backend {
                source: Some(s), ..
            } => Some(s.0.as_ref() as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}
