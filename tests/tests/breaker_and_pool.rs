//! Against a real `redis-server`: the circuit breaker trips on outages
//! only (a server that refuses writes keeps serving reads), errors keep
//! their source, and the blocking connection pool stays within
//! `max_connections` and `max_idle`.

use std::error::Error as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cachefn::backends::{Backend, CircuitBreaker, Failure, Redis};
use cachefn::Cache;
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::started;

const MIN: Duration = Duration::from_secs(60);

fn config_set(raw: &mut redis::Connection, name: &str, value: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query::<()>(raw)
        .unwrap();
}

/// Reads of stored values keep working after many refused writes.
fn assert_reads_survive_refused_writes(url: &str, refusal: &str) {
    let tier = CircuitBreaker::new(Redis::open(url).unwrap());
    let big = vec![b'x'; 64 * 1024];
    for i in 0..20 {
        let e = tier.set(&format!("new:{i}"), &big, MIN).unwrap_err();
        assert!(e.to_string().contains(refusal), "{e}");
        assert_eq!(e.failure(), Some(Failure::Refused), "{e}");
    }
    assert!(!tier.is_open(), "a server that answers is alive");
    assert_eq!(tier.get("kept").unwrap(), Some(b"stored".to_vec()));

    // Through a cache: writes fail, reads of stored values keep working.
    let cache = Cache::builder()
        .shared(Redis::open(url).unwrap())
        .prefix("app")
        .build();
    for i in 0..10 {
        assert!(cache.set(format!("w{i}"), &big, MIN).is_err());
    }
    for _ in 0..5 {
        assert_eq!(
            cache.get::<u32>("stored"),
            Some(7),
            "read after refused writes"
        );
    }
}

#[test]
fn an_out_of_memory_server_keeps_serving_reads() {
    let server = started!(RedisServer::start());
    let mut raw = server.raw();
    let r = Redis::open(&server.url()).unwrap();
    r.set("kept", b"stored", MIN).unwrap();
    let cache = Cache::builder()
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("app")
        .build();
    cache.set("stored", &7u32, MIN).unwrap();
    config_set(&mut raw, "maxmemory-policy", "noeviction");
    config_set(&mut raw, "maxmemory", "1");
    assert_reads_survive_refused_writes(&server.url(), "OOM");
}

#[test]
fn a_read_only_replica_keeps_serving_reads() {
    let server = started!(RedisServer::start());
    let mut raw = server.raw();
    let r = Redis::open(&server.url()).unwrap();
    r.set("kept", b"stored", MIN).unwrap();
    let cache = Cache::builder()
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("app")
        .build();
    cache.set("stored", &7u32, MIN).unwrap();
    // A replica of a master that is not there: it keeps its data and refuses writes.
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(1)
        .query::<()>(&mut raw)
        .unwrap();
    assert_reads_survive_refused_writes(&server.url(), "READONLY");
}

#[test]
fn outages_still_open_the_circuit_and_errors_keep_their_source() {
    // Nothing listens on port 1.
    let tier = CircuitBreaker::new(Redis::open("redis://127.0.0.1:1/0").unwrap());
    let e = tier.get("k").unwrap_err();
    assert!(e.is_outage(), "{e}");
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("an io::Error source: {e:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(e.to_string().contains("cannot connect"), "{e}");
    for _ in 0..5 {
        let _ = tier.get("k");
    }
    assert!(tier.is_open());

    let mc = cachefn::backends::Memcached::open("memcache://127.0.0.1:1").unwrap();
    let e = mc.get("a:k").unwrap_err();
    assert!(
        e.source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some(),
        "{e:?}"
    );
}

#[test]
fn async_errors_are_classified_and_keep_their_source() {
    let server = started!(RedisServer::start());
    let r = Redis::open(&server.url()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        r.set_async("kept", b"stored", MIN).await.unwrap();
        let mut raw = server.raw();
        config_set(&mut raw, "maxmemory-policy", "noeviction");
        config_set(&mut raw, "maxmemory", "1");
        let tier = CircuitBreaker::new(r);
        for _ in 0..10 {
            let e = tier.set_async("new", &[b'x'; 4096], MIN).await.unwrap_err();
            assert_eq!(e.failure(), Some(Failure::Refused), "{e}");
            assert!(
                e.source()
                    .and_then(|s| s.downcast_ref::<redis::RedisError>())
                    .is_some(),
                "{e:?}"
            );
        }
        assert!(!tier.is_open());
        assert_eq!(
            tier.get_async("kept").await.unwrap(),
            Some(b"stored".to_vec())
        );
    });
}

fn connected_clients(raw: &mut redis::Connection) -> usize {
    let info: String = redis::cmd("INFO").arg("clients").query(raw).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients in INFO")
}

/// Run `threads` threads of `work` while a monitor samples
/// `connected_clients`; the most seen, less the monitor's own connection.
fn most_clients_during(server: &RedisServer, threads: usize, work: impl Fn(usize) + Sync) -> usize {
    let mut raw = server.raw();
    let done = AtomicBool::new(false);
    let most = AtomicUsize::new(0);
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                most.fetch_max(connected_clients(&mut raw), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (work, start) = (&work, &start);
                s.spawn(move || {
                    start.wait();
                    work(t);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    most.load(Ordering::SeqCst) - 1
}

#[test]
fn many_threads_stay_within_max_connections() {
    let server = started!(RedisServer::start());
    let r = Redis::builder(&server.url())
        .max_connections(8)
        .response_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let most = most_clients_during(&server, 200, |t| {
        for i in 0..20 {
            let key = format!("k:{t}:{i}");
            assert_eq!(r.get(&key).unwrap(), None);
            r.set(&key, b"v", MIN).unwrap();
        }
    });
    assert!(most <= 8, "{most} connections for max_connections(8)");
    assert!(most >= 1);
    drop(r); // and its idle connections

    // The default bound.
    let r = Redis::builder(&server.url())
        .response_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let most = most_clients_during(&server, 200, |t| {
        for i in 0..20 {
            r.get(&format!("k:{t}:{i}")).unwrap();
        }
    });
    assert!(most <= 32, "{most} connections by default");
}

#[test]
fn refused_commands_do_not_grow_the_idle_pool_past_max_idle() {
    let server = started!(RedisServer::start());
    let r = Arc::new(
        Redis::builder(&server.url())
            .max_idle(2)
            .response_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    r.set("text", b"not a number", MIN).unwrap();
    most_clients_during(&server, 32, |_| {
        for _ in 0..20 {
            assert!(r.incr("text", 1).is_err(), "the server refuses");
        }
    });
    // After the burst only the idle connections stay open.
    let mut raw = server.raw();
    let open = connected_clients(&mut raw) - 1;
    assert!(open <= 2, "{open} idle connections for max_idle(2)");
    assert_eq!(r.get("text").unwrap(), Some(b"not a number".to_vec()));
}
