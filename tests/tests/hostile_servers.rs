//! The network tiers against fake servers on loopback that misbehave: they
//! trickle a reply, never answer, answer half a reply and stall, or declare
//! and stream huge replies. Every blocking call must end within its
//! deadline and allocate no more than the reply cap, and a memoized call
//! over such a server still returns the body's value.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memcached, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::Runs;

const TIMEOUT: Duration = Duration::from_millis(200);
/// A call may take the connect timeout plus the response timeout; "did not
/// hang" is three times that.
const BOUND: Duration = Duration::from_millis(3 * 400);

/// A loopback server that runs `behave` on every connection, on a thread
/// of its own, until dropped.
struct Fake {
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

type Behaviour = fn(TcpStream, &AtomicBool);

impl Fake {
    fn start(behave: Behaviour) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let stop = stop.clone();
                    workers.push(std::thread::spawn(move || behave(conn, &stop)));
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        Fake {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn redis(&self) -> Redis {
        Redis::builder(&format!("redis://127.0.0.1:{}/0", self.port))
            .connect_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .build()
            .unwrap()
    }

    fn memcached(&self) -> Memcached {
        Memcached::builder(&format!("memcache://127.0.0.1:{}", self.port))
            .connect_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .build()
            .unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Read what the client sent (its first request).
fn read_request(conn: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = conn.read(&mut buf);
}

/// Sleep in small steps until the test is over.
fn stall(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `head`, then one byte every 50 ms.
fn trickle(mut conn: TcpStream, stop: &AtomicBool, head: &[u8]) {
    read_request(&mut conn);
    let _ = conn.write_all(head);
    while !stop.load(Ordering::SeqCst) {
        if conn.write_all(b"x").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `head`, then `chunk` as fast as the client reads, until it hangs up.
fn stream(mut conn: TcpStream, stop: &AtomicBool, head: &[u8], chunk: &[u8]) {
    read_request(&mut conn);
    let _ = conn.write_all(head);
    while !stop.load(Ordering::SeqCst) {
        if conn.write_all(chunk).is_err() {
            return;
        }
    }
}

const REDIS_STALLS: [(&str, Behaviour); 3] = [
    ("trickles", |c, s| trickle(c, s, b"$100000\r\n")),
    ("never answers", |_c, s| stall(s)),
    ("answers half, then stalls", |mut c, s| {
        read_request(&mut c);
        let _ = c.write_all(b"$10\r\nhello");
        stall(s);
    }),
];

const MEMCACHED_STALLS: [(&str, Behaviour); 3] = [
    ("trickles", |c, s| trickle(c, s, b"VA 100000 c5\r\n")),
    ("never answers", |_c, s| stall(s)),
    ("answers half, then stalls", |mut c, s| {
        read_request(&mut c);
        let _ = c.write_all(b"VA 10 c5\r\nhello");
        stall(s);
    }),
];

fn assert_bounded<T: std::fmt::Debug>(
    what: &str,
    call: impl FnOnce() -> Result<T, cachefn::Error>,
) {
    let start = Instant::now();
    let e = call().expect_err(what);
    let took = start.elapsed();
    assert!(took < BOUND, "{what}: took {took:?} ({e})");
    assert!(e.is_outage(), "{what}: a stalled server is an outage: {e}");
}

#[test]
fn a_stalling_redis_server_fails_each_call_within_its_deadline() {
    for (what, behave) in REDIS_STALLS {
        let fake = Fake::start(behave);
        let r = fake.redis();
        assert_bounded(&format!("redis get: server {what}"), || r.get("k"));
        assert_bounded(&format!("redis mget: server {what}"), || {
            r.get_many(&["a", "b"])
        });
        assert_bounded(&format!("redis set: server {what}"), || {
            r.set("k", b"v", Duration::from_secs(9))
        });
    }
}

#[test]
fn a_stalling_memcached_server_fails_each_call_within_its_deadline() {
    for (what, behave) in MEMCACHED_STALLS {
        let fake = Fake::start(behave);
        let mc = fake.memcached();
        assert_bounded(&format!("memcached get: server {what}"), || mc.get("a:k"));
        assert_bounded(&format!("memcached get_many: server {what}"), || {
            mc.get_many(&["a:1", "a:2"])
        });
    }
}

#[test]
fn a_trickling_server_fails_an_async_redis_call_within_its_deadline() {
    let fake = Fake::start(REDIS_STALLS[0].1);
    let r = fake.redis();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let e = rt.block_on(r.get_async("k")).expect_err("a trickled reply");
    assert!(start.elapsed() < BOUND, "took {:?} ({e})", start.elapsed());
    assert!(e.is_outage(), "{e}");
}

static TRICKLED_RUNS: Runs = Runs::new();

#[quickcache(cache = "hostile-trickle", timeout = 60, local_timeout = 0)]
fn through_a_trickle(id: u32) -> u32 {
    TRICKLED_RUNS.hit();
    id + 1
}

#[test]
fn a_memoized_call_over_a_trickling_server_returns_the_body_value_in_time() {
    let fake = Fake::start(REDIS_STALLS[0].1);
    cachefn::register(
        "hostile-trickle",
        Cache::builder().shared(fake.redis()).prefix("t").build(),
    );
    let start = Instant::now();
    assert_eq!(through_a_trickle(1), 2);
    assert_eq!(through_a_trickle(2), 3);
    // A read and a store per call, each bounded (or skipped by the open breaker).
    assert!(start.elapsed() < 4 * BOUND, "took {:?}", start.elapsed());
    assert_eq!(TRICKLED_RUNS.get(), 2);
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Far below the 1 GB the servers declare, above what the cap (32 MiB)
/// and the tests running alongside may take.
const GREW_AT_MOST: u64 = 200 << 20;

fn assert_small_growth<T: std::fmt::Debug>(
    what: &str,
    call: impl FnOnce() -> Result<T, cachefn::Error>,
) {
    let before = rss();
    let start = Instant::now();
    let e = call().expect_err(what);
    let grew = rss().saturating_sub(before);
    assert!(
        grew < GREW_AT_MOST,
        "{what}: the process grew by {grew} bytes ({e})"
    );
    assert!(
        start.elapsed() < BOUND * 4,
        "{what}: took {:?}",
        start.elapsed()
    );
    assert!(
        e.to_string().contains("max_reply_size"),
        "{what}: the error names the setting: {e}"
    );
    assert!(
        !e.is_outage(),
        "{what}: a server that answers is alive: {e}"
    );
}

static CHUNK: [u8; 1 << 16] = [b'z'; 1 << 16];

#[test]
fn huge_redis_replies_fail_the_call_without_being_allocated() {
    // A 1 GB value, streamed.
    let fake = Fake::start(|c, s| stream(c, s, b"$1073741824\r\n", &CHUNK));
    let r = fake.redis();
    assert_small_growth("redis get of a 1 GB value", || r.get("k"));
    drop(fake);
    // An array of 64 M elements, streamed as nils.
    let fake = Fake::start(|c, s| stream(c, s, b"*67108864\r\n", b"$-1\r\n$-1\r\n$-1\r\n$-1\r\n"));
    let r = fake.redis();
    assert_small_growth("redis mget of a 64 M element array", || {
        r.get_many(&["a", "b"])
    });
    drop(fake);
    // Two elements of 20 MB each: each fits, together they do not.
    let fake = Fake::start(|mut c, s| {
        read_request(&mut c);
        let _ = c.write_all(b"*2\r\n$20000000\r\n");
        for _ in 0..(20_000_000 / CHUNK.len()) {
            let _ = c.write_all(&CHUNK);
        }
        let _ = c.write_all(&CHUNK[..20_000_000 % CHUNK.len()]);
        let _ = c.write_all(b"\r\n$20000000\r\n");
        stream(c, s, b"", &CHUNK);
    });
    let r = fake.redis();
    assert_small_growth("redis mget of two 20 MB values", || r.get_many(&["a", "b"]));
}

#[test]
fn huge_memcached_replies_fail_the_call_without_being_allocated() {
    let fake = Fake::start(|c, s| stream(c, s, b"VA 1073741824 c5\r\n", &CHUNK));
    let mc = fake.memcached();
    assert_small_growth("memcached mg of a 1 GB value", || mc.get("a:k"));
    assert_small_growth("memcached batch of 1 GB values", || {
        mc.get_many(&["a:1", "a:2", "a:3"])
    });
    drop(fake);
    // Values of 20 MB each: each fits, together they do not.
    let fake = Fake::start(|mut c, s| {
        read_request(&mut c);
        for _ in 0..3 {
            let _ = c.write_all(b"VA 20000000 c5\r\n");
            for _ in 0..(20_000_000 / CHUNK.len()) {
                let _ = c.write_all(&CHUNK);
            }
            let _ = c.write_all(&CHUNK[..20_000_000 % CHUNK.len()]);
            let _ = c.write_all(b"\r\n");
        }
        stall(s);
    });
    let mc = fake.memcached();
    assert_small_growth("memcached batch of 20 MB values", || {
        mc.get_many(&["a:1", "a:2", "a:3"])
    });
}

#[test]
fn the_reply_cap_is_configurable() {
    // A 2 KiB value, and a 1 KiB cap.
    let fake = Fake::start(|mut c, s| {
        read_request(&mut c);
        let mut reply = b"$2048\r\n".to_vec();
        reply.extend([b'v'; 2048]);
        reply.extend(b"\r\n");
        let _ = c.write_all(&reply);
        stall(s);
    });
    let url = format!("redis://127.0.0.1:{}/0", fake.port);
    let small = Redis::builder(&url).max_reply_size(1024).build().unwrap();
    let e = small.get("k").unwrap_err();
    assert!(e.to_string().contains("max_reply_size"), "{e}");
    let large = Redis::builder(&url).max_reply_size(4096).build().unwrap();
    assert_eq!(large.get("k").unwrap(), Some(vec![b'v'; 2048]));
}

static MC_OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static MC_MOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A memcached that misses every `mg` (slowly), counting its connections.
fn slow_missing_memcached(conn: TcpStream, stop: &AtomicBool) {
    use std::io::BufRead;
    let now = MC_OPEN.fetch_add(1, Ordering::SeqCst) + 1;
    MC_MOST.fetch_max(now, Ordering::SeqCst);
    let mut writer = conn.try_clone().unwrap();
    let mut lines = std::io::BufReader::new(conn);
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.starts_with("mg ") => {
                std::thread::sleep(Duration::from_millis(1));
                if writer.write_all(b"EN\r\n").is_err() {
                    break;
                }
            }
            Ok(_) => {}
        }
    }
    MC_OPEN.fetch_sub(1, Ordering::SeqCst);
}

#[test]
fn many_threads_stay_within_memcached_max_connections() {
    let fake = Fake::start(slow_missing_memcached);
    let mc = Memcached::builder(&format!("memcache://127.0.0.1:{}", fake.port))
        .max_connections(4)
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..100 {
            let mc = &mc;
            s.spawn(move || {
                for i in 0..5 {
                    assert_eq!(mc.get(&format!("a:{t}:{i}")).unwrap(), None);
                }
            });
        }
    });
    let most = MC_MOST.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&most),
        "{most} connections for max_connections(4)"
    );

    // All busy past the deadline: a clear error, not a hang.
    let one = Memcached::builder(&format!("memcache://127.0.0.1:{}", fake.port))
        .max_connections(1)
        .response_timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (one, errors) = (&one, &errors);
            s.spawn(move || {
                for i in 0..20 {
                    if let Err(e) = one.get_many(&[&format!("a:{t}:{i}"), "a:x", "a:y"]) {
                        errors.lock().unwrap().push(e.to_string());
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("stayed busy") && e.contains("max_connections")),
        "{errors:?}"
    );
}

// --- a 1 GB reply to an async call -----------------------------------------

/// A Redis that answers `GET` with a 1 GB bulk string, streamed as fast as
/// the client reads, and every other command (the client's setup, `SET`)
/// with `+OK`.
fn huge_get_server(conn: TcpStream, stop: &AtomicBool) {
    use std::io::BufRead;
    // Wakes up to see the end of the test while a client keeps an idle
    // connection open.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut out = conn.try_clone().unwrap();
    let mut input = std::io::BufReader::new(conn);
    let mut line = String::new();
    let mut read_line = |input: &mut std::io::BufReader<TcpStream>| {
        line.clear();
        loop {
            match input.read_line(&mut line) {
                Ok(n) if n > 0 => return Some(line.trim_end().to_owned()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && !stop.load(Ordering::SeqCst) => {}
                _ => return None,
            }
        }
    };
    while !stop.load(Ordering::SeqCst) {
        // A command: `*n`, then n bulk strings.
        let Some(count) = read_line(&mut input) else {
            return;
        };
        let n: usize = count.trim_start_matches('*').parse().unwrap_or(0);
        let mut args = Vec::new();
        for _ in 0..n {
            let Some(len) = read_line(&mut input) else {
                return;
            };
            let len: usize = len.trim_start_matches('$').parse().unwrap_or(0);
            let mut arg = vec![0; len + 2];
            if input.read_exact(&mut arg).is_err() {
                return;
            }
            arg.truncate(len);
            args.push(arg);
        }
        if !args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"GET")) {
            if out.write_all(b"+OK\r\n").is_err() {
                return;
            }
            continue;
        }
        let _ = out.write_all(b"$1073741824\r\n");
        let mut sent = 0;
        while sent < 1 << 30 && !stop.load(Ordering::SeqCst) {
            let n = CHUNK.len().min((1 << 30) - sent);
            if out.write_all(&CHUNK[..n]).is_err() {
                return;
            }
            sent += n;
        }
        let _ = out.write_all(b"\r\n");
    }
}

static HUGE_RUNS: Runs = Runs::new();

#[quickcache(cache = "hostile-huge", timeout = 60, local_timeout = 0)]
async fn through_huge_async(id: u32) -> u32 {
    HUGE_RUNS.hit();
    id * 10
}

#[quickcache(cache = "hostile-huge", timeout = 60, local_timeout = 0)]
fn through_huge(id: u32) -> u32 {
    HUGE_RUNS.hit();
    id * 100
}

/// The reply cap holds on the async connection as on the blocking ones: a
/// server that declares a 1 GB value and streams it, under a response
/// timeout (5 s) long enough to deliver all of it, fails the read at the
/// header, as a refusal naming `max_reply_size`; a memoized call returns
/// its body's value; and the process grows by less than 64 MB. Measured
/// in a child process, where no other test allocates meanwhile.
#[test]
fn a_1_gb_reply_to_an_async_call_is_not_read_into_memory() {
    const TEST: &str = "a_1_gb_reply_to_an_async_call_is_not_read_into_memory";
    if std::env::var_os("CACHEFN_HOSTILE_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env("CACHEFN_HOSTILE_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("CHILD capped"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    const GREW_LESS_THAN: u64 = 64 << 20;
    let fake = Fake::start(huge_get_server);
    let url = format!("redis://127.0.0.1:{}/0", fake.port);
    let redis = || {
        Redis::builder(&url)
            .response_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    cachefn::register(
        "hostile-huge",
        Cache::builder().shared(redis()).prefix("h").build(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = redis();
    let before = rss();

    let refused = |read: Result<Option<Vec<u8>>, cachefn::Error>| {
        let e = match read {
            // Not printed: a gigabyte.
            Ok(v) => panic!("a reply of {} bytes was read", v.map_or(0, |v| v.len())),
            Err(e) => e,
        };
        assert!(e.to_string().contains("max_reply_size"), "{e}");
        assert!(!e.is_outage(), "a server that answers is alive: {e}");
    };
    refused(rt.block_on(r.get_async("k")));
    assert_eq!(rt.block_on(through_huge_async(4)), 40);
    let grew = rss().saturating_sub(before);
    assert!(
        grew < GREW_LESS_THAN,
        "async: the process grew by {grew} bytes"
    );

    // The blocking client, against the same server.
    refused(r.get("k"));
    assert_eq!(through_huge(4), 400);
    let grew = rss().saturating_sub(before);
    assert!(
        grew < GREW_LESS_THAN,
        "sync: the process grew by {grew} bytes"
    );
    assert_eq!(HUGE_RUNS.get(), 2);
    println!("\nCHILD capped, grew {grew} bytes");
}
