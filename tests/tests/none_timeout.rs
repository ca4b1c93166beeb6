//! `none_timeout`: how long a `None` of an `Option` function lives, in
//! every tier, while `Some` values live `timeout`; `0` caches no `None`.
//! Set crate-wide here (`config::quickcache!`) and per function.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::started;

cachefn::config::quickcache! {
    timeout = 60,
    none_timeout = 1,
}

/// Far longer than any wait below needs, for a slow machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// Wait until `done` holds; false if it did not within [`DEADLINE`].
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// A lookup that finds even ids: its runs are counted.
fn lookup(runs: &AtomicUsize, id: u64) -> Option<String> {
    runs.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);
static KEEP_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `none_timeout = 1` from the crate defaults.
#[quickcache]
fn find(id: u64) -> Option<String> {
    lookup(&FIND_RUNS, id)
}

/// `cache_none = true` here says what becomes of `None` for this function:
/// the crate's `none_timeout` does not apply, a `None` lives `timeout`.
#[quickcache(cache_none = true)]
fn find_keep(id: u64) -> Option<String> {
    lookup(&KEEP_RUNS, id)
}

#[test]
fn a_none_expires_after_none_timeout_while_some_lives_timeout() {
    let runs = || FIND_RUNS.load(Ordering::SeqCst);
    assert_eq!(find(1), None);
    assert_eq!(find(2).as_deref(), Some("user 2"));
    assert_eq!(find_keep(1), None);
    assert_eq!((runs(), KEEP_RUNS.load(Ordering::SeqCst)), (2, 1));
    // Cached, both of them.
    assert_eq!(find(1), None);
    assert_eq!(find(2).as_deref(), Some("user 2"));
    assert_eq!(runs(), 2);
    assert_eq!(find::get_cached(1), Some(None));

    // The `None` goes after a second; the `Some` stays.
    assert!(
        wait_for(|| find::get_cached(1).is_none()),
        "the cached None outlived none_timeout"
    );
    assert_eq!(find::get_cached(2), Some(Some("user 2".into())));
    assert_eq!(find(1), None);
    assert_eq!(find(2).as_deref(), Some("user 2"));
    assert_eq!(runs(), 3, "only the None was computed again");

    // A function that set `cache_none` itself keeps its `None` for `timeout`.
    assert_eq!(find_keep::get_cached(1), Some(None));
    assert_eq!(find_keep(1), None);
    assert_eq!(KEEP_RUNS.load(Ordering::SeqCst), 1);
}

static NEVER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `none_timeout = 0` is `cache_none = false`.
#[quickcache(none_timeout = 0)]
fn find_never(id: u64) -> Option<String> {
    lookup(&NEVER_RUNS, id)
}

#[test]
fn none_timeout_zero_caches_no_none() {
    let runs = || NEVER_RUNS.load(Ordering::SeqCst);
    assert_eq!(find_never(3), None);
    assert_eq!(find_never(3), None);
    assert_eq!(runs(), 2);
    assert_eq!(find_never::get_cached(3), None);
    assert_eq!(find_never(4).as_deref(), Some("user 4"));
    assert_eq!(find_never(4).as_deref(), Some("user 4"));
    assert_eq!(runs(), 3);
}

static REDIS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[quickcache(
    cache = "none-timeout-redis",
    timeout = 60,
    local_timeout = 10,
    none_timeout = 1
)]
fn find_shared(id: u64) -> Option<String> {
    lookup(&REDIS_RUNS, id)
}

/// The stored key of `key` (the cache adds its prefix) and its PTTL.
fn pttl(raw: &mut redis::Connection, key: &cachefn::Key) -> Option<(String, i64)> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(raw).unwrap();
    let stored = keys.into_iter().find(|k| k.ends_with(key.as_str()))?;
    let ttl: i64 = redis::cmd("PTTL").arg(&stored).query(raw).unwrap();
    Some((stored, ttl))
}

#[test]
fn through_redis_a_none_lives_none_timeout_in_both_tiers() {
    let server = started!(RedisServer::start());
    let cache = Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("nt")
        .build();
    cachefn::register("none-timeout-redis", cache);
    let runs = || REDIS_RUNS.load(Ordering::SeqCst);
    let mut raw = server.raw();

    assert_eq!(find_shared(5), None);
    assert_eq!(find_shared(6).as_deref(), Some("user 6"));
    assert_eq!(find_shared(5), None);
    assert_eq!(runs(), 2);

    let (none_key, none_ttl) = pttl(&mut raw, &find_shared::key(5)).expect("the None is in Redis");
    let (_, some_ttl) = pttl(&mut raw, &find_shared::key(6)).expect("the Some is in Redis");
    assert!(
        (1..=1_000).contains(&none_ttl),
        "a None lives none_timeout in Redis: PTTL {none_ttl} ms"
    );
    assert!(
        some_ttl > 30_000,
        "a Some lives timeout in Redis: PTTL {some_ttl} ms"
    );

    // Gone from Redis, and from the local tier (kept no longer than that).
    assert!(wait_for(|| {
        let exists: bool = redis::cmd("EXISTS").arg(&none_key).query(&mut raw).unwrap();
        !exists
    }));
    assert!(
        wait_for(|| find_shared::get_cached(5).is_none()),
        "the local copy of the None outlived none_timeout"
    );
    assert_eq!(find_shared(5), None);
    assert_eq!(find_shared(6).as_deref(), Some("user 6"));
    assert_eq!(runs(), 3, "only the None was computed again");
}
