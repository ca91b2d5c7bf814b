#!/usr/bin/env python3
"""Write the held-out traces of traces/heldout/ (README there) into DIR, one id a line, and
print their paths: the LIRS authors' *.trace.gz (text; `*` checkpoint lines dropped),
cache2k/*.trace.xz (big-endian 32-bit ids) and address/*.trace.gz (`l|s 0xADDRESS N` lines,
the byte address being the id). Any `kplugfs sim --format txt` or `trace convert` reads them.

usage: scripts/heldout.py DIR        (scripts/adaptive-check.py --heldout imports it)
"""
import gzip, lzma, os, struct, sys

HELDOUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "traces", "heldout")


def lirs(path):
    with gzip.open(path, "rt") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("*")]


def cache2k(path):
    with lzma.open(path) as f:
        data = f.read()
    return struct.unpack(f">{len(data) // 4}I", data[:len(data) // 4 * 4])


def address(path):
    with gzip.open(path, "rt") as f:
        return [int(line.split()[1], 16) for line in f if line.strip()]


# (subdirectory, suffix, reader, prefix of the written file's name)
SETS = (("", ".trace.gz", lirs, ""), ("cache2k", ".trace.xz", cache2k, "cache2k-"),
        ("address", ".trace.gz", address, "address-"))


def convert(out_dir):
    """Converts every held-out trace into OUT_DIR; returns the written paths."""
    paths = []
    for sub, suffix, read, prefix in SETS:
        src_dir = os.path.join(HELDOUT, sub)
        if not os.path.isdir(src_dir):
            continue
        for name in sorted(os.listdir(src_dir)):
            if not name.endswith(suffix):
                continue
            path = os.path.join(out_dir, prefix + name[:-len(suffix)] + ".txt")
            with open(path, "w") as dst:
                dst.write("\n".join(map(str, read(os.path.join(src_dir, name)))) + "\n")
            paths.append(path)
    if not paths:
        sys.exit(f"no traces in {HELDOUT}")
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(sys.argv[1], exist_ok=True)
    for p in convert(sys.argv[1]):
        print(p)
