#!/usr/bin/env bash
# The kplugfs benchmark: every scenario next to its baseline in the same run, as ratios,
# written to DIR/report.json (machine-readable) and DIR/report.md (tables + SVG charts).
#
# usage: scripts/bench.sh [--quick] [--out DIR] [--only LIST] [--runs N] [--docs FILE]
#   --quick      small sizes, short runs (under 5 minutes on 2 cores once built)
#   --out DIR    where report.json, report.md, the charts and raw logs go
#                (default: bench-out/<date>)
#   --only LIST  comma-separated subset of: reads,slow,hooks,sim,hotswap,smallfiles
#   --runs N     repetitions of every measured configuration (default 3)
#   --docs FILE  also write FILE (docs/benchmarks.md) from this run
#
# Scenarios (docs/benchmarks.md explains each one and shows the latest quick run):
#   reads       fio seq/random reads, 4 KiB / 128 KiB / 1 MiB, cold and warm: native,
#               bindfs, kplugfs (defaults), kplugfs --no-kernel-cache with the built-in LRU
#               and with each WASM eviction policy of `kplugfs policy list`
#   slow        --backend-latency 2ms: sequential scan and random 4 KiB reads under each
#               prefetch policy (none, built-in readahead, every WASM prefetch policy)
#   hooks       criterion fusefs/cache/benches/hook_call.rs: ns per hook, WASM vs native
#   sim         kplugfs sim req/s per eviction policy on traces/data/cloudPhysicsIO.vscsi
#               (and its 4 KiB split), WASM vs builtin:lru
#   hotswap     tests/benches/hotswap.rs (SWAPS=100 quick, 500 full)
#   smallfiles  create, stat, read N files of 4 KiB (10k quick, 100k full): native,
#               bindfs, kplugfs
# Needs root, /dev/fuse, fio, bindfs, python3 (scripts/setup.sh installs them).
# Honours CARGO_TARGET_DIR; KPLUGFS_BIN=PATH uses a prebuilt release kplugfs instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cmdline="scripts/bench.sh $*"
docs=""; quick=0; out=""; only="reads,slow,hooks,sim,hotswap,smallfiles"; runs=3
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; shift ;;
        --out) out=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --docs) docs=$2; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || out=bench-out/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"; out=$(cd "$out" && pwd)
want() { [[ ",$only," == *",$1,"* ]]; }
log() { printf 'bench: [%4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# ---- prerequisites -------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (drop_caches, mounts)"
[ -e /dev/fuse ] || die "/dev/fuse missing"
for t in fio bindfs python3 cargo taskset; do
    command -v $t >/dev/null || die "$t missing (run scripts/setup.sh)"
done

if [ $quick = 1 ]; then
    mode=quick
    read_mib=32; read_rt=300ms           # reads: file size, random-read time per run
    slow_mib=32; slow_io=1M              # slow backend: file size, random bytes read
    crit_args=(--warm-up-time 0.3 --measurement-time 1)
    swaps=100; nfiles=10000
    # Cut to fit 5 minutes: WASM eviction plugins warm only, once each (the baselines and
    # the built-in get every run); criterion once (its own confidence interval is the
    # spread); the 1.1 M-request simulator replay once; small files twice.
    wasm_caches="warm"; wasm_runs=1; hook_runs=1; split_runs=1; small_runs=2
else
    mode=full
    read_mib=512; read_rt=5s
    slow_mib=1024; slow_io=16M
    crit_args=(--warm-up-time 1 --measurement-time 5)
    swaps=500; nfiles=100000
    wasm_caches="cold warm"; wasm_runs=$runs; hook_runs=$runs; split_runs=$runs; small_runs=$runs
fi
cache_mib=$((read_mib / 2))              # reads: the block cache holds half the file
raw=$out/raw.jsonl; : > "$raw"
logs=$out/logs; mkdir -p "$logs"

# One JSON record per measurement: emit scenario k=v k=v ... (numbers stay numbers).
emit() {
    local line="{\"scenario\": \"$1\"" kv k v; shift
    for kv in "$@"; do
        k=${kv%%=*}; v=${kv#*=}
        if [[ $v =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then line+=", \"$k\": $v"; else line+=", \"$k\": \"$v\""; fi
    done
    echo "$line}" >> "$raw"
}

# ---- build ---------------------------------------------------------------------------
t_build=$SECONDS
. scripts/lib.sh
target_dir=$(cargo_target_dir)
if [ -n "${KPLUGFS_BIN:-}" ]; then
    kplugfs=$KPLUGFS_BIN   # a prebuilt release binary (must embed the current policies/)
    log "using KPLUGFS_BIN=$kplugfs (not building it)"
else
    log "cargo build --release -p kplugfs (output in $logs/build.log)"
    cargo build --release -p kplugfs > "$logs/build.log" 2>&1 || { tail -30 "$logs/build.log" >&2; die "build failed"; }
    kplugfs=$target_dir/release/kplugfs
fi
if want hooks; then
    log "building the hook_call bench"
    cargo bench -p kplug-cache --bench hook_call --no-run > "$logs/build-hooks.log" 2>&1 || { tail -30 "$logs/build-hooks.log" >&2; die "hook_call bench build failed"; }
fi
if want hotswap; then
    log "building the hotswap bench"
    cargo bench -p kplugfs-tests --bench hotswap --no-run > "$logs/build-hotswap.log" 2>&1 || { tail -30 "$logs/build-hotswap.log" >&2; die "hotswap bench build failed"; }
fi
build_s=$((SECONDS - t_build))
t_start=$SECONDS

# Policies by role, from the binary (new policies are picked up automatically).
"$kplugfs" policy list > "$logs/policy-list.txt"
policies_with() { awk -v r="$1" 'NR > 1 && $2 ~ r { print $1 }' "$logs/policy-list.txt"; }
mapfile -t evict_pols < <(policies_with eviction)
mapfile -t prefetch_pols < <(policies_with prefetch)
[ ${#evict_pols[@]} -gt 0 ] || die "no eviction policy in \`kplugfs policy list\`"
log "eviction policies: ${evict_pols[*]}; prefetch policies: ${prefetch_pols[*]}"

# ---- machine -------------------------------------------------------------------------
python3 - "$out/machine.json" "$mode" "$runs" <<'PY'
import json, os, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return "?"
json.dump({"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu, "mem_mib": mem,
           "loadavg_start": open("/proc/loadavg").read().split()[:3],
           "rustc": sh("rustc --version"), "fio": sh("fio --version"), "bindfs": sh("bindfs --version | head -1"),
           "git": sh("git rev-parse --short HEAD") + (" (dirty)" if sh("git status --porcelain") else ""),
           "mode": sys.argv[2], "runs": int(sys.argv[3])}, open(sys.argv[1], "w"), indent=1)
PY

# ---- mounts --------------------------------------------------------------------------
work=$(mktemp -d /var/tmp/kplugfs-bench.XXXXXX)
backing=$work/backing; kmnt=$work/kplugfs; bmnt=$work/bindfs; exp=$work/wasm
mkdir -p "$backing" "$kmnt" "$bmnt" "$exp"
cleanup() {
    "$kplugfs" umount "$kmnt" 2>/dev/null || umount -l "$kmnt" 2>/dev/null || true
    umount "$bmnt" 2>/dev/null || umount -l "$bmnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kumount() { mountpoint -q "$kmnt" && "$kplugfs" umount "$kmnt"; return 0; }
kmount() { kumount; "$kplugfs" mount "$backing" "$kmnt" --no-keep-plugins "$@"; }
# Load a built-in policy as a plugin: kload NAME ROLE [key=value ...]
kload() {
    local name=$1 role=$2; shift 2
    [ -f "$exp/$name.wasm" ] || "$kplugfs" policy export "$name" "$exp" >/dev/null
    if [ $# -gt 0 ]; then printf '%s\n' "$@" > "$kmnt/.kplug/plugins/$name.params"; fi
    cp "$exp/$name.wasm" "$kmnt/.kplug/plugins/" || die "loading plugin $name failed: $(cat "$kmnt/.kplug/status")"
    python3 - "$kmnt/.kplug/status" "$role" "$name" <<'PY' || die "plugin $name is not active as $role"
import json, sys
st = json.load(open(sys.argv[1]))
sys.exit(0 if st["active"][sys.argv[2]] == sys.argv[3] else 1)
PY
}
snap() { cp "$kmnt/.kplug/status" "$1"; }
# k=v words from .kplug/status; counters as the difference to snapshot $1 if given.
status_fields() {
    python3 - "$kmnt/.kplug/status" "${1:-}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2])) if sys.argv[2] else None
def d(sec, k):
    return s[sec][k] - (b[sec][k] if b else 0)
print(f"hits={d('cache','hits')} misses={d('cache','misses')} evictions={d('cache','evictions')} "
      f"faults={d('cache','faults')} pf_issued={d('prefetch','issued_blocks')} "
      f"pf_completed={d('prefetch','completed_blocks')} pf_used={d('prefetch','used_blocks')} "
      f"pf_wasted={d('prefetch','wasted_blocks')} pf_dropped={d('prefetch','dropped_blocks')} "
      f"backend_reads={d('backend','reads')} backend_bytes={d('backend','bytes')} "
      f"block_size={s['cache']['block_size']} "
      f"active={s['active']['eviction']}+{s['active']['admission']}+{s['active']['prefetch']}")
PY
}
# Drop the cached pages of the given files only (posix_fadvise DONTNEED through dd): cheaper
# than drop_caches and independent of what else the machine has cached.
dropfiles() { local f; for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none; done; }

# One fio run, pinned to the last CPU (the FUSE daemons are not pinned); prints
# "mib_s=X iops=Y io_bytes=Z" (from fio's terse output). Same fio options as
# scripts/bench-read.sh.
pin_cpu=$(( $(nproc) - 1 ))
fio_run() { # path rw bs size_mib [runtime (time-based random reads) | n:BYTES (random bytes)]
    local extra=()
    if [ "$2" = randread ]; then
        case $5 in
            n:*) extra=(--io_size="${5#n:}" --randrepeat=1) ;;
            *) extra=(--time_based --runtime="$5" --randrepeat=1) ;;
        esac
    fi
    taskset -c "$pin_cpu" fio --name=b --filename="$1" --rw="$2" --bs="$3" --size="${4}M" --ioengine=psync \
        --direct=0 --invalidate=0 --numjobs=1 --output-format=terse --terse-version=3 "${extra[@]}" 2>>"$logs/fio.err" |
        awk -F';' '{ printf "mib_s=%.2f iops=%s io_bytes=%d\n", $7 / 1024, $8, $6 * 1024 }'
}
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# ---- 1. reads ------------------------------------------------------------------------
if want reads; then
    t0=$SECONDS
    log "reads: writing a ${read_mib} MiB file; kplugfs block cache ${cache_mib} MiB (half the file)"
    head -c $((read_mib << 20)) /dev/urandom > "$backing/data"; sync
    bindfs "$backing" "$bmnt"
    systems=(native bindfs kplugfs kplugfs-nkc:builtin)
    for p in "${evict_pols[@]}"; do systems+=("kplugfs-nkc:$p"); done
    # Set up system $1 for a run; cold = fresh mount (empty block cache) + dropped caches.
    setup() { # system cache
        local sys=$1 kopts=(--cache-size "${cache_mib}MiB")
        case $sys in
            native|bindfs) ;;
            kplugfs) if [ "$2" = cold ] || ! mountpoint -q "$kmnt"; then kmount "${kopts[@]}"; fi ;;
            kplugfs-nkc:*)
                if [ "$2" = cold ] || ! mountpoint -q "$kmnt"; then
                    kmount "${kopts[@]}" --no-kernel-cache
                    [ "${sys#*:}" = builtin ] || kload "${sys#*:}" eviction
                fi ;;
        esac
    }
    path_of() { case $1 in native) echo "$backing/data" ;; bindfs) echo "$bmnt/data" ;; *) echo "$kmnt/data" ;; esac; }
    for sys in "${systems[@]}"; do
        kumount
        for pattern in "read 4k" "read 128k" "read 1M" "randread 4k" "randread 128k" "randread 1M"; do
            set -- $pattern
            caches="cold warm"; n=$runs
            if [[ $sys == kplugfs-nkc:* && $sys != kplugfs-nkc:builtin ]]; then caches=$wasm_caches; n=$wasm_runs; fi
            for cache in $caches; do
                for r in $(seq 1 "$n"); do
                    setup "$sys" $cache
                    p=$(path_of "$sys")
                    # cold: the file's pages dropped, below (backing) and above (the mount).
                    if [ $cache = cold ]; then dropfiles "$backing/data" "$p"; else fio_run "$p" read 1M "$read_mib" 0 >/dev/null; fi
                    if [[ $sys == kplugfs* ]]; then snap "$work/st0.json"; fi
                    res=$(fio_run "$p" "$1" "$2" "$read_mib" "$read_rt")
                    st=""
                    if [[ $sys == kplugfs* ]]; then st=$(status_fields "$work/st0.json"); fi
                    emit reads system="$sys" rw="$1" bs="$2" cache=$cache run="$r" $res $st
                    log "reads: $sys $1 $2 $cache run $r: $(field mib_s "$res") MiB/s"
                done
            done
        done
    done
    kumount; umount "$bmnt"
    rm -f "$backing/data"
    emit timing phase=reads seconds=$((SECONDS - t0))
fi

# ---- 2. slow backend, prefetch -------------------------------------------------------
if want slow; then
    t0=$SECONDS
    log "slow: ${slow_mib} MiB file, --backend-latency 2ms --no-kernel-cache --kernel-hints off"
    head -c $((slow_mib << 20)) /dev/urandom > "$backing/slow"; sync
    variants=(none builtin:readahead)
    for p in "${prefetch_pols[@]}"; do variants+=("$p"); done
    for v in "${variants[@]}"; do
        for pattern in "read 1M" "randread 4k"; do
            set -- $pattern
            for r in $(seq 1 "$runs"); do
                kmount --backend-latency 2ms --no-kernel-cache --kernel-hints off
                case $v in
                    builtin:readahead) ;;
                    # "none": the stride plugin with a confirmation count it never reaches.
                    none) kload stride prefetch confirm=4294967295 ;;
                    *) kload "$v" prefetch ;;
                esac
                dropfiles "$backing/slow"
                res=$(fio_run "$kmnt/slow" "$1" "$2" "$slow_mib" "n:$slow_io")
                sleep 0.2   # let in-flight prefetches land before reading the counters
                st=$(status_fields)
                emit slow variant="$v" rw="$1" bs="$2" run="$r" $res $st
                log "slow: $v $1 $2 run $r: $(field mib_s "$res") MiB/s, prefetch issued $(field pf_issued "$st") used $(field pf_used "$st") blocks"
            done
        done
    done
    kumount
    rm -f "$backing/slow"
    emit timing phase=slow seconds=$((SECONDS - t0))
fi

# ---- 3. hook cost (criterion) --------------------------------------------------------
if want hooks; then
    t0=$SECONDS
    log "hooks: cargo bench -p kplug-cache --bench hook_call -- ${crit_args[*]} (x$hook_runs)"
    crit=$target_dir/criterion
    for r in $(seq 1 "$hook_runs"); do
        rm -rf "$crit/hook" "$crit/core"
        cargo bench -p kplug-cache --bench hook_call -- "${crit_args[@]}" > "$logs/hook_call.$r.log" 2>&1 ||
            { tail -20 "$logs/hook_call.$r.log" >&2; die "hook_call bench failed"; }
        for f in "$crit"/hook/*/new/estimates.json "$crit"/core/*/new/estimates.json; do
            [ -f "$f" ] || continue
            name=$(basename "$(dirname "$(dirname "$f")")"); group=$(basename "$(dirname "$(dirname "$(dirname "$f")")")")
            ns=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["median"]; c=m["confidence_interval"]; print(m["point_estimate"], c["lower_bound"], c["upper_bound"])' "$f")
            set -- $ns
            emit hooks group="$group" bench="$name" run="$r" ns_per_iter="$1" ci_lo="$2" ci_hi="$3"
        done
        log "hooks: run $r done"
    done
    emit timing phase=hooks seconds=$((SECONDS - t0))
fi

# ---- 4. simulator throughput ---------------------------------------------------------
if want sim; then
    t0=$SECONDS
    trace=traces/data/cloudPhysicsIO.vscsi
    [ -f "$trace" ] || die "$trace missing"
    pols=$(IFS=,; echo "builtin:lru,${evict_pols[*]}")
    for split in none 4096; do
        extra=(); [ $split = none ] || extra=(--split-blocks "$split")
        n=$runs; [ $split = none ] || n=$split_runs
        for r in $(seq 1 "$n"); do
            # One job at a time: req/s of one policy on one core, not sharing it.
            "$kplugfs" sim --trace "$trace" --policy "$pols" --cache-size 0.1 --json --jobs 1 "${extra[@]}" \
                2>>"$logs/sim.err" > "$logs/sim.$split.$r.jsonl" || { tail "$logs/sim.err" >&2; die "kplugfs sim failed"; }
            while IFS= read -r line; do
                emit sim split="$split" run="$r" $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(f"{k}={d[k]}" for k in ("policy","requests","miss_ratio","requests_per_sec","faults")))' "$line")
            done < "$logs/sim.$split.$r.jsonl"
            log "sim: split $split run $r done"
        done
    done
    emit timing phase=sim seconds=$((SECONDS - t0))
fi

# ---- 5. hot swap ---------------------------------------------------------------------
if want hotswap; then
    t0=$SECONDS
    log "hotswap: SWAPS=$swaps cargo bench -p kplugfs-tests --bench hotswap"
    SWAPS=$swaps cargo bench -p kplugfs-tests --bench hotswap > "$logs/hotswap.log" 2>"$logs/hotswap.err" ||
        { tail -20 "$logs/hotswap.err" >&2; die "hotswap bench failed"; }
    python3 - "$logs/hotswap.log" "$swaps" >> "$raw" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
rec = {"scenario": "hotswap", "swaps": int(sys.argv[2])}
for key, pat in (("close_us", r"\| close\(\)[^|]*\| (\d+) \| (\d+) \| (\d+) \|"),
                 ("swap_us", r"\| close\(\) start -> first decision[^|]*\| (\d+) \| (\d+) \| (\d+) \|")):
    m = re.search(pat, text)
    if m:
        rec[key] = dict(zip(("median", "p99", "max"), map(int, m.groups())))
m = re.search(r"reads during swaps: (\d+), failed or wrong: (\d+); swaps without a decision within 5 s: (\d+)", text)
if m:
    rec["reads"], rec["bad_reads"], rec["stuck"] = map(int, m.groups())
print(json.dumps(rec))
PY
    log "hotswap: done"
    emit timing phase=hotswap seconds=$((SECONDS - t0))
fi

# ---- 6. many small files -------------------------------------------------------------
if want smallfiles; then
    t0=$SECONDS
    log "smallfiles: $nfiles files of 4 KiB: native, bindfs, kplugfs"
    bindfs "$backing" "$bmnt"
    kmount
    for r in $(seq 1 "$small_runs"); do
        for sys in native bindfs kplugfs; do
            case $sys in native) d=$backing ;; bindfs) d=$bmnt ;; kplugfs) d=$kmnt ;; esac
            mkdir "$d/small"
            res=$(taskset -c "$pin_cpu" python3 scripts/bench/smallfiles.py "$d/small" "$nfiles" 4096 --drop-caches)
            rm -rf "$d/small"
            emit smallfiles system=$sys run="$r" $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(f"{k}={v}" for k,v in d.items()))' "$res")
            log "smallfiles: $sys run $r: $res"
        done
    done
    kumount; umount "$bmnt"
    emit timing phase=smallfiles seconds=$((SECONDS - t0))
fi

total_s=$((SECONDS - t_start))
log "measurements took ${total_s}s (build ${build_s}s); writing the report"
python3 scripts/bench/report.py --raw "$raw" --machine "$out/machine.json" --out "$out" \
    --command "$cmdline" \
    ${docs:+--docs "$docs"} --total-seconds "$total_s" --build-seconds "$build_s" \
    --params "read_mib=$read_mib cache_mib=$cache_mib read_rt=$read_rt slow_mib=$slow_mib slow_io=$slow_io swaps=$swaps nfiles=$nfiles pin_cpu=$pin_cpu"
log "wrote $out/report.md and $out/report.json"
