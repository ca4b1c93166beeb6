//! Every pair of entry points on one key, concurrently: memoized sync and
//! async calls, `get_or_set` and `get_or_set_async`, `set`/`get`, the
//! generated helpers and preload scopes. Whatever the pair and whichever
//! starts first, each caller gets the value the body returns for that key
//! (never the leader's encoded bytes, never a value of another type), and
//! callers that wait for one another run the body once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cachefn::backends::Memory;
use cachefn::{quickcache, Cache};
use cachefn_tests::CountingBackend;
use parking_lot::Mutex;

const TTL: Duration = Duration::from_secs(60);
const VALUE: [u8; 3] = [7, 7, 7];

static RUNS: AtomicUsize = AtomicUsize::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);
/// Set by [`race`] while it runs, and by its second caller just before it
/// calls: a body run during a race returns only after that.
static RACING: AtomicBool = AtomicBool::new(false);
static SECOND_CALLED: AtomicBool = AtomicBool::new(false);
/// One pair at a time: the pairs share the counters above and the cache.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long a body lasts once the second caller of a race has called (or
/// at all, outside a race): time for that caller to join the key's flight.
const BODY_TAIL: Duration = Duration::from_millis(60);

/// During a race, wait (10 s at most) until the second caller has called.
fn until_second_called() {
    let start = Instant::now();
    while RACING.load(Ordering::SeqCst)
        && !SECOND_CALLED.load(Ordering::SeqCst)
        && start.elapsed() < Duration::from_secs(10)
    {
        thread::sleep(Duration::from_millis(1));
    }
}

/// The body every entry point runs on a miss: it lasts until the second
/// caller has arrived, and a while longer.
fn body() -> Vec<u8> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    STARTED.store(true, Ordering::SeqCst);
    until_second_called();
    thread::sleep(BODY_TAIL);
    VALUE.to_vec()
}

async fn body_async() -> Vec<u8> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    STARTED.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while RACING.load(Ordering::SeqCst)
        && !SECOND_CALLED.load(Ordering::SeqCst)
        && start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(BODY_TAIL).await;
    VALUE.to_vec()
}

#[quickcache(cache = "entry_points")]
fn blob(x: u8) -> Vec<u8> {
    let _ = x;
    body()
}

#[quickcache(cache = "entry_points")]
async fn blob_async(x: u8) -> Vec<u8> {
    let _ = x;
    body_async().await
}

fn cache() -> Cache {
    cachefn::cache("entry_points").expect("registered by the test")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One way of reading (or writing then reading) a key.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Entry {
    /// The memoized function itself (sync `blob`, or `blob_async` awaited).
    Memo,
    /// The sync memoized function called from inside a tokio runtime.
    MemoInRuntime,
    GetOrSet,
    GetOrSetAsync,
    /// `set` then `get` through the low-level API.
    SetGet,
    /// `f::set_cached` then `f::get_cached`.
    Helpers,
    /// The memoized call inside a preload scope of the key.
    Preload,
}

const ENTRIES: [Entry; 7] = [
    Entry::Memo,
    Entry::MemoInRuntime,
    Entry::GetOrSet,
    Entry::GetOrSetAsync,
    Entry::SetGet,
    Entry::Helpers,
    Entry::Preload,
];

impl Entry {
    fn has_body(self) -> bool {
        !matches!(self, Entry::SetGet | Entry::Helpers)
    }

    /// Run this entry point on the key of `blob(7)` (`async_key`: of
    /// `blob_async(7)`) and return what the caller got.
    fn run(self, async_key: bool) -> Vec<u8> {
        let cache = cache();
        let key = if async_key {
            blob_async::key(7)
        } else {
            blob::key(7)
        };
        match (self, async_key) {
            (Entry::Memo, false) => blob(7),
            (Entry::Memo, true) => rt().block_on(blob_async(7)),
            (Entry::MemoInRuntime, false) => rt().block_on(async { blob(7) }),
            (Entry::MemoInRuntime, true) => {
                rt().block_on(async { tokio::spawn(blob_async(7)).await.unwrap() })
            }
            (Entry::GetOrSet, _) => cache.get_or_set(&key, TTL, body),
            (Entry::GetOrSetAsync, _) => {
                rt().block_on(cache.get_or_set_async(&key, TTL, body_async))
            }
            (Entry::SetGet, _) => {
                cache.set(&key, &VALUE.to_vec(), TTL).unwrap();
                cache.get::<Vec<u8>>(&key).expect("just set")
            }
            (Entry::Helpers, false) => {
                blob::set_cached(7, VALUE.to_vec()).unwrap();
                blob::get_cached(7).expect("just set")
            }
            (Entry::Helpers, true) => rt().block_on(async {
                blob_async::set_cached(7, VALUE.to_vec()).await.unwrap();
                blob_async::get_cached(7).await.expect("just set")
            }),
            (Entry::Preload, false) => cache.preload([&key], || blob(7)),
            (Entry::Preload, true) => rt().block_on(cache.preload_async(&[&key], blob_async(7))),
        }
    }
}

/// What one race saw: how many times the body ran, and whether the second
/// caller overlapped the body (nobody was served a stored value: the
/// cache counted no hit, so the caller that did not run the body was
/// handed its value by the one that did).
struct Race {
    runs: usize,
    overlapped: bool,
}

/// Run `first`, and `second` once `first`'s body has started (or shortly
/// after `first` began, for an entry without a body); check both results.
/// A body run meanwhile lasts until `second` has called.
fn race(first: Entry, second: Entry, async_key: bool) -> Race {
    cache().clear().unwrap();
    RUNS.store(0, Ordering::SeqCst);
    STARTED.store(false, Ordering::SeqCst);
    SECOND_CALLED.store(false, Ordering::SeqCst);
    RACING.store(true, Ordering::SeqCst);
    let before = cache().stats();
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(move || first.run(async_key));
        let begun = Instant::now();
        while !STARTED.load(Ordering::SeqCst) && begun.elapsed() < Duration::from_millis(30) {
            thread::sleep(Duration::from_millis(1));
        }
        let b = s.spawn(move || {
            SECOND_CALLED.store(true, Ordering::SeqCst);
            second.run(async_key)
        });
        (a.join(), b.join())
    });
    RACING.store(false, Ordering::SeqCst);
    let (a, b) = (a.unwrap(), b.unwrap());
    let which = format!("{first:?} then {second:?} (async key: {async_key})");
    assert_eq!(a, VALUE, "{which}: the first caller's value");
    assert_eq!(b, VALUE, "{which}: the second caller's value");
    let after = cache().stats();
    let hits = after.local_hits + after.shared_hits - before.local_hits - before.shared_hits;
    Race {
        runs: RUNS.load(Ordering::SeqCst),
        overlapped: hits == 0,
    }
}

/// [`race`] for two callers that both have a body: it ran once, and the
/// second caller waited for it. A second caller that came only after the
/// value was stored (a plain hit: a loaded machine) proves nothing, so the
/// race is run again, up to five times.
fn race_waiting(first: Entry, second: Entry, async_key: bool, which: &str) {
    for _ in 0..5 {
        let Race { runs, overlapped } = race(first, second, async_key);
        assert_eq!(runs, 1, "{which}: the second caller should have waited");
        if overlapped {
            return;
        }
    }
    panic!("{which}: in five races the second caller never arrived while the body ran");
}

fn every_pair(tiers: &str, cache: Cache) {
    let _serial = SERIAL.lock();
    cachefn::register("entry_points", cache);
    for async_key in [false, true] {
        for first in ENTRIES {
            for second in ENTRIES {
                let which = format!("{tiers}: {first:?} then {second:?} (async key: {async_key})");
                // Callers that wait for each other share one run.
                if first.has_body() && second.has_body() {
                    race_waiting(first, second, async_key, &which);
                } else {
                    let runs = race(first, second, async_key).runs;
                    assert!(runs <= 2, "{which}: the body ran {runs} times");
                }
            }
        }
    }
}

#[test]
fn every_pair_of_entry_points_on_one_key_memory() {
    every_pair(
        "memory",
        Cache::builder().local(Memory::with_capacity(100)).build(),
    );
}

#[test]
fn every_pair_of_entry_points_on_one_key_tiered() {
    every_pair(
        "tiered",
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(CountingBackend::new())
            .build(),
    );
}

#[test]
fn every_pair_of_entry_points_on_one_key_shared_only() {
    every_pair(
        "shared only",
        Cache::builder().shared(CountingBackend::new()).build(),
    );
}

/// The reported bug: a memoized `Vec<u8>` function that waited on a
/// `get_or_set` of its key returned the 24-byte header plus postcard.
#[test]
fn a_memoized_call_waiting_on_get_or_set_gets_the_value_not_its_bytes() {
    let _serial = SERIAL.lock();
    cachefn::register(
        "entry_points",
        Cache::builder().local(Memory::with_capacity(100)).build(),
    );
    for _ in 0..5 {
        race_waiting(
            Entry::GetOrSet,
            Entry::Memo,
            false,
            "get_or_set then the memoized call",
        );
    }
}

/// A `get_or_set` of another type on a memoized function's key, at the same
/// time: each caller gets its own type's value; nobody gets the other's.
#[test]
fn waiters_of_another_type_compute_their_own() {
    let _serial = SERIAL.lock();
    for c in [
        Cache::builder().local(Memory::with_capacity(100)).build(),
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(CountingBackend::new())
            .build(),
    ] {
        cachefn::register("entry_points", c);
        cache_of_entry_points_clear();
        STARTED.store(false, Ordering::SeqCst);
        let (a, b) = thread::scope(|s| {
            let a = s.spawn(|| blob(7));
            while !STARTED.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
            }
            let b = s.spawn(|| cache().get_or_set(blob::key(7), TTL, || "a string".to_string()));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a, VALUE);
        assert_eq!(b, "a string");
        // And the other way round.
        cache_of_entry_points_clear();
        STARTED.store(false, Ordering::SeqCst);
        let (a, b) = thread::scope(|s| {
            let a = s.spawn(|| {
                cache().get_or_set(blob::key(7), TTL, || {
                    STARTED.store(true, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(60));
                    "a string".to_string()
                })
            });
            while !STARTED.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
            }
            let b = s.spawn(|| blob(7));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a, "a string");
        assert_eq!(b, VALUE);
    }
}

fn cache_of_entry_points_clear() {
    cache().clear().unwrap();
}

/// A shared tier that counts reads and answers slowly.
#[derive(Clone, Default)]
struct SlowShared(CountingBackend);

impl cachefn::backends::Backend for SlowShared {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, cachefn::Error> {
        thread::sleep(Duration::from_millis(50));
        self.0.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), cachefn::Error> {
        self.0.set(key, value, ttl)
    }
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, cachefn::Error> {
        self.0.add(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<bool, cachefn::Error> {
        self.0.delete(key)
    }
    fn incr(&self, key: &str, delta: i64) -> Result<i64, cachefn::Error> {
        self.0.incr(key, delta)
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), cachefn::Error> {
        self.0.clear_prefix(prefix)
    }
}

/// Item 9 of the correctness issue: waiters used to read the shared tier
/// before joining the key's flight, so 1,000 callers of a cold key made up
/// to 1,000 shared reads. A cold key now costs one shared read per process.
#[test]
fn a_cold_key_costs_one_shared_read_per_process() {
    let _serial = SERIAL.lock();
    let shared = SlowShared::default();
    for (label, tiered) in [("tiered", true), ("shared only", false)] {
        let builder = Cache::builder().shared(shared.clone());
        let cache = if tiered {
            builder.local(Memory::with_capacity(100)).build()
        } else {
            builder.build()
        };
        cachefn::register("entry_points", cache.clone());
        // Cold in both tiers: one read, one body run.
        cache.clear().unwrap();
        RUNS.store(0, Ordering::SeqCst);
        let before = shared.0.gets();
        let barrier = std::sync::Barrier::new(64);
        thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    barrier.wait();
                    assert_eq!(blob(7), VALUE);
                });
            }
        });
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "{label}");
        assert_eq!(
            shared.0.gets() - before,
            1,
            "{label}: shared reads of a cold key"
        );
        // Only in the shared tier (another process wrote it): one read.
        if tiered {
            cache.local_store().unwrap().clear();
            let before = shared.0.gets();
            thread::scope(|s| {
                for _ in 0..64 {
                    s.spawn(|| {
                        barrier.wait();
                        assert_eq!(blob(7), VALUE);
                    });
                }
            });
            assert_eq!(
                RUNS.load(Ordering::SeqCst),
                1,
                "{label}: served by the shared tier"
            );
            assert_eq!(
                shared.0.gets() - before,
                1,
                "{label}: shared reads of a shared hit"
            );
        }
        // The async path and get_or_set_async: one read as well.
        cache.clear().unwrap();
        RUNS.store(0, Ordering::SeqCst);
        let before = shared.0.gets();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|i| {
                    let cache = cache.clone();
                    tokio::spawn(async move {
                        if i % 2 == 0 {
                            blob_async(7).await
                        } else {
                            cache
                                .get_or_set_async(blob_async::key(7), TTL, body_async)
                                .await
                        }
                    })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), VALUE);
            }
        });
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "{label}: async");
        // The tokio worker threads call the blocking backend inline (the
        // slow test store has no async twins), so some tasks may read
        // before the first one has joined; still far fewer than 64.
        assert_eq!(shared.0.gets() - before, 1, "{label}: async shared reads");
    }
}
