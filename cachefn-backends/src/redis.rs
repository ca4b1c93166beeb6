//! The Redis shared tier (feature `redis`).

use std::time::Duration;

use parking_lot::Mutex;
use redis::{Client, Connection, RedisError};

use crate::{Backend, Error};

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

impl Backend for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.with(|c| redis::cmd("GET").arg(key).query(c))
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.with(|c| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            if !ttl.is_zero() {
                cmd.arg("PX").arg(ms(ttl));
            }
            cmd.query::<()>(c)
        })
    }

    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.with(|c| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("NX");
            if !ttl.is_zero() {
                cmd.arg("PX").arg(ms(ttl));
            }
            cmd.query::<Option<String>>(c).map(|r| r.is_some())
        })
    }

    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.with(|c| redis::cmd("UNLINK").arg(key).query::<i64>(c).map(|n| n > 0))
    }

    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.with(|c| redis::cmd("INCRBY").arg(key).arg(delta).query(c))
            .map_err(|e| match e {
                Error::Backend { message, .. } if message.contains("not an integer") => {
                    Error::NotACounter(key.to_owned())
                }
                other => other,
            })
    }

    /// Incremental `SCAN MATCH prefix*` and `UNLINK` in batches: never
    /// `KEYS`, never `FLUSHDB`, and never a key outside the prefix.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        let pattern = glob_prefix(prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.with(|c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH)
                    .query(c)
            })?;
            let keys: Vec<&String> = keys.iter().filter(|k| k.starts_with(prefix)).collect();
            if !keys.is_empty() {
                self.with(|c| redis::cmd("UNLINK").arg(&keys).query::<i64>(c))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn has(&self, key: &str) -> Result<bool, Error> {
        self.with(|c| redis::cmd("EXISTS").arg(key).query::<i64>(c).map(|n| n > 0))
    }

    /// One `MGET`.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| redis::cmd("MGET").arg(keys).query(c))
    }

    /// One pipelined round trip of `SET .. PX`.
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let mut pipe = redis::pipe();
            for (k, v) in items {
                let cmd = pipe.cmd("SET").arg(*k).arg(*v);
                if !ttl.is_zero() {
                    cmd.arg("PX").arg(ms(ttl));
                }
                cmd.ignore();
            }
            pipe.query::<()>(c)
        })
    }

    /// One `UNLINK`.
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        self.with(|c| redis::cmd("UNLINK").arg(keys).query::<i64>(c).map(drop))
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
