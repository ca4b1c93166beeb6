//! RESP2, the Redis protocol, for the blocking connections: commands
//! written into a buffer, and a reader that never allocates more than a
//! reply's byte budget, whatever sizes the server declares.

use std::io::{self, BufRead, Read};

/// Longest status, error or size line accepted.
const MAX_LINE: u64 = 64 * 1024;
/// Deepest nesting of arrays accepted (SCAN replies nest 2).
const MAX_DEPTH: usize = 4;

/// One reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Value {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    /// `+OK` and other status replies.
    Status(String),
    /// An error reply (`-OOM ...`): the server is alive and refused.
    Error(String),
    Array(Vec<Value>),
}

/// Why reading a reply failed. Either way the connection is in the middle
/// of a reply, and must be closed.
#[derive(Debug)]
pub(super) enum Fail {
    Io(io::Error),
    /// Not RESP2: the connection cannot be trusted.
    Protocol(String),
    /// The reply would take more than the budget.
    TooLarge {
        declared: u64,
        budget: usize,
    },
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

/// Append a command (an array of bulk strings) to `buf`.
pub(super) fn push_command(buf: &mut Vec<u8>, args: &[&[u8]]) {
    push_header(buf, b'*', args.len());
    for arg in args {
        push_header(buf, b'$', arg.len());
        buf.extend_from_slice(arg);
        buf.extend_from_slice(b"\r\n");
    }
}

fn push_header(buf: &mut Vec<u8>, kind: u8, n: usize) {
    buf.push(kind);
    let digits = itoa_buf(n as u64);
    buf.extend_from_slice(digits.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// `n` in decimal, without allocating.
pub(super) fn itoa_buf(n: u64) -> Digits {
    let mut d = Digits([0; 20], 20);
    let mut n = n;
    loop {
        d.1 -= 1;
        d.0[d.1] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

pub(super) struct Digits([u8; 20], usize);

impl Digits {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[self.1..]
    }
}

/// Reads replies from `r`, charging every byte (and every array element)
/// to `budget`.
pub(super) struct Reader<'a, R> {
    pub r: &'a mut R,
    pub budget: usize,
    line: Vec<u8>,
}

impl<'a, R: BufRead> Reader<'a, R> {
    pub fn new(r: &'a mut R, budget: usize) -> Self {
        Reader {
            r,
            budget,
            line: Vec::new(),
        }
    }

    fn charge(&mut self, bytes: u64) -> Result<(), Fail> {
        match usize::try_from(bytes) {
            Ok(n) if n <= self.budget => {
                self.budget -= n;
                Ok(())
            }
            _ => Err(Fail::TooLarge {
                declared: bytes,
                budget: self.budget,
            }),
        }
    }

    /// One line without its CRLF, in `self.line`.
    fn read_line(&mut self) -> Result<(), Fail> {
        self.line.clear();
        let n = (&mut *self.r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(Fail::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        self.charge(n as u64)?;
        if !self.line.ends_with(b"\r\n") {
            return Err(if n as u64 == MAX_LINE {
                Fail::Protocol("a reply line is too long".into())
            } else {
                Fail::Io(io::ErrorKind::UnexpectedEof.into())
            });
        }
        self.line.truncate(self.line.len() - 2);
        Ok(())
    }

    fn number(&self) -> Result<i64, Fail> {
        std::str::from_utf8(&self.line[1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Fail::Protocol("a reply with a malformed number".into()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.line[1..]).into_owned()
    }

    /// One whole reply.
    pub fn value(&mut self) -> Result<Value, Fail> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, Fail> {
        self.read_line()?;
        match self.line.first() {
            Some(b'+') => Ok(Value::Status(self.text())),
            Some(b'-') => Ok(Value::Error(self.text())),
            Some(b':') => self.number().map(Value::Int),
            Some(b'$') => match self.number()? {
                -1 => Ok(Value::Nil),
                n if n < 0 => Err(Fail::Protocol("a negative bulk length".into())),
                n => self.bulk(n as u64).map(Value::Bulk),
            },
            Some(b'*') => match self.number()? {
                -1 => Ok(Value::Nil),
                n if n < 0 => Err(Fail::Protocol("a negative array length".into())),
                _ if depth >= MAX_DEPTH => Err(Fail::Protocol("arrays nested too deep".into())),
                n => {
                    let n = n as u64;
                    // Every element costs at least its slot, whatever it holds.
                    self.charge(n.saturating_mul(std::mem::size_of::<Value>() as u64))?;
                    let mut items = Vec::with_capacity(n.min(1024) as usize);
                    for _ in 0..n {
                        items.push(self.value_at(depth + 1)?);
                    }
                    Ok(Value::Array(items))
                }
            },
            _ => Err(Fail::Protocol(format!(
                "`{}` is not a Redis reply (is this port a Redis server?)",
                String::from_utf8_lossy(&self.line[..self.line.len().min(60)]).escape_debug()
            ))),
        }
    }

    /// A bulk string of `len` bytes and its CRLF, grown as bytes arrive.
    fn bulk(&mut self, len: u64) -> Result<Vec<u8>, Fail> {
        self.charge(len.saturating_add(2))?;
        let len = len as usize;
        let mut data = Vec::with_capacity((len + 2).min(64 * 1024));
        (&mut *self.r).take(len as u64 + 2).read_to_end(&mut data)?;
        if data.len() < len + 2 {
            return Err(Fail::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if !data.ends_with(b"\r\n") {
            return Err(Fail::Protocol("a bulk string did not end in CRLF".into()));
        }
        data.truncate(len);
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], budget: usize) -> Result<Value, Fail> {
        let mut r = io::BufReader::new(bytes);
        Reader::new(&mut r, budget).value()
    }

    #[test]
    fn commands_and_replies() {
        let mut buf = Vec::new();
        push_command(&mut buf, &[b"GET", b"k"]);
        assert_eq!(buf, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(
            read(b"$3\r\nabc\r\n", 100).unwrap(),
            Value::Bulk(b"abc".to_vec())
        );
        assert_eq!(read(b"$-1\r\n", 100).unwrap(), Value::Nil);
        assert_eq!(read(b":-7\r\n", 100).unwrap(), Value::Int(-7));
        assert_eq!(read(b"+OK\r\n", 100).unwrap(), Value::Status("OK".into()));
        assert_eq!(
            read(b"-OOM no\r\n", 100).unwrap(),
            Value::Error("OOM no".into())
        );
        assert_eq!(
            read(b"*2\r\n$1\r\na\r\n$-1\r\n", 1000).unwrap(),
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Nil])
        );
    }

    #[test]
    fn declared_sizes_past_the_budget_fail_before_any_allocation() {
        assert!(matches!(
            read(b"$1073741824\r\n", 1 << 20),
            Err(Fail::TooLarge { declared, .. }) if declared == (1 << 30) + 2
        ));
        assert!(matches!(
            read(b"*67108864\r\n", 1 << 20),
            Err(Fail::TooLarge { .. })
        ));
        assert!(matches!(
            read(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 1000),
            Err(Fail::Protocol(_))
        ));
        assert!(matches!(read(b"$3\r\nab", 100), Err(Fail::Io(_))));
        assert!(matches!(
            read(b"HTTP/1.1 400\r\n", 100),
            Err(Fail::Protocol(_))
        ));
    }
}
