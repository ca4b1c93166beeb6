//! Coherent local tiers across processes (Redis `CLIENT TRACKING`): process
//! B (a child process of this test binary) keeps local copies for a long
//! `local_timeout`; process A (the test) or `redis-cli` changes the shared
//! tier; B must see every change within a second, and never serve a value
//! that was replaced while its invalidation connection was lost.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::{tracking_client_ids, RedisServer};
use cachefn_tests::{started, wait_until, Runs};

static RUNS: Runs = Runs::new();

/// The tests of this file share the registry's `coherent` name: one at a time.
static SERIAL: parking_lot::Mutex<()> = parking_lot::const_mutex(());

/// B's memoized function: its body says who computed the value, and when.
#[quickcache(cache = "coherent", timeout = 600, local_timeout = 60)]
fn page(id: u32) -> String {
    RUNS.hit();
    format!("B{id}#{}", RUNS.get())
}

/// A second function of the same cache, for per-function counts.
#[quickcache(cache = "coherent", timeout = 600, local_timeout = 60)]
fn sidebar(id: u32) -> String {
    format!("S{id}")
}

const CHILD_TEST: &str = "child_process_entry";

fn coherent_cache(url: &str, invalidation: bool) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(10_000))
        .shared(Redis::open(url).unwrap())
        .prefix("coh")
        .invalidation(invalidation)
        .build()
}

/// A's view: the shared tier only (A keeps no local copies).
fn writer_cache(url: &str) -> Cache {
    Cache::builder()
        .shared(Redis::open(url).unwrap())
        .prefix("coh")
        .build()
}

/// The child's side: answer commands from stdin, one `CHILD ...` line each.
#[test]
fn child_process_entry() {
    let Ok(url) = std::env::var("CACHEFN_COH_URL") else {
        return;
    };
    let invalidation = std::env::var("CACHEFN_COH_INVALIDATION").as_deref() == Ok("on");
    let cache = coherent_cache(&url, invalidation);
    cachefn::register("coherent", cache.clone());
    let local = cache.local().unwrap().clone();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        let answer = match (
            words.next(),
            words.next().map(|w| w.parse::<u32>().unwrap()),
        ) {
            (Some("read"), Some(id)) => page(id),
            (Some("readn"), Some(n)) => (0..n).map(page).collect::<Vec<_>>().join(","),
            (Some("local"), Some(id)) => {
                format!("{:?}", local.get::<String>(page::key(id).as_str()))
            }
            (Some("len"), _) => cache.local_store().unwrap().len().to_string(),
            (Some("invalidations"), _) => cache.stats().invalidations.to_string(),
            (Some("quit"), _) | (None, _) => return,
            other => panic!("unknown command {other:?}"),
        };
        println!("CHILD {answer}");
        std::io::stdout().flush().unwrap();
    }
}

/// Process B: this test binary again, running [`child_process_entry`].
struct ProcessB {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl ProcessB {
    fn spawn(url: &str, invalidation: bool) -> ProcessB {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env("CACHEFN_COH_URL", url)
            .env(
                "CACHEFN_COH_INVALIDATION",
                if invalidation { "on" } else { "off" },
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start process B");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        ProcessB { child, stdin, out }
    }

    fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("process B is gone");
        self.stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "process B ended while answering `{cmd}`");
            // The first answer follows libtest's `test name ... ` on its line.
            if let Some((_, answer)) = line.split_once("CHILD ") {
                return answer.trim_end().to_owned();
            }
        }
    }

    /// Read `id` until B keeps it in its local tier (its invalidation feed
    /// is set up then); the value.
    fn hold(&mut self, id: u32) -> String {
        let start = Instant::now();
        loop {
            let v = self.ask(&format!("read {id}"));
            if self.ask(&format!("local {id}")) == format!("Some({v:?})") {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "B never kept {id} locally"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// B's answers to `read id` for a second, or until one is not `old`.
    fn read_until_changed(&mut self, id: u32, old: &str) -> String {
        let start = Instant::now();
        loop {
            let v = self.ask(&format!("read {id}"));
            if v != old || start.elapsed() > Duration::from_secs(1) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ProcessB {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let port = server
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/0")
        .to_owned();
    let out = Command::new("redis-cli")
        .args(["-p", &port])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install -y redis-tools)");
    assert!(out.status.success(), "redis-cli {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_change_reaches_the_other_process_within_a_second() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    cachefn::register("coherent", writer_cache(&url));
    let mut b = ProcessB::spawn(&url, true);
    // The control: without invalidation, B keeps its copy.
    let mut b_off = ProcessB::spawn(&url, false);

    page::set_cached(1, "A v1".to_owned()).unwrap();
    assert_eq!(b.hold(1), "A v1");
    assert_eq!(b_off.hold(1), "A v1");

    // A replaces the value.
    page::set_cached(1, "A v2".to_owned()).unwrap();
    assert_eq!(b.read_until_changed(1, "A v1"), "A v2");
    assert_eq!(
        b_off.read_until_changed(1, "A v1"),
        "A v1",
        "with invalidation(false) the local copy lives its local_timeout"
    );

    // A clears the key: B computes it again.
    assert_eq!(b.hold(1), "A v2");
    page::clear(1).unwrap();
    let v = b.read_until_changed(1, "A v2");
    assert!(v.starts_with("B1#"), "{v}");

    // A clears the function.
    let old = b.hold(1);
    page::clear_all().unwrap();
    let v = b.read_until_changed(1, &old);
    assert!(v.starts_with("B1#") && v != old, "{v} after {old}");

    // Another program writes the key (undecodable bytes: B recomputes).
    let old = b.hold(1);
    let key = writer_cache(&url).storage_key(page::key(1).as_str());
    assert_eq!(redis_cli(&server, &["SET", &key, "foreign"]).trim(), "OK");
    let v = b.read_until_changed(1, &old);
    assert!(v.starts_with("B1#") && v != old, "{v} after {old}");

    // ... and deletes it.
    let old = b.hold(1);
    assert_eq!(redis_cli(&server, &["DEL", &key]).trim(), "1");
    let v = b.read_until_changed(1, &old);
    assert!(v.starts_with("B1#") && v != old, "{v} after {old}");

    assert!(b.ask("invalidations").parse::<u64>().unwrap() >= 5);
}

#[test]
fn five_hundred_keys_changed_at_once_leave_no_stale_copy() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    cachefn::register("coherent", writer_cache(&url));
    let mut b = ProcessB::spawn(&url, true);
    b.hold(0);
    for i in 0..500 {
        page::set_cached(i, format!("old {i}")).unwrap();
    }
    // B keeps all 500 locally.
    let start = Instant::now();
    loop {
        b.ask("readn 500");
        if b.ask("len") == "500" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "B keeps {}",
            b.ask("len")
        );
    }
    // A replaces all of them in one pipelined round trip.
    let dropped_before = b.ask("invalidations").parse::<u64>().unwrap();
    let keys: Vec<String> = (0..500).map(|i| page::key(i).as_str().to_owned()).collect();
    let values: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), format!("new {i}")))
        .collect();
    writer_cache(&url)
        .set_many(&values, Duration::from_secs(600))
        .unwrap();
    // Once B's feed has dropped 500 copies, no read may be stale.
    wait_until(Duration::from_secs(10), "B to drop its 500 copies", || {
        b.ask("invalidations").parse::<u64>().unwrap() >= dropped_before + 500
    });
    let seen = b.ask("readn 500");
    let stale: Vec<&str> = seen.split(',').filter(|v| v.starts_with("old")).collect();
    assert!(
        stale.is_empty(),
        "{} stale reads: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    assert!(b.ask("invalidations").parse::<u64>().unwrap() >= 500);
}

/// The ids of the server's clients that track keys (B's invalidation connection).
fn tracking_clients(server: &RedisServer) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.raw())
        .unwrap();
    tracking_client_ids(&list, None)
}

#[test]
fn a_killed_invalidation_connection_never_lets_an_old_value_through() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    cachefn::register("coherent", writer_cache(&url));
    let mut b = ProcessB::spawn(&url, true);
    page::set_cached(1, "A v1".to_owned()).unwrap();
    assert_eq!(b.hold(1), "A v1");
    for round in 2..6 {
        let ids = tracking_clients(&server);
        assert_eq!(ids.len(), 1, "one invalidation connection: {ids:?}");
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&ids[0])
            .query(&mut server.raw())
            .unwrap();
        assert_eq!(killed, 1);
        // B learns of the kill when its feed thread reads the closed
        // socket: within its scheduling latency (microseconds when idle,
        // milliseconds on a loaded machine). That is the one window a
        // client cannot close; A writes after it.
        std::thread::sleep(Duration::from_millis(20));
        let new = format!("A v{round}");
        page::set_cached(1, new.clone()).unwrap();
        // Never the old value, from the first read on.
        for _ in 0..20 {
            assert_eq!(b.ask("read 1"), new);
        }
        // The feed comes back by itself, and B keeps copies again.
        assert_eq!(b.hold(1), new);
    }
}

#[test]
fn a_frozen_server_empties_the_local_tier_and_coherence_resumes_after() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    cachefn::register("coherent", writer_cache(&url));
    let mut b = ProcessB::spawn(&url, true);
    page::set_cached(1, "A v1".to_owned()).unwrap();
    assert_eq!(b.hold(1), "A v1");
    server.freeze();
    // The feed cannot confirm it is alive: B's copies go.
    wait_until(Duration::from_secs(30), "B to empty its local tier", || {
        b.ask("len") == "0"
    });
    server.thaw();
    page::set_cached(1, "A v2".to_owned()).unwrap();
    assert_eq!(b.ask("read 1"), "A v2");
    // Tracking is back: B keeps copies again, and follows changes.
    assert_eq!(b.hold(1), "A v2");
    page::set_cached(1, "A v3".to_owned()).unwrap();
    assert_eq!(b.read_until_changed(1, "A v2"), "A v3");
}

#[test]
fn a_process_keeps_its_own_writes_and_two_caches_follow_each_other() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    let one = coherent_cache(&url, true);
    let two = coherent_cache(&url, true);
    let ttl = Duration::from_secs(600);
    // Wait for the feed to be set up (a local copy is kept).
    let start = Instant::now();
    while one.local().unwrap().get::<u32>("k").is_none() {
        one.set("k", &0u32, ttl).unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    // A marker that `one` keeps and `two` writes after each of one's
    // writes: one's feed reports the marker's change after the echo of
    // one's own write (one connection, in the order of the writes), so
    // once one has dropped the marker, it has had that echo.
    two.set("marker", &0u64, ttl).unwrap();
    until_kept(&one, "marker");
    let mut kept = 0;
    for i in 1..50u32 {
        one.set("k", &i, ttl).unwrap();
        two.set("marker", &u64::from(i), ttl).unwrap();
        wait_until(Duration::from_secs(10), "one to drop the marker", || {
            one.stats().invalidations >= u64::from(i)
        });
        // The echo of our own write did not drop what we just stored (a
        // check of an earlier echo landing between the command and the
        // local store may: one more miss, never a stale value; with
        // echoes taken for changes, no round would keep it).
        match one.local().unwrap().get::<u32>("k") {
            Some(v) if v == i => kept += 1,
            None => {}
            Some(v) => panic!("round {i}: an older value {v} kept"),
        }
        until_kept(&one, "marker");
        // The other cache (same process, same prefix, own local tier) follows.
        let start = Instant::now();
        while two.get::<u32>("k") != Some(i) {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "two kept a stale copy"
            );
        }
    }
    assert!(kept >= 25, "own writes kept locally in {kept} of 49 rounds");
    assert_eq!(
        one.stats().invalidations,
        49,
        "the markers, and nothing else"
    );
}

/// A server that refuses every command, as Redis 5 refuses `HELLO 3`.
fn refusing_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/0", listener.local_addr().unwrap());
    // Threads end when the test binary does (each connection's when its
    // client leaves).
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            std::thread::spawn(move || refuse(sock));
        }
    });
    url
}

fn refuse(sock: std::net::TcpStream) {
    let mut out = sock.try_clone().unwrap();
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(n) = line.trim_end().strip_prefix('*') {
            for _ in 0..n.parse::<usize>().unwrap_or(0) {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let len: usize = line.trim_end()[1..].parse().unwrap_or(0);
                let mut arg = vec![0; len + 2];
                if std::io::Read::read_exact(&mut r, &mut arg).is_err() {
                    return;
                }
            }
            if out.write_all(b"-ERR unknown command\r\n").is_err() {
                return;
            }
        }
        line.clear();
    }
}

/// A server that hangs up on any command, as some proxies do.
fn hanging_up_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/0", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            let _ = std::io::Read::read(&mut sock, &mut [0; 64]);
        }
    });
    url
}

/// The local tier of a cache on `url` is filled again once the feed has
/// found out that the server cannot track keys.
fn resumes_without_tracking(url: &str) {
    let cache = coherent_cache(url, true);
    let local = cache.local_store().unwrap();
    let start = Instant::now();
    while local.is_suspended() {
        assert!(start.elapsed() < Duration::from_secs(5), "still suspended");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ttl = Duration::from_secs(60);
    cache.local().unwrap().set("k", &1u32, ttl).unwrap();
    assert_eq!(cache.local().unwrap().get::<u32>("k"), Some(1));
}

#[test]
fn a_server_without_tracking_keeps_the_local_timeout_behaviour() {
    // Redis 5 answers `HELLO 3` with an error.
    resumes_without_tracking(&refusing_server());
    // A proxy may close the connection instead.
    resumes_without_tracking(&hanging_up_server());
}

/// Wait until `cache` keeps `key` locally (its feed is set up).
fn until_kept(cache: &Cache, key: &str) {
    let start = Instant::now();
    while cache.local().unwrap().get::<u64>(key).is_none() {
        let _ = cache.get::<u64>(key);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never kept {key}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn reads_racing_a_stream_of_writes_never_leave_an_old_value_behind() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    let a = writer_cache(&url);
    let b = coherent_cache(&url, true);
    let ttl = Duration::from_secs(600);
    a.set("hot", &0u64, ttl).unwrap();
    until_kept(&b, "hot");
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the readers however the scope ends (a failed assertion too,
    /// which would otherwise leave them spinning and the test hanging).
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // Readers back-fill B's local tier from Redis while A writes.
        for _ in 0..3 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = b.get::<u64>("hot");
                }
            });
        }
        for round in 1..=20u64 {
            for i in 1..=50u64 {
                a.set("hot", &(round * 1000 + i), ttl).unwrap();
            }
            let last = round * 1000 + 50;
            // Once the last write's invalidation is in, no read may show an
            // older value (a back-fill of a read that began before it loses).
            let start = Instant::now();
            while b.get::<u64>("hot") != Some(last) {
                assert!(
                    start.elapsed() < Duration::from_secs(1),
                    "B stuck on an old value"
                );
            }
            for _ in 0..200 {
                assert_eq!(b.get::<u64>("hot"), Some(last));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(b.stats().local_hits > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writes_and_reads_follow_too() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let one = coherent_cache(&url, true);
    let two = coherent_cache(&url, true);
    let ttl = Duration::from_secs(600);
    one.set_async("k", &0u64, ttl).await.unwrap();
    until_kept(&two, "k");
    // As in the sync test: `two` writes a marker that `one` keeps after
    // each of one's writes; once one has dropped it, one has had the echo
    // of its own write.
    two.set_async("marker", &0u64, ttl).await.unwrap();
    until_kept(&one, "marker");
    let mut kept = 0;
    for i in 1..20u64 {
        one.set_async("k", &i, ttl).await.unwrap();
        let start = Instant::now();
        while two.get_async::<u64>("k").await != Some(i) {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "two kept a stale copy"
            );
        }
        two.set_async("marker", &i, ttl).await.unwrap();
        let start = Instant::now();
        while one.stats().invalidations < i {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "one never dropped the marker"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Our own write stays in our own local tier (its echo is checked,
        // not taken for a change). It may still lose its copy to a check
        // of an earlier write's echo that lands between its command and its
        // local store (one more miss, never a stale value): most rounds
        // keep it, and with echoes taken for changes none would.
        if one.local().unwrap().get::<u64>("k") == Some(i) {
            kept += 1;
        }
        until_kept(&one, "marker");
    }
    assert!(kept >= 10, "own writes kept locally in {kept} of 19 rounds");
    assert_eq!(
        one.stats().invalidations,
        19,
        "the markers, and nothing else"
    );
}

/// The feed comes from `Backend::invalidations`, which wrappers forward:
/// a Redis behind an `Arc` (or any wrapper that forwards it) is followed too.
#[test]
fn a_wrapped_redis_is_followed_too() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let wrapped = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(std::sync::Arc::new(Redis::open(&url).unwrap()))
        .prefix("wrapped")
        .build();
    let other = Cache::builder()
        .shared(Redis::open(&url).unwrap())
        .prefix("wrapped")
        .build();
    let ttl = Duration::from_secs(600);
    other.set("k", &1u64, ttl).unwrap();
    until_kept(&wrapped, "k");
    other.set("k", &2u64, ttl).unwrap();
    let start = Instant::now();
    while wrapped.get::<u64>("k") != Some(2) {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the wrapped tier's local copy was not dropped"
        );
    }
}

#[test]
fn invalidations_are_counted_for_the_function_whose_entry_was_dropped() {
    let _serial = SERIAL.lock();
    let server = started!(RedisServer::start());
    let url = server.url();
    let cache = coherent_cache(&url, true);
    cachefn::register("coherent", cache.clone());
    let ttl = Duration::from_secs(600);
    cache.set("probe", &1u64, ttl).unwrap();
    until_kept(&cache, "probe"); // the feed is live
    let (p0, s0) = (page::stats().invalidations, sidebar::stats().invalidations);
    let c0 = cache.stats().invalidations;
    page(7);
    sidebar(7);
    sidebar(8);
    // Another client deletes the three entries: each local copy goes, and
    // is counted for its own function.
    for key in [page::key(7), sidebar::key(7), sidebar::key(8)] {
        redis_cli(&server, &["DEL", &cache.storage_key(key)]);
    }
    let start = Instant::now();
    while (page::stats().invalidations, sidebar::stats().invalidations) != (p0 + 1, s0 + 2) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "page {} -> {}, sidebar {} -> {}",
            p0,
            page::stats().invalidations,
            s0,
            sidebar::stats().invalidations
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cache.stats().invalidations, c0 + 3);
    // A flush drops (and counts) every copy, by function too.
    page(7);
    sidebar(8);
    cache.get::<u64>("probe");
    redis_cli(&server, &["FLUSHALL"]);
    let start = Instant::now();
    while (page::stats().invalidations, sidebar::stats().invalidations) != (p0 + 2, s0 + 3) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "after FLUSHALL: page {}, sidebar {}",
            page::stats().invalidations,
            sidebar::stats().invalidations
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cache.stats().invalidations, c0 + 6);
}

// ----- concurrency: own writes, every write path, cancellation ------------
//
// Each test below runs many rounds of concurrent writers against a real
// `redis-server` and counts the rounds in which a process kept serving a
// value that Redis no longer holds; every count must be 0.

/// How long a local copy may lag behind Redis before a round counts as
/// stale: generous (the feed takes milliseconds), and far below the local
/// lifetime (`DEFAULT_LOCAL_TTL`, 10 s) that a swallowed change would last.
const LAG: Duration = Duration::from_secs(1);

/// A Redis tier with generous deadlines: these tests count stale rounds,
/// and a call that times out on a busy machine would fail the round's
/// write instead.
fn patient(url: &str) -> Redis {
    Redis::builder(url)
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn coherent_with_prefix(url: &str, prefix: &str) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(10_000))
        .shared(patient(url))
        .prefix(prefix)
        .build()
}

fn shared_only_with_prefix(url: &str, prefix: &str) -> Cache {
    Cache::builder().shared(patient(url)).prefix(prefix).build()
}

/// Wait until `cache`'s change feed is live (its own write is kept locally).
fn wait_live(cache: &Cache) {
    let start = Instant::now();
    loop {
        cache
            .set("live-probe", &1u64, Duration::from_secs(600))
            .unwrap();
        if cache.local().unwrap().get::<u64>("live-probe") == Some(1) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no feed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `true` once `ok()` holds, `false` if it does not within `within`.
fn within(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The value Redis holds under `key` of a cache with `prefix`, decoded.
fn in_redis<T: serde::de::DeserializeOwned + 'static>(
    url: &str,
    prefix: &str,
    key: &str,
) -> Option<T> {
    shared_only_with_prefix(url, prefix).get::<T>(key)
}

#[test]
fn two_threads_writing_one_key_never_hide_another_clients_delete() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let cache = coherent_with_prefix(&url, "merge1");
    wait_live(&cache);
    let mut raw = server.raw();
    let stored = cache.storage_key("k");
    let ttl = Duration::from_secs(600);
    let (rounds, mut stale) = (150u64, 0);
    for round in 0..rounds {
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for t in 0..2 {
                let (cache, barrier) = (&cache, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    cache.set("k", &(round * 10 + t), ttl).unwrap();
                });
            }
        });
        // A read keeps Redis's value locally (whichever write won).
        assert!(within(LAG, || {
            cache.get::<u64>("k");
            cache.local().unwrap().get::<u64>("k").is_some()
        }));
        let _: i64 = redis::cmd("DEL").arg(&stored).query(&mut raw).unwrap();
        if !within(LAG, || cache.get::<u64>("k").is_none()) {
            stale += 1;
        }
    }
    assert_eq!(
        stale, 0,
        "the deleted value was still served in {stale} of {rounds} rounds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_async_writes_joined_never_hide_another_clients_delete() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let cache = coherent_with_prefix(&url, "merge2");
    let live = cache.clone();
    tokio::task::spawn_blocking(move || wait_live(&live))
        .await
        .unwrap();
    let mut raw = server.raw();
    let stored = cache.storage_key("k");
    let ttl = Duration::from_secs(600);
    let (rounds, mut stale) = (60u64, 0);
    for round in 0..rounds {
        let (va, vb) = (round * 10, round * 10 + 1);
        let (a, b) = tokio::join!(
            cache.set_async("k", &va, ttl),
            cache.set_async("k", &vb, ttl)
        );
        a.unwrap();
        b.unwrap();
        let start = Instant::now();
        loop {
            cache.get_async::<u64>("k").await;
            if cache.local().unwrap().get::<u64>("k").is_some() {
                break;
            }
            assert!(start.elapsed() < LAG, "never kept locally");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _: i64 = redis::cmd("DEL").arg(&stored).query(&mut raw).unwrap();
        let start = Instant::now();
        while cache.get_async::<u64>("k").await.is_some() {
            if start.elapsed() > LAG {
                stale += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(
        stale, 0,
        "the deleted value was still served in {stale} of {rounds} rounds"
    );
}

#[test]
fn two_caches_of_one_process_writing_at_once_follow_redis() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let one = coherent_with_prefix(&url, "merge3");
    let two = coherent_with_prefix(&url, "merge3");
    wait_live(&one);
    wait_live(&two);
    let ttl = Duration::from_secs(600);
    let (rounds, mut stale) = (120u64, 0);
    for round in 0..rounds {
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for (t, cache) in [&one, &two].into_iter().enumerate() {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    cache.set("k", &(round * 10 + t as u64), ttl).unwrap();
                });
            }
        });
        let now: Option<u64> = in_redis(&url, "merge3", "k");
        let agree = || one.get::<u64>("k") == now && two.get::<u64>("k") == now;
        if !within(LAG, agree) {
            stale += 1;
        }
    }
    assert_eq!(
        stale, 0,
        "a local copy differed from Redis in {stale} of {rounds} rounds"
    );
}

/// The child of [`a_process_that_wrote_twice_at_once_follows_the_next_process`]:
/// `set2 N` writes `k` from two threads at once; `get` reads it.
#[test]
fn child_writer_entry() {
    let Ok(url) = std::env::var("CACHEFN_COH20_URL") else {
        return;
    };
    let cache = coherent_with_prefix(&url, "merge4");
    wait_live(&cache);
    let ttl = Duration::from_secs(600);
    cachefn_tests::child::serve(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("set2"), Some(n)) => {
                let barrier = std::sync::Barrier::new(2);
                std::thread::scope(|s| {
                    for t in ["a", "b"] {
                        let (cache, barrier) = (&cache, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            cache.set("k", &format!("A{n}{t}"), ttl).unwrap();
                        });
                    }
                });
                // A read keeps Redis's value locally (whichever write won).
                let start = Instant::now();
                while cache.local().unwrap().get::<String>("k").is_none() {
                    cache.get::<String>("k");
                    assert!(start.elapsed() < LAG, "never kept locally");
                }
                "ok".into()
            }
            (Some("get"), _) => format!("{:?}", cache.get::<String>("k")),
            other => panic!("unknown command {other:?}"),
        }
    });
}

#[test]
fn a_process_that_wrote_twice_at_once_follows_the_next_process() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let b = coherent_with_prefix(&url, "merge4");
    wait_live(&b);
    let mut a = cachefn_tests::child::Talker::spawn(
        "child_writer_entry",
        &[("CACHEFN_COH20_URL", url.as_str())],
    );
    let ttl = Duration::from_secs(600);
    let (rounds, mut stale) = (60u64, 0);
    for round in 0..rounds {
        assert_eq!(a.ask(&format!("set2 {round}")), "ok");
        // A holds one of its own values; B replaces it.
        let mine = format!("B{round}");
        b.set("k", &mine, ttl).unwrap();
        let want = format!("{:?}", Some(&mine));
        if !within(LAG, || a.ask("get") == want) {
            stale += 1;
        }
    }
    assert_eq!(
        stale, 0,
        "A served its own old value after B's in {stale} of {rounds} rounds"
    );
}

#[test]
fn set_many_and_add_racing_another_clients_set_follow_redis() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let cache = coherent_with_prefix(&url, "race5");
    let other = shared_only_with_prefix(&url, "race5");
    wait_live(&cache);
    let ttl = Duration::from_secs(600);
    let rounds = 120u64;
    let (mut stale_many, mut stale_add) = (0, 0);
    for round in 0..rounds {
        for add in [false, true] {
            other.delete("k").unwrap();
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                let (cache, other, barrier) = (&cache, &other, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    if add {
                        cache.add("k", &(round * 10), ttl).unwrap();
                    } else {
                        cache.set_many(&[("k", round * 10)], ttl).unwrap();
                    }
                });
                s.spawn(move || {
                    barrier.wait();
                    other.set("k", &(round * 10 + 1), ttl).unwrap();
                });
            });
            let now: Option<u64> = other.get("k");
            if !within(LAG, || cache.get::<u64>("k") == now) {
                if add {
                    stale_add += 1;
                } else {
                    stale_many += 1;
                }
            }
        }
    }
    assert_eq!(
        (stale_many, stale_add),
        (0, 0),
        "an older value stayed local (set_many, add) in these many of {rounds} rounds each"
    );
}

static CANCEL_VALUE: parking_lot::Mutex<String> = parking_lot::const_mutex(String::new());

#[quickcache(
    cache = "coh-cancel",
    timeout = 600,
    local_timeout = 60,
    skip_arg = "force"
)]
async fn cancel_page(id: u32, force: bool) -> String {
    let _ = (id, force);
    CANCEL_VALUE.lock().clone()
}

/// An async write cancelled (its future dropped) after its command may
/// have reached Redis: `set_async`, `f::set_cached`, and a `skip_arg`
/// refresh. The local tier must never keep the value from before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_async_write_never_leaves_the_old_value_local() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let cache = coherent_with_prefix(&url, "cancel6");
    cachefn::register("coh-cancel", cache.clone());
    let live = cache.clone();
    tokio::task::spawn_blocking(move || wait_live(&live))
        .await
        .unwrap();
    let ttl = Duration::from_secs(600);
    let local = cache.local().unwrap().clone();
    let page_key = cancel_page::key(1).as_str().to_owned();
    let rounds = 40u32;
    let mut stale = [0u32; 3];
    let mut reached = [0u32; 3];
    for round in 0..rounds {
        for (way, count) in stale.iter_mut().enumerate() {
            let old = format!("old {round} {way}");
            let new = format!("new {round} {way}");
            // The old value, kept locally (a write may lose its local copy
            // to a check of an earlier write's echo that lands meanwhile:
            // write it again then).
            let key = if way == 0 { "k" } else { page_key.as_str() }.to_owned();
            let start = Instant::now();
            while local.get::<String>(&key) != Some(old.clone()) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "never kept locally"
                );
                // (A write that fails on a loaded machine is tried again.)
                let _ = match way {
                    0 => cache.set_async("k", &old, ttl).await,
                    _ => cancel_page::set_cached(1, old.clone()).await,
                };
            }
            *CANCEL_VALUE.lock() = new.clone();
            let cancelled = match way {
                0 => tokio::time::timeout(Duration::ZERO, cache.set_async("k", &new, ttl))
                    .await
                    .is_err(),
                1 => tokio::time::timeout(Duration::ZERO, cancel_page::set_cached(1, new.clone()))
                    .await
                    .is_err(),
                _ => tokio::time::timeout(Duration::ZERO, cancel_page(1, true))
                    .await
                    .is_err(),
            };
            if !cancelled {
                continue;
            }
            // Whether the write reached Redis or not, the old value is not
            // kept locally from now on...
            let right_after = local.get::<String>(&key);
            // ... and once Redis holds the new value, it is what is read.
            let landed = {
                let (url, key) = (url.clone(), key.clone());
                let new = new.clone();
                tokio::task::spawn_blocking(move || {
                    within(Duration::from_millis(500), || {
                        in_redis::<String>(&url, "cancel6", &key) == Some(new.clone())
                    })
                })
                .await
                .unwrap()
            };
            if landed {
                reached[way] += 1;
            }
            let mut ok = right_after.as_deref() != Some(old.as_str());
            if landed {
                let start = Instant::now();
                while cache.get_async::<String>(&key).await != Some(new.clone()) {
                    if start.elapsed() > LAG {
                        ok = false;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            if !ok {
                *count += 1;
            }
        }
    }
    assert!(
        reached.iter().all(|&n| n > 0),
        "no cancelled write reached Redis: {reached:?}"
    );
    assert_eq!(
        stale,
        [0, 0, 0],
        "old values kept (set_async, set_cached, skip_arg refresh) of {rounds} rounds each; \
         cancelled writes that reached Redis: {reached:?}"
    );
}

/// Lifetimes beyond what Redis accepts as an expiry (`PX` past `i64`) are
/// clamped, not refused: a value stored for `Duration::MAX` is stored, and
/// `get_or_set` with it computes once, not on every call.
#[test]
fn the_longest_lifetimes_are_stored_not_recomputed() {
    let server = started!(RedisServer::start());
    let url = server.url();
    let tiered = coherent_with_prefix(&url, "ttl7");
    let shared = shared_only_with_prefix(&url, "ttl7");
    let runs = Runs::new();
    let lifetimes = [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_millis(u64::MAX),
        Duration::from_secs(200 * 365 * 24 * 3600),
    ];
    for (i, ttl) in lifetimes.into_iter().enumerate() {
        for cache in [&tiered, &shared] {
            let key = format!("k{i}");
            cache.set(&key, &(i as u64), ttl).unwrap();
            assert_eq!(shared.get::<u64>(&key), Some(i as u64), "{ttl:?}");
            let g = format!("g{i}");
            let before = runs.get();
            for _ in 0..3 {
                let v: u64 = cache.get_or_set(&g, ttl, || {
                    runs.hit();
                    7
                });
                assert_eq!(v, 7);
            }
            assert!(
                runs.get() <= before + 1,
                "{ttl:?}: computed {} times",
                runs.get() - before
            );
            assert_eq!(shared.get::<u64>(&g), Some(7), "{ttl:?}");
            shared.delete(&g).unwrap();
        }
    }
    assert_eq!(
        tiered.stats().shared_errors + shared.stats().shared_errors,
        0
    );
}
