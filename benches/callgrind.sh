#!/usr/bin/env bash
# Instructions per warm hit of every contender of the local_hit and
# scaling benches, counted by callgrind (see examples/hit_instructions.rs).
# Usage: benches/callgrind.sh [CASE...]   (default: every case)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release -q -p cachefn-benches --example hit_instructions --manifest-path "$root/Cargo.toml"
bin="$root/target/release/examples/hit_instructions"
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=(cachefn_u64 dashmap_u64 quick_cache_u64)
    for len in 16 64 200; do
        for kind in str string pair; do
            for who in cachefn dashmap quick_cache; do
                cases+=("${who}_${kind}${len}")
            done
        done
    done
fi
n1=20000
n2=120000
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-28s %s\n' case "instructions per hit"
for c in "${cases[@]}"; do
    a=$(total "$c" $n1)
    b=$(total "$c" $n2)
    printf '%-28s %d\n' "$c" $(((b - a) / (n2 - n1)))
done
