#!/usr/bin/env bash
# Effect of forwarding prefetch hints to the backing file's kernel page cache
# (--kernel-hints) on a cold sequential read through the mount: the same read with hints
# off and on, caches dropped before every run, in one script. Prints MiB/s medians and the
# ratio.
#
# usage: scripts/bench-hints.sh [--size MiB] [--runs N] [--latency DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=512; runs=5; latency=0s
while [ $# -gt 0 ]; do
    case $1 in
        --size) size_mib=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --latency) latency=$2; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "bench-hints: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-hints: needs root" >&2; exit 1; }
. scripts/lib.sh
build_kplugfs
bench_work hints
head -c $((size_mib << 20)) /dev/urandom > "$work/backing/data"
sync

one_run() { # mode -> MiB/s
    "$kplugfs" mount "$work/backing" "$work/mnt" --no-keep-plugins --kernel-hints "$1" --backend-latency "$latency" --no-kernel-cache
    sync; echo 3 > /proc/sys/vm/drop_caches
    local t0 t1
    t0=$(date +%s.%N)
    dd if="$work/mnt/data" of=/dev/null bs=1M status=none
    t1=$(date +%s.%N)
    "$kplugfs" umount "$work/mnt"
    python3 -c "print('%.1f' % ($size_mib / ($t1 - $t0)))"
}
declare -A res
for r in $(seq 1 "$runs"); do
    for mode in off syscall; do
        v=$(one_run $mode)
        res[$mode]+="$v "
        echo "bench-hints: run $r --kernel-hints $mode: $v MiB/s" >&2
    done
done
python3 - "${res[off]}" "${res[syscall]}" "$size_mib" "$latency" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
mo, mn = statistics.median(off), statistics.median(on)
print(f"# cold sequential read of {sys.argv[3]} MiB through the mount (--no-kernel-cache, backend latency {sys.argv[4]}), MiB/s, median of {len(off)}")
print("| kernel hints | MiB/s (min-max) |")
print("|---|---:|")
print(f"| off | {mo:.0f} ({min(off):.0f}-{max(off):.0f}) |")
print(f"| syscall (readahead(2)) | {mn:.0f} ({min(on):.0f}-{max(on):.0f}) |")
print(f"| ratio on/off | {mn/mo:.2f} |")
PY
