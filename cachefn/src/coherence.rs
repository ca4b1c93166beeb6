//! Local tiers that follow the shared tier. A cache with a local tier and a
//! shared tier that has a change feed (Redis, Redis Cluster: `CLIENT
//! TRACKING`, see `cachefn_backends::InvalidationFeed`) is an
//! `InvalidationSink` of that feed: the feed calls it from its own thread,
//! and nothing here runs on a read.
//!
//! # What holds
//!
//! **A local copy never outlives a change of its key in the shared tier by
//! more than the feed's latency** (typically a millisecond; or, for a key
//! this process has just written, a round trip or two more on the feed's
//! own connection), whoever made the change, however many writers race.
//! Four rules give it:
//!
//! 1. *Every invalidation drops the copy, unless the shared tier is seen to
//!    hold exactly that copy.* The feed reports every change under the
//!    prefix, this process's own writes included (BCAST mode; `NOLOOP`
//!    would only spare writes made on the feed's own connection, and a
//!    process writes on others). A message names a key, not a writer or a
//!    count: Redis merges the changes of one key in one event-loop turn
//!    into one message. So no count of expected echoes can tell our write's
//!    echo from another client's change (two of our writes merged into one
//!    message leave a count that swallows the next foreign change; our
//!    write and a foreign one in one turn look like our echo alone). For a
//!    key this process has written recently ([`OwnWrites`]: marked before
//!    the write is sent), the sink does not guess: it asks the feed to read
//!    the key on the feed's own connection (`Verdict::Check`), whose reply
//!    is ordered after every change reported so far and before any later
//!    one, and keeps the local copy only if it is byte for byte that value.
//!    A read that may predate a write of ours (the write was in flight, or
//!    settled after the read was asked for) decides nothing: the key is
//!    read again, a few times at most, then the copy goes. Marks are a cost
//!    choice (check instead of drop), never a correctness one: a stale or
//!    missing mark costs one read or one local miss.
//! 2. *A local store loses to any change since the write began.* Every
//!    write takes the key's write generation in the local tier before its
//!    command is sent ([`Cache::begin_write`]) and stores its copy only if
//!    the generation has not moved since (`Memory::insert_if_unchanged`,
//!    which also removes whatever is there when it has). Every removal the
//!    sink makes moves the generation, so a copy from before a change
//!    reported meanwhile is never stored after it. The one exception: a
//!    read that finds exactly the value a write of ours in flight stores
//!    leaves the decision to that write (it ran before the read, and
//!    nothing after it is reported yet).
//! 3. *A write whose outcome is unknown leaves no copy.* A [`Writing`] is a
//!    guard: dropped before its outcome is settled (the future of an async
//!    write cancelled, a panic), it removes the local copies of its keys.
//!    The old value is never left behind by a write that may have reached
//!    the server.
//! 4. *A read that began before a change never back-fills after it* (the
//!    same generations; a preload scope's read counts from its `MGET`).
//!
//! Every write path (the low-level API, memoized stores and refreshes,
//! helpers, shared single-flight stores, deletes, counters, clears) goes
//! through [`Writing`], in `cache/write.rs`.
//!
//! What remains: between a foreign change and the feed's message, a process
//! serves its copy (the feed's latency, as for any key); for a key it has
//! just written, one or a few round trips of the feed's connection more.
//! Each write a process keeps locally costs the shared tier one read on
//! the feed's connection (off the writer's path).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cachefn_backends::sync::Mutex;
use cachefn_backends::{Current, LocalValue, Memory, Slot, Verdict, CHECKED_MAX};

use crate::entry::Encoded;
use crate::key;
use crate::stats::Counters;

/// How long a mark of a settled write waits for its echo before a sweep
/// may drop it (a dropped mark costs a local miss, never a wrong value).
const MARK_LIFETIME: Duration = Duration::from_secs(10);
/// Marks kept before a sweep runs.
const SWEEP_ABOVE: usize = 4096;

/// The keys this process has written recently, whose next invalidations
/// are checked against the shared tier rather than taken as changes.
#[derive(Default)]
pub(crate) struct OwnWrites {
    state: Mutex<OwnState>,
}

#[derive(Default)]
struct OwnState {
    /// The feed is down or not set up: nothing is marked (local copies are
    /// not kept then anyway).
    suspended: bool,
    next_id: u64,
    /// Writes settled so far: orders settles against check requests.
    settles: u64,
    marks: HashMap<u128, Mark>,
}

/// One key's recent writes, and the checks asked for it.
#[derive(Default)]
struct Mark {
    /// Writes sent whose outcome is not settled: id and digest of the
    /// bytes each stores.
    in_flight: Vec<(u64, u128)>,
    /// Invalidations still expected from our writes (merged messages leave
    /// some unused: they cost a check of a later change, nothing more).
    echoes: u32,
    /// The settle count when the last write of the key settled.
    last_settle: u64,
    /// Checks asked for and not answered yet, in the order the feed
    /// answers them: the settle count when each was asked, and how many
    /// reads it has taken.
    checks: VecDeque<(u64, u8)>,
    touched: Option<Instant>,
}

impl Mark {
    fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.echoes == 0 && self.checks.is_empty()
    }
}

/// What a check's answer means for the key's local copy.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A write of ours in flight stores the value read: its settling decides.
    InFlight,
    /// A write of ours may be newer than the value read (it is in flight,
    /// or it settled after the check was asked): read again.
    Again,
    /// The value read is the newest: keep the copy only if it is that value.
    Decide,
}

/// How many reads one check takes at most before it decides.
const MAX_READS: u8 = 4;

/// A digest of stored bytes, to recognise the value a write in flight
/// stores: collision-resistant, since another writer's bytes (whoever can
/// write to the server) must never pass for ours.
fn digest(bytes: &[u8]) -> u128 {
    let hash = blake3::hash(bytes);
    u128::from_le_bytes(hash.as_bytes()[..16].try_into().expect("16 bytes"))
}

impl OwnWrites {
    pub(crate) fn new() -> Self {
        OwnWrites {
            state: Mutex::new(OwnState {
                suspended: true,
                ..OwnState::default()
            }),
        }
    }

    /// Mark a write of `bytes` under `fp` before it is sent; its id.
    /// `None`: not marked (the feed is down, or the value is too long to
    /// check: its echo simply drops the copy).
    fn mark(&self, fp: u128, bytes: &[u8]) -> Option<u64> {
        if bytes.len() > CHECKED_MAX {
            return None;
        }
        let digest = digest(bytes);
        let mut s = self.state.lock();
        if s.suspended {
            return None;
        }
        if s.marks.len() > SWEEP_ABOVE {
            s.marks.retain(|_, m| {
                !m.in_flight.is_empty()
                    || !m.checks.is_empty()
                    || m.touched.is_some_and(|t| t.elapsed() < MARK_LIFETIME)
            });
        }
        s.next_id += 1;
        let id = s.next_id;
        let mark = s.marks.entry(fp).or_default();
        mark.in_flight.push((id, digest));
        mark.echoes += 1;
        mark.touched = Some(Instant::now());
        Some(id)
    }

    /// The write `id` of `fp` is settled; `echo`: it may have changed the
    /// key (an echo may come).
    fn settle(&self, fp: u128, id: u64, echo: bool) {
        let mut s = self.state.lock();
        s.settles += 1;
        let settles = s.settles;
        let Some(mark) = s.marks.get_mut(&fp) else {
            return;
        };
        mark.in_flight.retain(|(i, _)| *i != id);
        mark.last_settle = settles;
        if !echo {
            mark.echoes = mark.echoes.saturating_sub(1);
        }
        if mark.idle() {
            s.marks.remove(&fp);
        }
    }

    /// An invalidation of `fp` arrived: `true` if it may be the echo of
    /// one of our writes (the key is to be checked, and the check is
    /// recorded), `false` if it is another client's change (drop the copy).
    fn is_ours(&self, fp: u128) -> bool {
        let mut s = self.state.lock();
        let settles = s.settles;
        let Some(mark) = s.marks.get_mut(&fp) else {
            return false;
        };
        mark.echoes = mark.echoes.saturating_sub(1);
        mark.checks.push_back((settles, 1));
        true
    }

    /// The feed read `fp` for the oldest check asked of it: the value's
    /// digest (`None`: absent or unknown). What it means for the copy.
    fn answered(&self, fp: u128, value: Option<u128>) -> Answer {
        let mut s = self.state.lock();
        let settles = s.settles;
        let Some(mark) = s.marks.get_mut(&fp) else {
            return Answer::Decide;
        };
        let (asked, reads) = mark.checks.pop_front().unwrap_or((settles, MAX_READS));
        let answer = if value.is_some_and(|v| mark.in_flight.iter().any(|(_, d)| *d == v)) {
            Answer::InFlight
        } else if reads < MAX_READS && (!mark.in_flight.is_empty() || mark.last_settle > asked) {
            mark.checks.push_back((settles, reads + 1));
            Answer::Again
        } else {
            Answer::Decide
        };
        if mark.idle() {
            s.marks.remove(&fp);
        }
        answer
    }

    fn set_suspended(&self, suspended: bool) {
        let mut s = self.state.lock();
        s.suspended = suspended;
        s.marks.clear();
    }
}

/// A write to the shared tier, from before its command is sent until its
/// outcome is settled for each key ([`Writing::settle`]). Dropped with
/// keys unsettled (a cancelled future, a panic), it removes their local
/// copies: a write that may have reached the server never leaves the old
/// value behind.
pub(crate) struct Writing<'c> {
    local: Option<&'c Memory>,
    own: Option<&'c OwnWrites>,
    keys: Vec<Pending>,
    /// A prefix clear's start (`""`: every key), until it is settled.
    clear: Option<&'c str>,
}

/// One key of a [`Writing`].
struct Pending {
    fp: u128,
    /// The local tier's write generation before the write was sent.
    seen: Option<u64>,
    /// The write's mark in [`OwnWrites`], if it made one.
    mark: Option<u64>,
    settled: bool,
}

/// How a key's write ended.
pub(crate) enum Outcome<V> {
    /// The shared tier took the value: keep `V` locally for the lifetime
    /// given (`None`: keep nothing).
    Stored(Option<(V, Duration)>),
    /// The key was not changed by this write (an `add` that found a value,
    /// a holder's store refused because its lease was lost): no echo comes.
    Unchanged,
    /// Removed, or changed to a value not kept locally (a delete, a
    /// counter), or the outcome is unknown (an error): keep nothing.
    Dropped,
}

impl<'c> Writing<'c> {
    /// Begin a write of `keys` (fingerprint, and the bytes stored there, or
    /// `None` for a removal) to a shared tier in front of `local`: take
    /// each key's write generation, and mark in `own` the stores whose echo
    /// the change feed will bring. Call before the shared command is sent.
    pub(crate) fn begin<'b>(
        local: Option<&'c Memory>,
        own: Option<&'c OwnWrites>,
        keys: impl IntoIterator<Item = (u128, Option<&'b [u8]>)>,
    ) -> Writing<'c> {
        let keys = keys
            .into_iter()
            .map(|(fp, bytes)| Pending {
                fp,
                seen: local.map(|l| l.generation(fp)),
                mark: own.zip(bytes).and_then(|(o, b)| o.mark(fp, b)),
                settled: false,
            })
            .collect();
        Writing {
            local,
            own,
            keys,
            clear: None,
        }
    }

    /// Begin a clear of every key that starts with `start` (`""`: every key
    /// of the cache): empty `local` of them now, and again when the clear
    /// is settled or dropped (reads that raced it may have back-filled).
    pub(crate) fn begin_clear(local: Option<&'c Memory>, start: &'c str) -> Writing<'c> {
        clear_local(local, start);
        Writing {
            local,
            own: None,
            keys: Vec::new(),
            clear: Some(start),
        }
    }
}

/// Empty `local` of the keys that start with `start` (`""`: every key).
pub(crate) fn clear_local(local: Option<&Memory>, start: &str) {
    match local {
        Some(local) if start.is_empty() => local.clear(),
        Some(local) => local.clear_prefix(start),
        None => {}
    }
}

impl Writing<'_> {
    /// The local tier's generation of key `i` before the write began.
    pub(crate) fn seen(&self, i: usize) -> Option<u64> {
        self.keys[i].seen
    }

    /// Settle key `i` (stored as `text`): keep its value locally only if
    /// the shared tier took it and nothing changed the key since the write
    /// began; otherwise make sure no older local copy survives.
    pub(crate) fn settle<V: LocalValue>(&mut self, i: usize, text: &str, outcome: Outcome<V>) {
        let key = &mut self.keys[i];
        if key.settled {
            return;
        }
        key.settled = true;
        let echo = !matches!(outcome, Outcome::Unchanged);
        if let Some(local) = self.local {
            let stored = match (outcome, key.seen) {
                (Outcome::Stored(Some((kept, ttl))), Some(seen)) => {
                    local.insert_if_unchanged(key.fp, text, kept, ttl, seen)
                }
                _ => false,
            };
            if !stored {
                local.remove(key.fp, text);
            }
        }
        // Only now: until the copy is in, a check that finds our value in
        // the shared tier leaves the decision to this write.
        if let (Some(own), Some(id)) = (self.own, key.mark) {
            own.settle(key.fp, id, echo);
        }
    }
}

impl Writing<'_> {
    /// The clear has ended (done or failed): empty the local tier of its
    /// keys once more.
    pub(crate) fn settle_clear(&mut self) {
        if let Some(start) = self.clear.take() {
            clear_local(self.local, start);
        }
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.settle_clear();
        for key in self.keys.iter().filter(|k| !k.settled) {
            // The key's text is not kept: whatever entry is at its address
            // goes (another key's there is only a miss).
            if let Some(local) = self.local {
                local.remove_unless(key.fp, |_| false);
            }
            if let (Some(own), Some(id)) = (self.own, key.mark) {
                own.settle(key.fp, id, true);
            }
        }
    }
}

/// Whether a local copy is byte for byte the shared tier's `value`.
fn holds(slot: &Slot, key: &str, value: &[u8]) -> bool {
    if slot.key() != key {
        return false;
    }
    let kept = slot.value();
    match kept.as_any().downcast_ref::<Encoded>() {
        Some(Encoded(bytes)) => crate::codec::same_value(bytes, value),
        None => kept
            .encode()
            .is_ok_and(|bytes| crate::codec::same_value(&bytes, value)),
    }
}

/// What a change feed's events do to one cache's local tier: the parts of
/// the cache the events touch. The cache's `InvalidationSink` (in
/// `cache/`) hands each event here, after waking its shared single-flight
/// waiters.
pub(crate) struct Follow<'a> {
    pub(crate) local: Option<&'a Memory>,
    pub(crate) own: Option<&'a OwnWrites>,
    pub(crate) counters: &'a Counters,
}

impl Follow<'_> {
    /// Drop the local copy of `key` (`fp`), counting it if one was live.
    fn drop_copy(&self, key: &str, fp: u128) {
        if let Some(local) = self.local {
            // `remove` moves the key's write generation: a read or a
            // write that began before this change cannot store its
            // value after it.
            if local.remove(fp, key) {
                self.dropped(key);
            }
        }
    }

    /// A live local copy of `key` was dropped: count it, in its function's
    /// counters too.
    fn dropped(&self, key: &str) {
        self.counters.invalidations.add_n(1);
        crate::stats::invalidated(key);
    }

    /// `key` changed, whoever changed it (a feed that cannot tell).
    pub(crate) fn invalidate(&self, key: &str) {
        self.drop_copy(key, key::fingerprint(key.as_bytes()));
    }

    /// `key` changed: drop the copy, or ask for the key's value when the
    /// change may be the echo of a write of ours.
    pub(crate) fn changed(&self, key: &str) -> Verdict {
        let fp = key::fingerprint(key.as_bytes());
        if self.own.is_some_and(|o| o.is_ours(fp)) {
            return Verdict::Check;
        }
        self.drop_copy(key, fp);
        Verdict::Done
    }

    /// The feed read `key` for a check: keep the copy only if it is that
    /// value and no write of ours may be newer.
    pub(crate) fn current(&self, key: &str, value: Current<'_>) -> Verdict {
        let fp = key::fingerprint(key.as_bytes());
        let read = match value {
            Current::Value(v) => Some(v),
            Current::Absent | Current::Unknown => None,
        };
        let answer = match self.own {
            Some(own) => own.answered(fp, read.map(digest)),
            None => Answer::Decide,
        };
        match answer {
            // A write of ours in flight stores this very value: it ran
            // before the read, and nothing after it is reported yet.
            // Its settling decides (it keeps its copy if no change came
            // since it began, else removes whatever is there; dropped
            // unsettled, it removes it): no copy outlives it.
            Answer::InFlight => return Verdict::Done,
            // Our write may be newer than this read: read again (the
            // copy waits one more round trip, nothing is decided on a
            // value that may predate it).
            Answer::Again => return Verdict::Check,
            Answer::Decide => {}
        }
        let Some(local) = self.local else {
            return Verdict::Done;
        };
        // A copy that is the shared tier's value stays (compared under
        // the key's writer lock: no write lands in between). Another
        // value, or none, goes, and a write or read that began before
        // loses.
        let removed = match read {
            Some(value) => local.remove_unless(fp, |slot| holds(slot, key, value)),
            None => local.remove(fp, key),
        };
        if removed {
            self.dropped(key);
        }
        Verdict::Done
    }

    /// Every key may have changed (a flush, or the feed lost track).
    pub(crate) fn flush(&self) {
        if let Some(local) = self.local {
            local.clear_with(|key| self.dropped(key));
        }
    }

    /// The feed is down: empty the local tier and keep it empty.
    pub(crate) fn suspend(&self) {
        if let Some(own) = self.own {
            own.set_suspended(true);
        }
        if let Some(local) = self.local {
            local.suspend_with(|key| self.dropped(key));
        }
    }

    /// The feed is back.
    pub(crate) fn resume(&self) {
        if let Some(local) = self.local {
            local.resume();
        }
        if let Some(own) = self.own {
            own.set_suspended(false);
        }
    }

    /// The shared tier has no change feed: local copies live their local
    /// lifetime (nothing is marked).
    pub(crate) fn unsupported(&self) {
        if let Some(own) = self.own {
            own.set_suspended(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_ask_for_checks_and_leave_nothing_behind() {
        let own = OwnWrites::new();
        assert_eq!(own.mark(1, b"v"), None, "suspended: nothing is marked");
        own.set_suspended(false);
        // Two writes of one key; Redis merges their echoes into one message.
        let a = own.mark(1, b"a").unwrap();
        let b = own.mark(1, b"b").unwrap();
        own.settle(1, a, true);
        assert!(own.is_ours(1), "the merged echo: checked");
        // `b` is in flight and stores what the read found: `b` decides.
        assert_eq!(own.answered(1, Some(digest(b"b"))), Answer::InFlight);
        own.settle(1, b, true);
        // The unused expectation makes the next change a check too (never
        // an ignored change).
        assert!(own.is_ours(1));
        assert_eq!(own.answered(1, Some(digest(b"c"))), Answer::Decide);
        assert!(!own.is_ours(1), "then another client's change: dropped");
        // A write that changed nothing expects no echo.
        let c = own.mark(2, b"c").unwrap();
        own.settle(2, c, false);
        assert!(!own.is_ours(2));
        assert!(own.state.lock().marks.is_empty());
        // Values too long to check are not marked.
        assert_eq!(own.mark(3, &vec![0; CHECKED_MAX + 1]), None);
    }

    #[test]
    fn a_read_that_may_predate_our_write_is_taken_again() {
        let own = OwnWrites::new();
        own.set_suspended(false);
        let a = own.mark(1, b"a").unwrap();
        own.settle(1, a, true);
        assert!(own.is_ours(1), "a's echo");
        // `b` is written while the check is out, and settles before its
        // answer: the answer may predate `b`.
        let b = own.mark(1, b"b").unwrap();
        assert_eq!(own.answered(1, Some(digest(b"a"))), Answer::Again);
        own.settle(1, b, true);
        assert_eq!(own.answered(1, Some(digest(b"a"))), Answer::Again);
        // Nothing of ours since the last read was asked: decided.
        assert_eq!(own.answered(1, Some(digest(b"a"))), Answer::Decide);
        // A check never reads more than MAX_READS times.
        assert!(own.is_ours(1), "b's echo");
        let mut reads = 1;
        loop {
            let c = own.mark(1, b"c").unwrap();
            let answer = own.answered(1, None);
            own.settle(1, c, true);
            if answer == Answer::Decide {
                break;
            }
            reads += 1;
        }
        assert_eq!(reads, MAX_READS);
    }

    #[test]
    fn stale_marks_are_swept() {
        let own = OwnWrites::new();
        own.set_suspended(false);
        for fp in 0..=SWEEP_ABOVE as u128 {
            let id = own.mark(fp, b"v").unwrap();
            own.settle(fp, id, true);
        }
        for m in own.state.lock().marks.values_mut() {
            m.touched = Instant::now().checked_sub(MARK_LIFETIME);
        }
        own.mark(u128::MAX, b"v").unwrap();
        assert_eq!(own.state.lock().marks.len(), 1);
    }
}
