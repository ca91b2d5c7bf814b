#!/usr/bin/env python3
"""Many-small-files load generator: create, stat and read N files of SIZE bytes in DIR.

usage: smallfiles.py DIR N [SIZE] [--drop-caches]
Prints one JSON object: ops/s per phase. Files go into DIR/d000..d099 (100 subdirectories,
so no single directory holds more than N/100 entries). With --drop-caches the page, dentry
and inode caches are dropped before the stat and read phases (needs root), so they reach
the file system below (the FUSE daemon, for a mount).
"""
import json
import os
import sys
import time


def drop(root):
    # syncfs of the file system under test only (a global sync would wait for unrelated
    # writers), then drop clean pages, dentries and inodes.
    import ctypes
    fd = os.open(root, os.O_RDONLY)
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    finally:
        os.close(fd)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dropping = "--drop-caches" in sys.argv
    root, n = args[0], int(args[1])
    size = int(args[2]) if len(args) > 2 else 4096
    ndirs = 100
    payload = os.urandom(size)
    paths = [os.path.join(root, "d%03d" % (i % ndirs), "f%07d" % i) for i in range(n)]
    out = {"files": n, "size": size}

    t = time.perf_counter()
    for d in range(ndirs):
        os.mkdir(os.path.join(root, "d%03d" % d))
    for p in paths:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, payload)
        os.close(fd)
    out["create_per_s"] = n / (time.perf_counter() - t)

    if dropping:
        drop(root)
    t = time.perf_counter()
    total = 0
    for p in paths:
        total += os.stat(p).st_size
    out["stat_per_s"] = n / (time.perf_counter() - t)
    assert total == n * size, "stat sizes do not add up"

    if dropping:
        drop(root)
    t = time.perf_counter()
    got = 0
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        got += len(os.read(fd, size + 1))
        os.close(fd)
    out["read_per_s"] = n / (time.perf_counter() - t)
    assert got == n * size, "short reads"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
