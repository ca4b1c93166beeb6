//! What the value codec costs over plain postcard: encode and decode of a
//! small struct and a string, next to `postcard` alone in the same run, and
//! the one-time trace of a type's serde shape (the type fingerprint).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Post {
    id: u64,
    title: String,
    tags: Vec<String>,
    state: State,
}

#[derive(Clone, Serialize, Deserialize)]
enum State {
    Draft,
    Published { at: u64 },
}

/// The key the values are stored under (`prefix:key`): the check covers it.
const KEY: &str = "blog:blog.post:v1:42";

fn codec(c: &mut Criterion) {
    use cachefn::codec;
    let post = Post {
        id: 7,
        title: "Hello, world".into(),
        tags: vec!["a".into(), "b".into()],
        state: State::Published { at: 1 },
    };
    let text = "x".repeat(100);
    let post_bytes = codec::encode(KEY, &post, 0).unwrap();
    let text_bytes = codec::encode(KEY, &text, 0).unwrap();
    let post_raw = postcard::to_allocvec(&post).unwrap();
    let mut g = c.benchmark_group("codec");
    g.bench_function("encode Post", |b| {
        b.iter(|| codec::encode(KEY, black_box(&post), 0).unwrap())
    });
    g.bench_function("ref: postcard::to_allocvec Post", |b| {
        b.iter(|| postcard::to_allocvec(black_box(&post)).unwrap())
    });
    g.bench_function("decode Post", |b| {
        b.iter(|| codec::decode::<Post>(KEY, black_box(&post_bytes)).unwrap())
    });
    g.bench_function("ref: postcard::from_bytes Post", |b| {
        b.iter(|| postcard::from_bytes::<Post>(black_box(&post_raw)).unwrap())
    });
    g.bench_function("encode String(100)", |b| {
        b.iter(|| codec::encode(KEY, black_box(&text), 0).unwrap())
    });
    g.bench_function("decode String(100)", |b| {
        b.iter(|| codec::decode::<String>(KEY, black_box(&text_bytes)).unwrap())
    });
    g.bench_function("type_fingerprint (memoized)", |b| {
        b.iter(codec::type_fingerprint::<Post>)
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
