//! The local hit path: each thread keeps a memoized function's hot entries,
//! looked up by a hash of the arguments' raw serde stream. Whatever ends a
//! local entry (a write, `clear`, `clear_all`, the cache's `clear`, eviction,
//! another registered cache) ends its hot entries in every thread, and
//! arguments that write different keys never share one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use cachefn::backends::Memory;
use cachefn::{quickcache, Cache};
use cachefn_tests::{wait_until, Barrier, Runs};
use serde::Serialize;

static PAGE_RUNS: Runs = Runs::new();

#[quickcache(cache = "local-hit-page")]
fn page(id: u64) -> String {
    PAGE_RUNS.hit();
    format!("<p>{id}</p>#{}", PAGE_RUNS.get())
}

#[test]
fn writes_clears_and_registrations_end_hot_entries() {
    cachefn::register("local-hit-page", Cache::memory());
    let first = page(1);
    for _ in 0..300 {
        assert_eq!(page(1), first);
    }
    assert_eq!(PAGE_RUNS.get(), 1);
    assert_eq!(page::stats().local_hits, 300);

    page::set_cached(1, "preset".into()).unwrap();
    assert_eq!(page(1), "preset");
    assert_eq!(page(1), "preset");

    page::clear(1).unwrap();
    assert_eq!(page(1), "<p>1</p>#2");
    assert_eq!(page(1), "<p>1</p>#2");

    page::clear_all().unwrap();
    assert_eq!(page(1), "<p>1</p>#3");
    assert_eq!(page(1), "<p>1</p>#3");

    cachefn::cache("local-hit-page").unwrap().clear().unwrap();
    assert_eq!(page(1), "<p>1</p>#4");
    assert_eq!(page(1), "<p>1</p>#4");

    // Another cache under the name: its own entries, not the old hot ones.
    cachefn::register("local-hit-page", Cache::memory());
    assert_eq!(page(1), "<p>1</p>#5");
    assert_eq!(page(1), "<p>1</p>#5");
    assert_eq!(PAGE_RUNS.get(), 5);
}

static SMALL_RUNS: Runs = Runs::new();
/// The version of the data behind `small`: a value computed after it moves
/// on differs from one computed before.
static SMALL_VERSION: AtomicU64 = AtomicU64::new(0);

#[quickcache(cache = "local-hit-small")]
fn small(id: u64) -> String {
    SMALL_RUNS.hit();
    format!("small {id} v{}", SMALL_VERSION.load(Ordering::SeqCst))
}

#[test]
fn evicted_entries_are_not_served() {
    let cache = Cache::builder().local(Memory::with_capacity(16)).build();
    cachefn::register("local-hit-small", cache.clone());
    let tier = cache.local_store().expect("a local tier");
    // Many more keys than the tier holds, read over and over: every
    // answer is the key's own value, whatever was evicted meanwhile. On a
    // thread of its own, whose exit lets go of what it held.
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..5 {
                for id in 0..200 {
                    assert_eq!(small(id), format!("small {id} v0"), "round {round}");
                }
            }
            for _ in 0..3 {
                for id in 0..8 {
                    assert_eq!(small(id), format!("small {id} v0"));
                }
            }
        });
    });
    assert!(SMALL_RUNS.get() >= 200);
    wait_until(Duration::from_secs(10), "the reader's exit", || {
        tier.front_held().0 == 0
    });

    // A thread holds one key hot (a miss, a hit that makes it hot, a hot
    // hit); this thread reads other keys until the tier evicts it; the
    // data behind it changes. The holder's next call must see the change:
    // the evicted slot it still holds is dead.
    let (to_holder, holder_rx) = mpsc::channel::<()>();
    let (to_main, main_rx) = mpsc::channel::<String>();
    let hot_key = 1_000;
    std::thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..3 {
                assert_eq!(small(hot_key), format!("small {hot_key} v0"));
            }
            to_main.send(String::new()).unwrap();
            // The test ends this thread (its sender gone) if it fails meanwhile.
            if holder_rx.recv().is_ok() {
                to_main.send(small(hot_key)).unwrap();
            }
        });
        // Dropped first if this thread fails: the holder then ends too.
        let to_holder = to_holder;
        let patience = Duration::from_secs(60);
        main_rx.recv_timeout(patience).expect("the holder is ready");
        assert_eq!(tier.front_held(), (1, 2), "the holder holds its key's slot");
        let key = small::key(hot_key);
        let mut id = 2_000;
        while cache.has(&key) {
            assert!(id < 1_000_000, "the tier never evicted {key:?}");
            for _ in 0..50 {
                // Read twice, so that the policy keeps these rather than it.
                small(id);
                small(id);
                id += 1;
            }
        }
        SMALL_VERSION.store(1, Ordering::SeqCst);
        to_holder.send(()).unwrap();
        assert_eq!(
            main_rx.recv_timeout(patience).expect("the holder's answer"),
            format!("small {hot_key} v1"),
            "the thread that held the evicted entry hot was served it"
        );
    });
}

static SHAPE_RUNS: Runs = Runs::new();

#[derive(Serialize)]
enum Kind {
    A(u32),
    B { x: u32 },
}

#[quickcache(cache = "local-hit-shapes")]
fn shapes(a: &str, b: &str, o: Option<Option<u8>>, kind: Kind, m: BTreeMap<u8, u8>) -> String {
    SHAPE_RUNS.hit();
    let kind = match kind {
        Kind::A(v) => format!("A{v}"),
        Kind::B { x } => format!("B{x}"),
    };
    format!("{a}|{b}|{o:?}|{kind}|{m:?}")
}

#[test]
fn arguments_with_different_keys_never_share_a_hot_entry() {
    cachefn::register("local-hit-shapes", Cache::memory());
    let map = |pairs: &[(u8, u8)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
    type Call = (
        &'static str,
        &'static str,
        Option<Option<u8>>,
        fn() -> Kind,
        Vec<(u8, u8)>,
    );
    let calls: Vec<Call> = vec![
        ("a", "bc", None, || Kind::A(1), vec![]),
        ("ab", "c", None, || Kind::A(1), vec![]),
        ("a", "bc", Some(None), || Kind::A(1), vec![]),
        ("a", "bc", Some(Some(0)), || Kind::A(1), vec![]),
        ("a", "bc", None, || Kind::B { x: 1 }, vec![]),
        ("a", "bc", None, || Kind::A(2), vec![]),
        ("a", "bc", None, || Kind::A(1), vec![(1, 2)]),
        ("a", "bc", None, || Kind::A(1), vec![(2, 1)]),
    ];
    for _ in 0..3 {
        for (a, b, o, kind, m) in &calls {
            let want = {
                let k = match kind() {
                    Kind::A(v) => format!("A{v}"),
                    Kind::B { x } => format!("B{x}"),
                };
                format!("{a}|{b}|{o:?}|{k}|{:?}", map(m))
            };
            assert_eq!(shapes(a, b, *o, kind(), map(m)), want);
        }
    }
    assert_eq!(SHAPE_RUNS.get(), calls.len());
}

static WIDE_RUNS: Runs = Runs::new();

/// A number that serializes as a `u8` or as a `u64`: two raw streams, one
/// key text (integers of any width write the same key).
enum Width {
    Narrow(u8),
    Wide(u64),
}

impl Serialize for Width {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Width::Narrow(v) => s.serialize_u8(*v),
            Width::Wide(v) => s.serialize_u64(*v),
        }
    }
}

#[quickcache(cache = "local-hit-wide")]
fn wide(n: Width) -> String {
    WIDE_RUNS.hit();
    match n {
        Width::Narrow(v) => format!("n={v}"),
        Width::Wide(v) => format!("n={v}"),
    }
}

#[test]
fn integer_widths_share_the_key_text_entry() {
    cachefn::register("local-hit-wide", Cache::memory());
    for _ in 0..3 {
        assert_eq!(wide(Width::Narrow(5)), "n=5");
        assert_eq!(wide(Width::Wide(5)), "n=5");
    }
    assert_eq!(WIDE_RUNS.get(), 1);
    wide::set_cached(Width::Wide(5), "six".into()).unwrap();
    assert_eq!(wide(Width::Narrow(5)), "six");
    assert_eq!(wide(Width::Wide(5)), "six");
}

static SHARED_RUNS: Runs = Runs::new();

/// Each computed value is the body's run number: a value computed again
/// differs from the one before.
#[quickcache(cache = "local-hit-threads")]
fn shared(id: u64) -> String {
    SHARED_RUNS.hit();
    format!("v{}:{id}", SHARED_RUNS.get())
}

/// Readers on four threads hold every key hot; this thread (which never
/// reads) ends the entries: by a write, `clear` of each key, `clear_all`,
/// the cache's `clear`. Every reader must see new values at once.
#[test]
fn every_thread_sees_a_clear() {
    const KEYS: u64 = 20;
    const READERS: usize = 4;
    let cache = Cache::memory();
    cachefn::register("local-hit-threads", cache.clone());
    type End<'a> = (&'static str, Box<dyn Fn() + Sync + 'a>);
    let ends: [End<'_>; 4] = [
        (
            "a write",
            Box::new(|| {
                for id in 0..KEYS {
                    shared::set_cached(id, format!("set:{id}")).unwrap();
                }
            }),
        ),
        (
            "f::clear",
            Box::new(|| {
                for id in 0..KEYS {
                    shared::clear(id).unwrap();
                }
            }),
        ),
        ("f::clear_all", Box::new(|| shared::clear_all().unwrap())),
        ("Cache::clear", Box::new(|| cache.clear().unwrap())),
    ];
    let phase = Barrier::new(READERS + 1, Duration::from_secs(60));
    std::thread::scope(|s| {
        for _ in 0..READERS {
            s.spawn(|| {
                let _break_on_panic = phase.guard();
                for (what, _) in &ends {
                    // A miss or a wait, a hit that makes the entry hot, hot hits.
                    let before: Vec<String> = (0..KEYS)
                        .map(|id| {
                            for _ in 0..3 {
                                shared(id);
                            }
                            shared(id)
                        })
                        .collect();
                    phase.wait(); // every reader holds every key hot
                    phase.wait(); // ended
                    for id in 0..KEYS {
                        assert_ne!(
                            shared(id),
                            before[id as usize],
                            "after {what} on another thread, this one was served the old entry"
                        );
                    }
                    phase.wait(); // checked
                }
            });
        }
        let _break_on_panic = phase.guard();
        for (what, end) in &ends {
            phase.wait();
            let runs = SHARED_RUNS.get();
            end();
            phase.wait();
            phase.wait();
            // A write leaves nothing to compute; each clear one run per key
            // (the readers of a cleared key wait for one another).
            let recomputed = if *what == "a write" { 0 } else { KEYS as usize };
            assert_eq!(SHARED_RUNS.get() - runs, recomputed, "after {what}");
        }
    });
    assert_eq!(SHARED_RUNS.get(), 4 * KEYS as usize);
}

static BOUNDED_RUNS: Runs = Runs::new();

#[quickcache(cache = "local-hit-bounded")]
fn bounded(id: u64) -> String {
    BOUNDED_RUNS.hit();
    format!("bounded {id}")
}

#[test]
fn hot_entries_stay_within_the_tiers_pin_budget() {
    let cache = Cache::builder().local(Memory::with_capacity(80)).build();
    cachefn::register("local-hit-bounded", cache.clone());
    let tier = cache.local_store().expect("a local tier");
    let (_, limit) = tier.front_held();
    assert_eq!(limit, 10);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..4 {
                    for id in 0..60 {
                        assert_eq!(bounded(id), format!("bounded {id}"));
                    }
                    assert!(tier.front_held().0 <= limit);
                }
            });
        }
    });
    assert!(tier.front_held().0 <= limit);
    // Threads that ended let go of what they held (their thread-local
    // destructors may still be running when the scope returns).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tier.front_held().0 != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(tier.front_held(), (0, limit));
    assert_eq!(BOUNDED_RUNS.get(), 60);
}
