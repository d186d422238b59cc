#!/usr/bin/env bash
# Instructions per interpreted operation, counted by callgrind.
#
#   scripts/interp-cost.sh [BACKEND...]      (default: direct ring)
#
# For each kind of compound of crates/cosy-exec/examples/interp_cost.rs (straight-line nops,
# straight-line getppids, straight-line faccessat2s of one path, map iterations (empty, or with a nop), backward jumps) and each executor, runs the example
# under `valgrind --tool=callgrind` with N=1000 and N=11000 and prints
# (Ir(11000) - Ir(1000)) / 10000: the instructions one more operation costs, the setup (ring,
# arena, verifying a compound of constant size) cancelled. Instruction counts do not depend on
# the machine's load, so the figures are comparable from one change of the interpreter to the
# next. Two columns:
#   run      instructions inside cosy_exec::run (callgrind --toggle-collect), the executor alone;
#   program  the whole program, which also builds and verifies the compound (for straight-line
#            compounds, whose size grows with N, that work is part of the difference).
# The kernel's side of a system call (getppid, io_uring_enter) is not counted: callgrind counts
# user-space instructions.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
fi
backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(direct ring)

cargo build --release --quiet -p cosy-exec --example interp_cost
bin=target/release/examples/interp_cost
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# ir KIND N BACKEND [CALLGRIND OPTION...]: total Ir of one run.
ir() {
    local kind=$1 n=$2 backend=$3
    shift 3
    if ! valgrind --tool=callgrind --callgrind-out-file="$dir/out" "$@" \
        "$bin" "$kind" "$n" "$backend" >"$dir/stdout" 2>"$dir/stderr"; then
        echo "interp_cost $kind $n $backend failed under callgrind:" >&2
        cat "$dir/stdout" "$dir/stderr" >&2
        return 1
    fi
    awk '/^summary:/ { print $2 }' "$dir/out"
}

# per_op KIND BACKEND [CALLGRIND OPTION...]: Ir per operation, to one decimal.
per_op() {
    local kind=$1 backend=$2 small large
    shift 2
    small=$(ir "$kind" 1000 "$backend" "$@")
    large=$(ir "$kind" 11000 "$backend" "$@")
    awk -v a="$small" -v b="$large" 'BEGIN { printf "%.1f", (b - a) / 10000 }'
}

printf "%-9s %-7s %9s %9s   (instructions per operation)\n" kind backend run program
for backend in "${backends[@]}"; do
    for kind in straight getppid access map nopmap jump; do
        run=$(per_op "$kind" "$backend" --toggle-collect='cosy_exec::run')
        program=$(per_op "$kind" "$backend")
        printf "%-9s %-7s %9s %9s\n" "$kind" "$backend" "$run" "$program"
    done
done
