//! `#[quickcache]` on `async fn` and the async twins of `Cache`, counted:
//! how many times did the body really run?

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachefn::{quickcache, Cache};
use cachefn_tests::{CountingBackend, Runs};
use serde::Serialize;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Serialize)]
struct User {
    id: u64,
    name: String,
}

static SIDEBAR: Runs = Runs::new();

#[quickcache(vary_on = "user.id", skip_arg = "force")]
async fn sidebar(user: &User, force: bool) -> String {
    SIDEBAR.hit();
    tokio::task::yield_now().await;
    let _ = force;
    format!("sidebar of {}", user.name)
}

#[test]
fn an_async_fn_runs_once_per_key_and_its_helpers_are_async() {
    runtime().block_on(async {
        let ann = User {
            id: 1,
            name: "ann".into(),
        };
        let bob = User {
            id: 2,
            name: "bob".into(),
        };
        assert_eq!(sidebar(&ann, false).await, "sidebar of ann");
        assert_eq!(sidebar(&ann, false).await, "sidebar of ann");
        assert_eq!(sidebar(&bob, false).await, "sidebar of bob");
        assert_eq!(SIDEBAR.get(), 2);

        // skip_arg refreshes.
        sidebar(&ann, true).await;
        assert_eq!(SIDEBAR.get(), 3);

        assert_eq!(
            sidebar::get_cached(&ann).await.as_deref(),
            Some("sidebar of ann")
        );
        sidebar::set_cached(&ann, "pinned".into()).await.unwrap();
        assert_eq!(sidebar(&ann, false).await, "pinned");
        sidebar::clear(&ann).await.unwrap();
        assert_eq!(sidebar::get_cached(&ann).await, None);
        assert_eq!(sidebar(&ann, false).await, "sidebar of ann");
        assert_eq!(SIDEBAR.get(), 4);
        sidebar::clear_all().await.unwrap();
        assert_eq!(sidebar::get_cached(&bob).await, None);
        assert!(sidebar::key(&bob).to_string().ends_with(":v1:2"));
    });
}

static FLAKY: Runs = Runs::new();

#[quickcache]
async fn flaky(id: u64) -> Result<u64, String> {
    FLAKY.hit();
    if FLAKY.get() == 1 {
        return Err("first call fails".into());
    }
    Ok(id * 10)
}

#[test]
fn only_ok_is_cached_and_early_returns_work() {
    runtime().block_on(async {
        assert!(flaky(4).await.is_err());
        assert_eq!(flaky(4).await, Ok(40));
        assert_eq!(flaky(4).await, Ok(40));
        assert_eq!(FLAKY.get(), 2);
    });
}

struct Repo {
    db: String,
    runs: Runs,
}

impl Repo {
    #[quickcache(vary_on = ["self.db", "id"])]
    async fn title(&self, id: u64) -> Option<String> {
        self.runs.hit();
        Some(format!("{}:{id}", self.db))
    }
}

#[test]
fn async_methods_and_their_helpers() {
    runtime().block_on(async {
        let repo = Repo {
            db: "main".into(),
            runs: Runs::new(),
        };
        assert_eq!(repo.title(1).await.as_deref(), Some("main:1"));
        assert_eq!(repo.title(1).await.as_deref(), Some("main:1"));
        assert_eq!(repo.runs.get(), 1);
        repo.title_clear(1).await.unwrap();
        assert_eq!(repo.title_get_cached(1).await, None);
        repo.title(1).await;
        assert_eq!(repo.runs.get(), 2);
        Repo::title_clear_all().await.unwrap();
        assert_eq!(repo.title_get_cached(1).await, None);
    });
}

// ----- single-flight --------------------------------------------------

static COLD: Runs = Runs::new();

#[quickcache(cache = "async-cold")]
async fn cold(id: u64) -> u64 {
    COLD.hit();
    tokio::time::sleep(Duration::from_millis(50)).await;
    id + 1
}

#[test]
fn a_thousand_tasks_on_one_cold_key_compute_once() {
    cachefn::register("async-cold", Cache::memory());
    runtime().block_on(async {
        let tasks: Vec<_> = (0..1_000).map(|_| tokio::spawn(cold(7))).collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 8);
        }
    });
    assert_eq!(COLD.get(), 1);
}

/// The first run of the body never finishes (it waits for a notification
/// that never comes); later runs return at once.
static STUCK: Runs = Runs::new();

#[quickcache(cache = "async-stuck")]
async fn stuck_once(id: u64) -> u64 {
    STUCK.hit();
    if STUCK.get() == 1 {
        std::future::pending::<()>().await;
    }
    id * 2
}

#[test]
fn a_cancelled_leader_hands_the_key_to_a_waiter() {
    cachefn::register("async-stuck", Cache::memory());
    runtime().block_on(async {
        let leader = tokio::spawn(stuck_once(5));
        // Let the leader take the key before the waiters come.
        while STUCK.get() == 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..50).map(|_| tokio::spawn(stuck_once(5))).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        for w in waiters {
            assert_eq!(w.await.unwrap(), 10);
        }
        assert_eq!(stuck_once(5).await, 10, "now cached");
    });
    assert_eq!(STUCK.get(), 2, "the cancelled run, then one waiter's");
}

static PANICKY: Runs = Runs::new();

#[quickcache(cache = "async-panicky")]
async fn panics_once(id: u64) -> u64 {
    PANICKY.hit();
    tokio::time::sleep(Duration::from_millis(30)).await;
    if PANICKY.get() == 1 {
        panic!("the first run panics");
    }
    id * 3
}

#[test]
fn a_panicking_leader_hands_the_key_to_a_waiter() {
    cachefn::register("async-panicky", Cache::memory());
    runtime().block_on(async {
        let leader = tokio::spawn(panics_once(2));
        while PANICKY.get() == 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..20).map(|_| tokio::spawn(panics_once(2))).collect();
        assert!(leader.await.unwrap_err().is_panic());
        for w in waiters {
            assert_eq!(w.await.unwrap(), 6);
        }
    });
    assert_eq!(PANICKY.get(), 2);
}

static TIMED: Runs = Runs::new();

#[quickcache(cache = "async-timed")]
async fn slow_first(id: u64) -> u64 {
    let run = {
        TIMED.hit();
        TIMED.get()
    };
    if run == 1 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    id
}

#[test]
fn a_leader_dropped_by_a_timeout_does_not_strand_the_key() {
    cachefn::register("async-timed", Cache::memory());
    runtime().block_on(async {
        let gave_up = tokio::time::timeout(Duration::from_millis(20), slow_first(9)).await;
        assert!(gave_up.is_err());
        assert_eq!(slow_first(9).await, 9);
        assert_eq!(slow_first(9).await, 9);
    });
    assert_eq!(TIMED.get(), 2);
}

// ----- the async low-level API -----------------------------------------

#[test]
fn async_twins_through_a_shared_tier() {
    let shared = CountingBackend::new();
    let cache = Cache::builder()
        .local(cachefn::backends::Memory::with_capacity(100))
        .shared(shared.clone())
        .build();
    let ttl = Duration::from_secs(60);
    runtime().block_on(async {
        cache.set_async("a", &1u32, ttl).await.unwrap();
        assert_eq!(cache.get_async::<u32>("a").await, Some(1));
        assert!(!cache.add_async("a", &2u32, ttl).await.unwrap());
        assert!(cache.add_async("b", &2u32, ttl).await.unwrap());
        assert!(cache.has_async("b").await);
        assert_eq!(cache.incr_async("n", 5).await.unwrap(), 5);
        assert_eq!(cache.decr_async("n", 2).await.unwrap(), 3);
        assert_eq!(cache.get_async::<i64>("n").await, Some(3));
        cache
            .set_many_async(&[("x", 10u32), ("y", 11u32)], ttl)
            .await
            .unwrap();
        let before = shared.gets();
        let other = Cache::builder().shared(shared.clone()).build();
        assert_eq!(
            other.get_many_async::<u32>(&["x", "nope", "y"]).await,
            vec![Some(10), None, Some(11)]
        );
        assert_eq!(
            shared.gets(),
            before + 3,
            "the default get_many loops over get"
        );
        cache.delete_many_async(&["x", "y"]).await.unwrap();
        assert_eq!(other.get_async::<u32>("x").await, None);
        assert!(cache.delete_async("a").await.unwrap());
        let runs = AtomicUsize::new(0);
        let v: String = cache
            .get_or_set_async("page", ttl, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                "page".to_string()
            })
            .await;
        assert_eq!(v, "page");
        let v: String = other
            .get_or_set_async("page", ttl, || async {
                unreachable!("stored by the first cache")
            })
            .await;
        assert_eq!(v, "page");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        cache.clear_async().await.unwrap();
        assert!(shared.keys().is_empty());
    });
}

#[test]
fn get_or_set_async_computes_once_under_many_tasks() {
    let cache = Cache::memory();
    let runs = Arc::new(AtomicUsize::new(0));
    runtime().block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_set_async("k", Duration::from_secs(60), || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            5u64
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 5);
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

static ORDER: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// A by-value argument with a `Drop` of its own.
#[derive(Serialize)]
struct Marker(u64);

impl Drop for Marker {
    fn drop(&mut self) {
        ORDER.lock().unwrap().push("argument dropped");
    }
}

#[quickcache(cache = "async-drop-order")]
async fn key_only(marker: Marker, n: u64) -> u64 {
    ORDER.lock().unwrap().push("body ran");
    n
}

/// An argument that only the key reads lives until the call ends, as in
/// any `async fn`: on a miss it is dropped after the body ran, not when
/// the wrapper has built the rest of the call.
#[test]
fn an_argument_only_the_key_reads_is_dropped_when_the_call_ends() {
    cachefn::register("async-drop-order", Cache::memory());
    assert_eq!(runtime().block_on(key_only(Marker(1), 7)), 7);
    assert_eq!(
        *ORDER.lock().unwrap(),
        ["body ran", "argument dropped"],
        "a miss"
    );
}
