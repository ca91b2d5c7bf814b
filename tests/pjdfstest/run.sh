#!/usr/bin/env bash
# Run pjdfstest against a kplugfs mount and compare its failures with the committed
# exclusion list. Fails when a test fails that is not listed, or a listed test passes
# (so the list never goes stale). Prints pass/fail/skip counts.
#
# usage: tests/pjdfstest/run.sh KPLUGFS_BIN PJDFSTEST_BIN
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kplugfs=$1
pjdfstest=$2
work=$(mktemp -d /var/tmp/kplugfs-pjdfs.XXXXXX)
backing=$work/backing
mnt=$work/mnt
mkdir -p "$backing" "$mnt"
chmod 0755 "$work" "$backing"
# The EROFS cases run `mount -o remount,ro|rw MNT`: mount(8) runs the helper
# /sbin/mount.fuse.kplugfs, which must be the binary under test while the suite runs (the
# one scripts/setup.sh installed is put back afterwards).
helper=/sbin/mount.fuse.kplugfs
prev_helper=$(readlink "$helper" 2>/dev/null || true)
swapped_helper=0
restore_helper() {
    [ "$swapped_helper" = 1 ] || return 0
    rm -f "$helper"
    if [ -n "$prev_helper" ]; then ln -s "$prev_helper" "$helper"; fi
}
cleanup() {
    "$kplugfs" umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
    rm -rf "$work"
    restore_helper
}
trap cleanup EXIT
bin=$(readlink -f "$kplugfs")
if [ "$(readlink -f "$helper" 2>/dev/null)" != "$bin" ]; then
    if [ -e "$helper" ] && [ ! -L "$helper" ]; then
        echo "$helper exists and is not a symlink: not replacing it"; exit 1
    fi
    swapped_helper=1
    ln -sfn "$bin" "$helper"
fi

"$kplugfs" mount "$backing" "$mnt" --attr-timeout 0s --log-file "$work/kplugfs.log" || exit 1
cd "$mnt"
# A second, distinct filesystem for the EXDEV cases.
secondary=$(mktemp -d /dev/shm/kplugfs-pjdfs.XXXXXX)
chmod 0755 "$secondary"
# Two runs of the suite on the same mount. pjdfstest 0.2.2 leaks descriptors of files it
# opened for writing (e.g. posix_fallocate::affected_only_create_flags keeps its O_RDWR fd),
# and Linux refuses `remount,ro` (EBUSY) while a file is open for writing, on any
# filesystem (tmpfs too): an EROFS case that runs after such a test cannot remount. So the 13
# EROFS cases run first in their own process, and the rest with remounts turned off (their
# "not allowed" skips are the cases the first run did).
"$pjdfstest" -c "$here/pjdfstest.toml" -p "$mnt" -s "$secondary" erofs > "$work/out-erofs.txt" 2>&1
status_erofs=$?
sed 's/^allow_remount *= *true/allow_remount = false/' "$here/pjdfstest.toml" > "$work/no-remount.toml"
"$pjdfstest" -c "$work/no-remount.toml" -p "$mnt" -s "$secondary" > "$work/out-rest.txt" 2>&1
status=$?
[ "$status" -ne 0 ] || status=$status_erofs
rm -rf "$secondary"
cd /
summary_erofs=$(grep -E '^Summary:' "$work/out-erofs.txt" | tail -1)
summary=$(grep -E '^Summary:' "$work/out-rest.txt" | tail -1)
if [ -z "$summary" ] || [ -z "$summary_erofs" ]; then
    echo "pjdfstest did not finish (exit $status):"; tail -30 "$work/out-erofs.txt" "$work/out-rest.txt"; exit 1
fi
count() { echo "$1" | grep -oE "[0-9]+ $2" | grep -oE '^[0-9]+'; }
erofs_total=$(count "$summary_erofs" total)
if [ "$erofs_total" -eq 0 ]; then
    echo "pjdfstest: no EROFS case ran (the pattern 'erofs' matched nothing):"; tail -5 "$work/out-erofs.txt"; exit 1
fi
# The second run's output without the EROFS cases it skipped (name line and reason line).
awk -v skip=0 '
    skip { skip = 0; if ($0 ~ /^[[:space:]]/) next }
    /^[a-z0-9_:]*erofs[a-z0-9_:]* +skipped$/ { skip = 1; next }
    { print }' "$work/out-rest.txt" > "$work/out-rest-filtered.txt"
cat "$work/out-erofs.txt" "$work/out-rest-filtered.txt" > "$work/out.txt"
pass=$(( $(count "$summary_erofs" passed) + $(count "$summary" passed) ))
fail=$(( $(count "$summary_erofs" failed) + $(count "$summary" failed) ))
skip=$(( $(count "$summary_erofs" skipped) + $(count "$summary" skipped) - erofs_total ))
grep -E '^[a-z0-9_:]+ +[A-Za-z]+$' "$work/out.txt" | awk '$2 != "ok" && $2 != "skipped" {print $1}' | sort -u > "$work/failed.txt"
grep -vE '^\s*(#|$)' "$here/exclusions.txt" | awk '{print $1}' | sort -u > "$work/excluded.txt"
unexpected=$(comm -23 "$work/failed.txt" "$work/excluded.txt")
stale=$(comm -13 "$work/failed.txt" "$work/excluded.txt")
echo "pjdfstest: $pass passed, $fail failed, $skip skipped"
echo "pjdfstest: $erofs_total EROFS cases (mount -o remount,ro|rw) ran first: $summary_erofs"
echo "pjdfstest: $(wc -l < "$work/excluded.txt") failures excluded with reasons (tests/pjdfstest/exclusions.txt)"
echo "pjdfstest: skipped because: $(grep -A1 -E ' skipped$' "$work/out.txt" | grep -E '^\s' | sed 's/^\s*//' | sort | uniq -c | sed 's/^ *//' | paste -sd ';' -)"
rc=0
if [ -n "$unexpected" ]; then
    echo "pjdfstest: unexpected failures:"
    for t in $unexpected; do
        echo "  $t"
        grep -A8 -E "^$t " "$work/out.txt" | head -9 | sed 's/^/    /'
    done
    rc=1
fi
if [ -n "$stale" ]; then
    echo "pjdfstest: excluded tests that now pass (remove them from exclusions.txt):"
    printf '  %s\n' $stale
    rc=1
fi
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then
    echo "pjdfstest exited $status without failures:"; tail -20 "$work/out.txt"; rc=1
fi
exit $rc
