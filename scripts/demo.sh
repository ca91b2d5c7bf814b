#!/usr/bin/env bash
# Set up a fresh machine, build kplugfs, and show it working: mount a demo directory, read
# through it, and unmount. Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
kplugfs="$target_dir/release/kplugfs"
demo=${KPLUGFS_DEMO_DIR:-/var/tmp/kplugfs-demo}
backing=$demo/backing
mnt=$demo/mnt

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# Leave no mount behind, even on failure.
cleanup() { "$kplugfs" umount "$mnt" 2>/dev/null || true; }
trap cleanup EXIT
cleanup

mkdir -p "$backing" "$mnt"
printf 'Hello from the backing directory.\n' > "$backing/hello.txt"
[ -f "$backing/data.bin" ] || head -c $((64 << 20)) /dev/urandom > "$backing/data.bin"

step "kplugfs mount $backing $mnt"
"$kplugfs" mount "$backing" "$mnt"
step "grep kplugfs /proc/mounts"
grep " $mnt " /proc/mounts
step "ls -l $mnt"
ls -l "$mnt"
step "cat $mnt/hello.txt"
cat "$mnt/hello.txt"
step "echo 'written through the mount' > $mnt/new.txt; cat $backing/new.txt"
echo 'written through the mount' > "$mnt/new.txt"
cat "$backing/new.txt"
step "dd if=$mnt/data.bin of=/dev/null bs=1M"
dd if="$mnt/data.bin" of=/dev/null bs=1M 2>&1 | tail -1
step "cmp $mnt/data.bin $backing/data.bin"
cmp "$mnt/data.bin" "$backing/data.bin" && echo identical
step "kplugfs umount $mnt"
"$kplugfs" umount "$mnt"
trap - EXIT
echo
echo "Demo done. Mount it yourself: $kplugfs mount $backing $mnt"
