//! A memcached URL and the tier's options.

use std::net::IpAddr;
use std::time::Duration;

use super::conn::Client;
use super::{Memcached, NAME};
use crate::net::conns::Conns;
use crate::net::Limits;
use crate::Error;
use crate::Offloaded;

const DEFAULT_PORT: u16 = 11211;

/// Options of a [`Memcached`] tier; from [`Memcached::builder`].
///
/// ```
/// use std::time::Duration;
/// use cachefn::backends::Memcached;
///
/// let mc = Memcached::builder("memcache://127.0.0.1:11211")
///     .connect_timeout(Duration::from_millis(100))
///     .response_timeout(Duration::from_millis(50))
///     .max_idle(4)
///     .max_connections(16)
///     .max_reply_size(4 << 20)
///     .build()?;
/// # Ok::<(), cachefn::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
#[must_use]
pub struct MemcachedBuilder {
    pub(super) url: String,
    pub(super) limits: Limits,
    pub(super) io_threads: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Host {
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
    /// How long opening a connection may take (default 250 ms; at least 1 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.limits.set_connect_timeout(timeout);
        self
    }

    /// How long one round trip may take (default 250 ms; at least 1 ms): waiting for a
    /// pooled connection, writing the request and reading the whole reply,
    /// however the server sends it.
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

    /// The most connections open at once (default 32; at least 1). A call
    /// that finds them all busy waits for one, within its response timeout,
    /// then fails with an error that names this setting. Bounds the
    /// connections one process opens to the server, however many threads
    /// call it.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.set_max_connections(connections);
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
        self.limits.set_max_reply_size(bytes);
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
            client: Offloaded::new(
                Client {
                    host,
                    port,
                    conns: Conns::new(self.limits.max_connections, self.limits.max_idle),
                    connect_timeout: self.limits.connect_timeout,
                    response_timeout: self.limits.response_timeout,
                    max_reply_size: self.limits.max_reply_size,
                },
                self.io_threads,
            ),
        })
    }
}

/// The URL without a password, for messages.
pub(super) fn redact(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
