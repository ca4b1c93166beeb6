//! Fresh values without waiting: `stale_while_revalidate`, `stale_if_error`
//! and `early_refresh`, against counting bodies. Time bounds are generous
//! ("did not wait for a body that takes seconds"), never speed assertions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cachefn::quickcache;
use cachefn_tests::Runs;

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn inside_the_stale_window_callers_get_the_old_value_at_once_while_one_recomputes() {
    static RUNS: Runs = Runs::new();
    static SLOW: AtomicBool = AtomicBool::new(false);
    #[quickcache(timeout = 1, stale_while_revalidate = 30)]
    fn report(id: u64) -> String {
        RUNS.hit();
        if SLOW.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2_000));
        }
        format!("report {id} #{}", RUNS.get())
    }

    assert_eq!(report(1), "report 1 #1");
    std::thread::sleep(Duration::from_millis(1_200)); // expired, inside the window
    SLOW.store(true, Ordering::SeqCst);

    // The first caller leads the refresh, in its own call.
    let leader = std::thread::spawn(|| report(1));
    while RUNS.get() < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let barrier = Arc::new(Barrier::new(20));
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let t = Instant::now();
                (report(1), t.elapsed())
            })
        })
        .collect();
    for c in callers {
        let (value, took) = c.join().unwrap();
        assert_eq!(value, "report 1 #1", "served the stale value");
        assert!(ms(took) < 1_000, "a caller waited {took:?} for a 2 s body");
    }
    assert_eq!(leader.join().unwrap(), "report 1 #2");
    assert_eq!(RUNS.get(), 2, "the body ran once more, not once per caller");
    SLOW.store(false, Ordering::SeqCst);
    assert_eq!(report(1), "report 1 #2", "the refreshed value is fresh");
    let s = report::stats();
    assert_eq!(s.stale_hits, 20, "{s:?}");
    assert_eq!(s.misses, 2, "{s:?}");
}

#[test]
fn past_the_stale_window_callers_wait_for_one_body() {
    static RUNS: Runs = Runs::new();
    /// Callers that have called `total` (the body lasts until all five have).
    static CALLED: Runs = Runs::new();
    #[quickcache(timeout = 1, stale_while_revalidate = 1)]
    fn total(id: u64) -> u64 {
        RUNS.hit();
        if RUNS.get() > 1 {
            let start = Instant::now();
            while CALLED.get() < 5 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_millis(400));
        id + RUNS.get() as u64 * 100
    }
    assert_eq!(total(1), 101);
    std::thread::sleep(Duration::from_millis(2_300)); // past timeout + window
    let barrier = Arc::new(Barrier::new(5));
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                CALLED.hit();
                total(1)
            })
        })
        .collect();
    for c in callers {
        // 201 exists only once the second body has returned: a caller
        // that got it waited for that body.
        assert_eq!(c.join().unwrap(), 201, "nobody is served the expired value");
    }
    assert_eq!(RUNS.get(), 2, "one body for the five waiting callers");
    let s = total::stats();
    assert_eq!(s.stale_hits, 0, "{s:?}");
    assert_eq!(s.misses, 2, "{s:?}");
}

#[test]
fn stale_if_error_serves_the_old_ok_while_the_body_fails_and_err_after_clear() {
    static RUNS: Runs = Runs::new();
    static FAIL: AtomicBool = AtomicBool::new(false);
    #[quickcache(timeout = 1, stale_if_error = 30)]
    fn price(item: u64) -> Result<u64, String> {
        RUNS.hit();
        if FAIL.load(Ordering::SeqCst) {
            return Err("database down".into());
        }
        Ok(item * 10 + RUNS.get() as u64)
    }
    assert_eq!(price(1), Ok(11));
    std::thread::sleep(Duration::from_millis(1_200));
    FAIL.store(true, Ordering::SeqCst);
    assert_eq!(price(1), Ok(11), "the stale Ok stands in for the Err");
    assert_eq!(RUNS.get(), 2, "the body was tried");
    assert_eq!(
        price(1),
        Ok(11),
        "the Err was not cached: tried again, stale again"
    );
    assert_eq!(RUNS.get(), 3);
    assert_eq!(price::stats().stale_hits, 2);

    price::clear(1).unwrap();
    assert_eq!(
        price(1),
        Err("database down".into()),
        "nothing to fall back on"
    );
    FAIL.store(false, Ordering::SeqCst);
    assert_eq!(price(1), Ok(15), "recovered: recomputed and cached");
    assert_eq!(price(1), Ok(15));
}

#[test]
fn without_stale_if_error_an_expired_entry_gives_the_err() {
    static FAIL: AtomicBool = AtomicBool::new(false);
    #[quickcache(timeout = 1)]
    fn plain_price(item: u64) -> Result<u64, String> {
        if FAIL.load(Ordering::SeqCst) {
            return Err("down".into());
        }
        Ok(item)
    }
    assert_eq!(plain_price(3), Ok(3));
    std::thread::sleep(Duration::from_millis(1_200));
    FAIL.store(true, Ordering::SeqCst);
    assert_eq!(plain_price(3), Err("down".into()));
}

#[test]
fn a_hot_key_with_early_refresh_never_waits_on_expiry() {
    static RUNS: Runs = Runs::new();
    #[quickcache(timeout = 1, early_refresh = 0.5)]
    fn hot(id: u64) -> u64 {
        RUNS.hit();
        std::thread::sleep(Duration::from_millis(300));
        id
    }
    hot(7); // warm-up: the one miss
    let slow = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_millis(3_500);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (slow, calls) = (slow.clone(), calls.clone());
            std::thread::spawn(move || {
                while Instant::now() < end {
                    let t = Instant::now();
                    assert_eq!(hot(7), 7);
                    if t.elapsed() >= Duration::from_millis(250) {
                        slow.fetch_add(1, Ordering::SeqCst);
                    }
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = hot::stats();
    let refreshes = s.early_refreshes;
    assert!(
        (2..=14).contains(&refreshes),
        "{refreshes} early refreshes in 3.5 s of a 1 s timeout: {s:?}"
    );
    assert_eq!(s.misses, 1 + refreshes, "no miss but the warm-up: {s:?}");
    assert_eq!(RUNS.get() as u64, 1 + refreshes);
    // Only the callers that refreshed ran the body; nobody waited for it.
    assert!(
        slow.load(Ordering::SeqCst) <= refreshes,
        "{} slow calls of {}, {refreshes} refreshes",
        slow.load(Ordering::SeqCst),
        calls.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_functions_serve_stale_too() {
    static RUNS: Runs = Runs::new();
    static SLOW: AtomicBool = AtomicBool::new(false);
    #[quickcache(timeout = 1, stale_while_revalidate = 30)]
    async fn feed(id: u64) -> String {
        RUNS.hit();
        if SLOW.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2_000)).await;
        }
        format!("feed {id} #{}", RUNS.get())
    }
    assert_eq!(feed(1).await, "feed 1 #1");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    SLOW.store(true, Ordering::SeqCst);
    let leader = tokio::spawn(feed(1));
    while RUNS.get() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let callers: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async {
                let t = Instant::now();
                (feed(1).await, t.elapsed())
            })
        })
        .collect();
    for c in callers {
        let (value, took) = c.await.unwrap();
        assert_eq!(value, "feed 1 #1");
        assert!(ms(took) < 1_000, "an async caller waited {took:?}");
    }
    assert_eq!(leader.await.unwrap(), "feed 1 #2");
    assert_eq!(RUNS.get(), 2);
    assert_eq!(feed::stats().stale_hits, 20);
}

#[test]
fn the_shared_tier_keeps_entries_for_the_window_and_serves_them_stale() {
    use cachefn::{backends::Memory, codec, Cache};
    use cachefn_tests::CountingBackend;
    static RUNS: Runs = Runs::new();
    static SLOW: AtomicBool = AtomicBool::new(false);
    let backend = CountingBackend::new();
    let cache = Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(backend.clone())
        .prefix("fresh-shared")
        .build();
    cachefn::register("fresh-shared", cache.clone());
    #[quickcache(
        cache = "fresh-shared",
        timeout = 1,
        local_timeout = 0,
        stale_while_revalidate = 30
    )]
    fn page(id: u64) -> String {
        RUNS.hit();
        if SLOW.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2_000));
        }
        format!("page {id} #{}", RUNS.get())
    }
    let before = cachefn::backends::clock::unix_ms();
    assert_eq!(page(1), "page 1 #1");
    let stored = backend
        .raw(&cache.storage_key(page::key(1).as_str()))
        .expect("stored in the shared tier");
    let expiry = codec::expiry(&stored).unwrap();
    assert!(
        expiry >= before + 900 && expiry <= before + 5_000,
        "the header carries the logical expiry (timeout), not the kept lifetime: {expiry} vs {before}"
    );
    std::thread::sleep(Duration::from_millis(1_200));
    SLOW.store(true, Ordering::SeqCst);
    let leader = std::thread::spawn(|| page(1));
    while RUNS.get() < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(page(1), "page 1 #1", "the shared tier still had it");
        assert!(ms(t.elapsed()) < 1_000);
    }
    assert_eq!(leader.join().unwrap(), "page 1 #2");
    assert_eq!(RUNS.get(), 2);
    assert!(page::stats().stale_hits >= 5);
}
