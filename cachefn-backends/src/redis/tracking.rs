//! The invalidation feed: one connection per process and Redis server, on a
//! background thread, that asks the server for `CLIENT TRACKING on BCAST
//! PREFIX <p>:` (RESP3, `HELLO 3`) for every cache that follows the server,
//! and hands each invalidation push to the caches whose prefix it names.
//!
//! The rule (Redis's own, for client-side caching): a client that cannot
//! vouch for its feed flushes its local copies. The thread pings every
//! [`PING_EVERY`]; a connection that breaks, or leaves a ping unanswered for
//! [`SILENCE`], suspends every follower (its local tier is emptied and not
//! filled) until tracking is set up again on a new connection.
//!
//! A follower that cannot tell from an invalidation alone whether its
//! local copy is still current (it wrote the key itself: see
//! [`InvalidationSink::changed`]) asks the feed to read the key. The read
//! (`GETRANGE key 0 CHECKED_MAX`) goes out on this same connection, so its
//! reply comes after every push the server sent before it ran, and before
//! every push about a change after it: the follower compares what it holds
//! with a value that no reported change is newer than.
//!
//! A cluster's feed (`cluster/feed.rs`) follows each master through one of
//! these per-server feeds: its followers here are per-master links of a
//! cache, not caches.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::conn::{CallFail, Conn, Stream, Target};
use super::resp;
use crate::invalidation::Source;
use crate::net::deadline::is_timeout;
use crate::{Current, InvalidationFeed, InvalidationSink, Verdict, CHECKED_MAX};

/// How often the feed's thread pings the server.
pub const PING_EVERY: Duration = Duration::from_millis(250);
/// How long a ping may stay unanswered before the feed counts as lost.
pub const SILENCE: Duration = Duration::from_secs(1);
/// How often the thread looks at new followers while the server is quiet.
const POLL: Duration = Duration::from_millis(20);
/// The longest push or reply the feed accepts (500 keys' names fit easily).
const MAX_PUSH: usize = 64 << 20;
/// How long the reads that followers ask for wait to go out together: a
/// process writing many keys costs the server one batch of reads per
/// millisecond, not one exchange per write.
const CHECK_BATCH: Duration = Duration::from_millis(1);
/// The most reads sent in one batch.
const MAX_CHECKS: usize = 256;

/// The feed of one Redis server, as an [`InvalidationFeed`]'s source.
pub(super) struct ServerFeed {
    target: Target,
}

impl ServerFeed {
    /// The feed of the server `target` names (nothing connects yet).
    pub(super) fn feed(target: &Target) -> InvalidationFeed {
        InvalidationFeed::new(Arc::new(ServerFeed {
            target: target.clone(),
        }))
    }
}

impl Source for ServerFeed {
    fn describe(&self) -> String {
        self.target.addr.to_string()
    }

    /// The sink is suspended at once and resumed when the server confirms
    /// tracking. One thread and connection per process and server serve
    /// every follower.
    fn follow(&self, prefix: &str, sink: Weak<dyn InvalidationSink>) {
        if let Some(s) = sink.upgrade() {
            s.suspend();
        }
        let key = format!(
            "{}|{}",
            self.target.addr,
            self.target.username.as_deref().unwrap_or("")
        );
        let mut feeds = feeds().lock().unwrap_or_else(|e| e.into_inner());
        let feed = feeds.entry(key.clone()).or_insert_with(|| {
            let feed = Arc::new(Feed {
                key,
                target: self.target.clone(),
                state: Mutex::new(State::default()),
            });
            let run = feed.clone();
            let spawned = std::thread::Builder::new()
                .name("cachefn-invalidations".into())
                .spawn(move || run.run());
            if spawned.is_err() {
                feed.state().unsupported = Some("no thread could be started".into());
            }
            feed
        });
        let mut state = feed.state();
        if let Some(why) = &state.unsupported {
            if let Some(s) = sink.upgrade() {
                s.resume();
                s.unsupported(why);
            }
            return;
        }
        state.followers.push(Follower {
            prefix: format!("{prefix}:"),
            sink,
            tracked: false,
        });
    }
}

fn feeds() -> &'static Mutex<HashMap<String, Arc<Feed>>> {
    static FEEDS: OnceLock<Mutex<HashMap<String, Arc<Feed>>>> = OnceLock::new();
    FEEDS.get_or_init(Default::default)
}

struct Follower {
    /// `prefix:`.
    prefix: String,
    sink: Weak<dyn InvalidationSink>,
    /// Tracking is confirmed for this prefix on the current connection.
    tracked: bool,
}

#[derive(Default)]
struct State {
    followers: Vec<Follower>,
    /// Set when the server cannot track: later followers are resumed at once.
    unsupported: Option<String>,
}

struct Feed {
    key: String,
    target: Target,
    state: Mutex<State>,
}

/// Why a connection of the feed ended.
enum End {
    /// Broken, silent or refused: try again.
    Lost,
    /// The server closed the connection before answering `HELLO 3` (what
    /// some proxies do with a command they do not know).
    Hungup,
    /// The server does not track keys.
    Unsupported(String),
    /// No follower is left: the thread ends.
    Idle,
}

/// What the next non-push reply answers.
enum Expect {
    Hello,
    Pong,
    Track(Vec<String>),
    Check(Check),
}

/// A key's value to read for the followers that asked
/// ([`InvalidationSink::changed`] answered [`Verdict::Check`]).
struct Check {
    /// The key as stored (`prefix:key`).
    key: Vec<u8>,
    /// Who asked: the length of its `prefix:`, and its sink.
    asked: Vec<(usize, Weak<dyn InvalidationSink>)>,
}

/// `GETRANGE key 0 CHECKED_MAX` for each check, in one write: `end` is
/// inclusive, so a value longer than [`CHECKED_MAX`] comes back one byte
/// longer, and is seen to be.
fn send_checks(io: &mut BufReader<Stream>, checks: &[Check]) -> io::Result<()> {
    let end = resp::itoa_buf(CHECKED_MAX as u64);
    let mut out = Vec::new();
    for check in checks {
        resp::push_command(&mut out, &[b"GETRANGE", &check.key, b"0", end.as_bytes()]);
    }
    let s = io.get_mut();
    s.set_deadline(Instant::now() + SILENCE);
    s.write_all(&out)?;
    s.flush()
}

impl Feed {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        let mut hangups = 0;
        loop {
            let mut end = self.serve();
            self.suspend_all();
            if let End::Hungup = end {
                hangups += 1;
                end = if hangups >= 3 {
                    End::Unsupported(
                        "the server closes the connection at `HELLO 3` (a proxy?); Redis 6 or \
                         later is needed"
                            .into(),
                    )
                } else {
                    End::Lost
                };
            } else {
                hangups = 0;
            }
            match end {
                End::Idle => {
                    if self.retire() {
                        return;
                    }
                }
                End::Unsupported(why) => {
                    let followers = {
                        let mut state = self.state();
                        state.unsupported = Some(why.clone());
                        std::mem::take(&mut state.followers)
                    };
                    for f in followers {
                        if let Some(s) = f.sink.upgrade() {
                            s.resume();
                            s.unsupported(&why);
                        }
                    }
                    return;
                }
                End::Lost | End::Hungup => {
                    if self.retire() {
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            }
            backoff = Duration::from_millis(50);
        }
    }

    /// Remove the feed if no follower is alive; `true` if removed.
    fn retire(&self) -> bool {
        let mut feeds = feeds().lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state();
        state.followers.retain(|f| f.sink.strong_count() > 0);
        if state.followers.is_empty() {
            feeds.remove(&self.key);
            return true;
        }
        false
    }

    fn suspend_all(&self) {
        let sinks: Vec<_> = {
            let mut state = self.state();
            state
                .followers
                .iter_mut()
                .filter_map(|f| {
                    let was = std::mem::replace(&mut f.tracked, false);
                    f.sink.upgrade().filter(|_| was)
                })
                .collect()
        };
        for s in sinks {
            s.suspend();
        }
    }

    /// One connection's life.
    fn serve(&self) -> End {
        let open = Conn::open(
            &self.target,
            Instant::now() + self.target.connect_timeout + self.target.response_timeout,
        );
        let mut conn = match open {
            Ok(c) => c,
            Err(CallFail::Server(e)) => return End::Unsupported(format!("AUTH/SELECT: {e}")),
            Err(CallFail::Broken(_)) => return End::Lost,
        };
        let io = conn.stream();
        let mut expect: VecDeque<(Expect, Instant)> = VecDeque::new();
        let mut tracked: Vec<String> = Vec::new();
        // Named after the process, so that an operator (or a test) can
        // tell whose invalidation connection a tracking client is.
        let name = format!("cachefn-invalidations-{}", std::process::id());
        if send(io, &[b"HELLO", b"3", b"SETNAME", name.as_bytes()]).is_err() {
            return End::Lost;
        }
        expect.push_back((Expect::Hello, Instant::now()));
        let mut next_ping = Instant::now() + PING_EVERY;
        // Reads asked for by followers, sent together when due.
        let mut checks: Vec<Check> = Vec::new();
        let mut checks_due: Option<Instant> = None;
        loop {
            // Track the prefixes of new followers.
            let (new, alive) = {
                let mut state = self.state();
                state.followers.retain(|f| f.sink.strong_count() > 0);
                let new: Vec<String> = state
                    .followers
                    .iter()
                    .filter(|f| !f.tracked && !tracked.contains(&f.prefix))
                    .map(|f| f.prefix.clone())
                    .collect();
                (new, !state.followers.is_empty())
            };
            if !alive {
                return End::Idle;
            }
            let hello_done = !expect.iter().any(|(e, _)| matches!(e, Expect::Hello));
            if hello_done {
                let pending: Vec<&String> = expect
                    .iter()
                    .filter_map(|(e, _)| match e {
                        Expect::Track(p) => Some(p),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let mut new: Vec<String> =
                    new.into_iter().filter(|p| !pending.contains(&p)).collect();
                new.dedup();
                if !new.is_empty() {
                    let mut args: Vec<&[u8]> = vec![b"CLIENT", b"TRACKING", b"on", b"BCAST"];
                    for p in &new {
                        args.push(b"PREFIX");
                        args.push(p.as_bytes());
                    }
                    if send(io, &args).is_err() {
                        return End::Lost;
                    }
                    expect.push_back((Expect::Track(new), Instant::now()));
                }
                // Followers whose prefix is tracked already (a second cache
                // with the same prefix) are live at once.
                self.confirm(&tracked);
            }
            let now = Instant::now();
            if checks_due.is_some_and(|due| now >= due) || checks.len() >= MAX_CHECKS {
                if send_checks(io, &checks).is_err() {
                    return End::Lost;
                }
                expect.extend(checks.drain(..).map(|c| (Expect::Check(c), now)));
                checks_due = None;
            }
            if now >= next_ping {
                if send(io, &[b"PING"]).is_err() {
                    return End::Lost;
                }
                expect.push_back((Expect::Pong, now));
                next_ping = now + PING_EVERY;
            }
            if let Some((_, since)) = expect.front() {
                if since.elapsed() > SILENCE {
                    return End::Lost;
                }
            }
            // Wait for bytes, without consuming any: a timeout here leaves
            // no reply half read.
            let now = Instant::now();
            let wake = checks_due.map_or(next_ping, |due| due.min(next_ping));
            io.get_mut()
                .set_deadline(now + POLL.min(wake.saturating_duration_since(now)));
            let greeted = !expect.iter().any(|(e, _)| matches!(e, Expect::Hello));
            match io.fill_buf() {
                Ok([]) if !greeted => return End::Hungup,
                Ok([]) => return End::Lost,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => continue,
                // A server that closes without reading all of `HELLO`
                // resets the connection rather than closing it.
                Err(_) if !greeted => return End::Hungup,
                Err(_) => return End::Lost,
            }
            io.get_mut().set_deadline(Instant::now() + SILENCE);
            let value = match read(io) {
                Ok(v) => v,
                Err(_) => return End::Lost,
            };
            match value {
                V::Push(items) => {
                    checks.extend(self.pushed(items));
                    if !checks.is_empty() {
                        checks_due.get_or_insert_with(|| Instant::now() + CHECK_BATCH);
                    }
                }
                reply => match expect.pop_front() {
                    Some((Expect::Hello, _)) => {
                        if let V::Error(e) = reply {
                            // `-LOADING`, `-ERR max number of clients` ...
                            // pass; an unknown command or protocol does not.
                            let lower = e.to_ascii_lowercase();
                            if !(lower.contains("unknown") || lower.starts_with("noproto")) {
                                return End::Lost;
                            }
                            return End::Unsupported(format!(
                                "the server does not speak RESP3 (`HELLO 3`: {e}); Redis 6 or \
                                 later is needed"
                            ));
                        }
                    }
                    Some((Expect::Pong, _)) => {
                        if let V::Error(_) = reply {
                            return End::Lost;
                        }
                    }
                    Some((Expect::Track(prefixes), _)) => {
                        if let V::Error(e) = reply {
                            return End::Unsupported(format!("`CLIENT TRACKING` failed: {e}"));
                        }
                        tracked.extend(prefixes);
                        self.confirm(&tracked);
                    }
                    Some((Expect::Check(check), _)) => {
                        if let Some(again) = checked(check, &reply) {
                            checks.push(again);
                            checks_due.get_or_insert_with(|| Instant::now() + CHECK_BATCH);
                        }
                    }
                    None => return End::Lost,
                },
            }
        }
    }

    /// Resume the followers whose prefix is tracked on this connection.
    fn confirm(&self, tracked: &[String]) {
        let sinks: Vec<_> = {
            let mut state = self.state();
            state
                .followers
                .iter_mut()
                .filter(|f| !f.tracked && tracked.contains(&f.prefix))
                .filter_map(|f| {
                    f.tracked = true;
                    f.sink.upgrade()
                })
                .collect()
        };
        for s in sinks {
            s.resume();
        }
    }

    /// An invalidation push: `["invalidate", [key, ...]]`, or
    /// `["invalidate", null]` for a flush. Returns the keys whose value
    /// followers asked to read.
    fn pushed(&self, items: Vec<V>) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut items = items.into_iter();
        match items.next() {
            Some(V::Text(kind)) if kind.eq_ignore_ascii_case(b"invalidate") => {}
            _ => return checks,
        }
        let keys = match items.next() {
            Some(V::Array(keys)) => Some(keys),
            _ => None,
        };
        let followers: Vec<(String, Arc<dyn InvalidationSink>)> = {
            let state = self.state();
            state
                .followers
                .iter()
                .filter_map(|f| Some((f.prefix.clone(), f.sink.upgrade()?)))
                .collect()
        };
        match keys {
            None => {
                for (_, s) in &followers {
                    s.flush();
                }
            }
            Some(keys) => {
                for key in keys {
                    let V::Text(key) = key else { continue };
                    let Ok(key) = std::str::from_utf8(&key) else {
                        continue;
                    };
                    let mut asked = Vec::new();
                    for (prefix, s) in &followers {
                        if let Some(rest) = key.strip_prefix(prefix.as_str()) {
                            if s.changed(rest) == Verdict::Check {
                                asked.push((prefix.len(), Arc::downgrade(s)));
                            }
                        }
                    }
                    if !asked.is_empty() {
                        checks.push(Check {
                            key: key.as_bytes().to_vec(),
                            asked,
                        });
                    }
                }
            }
        }
        checks
    }
}

/// Hand the reply to a [`Check`] to the followers that asked; the same
/// check again for those that ask for another read.
fn checked(check: Check, reply: &V) -> Option<Check> {
    let current = match reply {
        V::Text(v) if v.is_empty() => Current::Absent,
        V::Text(v) if v.len() <= CHECKED_MAX => Current::Value(v),
        V::Nil => Current::Absent,
        _ => Current::Unknown,
    };
    let key = std::str::from_utf8(&check.key).ok()?;
    let mut again = Vec::new();
    for (prefix_len, sink) in check.asked {
        if let (Some(s), Some(rest)) = (sink.upgrade(), key.get(prefix_len..)) {
            if s.current(rest, current) == Verdict::Check {
                again.push((prefix_len, sink));
            }
        }
    }
    (!again.is_empty()).then_some(Check {
        key: check.key,
        asked: again,
    })
}

fn send(io: &mut BufReader<Stream>, args: &[&[u8]]) -> io::Result<()> {
    let mut out = Vec::new();
    resp::push_command(&mut out, args);
    let s = io.get_mut();
    s.set_deadline(Instant::now() + SILENCE);
    s.write_all(&out)?;
    s.flush()
}

/// A RESP3 value, as much of it as the feed needs.
#[derive(Debug)]
enum V {
    Nil,
    Int,
    Text(Vec<u8>),
    Error(String),
    Array(Vec<V>),
    Push(Vec<V>),
}

fn read(r: &mut impl BufRead) -> io::Result<V> {
    let mut budget = MAX_PUSH;
    value(r, &mut budget, 0)
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

fn value(r: &mut impl BufRead, budget: &mut usize, depth: usize) -> io::Result<V> {
    if depth > 8 {
        return Err(bad("nested too deep"));
    }
    let mut line = Vec::new();
    let n = r.take(64 * 1024).read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    *budget = budget.checked_sub(n).ok_or_else(|| bad("too large"))?;
    line.truncate(line.len() - 2);
    let kind = line[0];
    let rest = &line[1..];
    let number = || -> io::Result<i64> {
        std::str::from_utf8(rest)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a malformed number"))
    };
    match kind {
        b'+' => Ok(V::Text(rest.to_vec())),
        b'-' => Ok(V::Error(String::from_utf8_lossy(rest).into_owned())),
        b':' | b'#' | b',' | b'(' => Ok(V::Int),
        b'_' => Ok(V::Nil),
        b'$' | b'=' | b'!' => {
            let len = number()?;
            if len < 0 {
                return Ok(V::Nil);
            }
            let len = len as usize;
            *budget = budget
                .checked_sub(len + 2)
                .ok_or_else(|| bad("too large"))?;
            let mut data = vec![0; len + 2];
            r.read_exact(&mut data)?;
            data.truncate(len);
            if kind == b'!' {
                return Ok(V::Error(String::from_utf8_lossy(&data).into_owned()));
            }
            Ok(V::Text(data))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number()?;
            if n < 0 {
                return Ok(V::Nil);
            }
            let n = n as usize * if matches!(kind, b'%' | b'|') { 2 } else { 1 };
            *budget = budget
                .checked_sub(n.saturating_mul(std::mem::size_of::<V>()))
                .ok_or_else(|| bad("too large"))?;
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(value(r, budget, depth + 1)?);
            }
            match kind {
                b'>' => Ok(V::Push(items)),
                // An attribute annotates the value that follows it.
                b'|' => value(r, budget, depth),
                _ => Ok(V::Array(items)),
            }
        }
        _ => Err(bad("not a RESP3 value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> V {
        read(&mut io::BufReader::new(bytes)).unwrap()
    }

    #[test]
    fn pushes_and_replies() {
        let push = parse(b">2\r\n$10\r\ninvalidate\r\n*2\r\n$3\r\np:a\r\n$3\r\np:b\r\n");
        assert!(
            matches!(&push, V::Push(items) if items.len() == 2 && matches!(&items[1], V::Array(k) if k.len() == 2))
        );
        let flush = parse(b">2\r\n$10\r\ninvalidate\r\n_\r\n");
        assert!(matches!(&flush, V::Push(items) if matches!(items[1], V::Nil)));
        assert!(matches!(
            parse(b"%2\r\n+a\r\n:1\r\n+b\r\n#t\r\n"),
            V::Array(x) if x.len() == 4
        ));
        assert!(matches!(parse(b"-ERR no\r\n"), V::Error(_)));
        assert!(read(&mut io::BufReader::new(&b"*99999999999\r\n"[..])).is_err());
    }
}
