//! `Memory`'s bound holds for the whole process, whatever the number of
//! threads: the threads' front caches (which make a hit write no shared
//! memory) never keep more than a fixed share of the bound alive beyond it,
//! even for evicted entries and even when the threads that read them sit idle.
//!
//! The byte bound is checked on the process's resident memory (Linux
//! `/proc/self/status`), each case in a child process of its own so that no
//! other test's allocations count. The entry bound is checked exactly, by
//! counting live values.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cachefn::backends::{LocalValue, Memory};
use cachefn::{Cache, Error};
use cachefn_tests::{child_answer, run_child};

const MB: usize = 1 << 20;

/// The byte bound of every case.
const BUDGET: usize = 32 * MB;

/// What the process may grow by beyond the budget and the front caches'
/// documented share (an eighth of it): the allocator's own slack (free lists,
/// one heap arena per thread, page granularity), thread stacks, and the
/// values being cloned out at that moment.
const ALLOCATOR_ALLOWANCE: usize = 40 * MB;

/// The size of `blob`'s values in this process (set once by the child).
static VALUE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// A memoized function whose values are `VALUE_SIZE` bytes of text, distinct
/// per key.
#[cachefn::quickcache(cache = "memory_bound", timeout = 300)]
fn blob(thread: u32, k: u32) -> String {
    let c = char::from(b'a' + ((thread + k) % 26) as u8);
    std::iter::repeat_n(c, VALUE_SIZE.load(Ordering::Relaxed)).collect()
}

/// A memoized function whose values are `VALUE_SIZE` one-letter strings:
/// about 2 bytes each serialized, 56 in memory (a `String` and its heap
/// block).
#[cachefn::quickcache(cache = "memory_bound", timeout = 300)]
fn list(thread: u32, k: u32) -> Vec<String> {
    (0..VALUE_SIZE.load(Ordering::Relaxed) as u32)
        .map(|i| char::from(b'a' + ((thread + k + i) % 26) as u8).to_string())
        .collect()
}

/// This process's resident set size in bytes (`VmRSS`).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kb * 1024
}

/// The child's side: `MEMORY_BOUND_CHILD=threads,value_size`. Every thread
/// calls `blob` on keys of its own, each key three times in a row (a miss,
/// then two hits), until together they have produced six times the budget;
/// then, with every thread still alive but idle, the child prints how much
/// its resident memory grew. Without the variable (a normal test run) it
/// does nothing.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var("MEMORY_BOUND_CHILD") else {
        return;
    };
    let spec: Vec<usize> = spec.split(',').map(|n| n.parse().unwrap()).collect();
    let [threads, size, lists, budget] = spec[..] else {
        panic!("MEMORY_BOUND_CHILD=threads,value_size,lists,budget");
    };
    let lists = lists == 1;
    VALUE_SIZE.store(size, Ordering::Relaxed);
    cachefn::register(
        "memory_bound",
        Cache::builder()
            .local(Memory::with_max_bytes(budget as u64))
            .build(),
    );
    // Six times the budget in all; lists: as many as a budget weighed by
    // serialized size would hold, and then half as many again.
    let keys = if lists {
        (3 * budget / (2 * threads * size * 2)).max(2) as u32
    } else {
        (6 * budget / (threads * size)).max(2) as u32
    };
    let start = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    let release = Barrier::new(threads + 1);
    let growth = std::thread::scope(|s| {
        for t in 0..threads as u32 {
            let (start, done, release) = (&start, &done, &release);
            s.spawn(move || {
                start.wait();
                for k in 0..keys {
                    for _ in 0..3 {
                        if lists {
                            assert_eq!(list(t, k).len(), size);
                        } else {
                            assert_eq!(blob(t, k).len(), size);
                        }
                    }
                }
                done.wait();
                // Idle, but alive: whatever this thread's front cache holds
                // is still held while the parent measures.
                release.wait();
            });
        }
        start.wait();
        let before = rss();
        done.wait();
        let after = rss();
        release.wait();
        after.saturating_sub(before)
    });
    println!("CHILD {growth}");
}

/// Run one case in a child (`lists`: values are `list`'s, of `size`
/// strings) and check its growth against the bound.
fn check(threads: usize, size: usize) {
    check_case(threads, size, false, BUDGET);
}

fn check_case(threads: usize, size: usize, lists: bool, budget: usize) {
    if !cfg!(target_os = "linux") {
        println!("skipped: resident memory is read from /proc/self/status (Linux only)");
        return;
    }
    let spec = format!("{threads},{size},{},{budget}", u8::from(lists));
    // A fixed mmap threshold: glibc otherwise raises it after the first free
    // of a large block and then keeps freed 1 MB blocks in its per-thread
    // arenas (up to 60 MB more with 32 threads here): the allocator's
    // slack, not the cache's. Other allocators ignore the variable.
    let out = run_child(
        "child_process",
        &[
            ("MEMORY_BOUND_CHILD", &spec),
            ("MALLOC_MMAP_THRESHOLD_", "131072"),
        ],
    );
    let growth: usize = child_answer(&out)
        .parse()
        .unwrap_or_else(|_| panic!("the child printed no growth: {out}"));
    let bound = budget + budget / 8 + ALLOCATOR_ALLOWANCE;
    let what = if lists {
        format!("lists of {size} short strings")
    } else {
        format!("{} KB values", size / 1024)
    };
    println!(
        "{threads} threads, {what}: resident memory grew by {} MB (bound {} MB)",
        growth / MB,
        bound / MB
    );
    assert!(
        growth <= bound,
        "{threads} threads reading {what} through a {} MB Memory grew the process by {} MB \
         (more than the budget, an eighth of it for front caches, and {} MB for the allocator)",
        budget / MB,
        growth / MB,
        ALLOCATOR_ALLOWANCE / MB
    );
}

#[test]
fn byte_bound_holds_4_threads_32kb_values() {
    check(4, 32 * 1024);
}

#[test]
fn byte_bound_holds_32_threads_32kb_values() {
    check(32, 32 * 1024);
}

#[test]
fn byte_bound_holds_4_threads_1mb_values() {
    check(4, MB);
}

#[test]
fn byte_bound_holds_32_threads_1mb_values() {
    check(32, MB);
}

/// An entry's weight is what it occupies in memory, not its serialized
/// size: a list of 2,000 one-letter strings serializes to 4 KB but occupies
/// 112 KB, and a 4 MB tier weighed by serialized size held 100 MB of them.
#[test]
fn byte_bound_weighs_values_by_what_they_occupy() {
    check_case(4, 2_000, true, 4 * MB);
}

/// A value that counts how many of its kind are alive.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(live: &Arc<AtomicUsize>) -> Counted {
        live.fetch_add(1, Ordering::SeqCst);
        Counted(live.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LocalValue for Counted {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        Ok(Vec::new())
    }
    fn size_hint(&self) -> usize {
        0
    }
}

/// `with_capacity(n)`: at most `n` entries in the tier, and at most `n / 8`
/// more kept alive by front caches, with 32 threads that each read 4,000
/// keys of their own twice and then sit idle.
#[test]
fn entry_bound_holds_with_many_idle_threads() {
    const CAPACITY: usize = 1_000;
    const THREADS: usize = 32;
    let live = Arc::new(AtomicUsize::new(0));
    let memory = Memory::with_capacity(CAPACITY);
    let done = Barrier::new(THREADS + 1);
    let release = Barrier::new(THREADS + 1);
    let held = std::thread::scope(|s| {
        let mut threads = Vec::new();
        for t in 0..THREADS as u128 {
            let (memory, live, done, release) = (&memory, &live, &done, &release);
            threads.push(s.spawn(move || {
                for k in 0..4_000u128 {
                    let fp = (t << 96) | (k << 64) | (t << 32) | k;
                    memory.insert(fp, "k", Counted::new(live), Duration::ZERO);
                    for _ in 0..2 {
                        memory.read(fp, |_| ());
                    }
                }
                done.wait();
                release.wait();
            }));
        }
        done.wait();
        let held = live.load(Ordering::SeqCst);
        release.wait();
        // Joined one by one: that waits for each thread's exit, its
        // thread-local front cache dropped (a scope's end does not).
        for t in threads {
            t.join().expect("a reader thread");
        }
        held
    });
    let bound = CAPACITY + CAPACITY / 8 + 64;
    assert!(
        held <= bound,
        "{held} values alive for a tier of {CAPACITY} entries (bound {bound})"
    );
    drop(memory);
    assert_eq!(live.load(Ordering::SeqCst), 0, "every value released");
}
