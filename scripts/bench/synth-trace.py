#!/usr/bin/env python3
"""Write a generated trace as a libCacheSim oracleGeneral binary: inputs no policy, setting or
optimization of kplugfs was chosen on, to check `kplugfs sim` against libCacheSim's `cachesim`
beyond the traces in the repo.

usage: synth-trace.py SEED REQUESTS OUT [--zipf IDS,ALPHA]

The trace is a sequence of phases, each 5-20 % of the requests, of four kinds drawn at random:
Zipf over N ids (N and the exponent drawn once per trace from 20,000/50,000/120,000 and
0.6/0.9/1.1, the ids shuffled), a loop over a range of ids longer than most caches, a scan of
ids never seen again interleaved half and half with the Zipf ids, and uniform over 2N ids.
Every object has size 1; the next-access field is filled as oracle-split.py fills it. The same
SEED gives the same file. Prints the records and unique ids; the output appears only when
complete.

--zipf IDS,ALPHA writes one Zipf phase instead, over IDS shuffled ids with exponent ALPHA:
a large footprint (`--zipf 8000000,0.8` over 20 M requests touches about 5.2 M ids), where a
replay's tables outgrow the CPU's caches and a policy's state its first memory; it takes
about a minute and a few GB of memory per 10 M requests.

Compare (every size, every policy libCacheSim also has; S3-FIFO and W-TinyLFU differ where
docs/policies.md says):
  KPLUG_SIMPEER_TRACES=OUT scripts/bench.sh --only simpeer --runs 1
"""
import bisect
import itertools
import os
import random
import struct
import sys

USAGE = "usage: synth-trace.py SEED REQUESTS OUT [--zipf IDS,ALPHA]"
if len(sys.argv) not in (4, 6) or (len(sys.argv) == 6 and sys.argv[4] != "--zipf"):
    sys.exit(USAGE)
try:
    seed, n = int(sys.argv[1]), int(sys.argv[2])
    assert n > 0
except (ValueError, AssertionError):
    sys.exit("synth-trace: SEED must be an integer and REQUESTS a positive integer")
out = sys.argv[3]
only_zipf = None
if len(sys.argv) == 6:
    try:
        ids_arg, alpha_arg = sys.argv[5].split(",")
        only_zipf = (int(ids_arg), float(alpha_arg))
        assert only_zipf[0] > 0 and only_zipf[1] >= 0
    except (ValueError, AssertionError):
        sys.exit(f"synth-trace: --zipf takes IDS,ALPHA (a positive integer, a number >= 0), not {sys.argv[5]!r}")

rng = random.Random(seed)
universe = rng.choice([20000, 50000, 120000])
alpha = rng.choice([0.6, 0.9, 1.1])
if only_zipf:
    universe, alpha = only_zipf
cdf = list(itertools.accumulate(1 / (i + 1) ** alpha for i in range(universe)))
perm = list(range(universe))
rng.shuffle(perm)


def zipf():
    return perm[bisect.bisect_left(cdf, rng.random() * cdf[-1])]


LOOP_BASE, SCAN_BASE = 500_000_000, 1_000_000_000
loop_len = None if only_zipf else rng.randint(1000, universe // 4)
scanned = 0
ids = []
if only_zipf:
    ids = [zipf() for _ in range(n)]
while len(ids) < n:
    kind = rng.choice(["zipf", "loop", "scan", "uniform"])
    for _ in range(rng.randint(max(1, n // 20), max(1, n // 5))):
        if kind == "zipf":
            ids.append(zipf())
        elif kind == "loop":
            ids.append(LOOP_BASE + len(ids) % loop_len)
        elif kind == "scan" and rng.random() < 0.5:
            ids.append(zipf())
        elif kind == "scan":
            scanned += 1
            ids.append(SCAN_BASE + scanned)
        else:
            ids.append(rng.randrange(2 * universe))
ids = ids[:n]

# The next access: the 1-based index of the next record with the same id, -1 if none.
following, seen = [-1] * n, {}
for i in range(n - 1, -1, -1):
    following[i] = seen.get(ids[i], -1)
    seen[ids[i]] = i + 1

tmp = out + ".part"
with open(tmp, "wb") as f:
    for i, x in enumerate(ids):
        f.write(struct.pack("<IQIq", i, x + 1, 1, following[i]))
os.replace(tmp, out)
print(f"records={n} unique={len(seen)}")
