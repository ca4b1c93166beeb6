//! Async single-flight: tasks awaiting one cold key wait for one
//! computation. The leader is a guard: when its future is dropped
//! (cancelled, timed out) or panics, the waiters wake and one of them leads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::flight::Shared;

const SHARDS: usize = 16;

/// What a finished leader left: `Some(value)` for every waiter, or `None`
/// when its result is not shared (an `Err`): waiters compute their own.
type Outcome = Option<Shared>;

/// In-flight async computations of one cache, by key fingerprint.
pub(crate) struct AsyncFlights {
    shards: [Mutex<HashMap<u128, Entry>>; SHARDS],
    next_id: AtomicU64,
}

struct Entry {
    id: u64,
    /// The leader's task, to let a task that re-enters its own key run alone.
    task: Option<tokio::task::Id>,
    outcome: watch::Receiver<Option<Outcome>>,
}

/// What [`AsyncFlights::join`] decided for a task.
pub(crate) enum AsyncJoined<'a> {
    /// Compute the value, then [`AsyncLeader::finish`].
    Lead(AsyncLeader<'a>),
    /// Another task computed it.
    Value(Shared),
    /// Compute without waiting (re-entered key, or an unshared result).
    Alone,
}

/// The task that computes a key; dropping it unfinished lets a waiter lead.
pub(crate) struct AsyncLeader<'a> {
    flights: &'a AsyncFlights,
    fp: u128,
    id: u64,
    outcome: watch::Sender<Option<Outcome>>,
}

impl AsyncFlights {
    pub(crate) fn new() -> Self {
        AsyncFlights {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(0),
        }
    }

    fn shard(&self, fp: u128) -> &Mutex<HashMap<u128, Entry>> {
        &self.shards[(fp as usize) % SHARDS]
    }

    /// Lead the computation of `fp`, or wait for the task that leads it.
    /// Cancel-safe: a waiter dropped while waiting leaves nothing behind.
    pub(crate) async fn join(&self, fp: u128) -> AsyncJoined<'_> {
        let me = tokio::task::try_id();
        loop {
            let mut outcome = {
                let mut map = self.shard(fp).lock();
                match map.get(&fp) {
                    Some(entry) if me.is_some() && entry.task == me => return AsyncJoined::Alone,
                    Some(entry) => entry.outcome.clone(),
                    None => {
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        map.insert(
                            fp,
                            Entry {
                                id,
                                task: me,
                                outcome: rx,
                            },
                        );
                        return AsyncJoined::Lead(AsyncLeader {
                            flights: self,
                            fp,
                            id,
                            outcome: tx,
                        });
                    }
                }
            };
            let ended = match outcome.wait_for(Option::is_some).await {
                Ok(seen) => seen.clone(),
                // The leader is gone without an outcome: try to lead.
                Err(_) => None,
            };
            match ended {
                Some(Some(value)) => return AsyncJoined::Value(value),
                Some(None) => return AsyncJoined::Alone,
                None => {}
            }
        }
    }
}

impl AsyncLeader<'_> {
    fn leave(&self) {
        let mut map = self.flights.shard(self.fp).lock();
        if map.get(&self.fp).is_some_and(|e| e.id == self.id) {
            map.remove(&self.fp);
        }
    }

    /// End the flight. `share` is called only when tasks are waiting.
    pub(crate) fn finish(self, share: impl FnOnce() -> Option<Shared>) {
        self.leave();
        let outcome = if self.outcome.receiver_count() == 0 {
            None
        } else {
            share()
        };
        self.outcome.send_replace(Some(outcome));
    }
}

impl Drop for AsyncLeader<'_> {
    fn drop(&mut self) {
        // After `finish` this finds nothing to remove; otherwise the sender
        // drops unsent and every waiter retries.
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_dropped_leader_hands_over() {
        block_on(async {
            let flights = AsyncFlights::new();
            let AsyncJoined::Lead(leader) = flights.join(1).await else {
                panic!("first joiner leads")
            };
            drop(leader);
            let AsyncJoined::Lead(second) = flights.join(1).await else {
                panic!("the key is free again")
            };
            second.finish(|| Some(Arc::new(3u8)));
            assert!(matches!(flights.join(1).await, AsyncJoined::Lead(_)));
        });
    }
}
