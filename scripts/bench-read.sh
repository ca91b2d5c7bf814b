#!/usr/bin/env bash
# Read throughput through a kplugfs mount, next to a direct read of the backing file and to
# bindfs (a mature C FUSE passthrough) over the same directory, all in one run, cold and warm
# page cache, as medians of several runs and as ratios to the direct read.
#
# usage: scripts/bench-read.sh [--size MiB] [--runs N] [--runtime SECONDS] [--json FILE]
# Needs root (drop_caches, mounts), fio and bindfs (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=512; runs=3; runtime=5; json_out=""
while [ $# -gt 0 ]; do
    case $1 in
        --size) size_mib=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --runtime) runtime=$2; shift 2 ;;
        --json) json_out=$2; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "bench-read: unknown argument $1" >&2; exit 2 ;;
    esac
done
for t in fio bindfs; do command -v $t >/dev/null || { echo "bench-read: $t missing (run scripts/setup.sh)" >&2; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "bench-read: needs root (drop_caches, mounts)" >&2; exit 1; }

. scripts/lib.sh
build_kplugfs

work=$(mktemp -d /var/tmp/kplugfs-bench.XXXXXX)
backing=$work/backing; kmnt=$work/kplugfs; bmnt=$work/bindfs
mkdir -p "$backing" "$kmnt" "$bmnt"
cleanup() { "$kplugfs" umount "$kmnt" 2>/dev/null || true; umount "$bmnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo "bench-read: writing a ${size_mib} MiB test file" >&2
head -c $((size_mib << 20)) /dev/urandom > "$backing/data"
sync
"$kplugfs" mount "$backing" "$kmnt"
bindfs "$backing" "$bmnt"

# One fio run; prints MiB/s.
fio_run() { # path rw bs
    local extra=()
    [ "$2" = randread ] && extra=(--time_based --runtime="$runtime" --randrepeat=1)
    fio --name=b --filename="$1" --rw="$2" --bs="$3" --size="${size_mib}M" --ioengine=psync \
        --direct=0 --invalidate=0 --numjobs=1 --output-format=json "${extra[@]}" 2>/dev/null |
        python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"] / 2**20))'
}

declare -A paths=([native]="$backing/data" [bindfs]="$bmnt/data" [kplugfs]="$kmnt/data")
results=$work/results.tsv
: > "$results"
for pattern in "read 1M" "read 128k" "randread 4k" "randread 128k" "randread 1M"; do
    set -- $pattern
    for cache in cold warm; do
        for sys in native bindfs kplugfs; do
            for r in $(seq 1 "$runs"); do
                if [ $cache = cold ]; then sync; echo 3 > /proc/sys/vm/drop_caches; else fio_run "${paths[$sys]}" read 1M >/dev/null; fi
                v=$(fio_run "${paths[$sys]}" "$1" "$2")
                printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$cache" "$sys" "$v" >> "$results"
                echo "bench-read: $1 $2 $cache $sys run $r: $v MiB/s" >&2
            done
        done
    done
done

python3 - "$results" "$json_out" "$size_mib" "$runs" <<'PY'
import json, statistics, sys, platform, os
rows = [l.split('\t') for l in open(sys.argv[1]).read().splitlines()]
out_json, size, runs = sys.argv[2], sys.argv[3], sys.argv[4]
groups = {}
for rw, bs, cache, system, v in rows:
    groups.setdefault((rw, bs, cache), {}).setdefault(system, []).append(float(v))
print(f"# read throughput, MiB/s, median of {runs} runs (min-max); file {size} MiB; "
      f"{os.cpu_count()} cpus, kernel {platform.release()}")
print("| pattern | cache | native | bindfs | kplugfs | bindfs/native | kplugfs/native | kplugfs/bindfs |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
report = []
for (rw, bs, cache), by in groups.items():
    med = {s: statistics.median(v) for s, v in by.items()}
    spread = {s: f"{min(v):.0f}-{max(v):.0f}" for s, v in by.items()}
    n, b, k = med["native"], med["bindfs"], med["kplugfs"]
    print(f"| {'seq' if rw == 'read' else 'rand'} {bs} | {cache} | {n:.0f} ({spread['native']}) | {b:.0f} ({spread['bindfs']}) "
          f"| {k:.0f} ({spread['kplugfs']}) | {b/n:.2f} | {k/n:.2f} | {k/b:.2f} |")
    report.append(dict(pattern=rw, bs=bs, cache=cache, mib_s=med, runs=by))
if out_json:
    json.dump(report, open(out_json, "w"), indent=1)
PY
