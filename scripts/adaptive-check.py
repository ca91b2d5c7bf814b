#!/usr/bin/env python3
"""Compare `adaptive` with every fixed eviction policy on the real traces in traces/data at
1, 5, 10 and 25 % (libCacheSim's object mode, as the golden tests use), and print, per
(trace, size), the best fixed policy, adaptive's miss ratio and the difference.

usage: scripts/adaptive-check.py KPLUGFS_BINARY [--param adaptive:key=value ...]
                                 [--trace PATH ...] [--heldout] [--json FILE]
Exit status 1 if adaptive is more than 0.005 worse than the best fixed policy anywhere: with
the default rule that is cloudPhysicsIO (objects) at 25 %, out of reach of a governor that
decides from the past (docs/policies.md, "Why cloudPhysicsIO objects at 25 % is out of reach").

--heldout replays the traces of traces/heldout/ instead (the LIRS authors', cache2k's web
and database traces, SPEC CPU address traces; no setting of `adaptive` was chosen on them,
but for its rule for tied leaders: traces/heldout/README.md, docs/policies.md "On traces it
was not tuned on") and also counts the cells over 0.01.

--json FILE also writes one JSON object a cell to FILE (`trace`, `size`, `best`,
`best_miss_ratio`, `adaptive_miss_ratio`, `diff`, `switches`, `requests`): what
`scripts/bench.sh --only adaptive` reports from.
"""
import json, os, subprocess, sys, tempfile

FIXED = "fifo,lru,clock,sieve,arc,twoq,lirs,s3fifo,wtinylfu"
TRACES = [
    ("traces/data/cloudPhysicsIO.vscsi", []),
    ("traces/data/cloudPhysicsIO.vscsi", ["--split-blocks", "4096"]),
    ("traces/data/sprite.trace", []),
    ("traces/data/msr-cambridge1-sample.csv", ["--split-blocks", "4096"]),
    ("traces/data/systor17-sample.csv", ["--split-blocks", "4096"]),
]

def main():
    kplugfs = sys.argv[1]
    extra, traces, args, jsonl = [], [], sys.argv[2:], None
    while args:
        if args[0] == "--param":
            extra += args[:2]; args = args[2:]
        elif args[0] == "--trace":
            traces.append((args[1], [])); args = args[2:]
        elif args[0] == "--heldout":
            traces += heldout(); args = args[1:]
        elif args[0] == "--json":
            jsonl = open(args[1], "w"); args = args[2:]
        else:
            sys.exit(f"unknown argument {args[0]}")
    worst, over5, over10, cells = -1.0, 0, 0, 0
    print(f"{'TRACE':44} {'SIZE':>5} {'BEST FIXED':>10} {'MISS':>7} {'ADAPTIVE':>8} {'DIFF':>8} {'SWITCHES':>8}")
    for trace, opts in traces or TRACES:
        out = subprocess.run(
            [kplugfs, "sim", "--trace", trace, *opts, "--policy", "adaptive," + FIXED,
             "--cache-size", "0.01,0.05,0.1,0.25", "--json", *extra],
            check=True, capture_output=True, text=True).stdout
        rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        for f in (0.01, 0.05, 0.1, 0.25):
            at = {r["policy"]: r for r in rows if r["cache_fraction"] == f}
            best = min((r["miss_ratio"], p) for p, r in at.items() if p != "adaptive")
            a = at["adaptive"]
            diff = a["miss_ratio"] - best[0]
            worst = max(worst, diff)
            cells += 1
            over5 += diff > 0.005
            over10 += diff > 0.01
            name = trace.split("/")[-1] + (" " + " ".join(opts) if opts else "")
            print(f"{name:44} {f:5} {best[1]:>10} {best[0]:7.4f} {a['miss_ratio']:8.4f} {diff:+8.4f} {a['policy_switches']:8}")
            if jsonl:
                jsonl.write(json.dumps({
                    "trace": name, "size": f, "best": best[1], "best_miss_ratio": best[0],
                    "adaptive_miss_ratio": a["miss_ratio"], "diff": diff,
                    "switches": a["policy_switches"], "requests": a["requests"]}) + "\n")
                jsonl.flush()
    print(f"worst difference: {worst:+.4f}; within 0.005 on {cells - over5} of {cells} cells, "
          f"within 0.01 on {cells - over10}")
    sys.exit(0 if worst <= 0.005 else 1)

def heldout():
    """The traces of traces/heldout/, one id a line in a temporary directory (heldout.py)
    removed when the script exits."""
    global _tmp
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import heldout as h
    _tmp = tempfile.TemporaryDirectory(prefix="kplug-heldout-")
    return [(p, ["--format", "txt"]) for p in h.convert(_tmp.name)]

main()
