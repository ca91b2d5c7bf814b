#!/usr/bin/env bash
# The scan-boost scenario (docs/policies.md, "Governors"): a mount over a slow, parallel
# backend (--backend-latency, default 2ms per block read; --prefetch-threads 16), read
# sequentially and at random, with: the built-in readahead; scanboost's modest candidate
# alone (readahead of one block); the `scanboost` governor dropped into .kplug/plugins/;
# its aggressive candidate (`s3window`) alone. Each run is a fresh mount (no cached block
# survives). Prints sequential MiB/s and, for the random reads, the prefetched blocks that
# were never read, medians of --runs.
#
# usage: scripts/bench-scanboost.sh [--size MiB] [--runs N] [--latency DURATION] [--reads N]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=256; runs=3; latency=2ms; reads=300
while [ $# -gt 0 ]; do
    case $1 in
        --size) size_mib=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --latency) latency=$2; shift 2 ;;
        --reads) reads=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "bench-scanboost: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-scanboost: needs root" >&2; exit 1; }
. scripts/lib.sh
build_kplugfs
bench_work scanboost
head -c $((size_mib << 20)) /dev/urandom > "$work/backing/data"
"$kplugfs" policy export scanboost "$work/scanboost.wasm" >/dev/null
"$kplugfs" policy export s3window "$work/s3window.wasm" >/dev/null
"$kplugfs" policy export readahead "$work/modest.wasm" >/dev/null
printf 'initial-window=1\nmax-window=1\n' > "$work/modest.params"

# mount_with none|modest|scanboost|s3window
mount_with() {
    "$kplugfs" mount "$work/backing" "$work/mnt" --no-keep-plugins --backend-latency "$latency" \
        --no-kernel-cache --cache-size $((size_mib * 4))MiB --history-period 0 \
        --prefetch-threads 16
    if [ "$1" = modest ]; then
        cp "$work/modest.params" "$work/mnt/.kplug/plugins/"
    fi
    if [ "$1" != none ]; then
        cp "$work/$1.wasm" "$work/mnt/.kplug/plugins/"
    fi
}

seq_run() { # setup -> MiB/s
    mount_with "$1"
    local t0 t1
    t0=$(date +%s.%N)
    dd if="$work/mnt/data" of=/dev/null bs=1M status=none
    t1=$(date +%s.%N)
    "$kplugfs" umount "$work/mnt"
    python3 -c "print('%.1f' % ($size_mib / ($t1 - $t0)))"
}

rand_run() { # setup -> "seconds unused_prefetched_blocks"
    mount_with "$1"
    python3 - "$work/mnt" "$reads" "$size_mib" <<'PY'
import json, os, random, sys, time
mnt, reads, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20
rng = random.Random(42)
fd = os.open(f"{mnt}/data", os.O_RDONLY)
t0 = time.time()
for _ in range(reads):
    os.pread(fd, 4096, rng.randrange(0, size - 4096) & ~4095)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
dt = time.time() - t0
os.close(fd)
time.sleep(0.5)  # let queued prefetches land
p = json.load(open(f"{mnt}/.kplug/status"))["prefetch"]
print(f"{dt:.2f} {p['completed_blocks'] - p['used_blocks']}")
PY
    "$kplugfs" umount "$work/mnt"
}

declare -A seqr randt randw
for r in $(seq 1 "$runs"); do
    for setup in none modest scanboost s3window; do
        v=$(seq_run $setup); seqr[$setup]+="$v "
        out=$(rand_run $setup); read -r t w <<<"$out"; randt[$setup]+="$t "; randw[$setup]+="$w "
        echo "bench-scanboost: run $r $setup: seq $v MiB/s, random $t s, unused prefetch $w blocks" >&2
    done
done
python3 - "$size_mib" "$latency" "$reads" \
    "${seqr[none]}" "${seqr[modest]}" "${seqr[scanboost]}" "${seqr[s3window]}" \
    "${randt[none]}" "${randt[modest]}" "${randt[scanboost]}" "${randt[s3window]}" \
    "${randw[none]}" "${randw[modest]}" "${randw[scanboost]}" "${randw[s3window]}" <<'PY'
import statistics, sys
size, lat, reads = sys.argv[1:4]
v = [[float(x) for x in a.split()] for a in sys.argv[4:]]
med = statistics.median
names = ["built-in readahead", "modest alone (readahead 1 block)", "scanboost governor", "s3window alone"]
print(f"# {size} MiB file, --backend-latency {lat}, --prefetch-threads 16, 128 KiB blocks, fresh mount per run, median of {len(v[0])}")
print("| prefetch | sequential MiB/s | vs built-in | random 4 KiB reads (" + reads + ") s | unused prefetched blocks after them |")
print("|---|---:|---:|---:|---:|")
for i, n in enumerate(names):
    print(f"| {n} | {med(v[i]):.1f} | {med(v[i]) / med(v[0]):.2f}x | {med(v[4 + i]):.2f} | {med(v[8 + i]):.0f} |")
PY
