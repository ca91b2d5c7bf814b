#!/usr/bin/env python3
"""Write a block trace split into fixed-size blocks as a libCacheSim oracleGeneral binary.

usage: oracle-split.py CSV BLOCK_BYTES OUT

CSV is what `kplugfs trace convert TRACE OUT --to csv` writes (header
`version,time,op,size,lbn`: seconds, hex opcode, bytes, 512-byte sectors), so kplugfs's own
readers parse the source trace. Each request becomes one record per BLOCK_BYTES block it
touches (id = byte offset // BLOCK_BYTES, size BLOCK_BYTES), in order, like `kplugfs sim
--split-blocks`; the next-access field (1-based index of the next record with the same id,
-1 if none) is filled as libCacheSim's oracleGeneral traces have it. Requests of size 0 are
skipped. Prints one line: records and unique ids. The output appears only when complete.
scripts/bench.sh --only simpeer uses it to give kplugfs sim and libCacheSim's cachesim the
same million-request file.
"""
from array import array
import csv
import os
import struct
import sys

if len(sys.argv) != 4:
    sys.exit("usage: oracle-split.py CSV BLOCK_BYTES OUT")
src, out = sys.argv[1], sys.argv[3]
try:
    bs = int(sys.argv[2])
    assert bs > 0
except (ValueError, AssertionError):
    sys.exit(f"oracle-split: BLOCK_BYTES must be a positive integer, not {sys.argv[2]!r}")

times, ids = array("I"), array("Q")   # compact: millions of records
with open(src, newline="") as f:
    rows = csv.reader(f)
    head = next(rows, None)
    if head != ["version", "time", "op", "size", "lbn"]:
        sys.exit(f"oracle-split: {src}: not a `kplugfs trace convert --to csv` file (header {head})")
    for n, row in enumerate(rows, 2):
        try:
            t, size, lbn = int(float(row[1])), int(row[3]), int(row[4])
        except (ValueError, IndexError):
            sys.exit(f"oracle-split: {src}:{n}: bad line {row}")
        if size <= 0:
            continue
        start = lbn * 512
        first, last = start // bs, (start + size - 1) // bs
        times.extend([t & 0xFFFFFFFF] * (last - first + 1))
        ids.extend(range(first, last + 1))

nxt = array("q", [-1]) * len(ids)
seen = {}
for i in range(len(ids) - 1, -1, -1):
    nxt[i] = seen.get(ids[i], -1)
    seen[ids[i]] = i + 1
rec = struct.Struct("<IQIq")
tmp = out + ".tmp"
with open(tmp, "wb") as f:
    for c in range(0, len(ids), 1 << 16):
        f.write(b"".join(rec.pack(times[i], ids[i], bs, nxt[i]) for i in range(c, min(c + (1 << 16), len(ids)))))
os.replace(tmp, out)
print(f"records={len(ids)} unique={len(seen)}")
