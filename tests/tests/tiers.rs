//! The tier logic over a byte-level shared tier (an in-process counting
//! store here; the Redis tests start real servers).

use std::time::Duration;

use cachefn::backends::Memory;
use cachefn::{quickcache, Cache};
use cachefn_tests::{CountingBackend, Runs};

fn tiered(shared: &CountingBackend, prefix: &str) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(shared.clone())
        .prefix(prefix)
        .build()
}

static SHARED_RUNS: Runs = Runs::new();

#[quickcache(cache = "tiers-shared", timeout = 60, local_timeout = 1)]
fn render(id: u32) -> String {
    SHARED_RUNS.hit();
    format!("<p>{id}</p>")
}

/// Two caches over one store stand for two processes with their own local tier.
#[test]
fn a_value_computed_by_one_cache_is_served_to_another() {
    let store = CountingBackend::new();
    let a = tiered(&store, "blog");
    let b = tiered(&store, "blog");

    cachefn::register("tiers-shared", a.clone());
    assert_eq!(render(1), "<p>1</p>");
    assert_eq!(SHARED_RUNS.get(), 1);
    assert_eq!(store.keys(), vec!["blog:tiers.render:v1:1".to_string()]);

    cachefn::register("tiers-shared", b.clone());
    let gets = store.gets();
    assert_eq!(render(1), "<p>1</p>");
    assert_eq!(SHARED_RUNS.get(), 1, "served from the shared tier");
    assert_eq!(b.stats().shared_hits, 1);
    assert_eq!(store.gets(), gets + 1);

    // Back-filled: the next read does not reach the shared tier.
    assert_eq!(render(1), "<p>1</p>");
    assert_eq!(store.gets(), gets + 1);
    assert_eq!(b.stats().local_hits, 1);

    // local_timeout = 1: after it the local copy is gone, the shared one is not.
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(render(1), "<p>1</p>");
    assert_eq!(store.gets(), gets + 2);
    assert_eq!(SHARED_RUNS.get(), 1);

    // clear from either side removes the key everywhere.
    render::clear(1).unwrap();
    assert!(store.keys().is_empty());
    cachefn::register("tiers-shared", a.clone());
    assert_eq!(render(1), "<p>1</p>");
    assert_eq!(SHARED_RUNS.get(), 2);
}

#[test]
fn back_fill_never_outlives_the_shared_entry() {
    let store = CountingBackend::new();
    let a = tiered(&store, "bf");
    let b = Cache::builder()
        .local(Memory::with_capacity(10))
        .shared(store.clone())
        .prefix("bf")
        .local_ttl(Duration::from_secs(30))
        .build();
    a.set("k", &5u8, Duration::from_millis(400)).unwrap();
    assert_eq!(b.get::<u8>("k"), Some(5));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        b.get::<u8>("k"),
        None,
        "the local copy expired with the entry"
    );
}

static DOWN_RUNS: Runs = Runs::new();

#[quickcache(cache = "tiers-down")]
fn resilient(id: u32) -> u32 {
    DOWN_RUNS.hit();
    id * 10
}

#[test]
fn a_failing_shared_tier_never_fails_a_call() {
    let store = CountingBackend::new();
    let cache = tiered(&store, "down");
    cachefn::register("tiers-down", cache.clone());
    store.set_down(true);
    for _ in 0..3 {
        assert_eq!(resilient(4), 40);
    }
    assert_eq!(
        DOWN_RUNS.get(),
        3,
        "nothing could be stored, so every call ran"
    );
    assert!(cache.stats().shared_errors >= 3);
    // Writes that cannot reach the shared tier return the error.
    assert!(resilient::set_cached(4, 1).is_err());
    assert!(resilient::clear(4).is_err());
    assert!(resilient::clear_all().is_err());
    assert!(cache.set("x", &1u8, Duration::from_secs(5)).is_err());
    assert!(cache.delete("x").is_err());
    assert!(cache.clear().is_err());
    assert_eq!(cache.get::<u8>("x"), None);
    // Back up: once the breaker's cool-down has passed, cached again.
    store.set_down(false);
    std::thread::sleep(cachefn::backends::COOL_DOWN + Duration::from_millis(100));
    resilient(4);
    resilient(4);
    assert_eq!(DOWN_RUNS.get(), 4);
}

static GARBAGE_RUNS: Runs = Runs::new();

#[quickcache(cache = "tiers-garbage")]
fn decoded(id: u32) -> Vec<String> {
    GARBAGE_RUNS.hit();
    vec![id.to_string()]
}

#[test]
fn foreign_bytes_are_a_miss_and_get_overwritten() {
    let store = CountingBackend::new();
    // No local tier: every call reads the shared tier.
    let cache = Cache::builder().shared(store.clone()).prefix("g").build();
    cachefn::register("tiers-garbage", cache.clone());
    let key = cache.storage_key(decoded::key(1));
    for garbage in [&b"not ours"[..], b"", b"cf\x01\x00", &[0xff; 64]] {
        store.put_raw(&key, garbage);
        assert_eq!(decoded(1), vec!["1".to_string()]);
        assert_ne!(store.raw(&key).as_deref(), Some(garbage), "overwritten");
    }
    assert_eq!(GARBAGE_RUNS.get(), 4);
    assert_eq!(
        cache.stats().undecodable,
        4,
        "each foreign value was read once"
    );
    // A value of another type under the key is a miss as well.
    cache
        .set(
            decoded::key(2),
            &"a string".to_string(),
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(decoded(2), vec!["2".to_string()]);
    assert_eq!(GARBAGE_RUNS.get(), 5);
}

#[test]
fn keys_outside_the_prefix_are_never_touched() {
    let store = CountingBackend::new();
    store.put_raw("other:app:key", b"theirs");
    store.put_raw("blogger:x", b"theirs too");
    let cache = tiered(&store, "blog");
    cache.set("a", &1u32, Duration::from_secs(60)).unwrap();
    cache
        .set_many(&[("b", 2u32), ("c", 3u32)], Duration::from_secs(60))
        .unwrap();
    assert!(
        store
            .keys()
            .iter()
            .filter(|k| !k.contains("theirs"))
            .count()
            >= 3
    );
    for k in store.keys() {
        assert!(
            k.starts_with("blog:") || k == "other:app:key" || k == "blogger:x",
            "{k}"
        );
    }
    cache.clear().unwrap();
    assert_eq!(
        store.keys(),
        vec!["blogger:x".to_string(), "other:app:key".to_string()]
    );
}

#[test]
fn the_local_tier_is_bounded() {
    static RUNS: Runs = Runs::new();
    let cache = Cache::builder().local(Memory::with_capacity(100)).build();
    cachefn::register("tiers-bounded", cache.clone());
    #[quickcache(cache = "tiers-bounded")]
    fn item(i: u32) -> String {
        RUNS.hit();
        "x".repeat(100)
    }
    for i in 0..5_000 {
        item(i);
    }
    assert_eq!(RUNS.get(), 5_000);
    let len = cache.local_store().unwrap().len();
    assert!(len <= 110, "holds {len} entries for a capacity of 100");
}

#[test]
fn a_null_cache_caches_nothing() {
    static RUNS: Runs = Runs::new();
    cachefn::register("tiers-null", Cache::null());
    #[quickcache(cache = "tiers-null")]
    fn uncached(i: u32) -> u32 {
        RUNS.hit();
        i
    }
    uncached(1);
    uncached(1);
    assert_eq!(RUNS.get(), 2);
    assert_eq!(uncached::get_cached(1), None);
    uncached::set_cached(1, 5).unwrap();
    assert_eq!(uncached(1), 1);
}

#[test]
fn a_cache_registered_later_is_used_by_later_calls() {
    static RUNS: Runs = Runs::new();
    #[quickcache(cache = "tiers-late")]
    fn late(i: u32) -> u32 {
        RUNS.hit();
        i
    }
    late(1);
    late(1);
    assert_eq!(RUNS.get(), 2, "not registered yet: uncached");
    cachefn::register("tiers-late", Cache::memory());
    late(1);
    late(1);
    assert_eq!(RUNS.get(), 3);
}

#[test]
fn caches_whose_prefixes_nest_never_touch_each_other() {
    let store = CountingBackend::new();
    let app = Cache::builder().shared(store.clone()).prefix("app").build();
    let sessions = Cache::builder()
        .shared(store.clone())
        .prefix("app:sessions")
        .build();
    app.set("sessions:42", &1u32, Duration::from_secs(60))
        .unwrap();
    sessions.set("42", &2u32, Duration::from_secs(60)).unwrap();
    assert_eq!(app.get::<u32>("sessions:42"), Some(1));
    assert_eq!(sessions.get::<u32>("42"), Some(2));
    app.clear().unwrap();
    assert_eq!(
        sessions.get::<u32>("42"),
        Some(2),
        "clearing `app` left `app:sessions` alone"
    );
    assert_eq!(sessions.prefix(), "app%3Asessions");
}

#[test]
fn per_tier_handles_reach_one_tier_with_the_same_api() {
    const MIN: Duration = Duration::from_secs(60);
    let shared = CountingBackend::new();
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(shared.clone())
        .prefix("tiers")
        .build();
    let (local, remote) = (cache.local().unwrap(), cache.shared().unwrap());
    assert_eq!(local.prefix(), "tiers");
    assert!(std::ptr::eq(local, cache.local().unwrap()), "made once");

    // The local tier only: the tiered cache sees it, the shared tier does not.
    local.set("l", &1u32, MIN).unwrap();
    assert_eq!(cache.get::<u32>("l"), Some(1));
    assert_eq!(remote.get::<u32>("l"), None);
    assert!(shared.keys().is_empty());

    // The shared tier only: the local tier stays as it was until a tiered read.
    remote.set("s", &2u32, MIN).unwrap();
    assert_eq!(shared.keys(), ["tiers:s"]);
    assert_eq!(local.get::<u32>("s"), None);
    assert_eq!(cache.get::<u32>("s"), Some(2), "a shared hit");
    assert_eq!(local.get::<u32>("s"), Some(2), "back-filled");
    assert_eq!(remote.incr("n", 3).unwrap(), 3);
    assert!(remote.has("n") && !local.has("n"));

    // Clearing one tier leaves the other.
    remote.clear().unwrap();
    assert!(shared.keys().is_empty());
    assert_eq!(local.get::<u32>("l"), Some(1));
    local.clear().unwrap();
    assert_eq!(cache.get::<u32>("l"), None);

    // A tier that is not there has no handle.
    assert!(Cache::memory().shared().is_none());
    assert!(Cache::builder()
        .shared(shared.clone())
        .build()
        .local()
        .is_none());
    assert!(Cache::memory().local().is_some());
}
