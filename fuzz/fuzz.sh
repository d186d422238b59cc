#!/bin/sh
# Runs one fuzz target for a total wall time, restarting libFuzzer after each finding (it
# stops at the first), so that one crash does not end the run; each session's log, with
# libFuzzer's final statistics, goes to logs/TARGET-N.log and each finding to
# artifacts/TARGET/.
#
#   fuzz/fuzz.sh TARGET SECONDS [libFuzzer options...]
#
# Builds with cargo-fuzz first (stable toolchain, no sanitizer: see README.md).
set -eu
cd "$(dirname "$0")"
target=$1
total=$2
shift 2
cargo fuzz build -s none -O -a "$target"
bin=target/x86_64-unknown-linux-gnu/release/$target
mkdir -p "corpus/$target" "artifacts/$target" logs
# Seeds: the repository's examples and generated compounds (crates/cosy-fuzzing/examples/seeds.rs).
[ -d "seeds/$target" ] || (cd .. && cargo run --release -p cosy-fuzzing --example seeds -- fuzz/seeds)
start=$(date +%s)
n=0
while :; do
    left=$((total - ($(date +%s) - start)))
    [ "$left" -gt 0 ] || break
    n=$((n + 1))
    "$bin" "corpus/$target" "seeds/$target" -max_total_time="$left" -timeout=20 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" "$@" \
        >"logs/$target-$n.log" 2>&1 || true
done
echo "$target: $n sessions, $(($(date +%s) - start)) s"
