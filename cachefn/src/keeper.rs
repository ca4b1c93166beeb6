//! One background thread per process, started on first use, that needs no
//! async runtime: it renews the leases this process holds
//! (`single_flight = "shared"`), sends the releases that dropped guards
//! handed it (nothing blocks inside `Drop`), and wakes awaiting waiters at
//! their deadlines (a waiter of another process's value, or of another
//! caller's in this process).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use cachefn_backends::sync::{Condvar, Mutex};
use cachefn_backends::Backend;

/// Wake `waker` at `at`, from the keeper's thread (no runtime needed);
/// `false` if that thread could not be started.
pub(crate) fn wake_at(at: Instant, waker: Waker) -> bool {
    match Keeper::get() {
        Some(keeper) => {
            keeper.wake_at(at, waker);
            true
        }
        None => false,
    }
}

/// How often a lease of `ttl` is renewed: three times per lifetime.
pub(crate) fn renew_every(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(10))
}

/// One background thread per process: renews the leases this process holds,
/// sends the releases that guards handed over, and wakes awaiting waiters
/// at their deadlines. Started on first use; it needs no async runtime.
pub(crate) struct Keeper {
    state: Mutex<KeeperState>,
    work: Condvar,
}

#[derive(Default)]
struct KeeperState {
    next_id: u64,
    held: HashMap<u64, Renewal>,
    releases: Vec<Release>,
    timers: Vec<(Instant, Waker)>,
}

/// A lease being renewed.
pub(crate) struct Renewal {
    pub(crate) shared: Arc<dyn Backend>,
    pub(crate) key: Arc<str>,
    pub(crate) token: Arc<[u8]>,
    pub(crate) ttl: Duration,
    /// When to renew it next.
    pub(crate) due: Instant,
}

/// A lease to give up.
pub(crate) struct Release {
    pub(crate) shared: Arc<dyn Backend>,
    pub(crate) key: Arc<str>,
    pub(crate) token: Arc<[u8]>,
}

impl Keeper {
    /// The process's keeper, its thread started; `None` if no thread could
    /// be started (logged once): shared single-flight is then off.
    pub(crate) fn get() -> Option<&'static Keeper> {
        static KEEPER: OnceLock<Option<&'static Keeper>> = OnceLock::new();
        *KEEPER.get_or_init(|| {
            let keeper: &'static Keeper = Box::leak(Box::new(Keeper {
                state: Mutex::new(KeeperState::default()),
                work: Condvar::new(),
            }));
            match std::thread::Builder::new()
                .name("cachefn-lease".into())
                .spawn(move || keeper.run())
            {
                Ok(_) => Some(keeper),
                Err(e) => {
                    tracing::error!(target: "cachefn", error = %e,
                        "cannot start the lease thread: single_flight = \"shared\" computes once per process");
                    None
                }
            }
        })
    }

    pub(crate) fn hold(&self, held: Renewal) -> u64 {
        let mut s = self.state.lock();
        s.next_id += 1;
        let id = s.next_id;
        s.held.insert(id, held);
        drop(s);
        self.work.notify_one();
        id
    }

    pub(crate) fn forget(&self, id: u64) {
        self.state.lock().held.remove(&id);
    }

    pub(crate) fn release_later(&self, release: Release) {
        self.state.lock().releases.push(release);
        self.work.notify_one();
    }

    pub(crate) fn wake_at(&self, at: Instant, waker: Waker) {
        self.state.lock().timers.push((at, waker));
        self.work.notify_one();
    }

    fn run(&self) {
        let mut s = self.state.lock();
        loop {
            let now = Instant::now();
            let mut due_timers = Vec::new();
            s.timers.retain(|(at, w)| {
                let due = *at <= now;
                if due {
                    due_timers.push(w.clone());
                }
                !due
            });
            let releases = std::mem::take(&mut s.releases);
            let mut renewals = Vec::new();
            for held in s.held.values_mut() {
                if held.due <= now {
                    held.due = now + renew_every(held.ttl);
                    renewals.push((
                        held.shared.clone(),
                        held.key.clone(),
                        held.token.clone(),
                        held.ttl,
                    ));
                }
            }
            if due_timers.is_empty() && releases.is_empty() && renewals.is_empty() {
                let next = s
                    .timers
                    .iter()
                    .map(|(at, _)| *at)
                    .chain(s.held.values().map(|h| h.due))
                    .min();
                match next {
                    Some(at) => {
                        self.work.wait_until(&mut s, at);
                    }
                    None => self.work.wait(&mut s),
                }
                continue;
            }
            drop(s);
            for w in due_timers {
                w.wake();
            }
            for r in releases {
                if let Err(e) = r.shared.lease_release(&r.key, &r.token) {
                    tracing::debug!(target: "cachefn", key = %r.key, error = %e,
                        "shared single-flight: a lease could not be released; it lapses by itself");
                }
            }
            for (shared, key, token, ttl) in renewals {
                match shared.lease_renew(&key, &token, ttl) {
                    Ok(true) => {}
                    Ok(false) => tracing::debug!(target: "cachefn", key = %key,
                        "shared single-flight: the lease was lost (lapsed or cleared) while the body ran"),
                    Err(e) => tracing::debug!(target: "cachefn", key = %key, error = %e,
                        "shared single-flight: renewing a lease failed"),
                }
            }
            s = self.state.lock();
        }
    }
}
