#!/usr/bin/env bash
# Instructions per request of `kplugfs sim`'s replay, counted by valgrind (cachegrind, no cache
# simulation): a measure that does not move with the machine's load or its slow spells, for
# judging a change to the simulator's or a policy's hot path on a machine whose wall times
# spread by more than the change (a shared 2-CPU VM: the same run 0.45-0.92 s minutes apart).
#
# usage: scripts/bench/instructions.sh [--requests N] TRACE CACHE_OBJECTS POLICY...
#
# TRACE is an oracleGeneral file (24-byte records; `kplugfs trace convert --to oracle` writes
# one). For each POLICY (anything `kplugfs sim --policy` takes: a built-in plugin, a .wasm
# path, builtin:lru) the whole process is counted on the trace's first N requests (default
# 1,000,000) and first 2N; the difference over N is the cost of a request of the replay, with
# start-up, compiling or loading the plugin and reading the arguments cancelled out (each
# count is taken after a short first run under valgrind, so both find the plugin in the
# compiled-module cache). It counts instructions, not time: a cache miss or a mispredicted branch costs one,
# so compare it with a timed benchmark (scripts/bench.sh --only simpeer) before calling a
# change faster.
#
# KPLUGFS_BIN picks the binary (default target/release/kplugfs); PARAMS, extra `kplugfs sim`
# arguments (e.g. PARAMS="--param s3fifo:fill-main=1"). Needs valgrind (apt install valgrind).
# Each policy takes about 20 s (valgrind runs the program 30-50x slower).
set -euo pipefail

n=1000000
if [ "${1:-}" = "--requests" ]; then
    n=$2
    shift 2
fi
if [ $# -lt 3 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
trace=$1
objects=$2
shift 2
kplugfs=${KPLUGFS_BIN:-target/release/kplugfs}
command -v valgrind > /dev/null || { echo "instructions.sh: valgrind is missing (apt install valgrind)" >&2; exit 1; }
[ -x "$kplugfs" ] || { echo "instructions.sh: no kplugfs binary at $kplugfs (set KPLUGFS_BIN)" >&2; exit 1; }
[ -r "$trace" ] || { echo "instructions.sh: cannot read $trace" >&2; exit 1; }
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "instructions.sh: --requests must be a positive integer" >&2; exit 1; }
have=$(($(stat -c %s "$trace") / 24))
[ "$have" -ge $((2 * n)) ] || { echo "instructions.sh: $trace holds $have requests, fewer than 2 x $n (use --requests)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c $((24 * n)) "$trace" > "$work/n.bin"
head -c $((48 * n)) "$trace" > "$work/2n.bin"
head -c $((24 * 1000)) "$trace" > "$work/warm.bin"

# One whole run of `kplugfs sim` on trace $1 with policy $2, under the command that follows
# (none: natively); its output in $work/sim.json.
sim() {
    local trace=$1 policy=$2
    shift 2
    # shellcheck disable=SC2086
    "$@" "$kplugfs" sim --trace "$trace" --format oracle --policy "$policy" ${PARAMS:-} \
        --cache-objects "$objects" --jobs 1 --json > "$work/sim.json" 2> "$work/err" ||
        { cat "$work/err" >&2; echo "instructions.sh: kplugfs sim failed for $policy" >&2; exit 1; }
}

# The instructions of one whole run of `kplugfs sim` on $1 with policy $2.
count() {
    local out=$work/cg.out
    sim "$1" "$2" valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out" -q
    awk '/^summary:/ {print $2}' "$out"
}

printf '%-28s %14s %14s %14s\n' policy "runs of $n" "runs of $((2 * n))" "instr/request"
for p in "$@"; do
    # Fills the compiled-module cache under valgrind, on the trace's first 1,000 requests, so
    # that neither count compiles the plugin (~200 M instructions on one side of the
    # difference). Natively is not the same: valgrind's CPU lacks some of the host's features
    # (AVX-512), so its compiled code, and the cache's key for it, differ from a native run's.
    # The process waits for the cache's background write before it exits.
    sim "$work/warm.bin" "$p" valgrind --tool=none -q
    a=$(count "$work/n.bin" "$p")
    b=$(count "$work/2n.bin" "$p")
    printf '%-28s %14s %14s %14s\n' "$p" "$a" "$b" $(((b - a) / n))
done
