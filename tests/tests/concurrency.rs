//! Single-flight, panics, recursion and re-entrance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use cachefn::quickcache;
use cachefn_tests::Runs;

#[test]
fn concurrent_callers_of_a_cold_key_compute_once() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn slow(x: u32) -> u32 {
        RUNS.hit();
        thread::sleep(Duration::from_millis(200));
        x * 2
    }
    let barrier = Barrier::new(16);
    thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                barrier.wait();
                assert_eq!(slow(21), 42);
            });
        }
    });
    assert_eq!(RUNS.get(), 1);
}

#[test]
fn a_panicking_leader_does_not_strand_its_waiters() {
    static RUNS: Runs = Runs::new();
    static PANIC_NEXT: AtomicBool = AtomicBool::new(true);
    #[quickcache]
    fn flaky(x: u32) -> u32 {
        RUNS.hit();
        thread::sleep(Duration::from_millis(150));
        if PANIC_NEXT.swap(false, Ordering::SeqCst) {
            panic!("first computation fails");
        }
        x + 1
    }
    let barrier = Barrier::new(8);
    let results: Vec<thread::Result<u32>> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    flaky(1)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let panics = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(panics, 1, "the panic reaches its own caller only");
    assert!(results.iter().flatten().all(|v| *v == 2));
    assert_eq!(
        RUNS.get(),
        2,
        "one waiter took over, the rest waited for it"
    );
}

#[test]
fn recursion_through_the_cache_works() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn fib(n: u64) -> u64 {
        RUNS.hit();
        if n < 2 {
            n
        } else {
            fib(n - 1) + fib(n - 2)
        }
    }
    assert_eq!(fib(90), 2_880_067_194_370_816_120);
    assert_eq!(RUNS.get(), 91, "each n computed once");
}

#[test]
fn a_call_that_reenters_its_own_key_does_not_deadlock() {
    static RUNS: Runs = Runs::new();
    #[quickcache(vary_on = "n")]
    fn reenter(n: u32, depth: u32) -> u32 {
        RUNS.hit();
        if depth < 3 {
            reenter(n, depth + 1) + 1
        } else {
            n
        }
    }
    assert_eq!(reenter(10, 0), 13);
    assert_eq!(reenter(10, 0), 13);
    assert_eq!(RUNS.get(), 4);
}

#[test]
fn errors_are_not_shared_and_waiters_then_run_side_by_side() {
    use std::sync::atomic::AtomicUsize;
    static RUNS: Runs = Runs::new();
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST_AT_ONCE: AtomicUsize = AtomicUsize::new(0);
    #[quickcache]
    fn failing(x: u32) -> Result<u32, String> {
        RUNS.hit();
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST_AT_ONCE.fetch_max(now, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(150));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        Err(format!("no {x}"))
    }
    let barrier = Barrier::new(4);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                barrier.wait();
                assert_eq!(failing(1), Err("no 1".to_string()));
            });
        }
    });
    assert_eq!(RUNS.get(), 4, "every caller gets its own error");
    assert!(
        MOST_AT_ONCE.load(Ordering::SeqCst) >= 2,
        "after the leader's error the waiters computed side by side, not one after another"
    );
}

#[test]
fn hits_from_many_threads_agree() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn square(x: u64) -> u64 {
        RUNS.hit();
        x * x
    }
    thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                for i in 0..2_000u64 {
                    let x = (i * 7 + t) % 500;
                    assert_eq!(square(x), x * x);
                }
            });
        }
    });
    assert_eq!(RUNS.get(), 500);
}

#[test]
fn calls_from_a_thread_local_destructor_work() {
    static DONE: AtomicBool = AtomicBool::new(false);
    #[quickcache]
    fn cube(x: u64) -> u64 {
        x * x * x
    }
    struct CallOnDrop;
    impl Drop for CallOnDrop {
        fn drop(&mut self) {
            // cachefn's own thread-locals are destroyed by now (registered later).
            assert_eq!(cube(3), 27);
            DONE.store(true, Ordering::SeqCst);
        }
    }
    thread_local! {
        static GUARD: CallOnDrop = const { CallOnDrop };
    }
    thread::spawn(|| {
        GUARD.with(|_| {});
        assert_eq!(cube(3), 27);
        assert_eq!(cube(3), 27);
    })
    .join()
    .unwrap();
    assert!(DONE.load(Ordering::SeqCst));
}
