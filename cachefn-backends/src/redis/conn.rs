//! One blocking Redis connection (TCP, Unix socket or TLS) whose every
//! call ends by a deadline and whose every reply stays within a byte cap.

use std::io::{self, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use redis::ConnectionAddr;

use super::resp::{self, Fail, Value};
use crate::net::deadline::{self, is_timeout, Timed};
use crate::Error;

/// The bytes under a connection.
pub(super) enum Stream {
    Tcp(Timed<TcpStream>),
    #[cfg(unix)]
    Unix(Timed<std::os::unix::net::UnixStream>),
    #[cfg(feature = "redis-tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Timed<TcpStream>>>),
}

impl Stream {
    pub(super) fn set_deadline(&mut self, deadline: Instant) {
        match self {
            Stream::Tcp(s) => s.set_deadline(deadline),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_deadline(deadline),
            #[cfg(feature = "redis-tls")]
            Stream::Tls(s) => s.sock.set_deadline(deadline),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
            #[cfg(feature = "redis-tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
            #[cfg(feature = "redis-tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            #[cfg(unix)]
            Stream::Unix(s) => s.flush(),
            #[cfg(feature = "redis-tls")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Where and how to connect: from the URL, once.
#[derive(Clone)]
pub(super) struct Target {
    pub addr: ConnectionAddr,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    #[cfg(feature = "redis-tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_reply_size: usize,
}

/// A connection, and the buffer its commands are written into.
pub(super) struct Conn {
    io: BufReader<Stream>,
    out: Vec<u8>,
    max_reply_size: usize,
}

/// Why a call on a connection failed.
pub(super) enum CallFail {
    /// The connection broke, timed out or sent something that is not a
    /// reply: it is closed.
    Broken(Fail),
    /// The server answered with an error reply: the connection is fine.
    Server(String),
}

impl From<Fail> for CallFail {
    fn from(f: Fail) -> Self {
        CallFail::Broken(f)
    }
}

impl From<io::Error> for CallFail {
    fn from(e: io::Error) -> Self {
        CallFail::Broken(Fail::Io(e))
    }
}

impl Conn {
    /// Open a connection, authenticate and select the database, by `deadline`.
    pub fn open(t: &Target, deadline: Instant) -> Result<Conn, CallFail> {
        let stream = match &t.addr {
            ConnectionAddr::Tcp(host, port) => Stream::Tcp(tcp(host, *port, t, deadline)?),
            #[cfg(feature = "redis-tls")]
            ConnectionAddr::TcpTls { host, port, .. } => {
                let config = t.tls.clone().ok_or_else(|| {
                    Fail::Protocol("a TLS URL without a TLS configuration".into())
                })?;
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                    Fail::Protocol(format!("`{host}` is not a host name for TLS: {e}"))
                })?;
                let session = rustls::ClientConnection::new(config, name)
                    .map_err(|e| Fail::Io(io::Error::other(e)))?;
                // The handshake runs with the first write, within the deadline.
                let sock = tcp(host, *port, t, deadline)?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(session, sock)))
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let sock = std::os::unix::net::UnixStream::connect(path)?;
                let mut timed = Timed::new(sock, t.response_timeout)?;
                timed.set_deadline(deadline);
                Stream::Unix(timed)
            }
            _ => {
                return Err(CallFail::Broken(Fail::Protocol(
                    "this kind of Redis address is not supported here".into(),
                )))
            }
        };
        let mut conn = Conn {
            io: BufReader::with_capacity(16 * 1024, stream),
            out: Vec::with_capacity(256),
            max_reply_size: t.max_reply_size,
        };
        let mut setup: Vec<Vec<&[u8]>> = Vec::new();
        let db = resp::itoa_buf(t.db.unsigned_abs());
        match (&t.username, &t.password) {
            (Some(user), Some(password)) => {
                setup.push(vec![b"AUTH", user.as_bytes(), password.as_bytes()])
            }
            (None, Some(password)) => setup.push(vec![b"AUTH", password.as_bytes()]),
            _ => {}
        }
        if t.db != 0 {
            setup.push(vec![b"SELECT", db.as_bytes()]);
        }
        if !setup.is_empty() {
            for cmd in &setup {
                resp::push_command(&mut conn.out, cmd);
            }
            for reply in conn.send(setup.len())? {
                if let Value::Error(e) = reply {
                    return Err(CallFail::Server(e));
                }
            }
        }
        Ok(conn)
    }

    pub fn set_deadline(&mut self, deadline: Instant) {
        self.io.get_mut().set_deadline(deadline);
    }

    /// The buffered stream itself, for a protocol this module does not
    /// speak (the invalidation feed's RESP3 pushes).
    pub(super) fn stream(&mut self) -> &mut BufReader<Stream> {
        &mut self.io
    }

    /// Write the commands in `self.out` and read `replies` replies, all
    /// within the deadline and together within `max_reply_size`.
    fn send(&mut self, replies: usize) -> Result<Vec<Value>, CallFail> {
        let sent = self.io.get_mut().write_all(&self.out);
        self.out.clear();
        sent?;
        self.io.get_mut().flush()?;
        let mut reader = resp::Reader::new(&mut self.io, self.max_reply_size);
        let mut out = Vec::with_capacity(replies);
        for _ in 0..replies {
            out.push(reader.value()?);
        }
        Ok(out)
    }

    /// One command, one reply; an error reply is `CallFail::Server`.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Value, CallFail> {
        resp::push_command(&mut self.out, args);
        match self.send(1)?.pop() {
            Some(Value::Error(e)) => Err(CallFail::Server(e)),
            Some(v) => Ok(v),
            None => Err(CallFail::Broken(Fail::Protocol("no reply".into()))),
        }
    }

    /// Several commands in one round trip; the first error reply, if any,
    /// is `CallFail::Server` (every reply has been read).
    pub fn pipeline(&mut self, cmds: &[Vec<&[u8]>]) -> Result<Vec<Value>, CallFail> {
        for cmd in cmds {
            resp::push_command(&mut self.out, cmd);
        }
        let replies = self.send(cmds.len())?;
        if let Some(Value::Error(e)) = replies.iter().find(|v| matches!(v, Value::Error(_))) {
            return Err(CallFail::Server(e.clone()));
        }
        Ok(replies)
    }
}

/// A TCP connection to `host:port` with the target's timeouts.
fn tcp(host: &str, port: u16, t: &Target, deadline: Instant) -> Result<Timed<TcpStream>, Fail> {
    let addrs = (host, port).to_socket_addrs()?;
    let mut last = None;
    for addr in addrs {
        match deadline::connect_tcp(&addr, t.connect_timeout, deadline) {
            Ok(sock) => {
                sock.set_nodelay(true)?;
                let mut timed = Timed::new(sock, t.response_timeout)?;
                timed.set_deadline(deadline);
                return Ok(timed);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Fail::Io(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("`{host}` has no address"))
    })))
}

/// The error of a failed call, classified for the circuit breaker: an error
/// reply or an oversized reply is a refusal (the server is alive); anything
/// else is an outage. `fresh`: the connection was opened for this call (a
/// TLS failure shows there).
pub(super) fn error(fail: CallFail, t: &Target, fresh: bool, tls: bool) -> Error {
    const NAME: &str = "redis";
    match fail {
        CallFail::Server(e) => Error::refused(NAME, e),
        CallFail::Broken(Fail::TooLarge { declared, budget }) => too_large(declared, budget),
        CallFail::Broken(Fail::Protocol(why)) => Error::backend(NAME, why),
        CallFail::Broken(Fail::Io(e)) => {
            let message = if is_timeout(&e) {
                format!(
                    "no complete reply within {:?}{}",
                    t.response_timeout,
                    if fresh {
                        format!(" (+{:?} to connect)", t.connect_timeout)
                    } else {
                        String::new()
                    }
                )
            } else if e.kind() == io::ErrorKind::UnexpectedEof {
                "the server closed the connection".into()
            } else {
                e.to_string()
            };
            let hint = tls_hint(&e, fresh && tls);
            Error::backend(NAME, format!("{message}{hint}")).with_source(e)
        }
    }
}

/// A reply that would pass `max_reply_size` failed its call, blocking or
/// async: a refusal (the server is alive), with what to do about it.
pub(super) fn too_large(declared: u64, budget: usize) -> Error {
    Error::refused(
        "redis",
        format!(
            "the reply would take {declared} bytes, more than the {budget} bytes left of \
             max_reply_size: the call failed; raise RedisBuilder::max_reply_size if values \
             this large are expected"
        ),
    )
}

/// A hint for a failure of a new TLS connection.
fn tls_hint(e: &io::Error, tls: bool) -> &'static str {
    let message = e.to_string();
    if message.contains("invalid peer certificate") {
        "; the server's TLS certificate is not trusted: give its CA to \
         RedisBuilder::tls_root_cert, and check that the certificate names the URL's host"
    } else if message.contains("corrupt message") || message.contains("InvalidContentType") {
        "; the server does not speak TLS on this port (use redis:// for a plain port)"
    } else if tls && is_timeout(e) {
        "; no answer to the TLS handshake in time: check that this port serves TLS \
         (a plain Redis port never answers a rediss:// client), or raise the timeouts"
    } else {
        ""
    }
}
