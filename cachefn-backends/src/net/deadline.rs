//! A socket whose reads and writes end by one deadline per call, whatever
//! the peer sends: a server that trickles a reply one byte at a time fails
//! the call when its deadline passes, not after one timeout per byte.
//!
//! The kernel's socket timeout is changed only when it would let a read or
//! write run past the deadline (by more than [`SLACK`]) or when it fired
//! before the deadline; a call on a healthy server makes no extra system
//! call.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How far past its deadline one blocking read or write may end, so that
/// the socket's timeout need not be reset at every call.
const SLACK: Duration = Duration::from_millis(2);

/// A socket with settable read and write timeouts.
pub(crate) trait Socket: Read + Write {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl Socket for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, timeout)
    }
}

/// The error of a call whose deadline passed.
pub(crate) fn deadline_passed() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the call's deadline passed")
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `sock`, bounded by the deadline of the current call.
pub(crate) struct Timed<S> {
    sock: S,
    deadline: Instant,
    /// What the socket's read and write timeouts are set to now.
    read_timeout: Duration,
    write_timeout: Duration,
}

impl<S: Socket> Timed<S> {
    /// `sock` with both timeouts set to `timeout`, and a deadline `timeout` from now.
    pub fn new(sock: S, timeout: Duration) -> io::Result<Self> {
        let timeout = timeout.max(super::MIN_TIMEOUT);
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        Ok(Timed {
            sock,
            deadline: Instant::now() + timeout,
            read_timeout: timeout,
            write_timeout: timeout,
        })
    }

    /// Every read and write from now on ends by `deadline`.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Time left, or the error of a call out of time.
    fn left(&self) -> io::Result<Duration> {
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(deadline_passed()),
        }
    }

    /// Run one blocking `op` within the deadline: the socket's timeout is
    /// lowered to the time left when it would overrun it, and a timeout
    /// that fires early (set by an earlier, shorter call) is retried with
    /// the time left.
    fn bounded<T>(
        &mut self,
        write: bool,
        mut op: impl FnMut(&mut S) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut retried = false;
        loop {
            let left = self.left()?;
            let current = if write {
                self.write_timeout
            } else {
                self.read_timeout
            };
            if current > left + SLACK || retried {
                if write {
                    self.sock.set_write_timeout(Some(left))?;
                    self.write_timeout = left;
                } else {
                    self.sock.set_read_timeout(Some(left))?;
                    self.read_timeout = left;
                }
            }
            match op(&mut self.sock) {
                Err(e) if is_timeout(&e) => {
                    if self.left().is_err() {
                        return Err(deadline_passed());
                    }
                    retried = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl<S: Socket> Read for Timed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.bounded(false, |s| s.read(buf))
    }
}

impl<S: Socket> Write for Timed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bounded(true, |s| s.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// A TCP connection to `addr`, within `timeout` and by `deadline`.
pub(crate) fn connect_tcp(
    addr: &std::net::SocketAddr,
    timeout: Duration,
    deadline: Instant,
) -> io::Result<TcpStream> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(deadline_passed)?;
    TcpStream::connect_timeout(addr, timeout.min(left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_trickling_peer_cannot_outlast_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for _ in 0..40 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let sock = TcpStream::connect(addr).unwrap();
        let mut timed = Timed::new(sock, Duration::from_millis(100)).unwrap();
        let start = Instant::now();
        timed.set_deadline(start + Duration::from_millis(100));
        let mut buf = Vec::new();
        let e = timed.read_to_end(&mut buf).unwrap_err();
        assert!(is_timeout(&e), "{e}");
        // Per-read timeouts would have read every byte (800 ms).
        assert!(
            start.elapsed() < Duration::from_millis(300),
            "{:?}",
            start.elapsed()
        );
        assert!(buf.len() < 20, "{}", buf.len());
        drop(timed);
        peer.join().unwrap();
    }
}
