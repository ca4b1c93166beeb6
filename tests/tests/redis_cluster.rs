//! The Redis Cluster shared tier against real clusters of six
//! `redis-server` processes (three masters, three replicas) that the tests
//! start on free loopback ports, and in which they kill masters: two
//! clusters, one per test (run side by side), each test a sequence of
//! steps on its cluster, the one that kills a master last.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memory, RedisCluster};
use cachefn::{quickcache, Cache};
use cachefn_tests::child::{self, Talker};
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

static COHERENT_RUNS: Runs = Runs::new();

/// The other process's memoized function (the first test's writes): its
/// body says who computed the value.
#[quickcache(cache = "cluster-coherent", timeout = 600, local_timeout = 60)]
fn shown(id: u32) -> String {
    COHERENT_RUNS.hit();
    format!("B{id}#{}", COHERENT_RUNS.get())
}

/// The same, for the failover test's writes (its own cache name, as both
/// tests run at once in this process).
#[quickcache(cache = "cluster-coherent-failover", timeout = 600, local_timeout = 60)]
fn shown_f(id: u32) -> String {
    COHERENT_RUNS.hit();
    format!("B{id}#{}", COHERENT_RUNS.get())
}

const CHILD: &str = "coherence_child_entry";

/// The other process: keeps local copies for 60 s (or follows nothing,
/// with `invalidation(false)`) and answers `read`, `local` and `len`.
#[test]
fn coherence_child_entry() {
    let Ok(urls) = std::env::var("CACHEFN_CLUSTER_CHILD") else {
        return;
    };
    let urls: Vec<&str> = urls.split(',').collect();
    let invalidation = std::env::var("CACHEFN_CLUSTER_INVALIDATION").as_deref() == Ok("on");
    let prefix = std::env::var("CACHEFN_CLUSTER_PREFIX").unwrap();
    let cache = Cache::builder()
        .local(Memory::with_capacity(10_000))
        .shared(RedisCluster::open(&urls).unwrap())
        .prefix(prefix.as_str())
        .invalidation(invalidation)
        .build();
    cachefn::register("cluster-coherent", cache.clone());
    cachefn::register("cluster-coherent-failover", cache.clone());
    let failover = prefix == "cohf";
    let local = cache.local().unwrap().clone();
    child::serve(|line| {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let id: u32 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let key = if failover {
            shown_f::key(id)
        } else {
            shown::key(id)
        };
        match cmd {
            "read" if failover => shown_f(id),
            "read" => shown(id),
            "local" => format!("{:?}", local.get::<String>(key.as_str())),
            "len" => cache.local_store().unwrap().len().to_string(),
            other => panic!("unknown command {other}"),
        }
    });
}

/// Another process on the cluster, keeping local copies of the cache
/// `prefix`.
fn other_process(urls: &[String], prefix: &str, invalidation: bool) -> Talker {
    Talker::spawn(
        CHILD,
        &[
            ("CACHEFN_CLUSTER_CHILD", &urls.join(",")),
            ("CACHEFN_CLUSTER_PREFIX", prefix),
            (
                "CACHEFN_CLUSTER_INVALIDATION",
                if invalidation { "on" } else { "off" },
            ),
        ],
    )
}

/// Read `id` in `b` until it keeps the value in its local tier (its feed
/// vouches for it then); the value.
fn hold(b: &mut Talker, id: u32) -> String {
    let start = Instant::now();
    loop {
        let v = b.ask(&format!("read {id}"));
        if b.ask(&format!("local {id}")) == format!("Some({v:?})") {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the other process never kept {id} locally (last read: {v})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `b`'s answer to `read id` once it is not `old`, or after a second.
fn changed(b: &mut Talker, id: u32, old: &str) -> String {
    b.ask_until_changed(&format!("read {id}"), old, Duration::from_secs(1))
}

/// One id per master (by port) whose key, as `writer` stores it, lives
/// on that master.
fn one_id_per_master(
    cluster: &RedisClusterServers,
    writer: &Cache,
    key: fn(u32) -> cachefn::Key,
) -> HashMap<u16, u32> {
    let mut ids = HashMap::new();
    for id in 0..1000 {
        let port = cluster.master_of(&writer.storage_key(key(id)));
        ids.entry(port).or_insert(id);
        if ids.len() == 3 {
            return ids;
        }
    }
    panic!("no key on some master: {ids:?}");
}

/// Retry a write until the cluster takes it (while it fails over).
fn written(mut write: impl FnMut() -> Result<(), cachefn::Error>) {
    let start = Instant::now();
    while let Err(e) = write() {
        assert!(start.elapsed() < Duration::from_secs(10), "{e}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

    // A prefix clear while a slot is half migrated: the keys already moved
    // are on a node that answers `MOVED` to a plain `UNLINK` (it imports
    // the slot) and `ASK`s come back from the node that still owns it.
    let mine: Vec<String> = (0..20).map(|i| format!("mig:{{mig}}:{i}")).collect();
    let theirs: Vec<String> = (0..20).map(|i| format!("keep:{{mig}}:{i}")).collect();
    for k in mine.iter().chain(&theirs) {
        raw.set(k, b"v", MIN).unwrap();
    }
    let slot: u16 = cluster
        .ask(masters[0], &["CLUSTER", "KEYSLOT", "{mig}"])
        .unwrap();
    let from = cluster.master_of("{mig}");
    let to = *masters.iter().find(|&&p| p != from).unwrap();
    let moved: Vec<&str> = mine[..10]
        .iter()
        .chain(&theirs[..10])
        .map(String::as_str)
        .collect();
    cluster.migrate_partly(slot, from, to, &moved);
    assert_eq!(cluster.keys(to, "mig:*").len(), 10);
    raw.clear_prefix("mig:").unwrap();
    for &port in &masters {
        assert_eq!(cluster.keys(port, "mig:*"), Vec::<String>::new(), "{port}");
    }
    // Nothing else went.
    cluster.finish_migration(slot, from, to);
    assert_eq!(cluster.keys(to, "keep:*").len(), 20);
    let values = raw
        .get_many(&theirs.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some(b"v".as_slice())));

    // Coherence: another process keeps local copies for 60 s and sees every
    // change this one makes, on every master, within a second.
    let writer = shared_only(&urls, "coh");
    cachefn::register("cluster-coherent", writer.clone());
    let ids = one_id_per_master(&cluster, &writer, shown::key);
    let mut b = other_process(&urls, "coh", true);
    // The control: without invalidation the other process keeps its copy.
    let mut b_off = other_process(&urls, "coh", false);
    for &id in ids.values() {
        shown::set_cached(id, "A v1".to_owned()).unwrap();
        assert_eq!(hold(&mut b, id), "A v1");
        assert_eq!(hold(&mut b_off, id), "A v1");
    }
    for (&port, &id) in &ids {
        shown::set_cached(id, "A v2".to_owned()).unwrap();
        assert_eq!(changed(&mut b, id, "A v1"), "A v2", "a write on {port}");
        assert_eq!(
            changed(&mut b_off, id, "A v1"),
            "A v1",
            "with invalidation(false) the local copy lives its local_timeout"
        );
    }
    drop(b_off);
    // A clears a key on each master, then the whole function: the other
    // process computes again.
    for (&port, &id) in &ids {
        let old = hold(&mut b, id);
        shown::clear(id).unwrap();
        let v = changed(&mut b, id, &old);
        assert!(v.starts_with('B') && v != old, "{v} after {old} on {port}");
    }
    let olds: Vec<(u32, String)> = ids.values().map(|&id| (id, hold(&mut b, id))).collect();
    shown::clear_all().unwrap();
    for (id, old) in olds {
        let v = changed(&mut b, id, &old);
        assert!(v.starts_with('B') && v != old, "{v} after {old}");
    }

    // One master's invalidation connection killed: the other process never
    // serves the value it held, and follows every master again after.
    for (round, (&port, &id)) in ids.iter().enumerate() {
        let old = hold(&mut b, id);
        let clients = cluster.tracking_clients(port, b.pid());
        assert_eq!(clients.len(), 1, "one connection per master: {clients:?}");
        let killed: i64 = cluster
            .ask(port, &["CLIENT", "KILL", "ID", &clients[0]])
            .unwrap();
        assert_eq!(killed, 1);
        // The other process learns of the kill when its feed thread reads
        // the closed socket (as for a single server, the one window a
        // client cannot close); this one writes after it.
        std::thread::sleep(Duration::from_millis(20));
        let new = format!("A k{round}");
        shown::set_cached(id, new.clone()).unwrap();
        for _ in 0..20 {
            assert_eq!(b.ask(&format!("read {id}")), new, "after {old} on {port}");
        }
        assert_eq!(hold(&mut b, id), new, "never followed {port} again");
        for &other in ids.values() {
            let old = hold(&mut b, other);
            let newer = format!("A n{round}.{other}");
            shown::set_cached(other, newer.clone()).unwrap();
            assert_eq!(changed(&mut b, other, &old), newer);
        }
    }
}

static FAILOVER_RUNS: Runs = Runs::new();

#[quickcache(cache = "cluster-failover", timeout = 600)]
fn doubled(id: u32) -> u32 {
    FAILOVER_RUNS.hit();
    id * 2
}

static DOWN_RUNS: Runs = Runs::new();

#[quickcache(cache = "cluster-late", timeout = 600)]
fn late(id: u32) -> u32 {
    DOWN_RUNS.hit();
    id + 1
}

/// The other cluster: an application started before it, then one of its
/// masters SIGKILLed under load and replaced by its replica.
#[test]
fn a_cluster_that_starts_late_and_loses_a_master_is_followed() {
    let mut cluster = started!(RedisClusterServers::start_unformed());
    let urls = cluster.urls();

    // Down at the start: building works, calls compute, quickly.
    cluster.stop_all();
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
    for i in 0..30 {
        late(i);
    }
    let before = DOWN_RUNS.get();
    for i in 0..30 {
        assert_eq!(late(i), i + 1);
    }
    assert_eq!(DOWN_RUNS.get(), before);

    // Before the failover: 300 memoized values, another process holding
    // local copies of a key on each master, and a tier that has read the
    // slot map (and will not read it again before its clear).
    cachefn::register("cluster-failover", shared_only(&urls, "failover"));
    for i in 0..300 {
        assert_eq!(doubled(i), i * 2);
    }
    assert_eq!(FAILOVER_RUNS.get(), 300);
    let writer = shared_only(&urls, "cohf");
    cachefn::register("cluster-coherent-failover", writer.clone());
    let ids = one_id_per_master(&cluster, &writer, shown_f::key);
    let mut b = other_process(&urls, "cohf", true);
    for &id in ids.values() {
        shown_f::set_cached(id, "A v1".to_owned()).unwrap();
        assert_eq!(hold(&mut b, id), "A v1");
    }
    let stale = RedisCluster::open(&urls).unwrap();
    let doomed: Vec<String> = (0..60).map(|i| format!("stale:{i}")).collect();
    for k in &doomed {
        stale.set(k, b"v", MIN).unwrap();
    }
    stale.set("kept:1", b"v", MIN).unwrap();
    let victim = cluster.masters()[1];
    let replica = cluster.replicas()[&victim][0];
    assert!(!cluster.keys(victim, "stale:*").is_empty());
    // The replica has every write before its master dies.
    let start = Instant::now();
    while cluster.keys(replica, "stale:*").len() != cluster.keys(victim, "stale:*").len() {
        assert!(start.elapsed() < Duration::from_secs(5), "replication lags");
        std::thread::sleep(Duration::from_millis(20));
    }

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

    // Coherence resumes on the new master: the other process never serves
    // the value it held once this one has replaced it there, keeps copies
    // again (every master, the new one included, vouches for it), and
    // follows the next change.
    let id = ids[&victim];
    written(|| shown_f::set_cached(id, "A v2".to_owned()));
    for _ in 0..20 {
        assert_eq!(b.ask(&format!("read {id}")), "A v2");
    }
    assert_eq!(hold(&mut b, id), "A v2");
    assert_eq!(cluster.tracking_clients(replica, b.pid()).len(), 1);
    shown_f::set_cached(id, "A v3".to_owned()).unwrap();
    assert_eq!(
        changed(&mut b, id, "A v2"),
        "A v3",
        "a write on the new master"
    );
    for (&port, &other) in ids.iter().filter(|(&p, _)| p != victim) {
        let old = hold(&mut b, other);
        shown_f::set_cached(other, "A v4".to_owned()).unwrap();
        assert_eq!(changed(&mut b, other, &old), "A v4", "a write on {port}");
    }

    // A clear by a tier whose map still names the dead master: the map is
    // read again and the promoted replica cleared too.
    stale.clear_prefix("stale:").unwrap();
    for port in cluster.masters() {
        assert_eq!(
            cluster.keys(port, "stale:*"),
            Vec::<String>::new(),
            "{port}"
        );
    }
    assert_eq!(stale.get("kept:1").unwrap(), Some(b"v".to_vec()));
}

static FROZEN_RUNS: Runs = Runs::new();

#[quickcache(cache = "cluster-frozen", timeout = 600)]
fn tripled(id: u32) -> u32 {
    FROZEN_RUNS.hit();
    id * 3
}

/// One master frozen (SIGSTOP: its port still accepts connections, nothing
/// answers) under calls on every key: no call waits much past its deadline
/// (250 ms to connect, 250 ms a round trip, a redirect), every value is the
/// body's, the cluster fails the frozen master over, and once it thaws the
/// tier serves every key again without computing it.
#[test]
fn a_frozen_master_holds_no_call_past_its_deadline() {
    let cluster = started!(RedisClusterServers::start());
    let urls = cluster.urls();
    cachefn::register("cluster-frozen", shared_only(&urls, "frozen"));
    for i in 0..120 {
        assert_eq!(tripled(i), i * 3);
    }
    assert_eq!(FROZEN_RUNS.get(), 120);
    let victim = cluster.masters()[2];
    cluster.freeze(victim);
    let frozen = Instant::now();
    let mut slowest = Duration::ZERO;
    // Three seconds of calls: past the node timeout (1 s), so the frozen
    // master's slots move to its replica meanwhile.
    while frozen.elapsed() < Duration::from_secs(3) {
        for i in 0..120 {
            let start = Instant::now();
            assert_eq!(tripled(i), i * 3, "a wrong value");
            slowest = slowest.max(start.elapsed());
        }
    }
    cluster.thaw(victim);
    assert!(slowest < Duration::from_secs(2), "a call took {slowest:?}");
    assert!(
        cluster.wait_ok(Duration::from_secs(30)),
        "the cluster did not recover"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = FROZEN_RUNS.get();
        for i in 0..120 {
            assert_eq!(tripled(i), i * 3);
        }
        if FROZEN_RUNS.get() == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still computing after the thaw: {} runs in the last pass",
            FROZEN_RUNS.get() - before
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Coherence on a cluster under concurrent writers (the same echo checks as
/// on one Redis, read on each master's feed connection): two threads write
/// a key of every master at once, then another client deletes it; and
/// `set_many` / `add` race another client's `SET`. No round may leave a
/// local copy that differs from the cluster.
#[test]
fn concurrent_writers_on_every_master_never_leave_a_stale_copy() {
    let servers = started!(RedisClusterServers::start());
    let urls = servers.urls();
    // Generous deadlines: a call that times out on a busy machine would
    // fail the round's write instead of testing it.
    let patient = || {
        RedisCluster::builder(&urls)
            .response_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let cache = Cache::builder()
        .local(Memory::with_capacity(10_000))
        .shared(patient())
        .prefix("crace")
        .build();
    let other = Cache::builder().shared(patient()).prefix("crace").build();
    let ttl = Duration::from_secs(600);
    // A key on each master.
    let mut keys: Vec<String> = Vec::new();
    for i in 0..200 {
        let key = format!("k{i}");
        let master = servers.master_of(&cache.storage_key(&key));
        if !keys
            .iter()
            .any(|k| servers.master_of(&cache.storage_key(k)) == master)
        {
            keys.push(key);
        }
    }
    assert_eq!(keys.len(), servers.masters().len());
    // The feed is live once an own write is kept locally.
    let start = Instant::now();
    while cache.local().unwrap().get::<u64>(&keys[0]) != Some(1) {
        cache.set(&keys[0], &1u64, ttl).unwrap();
        assert!(start.elapsed() < Duration::from_secs(20), "no feed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let agrees = |key: &str| {
        let start = Instant::now();
        loop {
            let now: Option<u64> = other.get(key);
            if cache.get::<u64>(key) == now {
                return true;
            }
            if start.elapsed() > Duration::from_secs(1) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let rounds = 30u64;
    let mut stale = Vec::new();
    for round in 0..rounds {
        for key in &keys {
            // Two writes at once, kept locally, then another client's delete.
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (cache, barrier) = (&cache, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        cache.set(key, &(round * 10 + t), ttl).unwrap();
                    });
                }
            });
            cache.get::<u64>(key);
            other.delete(key).unwrap();
            if !agrees(key) {
                stale.push(format!("{key} deleted, round {round}"));
            }
            // set_many and add racing another client's SET.
            for add in [false, true] {
                other.delete(key).unwrap();
                let barrier = std::sync::Barrier::new(2);
                std::thread::scope(|s| {
                    let (cache, other, barrier) = (&cache, &other, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        if add {
                            cache.add(key, &(round * 10 + 5), ttl).unwrap();
                        } else {
                            cache.set_many(&[(key, round * 10 + 5)], ttl).unwrap();
                        }
                    });
                    s.spawn(move || {
                        barrier.wait();
                        other.set(key, &(round * 10 + 6), ttl).unwrap();
                    });
                });
                if !agrees(key) {
                    stale.push(format!("{key} add={add}, round {round}"));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {} rounds left a stale copy: {stale:?}",
        stale.len(),
        rounds as usize * keys.len() * 3
    );
}
