//! The Redis shared tier (feature `redis`).

use std::time::{Duration, Instant};

use redis::{Client, RedisError};
#[cfg(feature = "tokio")]
use redis::{Cmd, Pipeline};

use crate::net::conns::Conns;
use crate::net::Limits;
#[cfg(feature = "tokio")]
use crate::BoxFuture;
use crate::{Backend, Error};
use conn::{CallFail, Conn, Target};
use resp::{Fail, Value};

#[cfg(feature = "redis-cluster")]
pub use cluster::{RedisCluster, RedisClusterBuilder};

#[cfg(feature = "tokio")]
mod aio;
#[cfg(feature = "tokio")]
mod aio_stream;
#[cfg(feature = "redis-cluster")]
mod cluster;
mod conn;
mod lease;
mod resp;
mod tracking;

/// Default time to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Limits::DEFAULT.connect_timeout;
/// Default time to wait for one reply (a frozen server fails a call after this).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Limits::DEFAULT.response_timeout;
const SCAN_BATCH: usize = 500;

/// A Redis (or Valkey) server as a shared tier.
///
/// Connections are opened on first use and reused from a bounded pool (at
/// most [`max_connections`](RedisBuilder::max_connections), 32 by default,
/// so concurrent calls do not queue on one socket and a burst of threads
/// cannot open hundreds); a connection that fails is dropped and the next
/// call opens a fresh one, so a server that restarts at the same address is
/// used again by itself.
///
/// Every blocking call ends within its deadline, whatever the server sends:
/// the response timeout (250 ms by default) for the whole call (waiting for
/// a pooled connection, writing the command, reading every byte of the
/// reply), plus the connect timeout (250 ms) when it opens a connection
/// (including the TLS handshake and `AUTH`). A dead, frozen or trickling
/// server costs a call at most that, never a hang. (`clear_prefix` makes one
/// such call per batch of keys.) A reply larger than
/// [`max_reply_size`](RedisBuilder::max_reply_size) (32 MiB by default)
/// fails its call before it is read into memory, blocking or async. The
/// blocking calls speak RESP2 on the tier's own small client; the `redis`
/// crate parses the URL and multiplexes the async side.
///
/// With the feature `tokio`, the `_async` methods (which the async API of
/// `cachefn` uses) go through one multiplexed async connection instead,
/// shared by every task: nothing blocks the executor, and a connection that
/// fails or times out is replaced on the next call. They need a tokio
/// runtime with timers (what `#[tokio::main]` builds); outside one they
/// return an error.
///
/// URLs: `redis://[:password@]host[:port][/db]`, `redis://user:password@host`,
/// `redis+unix:///path/to/socket`, and with the feature `redis-tls`
/// `rediss://[user:password@]host[:port][/db]` (TLS; see
// The method exists only with `redis-tls`: a link without it would be broken.
#[cfg_attr(feature = "redis-tls", doc = "[`RedisBuilder::tls_root_cert`]")]
#[cfg_attr(not(feature = "redis-tls"), doc = "`RedisBuilder::tls_root_cert`")]
/// for a server whose certificate a private CA signed).
///
/// ```no_run
/// use cachefn::backends::{Backend, Redis};
///
/// let redis = Redis::open("redis://127.0.0.1:6379/0")?;
/// redis.set("k", b"v", std::time::Duration::from_secs(60))?;
/// assert_eq!(redis.get("k")?, Some(b"v".to_vec()));
/// # Ok::<(), cachefn::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct Redis {
    client: Client,
    /// A `rediss://` URL (for error hints).
    tls: bool,
    /// Where and how the blocking connections connect.
    target: Target,
    conns: Conns<Conn>,
    connect_timeout: Duration,
    response_timeout: Duration,
    #[cfg(feature = "tokio")]
    multiplexed: aio::Multiplexed,
}

/// Options of a [`Redis`] tier; from [`Redis::builder`].
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[must_use]
pub struct RedisBuilder {
    url: String,
    limits: Limits,
    #[cfg(feature = "redis-tls")]
    tls_root_cert: Option<Vec<u8>>,
    #[cfg(feature = "redis-tls")]
    tls_client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisBuilder {
    /// How long opening a connection may take (default 250 ms; at least 1 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.limits.set_connect_timeout(timeout);
        self
    }

    /// How long one call may take (default 250 ms; at least 1 ms): for a blocking call,
    /// waiting for a pooled connection, writing the command and reading the
    /// whole reply, however the server sends it; for an async call, the
    /// reply.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.limits.set_response_timeout(timeout);
        self
    }

    /// Idle connections kept for reuse (default 16; at most
    /// [`max_connections`](Self::max_connections)).
    pub fn max_idle(mut self, connections: usize) -> Self {
        self.limits.set_max_idle(connections);
        self
    }

    /// The most blocking connections open at once (default 32; at least
    /// 1). A call that finds them all busy waits for one, within its
    /// response timeout, then fails with an error that names this setting.
    /// Bounds the connections one process opens to Redis however many
    /// threads call it. (The async methods share one multiplexed
    /// connection.)
    ///
    /// ```
    /// use cachefn::backends::Redis;
    ///
    /// let redis = Redis::builder("redis://127.0.0.1:6379/0")
    ///     .max_connections(8)
    ///     .max_idle(4)
    ///     .build()?;
    /// # Ok::<(), cachefn::Error>(())
    /// ```
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.set_max_connections(connections);
        self
    }

    /// The most bytes one reply may carry (default 32 MiB; at least 1 KiB):
    /// one value, or every value of a `get_many` together. A larger reply
    /// fails its call (an error that names this setting, the connection
    /// closed) before it is read into memory, so a misbehaving server, or a
    /// huge value someone else stored, cannot grow the process beyond
    /// `max_connections × max_reply_size` (plus one reply for the async
    /// connection, which reads one reply at a time). 32 MiB is far above
    /// what is worth caching over the network, and keeps that worst case
    /// near 1 GiB. (The replies of a blocking pipeline share one budget;
    /// the async connection, which serves many tasks' commands, gives each
    /// reply its own.)
    ///
    /// ```
    /// use cachefn::backends::Redis;
    ///
    /// let redis = Redis::builder("redis://127.0.0.1:6379/0")
    ///     .max_reply_size(1 << 20)
    ///     .build()?;
    /// # Ok::<(), cachefn::Error>(())
    /// ```
    pub fn max_reply_size(mut self, bytes: usize) -> Self {
        self.limits.set_max_reply_size(bytes);
        self
    }

    /// Trust the CA certificate(s) in `pem` (PEM text, `-----BEGIN
    /// CERTIFICATE-----`) instead of the system's root store when connecting
    /// to a `rediss://` URL: for a server whose certificate a private CA
    /// signed. The server's certificate must name the URL's host (a DNS name,
    /// or an IP address in its subjectAltName).
    ///
    /// Without this, a `rediss://` server is verified against the system's
    /// root certificates (read from the OS store, or `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR`). Verification cannot be turned off.
    ///
    /// ```no_run
    /// use cachefn::backends::Redis;
    ///
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt")?;
    /// let redis = Redis::builder("rediss://:password@redis.internal:6380/0")
    ///     .tls_root_cert(ca)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`build`](Self::build) fails when the PEM holds no certificate, or
    /// when the URL is not a `rediss://` URL.
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Present a client certificate (mutual TLS, for a server started with
    /// `tls-auth-clients yes`): `cert_pem` is the certificate chain, leaf
    /// first, and `key_pem` its private key (PKCS#8, PKCS#1 or SEC1), both
    /// in PEM.
    ///
    /// ```no_run
    /// use cachefn::backends::Redis;
    ///
    /// let redis = Redis::builder("rediss://redis.internal:6380/0")
    ///     .tls_root_cert(std::fs::read("ca.crt")?)
    ///     .tls_client_cert(std::fs::read("client.crt")?, std::fs::read("client.key")?)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`build`](Self::build) fails when the PEM holds no certificate or no
    /// private key, when the key does not belong to the certificate, or when
    /// the URL is not a `rediss://` URL.
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_client_cert = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The tier. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the URL is not a Redis URL; when it is a
    /// `rediss://` URL and the feature `redis-tls` is off; when a TLS
    /// certificate or key given to the builder is not usable.
    pub fn build(self) -> Result<Redis, Error> {
        #[cfg(not(feature = "redis-tls"))]
        if is_tls_url(&self.url) {
            return Err(Error::backend(
                "redis",
                format!(
                    "`{}` is a TLS URL, and this build has no TLS: enable the cargo feature \
                     `redis-tls` of cachefn (or of cachefn-backends)",
                    redact(&self.url)
                ),
            ));
        }
        let client = Client::open(self.url.as_str()).map_err(|e| {
            Error::backend(
                "redis",
                format!(
                    "`{}` is not a Redis URL ({e}): write {}://[:password@]host[:port][/db]",
                    redact(&self.url),
                    if is_tls_url(&self.url) {
                        "rediss"
                    } else {
                        "redis"
                    },
                ),
            )
        })?;
        #[cfg(feature = "redis-tls")]
        let (client, tls_config) =
            tls::configure(client, &self.url, self.tls_root_cert, self.tls_client_cert)?;
        let info = client.get_connection_info();
        let settings = info.redis_settings();
        let target = Target {
            addr: info.addr().clone(),
            db: settings.db(),
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            #[cfg(feature = "redis-tls")]
            tls: tls_config,
            connect_timeout: self.limits.connect_timeout,
            response_timeout: self.limits.response_timeout,
            max_reply_size: self.limits.max_reply_size,
        };
        Ok(Redis {
            client,
            tls: is_tls_url(&self.url),
            target,
            conns: Conns::new(self.limits.max_connections, self.limits.max_idle),
            connect_timeout: self.limits.connect_timeout,
            response_timeout: self.limits.response_timeout,
            #[cfg(feature = "tokio")]
            multiplexed: aio::Multiplexed::default(),
        })
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// `rediss://` or `valkeys://`.
fn is_tls_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
    })
}

/// The server answered with an error reply (wrong type, `OOM`, `READONLY`,
/// a wrong password): it is alive, and the connection is healthy.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
fn answered(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_)
            | redis::ErrorKind::Extension
            | redis::ErrorKind::AuthenticationFailed
    )
}

/// A `redis` crate error (the async side), classified for the circuit
/// breaker and kept as the source.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
fn err(e: RedisError) -> Error {
    let message = e.to_string();
    let error = if answered(&e) {
        Error::refused("redis", message)
    } else {
        Error::backend("redis", message)
    };
    error.with_source(e)
}

/// A failure of a new async connection (opening it, or its first command,
/// which carries the TLS handshake), with a hint when TLS is the likely cause.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
fn connect_err(e: RedisError, tls: bool) -> Error {
    let message = e.to_string();
    let hint = if message.contains("invalid peer certificate") {
        "; the server's TLS certificate is not trusted: give its CA to \
         RedisBuilder::tls_root_cert, and check that the certificate names the URL's host"
    } else if message.contains("corrupt message") || message.contains("InvalidContentType") {
        "; the server does not speak TLS on this port (use redis:// for a plain port)"
    } else if tls && e.is_timeout() {
        "; no answer to the TLS handshake in time: check that this port serves TLS \
         (a plain Redis port never answers a rediss:// client), or raise the timeouts"
    } else {
        ""
    };
    let error = if answered(&e) {
        Error::refused("redis", format!("{message}{hint}"))
    } else {
        Error::backend("redis", format!("{message}{hint}"))
    };
    error.with_source(e)
}

/// The longest `PX` sent: Redis refuses an expiry whose Unix time in ms
/// overflows an `i64` ("invalid expire time"), so a longer lifetime (up to
/// `Duration::MAX`) is kept this long instead, about 146 million years.
const MAX_PX: u64 = 1 << 62;

/// A lifetime as `PX` milliseconds: at least 1 (0 is refused), at most
/// [`MAX_PX`].
fn ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(MAX_PX)) as u64
}

/// `prefix` as a SCAN MATCH pattern that matches exactly the keys starting with it.
fn glob_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

impl Redis {
    /// A tier for `url` with the default timeouts. Nothing connects yet, so
    /// an application starts even when Redis is down.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the URL is not a Redis URL.
    pub fn open(url: &str) -> Result<Redis, Error> {
        Redis::builder(url).build()
    }

    /// A builder, to set timeouts.
    pub fn builder(url: &str) -> RedisBuilder {
        RedisBuilder {
            url: url.to_owned(),
            limits: Limits::DEFAULT,
            #[cfg(feature = "redis-tls")]
            tls_root_cert: None,
            #[cfg(feature = "redis-tls")]
            tls_client_cert: None,
        }
    }

    /// Run `f` on a pooled connection, within the call's deadline: the
    /// response timeout from now, plus the connect timeout when a connection
    /// is opened. A connection that failed (or timed out, or sent an
    /// oversized reply) is closed; one whose command the server refused
    /// goes back to the pool.
    fn with<R>(&self, f: impl FnOnce(&mut Conn) -> Result<R, CallFail>) -> Result<R, Error> {
        let mut deadline = Instant::now() + self.response_timeout;
        let mut lease = self.conns.lease(deadline).map_err(|busy| {
            Error::backend(
                "redis",
                format!(
                    "all {} connections stayed busy for {:?}: raise RedisBuilder::max_connections, \
                     or the response timeout",
                    busy.max_open, busy.waited
                ),
            )
        })?;
        let fresh = lease.conn.is_none();
        let conn = match &mut lease.conn {
            Some(conn) => {
                conn.set_deadline(deadline);
                conn
            }
            None => {
                deadline += self.connect_timeout;
                match Conn::open(&self.target, deadline) {
                    Ok(conn) => lease.conn.insert(conn),
                    Err(fail) => return Err(self.connect_error(fail)),
                }
            }
        };
        match f(conn) {
            Ok(r) => {
                lease.keep();
                Ok(r)
            }
            Err(fail @ CallFail::Server(_)) => {
                lease.keep();
                Err(conn::error(fail, &self.target, fresh, self.tls))
            }
            Err(fail) => Err(conn::error(fail, &self.target, fresh, self.tls)),
        }
    }

    fn connect_error(&self, fail: CallFail) -> Error {
        let mut e = conn::error(fail, &self.target, true, self.tls);
        if let Error::Backend { message, .. } = &mut e {
            *message = format!("cannot connect to {}: {message}", self.target.addr);
        }
        e
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field(
                "addr",
                &self.client.get_connection_info().addr().to_string(),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

// The commands of the async connection.

#[cfg(feature = "tokio")]
fn get_cmd(key: &str) -> Cmd {
    let mut cmd = redis::cmd("GET");
    cmd.arg(key);
    cmd
}

#[cfg(feature = "tokio")]
fn set_cmd(key: &str, value: &[u8], ttl: Duration, only_if_absent: bool) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if only_if_absent {
        cmd.arg("NX");
    }
    if !ttl.is_zero() {
        cmd.arg("PX").arg(ms(ttl));
    }
    cmd
}

#[cfg(feature = "tokio")]
fn unlink_cmd(keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(keys);
    cmd
}

#[cfg(feature = "tokio")]
fn incr_cmd(key: &str, delta: i64) -> Cmd {
    let mut cmd = redis::cmd("INCRBY");
    cmd.arg(key).arg(delta);
    cmd
}

#[cfg(feature = "tokio")]
fn exists_cmd(key: &str) -> Cmd {
    let mut cmd = redis::cmd("EXISTS");
    cmd.arg(key);
    cmd
}

#[cfg(feature = "tokio")]
fn mget_cmd(keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("MGET");
    cmd.arg(keys);
    cmd
}

#[cfg(feature = "tokio")]
fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_BATCH);
    cmd
}

#[cfg(feature = "tokio")]
fn set_many_pipe(items: &[(&str, &[u8])], ttl: Duration) -> Pipeline {
    let mut pipe = redis::pipe();
    for (k, v) in items {
        pipe.add_command(set_cmd(k, v, ttl, false)).ignore();
    }
    pipe
}

// The replies of the blocking connections.

/// `SET key value [NX] [PX ms]`.
fn set_args<'a>(
    key: &'a str,
    value: &'a [u8],
    ttl: Duration,
    only_if_absent: bool,
    px: &'a resp::Digits,
) -> Vec<&'a [u8]> {
    let mut args: Vec<&[u8]> = vec![b"SET", key.as_bytes(), value];
    if only_if_absent {
        args.push(b"NX");
    }
    if !ttl.is_zero() {
        args.push(b"PX");
        args.push(px.as_bytes());
    }
    args
}

fn unexpected(v: &Value) -> CallFail {
    let what = match v {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::Bulk(_) => "a string",
        Value::Status(_) => "a status",
        Value::Error(_) => "an error",
        Value::Array(_) => "an array",
    };
    CallFail::Broken(Fail::Protocol(format!("unexpected reply: {what}")))
}

fn bytes(v: Value) -> Result<Option<Vec<u8>>, CallFail> {
    match v {
        Value::Bulk(b) => Ok(Some(b)),
        Value::Nil => Ok(None),
        other => Err(unexpected(&other)),
    }
}

fn int(v: Value) -> Result<i64, CallFail> {
    match v {
        Value::Int(n) => Ok(n),
        other => Err(unexpected(&other)),
    }
}

/// `SCAN`'s `[cursor, [keys..]]`.
fn scan_reply(v: Value) -> Result<(String, Vec<String>), CallFail> {
    let Value::Array(mut parts) = v else {
        return Err(unexpected(&v));
    };
    match (parts.pop(), parts.pop()) {
        (Some(Value::Array(keys)), Some(Value::Bulk(cursor))) if parts.is_empty() => {
            let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
            let keys = keys
                .into_iter()
                .map(|k| match k {
                    Value::Bulk(b) => Ok(text(b)),
                    other => Err(unexpected(&other)),
                })
                .collect::<Result<_, _>>()?;
            Ok((text(cursor), keys))
        }
        _ => Err(CallFail::Broken(Fail::Protocol(
            "unexpected reply to SCAN".into(),
        ))),
    }
}

/// `INCRBY` on a value that is not a decimal integer is `NotACounter`.
fn counter_error(key: &str, e: Error) -> Error {
    match e {
        Error::Backend { message, .. } if message.contains("not an integer") => {
            Error::NotACounter(key.to_owned())
        }
        other => other,
    }
}

/// The keys of one SCAN batch that really start with `prefix`.
fn under_prefix<'k>(keys: &'k [String], prefix: &str) -> Vec<&'k str> {
    keys.iter()
        .map(String::as_str)
        .filter(|k| k.starts_with(prefix))
        .collect()
}

impl Backend for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// The server's `CLIENT TRACKING` feed (Redis 6+): one background
    /// thread and connection per process and server serve every cache that
    /// follows it; nothing connects until one does.
    fn invalidations(&self) -> Option<crate::InvalidationFeed> {
        Some(tracking::ServerFeed::feed(&self.target))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.with(|c| bytes(c.call(&[b"GET", key.as_bytes()])?))
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.with(|c| {
            let px = resp::itoa_buf(ms(ttl));
            c.call(&set_args(key, value, ttl, false, &px)).map(drop)
        })
    }

    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.with(|c| {
            let px = resp::itoa_buf(ms(ttl));
            match c.call(&set_args(key, value, ttl, true, &px))? {
                Value::Nil => Ok(false),
                Value::Status(_) => Ok(true),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.with(|c| int(c.call(&[b"UNLINK", key.as_bytes()])?))
            .map(|n| n > 0)
    }

    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let delta = delta.to_string();
        self.with(|c| int(c.call(&[b"INCRBY", key.as_bytes(), delta.as_bytes()])?))
            .map_err(|e| counter_error(key, e))
    }

    /// Incremental `SCAN MATCH prefix*` and `UNLINK` in batches: never
    /// `KEYS`, never `FLUSHDB`, and never a key outside the prefix. Each
    /// batch is one call, with its own deadline.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        let pattern = glob_prefix(prefix);
        let batch = SCAN_BATCH.to_string();
        let mut cursor = String::from("0");
        loop {
            let (next, keys) = self.with(|c| {
                scan_reply(c.call(&[
                    b"SCAN",
                    cursor.as_bytes(),
                    b"MATCH",
                    pattern.as_bytes(),
                    b"COUNT",
                    batch.as_bytes(),
                ])?)
            })?;
            let keys = under_prefix(&keys, prefix);
            if !keys.is_empty() {
                let mut args: Vec<&[u8]> = vec![b"UNLINK"];
                args.extend(keys.iter().map(|k| k.as_bytes()));
                self.with(|c| int(c.call(&args)?))?;
            }
            if next == "0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn has(&self, key: &str) -> Result<bool, Error> {
        self.with(|c| int(c.call(&[b"EXISTS", key.as_bytes()])?))
            .map(|n| n > 0)
    }

    /// One `MGET`.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"MGET");
        args.extend(keys.iter().map(|k| k.as_bytes()));
        self.with(|c| match c.call(&args)? {
            Value::Array(items) if items.len() == keys.len() => {
                items.into_iter().map(bytes).collect()
            }
            other => Err(unexpected(&other)),
        })
    }

    /// One pipelined round trip of `SET .. PX`.
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        let px = resp::itoa_buf(ms(ttl));
        let cmds: Vec<Vec<&[u8]>> = items
            .iter()
            .map(|(k, v)| set_args(k, v, ttl, false, &px))
            .collect();
        self.with(|c| c.pipeline(&cmds).map(drop))
    }

    /// One `UNLINK`.
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"UNLINK");
        args.extend(keys.iter().map(|k| k.as_bytes()));
        self.with(|c| int(c.call(&args)?).map(drop))
    }

    #[cfg(feature = "tokio")]
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        Box::pin(self.run(get_cmd(key)))
    }

    #[cfg(feature = "tokio")]
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.run(set_cmd(key, value, ttl, false)))
    }

    #[cfg(feature = "tokio")]
    fn add_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let r: Option<String> = self.run(set_cmd(key, value, ttl, true)).await?;
            Ok(r.is_some())
        })
    }

    #[cfg(feature = "tokio")]
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { Ok(self.run::<i64>(unlink_cmd(&[key])).await? > 0) })
    }

    #[cfg(feature = "tokio")]
    fn incr_async<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64, Error>> {
        Box::pin(async move {
            self.run(incr_cmd(key, delta))
                .await
                .map_err(|e| counter_error(key, e))
        })
    }

    #[cfg(feature = "tokio")]
    fn clear_prefix_async<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let pattern = glob_prefix(prefix);
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = self.run(scan_cmd(cursor, &pattern)).await?;
                let keys = under_prefix(&keys, prefix);
                if !keys.is_empty() {
                    self.run::<i64>(unlink_cmd(&keys)).await?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
    }

    #[cfg(feature = "tokio")]
    fn has_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { Ok(self.run::<i64>(exists_cmd(key)).await? > 0) })
    }

    #[cfg(feature = "tokio")]
    fn get_many_async<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Error>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            self.run(mget_cmd(keys)).await
        })
    }

    #[cfg(feature = "tokio")]
    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8])],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if items.is_empty() {
                return Ok(());
            }
            self.run_pipe(set_many_pipe(items, ttl)).await
        })
    }

    #[cfg(feature = "tokio")]
    fn delete_many_async<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            self.run::<i64>(unlink_cmd(keys)).await.map(drop)
        })
    }

    /// `SET key token NX PX ms`.
    fn lease_acquire(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.acquire_lease(key, token, ttl)
    }

    /// A Lua script: `PEXPIRE` while the key holds `token`.
    fn lease_renew(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.renew_lease(key, token, ttl)
    }

    /// A Lua script: `DEL` while the key holds `token`.
    fn lease_release(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.release_lease(key, token)
    }

    /// One Lua script: `SET` and `DEL` the lease while it holds `token`.
    fn store_leased(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        lease: &str,
        token: &[u8],
    ) -> Result<bool, Error> {
        self.store_leased_script(key, value, ttl, lease, token)
    }

    #[cfg(feature = "tokio")]
    fn store_leased_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        lease: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.store_leased_script_async(key, value, ttl, lease, token))
    }

    /// One Lua script: the value, else `SET lease token NX PX`.
    fn get_or_lease(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<crate::GetOrLease, Error> {
        self.get_or_lease_script(key, lease, token, ttl)
    }

    #[cfg(feature = "tokio")]
    fn get_or_lease_async<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<crate::GetOrLease, Error>> {
        Box::pin(self.get_or_lease_script_async(key, lease, token, ttl))
    }

    #[cfg(feature = "tokio")]
    fn lease_acquire_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.acquire_lease_async(key, token, ttl))
    }

    #[cfg(feature = "tokio")]
    fn lease_renew_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.renew_lease_async(key, token, ttl))
    }

    #[cfg(feature = "tokio")]
    fn lease_release_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.release_lease_async(key, token))
    }
}

/// `rediss://` (feature `redis-tls`): the crypto provider, and the
/// certificates given to the builder, checked when the tier is built.
#[cfg(feature = "redis-tls")]
mod tls;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_redacted() {
        assert!(Redis::open("redis://127.0.0.1:6379/0").is_ok());
        assert!(Redis::open("redis://:secret@127.0.0.1:6380/2").is_ok());
        let e = Redis::open("http://:secret@example/")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a Redis URL") && !e.contains("secret"),
            "{e}"
        );
        assert_eq!(glob_prefix("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:*");
        assert_eq!(ms(Duration::ZERO), 1);
        assert_eq!(ms(Duration::from_millis(1500)), 1500);
        assert_eq!(ms(Duration::MAX), MAX_PX);
        let at = crate::clock::unix_ms() + MAX_PX;
        assert!(at < i64::MAX as u64, "now + MAX_PX fits in an i64");
    }

    #[cfg(not(feature = "redis-tls"))]
    #[test]
    fn tls_urls_need_the_feature() {
        for url in [
            "rediss://:secret@127.0.0.1:6380/0",
            "valkeys://127.0.0.1/0",
            "REDISS://127.0.0.1",
        ] {
            let e = Redis::open(url).unwrap_err().to_string();
            assert!(
                e.contains("enable the cargo feature `redis-tls`") && !e.contains("secret"),
                "{e}"
            );
        }
    }

    #[cfg(feature = "redis-tls")]
    #[test]
    fn tls_urls_build_and_bad_certificates_are_errors() {
        let r = Redis::open("rediss://:secret@127.0.0.1:6380/0").unwrap();
        assert!(r.tls);
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        assert!(!Redis::open("redis://127.0.0.1:6380/0").unwrap().tls);
        let tls = |url: &str, pem: &[u8]| {
            Redis::builder(url)
                .tls_root_cert(pem)
                .build()
                .unwrap_err()
                .to_string()
        };
        let e = tls("rediss://127.0.0.1:6380/0", b"junk");
        assert!(e.contains("holds no certificate"), "{e}");
        let e = tls(
            "rediss://127.0.0.1:6380/0",
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        );
        assert!(e.contains("not valid PEM"), "{e}");
        let e = tls(
            "rediss://127.0.0.1:6380/0",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(e.contains("not a usable CA certificate"), "{e}");
        let e = tls("redis://127.0.0.1:6380/0", b"junk");
        assert!(e.contains("not a TLS URL"), "{e}");
        let e = Redis::open("rediss://:secret@127.0.0.1/0#insecure")
            .unwrap_err()
            .to_string();
        assert!(e.contains("#insecure") && !e.contains("secret"), "{e}");
        // Nothing listens on port 1.
        assert!(r.get("k").is_err());
    }

    #[test]
    fn a_dead_server_is_an_error_not_a_hang() {
        // Nothing listens on port 1.
        let r = Redis::open("redis://127.0.0.1:1/0").unwrap();
        assert!(r.get("k").is_err());
        assert!(r.set("k", b"v", Duration::ZERO).is_err());
    }

    /// A zero timeout would make every call fail with the socket's "cannot
    /// set a 0 duration timeout" (or at once by its deadline): like
    /// memcached's, Redis's timeouts are at least 1 ms.
    #[test]
    fn zero_timeouts_are_raised_to_one_millisecond() {
        let r = Redis::builder("redis://127.0.0.1:1/0")
            .connect_timeout(Duration::ZERO)
            .response_timeout(Duration::ZERO)
            .build()
            .unwrap();
        let ms = Duration::from_millis(1);
        assert_eq!((r.connect_timeout, r.response_timeout), (ms, ms));
        // Nothing listens on port 1: refused, not an invalid timeout.
        let e = r.get("k").unwrap_err().to_string();
        assert!(!e.contains("0 duration"), "{e}");
    }
}
