//! Test support for the cachefn integration tests.
//!
//! Empty in trybuild's copy of the package (`--cfg trybuild`), whose
//! compile-fail cases need none of it nor its dependencies.
#![cfg(not(trybuild))]

pub mod child;
pub mod memcached_server;
pub mod redis_cluster;
pub mod redis_server;
pub mod server_process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachefn::backends::Backend;
use cachefn::Error;
use parking_lot::Mutex;

/// An in-process byte store that counts calls and can be switched to fail,
/// standing in for a shared tier in tests of the tier logic.
#[derive(Clone, Default)]
pub struct CountingBackend {
    inner: Arc<Inner>,
}

/// A stored value and its deadline (`None`: no expiry).
type Entry = (Vec<u8>, Option<Instant>);

#[derive(Default)]
struct Inner {
    map: Mutex<HashMap<String, Entry>>,
    down: AtomicBool,
    pub gets: AtomicUsize,
    pub sets: AtomicUsize,
    pub deletes: AtomicUsize,
}

impl CountingBackend {
    pub fn new() -> Self {
        Self::default()
    }
    /// Make every call fail (`true`) or work again (`false`).
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }
    pub fn gets(&self) -> usize {
        self.inner.gets.load(Ordering::SeqCst)
    }
    pub fn sets(&self) -> usize {
        self.inner.sets.load(Ordering::SeqCst)
    }
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.inner.map.lock().keys().cloned().collect();
        k.sort();
        k
    }
    /// Write raw bytes under a full (prefixed) key, bypassing the cache.
    pub fn put_raw(&self, key: &str, bytes: &[u8]) {
        self.inner
            .map
            .lock()
            .insert(key.to_owned(), (bytes.to_vec(), None));
    }
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.map.lock().get(key).map(|(v, _)| v.clone())
    }
    fn check(&self) -> Result<(), Error> {
        if self.inner.down.load(Ordering::SeqCst) {
            Err(Error::backend("counting", "switched off by the test"))
        } else {
            Ok(())
        }
    }
    fn live(&self, key: &str) -> Option<Vec<u8>> {
        let mut map = self.inner.map.lock();
        match map.get(key) {
            Some((_, Some(at))) if *at <= Instant::now() => {
                map.remove(key);
                None
            }
            Some((v, _)) => Some(v.clone()),
            None => None,
        }
    }
}

fn deadline(ttl: Duration) -> Option<Instant> {
    (!ttl.is_zero()).then(|| Instant::now() + ttl)
}

impl Backend for CountingBackend {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.gets.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        Ok(self.live(key))
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.inner.sets.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner
            .map
            .lock()
            .insert(key.to_owned(), (value.to_vec(), deadline(ttl)));
        Ok(())
    }
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.check()?;
        if self.live(key).is_some() {
            return Ok(false);
        }
        self.set(key, value, ttl).map(|_| true)
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.inner.deletes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        Ok(self.inner.map.lock().remove(key).is_some())
    }
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.check()?;
        let mut map = self.inner.map.lock();
        let entry = map.entry(key.to_owned()).or_insert((b"0".to_vec(), None));
        let n: i64 = std::str::from_utf8(&entry.0)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::NotACounter(key.to_owned()))?;
        let n = n + delta;
        entry.0 = n.to_string().into_bytes();
        Ok(n)
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        self.check()?;
        self.inner.map.lock().retain(|k, _| !k.starts_with(prefix));
        Ok(())
    }
}

/// What both network tiers' suites check against a real server: a
/// memoized call (`call(1)` is 2, its body counted by `runs`; no local
/// copy kept) never fails while the server is killed, restarted empty on
/// its port, or frozen; writes report the failure; and once the server is
/// back the cache uses it again by itself.
pub fn killed_frozen_or_restarted_never_fails_a_call(
    server: &mut server_process::ServerProcess,
    cache: &cachefn::Cache,
    call: impl Fn(u32) -> u32,
    set_cached: impl Fn(u32, u32) -> Result<(), Error>,
    runs: &Runs,
) {
    assert_eq!(call(1), 2);
    assert_eq!(call(1), 2);
    assert_eq!(runs.get(), 1, "served by the server");

    // Killed: every call still returns the right value, quickly.
    server.stop();
    let start = Instant::now();
    for _ in 0..40 {
        assert_eq!(call(1), 2);
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "40 calls took {:?}",
        start.elapsed()
    );
    assert!(cache.stats().shared_errors >= 40);
    assert!(set_cached(1, 9).is_err(), "writes report the failure");

    // Restarted on the same port (empty): used again by itself, once the
    // circuit breaker's cool-down has passed and a probe succeeded.
    server.restart();
    std::thread::sleep(cachefn::backends::COOL_DOWN + Duration::from_millis(100));
    let before = runs.get();
    assert_eq!(call(1), 2);
    assert_eq!(call(1), 2);
    assert_eq!(runs.get(), before + 1, "stored again, then served");

    // Frozen (SIGSTOP): a call returns the body's value after the response timeout.
    server.freeze();
    let start = Instant::now();
    assert_eq!(call(1), 2);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    server.thaw();
    assert_eq!(call(1), 2);
}

/// A counter of body runs.
#[derive(Default)]
pub struct Runs(AtomicUsize);

impl Runs {
    pub const fn new() -> Self {
        Runs(AtomicUsize::new(0))
    }
    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Run this test binary again as a child process that runs only the test
/// named `test`, with `env` set, and return its stdout. Panics (with the
/// child's stderr) when the child fails.
pub fn run_child(test: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .expect("run the test binary as a child process");
    assert!(
        out.status.success(),
        "the child process failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first line a child printed after `CHILD ` (its answer), or "".
pub fn child_answer(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, r)| r.to_owned()))
        .unwrap_or_default()
}

/// The server a `start()` returned, or a return from the calling test when
/// it returned `None` (the server is not installed, outside CI: the test
/// skips, having printed why).
///
/// ```ignore
/// let server = started!(RedisServer::start());
/// ```
#[macro_export]
macro_rules! started {
    ($start:expr) => {
        match $start {
            Some(server) => server,
            None => return,
        }
    };
}

/// Wait until `cond` holds, checking every millisecond or so; panic with
/// `what` (what the test waited for) once `within` has passed without it.
/// For events a test can observe (a counter, a stats field, a key), in
/// place of a fixed sleep that hopes the event happened meanwhile: the
/// deadline is generous because only a broken mechanism ever reaches it.
///
/// ```ignore
/// wait_until(Duration::from_secs(10), "the invalidation", || cache.stats().invalidations > 0);
/// ```
#[track_caller]
pub fn wait_until(within: Duration, what: impl std::fmt::Display, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "waited {within:?} for {what}, in vain"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A barrier for threads of one test that a panicking thread breaks: a
/// party that panics (holding a [`Barrier::guard`]) makes every `wait`,
/// current and later, panic too, so the test fails with the first panic's
/// message instead of hanging for a party that will never come. A wait
/// also panics after `patience` (a backstop for a party stuck elsewhere).
pub struct Barrier {
    parties: usize,
    patience: Duration,
    state: Mutex<BarrierState>,
    moved: parking_lot::Condvar,
}

#[derive(Default)]
struct BarrierState {
    arrived: usize,
    generation: u64,
    broken: bool,
}

impl Barrier {
    /// A barrier for `parties` threads, whose waits give up after `patience`.
    pub fn new(parties: usize, patience: Duration) -> Barrier {
        Barrier {
            parties,
            patience,
            state: Mutex::new(BarrierState::default()),
            moved: parking_lot::Condvar::new(),
        }
    }

    /// Wait until all parties have called `wait` (once each per round).
    /// Panics when a party panicked or `patience` ran out.
    pub fn wait(&self) {
        let deadline = Instant::now() + self.patience;
        let mut s = self.state.lock();
        assert!(!s.broken, "a thread at this barrier panicked");
        s.arrived += 1;
        if s.arrived == self.parties {
            s.arrived = 0;
            s.generation += 1;
            self.moved.notify_all();
            return;
        }
        let generation = s.generation;
        while s.generation == generation && !s.broken {
            if self.moved.wait_until(&mut s, deadline).timed_out() {
                s.broken = true;
                self.moved.notify_all();
                panic!(
                    "waited {:?} at a barrier for {} of {} threads",
                    self.patience,
                    self.parties - s.arrived,
                    self.parties
                );
            }
        }
        assert!(
            s.generation != generation,
            "a thread at this barrier panicked"
        );
    }

    /// A guard that breaks the barrier if it is dropped by a panic: hold
    /// one in every thread that waits.
    pub fn guard(&self) -> BreakOnPanic<'_> {
        BreakOnPanic(self)
    }

    fn break_it(&self) {
        self.state.lock().broken = true;
        self.moved.notify_all();
    }
}

/// See [`Barrier::guard`].
pub struct BreakOnPanic<'a>(&'a Barrier);

impl Drop for BreakOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.break_it();
        }
    }
}
