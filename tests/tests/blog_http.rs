//! The guide's example (`examples/blog`) as two processes of one service:
//! two children of this test binary run its `main`, each with its own
//! `Cache` and local tier, over one real redis-server and one database.
//! A page read through both is cached in both local tiers; a write through
//! one is served by the other once Redis's invalidation reaches it; the
//! stats endpoint's JSON says where each read was served from. HTTP is
//! spoken by hand (one request per connection), without a client crate.

#[path = "../../examples/blog/main.rs"]
mod blog;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use cachefn_tests::child::Runner;
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::server_process::free_port;
use cachefn_tests::{started, wait_until};
use serde_json::Value;

/// The test a child process runs: the example's `main`, configured by the
/// environment its parent set. A no-op when run as a test of its own.
const CHILD_TEST: &str = "blog_process";

#[test]
fn blog_process() {
    if std::env::var_os("BLOG_TEST_CHILD").is_none() {
        return;
    }
    blog::main().expect("the blog example stopped");
}

/// One process of the example, serving on `addr`; killed on drop.
struct App {
    addr: SocketAddr,
    _process: Runner,
}

impl App {
    /// Start the example as a process of its own, configured as a
    /// deployment would be: by the environment.
    fn start(redis: &RedisServer, data: &Path) -> App {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut process = Runner::spawn(
            CHILD_TEST,
            &[
                ("BLOG_TEST_CHILD", "1"),
                ("REDIS_URL", &redis.url()),
                ("BLOG_ADDR", &addr.to_string()),
                ("BLOG_DATA", data.to_str().expect("a UTF-8 temp dir")),
            ],
        );
        wait_until(Duration::from_secs(30), "the blog to listen", || {
            assert!(process.running(), "the blog process exited at start");
            TcpStream::connect(addr).is_ok()
        });
        App {
            addr,
            _process: process,
        }
    }

    /// One HTTP/1.1 request on a fresh connection: (status, body). A
    /// `POST` body is a form.
    fn http(&self, method: &str, path: &str, form: &str) -> (u16, String) {
        let mut conn = TcpStream::connect(self.addr).expect("connect to the blog");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            self.addr,
            form.len()
        )
        .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn get(&self, path: &str) -> String {
        let (status, body) = self.http("GET", path, "");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// `/stats`, parsed.
    fn stats(&self) -> Value {
        serde_json::from_str(&self.get("/stats")).expect("/stats is JSON")
    }
}

/// `post_page`'s (local hits, shared hits, misses) in a `/stats` answer.
fn page_counts(stats: &Value) -> (u64, u64, u64) {
    let f = &stats["post_page"];
    let n = |name: &str| {
        f[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no `{name}` in {stats}"))
    };
    (n("local_hits"), n("shared_hits"), n("misses"))
}

#[test]
fn a_write_through_one_process_is_served_by_the_other() {
    let redis = started!(RedisServer::start());
    let data = tempfile::tempdir().unwrap();
    let a = App::start(&redis, data.path());
    let b = App::start(&redis, data.path());

    // A computes the page; B is served A's work by Redis (whatever else
    // its query string holds: the key is `q.id`); then both hold it in
    // their local tiers.
    let page = a.get("/post?id=3");
    assert_eq!(page, "<h1>Post 3</h1><p>The text of post 3.</p>");
    assert_eq!(b.get("/post?id=3&utm_source=mail"), page);
    assert_eq!(a.get("/post?id=3"), page);
    assert_eq!(b.get("/post?id=3"), page);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        page_counts(&sa),
        (1, 0, 1),
        "A: a miss, then a local hit: {sa}"
    );
    assert_eq!(page_counts(&sb), (1, 1, 0), "B: Redis, then local: {sb}");
    assert!(
        sb["cache"]["shared_hits"].as_u64() >= Some(1)
            && sb["cache"]["local_hits"].as_u64() >= Some(1),
        "the cache's own counters: {sb}"
    );

    // A write through A: B's local copy goes within milliseconds (its
    // `local_timeout` is 600 s, so only the invalidation can explain it),
    // and B recomputes the page from the shared database.
    let (status, body) = a.http("POST", "/post", "id=3&title=Retitled+%3Cby+A%3E");
    assert_eq!(status, 204, "{body}");
    let new_page = "<h1>Retitled &lt;by A&gt;</h1><p>The text of post 3.</p>";
    wait_until(Duration::from_secs(10), "B to serve the new title", || {
        b.get("/post?id=3") == new_page
    });
    let sb = b.stats();
    assert_eq!(page_counts(&sb).2, 1, "B ran the body once: {sb}");
    assert!(
        sb["post_page"]["invalidations"].as_u64() >= Some(1),
        "B's copy was dropped by Redis's invalidation: {sb}"
    );
    assert_eq!(a.get("/post?id=3"), new_page);

    // No such post: a 404 for reads and writes.
    assert_eq!(b.http("GET", "/post?id=99", "").0, 404);
    assert_eq!(a.http("POST", "/post", "id=99&title=x").0, 404);
}

/// Each Rust block of the guide (`docs/guide.md`) is the lines of the
/// example that the comment before it names, exactly: the guide shows the
/// program this file tests, not a copy that drifts from it.
#[test]
fn the_guide_quotes_the_example_exactly() {
    const EXAMPLE: &str = "examples/blog/main.rs";
    let guide = include_str!("../../docs/guide.md");
    let source: Vec<&str> = include_str!("../../examples/blog/main.rs")
        .lines()
        .collect();
    let mut lines = guide.lines().enumerate();
    let mut quoted = 0;
    let mut named: Option<(usize, usize)> = None;
    while let Some((n, line)) = lines.next() {
        if let Some(range) = line
            .strip_prefix(&format!("<!-- {EXAMPLE}:"))
            .and_then(|rest| rest.strip_suffix(" -->"))
        {
            let (first, last) = range
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or_else(|| panic!("guide line {}: not `FIRST-LAST`", n + 1));
            assert!(
                1 <= first && first <= last && last <= source.len(),
                "guide line {}: {EXAMPLE} has {} lines",
                n + 1,
                source.len()
            );
            named = Some((first, last));
        } else if line.starts_with("```rust") {
            let (first, last) = named.take().unwrap_or_else(|| {
                panic!(
                    "guide line {}: a Rust block without `<!-- {EXAMPLE}:FIRST-LAST -->` before it",
                    n + 1
                )
            });
            let block: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| *l != "```")
                .collect();
            assert_eq!(
                block.join("\n"),
                source[first - 1..last].join("\n"),
                "guide line {}: not lines {first}-{last} of {EXAMPLE}",
                n + 1
            );
            quoted += 1;
        } else if !line.trim().is_empty() {
            // A named range quotes the very next block, or nothing.
            assert!(
                named.is_none(),
                "guide line {}: text between a range and its block",
                n + 1
            );
        }
    }
    assert_eq!(quoted, 4, "the guide quotes four parts of the example");
}
