//! The Redis shared tier against real `redis-server` processes that the
//! tests start on free loopback ports, stop, freeze and restart.

use std::time::Duration;

use cachefn::backends::{Backend, Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::started;
use cachefn_tests::{child_answer, killed_frozen_or_restarted_never_fails_a_call, run_child, Runs};

const MIN: Duration = Duration::from_secs(60);

#[test]
fn backend_operations_against_a_real_server() {
    let server = started!(RedisServer::start());
    let r = Redis::open(&server.url()).unwrap();
    assert_eq!(r.get("a").unwrap(), None);
    r.set("a", b"1", MIN).unwrap();
    assert_eq!(r.get("a").unwrap(), Some(b"1".to_vec()));
    assert!(!r.add("a", b"2", MIN).unwrap());
    assert!(r.add("b", b"2", MIN).unwrap());
    assert!(r.has("b").unwrap());
    assert_eq!(r.incr("n", 5).unwrap(), 5);
    assert_eq!(r.incr("n", -2).unwrap(), 3);
    assert!(matches!(r.incr("a", 1), Ok(2)));
    r.set("text", b"x", MIN).unwrap();
    assert!(matches!(
        r.incr("text", 1),
        Err(cachefn::Error::NotACounter(_))
    ));
    assert_eq!(
        r.get_many(&["a", "zz", "b"]).unwrap(),
        vec![Some(b"2".to_vec()), None, Some(b"2".to_vec())]
    );
    r.set_many(&[("m1", b"x".as_slice()), ("m2", b"y".as_slice())], MIN)
        .unwrap();
    r.delete_many(&["m1", "a"]).unwrap();
    assert_eq!(
        r.get_many(&["m1", "m2", "a"]).unwrap(),
        vec![None, Some(b"y".to_vec()), None]
    );
    assert!(r.delete("b").unwrap());
    assert!(!r.delete("b").unwrap());
    r.set("short", b"s", Duration::from_millis(100)).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(r.get("short").unwrap(), None, "PX expiry");
}

#[test]
fn clear_touches_only_its_own_prefix() {
    let server = started!(RedisServer::start());
    let mut raw = server.raw();
    for k in ["other:1", "blogger:1", "blog*:1", "blog"] {
        redis::cmd("SET")
            .arg(k)
            .arg("theirs")
            .query::<()>(&mut raw)
            .unwrap();
    }
    let cache = Cache::builder()
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("blog")
        .build();
    for i in 0..1_200 {
        cache.set(format!("post:{i}"), &i, MIN).unwrap();
    }
    cache.clear().unwrap();
    let mut left: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw).unwrap();
    left.sort();
    assert_eq!(left, ["blog", "blog*:1", "blogger:1", "other:1"]);
}

static SHARED_RUNS: Runs = Runs::new();

#[quickcache(cache = "redis-processes", timeout = 60)]
fn expensive(id: u32) -> String {
    SHARED_RUNS.hit();
    format!("value {id}")
}

fn shared_only(url: &str) -> Cache {
    Cache::builder()
        .shared(Redis::open(url).unwrap())
        .prefix("xproc")
        .build()
}

/// Run this test binary again as a child process in `mode`.
fn child(mode: &str, url: &str) -> String {
    let test = "a_value_computed_in_one_process_is_served_to_others";
    let out = run_child(test, &[("CACHEFN_CHILD", mode), ("CACHEFN_REDIS_URL", url)]);
    child_answer(&out)
}

#[test]
fn a_value_computed_in_one_process_is_served_to_others() {
    if let Ok(mode) = std::env::var("CACHEFN_CHILD") {
        let url = std::env::var("CACHEFN_REDIS_URL").unwrap();
        cachefn::register("redis-processes", shared_only(&url));
        match mode.as_str() {
            "read" => {
                let v = expensive(7);
                println!("\nCHILD runs={} value={v}", SHARED_RUNS.get());
            }
            "clear" => {
                expensive::clear(7).unwrap();
                println!("\nCHILD cleared");
            }
            _ => unreachable!(),
        }
        return;
    }
    let server = started!(RedisServer::start());
    cachefn::register(
        "redis-processes",
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(Redis::open(&server.url()).unwrap())
            .prefix("xproc")
            .build(),
    );
    assert_eq!(expensive(7), "value 7");
    assert_eq!(SHARED_RUNS.get(), 1);
    // Another process: served from Redis, its body never runs.
    assert_eq!(child("read", &server.url()), "runs=0 value=value 7");
    // A third process clears it: the next reader recomputes.
    assert_eq!(child("clear", &server.url()), "cleared");
    let mut raw = server.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("xproc:*").query(&mut raw).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(child("read", &server.url()), "runs=1 value=value 7");
}

static DOWN_RUNS: Runs = Runs::new();

#[quickcache(cache = "redis-down", timeout = 60, local_timeout = 0)]
fn resilient(id: u32) -> u32 {
    DOWN_RUNS.hit();
    id * 2
}

#[test]
fn a_killed_frozen_or_restarted_server_never_fails_a_call() {
    let mut server = started!(RedisServer::start());
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("down")
        .build();
    cachefn::register("redis-down", cache.clone());
    killed_frozen_or_restarted_never_fails_a_call(
        server.process(),
        &cache,
        resilient,
        resilient::set_cached,
        &DOWN_RUNS,
    );
}

static GARBAGE_RUNS: Runs = Runs::new();

#[quickcache(cache = "redis-garbage", local_timeout = 0)]
fn decoded(id: u32) -> Vec<u32> {
    GARBAGE_RUNS.hit();
    vec![id]
}

#[test]
fn garbage_under_a_key_is_a_miss_and_is_overwritten() {
    let server = started!(RedisServer::start());
    let cache = Cache::builder()
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("g")
        .build();
    cachefn::register("redis-garbage", cache.clone());
    let key = cache.storage_key(decoded::key(3));
    let mut raw = server.raw();
    redis::cmd("SET")
        .arg(&key)
        .arg("not cachefn bytes")
        .query::<()>(&mut raw)
        .unwrap();
    assert_eq!(decoded(3), vec![3]);
    assert_eq!(decoded(3), vec![3]);
    assert_eq!(GARBAGE_RUNS.get(), 1, "recomputed once, then served");
    let stored: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut raw).unwrap();
    assert!(stored.starts_with(b"cf"), "overwritten with a valid value");
}
