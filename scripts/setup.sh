#!/usr/bin/env bash
# Install everything kplugfs needs on a fresh Debian 12 machine (run as root), then build.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    # Another process may hold the apt lock for a while: wait rather than fail.
    for i in $(seq 1 60); do
        if { [ "$i" -gt 1 ] || apt-get update -qq; } &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
            return 0
        fi
        log "apt busy or failed, retrying ($i/60)"
        sleep 5
    done
    echo "setup: could not install ${missing[*]}" >&2
    return 1
}

# fuse3: fusermount3 for unprivileged mounts; acl + libacl1-dev: pjdfstest; bindfs and fio:
# the peers and load generator of the benchmarks; ceph-mon, ceph-osd, radosgw, ceph-common and
# curl: the single-node Ceph RGW the object-store tests run against (scripts/s3/ceph-s3.sh);
# s3fs, rclone, and cmake + libfuse3-dev (to build the mountpoint-s3 peer): the peers of the
# s3 benchmark (scripts/bench.sh --only s3); zstd: the reference the zstd view is tested against.
apt_install fuse3 acl libacl1-dev bindfs fio pkg-config curl \
    ceph-mon ceph-osd radosgw ceph-common s3fs rclone cmake libfuse3-dev zstd

# clang and lld (wasm-ld): the C SDK's plugins (plugin-sdk/c/kplug.h, policies/c/lru.c), built
# to wasm32 by the tests (KPLUGFS_C_REQUIRED=1 in scripts/test.sh).
apt_install clang lld

# build-essential, libglib2.0-dev, libzstd-dev and libgoogle-perftools-dev (tcmalloc, which
# libCacheSim's own install script sets up and its build links when found), with cmake and
# pkg-config above: libCacheSim's `cachesim`, built from the PyPI sdist of libcachesim by
# scripts/bench.sh --only simpeer (the simulator's peer).
apt_install build-essential libglib2.0-dev libzstd-dev libgoogle-perftools-dev

# prometheus_client: the reference parser tests/tests/metrics.rs checks .kplug/metrics with
# (Debian's package for the system python3, pip for another python3 first in PATH).
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    apt_install python3-prometheus-client
    python3 -c 'import prometheus_client' 2>/dev/null || {
        log "pip install prometheus-client"
        python3 -m pip install -q prometheus-client==0.26.0 ||
            python3 -m pip install -q --break-system-packages prometheus-client==0.26.0
    }
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# Fuzzing (scripts/fuzz.sh, fuzz/): cargo fuzz needs the nightly toolchain.
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    log "rustup toolchain install nightly --profile minimal"
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
    log "cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# pjdfstest switches to these users; Debian has nobody/nogroup, not tests/tests.
getent group tests >/dev/null || groupadd tests
id -u tests >/dev/null 2>&1 || useradd -M -N -g tests -s /usr/sbin/nologin tests

if [ "${KPLUGFS_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p kplugfs"
    cargo build --release -p kplugfs
    # mount(8)'s helper for `mount -t fuse.kplugfs`, /etc/fstab lines and systemd .mount
    # units (docs/operating.md): kplugfs answers to that name. The tests link the binary
    # they test there for their run and put this link back.
    . scripts/lib.sh
    helper_target="$(cargo_target_dir)/release/kplugfs"
    if [ "$(readlink /sbin/mount.fuse.kplugfs 2>/dev/null)" != "$helper_target" ]; then
        log "ln -s $helper_target /sbin/mount.fuse.kplugfs"
        ln -sfn "$helper_target" /sbin/mount.fuse.kplugfs
    fi
fi
