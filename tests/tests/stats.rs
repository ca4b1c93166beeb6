//! Per-function statistics: `f::stats()` / `m_stats()` count what each
//! memoized function did in this process, apart from every other function.

use cachefn::{quickcache, Cache};
use cachefn_tests::{CountingBackend, Runs};

#[test]
fn each_function_counts_its_own_calls() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn double(n: u64) -> u64 {
        RUNS.hit();
        n * 2
    }
    #[quickcache]
    fn triple(n: u64) -> u64 {
        n * 3
    }

    for _ in 0..5 {
        assert_eq!(double(1), 2);
    }
    assert_eq!(double(2), 4);
    assert_eq!(triple(1), 3);

    let d = double::stats();
    assert_eq!((d.misses, d.local_hits), (2, 4), "{d:?}");
    assert_eq!(RUNS.get(), 2);
    let t = triple::stats();
    assert_eq!((t.misses, t.local_hits), (1, 0), "{t:?}");
    assert_eq!(
        (
            d.shared_hits,
            d.stale_hits,
            d.early_refreshes,
            d.shared_errors
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn methods_get_m_stats() {
    struct Repo;
    impl Repo {
        #[quickcache]
        fn name_of(&self, id: u64) -> String {
            format!("#{id}")
        }
    }
    let r = Repo;
    r.name_of(1);
    r.name_of(1);
    r.name_of(1);
    let s = Repo::name_of_stats();
    assert_eq!((s.misses, s.local_hits), (1, 2), "{s:?}");
}

#[tokio::test]
async fn async_functions_count_too() {
    #[quickcache]
    async fn fetch(n: u64) -> u64 {
        tokio::task::yield_now().await;
        n + 1
    }
    fetch(1).await;
    fetch(1).await;
    fetch(2).await;
    let s = fetch::stats();
    assert_eq!((s.misses, s.local_hits), (2, 1), "{s:?}");
}

#[test]
fn shared_hits_and_errors_are_counted_per_function() {
    let backend = CountingBackend::new();
    let cache = Cache::builder()
        .local(cachefn::backends::Memory::with_capacity(100))
        .shared(backend.clone())
        .prefix("stats-shared")
        .build();
    cachefn::register("stats-shared", cache.clone());

    #[quickcache(cache = "stats-shared", local_timeout = 0)]
    fn via_shared(n: u64) -> u64 {
        n * 10
    }
    #[quickcache(cache = "stats-shared", local_timeout = 0)]
    fn bystander(n: u64) -> u64 {
        n
    }

    assert_eq!(via_shared(1), 10); // miss, stored in the shared tier
    assert_eq!(via_shared(1), 10); // shared hit (nothing kept locally)
    backend.set_down(true);
    assert_eq!(via_shared(2), 20); // get and set fail: two shared errors
    backend.set_down(false);
    bystander(1);

    let s = via_shared::stats();
    assert_eq!((s.misses, s.shared_hits, s.local_hits), (2, 1, 0), "{s:?}");
    assert_eq!(s.shared_errors, 2, "{s:?}");
    let b = bystander::stats();
    assert_eq!(
        (b.misses, b.shared_hits, b.shared_errors),
        (1, 0, 0),
        "{b:?}"
    );
    // The cache's own counters still see everything.
    let c = cache.stats();
    assert_eq!((c.misses, c.shared_hits), (3, 1), "{c:?}");
}

#[test]
fn undecodable_values_are_counted_per_function() {
    let backend = CountingBackend::new();
    let cache = Cache::builder()
        .shared(backend.clone())
        .prefix("stats-undecodable")
        .build();
    cachefn::register("stats-undecodable", cache.clone());

    #[quickcache(cache = "stats-undecodable", name = "undecodable_fn")]
    fn text(n: u64) -> String {
        n.to_string()
    }
    let key = text::key(7);
    backend.put_raw(&cache.storage_key(key.as_str()), b"not a cachefn value");
    assert_eq!(text(7), "7");
    let s = text::stats();
    assert_eq!((s.undecodable, s.misses), (1, 1), "{s:?}");
}
