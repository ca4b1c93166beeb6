//! `single_flight = "shared"`: one computation of a cold key across every
//! process that uses the shared tier.
//!
//! Inside a process, [`Flights`](crate::flight::Flights) already makes one
//! caller per key the leader; only that leader takes part here. When its
//! plain shared read misses (a shared hit stays one `GET`), a second read
//! and its attempt at the key's **lease** in the shared tier (`SET
//! prefix:key#lease token NX PX ttl`) are one call,
//! [`Backend::get_or_lease`] (on Redis one Lua script: a cold miss costs
//! the two reads, the body's store, and nothing else the caller waits for):
//!
//! - **Taken**: the value was absent while the lease was already ours, so
//!   no value can have landed before it: it runs the body. (Where the read
//!   and the lease are separate calls, the value is read once more after
//!   the lease is taken.) The lease is renewed every `ttl / 3` while the
//!   body runs, by one background thread per process ([`Keeper`]: a sync
//!   body runs on its caller's thread, so nothing else could). The value
//!   is stored **fenced** ([`Backend::store_leased`]: on Redis one script
//!   that `SET`s the value and `DEL`s the lease only while the lease still
//!   holds our token): a holder that lost its lease (it was paused past it
//!   and another process took over, or a clear removed it) stores nothing,
//!   since its successor may have stored a value computed from newer data;
//!   it returns its own result to its callers, and keeps no local copy.
//!   A cold miss stays three round trips (read, get-or-lease, fenced
//!   store), and the release costs none. When the body returns a value
//!   that is not cached (`Err`), the caller releases the lease (compare
//!   the token, then `DEL`) before it returns, so that the next process
//!   can take over at once; when the body panics or its future is
//!   dropped, or the store fails, the background thread does, which a
//!   [`Lease`] guard hands it to (nothing blocks inside `Drop`).
//! - **Held by another process**: it waits for the value to land in the
//!   shared tier. The cache's invalidation feed (a local tier over Redis)
//!   wakes it when the value key or the lease key changes; without a feed
//!   (or when a message is missed) it polls, every 20 ms at first and at
//!   most every 200 ms. Each time it reads the value, then tries the lease
//!   again: when the lease is gone without a value (the holder's body
//!   failed, or the holder died and its lease lapsed), one waiter takes it
//!   and computes. A holder whose body returns `Err` therefore makes the
//!   other processes compute in turn, one at a time. No waiter waits
//!   forever: after six lease lifetimes (60 s by default) without a value
//!   it computes the key itself (a holder that is alive but stuck, or two
//!   shared bodies that wait on each other's keys, cost a second
//!   computation, not a hang).
//! - **No lease** (the shared tier is down, its circuit breaker is open, it
//!   refuses the command, or it is a store without leases): the leader
//!   computes at once, as with per-process single-flight. A memoized call
//!   never fails or hangs because of the lease.
//!
//! The lease key is the value's stored key and `#lease`: under the cache's
//! prefix (so `Cache::clear` and `f::clear_all` remove leases too), and no
//! key the cache builds ends that way (`#` appears in keys only before a
//! 32-digit hash). A Redis Cluster keeps it as `key{key}#lease` where that
//! puts it in its value's slot (one script for both), which
//! [`SharedFlight::changed`] recognises too.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use cachefn_backends::sync::{Condvar, Mutex};
use cachefn_backends::{clock, Backend};

use crate::io::Io;
use crate::keeper::{renew_every, Keeper, Release, Renewal};

/// How long a lease lives unless renewed: how soon the holder of a key that
/// died (a killed process) is replaced.
pub(crate) const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest lease a cache accepts.
pub(crate) const MIN_LEASE_TIMEOUT: Duration = Duration::from_millis(100);
/// What follows a stored key in its lease's key.
const LEASE_SUFFIX: &str = "#lease";
/// The first and the longest wait between two polls of a waiter.
const FIRST_POLL: Duration = Duration::from_millis(20);
const MAX_POLL: Duration = Duration::from_millis(200);
/// How many lease lifetimes a waiter waits for another process's body at
/// most (60 s by default) before it computes the value itself: a holder
/// that is alive but stuck, or two shared bodies that each wait for the
/// other's key, cost a second computation, never a call that hangs.
const MAX_WAIT_LEASES: u32 = 6;

/// A cache's side of shared single-flight: its lease lifetime, and the
/// waiters that its invalidation feed wakes.
pub(crate) struct SharedFlight {
    pub(crate) lease_timeout: Duration,
    waits: Waits,
}

impl SharedFlight {
    pub(crate) fn new(lease_timeout: Duration) -> Self {
        SharedFlight {
            lease_timeout: lease_timeout.max(MIN_LEASE_TIMEOUT),
            waits: Waits::default(),
        }
    }

    /// The feed reports that `key` (the text after the prefix) changed: wake
    /// whoever waits for it, or for the key whose lease it is. Costs one
    /// atomic load when nobody waits.
    pub(crate) fn changed(&self, key: &str) {
        if self.waits.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let key = key.strip_suffix(LEASE_SUFFIX).map_or(key, value_of_lease);
        let fp = crate::key::fingerprint(key.as_bytes());
        let watch = self.waits.map.lock().get(&fp).cloned();
        if let Some(watch) = watch {
            watch.bump();
        }
    }

    /// The feed reports a flush (or lost track): wake every waiter.
    pub(crate) fn changed_all(&self) {
        if self.waits.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let all: Vec<Arc<Watch>> = self.waits.map.lock().values().cloned().collect();
        for watch in all {
            watch.bump();
        }
    }
}

/// The value key (after the prefix) of a lease key without its suffix:
/// `text`, or a Redis Cluster's `text{prefix:text}` (see
/// `cachefn_backends`' cluster leases).
fn value_of_lease(key: &str) -> &str {
    // A prefix has no `:` (it is escaped): the first one ends it.
    if let Some((text, tag)) = key.strip_suffix('}').and_then(|k| k.split_once('{')) {
        if tag.split_once(':').is_some_and(|(_, rest)| rest == text) {
            return text;
        }
    }
    key
}

/// One process leader's attempt at a key's lease: the lease key and the
/// token it tries with, its registration for the key's changes, and how
/// long it waits. From [`SharedFlight::attempt`].
pub(crate) struct Attempt<'a> {
    keeper: &'static Keeper,
    /// The lease key (the value's stored key and [`LEASE_SUFFIX`]).
    pub(crate) key: Arc<str>,
    pub(crate) token: Arc<[u8]>,
    pub(crate) lease_timeout: Duration,
    /// Registered before the first try, so that no wake-up between a lost
    /// try and the wait is missed.
    watch: Watching<'a>,
    pause: Duration,
    give_up: Instant,
}

impl SharedFlight {
    /// Begin an attempt at the lease of the value stored under `stored`
    /// (whose text has fingerprint `fp`). `None` when no lease can be kept
    /// alive (the keeper's thread could not be started): compute without.
    pub(crate) fn attempt(&self, stored: &str, fp: u128) -> Option<Attempt<'_>> {
        Some(Attempt {
            keeper: Keeper::get()?,
            key: format!("{stored}{LEASE_SUFFIX}").into(),
            token: token().into_bytes().into(),
            lease_timeout: self.lease_timeout,
            watch: self.waits.watch(fp),
            pause: FIRST_POLL,
            give_up: Instant::now() + max_wait(self.lease_timeout),
        })
    }
}

impl Attempt<'_> {
    /// How many changes of the key the feed has reported so far.
    pub(crate) fn seen(&self) -> u64 {
        self.watch.seq()
    }

    /// The lease was taken: hold it (renewed until released).
    pub(crate) fn hold(&self, shared: Arc<dyn Backend>) -> Lease {
        Lease::new(
            self.keeper,
            shared,
            self.key.clone(),
            self.token.clone(),
            self.lease_timeout,
        )
    }

    /// Wait until the key changes after `seen`, or the next poll is due
    /// (20 ms at first, doubling to 200 ms).
    pub(crate) async fn wait(&mut self, io: Io, seen: u64) {
        self.watch.wait(io, seen, self.pause).await;
        self.pause = (self.pause * 2).min(MAX_POLL);
    }

    /// Whether the wait for another process's value is over: computing
    /// here costs a second computation, never a call that hangs.
    pub(crate) fn gave_up(&self) -> bool {
        Instant::now() >= self.give_up
    }
}

/// How long a waiter waits for another process's computation with leases
/// of `lease_timeout`.
pub(crate) fn max_wait(lease_timeout: Duration) -> Duration {
    lease_timeout.max(MIN_LEASE_TIMEOUT) * MAX_WAIT_LEASES
}

/// How long a waiter waits for another caller's computation in this
/// process: twice [`max_wait`], so that a leader which gave up waiting for
/// another process still has time to compute and hand its value over (its
/// own waiters would otherwise give up at the same moment and each run the
/// body).
pub(crate) fn process_max_wait(lease_timeout: Duration) -> Duration {
    max_wait(lease_timeout) * 2
}

/// A unique token for one acquisition: process, time, a counter and a
/// per-process random part.
fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SALT: OnceLock<u64> = OnceLock::new();
    let salt = *SALT.get_or_init(|| {
        let here = &COUNTER as *const AtomicU64 as u64;
        let seed = format!(
            "{}:{}:{here}:{:?}",
            std::process::id(),
            clock::unix_ms(),
            Instant::now()
        );
        let digest = blake3::hash(seed.as_bytes());
        u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}.{nanos:x}.{n:x}.{salt:016x}", std::process::id())
}

/// A lease this process holds: renewed by the [`Keeper`] until released.
/// Dropped unreleased (the body panicked, or its future was dropped), it
/// hands the release to the keeper's thread.
pub(crate) struct Lease {
    keeper: &'static Keeper,
    id: u64,
    shared: Arc<dyn Backend>,
    key: Arc<str>,
    token: Arc<[u8]>,
    released: bool,
}

impl Lease {
    fn new(
        keeper: &'static Keeper,
        shared: Arc<dyn Backend>,
        key: Arc<str>,
        token: Arc<[u8]>,
        ttl: Duration,
    ) -> Lease {
        let id = keeper.hold(Renewal {
            shared: shared.clone(),
            key: key.clone(),
            token: token.clone(),
            ttl,
            due: Instant::now() + renew_every(ttl),
        });
        Lease {
            keeper,
            id,
            shared,
            key,
            token,
            released: false,
        }
    }

    /// The lease key, as the runtime names it.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// This acquisition's token.
    pub(crate) fn token(&self) -> &[u8] {
        &self.token
    }

    /// The fenced store has settled the lease: it gave the lease up with
    /// the value, or found it no longer ours. Nothing is left to release.
    pub(crate) fn settled(mut self) {
        self.keeper.forget(self.id);
        self.released = true;
    }

    /// Give the lease up now (the value will not be stored).
    pub(crate) async fn release(mut self, io: Io) {
        self.keeper.forget(self.id);
        match io
            .lease_release(&*self.shared, &self.key, &self.token)
            .await
        {
            Ok(_) => self.released = true,
            // Dropped unreleased: the keeper tries once more.
            Err(e) => tracing::debug!(target: "cachefn", key = %self.key, error = %e,
                "shared single-flight: releasing the lease failed; retrying in the background"),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            self.keeper.forget(self.id);
            self.keeper.release_later(Release {
                shared: self.shared.clone(),
                key: self.key.clone(),
                token: self.token.clone(),
            });
        }
    }
}

// ----- waiters --------------------------------------------------------------

/// The keys whose value waiters of this cache wait for.
#[derive(Default)]
struct Waits {
    /// Waiters registered (so that the feed skips the map when there are none).
    count: AtomicUsize,
    map: Mutex<HashMap<u128, Arc<Watch>>>,
}

/// One key's waiters: a sequence number the feed moves, and how to wake
/// blocked and awaiting waiters.
#[derive(Default)]
struct Watch {
    state: Mutex<WatchState>,
    moved: Condvar,
}

#[derive(Default)]
struct WatchState {
    seq: u64,
    users: usize,
    wakers: Vec<Waker>,
}

impl Watch {
    fn bump(&self) {
        let wakers = {
            let mut s = self.state.lock();
            s.seq += 1;
            std::mem::take(&mut s.wakers)
        };
        self.moved.notify_all();
        for w in wakers {
            w.wake();
        }
    }
}

impl Waits {
    fn watch(&self, fp: u128) -> Watching<'_> {
        let watch = {
            // Users are counted under the map's lock, so that the last one
            // leaving never removes a watch that a new one has just joined.
            let mut map = self.map.lock();
            let watch = map.entry(fp).or_default().clone();
            watch.state.lock().users += 1;
            watch
        };
        self.count.fetch_add(1, Ordering::AcqRel);
        Watching {
            waits: self,
            fp,
            watch,
        }
    }
}

/// A waiter's registration for one key, removed when dropped.
struct Watching<'a> {
    waits: &'a Waits,
    fp: u128,
    watch: Arc<Watch>,
}

impl Watching<'_> {
    fn seq(&self) -> u64 {
        self.watch.state.lock().seq
    }

    /// Wait until the key changes after `seen`, or `pause` passes: blocking
    /// this thread, or awaiting (woken by the keeper's timer).
    async fn wait(&self, io: Io, seen: u64, pause: Duration) {
        let deadline = Instant::now() + pause;
        match io {
            Io::Blocking => {
                let mut s = self.watch.state.lock();
                while s.seq == seen {
                    if self.watch.moved.wait_until(&mut s, deadline).timed_out() {
                        break;
                    }
                }
            }
            Io::Async => {
                Sleep {
                    watch: &self.watch,
                    seen,
                    deadline,
                    timer: None,
                }
                .await
            }
        }
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        {
            let mut map = self.waits.map.lock();
            let last = {
                let mut s = self.watch.state.lock();
                s.users -= 1;
                s.users == 0
            };
            if last
                && map
                    .get(&self.fp)
                    .is_some_and(|w| Arc::ptr_eq(w, &self.watch))
            {
                map.remove(&self.fp);
            }
        }
        self.waits.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An awaiting waiter's pause: ready when the key changes or at `deadline`.
struct Sleep<'a> {
    watch: &'a Watch,
    seen: u64,
    deadline: Instant,
    /// The waker the keeper's timer wakes (set again when the task's waker
    /// changes).
    timer: Option<Waker>,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        {
            let mut s = self.watch.state.lock();
            if s.seq != self.seen {
                return Poll::Ready(());
            }
            if !s.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                s.wakers.push(cx.waker().clone());
            }
        }
        if !self.timer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            match Keeper::get() {
                Some(keeper) => keeper.wake_at(self.deadline, cx.waker().clone()),
                // No timer thread: poll again at once rather than hang.
                None => return Poll::Ready(()),
            }
            self.timer = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_names_its_value_key_both_ways() {
        assert_eq!(value_of_lease("f:v1:7"), "f:v1:7");
        // A Redis Cluster's name in the value's slot: `text{prefix:text}`.
        assert_eq!(value_of_lease("f:v1:7{blog:f:v1:7}"), "f:v1:7");
        // Braces of the key's own are left alone.
        assert_eq!(value_of_lease("f:v1:{a=1}"), "f:v1:{a=1}");
        assert_eq!(value_of_lease("f:v1:7{blog:f:v1:8}"), "f:v1:7{blog:f:v1:8}");
    }

    #[test]
    fn tokens_are_unique() {
        let a = token();
        let b = token();
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_graphic()), "{a}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_change_wakes_a_blocked_waiter_and_the_watch_is_removed() {
        let sf = SharedFlight::new(DEFAULT_LEASE_TIMEOUT);
        let fp = crate::Key::new("f:v1:1").fingerprint();
        std::thread::scope(|s| {
            let watch = sf.waits.watch(fp);
            let seen = watch.seq();
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                sf.changed("f:v1:1#lease");
            });
            let start = Instant::now();
            crate::io::block_on(watch.wait(Io::Blocking, seen, Duration::from_secs(30)));
            assert!(start.elapsed() < Duration::from_secs(20));
            assert_ne!(watch.seq(), seen);
        });
        assert!(sf.waits.map.lock().is_empty());
        assert_eq!(sf.waits.count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_keeper_wakes_an_awaiting_waiter_at_its_deadline() {
        let sf = SharedFlight::new(DEFAULT_LEASE_TIMEOUT);
        let watch = sf.waits.watch(7);
        let seen = watch.seq();
        let start = Instant::now();
        // `block_on` parks until the keeper's timer wakes the future.
        crate::io::block_on(watch.wait(Io::Async, seen, Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
