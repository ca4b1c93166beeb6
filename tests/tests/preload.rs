//! Preload scopes and batch operations against a real `redis-server`,
//! counting round trips with `INFO commandstats`.

use std::collections::HashMap;
use std::time::Duration;

use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::started;
use cachefn_tests::Runs;

const MIN: Duration = Duration::from_secs(60);

/// Calls per command since the last reset, e.g. `{"get": 50, "mget": 1}`.
fn command_calls(server: &RedisServer) -> HashMap<String, u64> {
    let mut raw = server.raw();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut raw)
        .unwrap();
    cachefn_tests::redis_server::parse_commandstats(&info)
}

fn reset_stats(server: &RedisServer) {
    let mut raw = server.raw();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(&mut raw)
        .unwrap();
}

/// Reads (GET, MGET) and writes (SET) since the last reset; the INFO and
/// CONFIG calls of the test itself are left out.
fn trips(server: &RedisServer) -> (u64, u64, u64) {
    let c = command_calls(server);
    let n = |k: &str| c.get(k).copied().unwrap_or(0);
    (n("get"), n("mget"), n("set"))
}

fn shared_only(url: &str, prefix: &str) -> Cache {
    Cache::builder()
        .shared(Redis::open(url).unwrap())
        .prefix(prefix)
        .build()
}

static FRAGMENTS: Runs = Runs::new();

#[quickcache(cache = "preload-page", timeout = 60)]
fn fragment(id: u32) -> String {
    FRAGMENTS.hit();
    format!("<li>{id}</li>")
}

fn page() -> String {
    (0..50).map(fragment).collect()
}

fn page_keys() -> Vec<cachefn::Key> {
    (0..50).map(fragment::key).collect()
}

#[test]
fn a_page_of_fifty_fragments_costs_one_read_in_a_scope_and_fifty_without() {
    let server = started!(RedisServer::start());
    let cache = shared_only(&server.url(), "page");
    cachefn::register("preload-page", cache.clone());

    // Cold, inside a scope: one MGET finds nothing; the known misses are
    // computed and stored without a GET each.
    reset_stats(&server);
    let cold = cache.preload(page_keys(), page);
    assert_eq!(FRAGMENTS.get(), 50);
    assert_eq!(trips(&server), (0, 1, 50), "(GET, MGET, SET)");

    // Warm, without a scope: one GET per fragment.
    reset_stats(&server);
    assert_eq!(page(), cold);
    assert_eq!(trips(&server), (50, 0, 0));

    // Warm, inside a scope: one MGET for the whole page.
    reset_stats(&server);
    assert_eq!(cache.preload(page_keys(), page), cold);
    assert_eq!(trips(&server), (0, 1, 0));
    assert_eq!(FRAGMENTS.get(), 50, "never recomputed");

    // After the scope, the values written inside it are what another cache reads.
    let other = shared_only(&server.url(), "page");
    cachefn::register("preload-page", other);
    assert_eq!(fragment(7), "<li>7</li>");
    assert_eq!(FRAGMENTS.get(), 50);
}

#[test]
fn writes_and_deletes_inside_a_scope_are_seen_by_later_reads_in_it() {
    let server = started!(RedisServer::start());
    let cache = shared_only(&server.url(), "writes");
    cache.set("present", &1u32, MIN).unwrap();
    reset_stats(&server);
    cache.preload(["present", "absent", "counter"], || {
        assert_eq!(cache.get::<u32>("present"), Some(1));
        assert_eq!(cache.get::<u32>("absent"), None);
        assert!(!cache.has("absent"));
        cache.set("absent", &2u32, MIN).unwrap();
        assert_eq!(cache.get::<u32>("absent"), Some(2));
        assert!(cache.delete("present").unwrap());
        assert_eq!(cache.get::<u32>("present"), None);
        assert_eq!(
            cache.get_many::<u32>(&["present", "absent"]),
            vec![None, Some(2)]
        );
        assert_eq!(trips(&server).0, 0, "no GET inside the scope");
        assert_eq!(cache.incr("counter", 3).unwrap(), 3);
        // A counter's value is the server's: read again.
        assert_eq!(cache.get::<i64>("counter"), Some(3));
    });
    assert_eq!(cache.get::<u32>("absent"), Some(2));
    assert_eq!(cache.get::<u32>("present"), None);
}

#[test]
fn scopes_nest_and_belong_to_their_thread() {
    let server = started!(RedisServer::start());
    let cache = shared_only(&server.url(), "nest");
    cache
        .set_many(&[("a", 1u32), ("b", 2u32), ("c", 3u32)], MIN)
        .unwrap();
    reset_stats(&server);
    cache.preload(["a"], || {
        cache.preload(["b"], || {
            assert_eq!(cache.get::<u32>("a"), Some(1));
            assert_eq!(cache.get::<u32>("b"), Some(2));
            assert_eq!(trips(&server), (0, 2, 0), "two MGETs, no GET");
            // Another thread has no scope: it asks Redis.
            std::thread::scope(|s| {
                s.spawn(|| assert_eq!(cache.get::<u32>("b"), Some(2)));
            });
            assert_eq!(trips(&server).0, 1);
        });
        // The inner scope ended with its closure.
        assert_eq!(cache.get::<u32>("b"), Some(2));
        assert_eq!(cache.get::<u32>("a"), Some(1));
        assert_eq!(
            trips(&server).0,
            2,
            "b was read again; a still from the scope"
        );
    });
}

#[test]
fn a_scope_over_a_tiered_cache_fetches_only_what_the_local_tier_lacks() {
    let server = started!(RedisServer::start());
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("tiered")
        .build();
    cache.set("local", &1u32, MIN).unwrap();
    shared_only(&server.url(), "tiered")
        .set("remote", &2u32, MIN)
        .unwrap();
    reset_stats(&server);
    cache.preload(["local", "remote"], || {
        assert_eq!(cache.get::<u32>("local"), Some(1));
        assert_eq!(cache.get::<u32>("remote"), Some(2));
    });
    assert_eq!(trips(&server), (0, 1, 0));
    let mut raw = server.raw();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut raw)
        .unwrap();
    let mget = info
        .lines()
        .find(|l| l.starts_with("cmdstat_mget"))
        .unwrap();
    assert!(mget.contains("calls=1"), "{mget}");
}

#[test]
fn get_many_of_a_hundred_keys_is_one_round_trip() {
    let server = started!(RedisServer::start());
    let cache = shared_only(&server.url(), "batch");
    let items: Vec<(String, u32)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
    reset_stats(&server);
    cache.set_many(&items, MIN).unwrap();
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let got = cache.get_many::<u32>(&keys);
    assert_eq!(got, (0..100).map(Some).collect::<Vec<_>>());
    cache.delete_many(&keys).unwrap();
    let c = command_calls(&server);
    assert_eq!(c.get("mget"), Some(&1));
    assert_eq!(c.get("get"), None);
    assert_eq!(c.get("unlink"), Some(&1));
    // The 100 SETs went in one pipeline: one round trip, 100 commands.
    assert_eq!(c.get("set"), Some(&100));
    assert!(cache.get_many::<u32>(&keys).iter().all(Option::is_none));
}

static ASYNC_FRAGMENTS: Runs = Runs::new();

#[quickcache(cache = "preload-async", timeout = 60)]
async fn async_fragment(id: u32) -> String {
    ASYNC_FRAGMENTS.hit();
    tokio::task::yield_now().await;
    format!("<p>{id}</p>")
}

async fn async_page() -> String {
    let mut out = String::new();
    for id in 0..50 {
        out.push_str(&async_fragment(id).await);
    }
    out
}

#[test]
fn an_async_scope_follows_its_task_across_threads() {
    let server = started!(RedisServer::start());
    let cache = shared_only(&server.url(), "apage");
    cachefn::register("preload-async", cache.clone());
    let keys: Vec<cachefn::Key> = (0..50).map(async_fragment::key).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cold = cache.preload_async(keys.clone(), async_page()).await;
        assert_eq!(ASYNC_FRAGMENTS.get(), 50);
        reset_stats(&server);
        let task = {
            let (cache, keys) = (cache.clone(), keys.clone());
            tokio::spawn(async move { cache.preload_async(keys, async_page()).await })
        };
        assert_eq!(task.await.unwrap(), cold);
        assert_eq!(trips(&server), (0, 1, 0));
        reset_stats(&server);
        assert_eq!(async_page().await, cold);
        assert_eq!(trips(&server), (50, 0, 0));
        // Nested async scopes.
        reset_stats(&server);
        let (first, second) = keys.split_at(25);
        let nested = cache
            .preload_async(first.to_vec(), async {
                cache.preload_async(second.to_vec(), async_page()).await
            })
            .await;
        assert_eq!(nested, cold);
        assert_eq!(trips(&server), (0, 2, 0));
    });
    assert_eq!(ASYNC_FRAGMENTS.get(), 50);
}

static DELETED_RUNS: Runs = Runs::new();

#[quickcache(cache = "preload-coherent", timeout = 600, local_timeout = 60)]
fn deleted_fragment(id: u32) -> String {
    DELETED_RUNS.hit();
    format!("computed {id}")
}

/// A key preloaded by a scope, then deleted by another client while the
/// scope runs: the scope may serve what it fetched (it is a snapshot), but
/// the local tier must not keep the deleted value once the scope ends
/// (the change counter is the one from before the `MGET`).
#[test]
fn a_key_deleted_during_a_scope_does_not_outlive_it_locally() {
    let server = started!(RedisServer::start());
    let url = server.url();
    // Generous deadlines: a write that times out on a busy machine would
    // fail the round instead of testing it.
    let patient = || {
        Redis::builder(&url)
            .response_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let cache = Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(patient())
        .prefix("preload-coh")
        .build();
    cachefn::register("preload-coherent", cache.clone());
    let other = Cache::builder()
        .shared(patient())
        .prefix("preload-coh")
        .build();
    let local = cache.local().unwrap().clone();
    let mut raw = server.raw();
    let ttl = Duration::from_secs(600);
    let frag = deleted_fragment::key(1);
    let stored = [
        cache.storage_key("k"),
        cache.storage_key(&frag),
        cache.storage_key("probe"),
    ];
    let rounds = 8;
    let mut outlived = 0;
    for round in 0..rounds {
        other.set("k", &round, ttl).unwrap();
        other.set(&frag, &format!("stored {round}"), ttl).unwrap();
        // A key kept locally, deleted with the others: once its local copy
        // is gone, the feed has handled the deletes.
        let start = std::time::Instant::now();
        loop {
            cache.set("probe", &1u32, ttl).unwrap();
            if local.get::<u32>("probe").is_some() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no feed");
        }
        let runs = DELETED_RUNS.get();
        let (in_scope, fragment) = cache.preload(["k", frag.as_str()], || {
            let _: () = redis::pipe()
                .atomic()
                .del(&stored[..])
                .query(&mut raw)
                .unwrap();
            let start = std::time::Instant::now();
            while local.get::<u32>("probe").is_some() {
                assert!(start.elapsed() < Duration::from_secs(5), "no invalidation");
                std::thread::sleep(Duration::from_millis(1));
            }
            (cache.get::<u32>("k"), deleted_fragment(1))
        });
        // Inside the scope: what the MGET fetched.
        assert_eq!(in_scope, Some(round));
        assert_eq!(fragment, format!("stored {round}"));
        assert_eq!(DELETED_RUNS.get(), runs);
        // After it: the deletes hold, locally too.
        let kept = (local.get::<u32>("k"), cache.get::<u32>("k"));
        let frag_now = deleted_fragment(1);
        if kept != (None, None) || frag_now != "computed 1" {
            outlived += 1;
        }
        deleted_fragment::clear(1).unwrap();
    }
    assert_eq!(
        outlived, 0,
        "a deleted value outlived its scope in {outlived} of {rounds} rounds"
    );
}
