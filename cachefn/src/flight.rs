//! Single-flight: concurrent callers of one cold key wait for one
//! computation, whether they block (sync calls) or await (async calls).
//!
//! There is one table per cache for every entry point (memoized sync and
//! async calls, `get_or_set` and `get_or_set_async`), and one payload type
//! for waiters: the value as the local tier keeps it (a [`Payload`]), which
//! each waiter reads back as its own type through the codec's checks. A
//! waiter of another type than the leader's therefore gets a miss, never
//! the leader's bytes or a value of the wrong type.
//!
//! Flights are found by the key's fingerprint, and joined only by callers
//! of the same key text: a caller whose fingerprint collides with another
//! key's flight computes on its own rather than wait for another key's
//! value.
//!
//! The leader is a guard: when it is dropped unfinished (its body panicked,
//! or its future was cancelled), the waiters wake and one of them leads.
//!
//! A waiter waits at most `Flights::max_wait` (twelve lease lifetimes of
//! the cache, 120 s by default: twice what a shared single-flight waiter
//! waits for another process, so that a leader that gave up on another
//! process computes and hands its value over), then
//! computes the key itself. This bounds what cannot be detected: a body
//! that calls its own key from a thread it joins, or from a tokio task it
//! spawns and awaits (the inner call waits for the outer, which waits for
//! the inner). Such a call runs its body a second time after the wait,
//! and returns: it never hangs. Re-entry on the leader's own thread or
//! task is detected and runs at once, uncached. What remains:
//! a body that re-enters that way waits `max_wait` each time, and a
//! leader whose body legitimately takes longer than `max_wait` gets a
//! second, concurrent computation from each waiter that gave up.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use cachefn_backends::sync::{Condvar, Mutex};

use crate::entry::Payload;
use crate::io::Io;

const SHARDS: usize = 16;

/// In-flight computations of one cache, by key fingerprint.
pub(crate) struct Flights {
    shards: [Mutex<HashMap<u128, Arc<Flight>>>; SHARDS],
    /// How long a waiter waits for a leader before computing itself.
    max_wait: Duration,
}

/// Who leads a flight: a thread (a sync call, or an async call outside any
/// tokio task) or a tokio task (an async call, which may be suspended and
/// move between threads).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LeaderId {
    Thread(ThreadId),
    #[cfg(feature = "tokio")]
    Task(tokio::task::Id),
}

impl LeaderId {
    /// The leader a caller waiting this way would be: a sync leader runs
    /// on its thread to the end; an async leader is a task, which may be
    /// suspended and resumed elsewhere.
    fn of(io: Io) -> LeaderId {
        match io {
            Io::Blocking => LeaderId::Thread(thread::current().id()),
            Io::Async => LeaderId::current(),
        }
    }

    fn current() -> LeaderId {
        #[cfg(feature = "tokio")]
        if let Some(id) = tokio::task::try_id() {
            return LeaderId::Task(id);
        }
        LeaderId::Thread(thread::current().id())
    }
}

struct Flight {
    /// The key (its stored text) being computed.
    key: Box<str>,
    owner: LeaderId,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Callers waiting (blocked or awaiting).
    waiters: usize,
    /// The wakers of awaiting callers, by the id they were given.
    wakers: Vec<(u64, Waker)>,
    next_waker: u64,
    /// `None` while the leader runs.
    outcome: Option<Outcome>,
}

#[derive(Clone)]
enum Outcome {
    /// The value, for every waiter.
    Value(Payload),
    /// The leader ended with nothing to share (its result is not cached, an
    /// `Err` say): waiters compute their own, at the same time.
    RunYourselves,
    /// The leader panicked or was dropped: waiters try again, and one leads.
    Retry,
}

/// What [`Flights::join`] decided for a caller.
pub(crate) enum Joined<'a> {
    /// Compute the value, then [`Leader::finish`].
    Lead(Leader<'a>),
    /// Another caller computed (or read) it.
    Value(Payload),
    /// Compute without waiting: this caller is already computing this key
    /// further up its stack (a function that re-enters its own key), waiting
    /// would block an executor thread on one of its own tasks, the
    /// leader's result could not be shared, or the leader took longer than
    /// `Flights::max_wait`.
    Alone,
}

/// The caller that computes a key. Dropping it without
/// [`finish`](Leader::finish) (a panic in the body, a cancelled future)
/// releases the waiters, and one of them computes instead.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    fp: u128,
    flight: Arc<Flight>,
}

impl Flights {
    /// Flights whose waiters wait at most `max_wait` for their leader.
    pub(crate) fn new(max_wait: Duration) -> Self {
        Flights {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            max_wait,
        }
    }

    fn shard(&self, fp: u128) -> &Mutex<HashMap<u128, Arc<Flight>>> {
        &self.shards[(fp as usize) % SHARDS]
    }

    /// Lead the flight of `key` (under `fp`) if nobody does; never waits.
    /// `None`: another caller is computing the key, or another key under
    /// the same fingerprint (a refresh of a stale or nearly expired entry
    /// then serves the entry it has instead of waiting).
    pub(crate) fn try_lead(&self, io: Io, fp: u128, key: &str) -> Option<Leader<'_>> {
        let mut map = self.shard(fp).lock();
        if map.contains_key(&fp) {
            return None;
        }
        Some(self.lead(&mut map, fp, key, LeaderId::of(io)))
    }

    /// Register a new flight of `key` under `fp`, led by `owner`, in its
    /// shard's `map`.
    fn lead(
        &self,
        map: &mut HashMap<u128, Arc<Flight>>,
        fp: u128,
        key: &str,
        owner: LeaderId,
    ) -> Leader<'_> {
        let flight = Arc::new(Flight {
            key: key.into(),
            owner,
            state: Mutex::new(State::default()),
            done: Condvar::new(),
        });
        map.insert(fp, flight.clone());
        Leader {
            flights: self,
            fp,
            flight,
        }
    }

    /// Lead the computation of `key` (under `fp`), or wait for the caller
    /// that leads it: blocking this thread ([`Io::Blocking`]; the future is
    /// then ready at its first poll) or awaiting ([`Io::Async`]; cancel-safe:
    /// a waiter dropped while waiting leaves nothing behind). A flight of
    /// another key under the same fingerprint is never joined: the caller
    /// computes [`Joined::Alone`].
    pub(crate) async fn join(&self, io: Io, fp: u128, key: &str) -> Joined<'_> {
        let thread = LeaderId::Thread(thread::current().id());
        let me = LeaderId::of(io);
        // One bound for the whole join, retries included.
        let give_up = Instant::now() + self.max_wait;
        loop {
            let flight = {
                let mut map = self.shard(fp).lock();
                match map.get(&fp) {
                    Some(f) if *f.key == *key => f.clone(),
                    Some(_) => return Joined::Alone,
                    None => return Joined::Lead(self.lead(&mut map, fp, key, me)),
                }
            };
            // Re-entered: the leader is this task, or this thread further up
            // its stack (an async call driven by a sync body, say).
            if flight.owner == me || flight.owner == thread {
                return Joined::Alone;
            }
            let outcome = match io {
                Io::Blocking => {
                    if blocking_would_stall(flight.owner) {
                        return Joined::Alone;
                    }
                    flight.wait_blocking(give_up)
                }
                Io::Async => {
                    Wait {
                        flight: &flight,
                        id: None,
                        give_up,
                        timer: None,
                    }
                    .await
                }
            };
            match outcome {
                Some(Outcome::Value(value)) => return Joined::Value(value),
                Some(Outcome::RunYourselves) => return Joined::Alone,
                // The leader is gone without a result: try to lead.
                Some(Outcome::Retry) => {}
                None => {
                    tracing::warn!(target: "cachefn", waited = ?self.max_wait,
                        "single-flight: the caller computing this key has not finished in time \
                         (a long body, or a body that calls its own key from another thread or \
                         task and waits for it); computing it here too");
                    return Joined::Alone;
                }
            }
        }
    }

    /// How many keys are being computed now (for tests).
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// A blocking wait for a flight led by a tokio task, from a thread that
/// runs a tokio runtime, could stall the very executor the leader needs (a
/// sync memoized function called from async code on a `current_thread`
/// runtime): such a caller computes on its own instead.
fn blocking_would_stall(owner: LeaderId) -> bool {
    #[cfg(feature = "tokio")]
    if matches!(owner, LeaderId::Task(_)) {
        return tokio::runtime::Handle::try_current().is_ok();
    }
    let _ = owner;
    false
}

impl Flight {
    /// The leader's outcome, or `None` if it has none by `give_up`.
    fn wait_blocking(&self, give_up: Instant) -> Option<Outcome> {
        let mut state = self.state.lock();
        if let Some(outcome) = &state.outcome {
            return Some(outcome.for_late_waiter());
        }
        state.waiters += 1;
        while state.outcome.is_none() {
            if self.done.wait_until(&mut state, give_up).timed_out() {
                break;
            }
        }
        state.waiters -= 1;
        state.outcome.clone()
    }
}

impl Outcome {
    /// The outcome for a caller that took the flight from the table but
    /// registered as a waiter only after the leader had ended (the leader
    /// saw no waiter, or not this one). `RunYourselves` was not meant for
    /// it: the leader may have stored the value since, and a caller that
    /// ran the body at once would run it again (a third run of a key whose
    /// leader was cancelled, seen under load). It retries instead, and
    /// leads a new flight that reads what the leader stored first.
    fn for_late_waiter(&self) -> Outcome {
        match self {
            Outcome::RunYourselves => Outcome::Retry,
            other => other.clone(),
        }
    }
}

/// An awaiting waiter: registered while pending, unregistered when dropped.
/// Ready with the leader's outcome, or with `None` at `give_up` (woken by
/// the lease keeper's timer thread, which needs no runtime).
struct Wait<'f> {
    flight: &'f Flight,
    id: Option<u64>,
    give_up: Instant,
    /// The waker the timer wakes at `give_up`.
    timer: Option<Waker>,
}

impl Future for Wait<'_> {
    type Output = Option<Outcome>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        let mut state = self.flight.state.lock();
        if let Some(outcome) = &state.outcome {
            let outcome = match self.id.take() {
                Some(id) => {
                    let outcome = outcome.clone();
                    state.waiters -= 1;
                    state.wakers.retain(|(i, _)| *i != id);
                    outcome
                }
                None => outcome.for_late_waiter(),
            };
            return Poll::Ready(Some(outcome));
        }
        if Instant::now() >= self.give_up {
            if let Some(id) = self.id.take() {
                state.waiters -= 1;
                state.wakers.retain(|(i, _)| *i != id);
            }
            return Poll::Ready(None);
        }
        match self.id {
            Some(id) => {
                if let Some((_, w)) = state.wakers.iter_mut().find(|(i, _)| *i == id) {
                    w.clone_from(cx.waker());
                }
            }
            None => {
                let id = state.next_waker;
                state.next_waker += 1;
                state.waiters += 1;
                state.wakers.push((id, cx.waker().clone()));
                drop(state);
                self.id = Some(id);
            }
        }
        if !self.timer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let at = self.give_up;
            if !crate::keeper::wake_at(at, cx.waker().clone()) {
                // No timer thread: the bound cannot be kept awaiting; the
                // leader's outcome still wakes this waiter.
                self.give_up = far_future();
            }
            self.timer = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// An instant no wait reaches.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut state = self.flight.state.lock();
            state.waiters -= 1;
            state.wakers.retain(|(i, _)| *i != id);
        }
    }
}

impl Leader<'_> {
    /// End the flight. `share` is called only when callers are waiting, to
    /// hand them the value; `None` makes them compute their own, in parallel.
    pub(crate) fn finish(self, share: impl FnOnce() -> Option<Payload>) {
        self.end(Some(share));
    }

    /// `share: None` (a drop without `finish`): the waiters retry.
    fn end(&self, share: Option<impl FnOnce() -> Option<Payload>>) {
        {
            let mut map = self.flights.shard(self.fp).lock();
            if map
                .get(&self.fp)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.fp);
            }
        }
        let mut state = self.flight.state.lock();
        if state.outcome.is_some() {
            return;
        }
        state.outcome = Some(match share {
            None => Outcome::Retry,
            Some(_) if state.waiters == 0 => Outcome::RunYourselves,
            Some(share) => share().map_or(Outcome::RunYourselves, Outcome::Value),
        });
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        self.flight.done.notify_all();
        for (_, w) in wakers {
            w.wake();
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.end(None::<fn() -> Option<Payload>>);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::block_on;
    use cachefn_backends::LocalValue;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Num(u32);
    impl LocalValue for Num {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn encode(&self) -> Result<Vec<u8>, cachefn_backends::Error> {
            Ok(Vec::new())
        }
        fn size_hint(&self) -> usize {
            4
        }
    }

    /// Long enough that no test's waiter gives up.
    const WAIT: std::time::Duration = std::time::Duration::from_secs(600);

    fn num(p: &Payload) -> Option<u32> {
        p.as_any().downcast_ref::<Num>().map(|n| n.0)
    }

    /// A leader of `fp` taken on another thread (a leader on the test's
    /// thread would make its waiters compute alone, as a re-entered key).
    fn lead_elsewhere(flights: &Flights, fp: u128) -> Leader<'_> {
        let joined = thread::scope(|s| {
            s.spawn(|| block_on(flights.join(Io::Blocking, fp, "k")))
                .join()
                .unwrap()
        });
        match joined {
            Joined::Lead(leader) => leader,
            _ => panic!("nobody else leads"),
        }
    }

    /// Wait (10 s at most) until `leader`'s flight has a waiter.
    fn until_waited_on(leader: &Leader<'_>) {
        let start = std::time::Instant::now();
        while leader.flight.state.lock().waiters == 0 {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn many_waiters_one_computation() {
        let flights = Flights::new(WAIT);
        let runs = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(8);
        thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    match block_on(flights.join(Io::Blocking, 7, "k")) {
                        Joined::Lead(l) => {
                            runs.fetch_add(1, Ordering::SeqCst);
                            thread::sleep(std::time::Duration::from_millis(100));
                            l.finish(|| Some(Arc::new(Num(5))));
                        }
                        Joined::Value(v) => assert_eq!(num(&v), Some(5)),
                        Joined::Alone => panic!("not re-entrant"),
                    }
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[test]
    fn reentrant_join_does_not_wait() {
        let flights = Flights::new(WAIT);
        let Joined::Lead(_leader) = block_on(flights.join(Io::Blocking, 1, "k")) else {
            panic!()
        };
        assert!(matches!(
            block_on(flights.join(Io::Blocking, 1, "k")),
            Joined::Alone
        ));
        assert!(matches!(
            block_on(flights.join(Io::Async, 1, "k")),
            Joined::Alone
        ));
    }

    #[test]
    fn a_dropped_leader_hands_over_to_a_blocked_waiter() {
        let flights = Flights::new(WAIT);
        let Joined::Lead(leader) = block_on(flights.join(Io::Blocking, 3, "k")) else {
            panic!()
        };
        thread::scope(|s| {
            let waiter = s.spawn(|| match block_on(flights.join(Io::Blocking, 3, "k")) {
                Joined::Lead(l) => l.finish(|| None),
                _ => panic!("the waiter leads after the leader is dropped"),
            });
            until_waited_on(&leader);
            drop(leader);
            waiter.join().unwrap();
        });
        assert_eq!(flights.in_flight(), 0);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn an_awaiting_waiter_gets_a_blocking_leaders_value() {
        let flights = Arc::new(Flights::new(WAIT));
        let Joined::Lead(leader) = block_on(flights.join(Io::Blocking, 9, "k")) else {
            panic!()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let f2 = flights.clone();
        let waiter = thread::spawn(move || {
            rt.block_on(async move {
                match f2.join(Io::Async, 9, "k").await {
                    Joined::Value(v) => num(&v),
                    _ => None,
                }
            })
        });
        // Finish only once the waiter waits (a finish before it joins would
        // leave it a fresh flight to lead, and the test nothing to check).
        until_waited_on(&leader);
        leader.finish(|| Some(Arc::new(Num(11))));
        assert_eq!(waiter.join().unwrap(), Some(11));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn a_cancelled_waiter_leaves_nothing_behind() {
        let flights = Flights::new(WAIT);
        let leader = lead_elsewhere(&flights, 4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let timed_out = tokio::time::timeout(
                std::time::Duration::from_millis(20),
                flights.join(Io::Async, 4, "k"),
            )
            .await;
            assert!(timed_out.is_err());
        });
        assert_eq!(leader.flight.state.lock().waiters, 0);
        assert!(leader.flight.state.lock().wakers.is_empty());
        leader.finish(|| panic!("no waiter: nothing to share"));
    }

    /// A caller that took a flight from the table, then registered only
    /// after its leader ended with no waiter, retries (and finds what the
    /// leader stored) instead of running the body too: blocking or
    /// awaiting. Before, it got `RunYourselves` and ran the body again.
    #[test]
    fn a_waiter_that_registers_after_the_end_retries() {
        for io in [Io::Blocking, Io::Async] {
            let flights = Flights::new(WAIT);
            let leader = lead_elsewhere(&flights, 6);
            // What a late caller holds: the flight, taken from the table
            // before the leader removed it.
            let flight = leader.flight.clone();
            leader.finish(|| panic!("no waiter: nothing to share"));
            let outcome = match io {
                Io::Blocking => flight.wait_blocking(far_future()).unwrap(),
                Io::Async => block_on(Wait {
                    flight: &flight,
                    id: None,
                    give_up: far_future(),
                    timer: None,
                })
                .unwrap(),
            };
            assert!(matches!(outcome, Outcome::Retry), "{io:?}");
            // A waiter that registered in time is told to run its own.
            let leader = lead_elsewhere(&flights, 6);
            thread::scope(|s| {
                let waiter = s.spawn(|| block_on(flights.join(io, 6, "k")));
                until_waited_on(&leader);
                leader.finish(|| None);
                assert!(matches!(waiter.join().unwrap(), Joined::Alone));
            });
        }
    }

    /// Two keys under one fingerprint: the second never waits for, or is
    /// handed, the first one's value.
    #[test]
    fn a_colliding_key_computes_alone() {
        let flights = Flights::new(WAIT);
        let Joined::Lead(_leader) = block_on(flights.join(Io::Blocking, 5, "a")) else {
            panic!("the first caller leads");
        };
        std::thread::scope(|s| {
            let other = s.spawn(|| block_on(flights.join(Io::Blocking, 5, "b")));
            assert!(matches!(other.join().unwrap(), Joined::Alone));
        });
        assert!(flights.try_lead(Io::Blocking, 5, "b").is_none());
    }

    /// A leader that never finishes (its body waits for a thread or task
    /// that called its own key): waiters compute alone after `max_wait`.
    #[test]
    fn waiters_give_up_on_a_leader_after_max_wait() {
        for io in [Io::Blocking, Io::Async] {
            let flights = Flights::new(std::time::Duration::from_millis(50));
            let leader = lead_elsewhere(&flights, 8);
            let start = std::time::Instant::now();
            let joined = thread::scope(|s| s.spawn(|| block_on(flights.join(io, 8, "k"))).join());
            assert!(matches!(joined.unwrap(), Joined::Alone), "{io:?}");
            assert!(start.elapsed() >= std::time::Duration::from_millis(50));
            let state = leader.flight.state.lock();
            assert_eq!((state.waiters, state.wakers.len()), (0, 0), "{io:?}");
        }
    }
}
