//! The bytes under the async connection: TCP, a Unix socket or TLS, opened
//! on tokio, and metered so that no reply passes `max_reply_size`.
//!
//! The `redis` crate parses the async connection's replies, and it would
//! buffer a reply of any declared size as it arrives. So every byte read
//! passes through a [`Meter`] first, the blocking reader's budget rules
//! without its values: a reply that would pass the cap fails the read
//! before the parser sees its bytes, which fails the call waiting for it
//! and closes the connection (as the blocking client closes its own).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use redis::{ConnectionAddr, RedisError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::conn::Target;
use super::resp::{Fail, Meter};

/// A reply that would pass the cap: what it would take, and what was left.
#[derive(Debug)]
pub(super) struct TooLarge {
    pub declared: u64,
    pub budget: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the reply would take {} bytes, more than the {} bytes of max_reply_size",
            self.declared, self.budget
        )
    }
}

impl StdError for TooLarge {}

/// The oversized reply that failed a call, if that is what failed it. The
/// `redis` crate keeps the `io::Error` a read returned as its error's source.
pub(super) fn too_large(e: &RedisError) -> Option<&TooLarge> {
    let source = e.source()?;
    let io = match source.downcast_ref::<Arc<dyn StdError + Send + Sync>>() {
        Some(shared) => shared.downcast_ref::<io::Error>(),
        None => source.downcast_ref::<io::Error>(),
    }?;
    io.get_ref()?.downcast_ref::<TooLarge>()
}

/// A connected socket.
enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    #[cfg(feature = "redis-tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The socket of an async connection, its replies metered.
pub(super) struct Capped {
    socket: Socket,
    meter: Meter,
    /// A read failed: the stream is somewhere inside a reply and is never
    /// read again.
    broken: bool,
}

/// Connect to the target's address, with the TLS handshake for a
/// `rediss://` URL. Each TCP connect is bounded by the connect timeout; the
/// caller bounds the whole.
pub(super) async fn connect(t: &Target) -> io::Result<Capped> {
    let socket = match &t.addr {
        ConnectionAddr::Tcp(host, port) => Socket::Tcp(tcp(host, *port, t).await?),
        #[cfg(feature = "redis-tls")]
        ConnectionAddr::TcpTls { host, port, .. } => {
            let config = t.tls.clone().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a TLS URL without a TLS configuration",
                )
            })?;
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{host}` is not a host name for TLS: {e}"),
                )
            })?;
            let sock = tcp(host, *port, t).await?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, sock)
                .await?;
            Socket::Tls(Box::new(tls))
        }
        #[cfg(unix)]
        ConnectionAddr::Unix(path) => Socket::Unix(tokio::net::UnixStream::connect(path).await?),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kind of Redis address is not supported here",
            ))
        }
    };
    Ok(Capped {
        socket,
        meter: Meter::new(t.max_reply_size),
        broken: false,
    })
}

/// The first address of `host` that accepts a connection in time.
async fn tcp(host: &str, port: u16, t: &Target) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match tokio::time::timeout(t.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(sock)) => {
                sock.set_nodelay(true)?;
                return Ok(sock);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection to {addr} within {:?}", t.connect_timeout),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("`{host}` has no address"))
    }))
}

impl Fail {
    /// As the error of a read of the async connection.
    fn into_io(self) -> io::Error {
        match self {
            Fail::Io(e) => e,
            Fail::Protocol(why) => io::Error::new(io::ErrorKind::InvalidData, why),
            Fail::TooLarge { declared, budget } => io::Error::other(TooLarge { declared, budget }),
        }
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.broken {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let before = buf.filled().len();
        let read = match &mut this.socket {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "redis-tls")]
            Socket::Tls(s) => Pin::new(s).poll_read(cx, buf),
        };
        let metered = ready!(read).and_then(|()| {
            this.meter
                .feed(&buf.filled()[before..])
                .map_err(Fail::into_io)
        });
        if metered.is_err() {
            // The parser never sees the bytes of a reply past the cap.
            buf.set_filled(before);
            this.broken = true;
        }
        Poll::Ready(metered)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, data),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_write(cx, data),
            #[cfg(feature = "redis-tls")]
            Socket::Tls(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "redis-tls")]
            Socket::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "redis-tls")]
            Socket::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_reply_is_found_in_the_redis_error() {
        let io = Fail::TooLarge {
            declared: 1 << 30,
            budget: 1024,
        }
        .into_io();
        let e = RedisError::from(io);
        let found = too_large(&e).expect("the TooLarge inside the redis error");
        assert_eq!((found.declared, found.budget), (1 << 30, 1024));
        assert!(too_large(&RedisError::from(io::Error::other("reset"))).is_none());
    }
}
