//! The async path to a real `redis-server` (started by the tests on free
//! loopback ports): non-blocking calls on one multiplexed connection, and a
//! frozen or killed server that never stalls the executor.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachefn::backends::{Backend, Memory, Redis};
use cachefn::{quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::started;
use cachefn_tests::Runs;

const MIN: Duration = Duration::from_secs(60);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn async_backend_operations_against_a_real_server() {
    let server = started!(RedisServer::start());
    let r = Redis::open(&server.url()).unwrap();
    current_thread().block_on(async {
        assert_eq!(r.get_async("a").await.unwrap(), None);
        r.set_async("a", b"1", MIN).await.unwrap();
        assert_eq!(r.get_async("a").await.unwrap(), Some(b"1".to_vec()));
        assert!(!r.add_async("a", b"2", MIN).await.unwrap());
        assert!(r.add_async("b", b"2", MIN).await.unwrap());
        assert!(r.has_async("b").await.unwrap());
        assert_eq!(r.incr_async("n", 5).await.unwrap(), 5);
        r.set_async("text", b"x", MIN).await.unwrap();
        assert!(matches!(
            r.incr_async("text", 1).await,
            Err(cachefn::Error::NotACounter(_))
        ));
        r.set_many_async(&[("m1", b"x".as_slice()), ("m2", b"y".as_slice())], MIN)
            .await
            .unwrap();
        assert_eq!(
            r.get_many_async(&["m1", "zz", "m2"]).await.unwrap(),
            vec![Some(b"x".to_vec()), None, Some(b"y".to_vec())]
        );
        r.delete_many_async(&["m1", "m2"]).await.unwrap();
        assert!(r.delete_async("a").await.unwrap());
        assert!(!r.delete_async("a").await.unwrap());
        for i in 0..700 {
            r.set_async(&format!("p:{i}"), b"v", MIN).await.unwrap();
        }
        r.set_async("q:1", b"v", MIN).await.unwrap();
        r.clear_prefix_async("p:").await.unwrap();
        assert_eq!(r.get_async("p:3").await.unwrap(), None);
        assert!(r.has_async("q:1").await.unwrap());
    });
}

#[test]
fn the_async_tier_outside_a_runtime_is_an_error_not_a_panic() {
    let r = Redis::open("redis://127.0.0.1:1/0").unwrap();
    let got = futures_lite_block_on(r.get_async("k"));
    let e = got.unwrap_err().to_string();
    assert!(e.contains("tokio runtime"), "{e}");
}

/// Poll a future on this thread without any runtime.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

static SHARED: Runs = Runs::new();

#[quickcache(cache = "async-redis-shared", timeout = 60)]
async fn rendered(id: u32) -> String {
    SHARED.hit();
    format!("fragment {id}")
}

#[test]
fn an_async_value_is_served_to_another_cache_from_redis() {
    let server = started!(RedisServer::start());
    let tiered = |url: &str| {
        Cache::builder()
            .local(Memory::with_capacity(100))
            .shared(Redis::open(url).unwrap())
            .prefix("async")
            .build()
    };
    let first = tiered(&server.url());
    cachefn::register("async-redis-shared", first.clone());
    current_thread().block_on(async {
        assert_eq!(rendered(1).await, "fragment 1");
        // A second cache with an empty local tier, as another process has.
        let second = tiered(&server.url());
        cachefn::register("async-redis-shared", second.clone());
        assert_eq!(rendered(1).await, "fragment 1");
        assert_eq!(SHARED.get(), 1, "served by Redis");
        assert_eq!(second.stats().shared_hits, 1);
        rendered::clear(1).await.unwrap();
        assert_eq!(rendered::get_cached(1).await, None);
    });
    let mut raw = server.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("async:*").query(&mut raw).unwrap();
    assert!(keys.is_empty(), "cleared in Redis: {keys:?}");
}

static FROZEN: Runs = Runs::new();

#[quickcache(cache = "async-redis-frozen", timeout = 60, local_timeout = 0)]
async fn through_frozen(id: u32) -> u32 {
    FROZEN.hit();
    id + 100
}

#[test]
fn a_frozen_server_does_not_stop_other_tasks_on_a_current_thread_runtime() {
    let server = started!(RedisServer::start());
    cachefn::register(
        "async-redis-frozen",
        Cache::builder()
            .shared(Redis::open(&server.url()).unwrap())
            .prefix("frozen")
            .build(),
    );
    let rt = current_thread();
    rt.block_on(async {
        assert_eq!(through_frozen(1).await, 101);
        assert_eq!(through_frozen(1).await, 101);
        assert_eq!(FROZEN.get(), 1, "connected and served");
    });
    server.freeze();
    let ticks = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (value, ticks_during_call) = rt.block_on(async {
        let ticker = {
            let (ticks, done) = (ticks.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::SeqCst);
        // The response timeout (250 ms) ends the read; the body's value is returned.
        let value = through_frozen(1).await;
        let during = ticks.load(Ordering::SeqCst) - before;
        done.store(true, Ordering::SeqCst);
        ticker.await.unwrap();
        (value, during)
    });
    server.thaw();
    assert_eq!(value, 101);
    assert_eq!(FROZEN.get(), 2, "the body ran when Redis could not answer");
    // A blocking call would have kept the only executor thread: the ticker
    // could not have run at all while it waited.
    assert!(
        ticks_during_call >= 3,
        "the ticker ran {ticks_during_call} times during the call"
    );
}

static KILLED: Runs = Runs::new();

#[quickcache(cache = "async-redis-killed", timeout = 60, local_timeout = 0)]
async fn through_killed(id: u32) -> u32 {
    KILLED.hit();
    id * 7
}

#[test]
fn a_killed_then_restarted_server_never_fails_an_async_call() {
    let mut server = started!(RedisServer::start());
    let cache = Cache::builder()
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("killed")
        .build();
    cachefn::register("async-redis-killed", cache.clone());
    let rt = current_thread();
    rt.block_on(async {
        assert_eq!(through_killed(1).await, 7);
        assert_eq!(through_killed(1).await, 7);
        assert_eq!(KILLED.get(), 1);
    });
    server.stop();
    rt.block_on(async {
        for _ in 0..40 {
            assert_eq!(through_killed(1).await, 7);
        }
        assert!(
            through_killed::set_cached(1, 0).await.is_err(),
            "writes report it"
        );
    });
    assert!(cache.stats().shared_errors >= 40);
    server.restart();
    std::thread::sleep(cachefn::backends::COOL_DOWN + Duration::from_millis(100));
    rt.block_on(async {
        let runs = KILLED.get();
        assert_eq!(through_killed(1).await, 7);
        assert_eq!(through_killed(1).await, 7);
        assert_eq!(KILLED.get(), runs + 1, "stored again, then served by Redis");
    });
}

#[test]
fn many_tasks_share_one_connection() {
    let server = started!(RedisServer::start());
    let cache = Cache::builder()
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("many")
        .build();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        cache.set_async("k", &42u32, MIN).await.unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get_async::<u32>("k").await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(42));
        }
    });
    let mut raw = server.raw();
    let info: String = redis::cmd("INFO").arg("clients").query(&mut raw).unwrap();
    let clients: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert_eq!(clients, 2, "one multiplexed connection, plus this raw one");
}
