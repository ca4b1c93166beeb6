//! The low-level typed `Cache` API over the memory tier.

use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use cachefn::backends::Memory;
use cachefn::Cache;
use cachefn_tests::Runs;
use serde::{Deserialize, Serialize};

const MIN: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    id: u32,
    title: String,
}

#[test]
fn set_get_add_delete_has() {
    let cache = Cache::memory();
    let post = Post {
        id: 1,
        title: "Hello".into(),
    };
    cache.set("post:1", &post, MIN).unwrap();
    assert_eq!(cache.get::<Post>("post:1"), Some(post));
    assert_eq!(
        cache.get::<String>("post:1"),
        None,
        "another type is a miss"
    );
    assert!(cache.has("post:1"));
    assert!(!cache.add("post:1", &0u8, MIN).unwrap());
    assert!(cache.add("post:2", &0u8, MIN).unwrap());
    assert!(cache.delete("post:1").unwrap());
    assert!(!cache.delete("post:1").unwrap());
    assert!(!cache.has("post:1"));
}

#[test]
fn ttl_expires_and_zero_means_until_evicted() {
    let cache = Cache::memory();
    cache.set("short", &1u8, Duration::from_millis(50)).unwrap();
    cache.set("forever", &2u8, Duration::ZERO).unwrap();
    thread::sleep(Duration::from_millis(80));
    assert_eq!(cache.get::<u8>("short"), None);
    assert_eq!(cache.get::<u8>("forever"), Some(2));
}

#[test]
fn many_at_once() {
    let cache = Cache::memory();
    cache
        .set_many(&[("a", 1i32), ("b", 2), ("c", 3)], MIN)
        .unwrap();
    assert_eq!(
        cache.get_many::<i32>(&["a", "x", "c"]),
        vec![Some(1), None, Some(3)]
    );
    cache.delete_many(&["a", "c"]).unwrap();
    assert_eq!(
        cache.get_many::<i32>(&["a", "b", "c"]),
        vec![None, Some(2), None]
    );
}

#[test]
fn counters() {
    let cache = Cache::memory();
    assert_eq!(cache.incr("hits", 1).unwrap(), 1);
    assert_eq!(cache.incr("hits", 5).unwrap(), 6);
    assert_eq!(cache.decr("hits", 2).unwrap(), 4);
    assert_eq!(cache.get::<i64>("hits"), Some(4));
    cache.set("text", &"x".to_string(), MIN).unwrap();
    assert!(matches!(
        cache.incr("text", 1),
        Err(cachefn::Error::NotACounter(_))
    ));
    // Concurrent increments are not lost.
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..500 {
                    cache.incr("race", 1).unwrap();
                }
            });
        }
    });
    assert_eq!(cache.get::<i64>("race"), Some(2_000));
}

#[test]
fn get_or_set_is_single_flight() {
    static RUNS: Runs = Runs::new();
    let cache = Cache::memory();
    let barrier = Barrier::new(8);
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                let v: String = cache.get_or_set("slow", MIN, || {
                    RUNS.hit();
                    thread::sleep(Duration::from_millis(150));
                    "done".to_string()
                });
                assert_eq!(v, "done");
            });
        }
    });
    assert_eq!(RUNS.get(), 1);
}

#[test]
fn get_or_set_shares_the_value_even_when_nothing_can_be_stored() {
    static RUNS: Runs = Runs::new();
    let cache = Cache::null();
    let barrier = Barrier::new(6);
    thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                barrier.wait();
                let v: Vec<String> = cache.get_or_set("k", MIN, || {
                    RUNS.hit();
                    thread::sleep(Duration::from_millis(150));
                    vec!["v".to_string()]
                });
                assert_eq!(v, vec!["v".to_string()]);
            });
        }
    });
    assert_eq!(RUNS.get(), 1, "waiters decoded the leader's value");
}

#[test]
fn clear_empties_this_cache_only() {
    let a = Cache::memory();
    let b = Cache::memory();
    a.set("k", &1u8, MIN).unwrap();
    b.set("k", &1u8, MIN).unwrap();
    a.clear().unwrap();
    assert_eq!(a.get::<u8>("k"), None);
    assert_eq!(b.get::<u8>("k"), Some(1));
}

#[test]
fn odd_and_long_keys_work() {
    let cache = Cache::memory();
    let long = "k".repeat(1_000);
    for key in ["with space", "ünïcode", "#hash", long.as_str(), ""] {
        cache.set(key, &key.len(), MIN).unwrap();
        assert_eq!(cache.get::<usize>(key), Some(key.len()), "{key}");
    }
    assert_ne!(
        cachefn::Key::new(&long),
        cachefn::Key::new(format!("{long}k"))
    );
    assert!(cache.storage_key(&long).len() <= 250);
}

#[test]
fn byte_bounded_memory() {
    let cache = Cache::builder()
        .local(Memory::with_max_bytes(64 * 1024))
        .build();
    for i in 0..1_000 {
        cache.set(format!("k{i}"), &vec![0u8; 1_000], MIN).unwrap();
    }
    let len = cache.local_store().unwrap().len();
    assert!(len < 70, "{len} values of 1 KB in 64 KB");
}

#[test]
fn stats_count_hits_and_misses() {
    let cache = Cache::memory();
    cache.set("a", &1u8, MIN).unwrap();
    cache.get::<u8>("a");
    cache.get::<u8>("b");
    let s = cache.stats();
    assert_eq!((s.local_hits, s.misses), (1, 1));
}
