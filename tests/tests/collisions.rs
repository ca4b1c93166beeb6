//! Every in-process fingerprint forced to one constant: every key collides
//! with every other in the local tier, each thread's hot entries and
//! single-flight. Each argument must still get its own value, through
//! every entry point, sync and async, memory-only and through Redis: hits
//! are verified against the full key (or the whole raw argument stream),
//! never trusted to a fingerprint.
//!
//! This binary runs in that mode from its first call on (see [`setup`]);
//! no other test binary does.

use std::sync::Once;
use std::time::Duration;

use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::started;
use serde::{Deserialize, Serialize};

/// Force the collisions before anything in this process computes a
/// fingerprint (every test calls this first).
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(cachefn::__private::collide_all_fingerprints);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Query {
    user: u64,
    text: String,
}

/// Arguments of every shape the hit path tells apart: short raw streams
/// (at most 15 bytes, looked up by an injective alias), long ones (looked
/// up by a hash and compared), streams too long for the raw buffer (the
/// key text's path), and keys past `MAX_KEY_LEN` (stored hashed).
fn texts() -> Vec<String> {
    let mut out: Vec<String> = ["", "a", "b", "ab", "ba", "x y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let common = "q".repeat(50);
    for i in 0..12 {
        out.push(format!("{common}{i:02}")); // 52 bytes: a long raw stream
        out.push(format!("{}{i}", "z".repeat(i * 25 + 5)));
    }
    out.push("w".repeat(600)); // a hashed key, no raw stream
    out.push(format!("{}!", "w".repeat(600)));
    out
}

#[quickcache(timeout = 60)]
fn echo(text: &str) -> String {
    format!("echo of {text}")
}

#[quickcache(timeout = 60)]
fn number(n: u64) -> u64 {
    n * 3 + 1
}

#[quickcache(timeout = 60)]
fn search(q: &Query) -> String {
    format!("results of {} for {}", q.text, q.user)
}

#[quickcache(timeout = 60)]
async fn echo_async(text: &str) -> String {
    format!("async echo of {text}")
}

/// Several threads call every argument in turn, in different orders, a few
/// times: every answer is the argument's own.
#[test]
fn memoized_sync_calls_get_their_own_values() {
    setup();
    let texts = texts();
    // One thread alone first: each argument's second call makes a hot entry
    // (nothing replaces its slot meanwhile), then the next argument looks
    // up the same alias.
    for pair in texts.windows(2) {
        for text in [&pair[0], &pair[0], &pair[1]] {
            assert_eq!(echo(text), format!("echo of {text}"));
        }
    }
    std::thread::scope(|s| {
        for t in 0..4usize {
            let texts = &texts;
            s.spawn(move || {
                for round in 0..4 {
                    for i in 0..texts.len() {
                        let text = &texts[(i * (t + 1) + round) % texts.len()];
                        // Twice in a row: the second call is a local hit by
                        // the key text, which makes a hot entry; the next
                        // arguments' calls look up that entry's alias.
                        assert_eq!(echo(text), format!("echo of {text}"));
                        assert_eq!(echo(text), format!("echo of {text}"));
                        let n = (i * 7 + t) as u64;
                        assert_eq!(number(n), n * 3 + 1);
                        let q = Query {
                            user: n % 3,
                            text: text.clone(),
                        };
                        assert_eq!(search(&q), format!("results of {text} for {}", n % 3));
                    }
                }
            });
        }
    });
    // And again on this thread, whose hot entries are warm now.
    for text in &texts {
        assert_eq!(echo(text), format!("echo of {text}"));
    }
}

#[test]
fn memoized_async_calls_get_their_own_values() {
    setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let texts = texts();
        let mut tasks = Vec::new();
        for t in 0..6usize {
            let texts = texts.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..3 {
                    for i in 0..texts.len() {
                        let text = &texts[(i * (t + 1) + round) % texts.len()];
                        assert_eq!(echo_async(text).await, format!("async echo of {text}"));
                        assert_eq!(echo_async(text).await, format!("async echo of {text}"));
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// `get_or_set`, `get` and `set` on keys that all collide: each key reads
/// its own value or nothing, never another key's.
#[test]
fn low_level_keys_get_their_own_values() {
    setup();
    let cache = Cache::builder().local(Memory::with_capacity(1_000)).build();
    let ttl = Duration::from_secs(60);
    let keys: Vec<String> = texts().iter().map(|t| format!("page:{t}")).collect();
    for round in 0..3 {
        for k in &keys {
            let v: String = cache.get_or_set(k, ttl, || format!("value of {k}"));
            assert_eq!(v, format!("value of {k}"), "round {round}");
        }
    }
    for k in &keys {
        cache.set(k, &format!("set {k}"), ttl).unwrap();
        for other in &keys {
            let got = cache.get::<String>(other);
            assert!(
                got.is_none() || got == Some(format!("set {other}")),
                "{other} read {got:?}"
            );
        }
        assert_eq!(cache.get::<String>(k), Some(format!("set {k}")));
    }
    // `add` of a key whose fingerprint another key's entry holds: absent.
    let (a, b) = (&keys[0], &keys[1]);
    cache.set(a, &1u32, ttl).unwrap();
    assert!(cache.add(b, &2u32, ttl).unwrap(), "b was absent");
    assert_eq!(cache.get::<u32>(b), Some(2));
    assert!(!cache.delete(a).unwrap() || cache.get::<u32>(a).is_none());
}

#[quickcache(cache = "collisions-helpers", timeout = 60)]
fn planted(text: &str) -> String {
    format!("computed for {text}")
}

/// The generated helpers: `set_cached` of one argument never answers
/// `get_cached` or a call of another, and `clear` of one never clears
/// another's entry. (A cache of its own: with every fingerprint equal, the
/// other tests' calls would replace its one entry at any moment.)
#[test]
fn helpers_address_their_own_entries() {
    setup();
    cachefn::register(
        "collisions-helpers",
        Cache::builder().local(Memory::with_capacity(100)).build(),
    );
    let texts = texts();
    for t in &texts {
        planted::set_cached(t, format!("planted for {t}")).unwrap();
        for other in &texts {
            match planted::get_cached(other) {
                None => {}
                Some(v) => assert!(
                    v == format!("planted for {other}") || v == format!("computed for {other}"),
                    "{other} read {v}"
                ),
            }
        }
        assert_eq!(planted::get_cached(t), Some(format!("planted for {t}")));
        assert_eq!(planted(t), format!("planted for {t}"));
    }
    planted::clear(&texts[3]).unwrap();
    assert_eq!(planted::get_cached(&texts[3]), None);
    assert_eq!(planted(&texts[3]), format!("computed for {}", texts[3]));
}

fn tiered(server: &RedisServer, prefix: &str) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(Redis::open(&server.url()).unwrap())
        .prefix(prefix)
        .build()
}

#[quickcache(cache = "collisions-redis", timeout = 60)]
fn shared_echo(text: &str) -> String {
    format!("shared echo of {text}")
}

#[quickcache(cache = "collisions-redis", timeout = 60)]
async fn shared_echo_async(text: &str) -> String {
    format!("shared async echo of {text}")
}

/// Through a Redis tier (local copies back-filled from shared hits, values
/// written by another cache of the same prefix, a preload scope that
/// fetched every key at once): every argument still gets its own value.
#[test]
fn through_redis_and_preload_every_argument_gets_its_own_value() {
    setup();
    let server = started!(RedisServer::start());
    // A writer (another "process": its own local tier) stores every value.
    let writer = tiered(&server, "coll");
    cachefn::register("collisions-redis", writer);
    let texts = texts();
    for t in &texts {
        assert_eq!(shared_echo(t), format!("shared echo of {t}"));
    }
    // A reader with an empty local tier: shared hits, back-filled.
    cachefn::register("collisions-redis", tiered(&server, "coll"));
    for round in 0..3 {
        for t in &texts {
            assert_eq!(
                shared_echo(t),
                format!("shared echo of {t}"),
                "round {round}"
            );
        }
    }
    // A third, inside one preload scope of every key (one MGET; the
    // scope's table collides too).
    let reader = tiered(&server, "coll");
    cachefn::register("collisions-redis", reader.clone());
    let keys: Vec<cachefn::Key> = texts.iter().map(|t| shared_echo::key(t)).collect();
    reader.preload(keys, || {
        for t in texts.iter().rev() {
            assert_eq!(shared_echo(t), format!("shared echo of {t}"));
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for t in &texts {
            assert_eq!(
                shared_echo_async(t).await,
                format!("shared async echo of {t}")
            );
        }
        let keys: Vec<cachefn::Key> = texts.iter().map(|t| shared_echo_async::key(t)).collect();
        let fresh = tiered(&server, "coll");
        cachefn::register("collisions-redis", fresh.clone());
        fresh
            .preload_async(keys, async {
                for t in &texts {
                    assert_eq!(
                        shared_echo_async(t).await,
                        format!("shared async echo of {t}")
                    );
                }
            })
            .await;
    });
}
