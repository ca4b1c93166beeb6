//! "A warm hit allocates nothing besides the returned value" (README): the
//! allocations of warm hits of memoized functions, counted by a global
//! allocator on the calling thread only (the tests of this binary run on
//! threads of their own, at the same time).
//!
//! A hit of a function that returns a `Copy` value makes no allocation,
//! whatever its arguments (an integer, a `&str`, an owned `String` the
//! caller built beforehand), sync or `async`. A hit of a `String`-valued
//! function makes exactly one: the returned clone, of the value's length.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use cachefn::backends::Memory;
use cachefn::{quickcache, Cache};

/// The system allocator; while a thread counts, its allocations (and
/// reallocations) and their bytes are added up.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn note(bytes: usize) {
    // `try_with`: a thread being torn down may allocate after its locals
    // are gone. These locals are const-initialised without destructors, so
    // reading them allocates nothing.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        let _ = BYTES.try_with(|b| b.set(b.get() + bytes as u64));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc`\'s contract for this call,
        // which is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc`\'s contract for this call,
        // which is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller upholds `GlobalAlloc`\'s contract for this call,
        // which is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc`\'s contract for this call,
        // which is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes of this thread while `f` runs.
fn counted<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let (a0, b0) = (ALLOCS.with(Cell::get), BYTES.with(Cell::get));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, ALLOCS.with(Cell::get) - a0, BYTES.with(Cell::get) - b0)
}

const KEYS: u64 = 1_000;
const HITS: u64 = 10_000;

/// Register every test's cache, once: a local tier roomy enough that
/// every key of the test is kept, and held hot (its pin budget is an
/// eighth of it). All at once, before any test warms up: a registration
/// ends every thread's hot entries of every function (the cache behind a
/// name may have changed), which would make a test running meanwhile
/// allocate its tables again.
fn register_caches() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for name in [
            "alloc-u64",
            "alloc-str",
            "alloc-string-arg",
            "alloc-string-value",
            "alloc-async",
            "alloc-text-path",
            "alloc-long-args",
        ] {
            cachefn::register(
                name,
                Cache::builder()
                    .local(Memory::with_capacity(100_000))
                    .build(),
            );
        }
    });
}

/// Warm `call` up over every key (the miss; the hit that makes the entry
/// hot; the first reads on this thread allocate its tables once), then
/// count `HITS` warm hits.
fn warm_hits<R>(call: impl Fn(u64) -> R) -> (u64, u64) {
    for _ in 0..3 {
        for k in 0..KEYS {
            black_box(call(k));
        }
    }
    let ((), allocs, bytes) = counted(|| {
        for i in 0..HITS {
            black_box(call(black_box(i % KEYS)));
        }
    });
    (allocs, bytes)
}

#[quickcache(cache = "alloc-u64", timeout = 300)]
fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

#[test]
fn a_warm_hit_with_an_integer_argument_allocates_nothing() {
    register_caches();
    let (allocs, bytes) = warm_hits(square);
    assert_eq!(square::stats().local_hits, 2 * KEYS + HITS, "warm hits");
    assert_eq!(
        (allocs, bytes),
        (0, 0),
        "{HITS} warm hits of fn(u64) -> u64: allocations, bytes"
    );
}

#[quickcache(cache = "alloc-str", timeout = 300)]
fn name_len(name: &str) -> usize {
    name.len()
}

#[test]
fn a_warm_hit_with_a_str_argument_allocates_nothing() {
    register_caches();
    let names: Vec<String> = (0..KEYS).map(|k| format!("user-{k}")).collect();
    let (allocs, bytes) = warm_hits(|k| name_len(&names[k as usize]));
    assert_eq!(name_len::stats().local_hits, 2 * KEYS + HITS, "warm hits");
    assert_eq!(
        (allocs, bytes),
        (0, 0),
        "{HITS} warm hits of fn(&str) -> usize: allocations, bytes"
    );
}

/// A query of `len` bytes for key `k` (its number, then letters).
fn query(k: u64, len: usize) -> String {
    let mut q = format!("{k:04}");
    q.extend((0..len - 4).map(|i| char::from(b'a' + ((k as usize * 7 + i) % 26) as u8)));
    q
}

/// One function per argument length (and below, per composite), so that
/// each thread's hot entries of a function hold its 1,000 keys: a table
/// that churns through 3,000 keys would send some hits down the key text's
/// path, where a key text over 200 bytes is built on the heap.
macro_rules! lengths {
    ($($f:ident),*) => {$(
        #[quickcache(cache = "alloc-long-args", timeout = 300)]
        fn $f(q: &str) -> usize {
            q.len()
        }
    )*};
}
lengths!(query_len_16, query_len_64, query_len_200);

/// A composite argument: a page and a query.
#[derive(serde::Serialize)]
struct Search<'a> {
    page: u64,
    q: &'a str,
}

macro_rules! searches {
    ($($f:ident),*) => {$(
        #[quickcache(cache = "alloc-long-args", timeout = 300)]
        fn $f(s: &Search<'_>) -> usize {
            s.q.len() + s.page as usize
        }
    )*};
}
searches!(search_len_16, search_len_64, search_len_200);

/// Arguments of up to 200 bytes take the hot entries' path: no key text
/// is written (a key text over 200 bytes would be built on the heap and
/// end in a digest), and the whole argument is compared, from the copy the
/// hot entry keeps, without allocating.
#[test]
fn a_warm_hit_with_a_200_byte_argument_allocates_nothing() {
    register_caches();
    /// A length, its `&str` function and its stats, its composite one and its stats.
    type Row = (
        usize,
        fn(&str) -> usize,
        fn() -> cachefn::Stats,
        fn(&Search<'_>) -> usize,
        fn() -> cachefn::Stats,
    );
    let functions: [Row; 3] = [
        (
            16,
            query_len_16,
            query_len_16::stats,
            search_len_16,
            search_len_16::stats,
        ),
        (
            64,
            query_len_64,
            query_len_64::stats,
            search_len_64,
            search_len_64::stats,
        ),
        (
            200,
            query_len_200,
            query_len_200::stats,
            search_len_200,
            search_len_200::stats,
        ),
    ];
    for (len, query_len, query_stats, search_len, search_stats) in functions {
        let queries: Vec<String> = (0..KEYS).map(|k| query(k, len)).collect();
        let before = query_stats().local_hits;
        let (allocs, bytes) = warm_hits(|k| query_len(&queries[k as usize]));
        assert_eq!(query_stats().local_hits - before, 2 * KEYS + HITS);
        assert_eq!(
            (allocs, bytes),
            (0, 0),
            "{HITS} warm hits of fn(&str) -> usize, {len}-byte arguments: allocations, bytes"
        );
        let before = search_stats().local_hits;
        let (allocs, bytes) = warm_hits(|k| {
            search_len(&Search {
                page: k,
                q: &queries[k as usize],
            })
        });
        assert_eq!(search_stats().local_hits - before, 2 * KEYS + HITS);
        assert_eq!(
            (allocs, bytes),
            (0, 0),
            "{HITS} warm hits of fn(&Search) -> usize, {len}-byte queries: allocations, bytes"
        );
    }
}

#[quickcache(cache = "alloc-string-arg", timeout = 300)]
fn owned_len(name: String) -> usize {
    name.len()
}

#[test]
fn a_warm_hit_with_an_owned_string_argument_allocates_nothing() {
    register_caches();
    let name = |k: u64| format!("user-{k}");
    for _ in 0..3 {
        for k in 0..KEYS {
            black_box(owned_len(name(k)));
        }
    }
    // The caller's arguments are built before counting: what is counted
    // is the calls (which take the strings and free them).
    let mut names: Vec<String> = (0..HITS).map(|i| name(i % KEYS)).collect();
    let ((), allocs, bytes) = counted(|| {
        for n in names.drain(..) {
            black_box(owned_len(n));
        }
    });
    assert_eq!(owned_len::stats().local_hits, 2 * KEYS + HITS, "warm hits");
    assert_eq!(
        (allocs, bytes),
        (0, 0),
        "{HITS} warm hits of fn(String) -> usize: allocations, bytes"
    );
}

#[quickcache(cache = "alloc-string-value", timeout = 300)]
fn render(id: u64) -> String {
    format!("<p>{id}</p>")
}

#[test]
fn a_warm_hit_of_a_string_value_allocates_only_the_returned_clone() {
    register_caches();
    let (allocs, bytes) = warm_hits(render);
    assert_eq!(render::stats().local_hits, 2 * KEYS + HITS, "warm hits");
    let value_bytes: u64 = (0..HITS).map(|i| render(i % KEYS).len() as u64).sum();
    assert_eq!(
        (allocs, bytes),
        (HITS, value_bytes),
        "{HITS} warm hits of fn(u64) -> String: allocations, bytes (one clone of the value each)"
    );
}

#[quickcache(cache = "alloc-async", timeout = 300)]
async fn square_async(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// `f`'s output at its first poll (a hit, and this memory-only miss, are
/// ready at once): the future's own allocations, without an executor's.
fn first_poll<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a memory-only call was not ready at its first poll"),
    }
}

#[test]
fn a_warm_hit_of_an_async_fn_allocates_nothing() {
    register_caches();
    let (allocs, bytes) = warm_hits(|k| first_poll(square_async(k)));
    assert_eq!(
        square_async::stats().local_hits,
        2 * KEYS + HITS,
        "warm hits"
    );
    assert_eq!(
        (allocs, bytes),
        (0, 0),
        "{HITS} warm hits of async fn(u64) -> u64: allocations, bytes"
    );
}

/// With a freshness option a hit reads the entry's expiry, so it is served
/// by the key text's path (the key written on the stack, the local tier's
/// front cache) rather than the function's hot entries.
#[quickcache(cache = "alloc-text-path", timeout = 300, stale_while_revalidate = 60)]
fn square_fresh(x: u64) -> u64 {
    x.wrapping_mul(x)
}

#[test]
fn a_warm_hit_by_the_key_text_allocates_nothing() {
    register_caches();
    let (allocs, bytes) = warm_hits(square_fresh);
    assert_eq!(
        square_fresh::stats().local_hits,
        2 * KEYS + HITS,
        "warm hits"
    );
    assert_eq!(
        (allocs, bytes),
        (0, 0),
        "{HITS} warm hits of fn(u64) -> u64 with stale_while_revalidate: allocations, bytes"
    );
}
