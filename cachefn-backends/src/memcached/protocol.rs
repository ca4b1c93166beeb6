//! memcached's meta protocol: requests, replies, and what a key and an
//! expiry time may be.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;
use std::time::Duration;

use super::NAME;
use crate::net::deadline::Timed;
use crate::{clock, Error};

/// memcached's longest key.
pub(super) const MAX_KEY_LEN: usize = 250;
/// memcached reads a larger expiry time as a Unix time, not a number of seconds.
const MAX_RELATIVE_TTL: u64 = 30 * 24 * 3600;
/// Longest reply line accepted (memcached's are far shorter).
const MAX_LINE: u64 = 4096;

/// memcached's expiry time for `ttl`, stored at Unix time `now` (seconds).
pub(super) fn exptime(ttl: Duration, now: u64) -> i64 {
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

pub(super) fn now_secs() -> u64 {
    clock::unix_ms() / 1000
}

/// Refuse keys that memcached would reject or that would break the
/// protocol (a space or a line break in a key would start a new command).
pub(super) fn check_key(key: &str) -> Result<(), Error> {
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

/// The expiry to keep when rewriting an item that has `ttl` seconds left.
pub(super) fn keep_ttl(ttl: Option<i64>) -> i64 {
    match ttl {
        None | Some(..=-1) => 0,
        Some(secs) => exptime(Duration::from_secs(secs.max(1) as u64), now_secs()),
    }
}

// ----- requests -------------------------------------------------------------

pub(super) enum Mode {
    Set,
    Add,
    Cas(u64),
}

pub(super) fn push_mg(buf: &mut Vec<u8>, key: &str, flags: &str) {
    buf.extend_from_slice(b"mg ");
    buf.extend_from_slice(key.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(flags.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

pub(super) fn push_ms(buf: &mut Vec<u8>, key: &str, data: &[u8], exptime: i64, mode: Mode) {
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

pub(super) fn push_md(buf: &mut Vec<u8>, key: &str) {
    buf.extend_from_slice(b"md ");
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

// ----- replies --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
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
pub(super) struct Reply {
    pub(super) code: Code,
    pub(super) data: Vec<u8>,
    pub(super) cas: u64,
    /// Remaining seconds; -1 when the item never expires.
    pub(super) ttl: Option<i64>,
}

impl Reply {
    pub(super) fn found(&self) -> bool {
        matches!(self.code, Code::Value | Code::Done)
    }
}

/// Why a call on one connection failed. Either way the connection is
/// dropped: it may be in the middle of a reply.
#[derive(Debug)]
pub(super) enum Fail {
    Io(io::Error),
    /// A reply that makes no sense: the connection cannot be trusted.
    Reply(String),
    /// The server answered with an error (`SERVER_ERROR`, `CLIENT_ERROR`):
    /// it is alive.
    Server(String),
    /// A reply larger than `max_reply_size`.
    TooLarge(String),
}

pub(super) type Res<T> = Result<T, Fail>;

pub(super) fn unexpected(what: &str, r: &Reply) -> Fail {
    Fail::Reply(format!("unexpected reply {:?} to {what}", r.code))
}

pub(super) struct Reader {
    pub(super) inner: BufReader<Timed<TcpStream>>,
    pub(super) line: Vec<u8>,
    /// Replies read during the current call.
    pub(super) replies: usize,
    /// Bytes the rest of the current round trip's replies may carry.
    pub(super) budget: usize,
}

impl Reader {
    pub(super) fn reply(&mut self) -> Res<Reply> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    use crate::{Backend, Memcached};

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
