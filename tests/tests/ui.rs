//! Compile-fail tests of the error messages of `#[cachefn::quickcache]` and
//! `cachefn::config::quickcache!`, and the check that the compile-pass
//! cases are all run.
//!
//! One misuse per file in `ui/fail/`, with its `.stderr` snapshot next to it.
//! Re-bless with `TRYBUILD=overwrite cargo test -p cachefn-tests --test ui`
//! (the toolchain is pinned in `rust-toolchain.toml` so that the compiler's
//! own text in the snapshots stays stable).
//!
//! The compile-pass cases in `ui/pass/` are test targets of their own
//! (`[[test]]` with `harness = false` in `tests/Cargo.toml`): cargo builds
//! them with the rest of the suite and runs their `main`. Through trybuild,
//! one pass case would make it build every dependency again with code
//! generation and run one cargo build per case, compile-fail ones included,
//! instead of checking all of them in one cargo run.

use std::path::Path;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
}

/// Every `ui/pass/*.rs` is a `[[test]]` target, so none is silently skipped.
#[test]
fn every_pass_case_is_a_test_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut missing = Vec::new();
    let mut cases = 0;
    for entry in std::fs::read_dir(root.join("ui/pass")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".rs") {
            continue;
        }
        cases += 1;
        if !manifest.contains(&format!("path = \"ui/pass/{name}\"")) {
            missing.push(name);
        }
    }
    assert!(cases > 0, "no compile-pass cases found in ui/pass/");
    assert!(
        missing.is_empty(),
        "ui/pass/ has cases that are not run: {missing:?}. Add each to tests/Cargo.toml as\n\
         [[test]]\nname = \"ui_pass_<name>\"\npath = \"ui/pass/<file>.rs\"\nharness = false"
    );
}
