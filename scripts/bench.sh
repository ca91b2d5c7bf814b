#!/usr/bin/env bash
# The kplugfs benchmark: every scenario next to its baseline in the same run, as ratios,
# written to DIR/report.json (machine-readable) and DIR/report.md (tables + SVG charts).
#
# usage: scripts/bench.sh [--quick] [--out DIR] [--only LIST] [--runs N] [--docs FILE]
#                         [--s3-systems LIST] [--s3-rtts LIST]
#   --quick      small sizes, short runs (under 5 minutes on 2 cores once built, s3 apart)
#   --out DIR    where report.json, report.md, the charts and raw logs go
#                (default: bench-out/<date>)
#   --only LIST  comma-separated subset of: reads,slow,hooks,sim,hotswap,smallfiles,writes,stall,s3,
#                simpeer,views,probes,scopes,adaptive
#   --runs N     repetitions of every measured configuration (default 3; s3: at most 2)
#   --docs FILE  also write FILE (docs/benchmarks.md) from this run; a run of some
#                scenarios replaces only their sections of FILE
#   --s3-systems LIST  s3 only: a subset of kplugfs,kplugfs+s3window,kplugfs+scanboost,
#                kplugfs-noprefetch,s3fs,rclone,mountpoint-s3 (default: all)
#   --s3-rtts LIST     s3 only: added round-trip times in ms (default: 0,20)
#   --s3-rows LIST     s3 only: a subset of seq,rand,warm,small,write (default: all)
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
#   hotswap     tests/benches/hotswap.rs (SWAPS=100 quick, 500 full): never-seen plugins
#               (--plugin-code tiered and optimized) and seen-before ones, close() to first
#               decision and, tiered, to the optimized code serving
#   smallfiles  create, stat, read N files of 4 KiB (10k quick, 100k full): native,
#               bindfs, kplugfs
#   writes      fio writes into a new file ending with fsync: sequential 4 KiB / 128 KiB /
#               1 MiB and random 4 KiB, buffered and O_DIRECT: native, bindfs, kplugfs
#   stall       tests/benches/stall.rs: the longest read under 8 readers while plugins
#               initialise slowly or hooks are slow (STALL_SECS=2 quick, 5 full)
#   s3          an S3 bucket (the project's Ceph RGW, scripts/s3/ceph-s3.sh, started if it
#               is not running, never stopped) through kplugfs (defaults, +s3window,
#               +scanboost, prefetch off), s3fs, rclone --vfs-cache-mode full and
#               mountpoint-s3 (scripts/bench/mountpoint-peer, built here): cold sequential
#               and random reads of a 1 GiB object, warm re-reads of 256 MiB, listing and
#               reading 10,000 objects of 16 KiB, writing a new 256 MiB object (not
#               mountpoint-s3: its writes fail on this RGW); directly and at 20 ms of added round-trip
#               time through tests/delay-proxy (about 25 min; quick: small objects, 5 min)
#   simpeer     kplugfs sim (each WASM eviction policy, and builtin:lru) against libCacheSim's
#               cachesim running its native implementation of the same policy: same
#               oracleGeneral file, cache 10% of its unique ids (objects, unit sizes), one
#               thread, both pinned to one CPU, whole-process wall time, miss ratios compared
#               (cachesim built once from the PyPI sdist of libcachesim into
#               KPLUG_CACHESIM_DIR, default /var/cache/kplugfs/cachesim). Traces:
#               KPLUG_SIMPEER_TRACES (comma-separated oracleGeneral files), default
#               traces/data/cloudPhysicsIO.oracleGeneral.bin, its 4 KiB and 1 KiB splits
#               (1.1 M and 4.2 M requests) and cache2k's orm-busy from traces/heldout/ (5 M
#               requests, mostly hits), made here; about 4 min with --runs 3
#   adaptive    the `adaptive` governor against every fixed eviction policy, each (trace,
#               size) cell replayed by `kplugfs sim` at 1, 5, 10 and 25 % of the unique ids
#               (scripts/adaptive-check.py): the repo's real traces, the held-out traces of
#               traces/heldout/ (not in --quick) and the phase-changing trace of
#               scripts/phase-trace.py; the difference to the best fixed policy per cell and
#               the cells within 0.005 and 0.01 of it (deterministic: one run; about 2 min)
#   views       a CSV log (64 MiB quick, 1 GiB full) with a pattern on 1 % of its lines on a
#               slow store (--backend-latency 1ms, no kernel cache), each command on a fresh
#               mount: `grep -c` through the plain mount against `wc -l` of the grep view,
#               `cut -d, -f1,3` against `cat` of the cut view, `zcat` of its .gz against `cat`
#               of the gunzip view (time, bytes delivered to user space); and the transforms'
#               throughput, WASM against the same Rust code native (tests/benches/transform.rs)
#   probes      a flood of probe events through a real mount: fio random 4 KiB O_DIRECT reads
#               (one job, psync, 5 s quick, 20 s full) of a 64 MiB file held warm in the block
#               cache (every read is a FUSE request and a cache hit),
#               with no probe, one probe taking every event (`bottleneck` + kinds it skips),
#               the four FUSE/cache probes, and all five shipped probes: IOPS against no
#               probe, events delivered and dropped (.kplug/stats)
#   scopes      the cache_ext experiment: two workloads in two subtrees of one mount on a slow
#               store (--backend-latency 2ms, --no-kernel-cache, prefetch off) sharing one block
#               cache C (32 MiB quick, 64 MiB full; 32 KiB blocks): hot/ (C/2) read at random by
#               one fio job, zipf:1.2, and scan/ (3C/2 in 4 files) read over and over as one
#               sequential stream by 4 threads (scripts/bench/scopes.py), both at once (10 s
#               quick, 25 s full; KPLUG_SCOPES_SECS), each case on a fresh mount:
#               one global policy (each WASM eviction policy) against pairs of policies in the
#               scopes hot and scan (.kplug/scopes/; KPLUG_SCOPES_PAIRS=HOT/SCAN@SHARE,..., default
#               lru/lirs@60%,lru/fifo@60%,arc/lirs@60%,sieve/lirs@60%,s3fifo/lirs@60%,
#               arc/lirs@75%,sieve/lirs@75%, SHARE the hot scope's); per workload MiB/s and hit
#               ratio (the hot-files probe, in every case), combined, and the issue's target
#               (+30 %); scoped cases are skipped, saying so, when the binary has no .kplug/scopes
#               (16 cases, about 7 min a run, full)
# Needs root, /dev/fuse, fio, bindfs, python3; s3 also s3fs, rclone, cmake, libfuse3-dev and
# the Ceph RGW packages; simpeer cmake, a C compiler, libglib2.0-dev, libzstd-dev and pip
# (scripts/setup.sh installs them all).
# Honours CARGO_TARGET_DIR; KPLUGFS_BIN=PATH uses a prebuilt release kplugfs instead of building;
# KPLUG_TRANSFORM_BENCH=PATH a prebuilt tests/benches/transform.rs (views) likewise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cmdline="scripts/bench.sh $*"
docs=""; quick=0; out=""; only="reads,slow,hooks,sim,hotswap,smallfiles,writes,stall,s3,simpeer,views,probes,scopes,adaptive"; runs=3
s3_systems="kplugfs,kplugfs+s3window,kplugfs+scanboost,kplugfs-noprefetch,s3fs,rclone,mountpoint-s3"; s3_rtts="0,20"; s3_rows="seq,rand,warm,small,write"
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; shift ;;
        --out) out=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --docs) docs=$2; shift 2 ;;
        --s3-systems) s3_systems=$2; shift 2 ;;
        --s3-rtts) s3_rtts=$2; shift 2 ;;
        --s3-rows) s3_rows=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
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
if want s3; then
    for t in s3fs rclone fusermount radosgw cmake curl; do
        command -v $t >/dev/null || die "s3: $t missing (scripts/setup.sh installs it; or leave s3 out of --only)"
    done
    pkg-config --exists fuse3 || die "s3: libfuse3-dev missing (the mountpoint-s3 peer links it; scripts/setup.sh)"
fi

if [ $quick = 1 ]; then
    mode=quick
    read_mib=32; read_rt=300ms           # reads: file size, random-read time per run
    slow_mib=32; slow_io=1M              # slow backend: file size, random bytes read
    crit_args=(--warm-up-time 0.3 --measurement-time 1)
    swaps=100; nfiles=10000; write_mib=64; stall_secs=2
    # Cut to fit 5 minutes: WASM eviction plugins warm only, once each (the baselines and
    # the built-in get every run); criterion once (its own confidence interval is the
    # spread); the 1.1 M-request simulator replay once; small files twice.
    wasm_caches="warm"; wasm_runs=1; hook_runs=1; split_runs=1; small_runs=2
    # s3: object sizes (MiB), small objects, fixed random-read counts per RTT (0 ms / more),
    # the time cap of a sequential read (s), runs.
    s3_big_mib=128; s3_ws_mib=32; s3_nsmall=1000; s3_small_bytes=16384
    s3_rand_n0=500; s3_rand_n=100; s3_seq_cap=15; s3_runs=1; s3_write_mib=64
else
    mode=full
    read_mib=512; read_rt=5s
    slow_mib=1024; slow_io=16M
    crit_args=(--warm-up-time 1 --measurement-time 5)
    swaps=500; nfiles=100000; write_mib=512; stall_secs=5
    wasm_caches="cold warm"; wasm_runs=$runs; hook_runs=$runs; split_runs=$runs; small_runs=$runs
    s3_big_mib=1024; s3_ws_mib=256; s3_nsmall=10000; s3_small_bytes=16384
    s3_rand_n0=2000; s3_rand_n=250; s3_seq_cap=30; s3_runs=$(( runs < 2 ? runs : 2 )); s3_write_mib=256
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
if want s3; then
    log "building the delaying proxy (tests/delay-proxy)"
    cargo build --release -p kplug-delay-proxy > "$logs/build-proxy.log" 2>&1 || { tail -30 "$logs/build-proxy.log" >&2; die "delay proxy build failed"; }
    proxy_bin=$target_dir/release/kplug-delay-proxy
    # The mountpoint-s3 peer: its own workspace and target dir (6 min cold, cached after).
    mp_target=${KPLUG_MOUNTPOINT_TARGET:-/var/cache/kplugfs/mountpoint-peer}
    log "building the mountpoint-s3 peer (scripts/bench/mountpoint-peer, target $mp_target; output in $logs/build-mountpoint.log)"
    cargo build --release --locked -j 2 --manifest-path scripts/bench/mountpoint-peer/Cargo.toml \
        --target-dir "$mp_target" > "$logs/build-mountpoint.log" 2>&1 ||
        { tail -30 "$logs/build-mountpoint.log" >&2; die "mountpoint-s3 peer build failed"; }
    mp_bin=$mp_target/release/mount-s3-peer
fi
if want views && [ -z "${KPLUG_TRANSFORM_BENCH:-}" ]; then
    log "building the transform bench"
    cargo bench -p kplugfs-tests --bench transform --no-run > "$logs/build-transform.log" 2>&1 || { tail -30 "$logs/build-transform.log" >&2; die "transform bench build failed"; }
fi
if want stall; then
    log "building the stall bench"
    cargo bench -p kplugfs-tests --bench stall --no-run > "$logs/build-stall.log" 2>&1 || { tail -30 "$logs/build-stall.log" >&2; die "stall bench build failed"; }
fi
if want simpeer; then
    # libCacheSim's cachesim from the C sources of the PyPI sdist of libcachesim (a pinned
    # version), built once and kept: rebuilt only when the binary is missing.
    cachesim_ver=0.3.5
    cachesim_dir=${KPLUG_CACHESIM_DIR:-/var/cache/kplugfs/cachesim}
    cachesim=$cachesim_dir/libcachesim-$cachesim_ver/cachesim
    if [ -x "$cachesim" ]; then
        log "simpeer: using $cachesim (built before; delete it to rebuild)"
    else
        for t in cmake cc c++ make pkg-config; do
            command -v $t >/dev/null || die "simpeer: $t missing (scripts/setup.sh installs it; or leave simpeer out of --only)"
        done
        pkg-config --exists glib-2.0 || die "simpeer: libglib2.0-dev missing (scripts/setup.sh installs it; or leave simpeer out of --only)"
        cs_build=$cachesim_dir/build
        rm -rf "$cs_build"; mkdir -p "$cs_build"
        log "simpeer: pip download --no-binary :all: libcachesim==$cachesim_ver (its sdist, ~80 MB; output in $logs/build-cachesim.log)"
        python3 -m pip download --no-binary :all: --no-deps "libcachesim==$cachesim_ver" -d "$cs_build" \
            > "$logs/build-cachesim.log" 2>&1 || { tail -20 "$logs/build-cachesim.log" >&2; die "simpeer: downloading the libcachesim sdist failed"; }
        log "simpeer: building cachesim with cmake (Release, libCacheSim's C sources in the sdist; about a minute on 2 cores)"
        { tar xzf "$cs_build/libcachesim-$cachesim_ver.tar.gz" -C "$cs_build" &&
            cmake -S "$cs_build/libcachesim-$cachesim_ver/src/libCacheSim" -B "$cs_build/cmake" \
                -DCMAKE_BUILD_TYPE=Release -DENABLE_TESTS=OFF &&
            cmake --build "$cs_build/cmake" --target cachesim -j "$(nproc)"; } >> "$logs/build-cachesim.log" 2>&1 ||
            { tail -20 "$logs/build-cachesim.log" >&2; die "simpeer: building cachesim failed (see $logs/build-cachesim.log)"; }
        mkdir -p "$(dirname "$cachesim")"
        install -m 755 "$cs_build/cmake/bin/cachesim" "$cachesim.tmp" && mv "$cachesim.tmp" "$cachesim"
        rm -rf "$cs_build"
        log "simpeer: built $cachesim"
    fi
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
s3_cleanup() { :; }   # redefined by the s3 scenario
cleanup() {
    s3_cleanup
    "$kplugfs" umount "$kmnt" 2>/dev/null || umount -l "$kmnt" 2>/dev/null || true
    umount "$bmnt" 2>/dev/null || umount -l "$bmnt" 2>/dev/null || true
    # Never through a mount left behind (an S3 mount would lose its objects).
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kumount() { mountpoint -q "$kmnt" && "$kplugfs" umount "$kmnt"; return 0; }
kmount() { kumount; "$kplugfs" mount "$backing" "$kmnt" --no-keep-plugins "$@"; }
# Load a built-in policy as a plugin: kload NAME ROLE [key=value ...]
kload() { kload_at "$kmnt" "$@"; }
kload_at() { # mount name role [key=value ...]
    local m=$1 name=$2 role=$3; shift 3
    [ -f "$exp/$name.wasm" ] || "$kplugfs" policy export "$name" "$exp" >/dev/null
    if [ $# -gt 0 ]; then printf '%s\n' "$@" > "$m/.kplug/plugins/$name.params"; fi
    cp "$exp/$name.wasm" "$m/.kplug/plugins/" || die "loading plugin $name failed: $(cat "$m/.kplug/status")"
    python3 - "$m/.kplug/status" "$role" "$name" <<'PY' || die "plugin $name is not active as $role"
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
        rm -rf "$crit/hook" "$crit/core" "$crit/instance" "$crit/swap" "$crit/compile"
        cargo bench -p kplug-cache --bench hook_call -- "${crit_args[@]}" > "$logs/hook_call.$r.log" 2>&1 ||
            { tail -20 "$logs/hook_call.$r.log" >&2; die "hook_call bench failed"; }
        for f in "$crit"/hook/*/new/estimates.json "$crit"/core/*/new/estimates.json "$crit"/instance/*/new/estimates.json "$crit"/swap/*/new/estimates.json "$crit"/compile/*/new/estimates.json; do
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
for kind, what in (("fresh", "never seen, tiered"), ("fresh_optimized", "never seen, --plugin-code optimized"),
                   ("seen", "seen before")):
    for key, pat in (("close_us", r"close\(\) of the copied plugin[^|]*\| (\d+) \| (\d+) \| (\d+) \|"),
                     ("swap_us", r"close\(\) start -> first decision[^|]*\| (\d+) \| (\d+) \| (\d+) \|"),
                     ("optimized_us", r"close\(\) start -> optimized code serving[^|]*\| (\d+) \| (\d+) \| (\d+) \|")):
        m = re.search(r"\| " + re.escape(what) + ": " + pat, text)
        if m:
            rec.setdefault(kind, {})[key] = dict(zip(("median", "p99", "max"), map(int, m.groups())))
m = re.search(r"reads during swaps: (\d+), failed or wrong: (\d+); swaps without a decision within 5 s: (\d+)", text)
if m:
    rec["reads"], rec["bad_reads"], rec["stuck"] = map(int, m.groups())
print(json.dumps(rec))
PY
    # The readers' side of a swap on a large cache: 262,144 resident blocks, the replay of
    # every one into the new instance (scripts/bench/swapstall.py).
    [ -f "$exp/lru.wasm" ] || "$kplugfs" policy export lru "$exp" >/dev/null
    for r in $(seq 1 "$runs"); do
        mkdir -p "$work/swapstall"
        res=$(python3 scripts/bench/swapstall.py "$kplugfs" "$exp/lru.wasm" "$work/swapstall") ||
            die "swapstall failed"
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(scenario="swapstall", run=int(sys.argv[2])); print(json.dumps(d))' "$res" "$r" >> "$raw"
        log "hotswap: large cache run $r: $res"
    done
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

# ---- 7. object store (S3) ------------------------------------------------------------
# The same bucket and objects through every system, each row on a fresh mount (cold: no
# page cache, no cache of the system's own), directly and through the delaying proxy.
if want s3; then
    t0=$SECONDS
    read -r l1 l5 l15 _ < /proc/loadavg
    emit s3load load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    if [ "${l1%.*}" -ge "$(nproc)" ]; then
        log "s3: load average $l1 $l5 $l15 on $(nproc) CPUs: the machine is busy, figures will be noisy"
    fi
    # The project's RGW: reused if it runs (others may use it; it is never stopped here).
    scripts/s3/ceph-s3.sh start > "$logs/ceph-start.log" 2>&1 ||
        { tail "$logs/ceph-start.log" >&2; die "s3: the Ceph RGW did not start"; }
    eval "$(scripts/s3/ceph-s3.sh env)"
    s3_direct=$AWS_ENDPOINT_URL; s3_hostport=${s3_direct#http://}
    bucket=${KPLUG_S3_BENCH_BUCKET:-kplug-s3bench}; s3prefix=$mode
    s3dir=$work/s3; s3mnt=$s3dir/mnt; mkdir -p "$s3mnt" "$logs/s3"
    IFS=, read -ra s3sys <<< "$s3_systems"
    IFS=, read -ra s3rtt <<< "$s3_rtts"
    proxy_pid=""; mp_pid=""; s3mounted=""; ep=""
    log "s3: s3://$bucket/$s3prefix/ on $s3_direct; systems ${s3sys[*]}; added RTT ${s3rtt[*]} ms; $s3_runs run(s)"

    # rclone with the remote "kplug" defined in the environment (AWS_CA_BUNDLE, set on some
    # machines, makes rclone 1.60 fail even for plain http).
    rcl() { # endpoint rclone-args...
        local e=$1; shift
        env -u AWS_CA_BUNDLE RCLONE_CONFIG_KPLUG_TYPE=s3 RCLONE_CONFIG_KPLUG_PROVIDER=Ceph \
            RCLONE_CONFIG_KPLUG_ENDPOINT="$e" RCLONE_CONFIG_KPLUG_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
            RCLONE_CONFIG_KPLUG_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" rclone "$@"
    }

    # ---- the objects: uploaded once per mode, reused while they are in place
    s3have() { # subdir count bytes: whether s3://bucket/prefix/subdir/ holds exactly that
        local got
        got=$(rcl "$s3_direct" size --json "kplug:$bucket/$s3prefix/$1" 2>/dev/null) || return 1
        python3 -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(0 if (d["count"], d["bytes"]) == (int(sys.argv[2]), int(sys.argv[3])) else 1)' "$got" "$2" "$3"
    }
    rcl "$s3_direct" mkdir "kplug:$bucket" >> "$logs/s3/upload.log" 2>&1 || die "s3: cannot create bucket $bucket"
    for spec in "big 1 $((s3_big_mib << 20))" "ws 1 $((s3_ws_mib << 20))" "small $s3_nsmall $((s3_nsmall * s3_small_bytes))"; do
        set -- $spec
        if s3have "$1" "$2" "$3"; then
            log "s3: s3://$bucket/$s3prefix/$1/ in place ($2 objects, $3 bytes)"; continue
        fi
        log "s3: uploading s3://$bucket/$s3prefix/$1/ ($2 objects, $3 bytes)"
        rcl "$s3_direct" purge "kplug:$bucket/$s3prefix/$1" >> "$logs/s3/upload.log" 2>&1 || true
        src=$s3dir/src/$1; mkdir -p "$src"
        case $1 in
            big|ws) head -c "$3" /dev/urandom > "$src/obj" ;;
            small) python3 -c 'import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    open(os.path.join(d, f"f{i:05d}"), "wb").write(os.urandom(size))' "$src" "$s3_nsmall" "$s3_small_bytes" ;;
        esac
        # One PUT per object (no multipart below 5 GiB): nothing depends on RGW's multipart ETags.
        rcl "$s3_direct" copy "$src" "kplug:$bucket/$s3prefix/$1" --s3-upload-cutoff 5Gi \
            --s3-disable-checksum --transfers 32 --checkers 32 >> "$logs/s3/upload.log" 2>&1 ||
            die "s3: uploading $1 failed (see $logs/s3/upload.log)"
        rm -rf "$src"
        s3have "$1" "$2" "$3" || die "s3: s3://$bucket/$s3prefix/$1/ does not hold what was uploaded"
    done

    # ---- mounts
    printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$s3dir/s3fs.passwd"
    chmod 600 "$s3dir/s3fs.passwd"
    s3mount() { # system endpoint
        local sys=$1 e=$2 i
        s3mounted=$sys
        case $sys in
            kplugfs*)
                "$kplugfs" mount "s3://$bucket/$s3prefix" "$s3mnt" --endpoint "$e" \
                    --history-db "$s3dir/history.db" --log-file "$logs/s3/kplugfs.log"
                case $sys in
                    kplugfs+s3window) kload_at "$s3mnt" s3window prefetch ;;
                    kplugfs+scanboost) kload_at "$s3mnt" scanboost governor ;;
                    # Prefetch off: a prefetch policy that never asks (no mount option turns
                    # it off; --cache-size 0 would drop the block cache as well).
                    kplugfs-noprefetch) kload_at "$s3mnt" stride prefetch confirm=4294967295 ;;
                esac ;;
            s3fs)
                s3fs "$bucket:/$s3prefix" "$s3mnt" -o url="$e" -o use_path_request_style \
                    -o passwd_file="$s3dir/s3fs.passwd" -o logfile="$logs/s3/s3fs.log" ;;
            rclone)
                rm -rf "$s3dir/rclone-cache"
                rcl "$e" mount "kplug:$bucket/$s3prefix" "$s3mnt" --vfs-cache-mode full \
                    --cache-dir "$s3dir/rclone-cache" --daemon --log-file "$logs/s3/rclone.log" ;;
            mountpoint-s3)
                "$mp_bin" "s3://$bucket/$s3prefix/" "$s3mnt" --endpoint-url "$e" \
                    --log-file "$logs/s3/mountpoint.log" > /dev/null 2>> "$logs/s3/mountpoint.log" &
                mp_pid=$! ;;
            *) die "s3: unknown system $sys (see --help)" ;;
        esac
        for i in $(seq 1 300); do mountpoint -q "$s3mnt" && return 0; sleep 0.1; done
        die "s3: $sys did not mount (logs in $logs/s3)"
    }
    s3umount() {
        [ -n "$s3mounted" ] || return 0
        if mountpoint -q "$s3mnt"; then
            case $s3mounted in
                kplugfs*) "$kplugfs" umount "$s3mnt" || umount -l "$s3mnt" ;;
                *) fusermount -u "$s3mnt" 2>/dev/null || { sleep 1; fusermount -u "$s3mnt"; } || fusermount -uz "$s3mnt" ;;
            esac
        fi
        if [ -n "$mp_pid" ]; then wait "$mp_pid" 2>/dev/null || true; mp_pid=""; fi
        s3mounted=""
    }
    s3_cleanup() {
        s3umount || true
        if [ -n "$mp_pid" ]; then kill "$mp_pid" 2>/dev/null || true; wait "$mp_pid" 2>/dev/null || true; fi
        if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; fi
        return 0
    }
    # The endpoint at an added round-trip time of $1 ms, in $ep: the server itself for 0,
    # else a delaying proxy with half of it each way (20 ms: --delay 10ms).
    s3endpoint() {
        if [ -n "$proxy_pid" ]; then kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=""; fi
        if [ "$1" = 0 ]; then ep=$s3_direct; return; fi
        local half i
        half=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) / 2:g}ms")' "$1")
        : > "$s3dir/proxy.out"
        rm -f "$s3dir/proxy.json"
        "$proxy_bin" --listen 127.0.0.1:0 --to "$s3_hostport" --delay "$half" --stats-file "$s3dir/proxy.json" \
            > "$s3dir/proxy.out" 2>> "$logs/s3/proxy.log" &
        proxy_pid=$!
        for i in $(seq 1 100); do grep -q listening "$s3dir/proxy.out" && break; sleep 0.05; done
        ep=http://$(sed -n 's/.*listening on \([^,]*\),.*/\1/p' "$s3dir/proxy.out")
        [ "$ep" != http:// ] || die "s3: the delay proxy did not start"
    }

    # ---- measurements
    # fio, one job, psync, through the page cache; reads stop at io_bytes or after cap_s.
    s3fio() { # path rw bs size_mib io_bytes cap_s -> mib_s= iops= io_bytes= lat_us= (mean)
        taskset -c "$pin_cpu" fio --name=s3 --filename="$1" --rw="$2" --bs="$3" --size="${4}M" \
            --io_size="$5" --runtime="$6" --ioengine=psync --direct=0 --invalidate=0 --numjobs=1 \
            --randrepeat=1 --randseed=20261204 --readonly --output-format=terse --terse-version=3 2>>"$logs/fio.err" |
            awk -F';' '{ printf "mib_s=%.2f iops=%s io_bytes=%d lat_us=%.0f\n", $7 / 1024, $8, $6 * 1024, $40 }'
    }
    # kplugfs only: .kplug/stats kept in the logs; k=v of its store requests and prefetch.
    kstats() { # label
        [[ $s3mounted == kplugfs* ]] || return 0
        cp "$s3mnt/.kplug/stats" "$logs/s3/$1.stats.json"
        python3 - "$logs/s3/$1.stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
out = []
for k, r in sorted(((s.get("store") or {}).get("requests") or {}).items()):
    out += [f"{k}_n={r['requests']}", f"{k}_mib={r['bytes'] / 2**20:.1f}",
            f"{k}_p50_us={r['latency_us']['p50']}", f"{k}_p99_us={r['latency_us']['p99']}"]
p, c = s.get("prefetch", {}), s.get("cache", {})
out += [f"pf_issued={p.get('issued_blocks', 0)}", f"pf_used={p.get('used_blocks', 0)}",
        f"hits={c.get('hits', 0)}", f"misses={c.get('misses', 0)}"]
print(" ".join(out))
PY
    }
    # Bytes the proxy carried from the server so far (nothing at 0 ms: no proxy); what a row
    # fetched is the difference (its file is rewritten every 50 ms: wait a little).
    pnet() {
        [ -n "$proxy_pid" ] || return 0
        sleep 0.2
        python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["bytes_down"])' "$s3dir/proxy.json"
    }
    net() { [ -z "$1" ] || echo "net_mib=$(python3 -c 'import sys; print(round((int(sys.argv[2]) - int(sys.argv[1])) / 2**20, 2))' "$1" "$2")"; }
    s3want() { [[ ",$s3_rows," == *",$1,"* ]]; }
    s3emit() { # rtt system row run k=v...
        emit s3 rtt_ms="$1" system="$2" row="$3" run="$4" "${@:5}"
        log "s3: ${1} ms $2 $3 run $4: $(sed 's/ [a-z_0-9]*_p[59][09]_us=[0-9]*//g' <<<"${*:5}" | cut -c1-150)"
    }
    # One row on a fresh mount of system $1, at $rtt, run $r (globals of the loop below).
    s3row_seq() { # Sequential read of the big object, cold.
        s3mount "$1" "$ep"
        local n0; n0=$(pnet)
        res=$(s3fio "$s3mnt/big/obj" read 1M "$s3_big_mib" "$((s3_big_mib << 20))" "$s3_seq_cap")
        s3emit "$rtt" "$1" seq "$r" $res $(net "$n0" "$(pnet)") $(kstats "$rtt-$1-$r-seq")
        s3umount
    }
    s3row_rand() { # Random reads of $2 KiB in it, cold: a fixed count at a fixed seed.
        s3mount "$1" "$ep"
        local n0; n0=$(pnet)
        res=$(s3fio "$s3mnt/big/obj" randread "${2}k" "$s3_big_mib" "$((randn * $2 * 1024))" 600)
        s3emit "$rtt" "$1" "rand${2}k" "$r" $res $(net "$n0" "$(pnet)") $(kstats "$rtt-$1-$r-rand${2}k")
        s3umount
    }
    s3row_warm() { # The working set read once, then again (pages kept), then again with its
        # pages dropped from the kernel (what the system's own cache holds).
        s3mount "$1" "$ep"
        s3fio "$s3mnt/ws/obj" read 1M "$s3_ws_mib" "$((s3_ws_mib << 20))" 600 > /dev/null
        res=$(s3fio "$s3mnt/ws/obj" read 1M "$s3_ws_mib" "$((s3_ws_mib << 20))" 600)
        s3emit "$rtt" "$1" warm "$r" $res
        dropfiles "$s3mnt/ws/obj"
        local n0; n0=$(pnet)
        res=$(s3fio "$s3mnt/ws/obj" read 1M "$s3_ws_mib" "$((s3_ws_mib << 20))" 600)
        s3emit "$rtt" "$1" warm-dropped "$r" $res $(net "$n0" "$(pnet)") $(kstats "$rtt-$1-$r-warm")
        s3umount
    }
    s3row_small() { # List the small objects, then read them all (16 threads).
        s3mount "$1" "$ep"
        local n0; n0=$(pnet)
        res=$(taskset -c "$pin_cpu" python3 scripts/bench/s3files.py "$s3mnt/small" \
            --expect "$s3_nsmall" --size "$s3_small_bytes" --jobs 16) ||
            die "s3: $1: listing or reading the small objects failed"
        s3emit "$rtt" "$1" small "$r" $(python3 -c 'import json, sys; print(" ".join(f"{k}={v}" for k, v in json.loads(sys.argv[1]).items()))' "$res") \
            $(net "$n0" "$(pnet)") $(kstats "$rtt-$1-$r-small")
        s3umount
    }
    s3row_write() { # A new object written sequentially in 1 MiB writes: until close()
        # returns, and until the server lists it whole (rclone uploads after close: its
        # --vfs-write-back, 5 s by default). mountpoint-s3 is read-only here: no row.
        [ "$1" != mountpoint-s3 ] || return 0
        s3mount "$1" "$ep"
        local name="write-$1-$rtt-$r.bin" t0 t1 t2 got
        rcl "$s3_direct" deletefile "kplug:$bucket/$s3prefix/$name" >/dev/null 2>&1 || true
        t0=$(date +%s.%N)
        taskset -c "$pin_cpu" python3 -c 'import os, sys
buf, n = os.urandom(1 << 20), int(sys.argv[2])
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(n):
    os.write(fd, buf[:8] + i.to_bytes(8, "little") + buf[16:])
os.close(fd)' "$s3mnt/$name" "$s3_write_mib" || die "s3: $1: writing $name failed"
        t1=$(date +%s.%N)
        for _ in $(seq 1 600); do
            got=$(rcl "$s3_direct" lsjson "kplug:$bucket/$s3prefix/$name" 2>/dev/null |
                python3 -c 'import json, sys; d = json.load(sys.stdin); print(d[0]["Size"] if d else -1)' 2>/dev/null) || got=-1
            [ "$got" != "$((s3_write_mib << 20))" ] || break
            sleep 0.1
        done
        t2=$(date +%s.%N)
        [ "$got" = "$((s3_write_mib << 20))" ] || die "s3: $1: $name never appeared whole in the bucket"
        s3emit "$rtt" "$1" write "$r" $(python3 -c 'import sys; t0, t1, t2, m = map(float, sys.argv[1:]); print(f"mib_s={m / (t1 - t0):.2f} close_s={t1 - t0:.3f} visible_s={t2 - t0:.3f} visible_mib_s={m / (t2 - t0):.2f}")' "$t0" "$t1" "$t2" "$s3_write_mib") \
            $(kstats "$rtt-$1-$r-write")
        s3umount
        rcl "$s3_direct" deletefile "kplug:$bucket/$s3prefix/$name" >/dev/null 2>&1 || true
    }
    for rtt in "${s3rtt[@]}"; do
        s3endpoint "$rtt"
        # What the endpoint costs: two requests on one connection (the first pays the handshake).
        emit s3rtt rtt_ms="$rtt" $(curl -s -o /dev/null -o /dev/null -w '%{time_total}\n' "$ep/" "$ep/" |
            awk 'NR == 1 { printf "first_ms=%.1f ", $1 * 1000 } NR == 2 { printf "next_ms=%.1f", $1 * 1000 }')
        randn=$s3_rand_n; [ "$rtt" != 0 ] || randn=$s3_rand_n0
        for r in $(seq 1 "$s3_runs"); do
            for sys in "${s3sys[@]}"; do
                if s3want seq; then s3row_seq "$sys"; fi
                [ "$sys" != kplugfs-noprefetch ] || continue   # the sequential row only
                if s3want rand; then s3row_rand "$sys" 4; s3row_rand "$sys" 128; fi
                if s3want warm; then s3row_warm "$sys"; fi
                if s3want small; then s3row_small "$sys"; fi
                if s3want write; then s3row_write "$sys"; fi
            done
        done
    done
    s3endpoint 0   # stops the proxy
    read -r l1 l5 l15 _ < /proc/loadavg
    emit s3load phase=end load1="$l1" load5="$l5" load15="$l15"
    emit timing phase=s3 seconds=$((SECONDS - t0))
fi

# ---- 8. writes ------------------------------------------------------------------------
if want writes; then
    t0=$SECONDS
    log "writes: ${write_mib} MiB into a new file, fsync at the end: native, bindfs, kplugfs"
    bindfs "$backing" "$bmnt"
    kmount
    for r in $(seq 1 "$runs"); do
        for direct in 0 1; do
            for pattern in "write 4k" "write 128k" "write 1M" "randwrite 4k"; do
                set -- $pattern
                for sys in native bindfs kplugfs; do
                    case $sys in native) d=$backing ;; bindfs) d=$bmnt ;; kplugfs) d=$kmnt ;; esac
                    rm -f "$d/w"
                    res=$(taskset -c "$pin_cpu" fio --name=w --filename="$d/w" --rw="$1" --bs="$2" \
                        --size="${write_mib}M" --ioengine=psync --direct=$direct --end_fsync=1 \
                        --randrepeat=1 --numjobs=1 --output-format=json 2>>"$logs/fio.err" |
                        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print("mib_s=%.2f err=%d" % (j["write"]["bw"] / 1024, j["error"]))' ||
                        echo "mib_s=0 err=1")
                    rm -f "$d/w"
                    emit writes system=$sys rw="$1" bs="$2" direct=$direct run="$r" $res
                    log "writes: $sys $1 $2 direct=$direct run $r: $(field mib_s "$res") MiB/s"
                done
            done
        done
    done
    kumount; umount "$bmnt"
    emit timing phase=writes seconds=$((SECONDS - t0))
fi

# ---- 9. read stalls under slow plugins -----------------------------------------------
if want stall; then
    t0=$SECONDS
    log "stall: STALL_SECS=$stall_secs cargo bench -p kplugfs-tests --bench stall"
    KPLUGFS_BIN=$kplugfs STALL_SECS=$stall_secs cargo bench -p kplugfs-tests --bench stall \
        > "$logs/stall.log" 2>"$logs/stall.err" || { tail -20 "$logs/stall.err" >&2; die "stall bench failed"; }
    python3 - "$logs/stall.log" "$stall_secs" >> "$raw" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("runaway hook"):
        print(json.dumps({"scenario": "stall_deadline", "text": line.strip()}))
        continue
    c = [x.strip() for x in line.strip().strip("|").split("|")]
    if len(c) != 6 or not c[1].isdigit():
        continue
    num = lambda x: float(x) if x not in ("-", "") else None
    print(json.dumps({"scenario": "stall", "secs": int(sys.argv[2]), "case": c[0], "reads": int(c[1]),
                      "p50_ms": num(c[2]), "p99_ms": num(c[3]), "max_ms": num(c[4]), "plugin": c[5]}))
PY
    log "stall: done"
    emit timing phase=stall seconds=$((SECONDS - t0))
fi

# ---- 10. kplugfs sim against libCacheSim's cachesim -------------------------------------
if want simpeer; then
    t0=$SECONDS
    read -r l1 l5 l15 _ < /proc/loadavg
    emit simpeerload phase=start load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    sdir=$logs/simpeer; mkdir -p "$sdir"
    # kplugfs policy -> the cachesim algorithm implementing it (libCacheSim's names).
    declare -A cs_algo=([lru]=lru [fifo]=fifo [clock]=clock [sieve]=sieve [arc]=arc [twoq]=twoq
                        [lirs]=lirs [s3fifo]=s3fifo [wtinylfu]=wtinyLFU)
    # The parameters that make a policy follow the cachesim built here (libcachesim 0.3.5)
    # where it changed since the libCacheSim the golden tests pin (docs/policies.md).
    declare -A cs_param=([s3fifo]=s3fifo:fill-main=1 [wtinylfu]=wtinylfu:evict-once=1)
    peer_pols=()
    for p in "${evict_pols[@]}"; do
        if [ -n "${cs_algo[$p]:-}" ]; then peer_pols+=("$p"); else log "simpeer: $p has no cachesim counterpart, left out"; fi
    done
    [ ${#peer_pols[@]} -gt 0 ] || die "simpeer: no eviction policy of \`kplugfs policy list\` has a cachesim counterpart"
    if [ -n "${KPLUG_SIMPEER_TRACES:-}" ]; then
        IFS=, read -ra ptraces <<< "$KPLUG_SIMPEER_TRACES"
    else
        # The repo's oracleGeneral trace (113,872 requests, where start-up weighs most) and,
        # for replays it weighs less in, the same requests split into 4 KiB blocks (1.14 M
        # requests) and 1 KiB blocks (4.2 M, about the size of the issue's 5.29 M-request
        # trace), written here (27 MB and 101 MB, deleted at the end).
        ptraces=(traces/data/cloudPhysicsIO.oracleGeneral.bin)
        "$kplugfs" trace convert traces/data/cloudPhysicsIO.vscsi "$work/cp.csv" --to csv > "$sdir/split.log" 2>&1 ||
            { tail "$sdir/split.log" >&2; die "simpeer: converting traces/data/cloudPhysicsIO.vscsi to csv failed"; }
        for kib in 4 1; do
            split=$work/cloudPhysicsIO-${kib}KiB.oracleGeneral.bin
            log "simpeer: writing traces/data/cloudPhysicsIO.vscsi split into $kib KiB blocks as oracleGeneral ($split)"
            python3 scripts/bench/oracle-split.py "$work/cp.csv" $((kib * 1024)) "$split" >> "$sdir/split.log" 2>&1 ||
                { tail "$sdir/split.log" >&2; die "simpeer: making the $kib KiB split trace failed"; }
            # The file must hold exactly kplugfs sim's own split: same requests, unique ids and
            # LRU misses as --split-blocks on the source trace.
            for src in "traces/data/cloudPhysicsIO.vscsi --split-blocks $((kib * 1024))" "$split --format oracle"; do
                # shellcheck disable=SC2086 # $src: a path and its options
                "$kplugfs" sim --trace $src --policy builtin:lru --cache-size 0.1 --jobs 1 --json |
                    python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["requests"], d["cache_objects"], d["misses"])'
            done > "$sdir/split-check.txt" 2>> "$sdir/split.log" || die "simpeer: checking $split failed (see $sdir/split.log)"
            [ -s "$sdir/split-check.txt" ] && [ "$(sed -n 1p "$sdir/split-check.txt")" = "$(sed -n 2p "$sdir/split-check.txt")" ] ||
                die "simpeer: $split differs from kplugfs sim --split-blocks $((kib * 1024)) (requests, cache, LRU misses: $(tr '\n' ';' < "$sdir/split-check.txt"))"
            ptraces+=("$split")
        done
        rm -f "$work/cp.csv"
        # And a long real trace whose requests mostly hit (cache2k's orm-busy from
        # traces/heldout/: 5 M requests over 76,349 sparse ids, 88 % hits at 10 %), where the
        # cost of a hit and of reading the trace decide rather than the misses (120 MB, deleted
        # at the end).
        orm=$work/orm-busy.oracleGeneral.bin
        log "simpeer: writing traces/heldout/cache2k/orm-busy.trace.xz as oracleGeneral ($orm)"
        python3 -c 'import sys; sys.path.insert(0, "scripts"); import heldout
sys.stdout.write("\n".join(map(str, heldout.cache2k(sys.argv[1]))) + "\n")' \
            traces/heldout/cache2k/orm-busy.trace.xz > "$work/orm-busy.txt" 2>> "$sdir/split.log" &&
            "$kplugfs" trace convert --format txt --to oracle "$work/orm-busy.txt" "$orm" >> "$sdir/split.log" 2>&1 ||
            { tail "$sdir/split.log" >&2; die "simpeer: making the oracleGeneral orm-busy trace failed"; }
        rm -f "$work/orm-busy.txt"
        ptraces+=("$orm")
    fi
    for tr in "${ptraces[@]}"; do
        [ -f "$tr" ] || die "simpeer: trace $tr missing"
        info=$("$kplugfs" trace info --format oracle --json "$tr" 2>"$sdir/info.err") ||
            die "simpeer: $tr: not an oracleGeneral trace kplugfs reads ($(head -1 "$sdir/info.err"))"
        read -r nreq nuniq < <(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["requests"], d["unique_ids"])' "$info")
        cobj=$((nuniq / 10))   # 10% of the unique ids, floor (as kplugfs sim --cache-size 0.1)
        [ "$cobj" -gt 0 ] || die "simpeer: $tr has too few unique ids ($nuniq) for a cache of 10%"
        tname=$(basename "$tr")
        log "simpeer: $tname: $nreq requests, $nuniq unique ids, cache $cobj objects; policies ${peer_pols[*]}; $runs run(s)"
        cat "$tr" > /dev/null   # in the page cache for every run of both
        for r in $(seq 1 "$runs"); do
            for p in "${peer_pols[@]}"; do
                # cachesim: one cache size, so one simulation thread; its own report line has
                # the miss ratio to 4 decimals. Both pinned to the same CPU; wall time from
                # before the exec to after the exit (start-up, parsing and replay).
                ns0=$(date +%s%N)
                taskset -c "$pin_cpu" "$cachesim" "$tr" oracleGeneral "${cs_algo[$p]}" "$cobj" \
                    --ignore-obj-size=1 --num-thread=1 -o "$sdir/cachesim.$tname.$p.out" \
                    > "$sdir/cachesim.stdout" 2>> "$sdir/cachesim.err" ||
                    { tail -3 "$sdir/cachesim.err" >&2; die "simpeer: cachesim $p on $tname failed"; }
                ns1=$(date +%s%N)
                line=$(cat "$sdir/cachesim.stdout")
                mr=$(sed -n 's/.* miss ratio \([0-9.]*\),.*/\1/p' <<<"$line")
                mq=$(sed -n 's/.* throughput \([0-9.]*\) MQPS.*/\1/p' <<<"$line")
                [ -n "$mr" ] || die "simpeer: cachesim printed no miss ratio: $line"
                emit simpeer trace="$tname" requests="$nreq" unique="$nuniq" cache_objects="$cobj" policy="$p" \
                    system=cachesim algo="${cs_algo[$p]}" run="$r" wall_s="$(( (ns1 - ns0) / 1000 ))e-6" miss_ratio="$mr" \
                    self_mreq_s="${mq:-0}"
                kp=("$p"); [ "$p" != lru ] || kp+=(builtin:lru)
                for k in "${kp[@]}"; do
                    kparam=(); [ -z "${cs_param[$k]:-}" ] || kparam=(--param "${cs_param[$k]}")
                    ns0=$(date +%s%N)
                    taskset -c "$pin_cpu" "$kplugfs" sim --trace "$tr" --format oracle --policy "$k" "${kparam[@]}" \
                        --cache-objects "$cobj" --jobs 1 --json > "$sdir/kplugfs.stdout" 2>> "$sdir/kplugfs.err" ||
                        { tail -3 "$sdir/kplugfs.err" >&2; die "simpeer: kplugfs sim $k on $tname failed"; }
                    ns1=$(date +%s%N)
                    res=$(python3 -c 'import json, sys
d = json.loads(open(sys.argv[1]).readline())
assert d["cache_objects"] == int(sys.argv[2]) and d["requests"] == int(sys.argv[3]), d
print("miss_ratio=%s self_mreq_s=%.3f" % (d["miss_ratio"], d["requests_per_sec"] / 1e6))' "$sdir/kplugfs.stdout" "$cobj" "$nreq") ||
                        die "simpeer: kplugfs sim $k on $tname: unexpected output $(head -c 300 "$sdir/kplugfs.stdout")"
                    sys=kplugfs; [ "$k" = "$p" ] || sys=kplugfs-builtin
                    emit simpeer trace="$tname" requests="$nreq" unique="$nuniq" cache_objects="$cobj" policy="$p" \
                        system=$sys run="$r" wall_s="$(( (ns1 - ns0) / 1000 ))e-6" param="${cs_param[$k]:-}" $res
                done
                log "simpeer: $tname run $r $p: $(python3 -c 'import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])][-(3 if sys.argv[2] == "lru" else 2):]
print(", ".join("%s %.3f s miss %.4f" % (x["system"], x["wall_s"], x["miss_ratio"]) for x in rs))' "$raw" "$p")"
            done
        done
    done
    read -r l1 l5 l15 _ < /proc/loadavg
    emit simpeerload phase=end load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    emit timing phase=simpeer seconds=$((SECONDS - t0))
fi

# ---- 15. adaptive: the governor against every fixed policy, cell by cell ----------------
if want adaptive; then
    t0=$SECONDS
    read -r l1 l5 l15 _ < /proc/loadavg
    emit adaptiveload phase=start load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    adir=$logs/adaptive; mkdir -p "$adir"
    python3 scripts/phase-trace.py "$work/phase.txt" > "$adir/phase.log" 2>&1 ||
        { tail "$adir/phase.log" >&2; die "adaptive: building the phase trace failed"; }
    sets=(repo phase); [ $quick = 1 ] || sets=(repo heldout phase)
    for set in "${sets[@]}"; do
        case $set in
            repo) args=() ;;
            heldout) args=(--heldout) ;;
            phase) args=(--trace "$work/phase.txt") ;;
        esac
        log "adaptive: $set traces (scripts/adaptive-check.py${args[0]:+ ${args[0]}}; output in $adir/$set.txt)"
        # Exit status 1 only says a cell is over 0.005: the report shows which.
        rc=0; python3 scripts/adaptive-check.py "$kplugfs" "${args[@]}" --json "$adir/$set.jsonl" \
            > "$adir/$set.txt" 2>&1 || rc=$?
        [ $rc -le 1 ] && [ -s "$adir/$set.jsonl" ] ||
            { tail "$adir/$set.txt" >&2; die "adaptive: scripts/adaptive-check.py on the $set traces failed"; }
        python3 -c 'import json, sys
for line in open(sys.argv[1]):
    print(json.dumps({"scenario": "adaptive", "set": sys.argv[2], **json.loads(line)}))' \
            "$adir/$set.jsonl" "$set" >> "$raw"
        log "adaptive: $set: $(tail -1 "$adir/$set.txt")"
    done
    rm -f "$work/phase.txt"
    read -r l1 l5 l15 _ < /proc/loadavg
    emit adaptiveload phase=end load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    emit timing phase=adaptive seconds=$((SECONDS - t0))
fi

# ---- 11. views: data-path transforms against the user-space pipeline -------------------
if want views; then
    t0=$SECONDS
    views_mib=$([ $quick = 1 ] && echo 64 || echo 1024)
    read -r l1 l5 l15 _ < /proc/loadavg
    emit viewsload load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    log "views: $views_mib MiB CSV, pattern on 1 % of lines, --backend-latency 1ms; load $l1 $l5 $l15"
    python3 - "$backing/views.csv" "$views_mib" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    i, n = 0, 0
    while n < mib << 20:
        line = "%d,%s,%d,%d\n" % (i, "ZZPAT" if i % 100 == 42 else "ok", i * 2654435761 % 1000003, i % 97)
        f.write(line); n += len(line); i += 1
PY
    gzip -1 -k "$backing/views.csv"
    vload() { # name params...: a transform into the mounted kplugfs
        local name=$1; shift
        [ -f "$exp/$name.wasm" ] || "$kplugfs" policy export "$name" "$exp" >/dev/null
        if [ $# -gt 0 ]; then printf '%s\n' "$@" > "$kmnt/.kplug/plugins/$name.params"; fi
        cp "$exp/$name.wasm" "$kmnt/.kplug/plugins/" || die "views: loading $name failed"
    }
    vrun() { # row system bytes-delivered command...: one cold measurement
        local row=$1 sys=$2 bytes=$3; shift 3
        kmount --backend-latency 1ms --no-kernel-cache
        vload grep pattern=ZZPAT; vload cut 'fields=1;3'; vload gunzip
        dropfiles "$backing/views.csv" "$backing/views.csv.gz"
        local s=$SECONDS t
        # Output to a file, not /dev/null: GNU grep stops at the first match when its output
        # is /dev/null.
        t=$( { /usr/bin/time -f %e "$@" > "$work/views.out"; } 2>&1 | tail -1 )
        rm -f "$work/views.out"
        emit views row="$row" system="$sys" run="$r" seconds="$t" bytes="$bytes"
        log "views: $row $sys run $r: ${t}s, $bytes bytes to user space"
    }
    csv_bytes=$(stat -c %s "$backing/views.csv"); gz_bytes=$(stat -c %s "$backing/views.csv.gz")
    for r in $(seq 1 "$runs"); do
        vrun grep plain "$csv_bytes" grep -c ZZPAT "$kmnt/views.csv"
        vrun grep view "$(stat -c %s "$kmnt/.kplug/views/grep/views.csv")" wc -l "$kmnt/.kplug/views/grep/views.csv"
        vrun cut plain "$csv_bytes" cut -d, -f1,3 "$kmnt/views.csv"
        vrun cut view "$(stat -c %s "$kmnt/.kplug/views/cut/views.csv")" cat "$kmnt/.kplug/views/cut/views.csv"
        vrun gunzip plain "$gz_bytes" zcat "$kmnt/views.csv.gz"
        vrun gunzip view "$csv_bytes" cat "$kmnt/.kplug/views/gunzip/views.csv.gz"
    done
    kumount
    rm -f "$backing/views.csv" "$backing/views.csv.gz"
    log "views: transform throughput, WASM against native (tests/benches/transform.rs)"
    if [ -n "${KPLUG_TRANSFORM_BENCH:-}" ]; then tbench=("$KPLUG_TRANSFORM_BENCH")
    else tbench=(cargo bench -q -p kplugfs-tests --bench transform); fi
    MIB=$views_mib RUNS=$runs "${tbench[@]}" 2>"$logs/transform.log" |
        while read -r line; do
            log "views: $line"
            emit viewsthroughput $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(f"{k}={v}" for k,v in d.items()))' "$line")
        done
    read -r l1 l5 l15 _ < /proc/loadavg
    emit viewsload phase=end load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    emit timing phase=views seconds=$((SECONDS - t0))
fi

# ---- 13. probes: a flood of events through a real mount --------------------------------
if want probes; then
    t0=$SECONDS
    flood_mib=64; flood_rt=$([ $quick = 1 ] && echo 5 || echo 20)
    read -r l1 l5 l15 _ < /proc/loadavg
    emit probesload load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    log "probes: fio randread 4k for ${flood_rt}s of a warm ${flood_mib} MiB file per case; load $l1 $l5 $l15"
    head -c $((flood_mib << 20)) /dev/urandom > "$backing/flood"; sync
    # case -> the probes loaded (the shipped ones, exported by the binary under test).
    declare -A flood_cases=(
        [none]=""
        [one]="bottleneck"
        [four]="hot-files latency-by-dir seq-by-process bottleneck"
        [five]="hot-files latency-by-dir seq-by-process bottleneck policy-audit"
    )
    for r in $(seq 1 "$runs"); do
        for c in none one four five; do
            kmount --cache-size "$((2 * flood_mib))MiB" --no-kernel-cache
            for pr in ${flood_cases[$c]}; do
                [ -f "$exp/$pr.wasm" ] || "$kplugfs" policy export "$pr" "$exp" >/dev/null
                cp "$exp/$pr.wasm" "$kmnt/.kplug/plugins/" || die "probes: loading $pr failed"
            done
            fio_run "$kmnt/flood" read 1M "$flood_mib" 0 > /dev/null   # warm: every block cached
            # O_DIRECT: every read is a FUSE request (the page cache would answer repeats).
            res=$(taskset -c "$pin_cpu" fio --name=f --filename="$kmnt/flood" --rw=randread --bs=4k \
                --size="${flood_mib}M" --ioengine=psync --direct=1 --numjobs=1 --time_based \
                --runtime="$flood_rt" --randrepeat=1 --output-format=terse --terse-version=3 2>>"$logs/fio.err" |
                awk -F';' '{ printf "mib_s=%.2f iops=%s\n", $7 / 1024, $8 }')
            counts=$(python3 - "$kmnt/.kplug/stats" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])).get("probes", {})
print(f"delivered={sum(v['delivered'] for v in p.values())} dropped={sum(v['dropped'] for v in p.values())} probes={len(p)}")
PY
)
            emit probes case="$c" run="$r" $res $counts
            log "probes: $c run $r: $res $counts"
            kumount
        done
    done
    rm -f "$backing/flood"
    read -r l1 l5 l15 _ < /proc/loadavg
    emit probesload phase=end load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    emit timing phase=probes seconds=$((SECONDS - t0))
fi

# ---- 14. scopes: per-subtree policies against one global policy (cache_ext) ------------
# Two workloads in two subtrees of one mount on a slow store, sharing one block cache: a
# zipf random reader of a hot set (hot/) and a repeated scan larger than the cache (scan/).
# Each case on a fresh copy of the files and a fresh mount; one global eviction policy (each
# WASM one) against pairs of policies in the scopes hot and scan. Hit ratios per workload
# from the hot-files probe (per file bytes read and misses), loaded in every case.
if want scopes; then
    t0=$SECONDS
    # Sizes by rule from the cache size C: the hot set C/2 (fits alone), the scan 3C/2 (never
    # fits) in sc_files files, read as one stream by sc_threads threads.
    if [ $quick = 1 ]; then sc_cache_mib=32; sc_secs=10; else sc_cache_mib=64; sc_secs=25; fi
    sc_secs=${KPLUG_SCOPES_SECS:-$sc_secs}
    sc_block_kib=32; sc_files=4; sc_threads=4
    sc_hot_mib=$((sc_cache_mib / 2)); sc_scan_mib=$((sc_cache_mib * 3 / 2))
    sc_file_mib=$((sc_scan_mib / sc_files))
    # hot/scan@share-of-hot. hot: the plain recency policy (the share alone protects it) and
    # those that keep a skewed set against a scan (ARC, SIEVE, S3-FIFO); scan: LIRS, the one
    # that keeps a fixed part of a loop larger than its space (FIFO: one that cannot, as a
    # baseline). Shares: the hot set (C/2) with 10 % of C to spare, and with half again.
    IFS=, read -ra sc_pairs <<< "${KPLUG_SCOPES_PAIRS:-lru/lirs@60%,lru/fifo@60%,arc/lirs@60%,sieve/lirs@60%,s3fifo/lirs@60%,arc/lirs@75%,sieve/lirs@75%}"
    [[ $sc_secs =~ ^[1-9][0-9]*$ ]] || die "scopes: KPLUG_SCOPES_SECS=$sc_secs is not a whole number of seconds"
    for p in hot-files stride; do
        grep -q "^$p " "$logs/policy-list.txt" || die "scopes: $kplugfs ships no $p (\`kplugfs policy list\`), which the scenario needs"
    done
    for pr in "${sc_pairs[@]}"; do
        [[ $pr =~ ^([a-z0-9]+)/([a-z0-9]+)@([0-9.]+%?|[0-9]+[KMG]iB)$ ]] ||
            die "scopes: pair '$pr' is not HOT/SCAN@SHARE (e.g. lru/lirs@60%) (KPLUG_SCOPES_PAIRS)"
        for p in "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"; do
            printf '%s\n' "${evict_pols[@]}" | grep -qx "$p" || die "scopes: pair '$pr': $p is no eviction policy of \`kplugfs policy list\`"
        done
    done
    fio --parse-only --name=z --filename="$work/z" --size=1M --rw=randread --random_distribution=zipf:1.2 \
        > /dev/null 2>&1 || die "scopes: this fio ($(fio --version)) does not take random_distribution=zipf:1.2"
    read -r l1 l5 l15 _ < /proc/loadavg
    emit scopesload load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    log "scopes: cache ${sc_cache_mib} MiB of ${sc_block_kib} KiB blocks, hot/ ${sc_hot_mib} MiB (zipf:1.2), scan/ ${sc_scan_mib} MiB in $sc_files files ($sc_threads readers); ${sc_secs}s a case; global: ${evict_pols[*]}; scoped: ${sc_pairs[*]}; load $l1 $l5 $l15"
    sc_src=$work/scopes-src; sc_state=$work/scopes-state; sdir=$logs/scopes
    mkdir -p "$sc_src/hot" "$sc_src/scan" "$sdir"
    head -c $((sc_hot_mib << 20)) /dev/urandom > "$sc_src/hot/data"
    for j in $(seq 0 $((sc_files - 1))); do head -c $((sc_file_mib << 20)) /dev/urandom > "$sc_src/scan/part$j"; done
    # Both workloads at once for the same time, O_DIRECT on a mount without the kernel cache:
    # every read is a FUSE request for one aligned block. The hot reader: one fio job. The scan:
    # scripts/bench/scopes.py scan, one sequential stream over scan/ (fio cannot share one
    # stream between jobs, and one job keeps a single read in flight on a FUSE file: about
    # 450 blocks/s at 2 ms, too few to press on the cache).
    sc_fio=(--output-format=json --ioengine=psync --direct=1 --bs="${sc_block_kib}k" --time_based
            --runtime="$sc_secs" --randrepeat=1 --invalidate=0
            --name=hot --filename="$kmnt/hot/data" --size="${sc_hot_mib}M" --rw=randread --random_distribution=zipf:1.2)
    sc_have_scopes=""   # yes / no once the first scoped case has looked at .kplug/scopes
    # A scope over the subtree NAME/ with its own eviction plugin: sc_scope name policy share
    sc_scope() {
        local d=$kmnt/.kplug/scopes/$1
        mkdir "$d" || die "scopes: mkdir $d failed"
        echo "$1" > "$d/path" || die "scopes: writing $1 to $d/path failed"
        echo "$3" > "$d/share" || die "scopes: writing $3 to $d/share failed"
        [ -d "$d/plugins" ] || die "scopes: $d has no plugins/ directory"
        [ -f "$exp/$2.wasm" ] || "$kplugfs" policy export "$2" "$exp" >/dev/null
        cp "$exp/$2.wasm" "$d/plugins/" || die "scopes: loading $2 into the scope $1 failed: $(cat "$kmnt/.kplug/status")"
    }
    # One measurement: sc_case kind case hot-policy scan-policy share-of-hot (global: policy - -)
    sc_case() {
        local kind=$1 name=$2 lf res left scan_pid
        lf=$sdir/$(tr '/@%' '_-p' <<<"$name").$r
        kumount
        rm -rf "$backing/hot" "$backing/scan" "$sc_state"
        cp -r "$sc_src/hot" "$sc_src/scan" "$backing/"
        kmount --cache-size "${sc_cache_mib}MiB" --block-size "${sc_block_kib}KiB" --backend-latency 2ms \
            --no-kernel-cache --state-dir "$sc_state"
        if [ "$kind" = scoped ]; then
            if [ -z "$sc_have_scopes" ]; then
                if [ -d "$kmnt/.kplug/scopes" ]; then sc_have_scopes=yes; else
                    sc_have_scopes=no
                    log "scopes: $kplugfs has no .kplug/scopes (built without scopes): the scoped cases are skipped, only the global ones measured"
                    emit scopesskip reason="$kplugfs has no .kplug/scopes (a binary without scopes)"
                fi
            fi
            [ "$sc_have_scopes" = yes ] || { kumount; return 0; }
            left=$(find "$kmnt/.kplug/scopes" -mindepth 1 -maxdepth 1 -printf '%f ')
            [ -z "$left" ] || log "scopes: a fresh mount already lists scopes: $left"
        fi
        kload stride prefetch confirm=4294967295   # prefetch off: every miss is a demand read
        [ -f "$exp/hot-files.wasm" ] || "$kplugfs" policy export hot-files "$exp" >/dev/null
        echo k=100 > "$kmnt/.kplug/plugins/hot-files.params"
        cp "$exp/hot-files.wasm" "$kmnt/.kplug/plugins/" || die "scopes: loading the hot-files probe failed"
        [ -r "$kmnt/.kplug/probes/hot-files" ] || die "scopes: the hot-files probe has no report in .kplug/probes"
        if [ "$kind" = global ]; then
            kload "$3" eviction
        else
            sc_scope hot "$3" "$5"
            sc_scope scan "$4" 0
            "$kplugfs" stats "$kmnt" --json > "$lf.stats0.json" || die "scopes: kplugfs stats --json failed"
            python3 scripts/bench/scopes.py check --stats "$lf.stats0.json" hot="$3" scan="$4" ||
                die "scopes: the scopes of $name are not as set (see $lf.stats0.json)"
        fi
        taskset -c "$pin_cpu" python3 scripts/bench/scopes.py scan --dir "$kmnt/scan" --seconds "$sc_secs" \
            --threads "$sc_threads" --block $((sc_block_kib << 10)) > "$lf.scan.json" 2>>"$sdir/scan.err" &
        scan_pid=$!
        taskset -c "$pin_cpu" fio "${sc_fio[@]}" > "$lf.fio.json" 2>>"$logs/fio.err" ||
            { kill "$scan_pid" 2>/dev/null; die "scopes: fio failed for $name (see $logs/fio.err)"; }
        wait "$scan_pid" || die "scopes: the scan driver failed for $name (see $sdir/scan.err)"
        cat "$kmnt/.kplug/probes/hot-files" > "$lf.probe.txt" || die "scopes: reading the hot-files report failed"
        "$kplugfs" stats "$kmnt" --json > "$lf.stats.json" || die "scopes: kplugfs stats --json failed"
        res=$(python3 scripts/bench/scopes.py case --fio "$lf.fio.json" --scan "$lf.scan.json" --probe "$lf.probe.txt" \
            --stats "$lf.stats.json" --block $((sc_block_kib << 10))) || die "scopes: reading the figures of $name failed"
        # shellcheck disable=SC2086 # $res: k=v words
        emit scopes kind="$kind" case="$name" hot_policy="$3" scan_policy="$4" hot_share="$5" run="$r" $res
        log "scopes: $name run $r: hot $(field hot_mib_s "$res") MiB/s hit $(field hot_hits "$res")/$(field hot_requests "$res"), scan $(field scan_mib_s "$res") MiB/s hit $(field scan_hits "$res")/$(field scan_requests "$res"), probe events dropped $(field probe_dropped "$res"), prefetch issued $(field pf_issued "$res")"
        kumount
    }
    for r in $(seq 1 "$runs"); do
        for p in "${evict_pols[@]}"; do sc_case global "$p" "$p" - -; done
        for pr in "${sc_pairs[@]}"; do
            [ "$sc_have_scopes" != no ] || break
            h=${pr%%/*}; s=${pr#*/}; s=${s%@*}
            sc_case scoped "$pr" "$h" "$s" "${pr#*@}"
        done
    done
    rm -rf "$backing/hot" "$backing/scan" "$sc_src" "$sc_state"
    read -r l1 l5 l15 _ < /proc/loadavg
    emit scopesload phase=end load1="$l1" load5="$l5" load15="$l15" nproc="$(nproc)"
    emit timing phase=scopes seconds=$((SECONDS - t0))
fi

total_s=$((SECONDS - t_start))
log "measurements took ${total_s}s (build ${build_s}s); writing the report"
python3 scripts/bench/report.py --raw "$raw" --machine "$out/machine.json" --out "$out" \
    --command "$cmdline" \
    ${docs:+--docs "$docs"} --total-seconds "$total_s" --build-seconds "$build_s" \
    --params "read_mib=$read_mib cache_mib=$cache_mib read_rt=$read_rt slow_mib=$slow_mib slow_io=$slow_io swaps=$swaps nfiles=$nfiles write_mib=$write_mib stall_secs=$stall_secs pin_cpu=$pin_cpu s3_big_mib=$s3_big_mib s3_ws_mib=$s3_ws_mib s3_nsmall=$s3_nsmall s3_small_bytes=$s3_small_bytes s3_rand_n0=$s3_rand_n0 s3_rand_n=$s3_rand_n s3_seq_cap=$s3_seq_cap s3_runs=$s3_runs s3_write_mib=$s3_write_mib cachesim_ver=${cachesim_ver:-}"
if want scopes; then
    # Its section (## 14.) comes from scripts/bench/scopes.py: appended to report.md, its
    # summary added to report.json, and (--docs) that section of the page replaced.
    python3 scripts/bench/scopes.py report --raw "$raw" --out "$out" ${docs:+--docs "$docs"} \
        --params "cache_mib=$sc_cache_mib block_kib=$sc_block_kib hot_mib=$sc_hot_mib scan_mib=$sc_scan_mib scan_files=$sc_files scan_threads=$sc_threads scan_file_mib=$sc_file_mib secs=$sc_secs pin_cpu=$pin_cpu" ||
        die "scopes: writing its report section failed"
fi
log "wrote $out/report.md and $out/report.json"
