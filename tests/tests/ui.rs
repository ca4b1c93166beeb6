//! Compile-fail (and one compile-pass) tests of the error messages of
//! `#[cachefn::quickcache]` and `cachefn::config::quickcache!`.
//!
//! One misuse per file in `ui/fail/`, with its `.stderr` snapshot next to it.
//! Re-bless with `TRYBUILD=overwrite cargo test -p cachefn-tests --test ui`
//! (the toolchain is pinned in `rust-toolchain.toml` so that the compiler's
//! own text in the snapshots stays stable).
//!
//! `ui/pending/` holds misuses that still compile; they are not run. Move
//! each to `ui/fail/` (and bless it) once the macro rejects it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
