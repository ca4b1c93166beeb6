//! `single_flight = "shared"`: a cold key is computed once across processes.
//!
//! The processes are child processes of this test binary (running
//! [`child_process_entry`]) on one real `redis-server`. Bodies count their
//! runs in Redis (`INCR`), so the count covers every process.

use std::io::Write;
use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memory, Redis, RedisCluster};
use cachefn::{quickcache, Cache};
use cachefn_tests::child::Runner;
use cachefn_tests::redis_cluster::RedisClusterServers;
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::server_process::signal_process;
use cachefn_tests::{started, Runs};
use redis::Commands;

/// The tests of this file share the registry's names: one at a time.
static SERIAL: parking_lot::Mutex<()> = parking_lot::const_mutex(());

const CHILD_TEST: &str = "child_process_entry";
const PREFIX: &str = "sf";

/// The Redis server of this process's test (children: from the environment).
static URL: parking_lot::Mutex<Option<String>> = parking_lot::const_mutex(None);

fn raw() -> redis::Connection {
    let url = URL.lock().clone().expect("the test's Redis URL");
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .expect("connect to the test server")
}

/// A body run, counted in Redis; its number (1 for the first anywhere).
fn count_run() -> i64 {
    raw().incr("runs", 1).unwrap()
}

/// Note in Redis (`lease_seen`) whether the running body holds its key's
/// lease, so that a test of the lease's release cannot pass without one.
fn note_lease(key: cachefn::Key) {
    let lease = format!("{PREFIX}:{key}#lease");
    let held: bool = raw().exists(&lease).unwrap();
    let _: () = raw().set("lease_seen", held).unwrap();
}

fn body_time() -> Duration {
    let ms = std::env::var("SF_BODY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_500);
    Duration::from_millis(ms)
}

/// Now, in milliseconds since the Unix epoch: a clock every process reads
/// alike, for times one process notes and another compares.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The holder of the first run in a "kill" test: says who it is and when
/// its body began (after it took the lease), then waits to be killed.
fn maybe_hang(run: i64) {
    let mode = std::env::var("SF_MODE");
    if run == 1 && matches!(mode.as_deref(), Ok("kill") | Ok("stuck")) {
        let _: () = raw().set("holder_at", unix_ms()).unwrap();
        let _: () = raw().set("holder_pid", std::process::id()).unwrap();
        std::thread::sleep(Duration::from_secs(120));
    }
}

#[quickcache(cache = "sf", timeout = 600, single_flight = "shared")]
fn square(x: u64) -> u64 {
    let run = count_run();
    maybe_hang(run);
    std::thread::sleep(body_time());
    x * x
}

/// The control: the same body, computed once per process.
#[quickcache(cache = "sf", timeout = 600, single_flight = "process")]
fn square_per_process(x: u64) -> u64 {
    count_run();
    std::thread::sleep(body_time());
    x * x
}

#[quickcache(cache = "sf", timeout = 600, single_flight = "shared")]
async fn square_async(x: u64) -> u64 {
    let run = count_run();
    maybe_hang(run);
    tokio::time::sleep(body_time()).await;
    x * x
}

/// The first run anywhere fails (after a while); later runs succeed.
#[quickcache(cache = "sf", timeout = 600, single_flight = "shared")]
fn fallible(x: u64) -> Result<u64, String> {
    let run = count_run();
    std::thread::sleep(body_time());
    if run == 1 {
        Err("the first run fails".into())
    } else {
        Ok(x * x)
    }
}

/// The first run anywhere takes a minute (and is cancelled).
#[quickcache(cache = "sf", timeout = 600, single_flight = "shared")]
async fn slow_first(x: u64) -> u64 {
    if count_run() == 1 {
        note_lease(slow_first::key(x));
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    x + 1
}

fn shared_cache(url: &str, lease: Duration) -> Cache {
    let builder = Cache::builder();
    // Without a local tier there is no invalidation feed: waiters poll.
    let builder = if std::env::var("SF_LOCAL").as_deref() == Ok("off") {
        builder
    } else {
        builder.local(Memory::with_capacity(1_000))
    };
    builder
        .shared(Redis::open(url).unwrap())
        .prefix(PREFIX)
        .lease_timeout(lease)
        .build()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child's side: build the cache, say it is ready, wait for `go` in
/// Redis, run its callers, print `CHILD answers`.
#[test]
fn child_process_entry() {
    let Ok(url) = std::env::var("SF_URL") else {
        return;
    };
    *URL.lock() = Some(url.clone());
    let mode = std::env::var("SF_MODE").unwrap_or_default();
    let threads = env_num("SF_THREADS", 8) as usize;
    let lease = Duration::from_millis(env_num("SF_LEASE_MS", 1_000));
    cachefn::register("sf", shared_cache(&url, lease));
    let mut conn = raw();
    let _: i64 = conn.incr("ready", 1).unwrap();
    while !conn.exists::<_, bool>("go").unwrap() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let answers: Vec<String> = match mode.as_str() {
        "shared" | "kill" | "stuck" | "process" | "err" => std::thread::scope(|s| {
            let callers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| match mode.as_str() {
                        "process" => square_per_process(7).to_string(),
                        "err" => format!("{:?}", fallible(7)),
                        "stuck" => {
                            let answer = square(7).to_string();
                            let _: () = raw().rpush("answered_at", unix_ms()).unwrap();
                            answer
                        }
                        _ => square(7).to_string(),
                    })
                })
                .collect();
            callers.into_iter().map(|c| c.join().unwrap()).collect()
        }),
        "async" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let tasks: Vec<_> = (0..threads)
                    .map(|_| tokio::spawn(square_async(7)))
                    .collect();
                let mut answers = Vec::new();
                for t in tasks {
                    answers.push(t.await.unwrap().to_string());
                }
                answers
            })
        }
        "cancel" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let dropped = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(500), slow_first(1))
                    .await
                    .is_err()
            });
            println!("CHILD dropped={dropped}");
            std::io::stdout().flush().unwrap();
            // Stay alive (holding nothing): the lease must be gone anyway.
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        other => panic!("unknown mode {other:?}"),
    };
    println!("CHILD {}", answers.join(","));
}

/// Start `n` children with `env`, wait until each has built its cache,
/// then let them all go at once.
fn start_children(
    server: &RedisServer,
    n: usize,
    env: &[(&str, &str)],
) -> (Vec<Runner>, redis::Connection) {
    let url = server.url();
    *URL.lock() = Some(url.clone());
    let mut conn = server.raw();
    let _: () = redis::cmd("FLUSHDB").query(&mut conn).unwrap();
    let env: Vec<(&str, &str)> = [("SF_URL", url.as_str())]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    let children: Vec<Runner> = (0..n).map(|_| Runner::spawn(CHILD_TEST, &env)).collect();
    let start = Instant::now();
    while conn.get::<_, Option<usize>>("ready").unwrap().unwrap_or(0) < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the children never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _: () = conn.set("go", 1).unwrap();
    (children, conn)
}

fn runs(conn: &mut redis::Connection) -> i64 {
    conn.get::<_, Option<i64>>("runs").unwrap().unwrap_or(0)
}

fn expect_all(answer: Option<String>, each: &str, threads: usize) {
    let answer = answer.expect("a child ended without answering");
    let parts: Vec<&str> = answer.split(',').collect();
    assert_eq!(parts.len(), threads, "{answer}");
    assert!(parts.iter().all(|p| *p == each), "{answer}");
}

#[test]
fn four_processes_of_eight_threads_compute_a_cold_key_once() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    // The body (2.5 s) outlives the lease (1 s): the holder must renew it.
    let (children, mut conn) = start_children(&server, 4, &[("SF_MODE", "shared")]);
    for mut child in children {
        expect_all(child.answer(), "49", 8);
    }
    assert_eq!(runs(&mut conn), 1, "one body run across 4 processes");
}

#[test]
fn without_an_invalidation_feed_waiters_poll_for_the_value() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let (children, mut conn) = start_children(
        &server,
        4,
        &[
            ("SF_MODE", "shared"),
            ("SF_LOCAL", "off"),
            ("SF_THREADS", "4"),
        ],
    );
    for mut child in children {
        expect_all(child.answer(), "49", 4);
    }
    assert_eq!(runs(&mut conn), 1, "one body run across 4 processes");
}

#[test]
fn the_control_per_process_single_flight_computes_once_per_process() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let (children, mut conn) = start_children(&server, 4, &[("SF_MODE", "process")]);
    for mut child in children {
        expect_all(child.answer(), "49", 8);
    }
    // What the test above would see without the lease: each process
    // computes once (its 8 threads wait for one run; they all start
    // together, far less than the 2.5 s body apart, so no process finds
    // another's value stored).
    assert_eq!(runs(&mut conn), 4, "one run per process");
}

#[test]
fn async_callers_in_four_processes_compute_a_cold_key_once() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let (children, mut conn) =
        start_children(&server, 4, &[("SF_MODE", "async"), ("SF_THREADS", "32")]);
    for mut child in children {
        expect_all(child.answer(), "49", 32);
    }
    assert_eq!(runs(&mut conn), 1, "one body run across 4 processes");
}

#[test]
fn a_killed_holder_is_replaced_once_its_lease_lapses() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let start = Instant::now();
    let (children, mut conn) =
        start_children(&server, 4, &[("SF_MODE", "kill"), ("SF_BODY_MS", "300")]);
    // The process that runs the first body says so, then hangs in it.
    let holder = loop {
        if let Some(pid) = conn.get::<_, Option<u32>>("holder_pid").unwrap() {
            break pid;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no holder");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_millis(200));
    let killed_at = Instant::now();
    signal_process(holder, "-KILL");
    let mut answered = 0;
    for mut child in children {
        if child.pid() == holder {
            assert_eq!(child.answer(), None, "the killed process answered");
            continue;
        }
        expect_all(child.answer(), "49", 8);
        answered += 1;
    }
    assert_eq!(answered, 3);
    assert_eq!(runs(&mut conn), 2, "the killed run and one more");
    // A 1 s lease, a 0.3 s body: generous slack for a loaded machine.
    assert!(
        killed_at.elapsed() < Duration::from_secs(15),
        "the others waited {:?}",
        killed_at.elapsed()
    );
}

#[test]
fn waiters_of_a_stuck_holder_compute_after_six_lease_lifetimes() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let start = Instant::now();
    // The first body hangs for two minutes in a live process, renewing its
    // 1 s lease: the others wait 6 s, then compute themselves. (A shorter
    // lease lapses on a loaded machine whenever a renewal is a few hundred
    // milliseconds late, and another process then takes over early.)
    let (children, mut conn) = start_children(
        &server,
        4,
        &[
            ("SF_MODE", "stuck"),
            ("SF_LEASE_MS", "1000"),
            ("SF_BODY_MS", "100"),
            ("SF_THREADS", "2"),
        ],
    );
    let holder = loop {
        if let Some(pid) = conn.get::<_, Option<u32>>("holder_pid").unwrap() {
            break pid;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no holder");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut answered = 0;
    for mut child in children {
        if child.pid() == holder {
            continue; // still in its body; dropped (killed) below
        }
        expect_all(child.answer(), "49", 2);
        answered += 1;
    }
    assert_eq!(answered, 3);
    // The stuck run, then at most one per waiting process (those that give
    // up at the same moment each compute; a later one finds the value).
    let runs = runs(&mut conn);
    assert!((2..=4).contains(&runs), "{runs} runs");
    // Each waiter answered about six lease lifetimes (6 s) after the
    // holder took the lease: at least 4 s after its body began (the
    // slack: two lifetimes for scheduling), long before the holder's
    // 120 s body ends. Without the lease they answer after their own
    // 100 ms body.
    let holder_at: u64 = conn.get("holder_at").unwrap();
    let answered_at: Vec<u64> = conn.lrange("answered_at", 0, -1).unwrap();
    assert_eq!(answered_at.len(), 6, "{answered_at:?}");
    for at in answered_at {
        let after = Duration::from_millis(at.saturating_sub(holder_at));
        assert!(
            after >= Duration::from_secs(4),
            "a waiter answered {after:?} after the holder took the lease, not about six \
             lease lifetimes (6 s) later"
        );
        assert!(
            after < Duration::from_secs(30),
            "a waiter waited {after:?} for a holder that never stores"
        );
    }
}

#[test]
fn a_holder_whose_body_fails_lets_the_others_compute() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let start = Instant::now();
    let (children, mut conn) = start_children(
        &server,
        4,
        &[
            ("SF_MODE", "err"),
            ("SF_THREADS", "1"),
            ("SF_BODY_MS", "500"),
        ],
    );
    let mut answers: Vec<String> = children
        .into_iter()
        .map(|mut c| c.answer().expect("a child ended without answering"))
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        ["Err(\"the first run fails\")", "Ok(49)", "Ok(49)", "Ok(49)"],
    );
    // The failed run, then one process computes the value for the others
    // (without the lease every process would have run: 4).
    assert_eq!(runs(&mut conn), 2);
    assert!(start.elapsed() < Duration::from_secs(30), "no hang");
}

#[test]
fn a_cancelled_async_holder_releases_its_lease_at_once() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    // The child's lease lives 10 s: only a release frees it sooner.
    let (mut children, mut conn) = start_children(
        &server,
        1,
        &[("SF_MODE", "cancel"), ("SF_LEASE_MS", "10000")],
    );
    assert_eq!(children[0].answer().as_deref(), Some("dropped=true"));
    let dropped_at = Instant::now();
    let cache = shared_cache(&url, Duration::from_secs(10));
    let lease_key = format!("{}#lease", cache.storage_key(slow_first::key(1)));
    assert_eq!(
        conn.get::<_, Option<bool>>("lease_seen").unwrap(),
        Some(true),
        "the child's body ran holding {lease_key}"
    );
    while conn.exists::<_, bool>(&lease_key).unwrap() {
        assert!(
            dropped_at.elapsed() < Duration::from_secs(3),
            "the dropped holder's lease is still held after {:?}",
            dropped_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // This process now takes the key over, long before the child's lease
    // would have lapsed (the child is still alive).
    cachefn::register("sf", cache);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(slow_first(1)), 2);
    assert_eq!(runs(&mut conn), 2);
    assert!(dropped_at.elapsed() < Duration::from_secs(5));
    assert!(children[0].running(), "alive");
}

/// The first run anywhere panics.
#[quickcache(cache = "sf", timeout = 600, single_flight = "shared")]
fn panics_first(x: u64) -> u64 {
    if count_run() == 1 {
        note_lease(panics_first::key(x));
        panic!("the first run panics");
    }
    x * 3
}

#[test]
fn a_panicking_holder_releases_its_lease() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    *URL.lock() = Some(url.clone());
    let mut conn = server.raw();
    // A 60 s lease: only a release frees it in time.
    let cache = shared_cache(&url, Duration::from_secs(60));
    let lease_key = format!("{}#lease", cache.storage_key(panics_first::key(5)));
    cachefn::register("sf", cache);
    let panicked = std::panic::catch_unwind(|| panics_first(5));
    assert!(panicked.is_err());
    assert_eq!(
        conn.get::<_, Option<bool>>("lease_seen").unwrap(),
        Some(true),
        "the body ran holding {lease_key}"
    );
    let start = Instant::now();
    while conn.exists::<_, bool>(&lease_key).unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the lease outlived the panic"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(panics_first(5), 15);
    assert_eq!(runs(&mut conn), 2);
}

static DOWN_RUNS: Runs = Runs::new();

#[quickcache(cache = "sf_down", timeout = 600, single_flight = "shared")]
fn down_square(x: u64) -> u64 {
    DOWN_RUNS.hit();
    std::thread::sleep(Duration::from_millis(300));
    x * x
}

#[quickcache(cache = "sf_down", timeout = 600, single_flight = "shared")]
async fn down_square_async(x: u64) -> u64 {
    DOWN_RUNS.hit();
    tokio::time::sleep(Duration::from_millis(300)).await;
    x * x
}

#[test]
fn with_the_shared_tier_down_calls_compute_once_per_process() {
    // Nothing listens on port 1.
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(Redis::open("redis://127.0.0.1:1/0").unwrap())
        .build();
    cachefn::register("sf_down", cache);
    let start = Instant::now();
    let before = DOWN_RUNS.get();
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..8).map(|_| s.spawn(|| down_square(3))).collect();
        for c in callers {
            assert_eq!(c.join().unwrap(), 9);
        }
    });
    assert_eq!(
        DOWN_RUNS.get() - before,
        1,
        "process single-flight still holds"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = DOWN_RUNS.get();
    let answers = rt.block_on(async {
        let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(down_square_async(4))).collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    });
    assert_eq!(answers, [16; 8]);
    assert_eq!(DOWN_RUNS.get() - before, 1);
    assert!(start.elapsed() < Duration::from_secs(20), "no hang");
}

/// The lease primitives themselves: one holder at a time, renew and release
/// only with the holder's token, and a lease that lapses by itself.
fn check_lease_primitives(b: &dyn Backend, key: &str) {
    let ttl = Duration::from_millis(400);
    assert!(b.lease_acquire(key, b"one", ttl).unwrap());
    assert!(!b.lease_acquire(key, b"two", ttl).unwrap(), "held");
    assert!(!b.lease_renew(key, b"two", ttl).unwrap(), "not two's");
    assert!(!b.lease_release(key, b"two").unwrap(), "not two's");
    assert!(b.lease_renew(key, b"one", Duration::from_secs(5)).unwrap());
    // Renewed to 5 s: still held after the first lifetime.
    std::thread::sleep(Duration::from_millis(600));
    assert!(!b.lease_acquire(key, b"two", ttl).unwrap(), "renewed");
    assert!(b.lease_release(key, b"one").unwrap());
    assert!(!b.lease_release(key, b"one").unwrap(), "released once");
    // A lease nobody renews lapses.
    assert!(b.lease_acquire(key, b"three", ttl).unwrap());
    std::thread::sleep(Duration::from_millis(600));
    assert!(b.lease_acquire(key, b"four", ttl).unwrap(), "lapsed");
    assert!(
        !b.lease_renew(key, b"three", ttl).unwrap(),
        "three's is gone"
    );
    assert!(b.lease_release(key, b"four").unwrap());
}

async fn check_lease_primitives_async(b: &dyn Backend, key: &str) {
    let ttl = Duration::from_secs(5);
    assert!(b.lease_acquire_async(key, b"one", ttl).await.unwrap());
    assert!(!b.lease_acquire_async(key, b"two", ttl).await.unwrap());
    assert!(!b.lease_renew_async(key, b"two", ttl).await.unwrap());
    assert!(b.lease_renew_async(key, b"one", ttl).await.unwrap());
    assert!(!b.lease_release_async(key, b"two").await.unwrap());
    assert!(b.lease_release_async(key, b"one").await.unwrap());
    assert!(b.lease_acquire_async(key, b"two", ttl).await.unwrap());
    assert!(b.lease_release_async(key, b"two").await.unwrap());
}

#[test]
fn redis_leases_are_exclusive_renewable_and_released_by_their_holder() {
    let server = started!(RedisServer::start());
    let redis = Redis::open(&server.url()).unwrap();
    check_lease_primitives(&redis, "p:k#lease");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check_lease_primitives_async(&redis, "p:k2#lease"));
    // Through the circuit breaker every cache wraps its tier in.
    let tier = cachefn::backends::CircuitBreaker::new(redis);
    check_lease_primitives(&tier, "p:k3#lease");
    // A dead server is an error (the cache then computes per process).
    let dead = Redis::open("redis://127.0.0.1:1/0").unwrap();
    assert!(dead
        .lease_acquire("k", b"t", Duration::from_secs(1))
        .is_err());
}

#[test]
fn cluster_leases_are_exclusive_renewable_and_released_by_their_holder() {
    let servers = started!(RedisClusterServers::start());
    let cluster = RedisCluster::open(&servers.urls()).unwrap();
    // Keys on several slots (and so on several masters).
    for key in ["p:a#lease", "p:b#lease", "p:c#lease"] {
        check_lease_primitives(&cluster, key);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check_lease_primitives_async(&cluster, "p:d#lease"));
}

#[test]
fn stores_without_leases_say_so() {
    let null = cachefn::backends::Null;
    let err = null
        .lease_acquire("k", b"t", Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(err.failure(), Some(cachefn::backends::Failure::Refused));
    assert!(err.to_string().contains("no leases"), "{err}");
}

/// `get_or_lease`: the value if there is one (no lease taken), else the
/// lease for one caller at a time.
fn check_get_or_lease(b: &dyn Backend, key: &str, lease: &str) {
    use cachefn::backends::GetOrLease;
    let ttl = Duration::from_secs(5);
    assert_eq!(
        b.get_or_lease(key, lease, b"one", ttl).unwrap(),
        GetOrLease::Taken
    );
    assert!(
        !b.lease_acquire(lease, b"two", ttl).unwrap(),
        "taken by one"
    );
    assert_eq!(
        b.get_or_lease(key, lease, b"two", ttl).unwrap(),
        GetOrLease::Held
    );
    // The holder's token is the lease's: only "one" releases it.
    assert!(!b.lease_release(lease, b"two").unwrap());
    b.set(key, b"v", ttl).unwrap();
    assert_eq!(
        b.get_or_lease(key, lease, b"two", ttl).unwrap(),
        GetOrLease::Value(b"v".to_vec()),
        "a value is answered whoever holds the lease"
    );
    assert!(b.lease_release(lease, b"one").unwrap());
    assert_eq!(
        b.get_or_lease(key, lease, b"three", ttl).unwrap(),
        GetOrLease::Value(b"v".to_vec())
    );
    assert!(
        b.lease_acquire(lease, b"four", ttl).unwrap(),
        "a read that found the value took no lease"
    );
    assert!(b.lease_release(lease, b"four").unwrap());
    b.delete(key).unwrap();
}

async fn check_get_or_lease_async(b: &dyn Backend, key: &str, lease: &str) {
    use cachefn::backends::GetOrLease;
    let ttl = Duration::from_secs(5);
    let got = b.get_or_lease_async(key, lease, b"one", ttl).await.unwrap();
    assert_eq!(got, GetOrLease::Taken);
    let got = b.get_or_lease_async(key, lease, b"two", ttl).await.unwrap();
    assert_eq!(got, GetOrLease::Held);
    b.set_async(key, b"w", ttl).await.unwrap();
    let got = b.get_or_lease_async(key, lease, b"two", ttl).await.unwrap();
    assert_eq!(got, GetOrLease::Value(b"w".to_vec()));
    assert!(b.lease_release_async(lease, b"one").await.unwrap());
    b.delete_async(key).await.unwrap();
}

/// How many times each of `GET`, `SET` and `EVAL` ran on the server since
/// the last `CONFIG RESETSTAT` (the commands a script runs count too: each
/// lease script runs one `GET`).
fn command_calls(conn: &mut redis::Connection) -> [u64; 3] {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    ["get", "set", "eval"].map(|name| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
    })
}

#[test]
fn redis_get_or_lease_reads_or_leases_in_one_script() {
    let server = started!(RedisServer::start());
    let mut conn = server.raw();
    let redis = Redis::open(&server.url()).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        redis
            .get_or_lease("p:k", "p:k#lease", b"one", Duration::from_secs(5))
            .unwrap(),
        cachefn::backends::GetOrLease::Taken
    );
    // One EVAL, whose GET and SET NX ran inside it.
    assert_eq!(command_calls(&mut conn), [1, 1, 1], "one round trip");
    assert!(redis.lease_release("p:k#lease", b"one").unwrap());
    check_get_or_lease(&redis, "p:k", "p:k#lease");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check_get_or_lease_async(&redis, "p:k2", "p:k2#lease"));
    let tier = cachefn::backends::CircuitBreaker::new(redis);
    check_get_or_lease(&tier, "p:k3", "p:k3#lease");
    // A dead server is an error (the cache then computes per process).
    let dead = Redis::open("redis://127.0.0.1:1/0").unwrap();
    assert!(dead
        .get_or_lease("k", "k#lease", b"t", Duration::from_secs(1))
        .is_err());
    // A store without leases: its value, else the refusal.
    let null = cachefn::backends::Null;
    let err = null
        .get_or_lease("k", "k#lease", b"t", Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(err.failure(), Some(cachefn::backends::Failure::Refused));
}

#[test]
fn cluster_get_or_lease_in_one_slot_and_across_slots() {
    let servers = started!(RedisClusterServers::start());
    let cluster = RedisCluster::open(&servers.urls()).unwrap();
    // A hash tag puts the value and its lease in one slot (one script);
    // without one they are apart (taken step by step).
    for (key, lease) in [
        ("{p}:a", "{p}:a#lease"),
        ("p:{a=1}", "p:{a=1}#lease"),
        ("p:a", "p:a#lease"),
        ("p:b", "p:b#lease"),
        ("p:c", "p:c#lease"),
    ] {
        check_get_or_lease(&cluster, key, lease);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check_get_or_lease_async(&cluster, "{p}:d", "{p}:d#lease"));
    rt.block_on(check_get_or_lease_async(&cluster, "p:d", "p:d#lease"));
}

static COLD_RUNS: Runs = Runs::new();

#[quickcache(cache = "sf_cold", timeout = 600, single_flight = "shared")]
fn cold(x: u64) -> Result<u64, String> {
    COLD_RUNS.hit();
    if x == 0 {
        Err("zero".into())
    } else {
        Ok(x * 2)
    }
}

#[test]
fn a_cold_miss_reads_and_leases_in_one_call_and_releases_after_returning() {
    let server = started!(RedisServer::start());
    let mut conn = server.raw();
    // A minute's lease: only a release frees it in time.
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("cold")
        .lease_timeout(Duration::from_secs(60))
        .build();
    let lease_of = |x: u64| format!("{}#lease", cache.storage_key(cold::key(x)));
    let (ok_lease, err_lease) = (lease_of(1), lease_of(0));
    cachefn::register("sf_cold", cache);
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut conn)
        .unwrap();
    assert_eq!(cold(1), Ok(2));
    // A plain GET (a shared hit costs no more than that), then the second
    // read and the lease in one script (its GET and SET NX), then the
    // value's SET: one GET outside the scripts (each script runs one),
    // where separate calls would have read a third time and taken the
    // lease apart.
    let [gets, sets, evals] = command_calls(&mut conn);
    assert_eq!(
        gets,
        evals + 1,
        "GET {gets}: one outside the scripts ({evals} EVAL)"
    );
    assert_eq!(sets, 2, "the lease's SET NX and the value's SET");
    assert!(
        (1..=2).contains(&evals),
        "EVAL {evals}: the script, maybe the release"
    );
    // The lease of a stored value goes in the background, at once.
    let start = Instant::now();
    while conn.exists::<_, bool>(&ok_lease).unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the lease outlived the stored value"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A failed body's lease is gone before the call returns: the next
    // process may compute at once.
    assert_eq!(cold(0), Err("zero".into()));
    assert!(
        !conn.exists::<_, bool>(&err_lease).unwrap(),
        "a failed holder's lease is released before it returns"
    );
    let before = COLD_RUNS.get();
    assert_eq!(cold(0), Err("zero".into()));
    assert_eq!(COLD_RUNS.get() - before, 1, "computed again at once");
}

// ----- fencing: a holder that lost its lease does not store ----------------

/// The first run anywhere says who runs it (`fenced_holder`), then waits
/// for `fenced_go`; every run answers which run it was.
#[quickcache(cache = "sf-fenced", timeout = 600, single_flight = "shared")]
fn fenced(x: u64) -> String {
    let run: i64 = raw().incr("fenced_runs", 1).unwrap();
    if run == 1 {
        let _: () = raw().set("fenced_holder", std::process::id()).unwrap();
        let start = Instant::now();
        while !raw().exists::<_, bool>("fenced_go").unwrap() {
            assert!(start.elapsed() < Duration::from_secs(60), "never let go");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    format!("run{run} of {x}")
}

/// A tiered cache with generous deadlines (the machine may be busy with
/// other tests: a timed-out call would compute without the lease, and the
/// rounds would test nothing).
fn patient_cache(url: &str, lease: Duration) -> Cache {
    let redis = Redis::builder(url)
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(redis)
        .prefix(PREFIX)
        .lease_timeout(lease)
        .build()
}

/// The holder's process: calls `fenced(7)` once and prints the answer.
#[test]
fn fenced_child_entry() {
    let Ok(url) = std::env::var("SF_FENCED_URL") else {
        return;
    };
    *URL.lock() = Some(url.clone());
    let lease = Duration::from_millis(env_num("SF_LEASE_MS", 300));
    cachefn::register("sf-fenced", patient_cache(&url, lease));
    println!("CHILD {}", fenced(7));
}

/// How a holder loses its lease in [`a_holder_that_lost_its_lease_never_overwrites_a_newer_value`].
#[derive(Clone, Copy, Debug)]
enum Loss {
    /// Frozen (SIGSTOP) past its lease, which lapses.
    Paused,
    /// `f::clear_all()` removes it while the body runs.
    Cleared,
}

#[test]
fn a_holder_that_lost_its_lease_never_overwrites_a_newer_value() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    *URL.lock() = Some(url.clone());
    let lease = Duration::from_millis(300);
    cachefn::register("sf-fenced", patient_cache(&url, lease));
    let shared_view = Cache::builder()
        .shared(Redis::open(&url).unwrap())
        .prefix(PREFIX)
        .build();
    let key = fenced::key(7);
    let lease_key = format!("{PREFIX}:{key}#lease");
    let mut overwritten = Vec::new();
    let rounds = [Loss::Paused, Loss::Cleared, Loss::Paused, Loss::Cleared];
    for loss in rounds {
        let mut conn = server.raw();
        let _: () = redis::cmd("FLUSHDB").query(&mut conn).unwrap();
        let mut holder = Runner::spawn(
            "fenced_child_entry",
            &[("SF_FENCED_URL", url.as_str()), ("SF_LEASE_MS", "300")],
        );
        // The child runs the first body and holds the lease.
        let start = Instant::now();
        while conn
            .get::<_, Option<u32>>("fenced_holder")
            .unwrap()
            .is_none()
        {
            assert!(start.elapsed() < Duration::from_secs(30), "no holder");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            conn.exists::<_, bool>(&lease_key).unwrap(),
            "the holder's lease"
        );
        match loss {
            Loss::Paused => {
                signal_process(holder.pid(), "-STOP");
                let start = Instant::now();
                while conn.exists::<_, bool>(&lease_key).unwrap() {
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "the lease never lapsed"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Loss::Cleared => fenced::clear_all().unwrap(),
        }
        // Another process computes the key from newer data and stores it.
        assert_eq!(fenced(7), "run2 of 7");
        let _: () = conn.set("fenced_go", 1).unwrap();
        if let Loss::Paused = loss {
            signal_process(holder.pid(), "-CONT");
        }
        // The holder finishes its (older) computation and returns it...
        let answer = holder.answer_within(Duration::from_secs(60));
        assert_eq!(answer.as_deref(), Some("run1 of 7"), "{loss:?}");
        // ... but the shared tier keeps the newer value.
        let now = shared_view.get::<String>(&key);
        if now.as_deref() != Some("run2 of 7") {
            overwritten.push(format!("{loss:?}: {now:?}"));
        }
        let start = Instant::now();
        while conn.exists::<_, bool>(&lease_key).unwrap() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "a lease left behind"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(
        overwritten.is_empty(),
        "a holder that lost its lease overwrote the newer value in {} of {} rounds: {overwritten:?}",
        overwritten.len(),
        rounds.len()
    );
}

// ----- re-entry through another thread or task -----------------------------

/// At depth 0 the body calls its own key (`vary_on = "x"`) from a thread it
/// joins: the inner call waits for the outer computation, which waits for
/// the inner call.
#[quickcache(cache = "sf-reenter-thread", timeout = 600, vary_on = "x")]
fn reenters_through_a_thread(x: u64, depth: u32) -> u64 {
    if depth == 0 {
        return std::thread::spawn(move || reenters_through_a_thread(x, 1))
            .join()
            .unwrap()
            + 1;
    }
    x
}

/// The same through a spawned tokio task that the body awaits.
#[quickcache(cache = "sf-reenter-task", timeout = 600, vary_on = "x")]
async fn reenters_through_a_task(x: u64, depth: u32) -> u64 {
    if depth == 0 {
        return tokio::spawn(reentered(x)).await.unwrap() + 1;
    }
    x
}

/// The inner call, boxed with a written type (so that the compiler need not
/// prove the recursive future `Send` while defining it).
fn reentered(x: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
    Box::pin(reenters_through_a_task(x, 1))
}

/// A memory-only cache whose waits are bounded by six 200 ms lease
/// lifetimes.
fn reentry_cache() -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(100))
        .lease_timeout(Duration::from_millis(200))
        .build()
}

#[test]
fn a_body_that_reenters_its_key_through_a_joined_thread_does_not_hang() {
    cachefn::register("sf-reenter-thread", reentry_cache());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(reenters_through_a_thread(5, 0));
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    // The inner call gave up waiting and computed 5; the outer returned 6.
    assert_eq!(got, Ok(6), "the re-entered call hung");
    assert_eq!(
        reenters_through_a_thread(5, 0),
        6,
        "and the value is cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_reenters_its_key_through_a_spawned_task_does_not_hang() {
    cachefn::register("sf-reenter-task", reentry_cache());
    let got = tokio::time::timeout(Duration::from_secs(30), reenters_through_a_task(8, 0)).await;
    assert_eq!(got, Ok(9), "the re-entered call hung");
    assert_eq!(
        reenters_through_a_task(8, 0).await,
        9,
        "and the value is cached"
    );
}
