#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer; fuzz/): run every target for SECONDS each
# (default 30: the short run CI does) and print, per target, the executions, the coverage
# and the crashes. A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script:
# turn it into a regression test in the crate it belongs to.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (targets: loader control traces)
# Needs the nightly toolchain and cargo-fuzz (scripts/setup.sh installs both). Builds into
# $CARGO_TARGET_DIR/fuzz when CARGO_TARGET_DIR is set. Corpora persist in fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(loader control traces)
case $secs in ''|*[!0-9]*) echo "fuzz: SECONDS must be a whole number, not $secs" >&2; exit 2 ;; esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}
[ -n "$CARGO_TARGET_DIR" ] || unset CARGO_TARGET_DIR
# Seeds for the trace readers: the head of every trace the repository carries.
mkdir -p fuzz/corpus/traces
for f in traces/data/*; do
    [ -f "$f" ] && head -c 4096 "$f" > "fuzz/corpus/traces/seed-$(basename "$f")"
done
# A compressed seed, so that the readers' zstd path starts from a valid frame.
if command -v zstd >/dev/null; then
    head -c 4096 traces/data/cloudPhysicsIO.txt | zstd -q -c > fuzz/corpus/traces/seed-cloudPhysicsIO.txt.zst
fi
fail=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log=$(mktemp)
    # No sanitizer: the code is safe Rust (wasmtime's unsafe is its own); libFuzzer still
    # catches panics, aborts, timeouts and memory blowups.
    if ! (cd fuzz && cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" -- \
            -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) > "$log" 2>&1; then
        fail=1
        echo "fuzz: $t: CRASH (input in fuzz/artifacts/$t/)"; grep -E "panicked|ERROR|SUMMARY" "$log" | head -5
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    corpus=$(ls "fuzz/corpus/$t" | wc -l)
    echo "fuzz: $t: ${secs}s, ${execs:-?} executions, ${cov:-cov ?}, corpus $corpus inputs"
    rm -f "$log"
done
exit $fail
