//! Values across deploys: a value written by a build whose type has another
//! serde shape reads as a miss, never as a wrong value; a value written by
//! a build of the same type is a hit.
//!
//! Two separately compiled programs, `shapes_old` and `shapes_new`
//! (`tests/src/bin/`), define "the same" types differently; `shapes_old`
//! writes each case's value into a real shared tier (a Disk directory, a
//! real redis-server) and `shapes_new` reads it back.

use std::process::Command;

use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::{child_answer, started};

/// Each case and what `shapes_new` must read from `shapes_old`'s value.
const CASES: &[(&str, &str)] = &[
    ("unchanged", "Point { x: 1, y: 2 }"),
    (
        "unchanged_everything",
        "Everything { id: 7, tags: {\"t\": [Some(-1), None]}, color: Green, \
         list: Cons(1, Cons(2, Nil)), pair: ('c', [1, 2, 3]), unit: (), \
         wrapped: Wrapped(0.5), bytes: [9, 9] }",
    ),
    ("reordered", "MISS"),
    ("renamed", "MISS"),
    ("added", "MISS"),
    ("removed", "MISS"),
    ("type_changed", "MISS"),
    ("variants_reordered", "MISS"),
    ("variant_added", "MISS"),
    ("variant_renamed", "MISS"),
    ("nested_reordered", "MISS"),
];

fn run(build: &str, action: &str, case: &str, tier: &str) -> String {
    let exe = match build {
        "old" => env!("CARGO_BIN_EXE_shapes_old"),
        _ => env!("CARGO_BIN_EXE_shapes_new"),
    };
    let out = Command::new(exe)
        .args([action, case, tier])
        .output()
        .expect("run a shapes build");
    assert!(
        out.status.success(),
        "{build} {action} {case} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    child_answer(&String::from_utf8_lossy(&out.stdout))
}

/// Every case through one tier: `shapes_old` writes, then each build reads.
fn check_tier(tier: &str) {
    let mut wrong = Vec::new();
    for (case, expected) in CASES {
        run("old", "write", case, tier);
        // The writing build reads its own value back (the sample is right).
        assert_ne!(run("old", "read", case, tier), "MISS", "{case}: own value");
        let got = run("new", "read", case, tier);
        if got != *expected {
            wrong.push(format!("{case}: expected {expected}, read {got}"));
        }
    }
    assert!(wrong.is_empty(), "{tier}:\n{}", wrong.join("\n"));
}

#[test]
fn another_shape_is_a_miss_through_disk() {
    let dir = tempfile::tempdir().unwrap();
    check_tier(&format!("disk:{}", dir.path().display()));
}

#[test]
fn another_shape_is_a_miss_through_redis() {
    let server = started!(RedisServer::start());
    check_tier(&format!("redis:{}", server.url()));
}

/// `std::any::type_name` is not unique: two types declared in sibling blocks
/// share one. Their values must still never be read as each other.
#[test]
fn types_that_share_a_type_name_do_not_share_values() {
    use serde::{Deserialize, Serialize};
    use std::time::Duration;

    let cache = cachefn::Cache::memory();
    let (written, read_back) = {
        #[derive(Debug, Serialize, Deserialize)]
        struct Point {
            x: i32,
            y: i32,
        }
        cache
            .set("p", &Point { x: 1, y: 2 }, Duration::from_secs(60))
            .unwrap();
        (
            std::any::type_name::<Point>(),
            cache.get::<Point>("p").map(|p| format!("{p:?}")),
        )
    };
    assert_eq!(read_back.as_deref(), Some("Point { x: 1, y: 2 }"));
    {
        #[derive(Debug, Serialize, Deserialize)]
        struct Point {
            y: i32,
            x: i32,
        }
        assert_eq!(std::any::type_name::<Point>(), written, "the premise");
        let read = cache.get::<Point>("p");
        assert!(read.is_none(), "read {read:?}");
    }
}
