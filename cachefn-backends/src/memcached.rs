//! The memcached shared tier (feature `memcached`).
//!
//! A small client of memcached's meta protocol (`mg`, `ms`, `md`) over
//! `std::net::TcpStream`, written for this tier rather than taken from a
//! client crate: the tier needs each item's CAS and remaining TTL, replies
//! that come back in request order so that unrelated commands share one
//! round trip, and hard connect and reply timeouts, with no async runtime.
//! How `clear_prefix` works without a key scan is told in [`Memcached`]'s
//! documentation.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::conns::{Conns, Lease};
use crate::net::deadline::{self, is_timeout, Timed};
use crate::pool::Pool;
use crate::{clock, Backend, BoxFuture, Error};

const NAME: &str = "memcached";
const DEFAULT_PORT: u16 = 11211;
const DEFAULT_MAX_IDLE: usize = 16;
const DEFAULT_MAX_CONNECTIONS: usize = 32;
const DEFAULT_MAX_REPLY_SIZE: usize = 32 << 20;
const DEFAULT_IO_THREADS: usize = 4;
/// memcached's longest key.
const MAX_KEY_LEN: usize = 250;
/// memcached reads a larger expiry time as a Unix time, not a number of seconds.
const MAX_RELATIVE_TTL: u64 = 30 * 24 * 3600;
/// Generation items live under this start, which no cache prefix has
/// (a cache escapes `#` in its prefix).
const GEN_START: &str = "#gen:";
/// Longest reply line accepted (memcached's are far shorter).
const MAX_LINE: u64 = 4096;
/// Requests longer than this are written by a helper thread while the
/// replies are read, so that a large batch cannot deadlock on full socket
/// buffers.
const INLINE_WRITE: usize = 16 * 1024;
/// How long `add` and `incr` retry a compare-and-swap that lost a race.
const CAS_PATIENCE: Duration = Duration::from_secs(2);

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
/// use cachefn_backends::{Backend, Memcached};
///
/// let mc = Memcached::open("memcache://127.0.0.1:11211")?;
/// mc.set("app:k", b"v", Duration::from_secs(60))?;
/// assert_eq!(mc.get("app:k")?, Some(b"v".to_vec()));
/// assert_eq!(mc.incr("app:hits", -3)?, -3);
/// mc.clear_prefix("app:")?; // every key under `app:`, nothing else
/// assert_eq!(mc.get("app:k")?, None);
/// # Ok::<(), cachefn_backends::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub struct Memcached {
    client: Arc<Client>,
    /// Runs the blocking round trips of the `_async` methods.
    pool: Arc<Pool>,
}

/// The blocking client behind [`Memcached`].
struct Client {
    host: Host,
    port: u16,
    conns: Conns<Conn>,
    connect_timeout: Duration,
    response_timeout: Duration,
    max_reply_size: usize,
}

/// Options of a [`Memcached`] tier; from [`Memcached::builder`].
///
/// ```
/// use std::time::Duration;
/// use cachefn_backends::Memcached;
///
/// let mc = Memcached::builder("memcache://127.0.0.1:11211")
///     .connect_timeout(Duration::from_millis(100))
///     .response_timeout(Duration::from_millis(50))
///     .max_idle(4)
///     .max_connections(16)
///     .max_reply_size(4 << 20)
///     .build()?;
/// # Ok::<(), cachefn_backends::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
#[must_use]
pub struct MemcachedBuilder {
    url: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    max_idle: usize,
    max_connections: usize,
    max_reply_size: usize,
    io_threads: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl MemcachedBuilder {
    /// How long opening a connection may take (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long one round trip may take (default 250 ms): waiting for a
    /// pooled connection, writing the request and reading the whole reply,
    /// however the server sends it.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Idle connections kept for reuse (default 16; at most
    /// [`max_connections`](Self::max_connections)).
    pub fn max_idle(mut self, connections: usize) -> Self {
        self.max_idle = connections.max(1);
        self
    }

    /// The most connections open at once (default 32; at least 1). A call
    /// that finds them all busy waits for one, within its response timeout,
    /// then fails with an error that names this setting. Bounds the
    /// connections one process opens to the server, however many threads
    /// call it.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// The most bytes one reply may carry (default 32 MiB; at least 1 KiB):
    /// one value, or every value of a `get_many` together. A larger reply
    /// fails its call (an error, the connection closed) before it is read
    /// into memory, so a misbehaving server cannot grow the process beyond
    /// `max_connections × max_reply_size`. memcached's own item limit is
    /// 1 MiB by default (`-I`); 32 MiB leaves room for batches of large
    /// values while keeping that worst case near 1 GiB.
    pub fn max_reply_size(mut self, bytes: usize) -> Self {
        self.max_reply_size = bytes.max(1024);
        self
    }

    /// Threads that run the blocking round trips of the `_async` methods
    /// (default 4, started on first use); 0 runs them on the caller's
    /// (executor's) thread.
    pub fn io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads;
        self
    }

    /// The tier. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the URL is not a memcached URL, saying what
    /// to write instead.
    pub fn build(self) -> Result<Memcached, Error> {
        let (host, port) = parse_url(&self.url).map_err(|why| {
            Error::backend(
                NAME,
                format!(
                    "`{}` is not a memcached URL: {why}; write memcache://host[:port]",
                    redact(&self.url)
                ),
            )
        })?;
        Ok(Memcached {
            client: Arc::new(Client {
                host,
                port,
                conns: Conns::new(self.max_connections, self.max_idle),
                connect_timeout: self.connect_timeout,
                response_timeout: self.response_timeout,
                max_reply_size: self.max_reply_size,
            }),
            pool: Arc::new(Pool::new(self.io_threads, NAME)),
        })
    }
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// `memcache://host[:port]` (or `memcached://`) into a host and a port.
fn parse_url(url: &str) -> Result<(Host, u16), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("it has no scheme".into());
    };
    if !matches!(scheme, "memcache" | "memcached") {
        return Err(format!("the scheme `{scheme}` is not memcache://"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(
            "authentication is not supported (memcached's SASL needs its binary protocol)".into(),
        );
    }
    if authority.contains(['/', '?', '#']) {
        return Err("a path or query is not supported (memcached has no databases)".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("a `:` must follow `]`")?),
        };
        (Host::Ip(ip), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("it has no host".into());
        }
        if host.contains(':') {
            return Err("write an IPv6 address in brackets, as [::1]".into());
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(format!("`{host}` is not a host name"));
        }
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.to_owned()),
        };
        (host, port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("`{p}` is not a port (1 to 65535)")),
        },
    };
    Ok((host, port))
}

/// memcached's expiry time for `ttl`, stored at Unix time `now` (seconds).
fn exptime(ttl: Duration, now: u64) -> i64 {
    if ttl.is_zero() {
        return 0;
    }
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    if secs <= MAX_RELATIVE_TTL {
        return secs as i64;
    }
    match now.checked_add(secs) {
        Some(at) if at <= i32::MAX as u64 => at as i64,
        // Past what memcached can represent: keep it without expiry (the
        // cache's values carry their own expiry as well).
        _ => 0,
    }
}

fn now_secs() -> u64 {
    clock::unix_ms() / 1000
}

/// Refuse keys that memcached would reject or that would break the
/// protocol (a space or a line break in a key would start a new command).
fn check_key(key: &str) -> Result<(), Error> {
    let ok =
        !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        return Ok(());
    }
    let shown: String = key.chars().take(60).collect();
    Err(Error::backend(
        NAME,
        format!(
            "`{}{}` ({} bytes) is not a memcached key: keys are 1 to 250 printable ASCII characters without spaces",
            shown.escape_debug(),
            if shown.len() < key.len() { "..." } else { "" },
            key.len()
        ),
    ))
}

/// The scopes of `key`: up to and including its first `:`, and its second.
fn scopes(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices(':').take(2).map(move |(i, _)| &key[..=i])
}

/// The scope that `clear_prefix(prefix)` must invalidate: the smallest
/// scope that every key starting with `prefix` belongs to.
fn clear_scope(prefix: &str) -> Option<&str> {
    let mut colons = prefix.match_indices(':').map(|(i, _)| i);
    let first = colons.next()?;
    Some(match colons.next() {
        Some(second) => &prefix[..=second],
        None => &prefix[..=first],
    })
}

/// The key of a scope's generation item, within memcached's 250 bytes.
fn gen_key(scope: &str) -> String {
    if GEN_START.len() + scope.len() <= MAX_KEY_LEN {
        format!("{GEN_START}{scope}")
    } else {
        format!(
            "#gen#{:032x}",
            xxhash_rust::xxh3::xxh3_128(scope.as_bytes())
        )
    }
}

fn gen_keys(key: &str) -> Vec<String> {
    scopes(key).map(gen_key).collect()
}

// ----- requests -------------------------------------------------------------

enum Mode {
    Set,
    Add,
    Cas(u64),
}

fn push_mg(buf: &mut Vec<u8>, key: &str, flags: &str) {
    buf.extend_from_slice(b"mg ");
    buf.extend_from_slice(key.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(flags.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

fn push_ms(buf: &mut Vec<u8>, key: &str, data: &[u8], exptime: i64, mode: Mode) {
    let mut line = String::with_capacity(key.len() + 40);
    let _ = write!(line, "ms {key} {} T{exptime} F0", data.len());
    match mode {
        Mode::Set => {}
        Mode::Add => line.push_str(" ME"),
        Mode::Cas(cas) => {
            let _ = write!(line, " C{cas}");
        }
    }
    line.push_str("\r\n");
    buf.extend_from_slice(line.as_bytes());
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
}

fn push_md(buf: &mut Vec<u8>, key: &str) {
    buf.extend_from_slice(b"md ");
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Create the generation items of `gens` if they are missing: an `add`,
/// which leaves an existing one (and so its CAS) alone.
fn push_ensure_gens(buf: &mut Vec<u8>, gens: &[String]) {
    let stamp = clock::unix_ms().to_string();
    for g in gens {
        push_ms(buf, g, stamp.as_bytes(), 0, Mode::Add);
    }
}

fn push_read_gens(buf: &mut Vec<u8>, gens: &[String]) {
    for g in gens {
        push_mg(buf, g, "c");
    }
}

// ----- replies --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// `VA`: a value follows.
    Value,
    /// `HD`: found, stored or deleted.
    Done,
    /// `EN`: a get missed.
    Miss,
    /// `NS`: not stored (an add found the key).
    NotStored,
    /// `EX`: a compare-and-swap lost.
    Exists,
    /// `NF`: not found.
    NotFound,
}

#[derive(Debug)]
struct Reply {
    code: Code,
    data: Vec<u8>,
    cas: u64,
    /// Remaining seconds; -1 when the item never expires.
    ttl: Option<i64>,
}

impl Reply {
    fn found(&self) -> bool {
        matches!(self.code, Code::Value | Code::Done)
    }
}

/// Why a call on one connection failed. Either way the connection is
/// dropped: it may be in the middle of a reply.
#[derive(Debug)]
enum Fail {
    Io(io::Error),
    /// A reply that makes no sense: the connection cannot be trusted.
    Reply(String),
    /// The server answered with an error (`SERVER_ERROR`, `CLIENT_ERROR`):
    /// it is alive.
    Server(String),
    /// A reply larger than `max_reply_size`.
    TooLarge(String),
}

type Res<T> = Result<T, Fail>;

fn unexpected(what: &str, r: &Reply) -> Fail {
    Fail::Reply(format!("unexpected reply {:?} to {what}", r.code))
}

/// A live entry: stored after the last clear of each of its scopes.
fn live(cas: u64, gens: &[Reply]) -> bool {
    gens.iter().all(|g| g.found() && cas > g.cas)
}

struct Reader {
    inner: BufReader<Timed<TcpStream>>,
    line: Vec<u8>,
    /// Replies read during the current call.
    replies: usize,
    /// Bytes the rest of the current round trip's replies may carry.
    budget: usize,
}

impl Reader {
    fn reply(&mut self) -> Res<Reply> {
        self.line.clear();
        let n = (&mut self.inner)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)
            .map_err(Fail::Io)?;
        if n == 0 {
            return Err(Fail::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        self.budget = self.budget.saturating_sub(n);
        let Some(line) = self.line.strip_suffix(b"\r\n") else {
            return Err(Fail::Reply(
                "a reply line was cut short or is too long".into(),
            ));
        };
        let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
        let head = tokens.next().unwrap_or_default();
        let code = match head {
            b"VA" => Code::Value,
            b"HD" => Code::Done,
            b"EN" => Code::Miss,
            b"NS" => Code::NotStored,
            b"EX" => Code::Exists,
            b"NF" => Code::NotFound,
            b"ERROR" => {
                return Err(Fail::Reply(
                    "the server does not know memcached's meta commands (mg, ms, md): the Memcached tier needs memcached 1.6.10 or newer".into(),
                ))
            }
            _ => {
                let text = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                return Err(if text.starts_with("SERVER_ERROR") || text.starts_with("CLIENT_ERROR") {
                    Fail::Server(text)
                } else {
                    Fail::Reply(format!(
                        "unexpected reply `{}` (the Memcached tier needs memcached 1.6.10 or newer)",
                        text.escape_debug()
                    ))
                });
            }
        };
        let size = if code == Code::Value {
            let size = tokens
                .next()
                .and_then(|t| std::str::from_utf8(t).ok()?.parse::<usize>().ok())
                .ok_or_else(|| Fail::Reply("a VA reply without a valid size".into()))?;
            if size > self.budget {
                return Err(Fail::TooLarge(format!(
                    "the reply holds a value of {size} bytes, more than the {} bytes left of \
                     max_reply_size: raise MemcachedBuilder::max_reply_size if values this large are expected",
                    self.budget
                )));
            }
            self.budget -= size;
            Some(size)
        } else {
            None
        };
        let (mut cas, mut ttl) = (None, None);
        for t in tokens {
            let num = std::str::from_utf8(&t[1..]).ok();
            match t[0] {
                b'c' => cas = num.and_then(|n| n.parse::<u64>().ok()),
                b't' => ttl = num.and_then(|n| n.parse::<i64>().ok()),
                _ => {}
            }
        }
        if cas == Some(0) && matches!(code, Code::Value | Code::Done) {
            return Err(Fail::Reply(
                "the server returned CAS 0: it runs with CAS disabled (-C), and the Memcached tier needs CAS to clear by prefix; start memcached without -C".into(),
            ));
        }
        let mut data = Vec::new();
        if let Some(size) = size {
            // Grown as bytes arrive: the size comes from the server.
            data.reserve_exact((size + 2).min(64 * 1024));
            (&mut self.inner)
                .take(size as u64 + 2)
                .read_to_end(&mut data)
                .map_err(Fail::Io)?;
            if data.len() < size + 2 {
                return Err(Fail::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            if !data.ends_with(b"\r\n") {
                return Err(Fail::Reply("a value did not end in CRLF".into()));
            }
            data.truncate(size);
        }
        self.replies += 1;
        Ok(Reply {
            code,
            data,
            cas: cas.unwrap_or(0),
            ttl,
        })
    }
}

struct Conn {
    writer: Timed<TcpStream>,
    reader: Reader,
    response_timeout: Duration,
    max_reply_size: usize,
}

impl Conn {
    /// Every read and write from now on ends by `deadline`.
    fn set_deadline(&mut self, deadline: Instant) {
        self.writer.set_deadline(deadline);
        self.reader.inner.get_mut().set_deadline(deadline);
    }

    /// A fresh deadline, one response timeout from now, for a retried round trip.
    fn renew(&mut self) {
        self.set_deadline(Instant::now() + self.response_timeout);
    }

    /// Send `request` (any number of commands) and read `replies` replies:
    /// one round trip.
    fn exchange(&mut self, request: &[u8], replies: usize) -> Res<Vec<Reply>> {
        self.reader.budget = self.max_reply_size;
        let (writer, reader) = (&mut self.writer, &mut self.reader);
        let read_all = |reader: &mut Reader| -> Res<Vec<Reply>> {
            (0..replies).map(|_| reader.reply()).collect()
        };
        if request.len() <= INLINE_WRITE {
            writer.write_all(request).map_err(Fail::Io)?;
            return read_all(reader);
        }
        // A large request: write it while reading, or the server could
        // block on replies nobody reads while we block on the request.
        std::thread::scope(|s| {
            let writing = std::thread::Builder::new()
                .name("cachefn-memcached-write".into())
                .spawn_scoped(s, || writer.write_all(request));
            let Ok(writing) = writing else {
                // No thread to be had: write first, bounded by the deadline.
                // (The closure that held `writer` is gone with the failed spawn.)
                return Err(Fail::Io(io::Error::other(
                    "cannot start a thread to write a large request",
                )));
            };
            let got = read_all(reader);
            let sent = writing
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked")));
            match (sent, got) {
                (Err(e), _) => Err(Fail::Io(e)),
                (Ok(()), got) => got,
            }
        })
    }
}

impl Memcached {
    /// How long opening a connection may take unless the builder says otherwise.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
    /// How long a reply may take unless the builder says otherwise.
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

    /// A tier for `url` (`memcache://host[:port]`) with the default
    /// timeouts. Nothing connects yet, so an application starts even when
    /// memcached is down.
    ///
    /// ```
    /// use cachefn_backends::Memcached;
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
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            max_idle: DEFAULT_MAX_IDLE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_reply_size: DEFAULT_MAX_REPLY_SIZE,
            io_threads: DEFAULT_IO_THREADS,
        }
    }

    /// Run `f` on an I/O thread.
    fn offload<T, F>(&self, f: F) -> BoxFuture<'static, Result<T, Error>>
    where
        T: Send + 'static,
        F: FnOnce(&Client) -> Result<T, Error> + Send + 'static,
    {
        let client = self.client.clone();
        Box::pin(self.pool.run(move || f(&client)))
    }
}

impl Client {
    /// A new connection, opened within the connect timeout and by `deadline`.
    fn connect(&self, deadline: Instant) -> Result<Conn, Error> {
        let addrs: Vec<SocketAddr> = match &self.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, self.port)],
            Host::Name(name) => (name.as_str(), self.port)
                .to_socket_addrs()
                .map_err(|e| {
                    Error::backend(NAME, format!("cannot resolve `{name}`: {e}")).with_source(e)
                })?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match deadline::connect_tcp(&addr, self.connect_timeout, deadline) {
                Ok(stream) => return self.ready(stream, deadline),
                Err(e) => last = Some(e),
            }
        }
        let Some(e) = last else {
            return Err(Error::backend(
                NAME,
                format!(
                    "cannot connect to {}:{}: the name has no address",
                    self.host, self.port
                ),
            ));
        };
        let why = if is_timeout(&e) {
            format!("no connection within {:?}", self.connect_timeout)
        } else {
            e.to_string()
        };
        Err(Error::backend(
            NAME,
            format!("cannot connect to {}:{}: {why}", self.host, self.port),
        )
        .with_source(e))
    }

    fn ready(&self, stream: TcpStream, deadline: Instant) -> Result<Conn, Error> {
        let setup = || -> io::Result<Conn> {
            stream.set_nodelay(true)?;
            let writer = Timed::new(stream.try_clone()?, self.response_timeout)?;
            let reader = Timed::new(stream, self.response_timeout)?;
            let mut conn = Conn {
                writer,
                reader: Reader {
                    inner: BufReader::with_capacity(16 * 1024, reader),
                    line: Vec::with_capacity(128),
                    replies: 0,
                    budget: self.max_reply_size,
                },
                response_timeout: self.response_timeout,
                max_reply_size: self.max_reply_size,
            };
            conn.set_deadline(deadline);
            Ok(conn)
        };
        setup().map_err(|e| {
            Error::backend(NAME, format!("cannot set up a connection: {e}")).with_source(e)
        })
    }

    fn error(&self, op: &str, fail: Fail) -> Error {
        let at = format!("{op} on {}:{}", self.host, self.port);
        match fail {
            Fail::Io(e) => {
                let why = if is_timeout(&e) {
                    format!(
                        "no reply within {:?} (is the server stopped, overloaded or trickling?)",
                        self.response_timeout
                    )
                } else if e.kind() == io::ErrorKind::UnexpectedEof {
                    "the server closed the connection".into()
                } else {
                    e.to_string()
                };
                Error::backend(NAME, format!("{at}: {why}")).with_source(e)
            }
            Fail::Reply(why) => Error::backend(NAME, format!("{at}: {why}")),
            Fail::Server(why) | Fail::TooLarge(why) => Error::refused(NAME, format!("{at}: {why}")),
        }
    }

    /// A pooled connection, or a slot to open one in, by `deadline`.
    fn lease(&self, deadline: Instant) -> Result<Lease<'_, Conn>, Error> {
        self.conns.lease(deadline).map_err(|busy| {
            Error::backend(
                NAME,
                format!(
                    "all {} connections to {}:{} stayed busy for {:?}: raise \
                     MemcachedBuilder::max_connections, or the response timeout",
                    busy.max_open, self.host, self.port, busy.waited
                ),
            )
        })
    }

    /// Run `f` on a pooled connection, within the call's deadline (the
    /// response timeout, plus the connect timeout when a connection is
    /// opened). A connection that fails is dropped; a pooled one that the
    /// server had closed before answering anything (it restarted) is
    /// replaced, with the rest of the pool, and `f` runs once more on a
    /// fresh connection. A server's error answer (`SERVER_ERROR`) leaves
    /// the connection in the pool.
    fn with<R>(&self, op: &str, mut f: impl FnMut(&mut Conn) -> Res<R>) -> Result<R, Error> {
        let mut deadline = Instant::now() + self.response_timeout;
        let mut lease = self.lease(deadline)?;
        let reused = lease.conn.is_some();
        let conn = match &mut lease.conn {
            Some(conn) => {
                conn.set_deadline(deadline);
                conn
            }
            None => {
                deadline += self.connect_timeout;
                lease.conn.insert(self.connect(deadline)?)
            }
        };
        conn.reader.replies = 0;
        let fail = match f(conn) {
            Ok(r) => {
                lease.keep();
                return Ok(r);
            }
            Err(fail) => fail,
        };
        if matches!(fail, Fail::Server(_)) {
            lease.keep();
            return Err(self.error(op, fail));
        }
        if !(reused && conn.reader.replies == 0 && is_closed(&fail)) {
            return Err(self.error(op, fail));
        }
        // The lease's slot is reused for the fresh connection.
        lease.conn = None;
        self.conns.clear_idle();
        deadline = Instant::now() + self.response_timeout + self.connect_timeout;
        let conn = lease.conn.insert(self.connect(deadline)?);
        match f(conn) {
            Ok(r) => {
                lease.keep();
                Ok(r)
            }
            Err(fail @ Fail::Server(_)) => {
                lease.keep();
                Err(self.error(op, fail))
            }
            Err(fail) => Err(self.error(op, fail)),
        }
    }
}

fn is_closed(fail: &Fail) -> bool {
    matches!(fail, Fail::Io(e) if matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    ))
}

impl std::fmt::Debug for Memcached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.client;
        f.debug_struct("Memcached")
            .field("addr", &format!("{}:{}", c.host, c.port))
            .field("connect_timeout", &c.connect_timeout)
            .field("response_timeout", &c.response_timeout)
            .field("io_threads", &self.pool.threads())
            .finish()
    }
}

/// Retries of a compare-and-swap, bounded in time.
struct Patience(Instant);

impl Patience {
    fn new() -> Self {
        Patience(Instant::now() + CAS_PATIENCE)
    }
    fn again(&self, op: &str, key: &str) -> Res<()> {
        if Instant::now() > self.0 {
            return Err(Fail::Reply(format!(
                "{op} of `{key}` kept losing compare-and-swap races for {CAS_PATIENCE:?}"
            )));
        }
        std::thread::yield_now();
        Ok(())
    }
}

/// A counter's value, as decimal text.
fn parse_counter(data: &[u8]) -> Option<i64> {
    std::str::from_utf8(data).ok()?.trim().parse().ok()
}

/// The expiry to keep when rewriting an item that has `ttl` seconds left.
fn keep_ttl(ttl: Option<i64>) -> i64 {
    match ttl {
        None | Some(..=-1) => 0,
        Some(secs) => exptime(Duration::from_secs(secs.max(1) as u64), now_secs()),
    }
}

/// Every call is the client's; the `_async` twins run it on an I/O thread.
impl Backend for Memcached {
    fn name(&self) -> &'static str {
        NAME
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.client.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.client.set(key, value, ttl)
    }
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.client.add(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.client.delete(key)
    }
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.client.incr(key, delta)
    }
    /// Clears by generation: see [`Memcached`].
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        self.client.clear_prefix(prefix)
    }
    fn has(&self, key: &str) -> Result<bool, Error> {
        self.client.has(key)
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.client.get_many(keys)
    }
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        self.client.set_many(items, ttl)
    }
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        self.client.delete_many(keys)
    }

    crate::pool::offloaded_async_methods!();
}

/// The blocking protocol.
impl Backend for Client {
    fn name(&self) -> &'static str {
        NAME
    }

    /// One round trip: the entry and its generation items.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let mut req = Vec::with_capacity(64 + 2 * key.len());
        push_mg(&mut req, key, "v c");
        push_read_gens(&mut req, &gens);
        self.with("get", |c| {
            let mut r = c.exchange(&req, 1 + gens.len())?;
            let live = r[0].code == Code::Value && live(r[0].cas, &r[1..]);
            Ok(live.then(|| std::mem::take(&mut r[0].data)))
        })
    }

    /// One round trip: the generation items (created when missing), then the store.
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.set_many(&[(key, value)], ttl)
    }

    /// Atomic: a plain `add` when the key is absent (one round trip), a
    /// compare-and-swap over an entry that a clear invalidated.
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let exp = exptime(ttl, now_secs());
        self.with("add", |c| {
            let patience = Patience::new();
            loop {
                let mut req = Vec::new();
                push_ensure_gens(&mut req, &gens);
                push_ms(&mut req, key, value, exp, Mode::Add);
                let r = c.exchange(&req, gens.len() + 1)?;
                match r[gens.len()].code {
                    Code::Done => return Ok(true),
                    Code::NotStored => {}
                    _ => return Err(unexpected("an add", &r[gens.len()])),
                }
                // Present: live, or left over from before a clear?
                let mut req = Vec::new();
                push_read_gens(&mut req, &gens);
                push_mg(&mut req, key, "c");
                let r = c.exchange(&req, gens.len() + 1)?;
                let entry = &r[gens.len()];
                if entry.found() {
                    if live(entry.cas, &r[..gens.len()]) {
                        return Ok(false);
                    }
                    let mut req = Vec::new();
                    push_ms(&mut req, key, value, exp, Mode::Cas(entry.cas));
                    let r = c.exchange(&req, 1)?;
                    match r[0].code {
                        Code::Done => return Ok(true),
                        Code::Exists | Code::NotFound => {}
                        _ => return Err(unexpected("a compare-and-swap", &r[0])),
                    }
                }
                patience.again("add", key)?;
                c.renew();
            }
        })
    }

    /// One round trip; `true` when a live entry was removed.
    fn delete(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let mut req = Vec::new();
        push_mg(&mut req, key, "c");
        push_read_gens(&mut req, &gens);
        push_md(&mut req, key);
        self.with("delete", |c| {
            let r = c.exchange(&req, gens.len() + 2)?;
            let was_live = r[0].found() && live(r[0].cas, &r[1..=gens.len()]);
            match r[gens.len() + 1].code {
                Code::Done => Ok(was_live),
                Code::NotFound => Ok(false),
                _ => Err(unexpected("a delete", &r[gens.len() + 1])),
            }
        })
    }

    /// A compare-and-swap on the decimal text: two round trips, more when
    /// other clients update the same counter at the same time.
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let outcome = self.with("incr", |c| {
            let patience = Patience::new();
            loop {
                let mut req = Vec::new();
                push_ensure_gens(&mut req, &gens);
                push_read_gens(&mut req, &gens);
                push_mg(&mut req, key, "v c t");
                let r = c.exchange(&req, 2 * gens.len() + 1)?;
                let entry = &r[2 * gens.len()];
                let mut req = Vec::new();
                if entry.code != Code::Value {
                    push_ms(&mut req, key, delta.to_string().as_bytes(), 0, Mode::Add);
                    let r = c.exchange(&req, 1)?;
                    match r[0].code {
                        Code::Done => return Ok(Ok(delta)),
                        Code::NotStored => {}
                        _ => return Err(unexpected("an add", &r[0])),
                    }
                } else {
                    let (next, exp) = if live(entry.cas, &r[gens.len()..2 * gens.len()]) {
                        let Some(n) = parse_counter(&entry.data) else {
                            return Ok(Err(Error::NotACounter(key.to_owned())));
                        };
                        let Some(next) = n.checked_add(delta) else {
                            return Ok(Err(Error::NotACounter(format!("{key} (overflow)"))));
                        };
                        (next, keep_ttl(entry.ttl))
                    } else {
                        // Left over from before a clear: a fresh counter.
                        (delta, 0)
                    };
                    push_ms(
                        &mut req,
                        key,
                        next.to_string().as_bytes(),
                        exp,
                        Mode::Cas(entry.cas),
                    );
                    let r = c.exchange(&req, 1)?;
                    match r[0].code {
                        Code::Done => return Ok(Ok(next)),
                        Code::Exists | Code::NotFound => {}
                        _ => return Err(unexpected("a compare-and-swap", &r[0])),
                    }
                }
                patience.again("incr", key)?;
                c.renew();
            }
        });
        outcome?
    }

    /// One round trip that overwrites the scope's generation item: every
    /// entry stored before it becomes a miss. See the type's docs for which
    /// prefixes clear exactly and which clear a superset.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        let Some(scope) = clear_scope(prefix) else {
            return Err(Error::backend(
                NAME,
                format!(
                    "cannot clear the prefix `{}`: memcached cannot list keys, so the Memcached tier clears by scope, and a prefix needs a `:` (as `app:`)",
                    prefix.escape_debug()
                ),
            ));
        };
        let gen = gen_key(scope);
        check_key(&gen)?;
        let mut req = Vec::new();
        push_ms(
            &mut req,
            &gen,
            clock::unix_ms().to_string().as_bytes(),
            0,
            Mode::Set,
        );
        self.with("clear_prefix", |c| {
            let r = c.exchange(&req, 1)?;
            match r[0].code {
                Code::Done => Ok(()),
                _ => Err(unexpected("a set", &r[0])),
            }
        })
    }

    /// One round trip, without the value.
    fn has(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let mut req = Vec::new();
        push_mg(&mut req, key, "c");
        push_read_gens(&mut req, &gens);
        self.with("has", |c| {
            let r = c.exchange(&req, 1 + gens.len())?;
            Ok(r[0].found() && live(r[0].cas, &r[1..]))
        })
    }

    /// One round trip for the whole batch: every entry, then each distinct
    /// generation item once.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut gens: Vec<String> = Vec::new();
        let mut scopes_of: Vec<Vec<usize>> = Vec::with_capacity(keys.len());
        let mut req = Vec::with_capacity(keys.len() * 64);
        for key in keys {
            check_key(key)?;
            push_mg(&mut req, key, "v c");
            let mut mine = Vec::with_capacity(2);
            for g in gen_keys(key) {
                let i = match gens.iter().position(|x| *x == g) {
                    Some(i) => i,
                    None => {
                        gens.push(g);
                        gens.len() - 1
                    }
                };
                mine.push(i);
            }
            scopes_of.push(mine);
        }
        push_read_gens(&mut req, &gens);
        self.with("get_many", |c| {
            let mut r = c.exchange(&req, keys.len() + gens.len())?;
            let (entries, gen_replies) = r.split_at_mut(keys.len());
            Ok(entries
                .iter_mut()
                .zip(&scopes_of)
                .map(|(e, mine)| {
                    let live = e.code == Code::Value
                        && mine
                            .iter()
                            .all(|&i| gen_replies[i].found() && e.cas > gen_replies[i].cas);
                    live.then(|| std::mem::take(&mut e.data))
                })
                .collect())
        })
    }

    /// One round trip: the missing generation items, then every store.
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        let mut gens: Vec<String> = Vec::new();
        for (key, _) in items {
            check_key(key)?;
            for g in gen_keys(key) {
                if !gens.contains(&g) {
                    gens.push(g);
                }
            }
        }
        let exp = exptime(ttl, now_secs());
        let size: usize = items.iter().map(|(k, v)| k.len() + v.len() + 40).sum();
        let mut req = Vec::with_capacity(size + 64 * gens.len());
        push_ensure_gens(&mut req, &gens);
        for (key, value) in items {
            push_ms(&mut req, key, value, exp, Mode::Set);
        }
        self.with("set", |c| {
            let r = c.exchange(&req, gens.len() + items.len())?;
            match r[gens.len()..].iter().find(|r| r.code != Code::Done) {
                None => Ok(()),
                Some(bad) => Err(unexpected("a set", bad)),
            }
        })
    }

    /// One round trip.
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut req = Vec::with_capacity(keys.len() * 64);
        for key in keys {
            check_key(key)?;
            push_md(&mut req, key);
        }
        self.with("delete_many", |c| {
            let r = c.exchange(&req, keys.len())?;
            match r
                .iter()
                .find(|r| !matches!(r.code, Code::Done | Code::NotFound))
            {
                None => Ok(()),
                Some(bad) => Err(unexpected("a delete", bad)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_are_checked_with_clear_errors() {
        for ok in [
            "memcache://127.0.0.1:11211",
            "memcached://localhost",
            "memcache://cache-1.internal:11311/",
            "memcache://[::1]:11211",
            "memcache://[::1]",
        ] {
            assert!(Memcached::open(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_url("memcache://10.0.0.1").unwrap(),
            (Host::Ip("10.0.0.1".parse().unwrap()), 11211)
        );
        for (bad, says) in [
            ("127.0.0.1:11211", "no scheme"),
            ("redis://127.0.0.1", "scheme `redis`"),
            ("memcache://", "no host"),
            ("memcache://:11211", "no host"),
            ("memcache://host:port", "`port` is not a port"),
            ("memcache://host:0", "`0` is not a port"),
            ("memcache://host:70000", "`70000` is not a port"),
            ("memcache://host/db", "path or query"),
            ("memcache://host?timeout=1", "path or query"),
            ("memcache://user:secret@host", "authentication"),
            ("memcache://[::1", "closing `]`"),
            ("memcache://[nope]:1", "not an IPv6"),
            ("memcache://::1", "brackets"),
            ("memcache://a b", "not a host name"),
        ] {
            let e = Memcached::open(bad).unwrap_err().to_string();
            assert!(
                e.contains("is not a memcached URL")
                    && e.contains(says)
                    && e.contains("memcache://host[:port]"),
                "{bad}: {e}"
            );
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn ttls_beyond_thirty_days_become_absolute_times() {
        let now = 1_700_000_000;
        assert_eq!(exptime(Duration::ZERO, now), 0);
        assert_eq!(exptime(Duration::from_millis(100), now), 1);
        assert_eq!(exptime(Duration::from_millis(1500), now), 2);
        assert_eq!(exptime(Duration::from_secs(60), now), 60);
        let month = 30 * 24 * 3600;
        assert_eq!(exptime(Duration::from_secs(month), now), month as i64);
        assert_eq!(
            exptime(Duration::from_secs(month + 1), now),
            (now + month + 1) as i64
        );
        let forty_days = Duration::from_secs(40 * 24 * 3600);
        assert_eq!(exptime(forty_days, now), (now + 40 * 24 * 3600) as i64);
        // Past 2038: no expiry rather than an overflow.
        assert_eq!(exptime(Duration::from_secs(100 * 365 * 24 * 3600), now), 0);
        assert_eq!(exptime(Duration::MAX, now), 0);
        assert_eq!(keep_ttl(Some(-1)), 0);
        assert_eq!(keep_ttl(Some(0)), 1);
        assert_eq!(keep_ttl(Some(30)), 30);
    }

    #[test]
    fn scopes_and_generation_keys() {
        assert_eq!(scopes("a").count(), 0);
        assert_eq!(scopes("blog:visits").collect::<Vec<_>>(), ["blog:"]);
        assert_eq!(
            scopes("blog:views.page:v1:7:x").collect::<Vec<_>>(),
            ["blog:", "blog:views.page:"]
        );
        assert_eq!(clear_scope("blog:"), Some("blog:"));
        assert_eq!(clear_scope("blog:us"), Some("blog:"));
        assert_eq!(clear_scope("blog:views.page:v"), Some("blog:views.page:"));
        assert_eq!(clear_scope("blog:views.page:"), Some("blog:views.page:"));
        assert_eq!(clear_scope("blog"), None);
        assert_eq!(clear_scope(""), None);
        assert_eq!(gen_key("blog:"), "#gen:blog:");
        let long = format!("p:{}:", "x".repeat(246));
        let g = gen_key(&long);
        assert!(g.starts_with("#gen#") && g.len() <= MAX_KEY_LEN, "{g}");
        assert_ne!(g, gen_key(&format!("p:{}:", "y".repeat(246))));
        check_key(&g).unwrap();
    }

    #[test]
    fn bad_keys_are_refused_before_anything_is_sent() {
        // Nothing listens on port 1, yet the error is about the key.
        let mc = Memcached::open("memcache://127.0.0.1:1").unwrap();
        for bad in [
            String::new(),
            "has space".into(),
            "line\r\nbreak".into(),
            "x".repeat(251),
            "é".into(),
        ] {
            let e = mc.get(&bad).unwrap_err().to_string();
            assert!(e.contains("is not a memcached key"), "{e}");
            assert!(mc.set(&bad, b"v", Duration::ZERO).is_err());
        }
        assert!(mc
            .get(&"x".repeat(250))
            .unwrap_err()
            .to_string()
            .contains("cannot connect"));
    }

    #[test]
    fn a_dead_server_is_an_error_not_a_hang() {
        let mc = Memcached::open("memcache://127.0.0.1:1").unwrap();
        let e = mc.get("k").unwrap_err().to_string();
        assert!(e.contains("cannot connect to 127.0.0.1:1"), "{e}");
        assert!(mc.set("k", b"v", Duration::ZERO).is_err());
        assert!(mc.clear_prefix("app:").is_err());
        let e = mc.clear_prefix("app").unwrap_err().to_string();
        assert!(e.contains("needs a `:`"), "{e}");
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        // Accepted by the kernel's backlog, never read: a frozen server.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mc = Memcached::builder(&format!("memcache://127.0.0.1:{port}"))
            .response_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let start = Instant::now();
        let e = mc.get("k").unwrap_err().to_string();
        assert!(e.contains("no reply within 100ms"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn an_old_server_gets_a_clear_message() {
        // A server that answers every line with ERROR, as before the meta protocol.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut lines = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = lines.read_line(&mut line);
            let _ = (&stream).write_all(b"ERROR\r\n");
        });
        let mc = Memcached::open(&format!("memcache://127.0.0.1:{port}")).unwrap();
        let e = mc.has("k").unwrap_err().to_string();
        assert!(e.contains("memcached 1.6.10 or newer"), "{e}");
        server.join().unwrap();
    }
}
