//! The memcached shared tier against real `memcached` processes that the
//! tests start on free loopback ports, stop, freeze and restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memcached, Memory};
use cachefn::{quickcache, Cache, Error};
use cachefn_tests::memcached_server::{MemcachedServer, RoundTripProxy};
use cachefn_tests::started;
use cachefn_tests::{child_answer, killed_frozen_or_restarted_never_fails_a_call, run_child, Runs};

const MIN: Duration = Duration::from_secs(60);
const DAY: u64 = 24 * 3600;

fn open(server: &MemcachedServer) -> Memcached {
    Memcached::open(&server.url()).unwrap()
}

#[test]
fn backend_operations_against_a_real_server() {
    let server = started!(MemcachedServer::start());
    let m = open(&server);
    for (a, b) in [("a", "b"), ("ns:a", "ns:b"), ("ns:f:a", "ns:f:b")] {
        assert_eq!(m.get(a).unwrap(), None);
        m.set(a, b"1", MIN).unwrap();
        assert_eq!(m.get(a).unwrap(), Some(b"1".to_vec()));
        m.set(a, b"2", MIN).unwrap();
        assert_eq!(m.get(a).unwrap(), Some(b"2".to_vec()), "overwritten");
        assert!(!m.add(a, b"3", MIN).unwrap());
        assert!(m.add(b, b"2", MIN).unwrap());
        assert!(m.has(b).unwrap());
        assert_eq!(
            m.get_many(&[a, "zz", b]).unwrap(),
            vec![Some(b"2".to_vec()), None, Some(b"2".to_vec())]
        );
        assert!(m.delete(b).unwrap());
        assert!(!m.delete(b).unwrap());
        assert!(!m.has(b).unwrap());
    }
    m.set_many(&[("m1", b"x".as_slice()), ("ns:m2", b"y".as_slice())], MIN)
        .unwrap();
    m.delete_many(&["m1", "ns:a", "never-there"]).unwrap();
    assert_eq!(
        m.get_many(&["m1", "ns:m2", "ns:a"]).unwrap(),
        vec![None, Some(b"y".to_vec()), None]
    );
    // Empty and binary values round-trip.
    m.set("ns:empty", b"", MIN).unwrap();
    assert_eq!(m.get("ns:empty").unwrap(), Some(Vec::new()));
    let binary: Vec<u8> = (0..=255).chain(*b"\r\nEND\r\n").collect();
    m.set("ns:bin", &binary, MIN).unwrap();
    assert_eq!(m.get("ns:bin").unwrap(), Some(binary));
    // Keys memcached would reject never reach it.
    let e = m.get("has space").unwrap_err().to_string();
    assert!(e.contains("not a memcached key"), "{e}");
    assert!(m.set(&"k".repeat(251), b"v", MIN).is_err());
    m.set(&"k".repeat(250), b"v", MIN).unwrap();
    assert_eq!(m.get(&"k".repeat(250)).unwrap(), Some(b"v".to_vec()));
}

#[test]
fn short_ttls_expire_and_long_ttls_become_absolute_times() {
    let server = started!(MemcachedServer::start());
    let m = open(&server);
    let mut raw = server.raw();
    m.set("t:short", b"s", Duration::from_secs(2)).unwrap();
    m.set("t:sub-second", b"s", Duration::from_millis(300))
        .unwrap();
    assert_eq!(m.get("t:short").unwrap(), Some(b"s".to_vec()));
    // Beyond memcached's 30 days for relative times: sent as a Unix time.
    // Sent as a number of seconds, 40 days would be a time in 1970, and the
    // item would be gone at once.
    m.set("t:40d", b"long", Duration::from_secs(40 * DAY))
        .unwrap();
    assert_eq!(m.get("t:40d").unwrap(), Some(b"long".to_vec()));
    let left = raw.ttl("t:40d").unwrap();
    assert!(
        (40 * DAY - 60) as i64 <= left && left <= (40 * DAY + 1) as i64,
        "{left}"
    );
    m.set("t:29d", b"rel", Duration::from_secs(29 * DAY))
        .unwrap();
    let left = raw.ttl("t:29d").unwrap();
    assert!(
        (29 * DAY - 60) as i64 <= left && left <= (29 * DAY) as i64,
        "{left}"
    );
    m.set("t:forever", b"f", Duration::ZERO).unwrap();
    assert_eq!(raw.ttl("t:forever"), Some(-1));
    // Through a cache too (its values carry their own expiry as well).
    let cache = Cache::builder().shared(open(&server)).prefix("t").build();
    cache
        .set("year", &7u8, Duration::from_secs(365 * DAY))
        .unwrap();
    assert_eq!(cache.get::<u8>("year"), Some(7));
    std::thread::sleep(Duration::from_millis(3_500));
    assert_eq!(m.get("t:short").unwrap(), None, "expired");
    assert_eq!(
        m.get("t:sub-second").unwrap(),
        None,
        "rounded up to 1 s, expired"
    );
    assert_eq!(m.get("t:40d").unwrap(), Some(b"long".to_vec()));
}

#[test]
fn batches_and_single_calls_are_one_round_trip() {
    let server = started!(MemcachedServer::start());
    let proxy = RoundTripProxy::start(server.port());
    let m = Memcached::open(&proxy.url()).unwrap();
    let mut raw = server.raw();
    assert_eq!(m.get("warm:up").unwrap(), None);
    proxy.take_rounds();

    let keys: Vec<String> = (0..50).map(|i| format!("rt:items:{i}")).collect();
    let values: Vec<Vec<u8>> = (0..50).map(|i| format!("v{i}").into_bytes()).collect();
    let items: Vec<(&str, &[u8])> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    m.set_many(&items, MIN).unwrap();
    assert_eq!(proxy.take_rounds(), 1, "set_many");

    let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    wanted.extend(["rt:items:missing", "rt:other:1", "loose"]);
    let before = raw.stats()["cmd_get"];
    let got = m.get_many(&wanted).unwrap();
    assert_eq!(proxy.take_rounds(), 1, "get_many");
    // One lookup per key, plus each distinct generation item once
    // (`rt:`, `rt:items:`, `rt:other:`).
    assert_eq!(raw.stats()["cmd_get"] - before, 53 + 3);
    for (i, v) in got.iter().enumerate().take(50) {
        assert_eq!(v.as_deref(), Some(values[i].as_slice()));
    }
    assert_eq!(got[50..], [None, None, None]);

    m.delete_many(&wanted[..10]).unwrap();
    assert_eq!(proxy.take_rounds(), 1, "delete_many");
    m.get("rt:items:20").unwrap();
    m.set("rt:items:20", b"x", MIN).unwrap();
    m.has("rt:items:20").unwrap();
    m.delete("rt:items:20").unwrap();
    assert!(m.add("rt:items:20", b"y", MIN).unwrap());
    m.clear_prefix("rt:items:").unwrap();
    assert_eq!(proxy.take_rounds(), 6, "get, set, has, delete, add, clear");

    // Through a cache with no local tier: `Cache::get_many` is one round trip.
    let cache = Cache::builder()
        .shared(Memcached::open(&proxy.url()).unwrap())
        .prefix("rtc")
        .build();
    let pairs: Vec<(String, u32)> = (0..20).map(|i| (format!("k{i}"), i)).collect();
    cache.set_many(&pairs, MIN).unwrap();
    proxy.take_rounds();
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let got: Vec<Option<u32>> = cache.get_many(&names);
    assert_eq!(proxy.take_rounds(), 1, "Cache::get_many");
    assert_eq!(got, (0..20).map(Some).collect::<Vec<_>>());
}

#[test]
fn large_batches_and_values_do_not_deadlock() {
    let server = started!(MemcachedServer::start());
    let m = open(&server);
    let value = vec![b'x'; 1024];
    let keys: Vec<String> = (0..3_000).map(|i| format!("big:k:{i}")).collect();
    let items: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &value[..])).collect();
    m.set_many(&items, MIN).unwrap();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = m.get_many(&refs).unwrap();
    assert_eq!(got.len(), 3_000);
    assert!(got.iter().all(|v| v.as_deref() == Some(&value[..])));
    let large = vec![7u8; 900 * 1024];
    m.set("big:one", &large, MIN).unwrap();
    assert_eq!(m.get("big:one").unwrap(), Some(large));
    // Too large for the server: an error, and the tier stays usable.
    assert!(m.set("big:too", &vec![0u8; 2 << 20], MIN).is_err());
    assert_eq!(m.get("big:k:1").unwrap().as_deref(), Some(&value[..]));
}

#[test]
fn add_is_atomic_even_over_cleared_entries() {
    let server = started!(MemcachedServer::start());
    let m = Arc::new(open(&server));
    for round in 0..5 {
        let key = format!("lock:r:{round}");
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (m, key) = (&m, &key);
                    s.spawn(move || m.add(key, format!("{i}").as_bytes(), MIN).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .filter(|_| true)
                .map(|h| h.join().unwrap() as usize)
                .sum()
        });
        assert_eq!(winners, 1, "exactly one add wins");
    }
    // An entry invalidated by a clear is absent for `add`, still atomically.
    m.set("lock:r:x", b"old", MIN).unwrap();
    m.clear_prefix("lock:").unwrap();
    let winners: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| m.add("lock:r:x", b"new", MIN).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap() as usize)
            .sum()
    });
    assert_eq!(winners, 1);
    assert_eq!(m.get("lock:r:x").unwrap(), Some(b"new".to_vec()));
}

#[test]
fn counters_are_i64_and_read_back_through_the_cache() {
    let server = started!(MemcachedServer::start());
    let m = Arc::new(open(&server));
    let mut raw = server.raw();
    assert_eq!(m.incr("c:n", 5).unwrap(), 5, "a missing key starts at 0");
    assert_eq!(
        m.incr("c:n", -7).unwrap(),
        -2,
        "below zero, unlike memcached's decr"
    );
    assert_eq!(m.get("c:n").unwrap(), Some(b"-2".to_vec()));
    assert_eq!(
        raw.get("c:n"),
        Some(b"-2".to_vec()),
        "stored as decimal text"
    );
    assert_eq!(m.incr("c:n", i64::MIN + 2).unwrap(), i64::MIN);
    assert!(
        matches!(m.incr("c:n", -1), Err(Error::NotACounter(_))),
        "overflow"
    );
    assert_eq!(
        m.get("c:n").unwrap(),
        Some(i64::MIN.to_string().into_bytes())
    );
    m.set("c:text", b"x", MIN).unwrap();
    assert!(matches!(m.incr("c:text", 1), Err(Error::NotACounter(_))));
    // A counter written by another memcached client.
    m.set("c:seed", b"", MIN).unwrap(); // creates the scope's generation item
    raw.set("c:native", b"41", 0);
    assert_eq!(m.incr("c:native", 1).unwrap(), 42);
    // An update keeps the counter's TTL.
    m.set("c:ttl", b"10", Duration::from_secs(3600)).unwrap();
    assert_eq!(m.incr("c:ttl", 1).unwrap(), 11);
    let left = raw.ttl("c:ttl").unwrap();
    assert!((3500..=3600).contains(&left), "{left}");
    assert_eq!(m.incr("c:fresh", 1).unwrap(), 1);
    assert_eq!(raw.ttl("c:fresh"), Some(-1), "a new counter never expires");

    // Concurrent increments are all counted.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    m.incr("c:race", 1).unwrap();
                }
            });
        }
    });
    assert_eq!(m.get("c:race").unwrap(), Some(b"200".to_vec()));

    // Through a cache: `incr`, `decr`, `get::<i64>`, and `clear` resets.
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(open(&server))
        .prefix("cnt")
        .build();
    assert_eq!(cache.incr("visits", 3).unwrap(), 3);
    assert_eq!(cache.decr("visits", 10).unwrap(), -7);
    assert_eq!(cache.get::<i64>("visits"), Some(-7));
    cache.clear().unwrap();
    assert_eq!(cache.get::<i64>("visits"), None);
    assert_eq!(
        cache.incr("visits", 1).unwrap(),
        1,
        "a cleared counter starts again"
    );
}

#[test]
fn clear_touches_only_its_own_prefix() {
    let server = started!(MemcachedServer::start());
    let mut raw = server.raw();
    for k in ["other:1", "blogger:1", "blog", "blog%2A:1"] {
        raw.set(k, b"theirs", 0);
    }
    let blog = Cache::builder()
        .shared(open(&server))
        .prefix("blog")
        .build();
    let blogger = Cache::builder()
        .shared(open(&server))
        .prefix("blogger")
        .build();
    for i in 0..300 {
        blog.set(format!("post:{i}"), &i, MIN).unwrap();
    }
    blog.set("visits", &1u8, MIN).unwrap();
    blogger.set("post:1", &"kept".to_string(), MIN).unwrap();
    blog.clear().unwrap();
    for i in 0..300 {
        assert_eq!(blog.get::<i32>(format!("post:{i}")), None);
    }
    assert_eq!(blog.get::<u8>("visits"), None);
    assert_eq!(blogger.get::<String>("post:1").as_deref(), Some("kept"));
    for k in ["other:1", "blogger:1", "blog", "blog%2A:1"] {
        assert_eq!(raw.get(k).as_deref(), Some(&b"theirs"[..]), "{k}");
    }
    // Written after the clear: visible again.
    blog.set("post:1", &1, MIN).unwrap();
    assert_eq!(blog.get::<i32>("post:1"), Some(1));

    // The backend's own prefixes.
    let m = open(&server);
    m.set("s:post:1", b"p", MIN).unwrap();
    m.set("s:page:1", b"p", MIN).unwrap();
    m.set("s2:post:1", b"p", MIN).unwrap();
    m.clear_prefix("s:post:").unwrap(); // exactly one scope
    assert_eq!(m.get("s:post:1").unwrap(), None);
    assert!(m.get("s:page:1").unwrap().is_some());
    m.clear_prefix("s:pa").unwrap(); // inside a segment: all of `s:`
    assert_eq!(m.get("s:page:1").unwrap(), None);
    assert!(
        m.get("s2:post:1").unwrap().is_some(),
        "never another namespace"
    );
    let e = m.clear_prefix("s").unwrap_err().to_string();
    assert!(e.contains("needs a `:`"), "{e}");
}

static FIRST_RUNS: Runs = Runs::new();
static SECOND_RUNS: Runs = Runs::new();

#[quickcache(cache = "mc-clear-all", timeout = 60)]
fn first(id: u32) -> u32 {
    FIRST_RUNS.hit();
    id + 1
}

#[quickcache(cache = "mc-clear-all", timeout = 60)]
fn second(id: u32) -> u32 {
    SECOND_RUNS.hit();
    id + 2
}

#[test]
fn clear_all_clears_one_function_in_every_process() {
    let server = started!(MemcachedServer::start());
    let cache = Cache::builder().shared(open(&server)).prefix("fa").build();
    cachefn::register("mc-clear-all", cache.clone());
    for id in 0..3 {
        assert_eq!(first(id), id + 1);
        assert_eq!(second(id), id + 2);
    }
    for id in 0..3 {
        assert_eq!(first(id), id + 1);
        assert_eq!(second(id), id + 2);
    }
    assert_eq!(
        (FIRST_RUNS.get(), SECOND_RUNS.get()),
        (3, 3),
        "served by memcached"
    );
    first::clear_all().unwrap();
    for id in 0..3 {
        assert_eq!(first(id), id + 1);
        assert_eq!(second(id), id + 2);
    }
    assert_eq!(
        (FIRST_RUNS.get(), SECOND_RUNS.get()),
        (6, 3),
        "only `first` ran again"
    );
    first::clear(1).unwrap();
    assert_eq!(first::get_cached(1), None);
    assert_eq!(first::get_cached(2), Some(3));
    cache.clear().unwrap();
    assert_eq!(second::get_cached(0), None);
}

#[test]
fn lost_generation_items_never_bring_cleared_entries_back() {
    let server = started!(MemcachedServer::start());
    let m = open(&server);
    let mut raw = server.raw();
    m.set("g:f:1", b"old", MIN).unwrap();
    m.clear_prefix("g:").unwrap();
    assert_eq!(m.get("g:f:1").unwrap(), None);
    // memcached evicts (or a restart of the server loses) the generation items:
    // the entries stored before stay misses.
    assert!(raw.delete("#gen:g:"));
    assert!(raw.delete("#gen:g:f:"));
    assert_eq!(m.get("g:f:1").unwrap(), None);
    m.set("g:f:2", b"new", MIN).unwrap();
    assert_eq!(m.get("g:f:2").unwrap(), Some(b"new".to_vec()));
    assert!(raw.delete("#gen:g:f:"));
    assert_eq!(m.get("g:f:2").unwrap(), None, "stored before the loss");
    assert!(!m.has("g:f:2").unwrap());
    m.set("g:f:2", b"again", MIN).unwrap();
    assert_eq!(m.get("g:f:2").unwrap(), Some(b"again".to_vec()));
    // The cleared entry is still in memcached's memory, unreadable.
    assert_eq!(raw.get("g:f:1").as_deref(), Some(&b"old"[..]));
    assert_eq!(m.get("g:f:1").unwrap(), None);
}

static SHARED_RUNS: Runs = Runs::new();

#[quickcache(cache = "mc-processes", timeout = 60)]
fn expensive(id: u32) -> String {
    SHARED_RUNS.hit();
    format!("value {id}")
}

fn shared_only(url: &str) -> Cache {
    Cache::builder()
        .shared(Memcached::open(url).unwrap())
        .prefix("xproc")
        .build()
}

/// Run this test binary again as a child process in `mode`.
fn child(mode: &str, url: &str) -> String {
    let test = "a_value_computed_in_one_process_is_served_to_others";
    let out = run_child(
        test,
        &[("CACHEFN_CHILD", mode), ("CACHEFN_MEMCACHED_URL", url)],
    );
    child_answer(&out)
}

#[test]
fn a_value_computed_in_one_process_is_served_to_others() {
    if let Ok(mode) = std::env::var("CACHEFN_CHILD") {
        let url = std::env::var("CACHEFN_MEMCACHED_URL").unwrap();
        cachefn::register("mc-processes", shared_only(&url));
        match mode.as_str() {
            "read" => {
                let v = expensive(7);
                println!("\nCHILD runs={} value={v}", SHARED_RUNS.get());
            }
            "clear" => {
                expensive::clear(7).unwrap();
                println!("\nCHILD cleared");
            }
            "clear_all" => {
                expensive::clear_all().unwrap();
                println!("\nCHILD cleared all");
            }
            _ => unreachable!(),
        }
        return;
    }
    let server = started!(MemcachedServer::start());
    cachefn::register(
        "mc-processes",
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(open(&server))
            .prefix("xproc")
            .build(),
    );
    assert_eq!(expensive(7), "value 7");
    assert_eq!(SHARED_RUNS.get(), 1);
    // Another process: served from memcached, its body never runs.
    assert_eq!(child("read", &server.url()), "runs=0 value=value 7");
    // A third process clears it: the next reader recomputes.
    assert_eq!(child("clear", &server.url()), "cleared");
    let stored = shared_only(&server.url()).storage_key(expensive::key(7));
    assert_eq!(open(&server).get(&stored).unwrap(), None);
    assert_eq!(child("read", &server.url()), "runs=1 value=value 7");
    assert_eq!(child("read", &server.url()), "runs=0 value=value 7");
    // And `clear_all` from another process, by generation.
    assert_eq!(child("clear_all", &server.url()), "cleared all");
    assert_eq!(child("read", &server.url()), "runs=1 value=value 7");
}

static DOWN_RUNS: Runs = Runs::new();

#[quickcache(cache = "mc-down", timeout = 60, local_timeout = 0)]
fn resilient(id: u32) -> u32 {
    DOWN_RUNS.hit();
    id * 2
}

#[test]
fn a_killed_frozen_or_restarted_server_never_fails_a_call() {
    let mut server = started!(MemcachedServer::start());
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(open(&server))
        .prefix("down")
        .build();
    cachefn::register("mc-down", cache.clone());
    killed_frozen_or_restarted_never_fails_a_call(
        server.process(),
        &cache,
        resilient,
        resilient::set_cached,
        &DOWN_RUNS,
    );
}

#[test]
fn the_backend_fails_within_its_timeouts_and_recovers_by_itself() {
    let mut server = started!(MemcachedServer::start());
    let m = Arc::new(
        Memcached::builder(&server.url())
            .response_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    m.set("r:k", b"v", MIN).unwrap();

    server.freeze();
    let start = Instant::now();
    let e = m.get("r:k").unwrap_err().to_string();
    assert!(e.contains("no reply within 200ms"), "{e}");
    assert!(m.set("r:k", b"w", MIN).is_err());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    server.thaw();
    // A fresh connection. The `set` that timed out was in the frozen
    // server's socket buffer: it may have been applied once it resumed.
    let now = m.get("r:k").unwrap().unwrap();
    assert!(now == b"v" || now == b"w", "{now:?}");

    // Several pooled connections, then a restart: the first call after it
    // finds its connection closed, replaces the pool and succeeds.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    m.get("r:k").unwrap();
                }
            });
        }
    });
    server.restart();
    assert_eq!(m.get("r:k").unwrap(), None, "the restarted server is empty");
    m.set("r:k", b"again", MIN).unwrap();
    assert_eq!(m.get("r:k").unwrap(), Some(b"again".to_vec()));

    server.stop();
    let start = Instant::now();
    let e = m.get("r:k").unwrap_err().to_string();
    assert!(e.contains("cannot connect"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));
    server.restart();
    assert_eq!(m.get("r:k").unwrap(), None);
}

static GARBAGE_RUNS: Runs = Runs::new();

#[quickcache(cache = "mc-garbage", local_timeout = 0)]
fn decoded(id: u32) -> Vec<u32> {
    GARBAGE_RUNS.hit();
    vec![id]
}

#[test]
fn garbage_under_a_key_is_a_miss_and_is_overwritten() {
    let server = started!(MemcachedServer::start());
    let cache = Cache::builder().shared(open(&server)).prefix("g").build();
    cachefn::register("mc-garbage", cache.clone());
    assert_eq!(decoded(1), vec![1]); // creates the generation items
    let key = cache.storage_key(decoded::key(3));
    let mut raw = server.raw();
    raw.set(&key, b"not cachefn bytes", 0);
    assert_eq!(decoded(3), vec![3]);
    assert_eq!(decoded(3), vec![3]);
    assert_eq!(GARBAGE_RUNS.get(), 2, "recomputed once, then served");
    let stored = raw.get(&key).unwrap();
    assert!(stored.starts_with(b"cf"), "overwritten with a valid value");
}

#[tokio::test]
async fn the_async_api_works_over_memcached() {
    let server = started!(MemcachedServer::start());
    let cache = Cache::builder()
        .shared(open(&server))
        .prefix("async")
        .build();
    cache.set_async("k", &"v".to_string(), MIN).await.unwrap();
    assert_eq!(cache.get_async::<String>("k").await.as_deref(), Some("v"));
    assert_eq!(cache.incr_async("n", 2).await.unwrap(), 2);
    cache.clear_async().await.unwrap();
    assert_eq!(cache.get_async::<String>("k").await, None);
}

static MC_FROZEN: Runs = Runs::new();

#[quickcache(cache = "memcached-frozen", timeout = 60, local_timeout = 0)]
async fn through_frozen_memcached(id: u32) -> u32 {
    MC_FROZEN.hit();
    id + 1
}

#[test]
fn a_frozen_server_does_not_stop_other_tasks_on_a_current_thread_runtime() {
    let server = started!(MemcachedServer::start());
    cachefn::register(
        "memcached-frozen",
        Cache::builder()
            .shared(open(&server))
            .prefix("mcfrozen")
            .build(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(through_frozen_memcached(1).await, 2);
        assert_eq!(through_frozen_memcached(1).await, 2);
    });
    assert_eq!(MC_FROZEN.get(), 1, "served by memcached");
    server.freeze();
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let during = rt.block_on(async {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = {
            let (ticks, done) = (ticks.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = ticks.load(std::sync::atomic::Ordering::SeqCst);
        // The round trip runs on the tier's I/O thread; the response timeout ends it.
        assert_eq!(through_frozen_memcached(1).await, 2);
        let during = ticks.load(std::sync::atomic::Ordering::SeqCst) - before;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        ticker.await.unwrap();
        during
    });
    server.thaw();
    assert_eq!(
        MC_FROZEN.get(),
        2,
        "the body ran when memcached could not answer"
    );
    // Had the call blocked the only executor thread, the ticker could not
    // have run while it waited.
    assert!(during >= 3, "the ticker ran {during} times during the call");
}
