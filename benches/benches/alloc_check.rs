//! Allocations done by a warm cachefn hit, counted by a global allocator.
//!
//! A memoized `fn(u64) -> u64` returns a `Copy` value, so a hit that builds
//! its key without a `String` (on the stack) and clones nothing allocates
//! nothing: the expected count is 0 per hit. The `String`-returning
//! `render` is shown too, where the one allocation is the returned clone.
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench alloc_check
//! ```
//!
//! Exits with an error if a `u64` hit allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[cachefn::quickcache(timeout = 300)]
fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

#[cachefn::quickcache(timeout = 300)]
fn render(id: u64) -> String {
    format!("<p>{id}</p>")
}

const KEYS: u64 = 1_000;
const HITS: u64 = 10_000;

/// Allocations and bytes during `HITS` warm hits of `f` over `KEYS` keys.
fn count<R>(f: impl Fn(u64) -> R) -> (u64, u64) {
    // Warm up: fill the cache, then hit every key once (the first read on a
    // thread allocates that thread's front-cache table, once).
    for _ in 0..2 {
        for k in 0..KEYS {
            black_box(f(k));
        }
    }
    let (a0, b0) = (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    for i in 0..HITS {
        black_box(f(black_box(i % KEYS)));
    }
    (
        ALLOCS.load(Ordering::SeqCst) - a0,
        BYTES.load(Ordering::SeqCst) - b0,
    )
}

fn main() {
    let (allocs, bytes) = count(square);
    assert_eq!(square::get_cached(7), Some(49), "square is not cached");
    println!(
        "cachefn fn(u64) -> u64:    {allocs} allocations, {bytes} bytes in {HITS} warm hits = {:.3} allocations/hit",
        allocs as f64 / HITS as f64
    );
    let (s_allocs, s_bytes) = count(render);
    println!(
        "cachefn fn(u64) -> String: {s_allocs} allocations, {s_bytes} bytes in {HITS} warm hits = {:.3} allocations/hit (1 expected: the returned clone)",
        s_allocs as f64 / HITS as f64
    );
    if allocs != 0 {
        eprintln!("FAIL: a warm cachefn hit allocates");
        std::process::exit(1);
    }
    println!("OK: a warm cachefn hit allocates nothing (no key string)");
}
