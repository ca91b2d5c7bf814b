#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): formatting, lints, unit and property tests,
# real-mount tests, pjdfstest against a mount, and the kernel module's VM test.
# Run as root (mounts need /dev/fuse; the VM test installs qemu and a Debian kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# Each section prints how long the previous one took (docs/testing.md quotes these).
start=$SECONDS
last=$SECONDS
prev=""
section() {
    if [ -n "$prev" ]; then
        printf '\033[1m--- %s: %ds (total %ds)\033[0m\n' "$prev" $((SECONDS - last)) $((SECONDS - start))
    fi
    prev=$*
    last=$SECONDS
    printf '\n\033[1m=== %s ===\033[0m\n' "$*"
}

section "setup"
KPLUGFS_SKIP_BUILD=1 ./scripts/setup.sh

section "cargo fmt --check, import cycles"
cargo fmt --all -- --check
(cd policies && cargo fmt --all -- --check)
(cd fuzz && cargo fmt --all -- --check)
# No two files of a crate may import each other, directly or through others.
python3 scripts/check-cycles.py

# Every feature that turns tests on (mounts, the S3 server): clippy sees all the tests.
FEATURES=kplugfs-tests/mount-tests,kplug-store/s3-tests

section "cargo clippy (both workspaces)"
cargo clippy --workspace --all-targets --features "$FEATURES" -- -D warnings
(cd policies && cargo clippy --workspace --all-targets -- -D warnings)

# The shuttle tests (tests/shuttle) compile the block cache's source a second time against
# shuttle's primitives, inside their own crate: they run with the rest of the workspace.
# The object-store tests run against a real S3 server: the project's single-node Ceph RGW,
# started here (a few seconds) and stopped at the end unless it was already running.
section "S3 test server (Ceph RGW)"
if ! scripts/s3/ceph-s3.sh status >/dev/null 2>&1; then
    trap 'scripts/s3/ceph-s3.sh stop >/dev/null 2>&1 || true' EXIT
fi
scripts/s3/ceph-s3.sh start >/dev/null
eval "$(scripts/s3/ceph-s3.sh env)"
# The S3 tests of kplugfs-tests (object-store mounts, the model on one) skip themselves when
# no server answers; here the server was started, so a missing one is a failure.
export KPLUGFS_S3_REQUIRED=1
# The C SDK's tests (kplug.h against the ABI, policies/c/lru.c's golden miss ratios) skip
# themselves without clang and lld; setup.sh installed them, so a missing one is a failure.
export KPLUGFS_C_REQUIRED=1

section "cargo test (unit, property, shuttle, real-mount and S3 tests)"
cargo build -p kplugfs
cargo test --workspace --features "$FEATURES"

section "policy unit tests (native builds of policies/, their own workspace)"
(cd policies && cargo test --workspace)

section "fuzzing: every cargo fuzz target for 20 s (scripts/fuzz.sh)"
./scripts/fuzz.sh 20

section "pjdfstest"
. scripts/lib.sh
target_dir=$(cargo_target_dir)
pjd_root=${PJDFSTEST_ROOT:-/var/cache/kplugfs/pjdfstest}
if [ ! -x "$pjd_root/bin/pjdfstest" ]; then
    cargo install --locked pjdfstest@0.2.2 --root "$pjd_root"
fi
tests/pjdfstest/run.sh "$target_dir/debug/kplugfs" "$pjd_root/bin/pjdfstest"

section "kernel module VM test"
kmod-bridge/vm-test

section "all tests passed"
