//! `rediss://` (feature `redis-tls`) against real TLS-only `redis-server`
//! processes on free loopback ports, with a CA and certificates made by the
//! `openssl` CLI at test time.

use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memory, Redis};
use cachefn::{quickcache, Cache, Error};
use cachefn_tests::redis_server::{RedisServer, TlsOptions, TlsRedisServer};
use cachefn_tests::Runs;

/// Start a TLS server, or skip (outside CI) when redis-server, its TLS
/// support or openssl is missing.
macro_rules! tls_server {
    ($options:expr) => {
        match TlsRedisServer::start($options) {
            Some(s) => s,
            None => return,
        }
    };
    () => {
        tls_server!(TlsOptions::default())
    };
}

const MIN: Duration = Duration::from_secs(60);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The tier for `server`, trusting the test CA.
fn trusted(server: &TlsRedisServer) -> Redis {
    Redis::builder(&server.url())
        .tls_root_cert(server.ca_pem())
        .build()
        .expect("a TLS tier")
}

fn message(e: Error) -> String {
    match e {
        Error::Backend {
            backend, message, ..
        } => {
            assert_eq!(backend, "redis");
            message
        }
        other => panic!("not a backend error: {other:?}"),
    }
}

fn build_error(builder: cachefn::backends::RedisBuilder) -> String {
    message(builder.build().expect_err("build must fail"))
}

static SYNC_RUNS: Runs = Runs::new();

#[quickcache(cache = "tls-sync", timeout = 60)]
fn quote(id: u32) -> String {
    SYNC_RUNS.hit();
    format!("quote {id}")
}

#[test]
fn sync_calls_and_memoized_values_over_tls() {
    let server = tls_server!();
    let r = trusted(&server);
    assert_eq!(r.get("a").unwrap(), None);
    r.set("a", b"1", MIN).unwrap();
    assert_eq!(r.get("a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(r.incr("n", 5).unwrap(), 5);
    r.set_many(&[("m1", b"x".as_slice()), ("m2", b"y".as_slice())], MIN)
        .unwrap();
    assert_eq!(
        r.get_many(&["m1", "zz", "m2"]).unwrap(),
        vec![Some(b"x".to_vec()), None, Some(b"y".to_vec())]
    );
    r.clear_prefix("m").unwrap();
    assert_eq!(r.get("m1").unwrap(), None);
    assert_eq!(
        r.get("a").unwrap(),
        Some(b"1".to_vec()),
        "outside the prefix"
    );

    let tiered = || {
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(trusted(&server))
            .prefix("tls")
            .build()
    };
    let first = tiered();
    cachefn::register("tls-sync", first.clone());
    assert_eq!(quote(1), "quote 1");
    assert_eq!(quote(1), "quote 1");
    assert_eq!(SYNC_RUNS.get(), 1);
    // A second cache with an empty local tier (as another process has):
    // served from Redis over TLS, the body does not run again.
    let second = tiered();
    cachefn::register("tls-sync", second.clone());
    assert_eq!(quote(1), "quote 1");
    assert_eq!(SYNC_RUNS.get(), 1, "served by Redis");
    assert_eq!(second.stats().shared_hits, 1);
    assert_eq!(
        first.stats().shared_errors + second.stats().shared_errors,
        0
    );
    quote::clear(1).unwrap();
    assert_eq!(quote::get_cached(1), None);

    // Plain get/set through the cache.
    second.set("plain", &42u32, MIN).unwrap();
    assert_eq!(first.get::<u32>("plain"), Some(42));
}

static ASYNC_RUNS: Runs = Runs::new();

#[quickcache(cache = "tls-async", timeout = 60)]
async fn fragment(id: u32) -> String {
    ASYNC_RUNS.hit();
    format!("fragment {id}")
}

#[test]
fn async_calls_over_tls() {
    let server = tls_server!();
    let r = trusted(&server);
    let tiered = || {
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(trusted(&server))
            .prefix("atls")
            .build()
    };
    current_thread().block_on(async {
        assert_eq!(r.get_async("a").await.unwrap(), None);
        r.set_async("a", b"1", MIN).await.unwrap();
        assert_eq!(r.get_async("a").await.unwrap(), Some(b"1".to_vec()));
        assert!(r.add_async("b", b"2", MIN).await.unwrap());
        assert_eq!(r.incr_async("n", 3).await.unwrap(), 3);

        let first = tiered();
        first.set_async("k", &7u32, MIN).await.unwrap();
        assert_eq!(first.get_async::<u32>("k").await, Some(7));
        cachefn::register("tls-async", first.clone());
        assert_eq!(fragment(1).await, "fragment 1");
        let second = tiered();
        assert_eq!(second.get_async::<u32>("k").await, Some(7), "from Redis");
        cachefn::register("tls-async", second.clone());
        assert_eq!(fragment(1).await, "fragment 1");
        assert_eq!(ASYNC_RUNS.get(), 1, "served by Redis");
        assert_eq!(second.stats().shared_hits, 2);
        assert_eq!(
            first.stats().shared_errors + second.stats().shared_errors,
            0
        );
    });
    // The sync side of the same tier sees what the async side wrote.
    assert_eq!(r.get("a").unwrap(), Some(b"1".to_vec()));

    // On a multi-threaded runtime too.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = std::sync::Arc::new(trusted(&server));
    rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let r = r.clone();
                tokio::spawn(async move {
                    r.set_async(&format!("t:{i}"), b"v", MIN).await.unwrap();
                    r.get_async(&format!("t:{i}")).await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(b"v".to_vec()));
        }
    });
}

static UNTRUSTED_RUNS: Runs = Runs::new();

#[quickcache(cache = "tls-untrusted", timeout = 60, local_timeout = 0)]
fn through_untrusted(id: u32) -> u32 {
    UNTRUSTED_RUNS.hit();
    id * 3
}

#[test]
fn an_untrusted_server_is_an_error_and_never_fails_a_call() {
    let server = tls_server!();
    // No root certificate: the system store does not trust the test CA.
    let r = Redis::open(&server.url()).expect("builds: nothing connects yet");
    let e = message(r.get("k").unwrap_err());
    assert!(
        e.contains("not trusted") && e.contains("tls_root_cert"),
        "{e}"
    );
    assert!(r.set("k", b"v", MIN).is_err());
    let e = message(current_thread().block_on(r.get_async("k")).unwrap_err());
    assert!(e.contains("not trusted"), "{e}");

    // Another CA's certificate is no better.
    let other = tls_server!();
    let r = Redis::builder(&server.url())
        .tls_root_cert(other.ca_pem())
        .build()
        .unwrap();
    let e = message(r.get("k").unwrap_err());
    assert!(e.contains("not trusted"), "{e}");

    // A memoized call through it still returns the body's value, quickly.
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("untrusted")
        .build();
    cachefn::register("tls-untrusted", cache.clone());
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(through_untrusted(2), 6);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(cache.stats().shared_errors >= 1);
    assert!(UNTRUSTED_RUNS.get() >= 1);
    assert!(
        through_untrusted::set_cached(2, 9).is_err(),
        "writes report the failure"
    );
}

static PASSWORD_RUNS: Runs = Runs::new();

#[quickcache(cache = "tls-wrong-password", timeout = 60, local_timeout = 0)]
fn through_wrong_password(id: u32) -> u32 {
    PASSWORD_RUNS.hit();
    id + 1
}

#[test]
fn a_wrong_password_or_a_garbage_url_is_a_clear_error() {
    let server = tls_server!(TlsOptions {
        password: Some("s3cret".into()),
        ..TlsOptions::default()
    });
    let port = server.port();
    let ca = server.ca_pem();

    // The right password works.
    let r = trusted(&server);
    r.set("k", b"v", MIN).unwrap();
    assert_eq!(r.get("k").unwrap(), Some(b"v".to_vec()));

    // A wrong one (or none) is an error that names the cause, not the password.
    for url in [
        format!("rediss://:wr0ng@127.0.0.1:{port}/0"),
        format!("rediss://127.0.0.1:{port}/0"),
    ] {
        let r = Redis::builder(&url)
            .tls_root_cert(ca.clone())
            .build()
            .unwrap();
        let e = message(r.get("k").unwrap_err());
        assert!(
            e.contains("WRONGPASS") || e.contains("NOAUTH") || e.contains("uthentication"),
            "{e}"
        );
        assert!(!e.contains("wr0ng"), "{e}");
        let e = message(current_thread().block_on(r.get_async("k")).unwrap_err());
        assert!(!e.contains("wr0ng"), "{e}");
    }
    // A memoized call through it still returns the body's value.
    let cache = Cache::builder()
        .shared(
            Redis::builder(&format!("rediss://:wr0ng@127.0.0.1:{port}/0"))
                .tls_root_cert(ca.clone())
                .build()
                .unwrap(),
        )
        .prefix("wrongpass")
        .build();
    cachefn::register("tls-wrong-password", cache.clone());
    assert_eq!(through_wrong_password(1), 2);
    assert_eq!(through_wrong_password(1), 2);
    assert_eq!(PASSWORD_RUNS.get(), 2, "nothing cached");
    assert!(cache.stats().shared_errors >= 2);

    // Garbage URLs fail `build`, without the password in the message.
    for url in [
        format!("rediss://:s3cret@127.0.0.1:{port}/not-a-db"),
        "rediss://:s3cret@".to_owned(),
        "rediss://:s3cret@[::1:6379/0".to_owned(),
        format!("rediss://:s3cret@127.0.0.1:{port}/0#whatever"),
    ] {
        let e = build_error(Redis::builder(&url).tls_root_cert(ca.clone()));
        assert!(e.contains("not a Redis URL"), "{url}: {e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
    // Turning verification off is refused.
    let e = build_error(Redis::builder(&format!(
        "rediss://:s3cret@127.0.0.1:{port}/0#insecure"
    )));
    assert!(e.contains("insecure") && !e.contains("s3cret"), "{e}");

    // A plain client on the TLS port is an error, not a hang.
    let plain = Redis::open(&format!("redis://:s3cret@127.0.0.1:{port}/0")).unwrap();
    let start = Instant::now();
    assert!(plain.get("k").is_err());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_tls_client_on_a_plain_port_is_a_clear_error() {
    let Some(plain) = RedisServer::start() else {
        return;
    };
    let url = plain.url().replacen("redis://", "rediss://", 1);
    let r = Redis::open(&url).unwrap();
    // The server waits for the end of a line that never comes: no answer
    // to the handshake within the timeouts.
    let start = Instant::now();
    let e = message(r.get("k").unwrap_err());
    assert!(e.contains("check that this port serves TLS"), "{e}");
    let e = message(current_thread().block_on(r.get_async("k")).unwrap_err());
    assert!(e.contains("check that this port serves TLS"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn bad_certificates_fail_build_clearly() {
    let server = tls_server!(TlsOptions {
        require_client_cert: true,
        ..TlsOptions::default()
    });
    let url = server.url();
    let ca = server.ca_pem();

    let e = build_error(Redis::builder(&url).tls_root_cert(&b"not a certificate"[..]));
    assert!(e.contains("holds no certificate"), "{e}");
    let e = build_error(Redis::builder(&url).tls_root_cert(Vec::new()));
    assert!(e.contains("holds no certificate"), "{e}");
    let truncated = String::from_utf8(ca.clone())
        .unwrap()
        .replacen("\n", "\n!!", 2);
    let e = build_error(Redis::builder(&url).tls_root_cert(truncated));
    assert!(e.contains("tls_root_cert"), "{e}");
    // A key where a certificate belongs.
    let e = build_error(Redis::builder(&url).tls_root_cert(server.server_key_pem()));
    assert!(e.contains("holds no certificate"), "{e}");
    // Certificates for a plain URL.
    let e = build_error(Redis::builder("redis://127.0.0.1:6399/0").tls_root_cert(ca.clone()));
    assert!(e.contains("not a TLS URL"), "{e}");

    let (cert, key) = server.client_pem();
    let e = build_error(
        Redis::builder(&url)
            .tls_root_cert(ca.clone())
            .tls_client_cert(cert.clone(), &b"garbage"[..]),
    );
    assert!(e.contains("no usable private key"), "{e}");
    let e = build_error(
        Redis::builder(&url)
            .tls_root_cert(ca.clone())
            .tls_client_cert(&b""[..], key.clone()),
    );
    assert!(e.contains("holds no certificate"), "{e}");
    let e = build_error(
        Redis::builder(&url)
            .tls_root_cert(ca.clone())
            .tls_client_cert(cert.clone(), server.server_key_pem()),
    );
    assert!(e.contains("tls_client_cert"), "{e}");

    // Mutual TLS: without a client certificate the server refuses; with one
    // the test CA signed, sync and async calls work.
    let anonymous = Redis::builder(&url)
        .tls_root_cert(ca.clone())
        .build()
        .unwrap();
    assert!(anonymous.get("k").is_err());
    let mtls = Redis::builder(&url)
        .tls_root_cert(ca)
        .tls_client_cert(cert, key)
        .build()
        .unwrap();
    mtls.set("k", b"v", MIN).unwrap();
    assert_eq!(mtls.get("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        current_thread().block_on(mtls.get_async("k")).unwrap(),
        Some(b"v".to_vec())
    );
}

#[test]
fn a_frozen_tls_server_costs_a_call_the_timeouts_not_a_hang() {
    let server = tls_server!();
    let fresh = trusted(&server);
    let pooled = trusted(&server);
    pooled.set("k", b"v", MIN).unwrap();
    server.freeze();
    for r in [&fresh, &pooled] {
        let start = Instant::now();
        assert!(r.get("k").is_err());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let start = Instant::now();
        assert!(current_thread().block_on(r.get_async("k")).is_err());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
}
