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

section "cargo fmt --check"
cargo fmt --all -- --check

# tests/shuttle builds kplugfs with its `shuttle` feature (test-only locks): never together
# with the rest of the workspace, whose binary the mount tests run.
section "cargo clippy"
cargo clippy --workspace --exclude kplugfs-shuttle --all-targets --features kplugfs-tests/mount-tests -- -D warnings
cargo clippy -p kplugfs-shuttle --all-targets -- -D warnings

section "cargo test (unit, property and real-mount tests)"
cargo build -p kplugfs
cargo test --workspace --exclude kplugfs-shuttle --features kplugfs-tests/mount-tests

section "policy unit tests (native builds of policies/, their own workspace)"
(cd policies && cargo fmt --all -- --check && cargo test --workspace)

section "shuttle (block cache interleavings)"
cargo test -p kplugfs-shuttle
# The shuttle build must not have replaced the binary the next steps use.
cargo build -p kplugfs

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
