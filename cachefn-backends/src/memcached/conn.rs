//! Connections to the server and the blocking client that leases them:
//! opening within deadlines, the pool, one round trip, and one retry on a
//! fresh connection after a server restart.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::options::Host;
use super::protocol::{Fail, Reader, Reply, Res};
use super::NAME;
use crate::net::conns::{Conns, Lease};
use crate::net::deadline::{self, is_timeout, Timed};
use crate::Error;

/// Requests longer than this are written by a helper thread while the
/// replies are read, so that a large batch cannot deadlock on full socket
/// buffers.
const INLINE_WRITE: usize = 16 * 1024;

/// The blocking client behind [`Memcached`].
pub(super) struct Client {
    pub(super) host: Host,
    pub(super) port: u16,
    pub(super) conns: Conns<Conn>,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    pub(super) max_reply_size: usize,
}

pub(super) struct Conn {
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
    pub(super) fn renew(&mut self) {
        self.set_deadline(Instant::now() + self.response_timeout);
    }

    /// Send `request` (any number of commands) and read `replies` replies:
    /// one round trip.
    pub(super) fn exchange(&mut self, request: &[u8], replies: usize) -> Res<Vec<Reply>> {
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
    pub(super) fn with<R>(
        &self,
        op: &str,
        mut f: impl FnMut(&mut Conn) -> Res<R>,
    ) -> Result<R, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    use crate::{Backend, Memcached};

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
}
