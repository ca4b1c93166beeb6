//! Multi-thread throughput of cache hits: for each contender, the time for
//! `--hits` warm hits done by one thread, then split over two threads
//! (`std::thread::scope`), and the throughput ratio two-thread / one-thread
//! (2.0x is perfect scaling on two cores).
//!
//! The first rows cache `render(id: u64) -> String`; the rows named `16B`,
//! `64B` and `200B` a function of a query of that many bytes (`&str`, an
//! owned `String` cloned in the loop of every row, or a struct of a `u64`
//! and the query) against `dashmap` and `quick_cache` keyed by the same
//! `String` (see the `local_hit` bench's `local_hit_args` group).
//!
//! ```text
//! cargo bench -j2 -p cachefn-benches --bench scaling
//! cargo bench -j2 -p cachefn-benches --bench scaling -- --only 64B
//! ```
//!
//! Options (after `--`): `--hits N` (default 1,000,000), `--rounds N` (best of
//! N, default 7), `--only WORD` (the rows whose name contains WORD). Rounds are interleaved over all contenders, so a burst of
//! outside load spoils one round of each rather than every round of one. The
//! ratio needs two idle cores: two calibration rows (no cache, no shared
//! state) show what this machine allows, and a warning is printed when they
//! do not scale.

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{with_cached, with_cachefn, with_cachefn_str, Caches, Search, StrCaches};

/// One measured operation, its result black-boxed and dropped inside the loop.
type Hit<'a> = Box<dyn Fn(u64) + Sync + 'a>;

fn hit<'a, R>(f: impl Fn(u64) -> R + Sync + 'a) -> Hit<'a> {
    Box::new(move |k| drop(black_box(f(k))))
}

/// `hits` hits of `hit`, cycling through `keys` from `start`.
#[inline(never)]
fn run(keys: &[u64], start: usize, hits: usize, hit: &(dyn Fn(u64) + Sync)) {
    let mut i = start % keys.len();
    for _ in 0..hits {
        let k = keys[i];
        i += 1;
        if i == keys.len() {
            i = 0;
        }
        hit(black_box(k));
    }
}

/// Wall time of `hits` hits split over `threads` threads: from the first
/// thread's start to the last thread's end, each thread timing itself after a
/// common barrier (the spawning thread only waits, so it cannot take a core
/// from the workers or skew the clock).
fn timed(keys: &[u64], hits: usize, threads: usize, hit: &(dyn Fn(u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    let per = hits / threads;
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    // One untimed hit so per-thread state (thread locals) exists.
                    hit(keys[0]);
                    barrier.wait();
                    let start = Instant::now();
                    run(keys, t * keys.len() / threads, per, hit);
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("a thread");
    let last = spans.iter().map(|s| s.1).max().expect("a thread");
    last - first
}

/// Calibration work: about as long as a hit, touching no shared memory.
#[inline(never)]
fn spin(k: u64) -> u64 {
    let mut x = k;
    for _ in 0..64 {
        x = black_box(x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
    }
    x
}

fn arg(args: &[String], flag: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.replace('_', "").parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: run tiny then.
    let bench = args.iter().any(|a| a == "--bench");
    let hits = arg(&args, "--hits", if bench { 1_000_000 } else { 10_000 });
    let rounds = arg(&args, "--rounds", if bench { 7 } else { 1 }).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    common::register_arg_cache();
    let keys = common::key_sequence();
    let Caches { dash, quick, moka } = Caches::warmed(&keys);
    // The long-argument rows read their queries by index, in the same
    // fixed order as the integer keys.
    let index: Vec<u64> = (0..keys.len() as u64).collect();
    let strs: Vec<StrCaches> = common::ARG_LENS.map(StrCaches::warmed).into();

    // Names in parentheses are not contenders: calibration (no cache, no
    // shared state: what two threads can gain here at all, without and with
    // the allocator).
    let mut contenders: Vec<(String, &[u64], Hit<'_>)> = vec![
        ("(no cache: arithmetic)".into(), &keys, hit(spin)),
        ("(no cache: body)".into(), &keys, hit(common::body)),
        ("cachefn".into(), &keys, hit(with_cachefn::render)),
        (
            "dashmap".into(),
            &keys,
            hit(|k| dash.get(&k).map(|v| v.clone())),
        ),
        ("quick_cache".into(), &keys, hit(|k| quick.get(&k))),
        ("moka".into(), &keys, hit(|k| moka.get(&k))),
        ("cached".into(), &keys, hit(with_cached::render)),
    ];
    for s in &strs {
        let (q, p) = (&s.queries, &s.pairs);
        let len = q[0].len();
        let at = |k: u64| k as usize;
        let rows: [(&str, Hit<'_>); 9] = [
            (
                "cachefn &str",
                hit(move |k| with_cachefn_str::page(&q[at(k)])),
            ),
            (
                "dashmap &str",
                hit(move |k| s.dash.get(q[at(k)].as_str()).map(|v| v.clone())),
            ),
            (
                "quick_cache &str",
                hit(move |k| s.quick.get(q[at(k)].as_str())),
            ),
            (
                "cachefn String",
                hit(move |k| with_cachefn_str::page_owned(q[at(k)].clone())),
            ),
            (
                "dashmap String",
                hit(move |k| {
                    let k = q[at(k)].clone();
                    s.dash.get(&k).map(|v| v.clone())
                }),
            ),
            (
                "quick_cache String",
                hit(move |k| {
                    let k = q[at(k)].clone();
                    s.quick.get(&k)
                }),
            ),
            (
                "cachefn (u64, &str)",
                hit(move |k| {
                    let (page, q) = &p[at(k)];
                    with_cachefn_str::search(&Search { page: *page, q })
                }),
            ),
            (
                "dashmap (u64, String)",
                hit(move |k| s.dash_pair.get(&p[at(k)]).map(|v| v.clone())),
            ),
            (
                "quick_cache (u64, String)",
                hit(move |k| s.quick_pair.get(&p[at(k)])),
            ),
        ];
        for (name, h) in rows {
            contenders.push((format!("{len}B {name}"), &index, h));
        }
    }

    // `--only WORD`: just the rows whose name contains WORD.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let contenders: Vec<(String, &[u64], Hit<'_>)> = contenders
        .into_iter()
        .filter(|(name, _, _)| only.as_deref().is_none_or(|w| name.contains(w)))
        .collect();

    // Warm-up of the code paths and the CPU.
    for (_, keys, h) in &contenders {
        timed(keys, hits / 10, 1, h);
        timed(keys, hits / 10, 2, h);
    }
    let mut best = vec![(Duration::MAX, Duration::MAX); contenders.len()];
    for _ in 0..rounds {
        for ((_, keys, h), (one, two)) in contenders.iter().zip(&mut best) {
            *one = (*one).min(timed(keys, hits, 1, h));
            *two = (*two).min(timed(keys, hits, 2, h));
        }
    }

    println!(
        "\n{hits} warm hits per run over {} keys, best of {rounds} interleaved rounds, {cores} cores available",
        keys.len()
    );
    println!(
        "{:<32} {:>10} {:>10} {:>12} {:>12} {:>8}",
        "contender", "1 thread", "2 threads", "ns/hit (1t)", "Mhits/s (2t)", "2t/1t"
    );
    let ratio = |(one, two): (Duration, Duration)| one.as_secs_f64() / two.as_secs_f64();
    for ((name, _, _), &(one, two)) in contenders.iter().zip(&best) {
        println!(
            "{:<32} {:>8.1}ms {:>8.1}ms {:>12.1} {:>12.2} {:>7.2}x",
            name,
            one.as_secs_f64() * 1e3,
            two.as_secs_f64() * 1e3,
            one.as_nanos() as f64 / hits as f64,
            hits as f64 / two.as_secs_f64() / 1e6,
            ratio((one, two))
        );
    }
    println!();
    for ((name, _, _), &b) in contenders.iter().zip(&best) {
        if !name.starts_with('(') {
            println!("{name} 2-thread/1-thread = {:.2}x", ratio(b));
        }
    }
    let calibration = best
        .iter()
        .zip(&contenders)
        .filter(|(_, (name, _, _))| name.starts_with("(no cache"))
        .map(|(&b, _)| ratio(b))
        .fold(f64::MAX, f64::min);
    if calibration < 1.8 && only.is_none() {
        println!(
            "\nWARNING: the calibration rows scale only {calibration:.2}x: the machine was busy \
             (or has fewer than 2 free cores); the ratios above understate scaling. Run again."
        );
    }
}
