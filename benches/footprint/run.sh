#!/usr/bin/env bash
# Footprint of a default cachefn build next to the `cached` crate's: distinct
# crates in `cargo tree -e normal` and clean debug build times, alternated so
# that both see the same machine. Usage: benches/footprint/run.sh [rounds]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rounds="${1:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mk() { # name, dependency lines, main body
    mkdir -p "$work/$1/src"
    printf '[package]\nname = "%s"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n%s\n\n[workspace]\n' "$1" "$2" >"$work/$1/Cargo.toml"
    printf '%s\n' "$3" >"$work/$1/src/main.rs"
    # Same versions as this workspace resolves.
    cp "$root/Cargo.lock" "$work/$1/Cargo.lock"
}
mk with-cachefn "cachefn = { path = \"$root/cachefn\" }" '
#[cachefn::quickcache(timeout = 60)]
fn square(x: u64) -> u64 { x * x }
fn main() { println!("{}", square(7)); }'
mk with-cached 'cached = "0.56"' '
#[cached::proc_macro::cached]
fn square(x: u64) -> u64 { x * x }
fn main() { println!("{}", square(7)); }'

# What a typical user of either has too: serde's derive for their own types
# (cachefn needs it for cached values; postcard builds serde_derive anyway).
mk with-cached-and-serde 'cached = "0.56"
serde = { version = "1", features = ["derive"] }' '
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User { id: u64, name: String }
#[cached::proc_macro::cached]
fn square(x: u64) -> u64 { x * x }
fn main() { let u = User { id: 1, name: "a".into() }; println!("{} {}", square(u.id), u.name); }'

for c in with-cachefn with-cached with-cached-and-serde; do
    n=$(cd "$work/$c" && cargo tree -e normal --prefix none 2>/dev/null | sed 's/ (\*)//' | sort -u | wc -l)
    echo "$c: $((n - 1)) distinct crates besides the binary"
done
# A crate from crates.io is built without incremental compilation, but a path
# dependency (cachefn here) with it: turn it off for all, as a user sees it.
export CARGO_INCREMENTAL=0
for r in $(seq "$rounds"); do
    for c in with-cachefn with-cached with-cached-and-serde; do
        rm -rf "$work/$c/target"
        s=$(date +%s.%N)
        (cd "$work/$c" && cargo build -q --offline -j2 2>/dev/null || cargo build -q -j2)
        e=$(date +%s.%N)
        printf 'round %s %-22s %.1f s\n' "$r" "$c" "$(echo "$e - $s" | bc)"
    done
done
