//! The memcached shared tier (feature `memcached`).
//!
//! A small client of memcached's meta protocol (`mg`, `ms`, `md`) over
//! `std::net::TcpStream`, written for this tier rather than taken from a
//! client crate: the tier needs each item's CAS and remaining TTL, replies
//! that come back in request order so that unrelated commands share one
//! round trip, and hard connect and reply timeouts, with no async runtime.
//! How `clear_prefix` works without a key scan is told in [`Memcached`]'s
//! documentation.
//!
//! - `options`: the URL and the builder's options;
//! - `protocol`: the meta protocol's requests and replies, key and TTL rules;
//! - `conn`: connections (opening, the pool, deadlines, one retry after a
//!   server restart) and the blocking client;
//! - `gens`: generations, how a prefix is cleared without a key scan;
//! - `ops`: the `Backend` methods as round trips of the client.

mod conn;
mod gens;
mod ops;
mod options;
mod protocol;

use std::time::Duration;

use crate::net::Limits;
use crate::Error;
use crate::Offloaded;
use conn::Client;
pub use options::MemcachedBuilder;

const NAME: &str = "memcached";
const DEFAULT_IO_THREADS: usize = 4;

/// A memcached server as a shared tier.
///
/// Connections are opened on first use (an application starts while
/// memcached is down) and reused from a small pool, so concurrent calls do
/// not queue on one socket. A connection that fails is dropped; one that
/// turns out closed by the server (a restart) is replaced at once and the
/// call retried on a fresh connection, so a restarted server is used again
/// by itself.
///
/// Every call ends within its deadline, whatever the server sends: the
/// response timeout (250 ms by default) for the whole round trip (waiting
/// for a pooled connection, writing the request, reading every byte of the
/// reply), plus the connect timeout (250 ms) when it opens a connection. A
/// dead, frozen or trickling server costs a call at most that, never a
/// hang. (`add` and `incr` retry a lost compare-and-swap with a fresh
/// deadline per round trip, for up to 2 s.) As with any server, a write
/// that timed out may still be applied if a frozen server resumes.
///
/// Memory is bounded too: at most [`max_connections`](MemcachedBuilder::max_connections)
/// connections (32 by default) exist at once, and a reply larger than
/// [`max_reply_size`](MemcachedBuilder::max_reply_size) (32 MiB by default)
/// fails its call without being read into memory.
///
/// What it guarantees:
///
/// - **Keys** must be 1 to 250 printable ASCII characters without spaces,
///   which every key built by `cachefn` is; any other key is refused with an
///   error before anything is sent. Keys starting with `#gen` are reserved.
/// - **TTLs** are whole seconds, rounded up (memcached's own clock ticks in
///   seconds). A TTL beyond memcached's 30-day limit for relative times is
///   sent as an absolute Unix time; one beyond January 2038 (the largest
///   time memcached accepts) as "no expiry". Absolute times assume this
///   machine's clock agrees with the server's.
/// - **Batches**: `get_many`, `set_many` and `delete_many` are one round
///   trip each, whatever their size.
/// - **Counters** are stored as decimal text, so that `Cache::get::<i64>`
///   reads them back, and updated by compare-and-swap: `incr` is atomic,
///   covers the whole `i64` range including negative values (memcached's own
///   `incr`/`decr` are unsigned and stop at 0), starts a missing key at 0
///   and keeps a counter's TTL.
/// - **`clear_prefix`** never scans or flushes the server. It invalidates a
///   *scope* by generation (see below): a prefix that ends right after its
///   first or second `:` (`"blog:"`, what `Cache::clear` passes, or
///   `"blog:views.page:"`) clears exactly the keys that start with it; a
///   prefix that ends elsewhere clears the scope that
///   contains it, a superset: `"blog:views.page:v"` (what `f::clear_all`
///   passes) clears every key whose second segment is `views.page`, and
///   `"blog:us"` clears all of `blog:`. A prefix without `:` is an error.
///   Cleared entries stay in memory, unreadable, until they expire or
///   memcached evicts them.
///
/// # Clearing without a key scan
///
/// memcached cannot list keys, so the tier clears by generations. A key
/// `a:b:rest` belongs to two *scopes*, `a:` (a cache's prefix) and `a:b:`
/// (for a memoized function, its name); each scope has a generation item
/// under `#gen:SCOPE` (or `#gen#HASH` when that would pass 250 bytes), and
/// clearing a scope overwrites it. memcached gives every store a CAS number
/// from one server-wide counter that only grows, so an entry is live when
/// its CAS is greater than the CAS of each of its scopes' generation items:
/// it was stored after the last clear. No clock is involved, and a store
/// racing a clear is ordered by the server.
///
/// - A read asks for the entry and its generation items in one round trip
///   (`get_many`: each distinct generation item once for the whole batch).
/// - A write creates missing generation items with `add` (a no-op when they
///   exist) in the same round trip as the store.
/// - A generation item that memcached evicts (or loses in a restart) makes
///   the older entries of its scope misses; they never come back as live.
/// - The values themselves are stored unchanged (no header), so counters
///   stay plain decimal text.
///
/// It needs memcached 1.6.10 or newer (the meta protocol in its stable
/// form) with CAS enabled (the default; not `-C`), on one server; tested
/// with 1.6.18.
///
/// The `_async` methods run the blocking round trips on a few I/O threads
/// of the tier's own (4 by default, started on first use;
/// [`MemcachedBuilder::io_threads`]), so no executor thread waits on
/// memcached. They need no particular async runtime.
///
/// URLs: `memcache://host[:port]` or `memcached://host[:port]` (port 11211
/// by default; IPv6 as `[::1]`). No authentication, path or query.
///
/// ```no_run
/// use std::time::Duration;
/// use cachefn::backends::{Backend, Memcached};
///
/// let mc = Memcached::open("memcache://127.0.0.1:11211")?;
/// mc.set("app:k", b"v", Duration::from_secs(60))?;
/// assert_eq!(mc.get("app:k")?, Some(b"v".to_vec()));
/// assert_eq!(mc.incr("app:hits", -3)?, -3);
/// mc.clear_prefix("app:")?; // every key under `app:`, nothing else
/// assert_eq!(mc.get("app:k")?, None);
/// # Ok::<(), cachefn::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub struct Memcached {
    /// The blocking client; its `_async` twins on I/O threads.
    client: Offloaded<Client>,
}

impl Memcached {
    /// How long opening a connection may take unless the builder says otherwise.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Limits::DEFAULT.connect_timeout;
    /// How long a reply may take unless the builder says otherwise.
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Limits::DEFAULT.response_timeout;

    /// A tier for `url` (`memcache://host[:port]`) with the default
    /// timeouts. Nothing connects yet, so an application starts even when
    /// memcached is down.
    ///
    /// ```
    /// use cachefn::backends::Memcached;
    ///
    /// assert!(Memcached::open("memcache://127.0.0.1:11211").is_ok());
    /// let err = Memcached::open("redis://127.0.0.1").unwrap_err();
    /// assert!(err.to_string().contains("not a memcached URL"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the URL is not a memcached URL.
    pub fn open(url: &str) -> Result<Memcached, Error> {
        Memcached::builder(url).build()
    }

    /// A builder, to set timeouts and the pool size.
    pub fn builder(url: &str) -> MemcachedBuilder {
        MemcachedBuilder {
            url: url.to_owned(),
            limits: Limits::DEFAULT,
            io_threads: DEFAULT_IO_THREADS,
        }
    }
}

impl std::fmt::Debug for Memcached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.client.get_ref();
        f.debug_struct("Memcached")
            .field("addr", &format!("{}:{}", c.host, c.port))
            .field("connect_timeout", &c.connect_timeout)
            .field("response_timeout", &c.response_timeout)
            .field("io_threads", &self.client.threads())
            .finish()
    }
}

// Every call is the client's (`clear_prefix` clears by generation: see
// `Memcached`); the `_async` twins run it on an I/O thread.
crate::backend::delegate_backend!(impl[] for Memcached, |m| &m.client);
