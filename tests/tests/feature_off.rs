//! Compile-fail cases built against cachefn with its default features (no
//! `redis`, `redis-cluster`, `memcached`, `disk` or `tokio`): each error
//! must name the feature to turn on, once.
//!
//! `tests/ui.rs` cannot hold these: trybuild builds its cases with this
//! package's dependencies, where cachefn has every feature. So this test
//! writes a small package outside the workspace (under cargo's
//! `CARGO_TARGET_TMPDIR`) that depends on cachefn by path with its default
//! features and the workspace's `Cargo.lock`, and runs `cargo check` on one
//! case (one `[[bin]]`) at a time, offline. The first run builds cachefn's
//! default dependencies there (about 20 crates, checked, not linked); later
//! runs only check the cases.
//!
//! The cases are `ui/feature_off/*.rs`, each with its `.stderr` snapshot
//! next to it, compared as trybuild compares them (paths of this
//! workspace read `$WORKSPACE`). Re-bless with
//! `TRYBUILD=overwrite cargo test -p cachefn-tests --test feature_off`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The package the cases are checked in, written afresh each run.
fn write_package(dir: &Path, cases: &[String]) {
    let ws = workspace();
    let cachefn = ws.join("cachefn");
    let mut manifest = format!(
        "[package]\n\
         name = \"cachefn-feature-off\"\n\
         version = \"0.0.0\"\n\
         edition = \"2021\"\n\
         publish = false\n\n\
         [workspace]\n\n\
         [dependencies]\n\
         cachefn = {{ path = {:?} }}\n",
        cachefn.display().to_string()
    );
    for case in cases {
        manifest.push_str(&format!(
            "\n[[bin]]\nname = \"{case}\"\npath = \"ui/feature_off/{case}.rs\"\n"
        ));
    }
    let src = dir.join("ui/feature_off");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    // The workspace's versions, so that nothing is resolved (or fetched).
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    for case in cases {
        let from = ws.join(format!("tests/ui/feature_off/{case}.rs"));
        std::fs::copy(&from, src.join(format!("{case}.rs"))).unwrap();
    }
}

/// rustc's diagnostics for one case, with this machine's paths replaced.
fn check(dir: &Path, case: &str) -> (bool, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir)
        .args(["check", "--quiet", "--offline", "--bin", case])
        .arg("--target-dir")
        .arg(dir.join("target"))
        .env("CARGO_TERM_COLOR", "never")
        // What the surrounding `cargo test` sets for its own build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), normalize(&stderr))
}

/// The errors only: warnings (of the case, or of a path dependency, which
/// cargo shows) are not what these cases are about; and cargo's summary
/// line goes too.
fn normalize(stderr: &str) -> String {
    let ws = workspace().display().to_string();
    let mut lines: Vec<String> = Vec::new();
    let mut in_warning = false;
    for line in stderr.lines() {
        if line.starts_with("warning") || line.starts_with("error") {
            in_warning =
                line.starts_with("warning") || line.starts_with("error: could not compile");
        }
        if !in_warning {
            lines.push(line.replace(&ws, "$WORKSPACE"));
        }
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[test]
fn errors_name_the_missing_feature() {
    let cases_dir = workspace().join("tests/ui/feature_off");
    let mut cases: Vec<String> = std::fs::read_dir(&cases_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".rs").map(str::to_string))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", cases_dir.display());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("feature-off");
    write_package(&dir, &cases);
    let overwrite = std::env::var("TRYBUILD").is_ok_and(|v| v == "overwrite");
    let mut failures = Vec::new();
    for case in &cases {
        let (compiled, actual) = check(&dir, case);
        let snapshot = cases_dir.join(format!("{case}.stderr"));
        if compiled {
            failures.push(format!("{case}: compiled, but it must fail"));
            continue;
        }
        if overwrite {
            std::fs::write(&snapshot, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{case}: the errors differ from {}\n--- expected\n{expected}--- actual\n{actual}",
                snapshot.display()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
