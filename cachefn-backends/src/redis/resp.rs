//! RESP2, the Redis protocol: commands written into a buffer; for the
//! blocking connections, a reader that never allocates more than a reply's
//! byte budget, whatever sizes the server declares; for the async
//! connection (whose replies the `redis` crate parses), a meter that holds
//! its replies to the same budget by the same rules.

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

/// The byte budget of replies: every byte read, and every array element,
/// is charged to it before anything is allocated for it. Both readers (the
/// blocking connections' `Reader` and the async connection's `Meter`)
/// charge through it, by the same rules.
struct Budget(usize);

impl Budget {
    fn charge(&mut self, bytes: u64) -> Result<(), Fail> {
        match usize::try_from(bytes) {
            Ok(n) if n <= self.0 => {
                self.0 -= n;
                Ok(())
            }
            _ => Err(Fail::TooLarge {
                declared: bytes,
                budget: self.0,
            }),
        }
    }

    /// What a reply's first line announces, charged: a bulk string costs
    /// its length and CRLF, an array a `Value`'s size per element (each
    /// costs at least its slot, whatever it holds).
    fn charge_head(&mut self, head: &Head) -> Result<(), Fail> {
        match *head {
            Head::Bulk(len) => self.charge(len.saturating_add(2)),
            Head::Array(n) => self.charge(n.saturating_mul(std::mem::size_of::<Value>() as u64)),
            _ => Ok(()),
        }
    }
}

/// What a reply line (without its CRLF) announces.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// `+..`: the text follows on the line.
    Status,
    /// `-..`: the text follows on the line.
    Error,
    Int(i64),
    /// `$-1` or `*-1`.
    Nil,
    /// `$n`: `n` bytes and a CRLF follow.
    Bulk(u64),
    /// `*n`: `n` replies follow.
    Array(u64),
}

/// Parse a reply line found at nesting `depth` (0 for a whole reply).
fn head(line: &[u8], depth: usize) -> Result<Head, Fail> {
    let number = || {
        std::str::from_utf8(&line[1..])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| Fail::Protocol("a reply with a malformed number".into()))
    };
    match line.first() {
        Some(b'+') => Ok(Head::Status),
        Some(b'-') => Ok(Head::Error),
        Some(b':') => number().map(Head::Int),
        Some(b'$') => match number()? {
            -1 => Ok(Head::Nil),
            n if n < 0 => Err(Fail::Protocol("a negative bulk length".into())),
            n => Ok(Head::Bulk(n as u64)),
        },
        Some(b'*') => match number()? {
            -1 => Ok(Head::Nil),
            n if n < 0 => Err(Fail::Protocol("a negative array length".into())),
            _ if depth >= MAX_DEPTH => Err(Fail::Protocol("arrays nested too deep".into())),
            n => Ok(Head::Array(n as u64)),
        },
        _ => Err(Fail::Protocol(format!(
            "`{}` is not a Redis reply (is this port a Redis server?)",
            String::from_utf8_lossy(&line[..line.len().min(60)]).escape_debug()
        ))),
    }
}

/// Reads replies from `r`, charging every byte (and every array element)
/// to `budget`.
pub(super) struct Reader<'a, R> {
    pub r: &'a mut R,
    budget: Budget,
    line: Vec<u8>,
}

impl<'a, R: BufRead> Reader<'a, R> {
    pub fn new(r: &'a mut R, budget: usize) -> Self {
        Reader {
            r,
            budget: Budget(budget),
            line: Vec::new(),
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
        self.budget.charge(n as u64)?;
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

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.line[1..]).into_owned()
    }

    /// One whole reply.
    pub fn value(&mut self) -> Result<Value, Fail> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, Fail> {
        self.read_line()?;
        let head = head(&self.line, depth)?;
        self.budget.charge_head(&head)?;
        match head {
            Head::Status => Ok(Value::Status(self.text())),
            Head::Error => Ok(Value::Error(self.text())),
            Head::Int(n) => Ok(Value::Int(n)),
            Head::Nil => Ok(Value::Nil),
            Head::Bulk(len) => self.bulk(len).map(Value::Bulk),
            Head::Array(n) => {
                let mut items = Vec::with_capacity(n.min(1024) as usize);
                for _ in 0..n {
                    items.push(self.value_at(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
        }
    }

    /// A bulk string of `len` bytes (already charged) and its CRLF, grown
    /// as bytes arrive.
    fn bulk(&mut self, len: u64) -> Result<Vec<u8>, Fail> {
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

/// Follows a stream of replies that another parser reads (the async
/// connection's), without keeping them: fed every byte as it arrives, it
/// fails as soon as one reply would pass `max` bytes by the `Reader`'s
/// rules, before that parser has buffered it. Each reply starts with the
/// whole budget. It keeps at most one reply line.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(super) struct Meter {
    max: usize,
    budget: Budget,
    /// The reply line read so far (with its CRLF once whole).
    line: Vec<u8>,
    /// Bytes left of the bulk string being passed (its CRLF included).
    body: u64,
    /// For each array open around the current position, its elements left.
    open: Vec<u64>,
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
impl Meter {
    pub fn new(max: usize) -> Meter {
        Meter {
            max,
            budget: Budget(max),
            line: Vec::new(),
            body: 0,
            open: Vec::new(),
        }
    }

    /// Account for the next `bytes` of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Fail> {
        while !bytes.is_empty() {
            if self.body > 0 {
                let n = self.body.min(bytes.len() as u64);
                self.body -= n;
                bytes = &bytes[n as usize..];
                if self.body == 0 {
                    self.element_done();
                }
                continue;
            }
            let (part, end) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..=i], true),
                None => (bytes, false),
            };
            if (self.line.len() + part.len()) as u64 > MAX_LINE {
                return Err(Fail::Protocol("a reply line is too long".into()));
            }
            self.line.extend_from_slice(part);
            bytes = &bytes[part.len()..];
            if end {
                self.end_line()?;
            }
        }
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), Fail> {
        self.budget.charge(self.line.len() as u64)?;
        let Some(line) = self.line.strip_suffix(b"\r\n") else {
            return Err(Fail::Protocol("a reply line did not end in CRLF".into()));
        };
        let head = head(line, self.open.len())?;
        self.line.clear();
        self.budget.charge_head(&head)?;
        match head {
            Head::Bulk(len) => self.body = len + 2,
            Head::Array(n) if n > 0 => self.open.push(n),
            _ => self.element_done(),
        }
        Ok(())
    }

    /// A value ended: it completes the arrays it ends, and when it ends a
    /// whole reply, the next reply starts with the whole budget.
    fn element_done(&mut self) {
        while let Some(left) = self.open.last_mut() {
            *left -= 1;
            if *left > 0 {
                return;
            }
            self.open.pop();
        }
        self.budget = Budget(self.max);
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

    /// Feed `bytes` to `meter` in pieces whose sizes follow `seed`.
    fn feed_split(meter: &mut Meter, bytes: &[u8], seed: u64) -> Result<(), Fail> {
        let mut x = seed | 1;
        let mut rest = bytes;
        while !rest.is_empty() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = if seed == 0 {
                rest.len()
            } else {
                1 + (x % 7) as usize
            }
            .min(rest.len());
            meter.feed(&rest[..n])?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// The meter (for the async connection) fails a reply exactly when the
    /// blocking reader does, for every budget, however the bytes arrive;
    /// and each reply starts again with the whole budget.
    #[test]
    fn the_meter_caps_replies_by_the_readers_rules() {
        let replies: [&[u8]; 10] = [
            b"$3\r\nabc\r\n",
            b"$0\r\n\r\n",
            b"$-1\r\n",
            b":-7\r\n",
            b"+OK\r\n",
            b"-ERR no\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n$-1\r\n",
            b"*2\r\n*1\r\n$2\r\nab\r\n:5\r\n",
            b"*3\r\n$5\r\nhello\r\n*2\r\n:1\r\n$3\r\nx\ry\r\n+S\r\n",
        ];
        for reply in replies {
            for budget in 0..reply.len() + 8 * std::mem::size_of::<Value>() {
                let by_reader = read(reply, budget);
                assert!(
                    matches!(by_reader, Ok(_) | Err(Fail::TooLarge { .. })),
                    "{by_reader:?}"
                );
                for seed in [0, 1, 2, 3] {
                    let mut meter = Meter::new(budget);
                    let by_meter = feed_split(&mut meter, reply, seed);
                    assert_eq!(
                        by_meter.is_ok(),
                        by_reader.is_ok(),
                        "{} within {budget}: {by_meter:?}",
                        String::from_utf8_lossy(reply)
                    );
                    if by_meter.is_ok() {
                        // Again and again: one reply at a time is charged.
                        let three = [reply, reply, reply].concat();
                        feed_split(&mut meter, &three, seed + 7).unwrap();
                    } else {
                        assert!(matches!(by_meter, Err(Fail::TooLarge { .. })));
                    }
                }
            }
        }
    }

    #[test]
    fn the_meter_fails_a_huge_declared_reply_at_its_header() {
        let mut meter = Meter::new(32 << 20);
        assert!(matches!(
            meter.feed(b"$1073741824\r\n"),
            Err(Fail::TooLarge { declared, .. }) if declared == (1 << 30) + 2
        ));
        let mut meter = Meter::new(32 << 20);
        assert!(matches!(
            meter.feed(b"*67108864\r\n"),
            Err(Fail::TooLarge { .. })
        ));
        let mut meter = Meter::new(1 << 20);
        assert!(matches!(
            meter.feed(b"HTTP/1.1 400\r\n"),
            Err(Fail::Protocol(_))
        ));
        let mut meter = Meter::new(1 << 20);
        assert!(matches!(
            meter.feed(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
            Err(Fail::Protocol(_))
        ));
        let mut meter = Meter::new(1 << 20);
        assert!(matches!(
            feed_split(&mut meter, &[b'+'; MAX_LINE as usize + 1], 5),
            Err(Fail::Protocol(_))
        ));
    }
}
