//! The Redis Cluster shared tier against real clusters of six
//! `redis-server` processes (three masters, three replicas) that the tests
//! start on free loopback ports, and in which they kill masters.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memory, RedisCluster};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_cluster::RedisClusterServers;
use cachefn_tests::started;
use cachefn_tests::{child_answer, run_child, Runs};

const MIN: Duration = Duration::from_secs(60);

fn shared_only(urls: &[String], prefix: &str) -> Cache {
    Cache::builder()
        .shared(RedisCluster::open(urls).unwrap())
        .prefix(prefix)
        .build()
}

static SPREAD_RUNS: Runs = Runs::new();

#[quickcache(cache = "cluster-spread", timeout = 60)]
fn expensive(id: u32) -> String {
    SPREAD_RUNS.hit();
    format!("value {id}")
}

static FRAGMENTS: Runs = Runs::new();

#[quickcache(cache = "cluster-page", timeout = 60)]
fn fragment(id: u32) -> String {
    FRAGMENTS.hit();
    format!("<li>{id}</li>")
}

fn page() -> String {
    (0..50).map(fragment).collect()
}

/// Per master: (round trips, GET calls, MGET calls) that `op` cost, the
/// fewest round trips of three tries (a replica's once-a-second
/// `REPLCONF ACK` is a read of its master too). Round trips are the
/// master's `total_reads_processed`, less what asking costs without `op`.
fn per_master_cost(
    cluster: &RedisClusterServers,
    mut op: impl FnMut(),
) -> HashMap<u16, (u64, u64, u64)> {
    let mut best: HashMap<u16, (u64, u64, u64)> = HashMap::new();
    let masters = cluster.masters();
    for _ in 0..3 {
        // The reads that asking costs by itself (connecting, INFO).
        cluster.reset_stats();
        let base: Vec<u64> = masters.iter().map(|&p| cluster.reads(p)).collect();
        cluster.reset_stats();
        op();
        for (&port, base) in masters.iter().zip(base) {
            let trips = cluster.reads(port).saturating_sub(base);
            let calls = cluster.command_calls(port);
            let n = |c: &str| calls.get(c).copied().unwrap_or(0);
            let cost = (trips, n("get"), n("mget"));
            best.entry(port)
                .and_modify(|b| {
                    if cost.0 < b.0 {
                        *b = cost;
                    }
                })
                .or_insert(cost);
        }
    }
    best
}

/// One cluster for the tests that do not kill nodes, run in turn.
#[test]
fn one_cluster_spreads_keys_batches_per_master_and_clears_by_prefix() {
    if let Ok(mode) = std::env::var("CACHEFN_CHILD") {
        let urls: Vec<String> = std::env::var("CACHEFN_CLUSTER_URLS")
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(mode, "read");
        cachefn::register("cluster-spread", shared_only(&urls, "spread"));
        let wrong = (0..60)
            .filter(|&i| expensive(i) != format!("value {i}"))
            .count();
        println!("\nCHILD runs={} wrong={wrong}", SPREAD_RUNS.get());
        return;
    }
    let cluster = started!(RedisClusterServers::start());
    let urls = cluster.urls();
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");

    // Keys spread over every master, and another process is served them.
    cachefn::register(
        "cluster-spread",
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(RedisCluster::open(&urls[..1]).unwrap())
            .prefix("spread")
            .build(),
    );
    for i in 0..60 {
        assert_eq!(expensive(i), format!("value {i}"));
    }
    assert_eq!(SPREAD_RUNS.get(), 60);
    let mut total = 0;
    for &port in &masters {
        let n = cluster.keys(port, "spread:*").len();
        assert!(n > 5, "master {port} holds {n} of the 60 keys");
        total += n;
    }
    assert_eq!(total, 60);
    let out = run_child(
        "one_cluster_spreads_keys_batches_per_master_and_clears_by_prefix",
        &[
            ("CACHEFN_CHILD", "read"),
            ("CACHEFN_CLUSTER_URLS", &urls.join(",")),
        ],
    );
    assert_eq!(child_answer(&out), "runs=0 wrong=0", "{out}");

    // get_many of 100 keys: at most one round trip per master, no GET.
    let batch = shared_only(&urls, "batch");
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let items: Vec<(&str, u32)> = keys.iter().map(String::as_str).zip(0..).collect();
    batch.set_many(&items, MIN).unwrap();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let expected: Vec<Option<u32>> = (0..100).map(Some).collect();
    assert_eq!(batch.get_many::<u32>(&key_refs), expected);
    let cost = per_master_cost(&cluster, || {
        assert_eq!(batch.get_many::<u32>(&key_refs), expected);
    });
    assert_eq!(cost.len(), 3);
    for (port, (trips, gets, mgets)) in &cost {
        assert!(
            *trips <= 1,
            "master {port}: {trips} round trips for get_many"
        );
        assert_eq!(*gets, 0, "master {port}: a GET per key");
        assert!(*mgets >= 1, "master {port}: no MGET");
    }
    eprintln!("get_many of 100 keys, per master (round trips, GET, MGET): {cost:?}");

    // A preloaded page of 50 fragments: one round trip per master.
    let page_cache = shared_only(&urls, "page");
    cachefn::register("cluster-page", page_cache.clone());
    let page_keys = || (0..50).map(fragment::key).collect::<Vec<_>>();
    let cold = page_cache.preload(page_keys(), page);
    assert_eq!(FRAGMENTS.get(), 50);
    let cost = per_master_cost(&cluster, || {
        assert_eq!(page_cache.preload(page_keys(), page), cold);
    });
    assert_eq!(FRAGMENTS.get(), 50, "never recomputed");
    for (port, (trips, gets, _)) in &cost {
        assert!(
            *trips <= 1,
            "master {port}: {trips} round trips for preload"
        );
        assert_eq!(*gets, 0, "master {port}: a GET inside the scope");
    }
    let unscoped = per_master_cost(&cluster, || assert_eq!(page(), cold));
    let gets: u64 = unscoped.values().map(|c| c.1).sum();
    assert_eq!(gets, 50, "without a scope, one GET per fragment");

    // A prefix clear empties the prefix on every master, and nothing else.
    let raw = RedisCluster::open(&urls).unwrap();
    let theirs: Vec<String> = (0..30)
        .flat_map(|i| {
            [
                format!("other:{i}"),
                format!("blogger:{i}"),
                format!("blog*:{i}"),
            ]
        })
        .chain(["blog".to_owned()])
        .collect();
    for k in &theirs {
        raw.set(k, b"theirs", MIN).unwrap();
    }
    let blog = shared_only(&urls, "blog");
    for i in 0..600 {
        blog.set(format!("post:{i}"), &i, MIN).unwrap();
    }
    for &port in &masters {
        assert!(!cluster.keys(port, "blog:*").is_empty(), "master {port}");
    }
    blog.clear().unwrap();
    let mut left: Vec<String> = masters
        .iter()
        .flat_map(|&port| cluster.keys(port, "*"))
        .filter(|k| {
            !k.starts_with("spread:") && !k.starts_with("batch:") && !k.starts_with("page:")
        })
        .collect();
    left.sort();
    let mut want = theirs.clone();
    want.sort();
    assert_eq!(left, want);

    // The backend's own operations, sync and async.
    assert!(raw.add("nx", b"1", MIN).unwrap());
    assert!(!raw.add("nx", b"2", MIN).unwrap());
    assert_eq!(raw.incr("n", 5).unwrap(), 5);
    assert_eq!(raw.incr("n", -2).unwrap(), 3);
    assert!(matches!(raw.incr("nx{t}", 1), Ok(1)));
    assert!(matches!(
        raw.incr("other:1", 1),
        Err(cachefn::Error::NotACounter(_))
    ));
    assert!(raw.has("nx").unwrap());
    assert!(raw.delete("nx").unwrap());
    assert!(!raw.delete("nx").unwrap());
    raw.delete_many(&["other:1", "other:2", "n"]).unwrap();
    assert_eq!(
        raw.get_many(&["other:1", "other:3", "n"]).unwrap(),
        vec![None, Some(b"theirs".to_vec()), None]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        raw.set_async("a{x}", b"1", MIN).await.unwrap();
        raw.set_many_async(&[("b{x}", b"2".as_slice()), ("zz", b"3".as_slice())], MIN)
            .await
            .unwrap();
        assert_eq!(
            raw.get_many_async(&["a{x}", "b{x}", "zz", "none"])
                .await
                .unwrap(),
            vec![
                Some(b"1".to_vec()),
                Some(b"2".to_vec()),
                Some(b"3".to_vec()),
                None
            ]
        );
        assert_eq!(raw.get_async("zz").await.unwrap(), Some(b"3".to_vec()));
        raw.clear_prefix_async("other:").await.unwrap();
        assert_eq!(raw.get_async("other:3").await.unwrap(), None);
    });
}

static FAILOVER_RUNS: Runs = Runs::new();

#[quickcache(cache = "cluster-failover", timeout = 600)]
fn doubled(id: u32) -> u32 {
    FAILOVER_RUNS.hit();
    id * 2
}

#[test]
fn a_killed_master_is_followed_to_its_promoted_replica() {
    let mut cluster = started!(RedisClusterServers::start());
    let urls = cluster.urls();
    let cache = shared_only(&urls, "failover");
    cachefn::register("cluster-failover", cache);
    for i in 0..300 {
        assert_eq!(doubled(i), i * 2);
    }
    assert_eq!(FAILOVER_RUNS.get(), 300);
    let victim = cluster.masters()[1];
    let replica = cluster.replicas()[&victim][0];

    // Load on every key while the master dies and its replica takes over.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                let mut calls = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    for i in (w..300).step_by(4) {
                        let start = Instant::now();
                        assert_eq!(doubled(i), i * 2, "a wrong value");
                        slowest = slowest.max(start.elapsed());
                        calls += 1;
                    }
                }
                (slowest, calls)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    cluster.kill(victim);
    assert!(
        cluster.wait_ok(Duration::from_secs(30)),
        "the replica was not promoted"
    );
    assert!(
        cluster.masters().contains(&replica),
        "{:?}",
        cluster.masters()
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let (slowest, calls) = w.join().unwrap();
        // One call: at most two round trips of 250 ms + 250 ms to connect.
        assert!(slowest < Duration::from_secs(3), "a call took {slowest:?}");
        assert!(calls > 300, "{calls}");
    }

    // Served from Redis again, the promoted replica's slots included: a pass
    // over every key computes nothing.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = FAILOVER_RUNS.get();
        for i in 0..300 {
            assert_eq!(doubled(i), i * 2);
        }
        if FAILOVER_RUNS.get() == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still computing after the failover: {} runs in the last pass",
            FAILOVER_RUNS.get() - before
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

static DOWN_RUNS: Runs = Runs::new();

#[quickcache(cache = "cluster-late", timeout = 600)]
fn late(id: u32) -> u32 {
    DOWN_RUNS.hit();
    id + 1
}

#[test]
fn an_application_started_with_the_cluster_down_works_once_it_is_up() {
    let mut cluster = started!(RedisClusterServers::start_unformed());
    let urls = cluster.urls();
    cluster.stop_all();
    // Nothing listens: building works, calls compute, quickly.
    cachefn::register("cluster-late", shared_only(&urls, "late"));
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(late(1), 2);
    }
    assert_eq!(DOWN_RUNS.get(), 20);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // Up but not yet a cluster: still computed.
    cluster.restart_all();
    assert_eq!(late(1), 2);
    // A cluster: served from it once the tier reads its map.
    cluster.form();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        late(2);
        let before = DOWN_RUNS.get();
        late(2);
        if DOWN_RUNS.get() == before {
            break;
        }
        assert!(Instant::now() < deadline, "never served from the cluster");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut seen = HashSet::new();
    for i in 0..30 {
        late(i);
        seen.insert(i);
    }
    let before = DOWN_RUNS.get();
    for i in seen {
        assert_eq!(late(i), i + 1);
    }
    assert_eq!(DOWN_RUNS.get(), before);
}
