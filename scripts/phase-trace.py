#!/usr/bin/env python3
"""Build the phase-changing trace the `adaptive` governor is judged on (docs/policies.md):
real traces one after the other, each in its own id space, so the policy that wins changes
from phase to phase.

    phase 1: sprite (LIRS paper; recency-friendly, LRU/S3-FIFO win)
    phase 2: cloudPhysicsIO (ARC/LIRS win)
    phase 3: a one-pass scan of 60,000 new ids interleaved 1:1 with a replay of sprite's
             first 60,000 requests (scan-resistant policies win)
    phase 4: sprite again, in a fresh id space

Output: one id per line (`--format txt`). Deterministic: no randomness.

usage: scripts/phase-trace.py OUT [--data traces/data]
"""
import sys
from pathlib import Path


def ids(path: Path):
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("*"):
            yield int(line)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    data = Path(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--data" else Path("traces/data")
    sprite = list(ids(data / "sprite.trace"))
    cloud = list(ids(data / "cloudPhysicsIO.txt"))
    space = 1 << 40
    trace = [space * 1 + i for i in sprite]
    trace += [space * 2 + i for i in cloud]
    scan = [space * 3 + i for i in range(60_000)]
    for s, r in zip(scan, sprite[:60_000]):
        trace += [s, space * 4 + r]
    trace += [space * 5 + i for i in sprite]
    out.write_text("".join(f"{i}\n" for i in trace))
    print(f"{out}: {len(trace)} requests, {len(set(trace))} unique ids", file=sys.stderr)


main()
