//! Single-flight: concurrent callers of one cold key wait for one computation.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::{self, ThreadId};

use parking_lot::{Condvar, Mutex};

/// A computed value handed from the leader to its waiters.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

const SHARDS: usize = 16;

/// In-flight computations of one cache, by key fingerprint.
pub(crate) struct Flights {
    shards: [Mutex<HashMap<u128, Arc<Flight>>>; SHARDS],
}

struct Flight {
    leader: ThreadId,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    waiters: usize,
    /// `None` while the leader runs.
    outcome: Option<Outcome>,
}

enum Outcome {
    /// The value, for every waiter.
    Value(Shared),
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
    /// Another caller computed it.
    Value(Shared),
    /// Compute without waiting: this thread is already computing this key
    /// further up its stack (a function that re-enters its own key), or the
    /// leader's result could not be shared.
    Alone,
}

/// The caller that computes a key. Dropping it without
/// [`finish`](Leader::finish) (a panic in the body) releases the waiters,
/// and one of them computes instead.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    fp: u128,
    flight: Arc<Flight>,
}

impl Flights {
    pub(crate) fn new() -> Self {
        Flights {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    fn shard(&self, fp: u128) -> &Mutex<HashMap<u128, Arc<Flight>>> {
        &self.shards[(fp as usize) % SHARDS]
    }

    /// Lead the computation of `fp`, or wait for the caller that leads it.
    pub(crate) fn join(&self, fp: u128) -> Joined<'_> {
        let me = thread::current().id();
        loop {
            let flight = {
                let mut map = self.shard(fp).lock();
                match map.get(&fp) {
                    Some(f) => f.clone(),
                    None => {
                        let flight = Arc::new(Flight {
                            leader: me,
                            state: Mutex::new(State::default()),
                            done: Condvar::new(),
                        });
                        map.insert(fp, flight.clone());
                        return Joined::Lead(Leader {
                            flights: self,
                            fp,
                            flight,
                        });
                    }
                }
            };
            if flight.leader == me {
                return Joined::Alone;
            }
            let mut state = flight.state.lock();
            state.waiters += 1;
            while state.outcome.is_none() {
                flight.done.wait(&mut state);
            }
            match &state.outcome {
                Some(Outcome::Value(value)) => return Joined::Value(value.clone()),
                Some(Outcome::RunYourselves) => return Joined::Alone,
                // The leader is gone without a result: try to lead.
                _ => {}
            }
        }
    }
}

impl Leader<'_> {
    /// End the flight. `share` is called only when callers are waiting, to
    /// hand them the value; `None` makes them compute their own, in parallel.
    pub(crate) fn finish(self, share: impl FnOnce() -> Option<Shared>) {
        self.end(Some(share));
    }

    /// `share: None` (a drop without `finish`): the waiters retry.
    fn end(&self, share: Option<impl FnOnce() -> Option<Shared>>) {
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
        self.flight.done.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.end(None::<fn() -> Option<Shared>>);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn many_waiters_one_computation() {
        let flights = Flights::new();
        let runs = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(8);
        thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    match flights.join(7) {
                        Joined::Lead(l) => {
                            runs.fetch_add(1, Ordering::SeqCst);
                            thread::sleep(std::time::Duration::from_millis(100));
                            l.finish(|| Some(Arc::new(5u32)));
                        }
                        Joined::Value(v) => assert_eq!(v.downcast_ref::<u32>(), Some(&5)),
                        Joined::Alone => panic!("not re-entrant"),
                    }
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn reentrant_join_does_not_wait() {
        let flights = Flights::new();
        let Joined::Lead(_leader) = flights.join(1) else {
            panic!()
        };
        assert!(matches!(flights.join(1), Joined::Alone));
    }
}
