//! A bounded pool of connections for the blocking clients (Redis,
//! memcached): at most `max_open` connections exist at once, at most
//! `max_idle` of them wait for reuse, and a caller beyond `max_open` waits
//! for one to come back, until its call's deadline. Waiters are served in
//! the order they came (tickets), so a thread that just gave a connection
//! back cannot take it again ahead of threads already waiting.

use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

pub(crate) struct Conns<C> {
    state: Mutex<State<C>>,
    /// Signalled when a connection comes back or a slot frees up.
    freed: Condvar,
    max_open: usize,
    max_idle: usize,
}

struct State<C> {
    idle: Vec<C>,
    /// Connections that exist: idle, in use, or being opened.
    open: usize,
    /// The next ticket to hand a waiter, and the ticket whose turn it is;
    /// equal when nobody waits.
    next: u64,
    turn: u64,
    /// Tickets whose holders gave up (their deadline passed) before their turn.
    abandoned: std::collections::BTreeSet<u64>,
}

impl<C> State<C> {
    /// The next waiter's turn, skipping those who gave up.
    fn advance(&mut self) {
        self.turn += 1;
        while self.abandoned.remove(&self.turn) {
            self.turn += 1;
        }
    }
}

/// All `max_open` connections stayed busy until the caller's deadline.
#[derive(Debug)]
pub(crate) struct Busy {
    pub max_open: usize,
    pub waited: Duration,
}

impl<C> Conns<C> {
    pub fn new(max_open: usize, max_idle: usize) -> Self {
        let max_open = max_open.max(1);
        Conns {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                next: 0,
                turn: 0,
                abandoned: std::collections::BTreeSet::new(),
            }),
            freed: Condvar::new(),
            max_open,
            max_idle: max_idle.clamp(1, max_open),
        }
    }

    /// An idle connection, or a slot to open one in (`lease.conn` is
    /// `None`): waits while all `max_open` are in use, until `deadline`.
    pub fn lease(&self, deadline: Instant) -> Result<Lease<'_, C>, Busy> {
        let start = Instant::now();
        let mut state = self.state.lock();
        // Nobody waits: take one at once if there is one.
        let mut ticket = None;
        loop {
            let my_turn = match ticket {
                None => state.next == state.turn,
                Some(t) => state.turn == t,
            };
            if my_turn && (!state.idle.is_empty() || state.open < self.max_open) {
                if ticket.is_some() {
                    state.advance();
                    // The next waiter may be served too (more than one came back).
                    self.freed.notify_all();
                }
                let conn = state.idle.pop();
                if conn.is_none() {
                    state.open += 1;
                }
                return Ok(Lease { conns: self, conn });
            }
            let t = *ticket.get_or_insert_with(|| {
                state.next += 1;
                state.next - 1
            });
            if self.freed.wait_until(&mut state, deadline).timed_out() {
                if state.turn == t {
                    state.advance();
                } else if state.turn < t {
                    state.abandoned.insert(t);
                }
                self.freed.notify_all();
                return Err(Busy {
                    max_open: self.max_open,
                    waited: start.elapsed(),
                });
            }
        }
    }

    /// Drop every idle connection (the server restarted: they are all dead).
    #[cfg_attr(not(feature = "memcached"), allow(dead_code))]
    pub fn clear_idle(&self) {
        let dropped = {
            let mut state = self.state.lock();
            let dropped = std::mem::take(&mut state.idle);
            state.open -= dropped.len();
            dropped
        };
        if !dropped.is_empty() {
            self.freed.notify_all();
        }
        drop(dropped);
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.open, state.idle.len())
    }
}

/// A connection (or the right to open one) taken from [`Conns`]. Dropped
/// without [`keep`](Lease::keep), its connection is closed and its slot
/// freed: a connection that failed mid-call never goes back.
pub(crate) struct Lease<'a, C> {
    conns: &'a Conns<C>,
    pub conn: Option<C>,
}

impl<C> Lease<'_, C> {
    /// Give the connection back for reuse (or close it when `max_idle`
    /// connections are already idle).
    pub fn keep(mut self) {
        let Some(conn) = self.conn.take() else {
            return; // Drop frees the slot.
        };
        let surplus = {
            let mut state = self.conns.state.lock();
            if state.idle.len() < self.conns.max_idle {
                state.idle.push(conn);
                None
            } else {
                state.open -= 1;
                Some(conn)
            }
        };
        self.conns.freed.notify_all();
        drop(surplus);
        // Accounted for: Drop has nothing left to do.
        std::mem::forget(self);
    }
}

impl<C> Drop for Lease<'_, C> {
    fn drop(&mut self) {
        self.conns.state.lock().open -= 1;
        self.conns.freed.notify_all();
        drop(self.conn.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_waits_and_gives_back() {
        let conns: Conns<u32> = Conns::new(2, 1);
        let soon = || Instant::now() + Duration::from_millis(50);
        let mut a = conns.lease(soon()).unwrap();
        a.conn = Some(1);
        let mut b = conns.lease(soon()).unwrap();
        b.conn = Some(2);
        let busy = conns.lease(soon()).err().expect("both in use");
        assert_eq!(busy.max_open, 2);
        a.keep();
        b.keep(); // past max_idle: closed
        assert_eq!(conns.counts(), (1, 1));
        let c = conns.lease(soon()).unwrap();
        assert_eq!(c.conn, Some(1));
        drop(c); // not kept: closed
        assert_eq!(conns.counts(), (0, 0));
        let d = conns.lease(soon()).unwrap();
        assert!(d.conn.is_none(), "a slot to open one in");
        drop(d); // opening failed
        assert_eq!(conns.counts(), (0, 0));
    }

    #[test]
    fn a_waiter_gets_the_connection_given_back() {
        let conns: std::sync::Arc<Conns<u32>> = std::sync::Arc::new(Conns::new(1, 1));
        let mut held = conns.lease(Instant::now()).unwrap();
        held.conn = Some(7);
        let waiter = {
            let conns = conns.clone();
            std::thread::spawn(move || {
                let lease = conns
                    .lease(Instant::now() + Duration::from_secs(5))
                    .unwrap();
                lease.conn
            })
        };
        until_waited_on(&conns);
        held.keep();
        assert_eq!(waiter.join().unwrap(), Some(7));
    }

    /// Wait (10 s at most) until a caller of `conns` waits for a connection.
    fn until_waited_on<C>(conns: &Conns<C>) {
        let start = Instant::now();
        loop {
            {
                let state = conns.state.lock();
                if state.next > state.turn {
                    return;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(10), "nobody waits");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
