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
cleanup() { "$kplugfs" umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$kplugfs" mount "$backing" "$mnt" --attr-timeout 0s --log-file "$work/kplugfs.log" || exit 1
cd "$mnt"
# A second, distinct filesystem for the EXDEV cases.
secondary=$(mktemp -d /dev/shm/kplugfs-pjdfs.XXXXXX)
chmod 0755 "$secondary"
"$pjdfstest" -c "$here/pjdfstest.toml" -p "$mnt" -s "$secondary" > "$work/out.txt" 2>&1
status=$?
rm -rf "$secondary"
cd /
summary=$(grep -E '^Summary:' "$work/out.txt" | tail -1)
if [ -z "$summary" ]; then
    echo "pjdfstest did not finish (exit $status):"; tail -30 "$work/out.txt"; exit 1
fi
count() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+'; }
pass=$(count passed); fail=$(count failed); skip=$(count skipped)
grep -E '^[a-z0-9_:]+ +[A-Za-z]+$' "$work/out.txt" | awk '$2 != "ok" && $2 != "skipped" {print $1}' | sort -u > "$work/failed.txt"
grep -vE '^\s*(#|$)' "$here/exclusions.txt" | awk '{print $1}' | sort -u > "$work/excluded.txt"
unexpected=$(comm -23 "$work/failed.txt" "$work/excluded.txt")
stale=$(comm -13 "$work/failed.txt" "$work/excluded.txt")
echo "pjdfstest: $pass passed, $fail failed, $skip skipped"
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
