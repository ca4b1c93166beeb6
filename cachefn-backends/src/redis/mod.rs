//! The Redis shared tier (feature `redis`).

use std::time::Duration;

use parking_lot::Mutex;
use redis::{Client, Cmd, Connection, Pipeline, RedisError};

#[cfg(feature = "tokio")]
use crate::BoxFuture;
use crate::{Backend, Error};

#[cfg(feature = "tokio")]
mod aio;

/// Default time to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default time to wait for one reply (a frozen server fails a call after this).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
const DEFAULT_MAX_IDLE: usize = 16;
const SCAN_BATCH: usize = 500;

/// A Redis (or Valkey) server as a shared tier.
///
/// Connections are opened on first use and reused (a small pool of idle
/// connections, so concurrent calls do not queue on one socket); a
/// connection that fails is dropped and the next call opens a fresh one, so
/// a server that restarts at the same address is used again by itself.
/// Every call is bounded by the connect and response timeouts: a dead or
/// frozen server costs a call at most those, never a hang.
///
/// With the feature `tokio`, the `_async` methods (which the async API of
/// `cachefn` uses) go through one multiplexed async connection instead,
/// shared by every task: nothing blocks the executor, and a connection that
/// fails or times out is replaced on the next call. They need a tokio
/// runtime with timers (what `#[tokio::main]` builds); outside one they
/// return an error.
///
/// URLs: `redis://[:password@]host[:port][/db]`, `redis://user:password@host`,
/// `redis+unix:///path/to/socket`.
///
/// ```no_run
/// use cachefn_backends::{Backend, Redis};
///
/// let redis = Redis::open("redis://127.0.0.1:6379/0")?;
/// redis.set("k", b"v", std::time::Duration::from_secs(60))?;
/// assert_eq!(redis.get("k")?, Some(b"v".to_vec()));
/// # Ok::<(), cachefn_backends::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct Redis {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    connect_timeout: Duration,
    response_timeout: Duration,
    max_idle: usize,
    #[cfg(feature = "tokio")]
    multiplexed: aio::Multiplexed,
}

/// Options of a [`Redis`] tier; from [`Redis::builder`].
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[must_use]
pub struct RedisBuilder {
    url: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    max_idle: usize,
}

impl RedisBuilder {
    /// How long opening a connection may take (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one reply may take (default 250 ms).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Idle connections kept for reuse (default 16).
    pub fn max_idle(mut self, connections: usize) -> Self {
        self.max_idle = connections.max(1);
        self
    }

    /// The tier. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the URL is not a Redis URL.
    pub fn build(self) -> Result<Redis, Error> {
        let client = Client::open(self.url.as_str()).map_err(|e| {
            Error::backend(
                "redis",
                format!(
                    "`{}` is not a Redis URL ({e}): write redis://[:password@]host[:port][/db]",
                    redact(&self.url)
                ),
            )
        })?;
        Ok(Redis {
            client,
            idle: Mutex::new(Vec::new()),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            max_idle: self.max_idle,
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

fn err(e: RedisError) -> Error {
    Error::backend("redis", e.to_string())
}

fn ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
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
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            max_idle: DEFAULT_MAX_IDLE,
        }
    }

    fn connect(&self) -> Result<Connection, Error> {
        let conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(err)?;
        conn.set_read_timeout(Some(self.response_timeout))
            .map_err(err)?;
        conn.set_write_timeout(Some(self.response_timeout))
            .map_err(err)?;
        Ok(conn)
    }

    /// Run `f` on a pooled connection; a connection that failed is dropped.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> Result<R, Error> {
        let pooled = self.idle.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match f(&mut conn) {
            Ok(r) => {
                let mut idle = self.idle.lock();
                if idle.len() < self.max_idle {
                    idle.push(conn);
                }
                Ok(r)
            }
            // A server error (wrong type, say) leaves the connection usable;
            // anything else may have left it mid-reply: drop it.
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                self.idle.lock().push(conn);
                Err(err(e))
            }
            Err(e) => Err(err(e)),
        }
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

// The commands, built once for the sync and the async connections.

fn get_cmd(key: &str) -> Cmd {
    let mut cmd = redis::cmd("GET");
    cmd.arg(key);
    cmd
}

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

fn unlink_cmd(keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(keys);
    cmd
}

fn incr_cmd(key: &str, delta: i64) -> Cmd {
    let mut cmd = redis::cmd("INCRBY");
    cmd.arg(key).arg(delta);
    cmd
}

fn exists_cmd(key: &str) -> Cmd {
    let mut cmd = redis::cmd("EXISTS");
    cmd.arg(key);
    cmd
}

fn mget_cmd(keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("MGET");
    cmd.arg(keys);
    cmd
}

fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_BATCH);
    cmd
}

fn set_many_pipe(items: &[(&str, &[u8])], ttl: Duration) -> Pipeline {
    let mut pipe = redis::pipe();
    for (k, v) in items {
        pipe.add_command(set_cmd(k, v, ttl, false)).ignore();
    }
    pipe
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

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.with(|c| get_cmd(key).query(c))
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.with(|c| set_cmd(key, value, ttl, false).query::<()>(c))
    }

    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.with(|c| set_cmd(key, value, ttl, true).query::<Option<String>>(c))
            .map(|r| r.is_some())
    }

    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.with(|c| unlink_cmd(&[key]).query::<i64>(c))
            .map(|n| n > 0)
    }

    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.with(|c| incr_cmd(key, delta).query(c))
            .map_err(|e| counter_error(key, e))
    }

    /// Incremental `SCAN MATCH prefix*` and `UNLINK` in batches: never
    /// `KEYS`, never `FLUSHDB`, and never a key outside the prefix.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        let pattern = glob_prefix(prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) =
                self.with(|c| scan_cmd(cursor, &pattern).query(c))?;
            let keys = under_prefix(&keys, prefix);
            if !keys.is_empty() {
                self.with(|c| unlink_cmd(&keys).query::<i64>(c))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn has(&self, key: &str) -> Result<bool, Error> {
        self.with(|c| exists_cmd(key).query::<i64>(c))
            .map(|n| n > 0)
    }

    /// One `MGET`.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| mget_cmd(keys).query(c))
    }

    /// One pipelined round trip of `SET .. PX`.
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        self.with(|c| set_many_pipe(items, ttl).query::<()>(c))
    }

    /// One `UNLINK`.
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        self.with(|c| unlink_cmd(keys).query::<i64>(c).map(drop))
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
}

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
    }

    #[test]
    fn a_dead_server_is_an_error_not_a_hang() {
        // Nothing listens on port 1.
        let r = Redis::open("redis://127.0.0.1:1/0").unwrap();
        assert!(r.get("k").is_err());
        assert!(r.set("k", b"v", Duration::ZERO).is_err());
    }
}
