#!/usr/bin/env bash
# Set up a fresh machine, build kplugfs, and show it working: mount a demo directory, read
# through it, and unmount. Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

. scripts/lib.sh
target_dir=$(cargo_target_dir)
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

step "kplugfs mount $backing $mnt --no-kernel-cache    # every read reaches the plugin-driven cache"
"$kplugfs" mount "$backing" "$mnt" --no-kernel-cache --no-keep-plugins
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

# A policy plugin, built from source to WebAssembly (policies/lru, written with the SDK).
policy_target=$target_dir/policies
cargo build -q --release --target wasm32-unknown-unknown --manifest-path policies/lru/Cargo.toml \
    --target-dir "$policy_target"
lru_wasm=$policy_target/wasm32-unknown-unknown/release/kplug_policy_lru.wasm

step "cp lru.wasm $mnt/.kplug/plugins/    # hot-swap the eviction policy of the live mount"
cp "$lru_wasm" "$mnt/.kplug/plugins/lru.wasm"
step "cat $mnt/.kplug/status"
cat "$mnt/.kplug/status"
step "cat $mnt/data.bin > /dev/null; cmp $mnt/data.bin $backing/data.bin    # served under the plugin"
cat "$mnt/data.bin" > /dev/null
cmp "$mnt/data.bin" "$backing/data.bin" && echo identical
step "kplugfs stats $mnt    # live figures of every layer (docs/METRICS.md)"
"$kplugfs" stats "$mnt"
step "kplugfs policy export scanboost $mnt/.kplug/plugins/    # a governor: switches prefetchers as the workload changes"
"$kplugfs" policy export scanboost "$mnt/.kplug/plugins/"
dd if="$mnt/data.bin" of=/dev/null bs=1M 2>&1 | tail -1
grep -o '"governor": *"[a-z]*"' "$mnt/.kplug/status"
printf 'not wasm' > "$demo/bad.wasm"
step "cp bad.wasm $mnt/.kplug/plugins/    # refused at close(): cp fails, nothing changes"
cp "$demo/bad.wasm" "$mnt/.kplug/plugins/" || echo "(refused, as it should be)"
step "cat $mnt/.kplug/status    # bad: failed, with the reason; lru still active"
cat "$mnt/.kplug/status"
step "rm $mnt/.kplug/plugins/*.wasm    # back to the built-in policies"
rm "$mnt"/.kplug/plugins/*.wasm
grep -A4 '"active"' "$mnt/.kplug/status"
step "kplugfs umount $mnt"
"$kplugfs" umount "$mnt"

# The same over an object store: the project's single-node Ceph RGW on 127.0.0.1 (an S3
# server; started here, stopped at the end unless it was already running).
step "scripts/s3/ceph-s3.sh start    # a local S3 server (Ceph RADOS Gateway)"
started_s3=
if ! scripts/s3/ceph-s3.sh status >/dev/null 2>&1; then started_s3=1; fi
scripts/s3/ceph-s3.sh start >/dev/null
eval "$(scripts/s3/ceph-s3.sh env)"
cleanup() {
    "$kplugfs" umount "$mnt" 2>/dev/null || true
    [ -z "$started_s3" ] || scripts/s3/ceph-s3.sh stop >/dev/null 2>&1 || true
}
bucket=kplugfs-demo
curl -s -o /dev/null -X PUT --aws-sigv4 "aws:amz:${AWS_DEFAULT_REGION:-us-east-1}:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$AWS_ENDPOINT_URL/$bucket"
step "kplugfs mount s3://$bucket $mnt --no-kernel-cache    # credentials and endpoint from AWS_* variables"
"$kplugfs" mount "s3://$bucket" "$mnt" --no-kernel-cache --no-keep-plugins
step "cp $backing/data.bin $mnt/    # a streamed multipart upload, visible to every client at close()"
cp "$backing/data.bin" "$mnt/"
ls -l "$mnt"
step "kplugfs policy export s3window $mnt/.kplug/plugins/    # mountpoint-s3's prefetcher, as a plugin"
"$kplugfs" policy export s3window "$mnt/.kplug/plugins/"
step "dd if=$mnt/data.bin of=/dev/null bs=1M; cmp $mnt/data.bin $backing/data.bin"
dd if="$mnt/data.bin" of=/dev/null bs=1M 2>&1 | tail -1
cmp "$mnt/data.bin" "$backing/data.bin" && echo identical
step "kplugfs stats $mnt    # with the store's requests, retries and latency per kind"
"$kplugfs" stats "$mnt"
step "rm $mnt/data.bin; kplugfs umount $mnt"
rm "$mnt/data.bin"
"$kplugfs" umount "$mnt"
cleanup
trap - EXIT
echo
echo "Demo done. Mount it yourself: $kplugfs mount $backing $mnt"
echo "  or a bucket: eval \"\$(scripts/s3/ceph-s3.sh env)\"; $kplugfs mount s3://BUCKET $mnt"
