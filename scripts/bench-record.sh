#!/usr/bin/env bash
# Cost of recording a trace (`.kplug/trace`) on read throughput through the mount: the same
# reads with recording off and on, alternating, in one script. Prints MiB/s medians and the
# ratio.
#
# usage: scripts/bench-record.sh [--size MiB] [--runs N] [--bs SIZE] [--direct]
# --direct reads with O_DIRECT, so every read of --bs bytes reaches the daemon as one request
# (one record each); without it the kernel merges reads into requests of up to 128 KiB.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=256; runs=7; bs=4k; iflag=
while [ $# -gt 0 ]; do
    case $1 in
        --size) size_mib=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --bs) bs=$2; shift 2 ;;
        --direct) iflag="iflag=direct"; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "bench-record: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-record: needs root" >&2; exit 1; }
. scripts/lib.sh
build_kplugfs
bench_work record
head -c $((size_mib << 20)) /dev/urandom > "$work/backing/data"
# The whole file fits in the block cache: reads measure the daemon, not the disk.
"$kplugfs" mount "$work/backing" "$work/mnt" --no-keep-plugins --no-kernel-cache --cache-size $((size_mib * 2))MiB
dd if="$work/mnt/data" of=/dev/null bs=1M status=none   # warm the block cache

one_run() { # off|on -> MiB/s
    [ "$1" = on ] && echo "start $work/trace.kplug" > "$work/mnt/.kplug/trace"
    local t0 t1
    t0=$(date +%s.%N)
    dd if="$work/mnt/data" of=/dev/null bs="$bs" $iflag status=none
    t1=$(date +%s.%N)
    [ "$1" = on ] && echo stop > "$work/mnt/.kplug/trace"
    python3 -c "print('%.1f' % ($size_mib / ($t1 - $t0)))"
}
off=(); on=()
for r in $(seq 1 "$runs"); do
    off+=("$(one_run off)"); on+=("$(one_run on)")
    echo "bench-record: run $r off ${off[-1]} MiB/s, on ${on[-1]} MiB/s" >&2
done
records=$(python3 -c "import json;print(json.load(open('$work/mnt/.kplug/trace'))['records'])")
dropped=$(python3 -c "import json;print(json.load(open('$work/mnt/.kplug/trace'))['dropped'])")
python3 - "${off[*]}" "${on[*]}" "$size_mib" "$bs" "$records" "$dropped" "${iflag:-buffered}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
mo, mn = statistics.median(off), statistics.median(on)
print(f"# warm reads of {sys.argv[3]} MiB with bs={sys.argv[4]} {sys.argv[7]} through the mount (--no-kernel-cache), MiB/s, median of {len(off)}")
print("| recording | MiB/s (min-max) |")
print("|---|---:|")
print(f"| off | {mo:.0f} ({min(off):.0f}-{max(off):.0f}) |")
print(f"| on | {mn:.0f} ({min(on):.0f}-{max(on):.0f}) |")
print(f"| cost | {100 * (1 - mn / mo):.1f} % |")
print(f"records in the last run: {sys.argv[5]}, dropped: {sys.argv[6]}")
PY
