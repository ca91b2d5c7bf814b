#!/usr/bin/env python3
"""List a directory of a mount, then read every file in it: the small-object rows of
scripts/bench.sh's s3 scenario.

usage: s3files.py DIR --expect N --size BYTES [--jobs J]

1. list: the names of DIR, as `ls -f` reads them (getdents only, no stat), timed;
2. read: every file opened, read whole and closed by J threads (the GIL is released in the
   system calls), timed; each must hold exactly BYTES bytes.

Prints one JSON line: {"files", "list_s", "read_s", "entries_per_s", "files_per_s", "mib_s"}.
Fails (exit 1) if the listing does not hold exactly N names or a file has another size.
"""
import argparse
import concurrent.futures
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--expect", type=int, required=True)
ap.add_argument("--size", type=int, required=True)
ap.add_argument("--jobs", type=int, default=16)
a = ap.parse_args()

t0 = time.monotonic()
names = os.listdir(a.dir)
t1 = time.monotonic()
if len(names) != a.expect:
    sys.exit(f"s3files: {a.dir} lists {len(names)} names, expected {a.expect}")


def read(name):
    fd = os.open(os.path.join(a.dir, name), os.O_RDONLY)
    try:
        n = 0
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                return n
            n += len(b)
    finally:
        os.close(fd)


t2 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
    sizes = list(ex.map(read, names))
t3 = time.monotonic()
bad = [(n, s) for n, s in zip(names, sizes) if s != a.size]
if bad:
    sys.exit(f"s3files: {len(bad)} files of the wrong size, e.g. {bad[0]}")
list_s, read_s = t1 - t0, t3 - t2
print(json.dumps({"files": len(names), "list_s": round(list_s, 4), "read_s": round(read_s, 4),
                  "entries_per_s": round(len(names) / list_s, 1),
                  "files_per_s": round(len(names) / read_s, 1),
                  "mib_s": round(len(names) * a.size / read_s / 2**20, 2)}))
