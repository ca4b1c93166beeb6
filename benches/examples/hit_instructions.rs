//! Instructions per warm hit, counted by callgrind: the contenders of the
//! `local_hit` and `scaling` benches (the same functions, keys and values),
//! one per process.
//!
//! `hit_instructions CASE N` warms every contender of CASE (1,000 keys),
//! reads each key twice more, then does N hits. Run it under callgrind with
//! two values of N and divide the difference of the totals by the
//! difference of the N's: what is left is the cost of one hit, the bench
//! loop's few instructions and the drop of the returned `String` included.
//! `benches/callgrind.sh` does that for every case.
//!
//! Cases: `WHO_WHAT`, WHO one of `cachefn`, `dashmap`, `quick_cache`, WHAT
//! `u64` or a kind and a length: `str64` (`&str`), `string64` (an owned
//! `String`, cloned in the loop, in every row), `pair64` (a struct of a
//! `u64` and a `&str`; the maps are keyed by `(u64, String)`).
//!
//! ```text
//! cargo build --release -p cachefn-benches --example hit_instructions
//! valgrind --tool=callgrind target/release/examples/hit_instructions cachefn_str64 100000
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::{with_cachefn, with_cachefn_str, Caches, Search, StrCaches};

/// Every key twice (their hot entries are made by the second read), then
/// `n` hits in the benches' order.
fn cycle<K>(keys: &[K], n: usize, mut hit: impl FnMut(&K)) {
    for k in keys.iter().chain(keys) {
        hit(k);
    }
    let mut i = 0;
    for _ in 0..n {
        hit(black_box(&keys[i]));
        i += 1;
        if i == keys.len() {
            i = 0;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map_or("cachefn_u64", String::as_str);
    let n: usize = args.get(2).map_or(100_000, |s| s.parse().expect("N"));
    let (who, what) = case.rsplit_once('_').expect("WHO_WHAT");
    common::register_arg_cache();
    if what == "u64" {
        let keys = common::key_sequence();
        let c = Caches::warmed(&keys);
        match who {
            "cachefn" => cycle(&keys, n, |&k| drop(black_box(with_cachefn::render(k)))),
            "dashmap" => cycle(&keys, n, |k| {
                drop(black_box(c.dash.get(k).map(|v| v.clone())))
            }),
            "quick_cache" => cycle(&keys, n, |k| drop(black_box(c.quick.get(k)))),
            _ => panic!("unknown contender {who}"),
        }
        return;
    }
    let kind = what.trim_end_matches(|c: char| c.is_ascii_digit());
    let len: usize = what[kind.len()..].parse().expect("a length");
    let s = StrCaches::warmed(len);
    let (q, p) = (&s.queries, &s.pairs);
    match (who, kind) {
        ("cachefn", "str") => cycle(q, n, |k| drop(black_box(with_cachefn_str::page(k)))),
        ("dashmap", "str") => cycle(q, n, |k| {
            drop(black_box(s.dash.get(k.as_str()).map(|v| v.clone())))
        }),
        ("quick_cache", "str") => cycle(q, n, |k| drop(black_box(s.quick.get(k.as_str())))),
        ("cachefn", "string") => cycle(q, n, |k| {
            drop(black_box(with_cachefn_str::page_owned(k.clone())))
        }),
        ("dashmap", "string") => cycle(q, n, |k| {
            let k = k.clone();
            drop(black_box(s.dash.get(&k).map(|v| v.clone())))
        }),
        ("quick_cache", "string") => cycle(q, n, |k| {
            let k = k.clone();
            drop(black_box(s.quick.get(&k)))
        }),
        ("cachefn", "pair") => cycle(p, n, |(page, q)| {
            drop(black_box(with_cachefn_str::search(&Search {
                page: *page,
                q,
            })))
        }),
        ("dashmap", "pair") => cycle(p, n, |k| {
            drop(black_box(s.dash_pair.get(k).map(|v| v.clone())))
        }),
        ("quick_cache", "pair") => cycle(p, n, |k| drop(black_box(s.quick_pair.get(k)))),
        _ => panic!("unknown case {case}"),
    }
}
