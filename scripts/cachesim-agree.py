#!/usr/bin/env python3
"""Replay traces with every eviction policy that has a libCacheSim counterpart, in `kplugfs
sim` and in libCacheSim's `cachesim`, at 1, 5, 10 and 25 % of the unique ids (`--fractions`:
others, comma-separated), and print every
cell whose miss ratios differ at the 4th decimal (cachesim prints 4).

usage: scripts/cachesim-agree.py KPLUGFS CACHESIM [--param NAME:KEY=VALUE ...]
                                   [--fractions LIST] TRACE...

TRACE: any format `kplugfs trace convert` reads (`--format auto`), optionally gzipped
(traces/heldout/*.gz); each is converted to oracleGeneral first, which both tools then read.
CACHESIM: a `cachesim` binary (`scripts/bench.sh --only simpeer` builds libcachesim 0.3.5's
into /var/cache/kplugfs/cachesim). With libCacheSim 0.3.5 pass `--param s3fifo:fill-main=1
--param wtinylfu:evict-once=1` (docs/policies.md, "libCacheSim 0.3.5"). Exit status 1 if any
cell differs; docs/policies.md lists the known degenerate cases.
"""
import gzip, json, os, re, subprocess, sys, tempfile

POLICIES = "lru,fifo,clock,sieve,arc,twoq,lirs,s3fifo,wtinylfu"
FRACTIONS = "0.01,0.05,0.1,0.25"
# cachesim's report names, by kplugfs policy.
NAMES = {"LRU": "lru", "FIFO": "fifo", "Clock": "clock", "Sieve": "sieve", "ARC": "arc",
         "TwoQ": "twoq", "LIRS": "lirs", "S3FIFO": "s3fifo", "WTinyLFU": "wtinylfu"}


def run(cmd, **kw):
    """`cmd`'s stdout; exits with its stderr if it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"cachesim-agree: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return r.stdout


def oracle(kplugfs, trace, tmp):
    """The trace as an oracleGeneral file in `tmp`."""
    src = trace
    if trace.endswith(".gz"):
        src = os.path.join(tmp, os.path.basename(trace)[:-3])
        with gzip.open(trace, "rb") as f, open(src, "wb") as out:
            out.write(f.read())
    dst = os.path.join(tmp, os.path.basename(src) + ".oracle.bin")
    run([kplugfs, "trace", "convert", src, dst, "--to", "oracle"])
    return dst


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    kplugfs, cachesim, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    params, traces, fractions = [], [], FRACTIONS
    while args:
        if args[0] == "--param" and len(args) > 1:
            params += args[:2]; args = args[2:]
        elif args[0] == "--fractions" and len(args) > 1:
            fractions = args[1]; args = args[2:]
            try:
                ok = all(0 < float(f) <= 1 for f in fractions.split(","))
            except ValueError:
                ok = False
            if not ok:
                sys.exit(f"cachesim-agree: --fractions {fractions}: numbers in (0, 1], comma-separated")
        else:
            traces.append(args[0]); args = args[1:]
    cells, differ = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for trace in traces:
            path = oracle(kplugfs, os.path.abspath(trace), tmp)
            out = run([cachesim, path, "oracleGeneral", POLICIES, fractions,
                       "--ignore-obj-size=1", "--num-thread=1"], cwd=tmp)
            ref = {}
            for m in re.finditer(r" (\w+)\S* cache size\s+(\d+), \d+ req, miss ratio ([0-9.]+)", out):
                ref[(NAMES[m.group(1)], int(m.group(2)))] = float(m.group(3))
            if not ref:
                sys.exit(f"cachesim-agree: cachesim printed no miss ratio for {trace}: {out[-300:]}")
            sizes = sorted({n for _, n in ref})
            res = run([kplugfs, "sim", "--trace", path, "--format", "oracle", "--policy", POLICIES,
                       "--cache-objects", ",".join(map(str, sizes)), "--json", *params])
            for line in res.splitlines():
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                key = (r["policy"], r["cache_objects"])
                cells += 1
                if f"{r['miss_ratio']:.4f}" != f"{ref[key]:.4f}":
                    differ.append((os.path.basename(trace), *key, r["miss_ratio"], ref[key]))
            print(f"{trace}: {len(sizes)} sizes ({', '.join(map(str, sizes))} objects)", flush=True)
    for t, p, n, ours, theirs in differ:
        print(f"DIFFER {t} {p} at {n} objects: kplugfs {ours:.4f}, cachesim {theirs:.4f}")
    print(f"{cells - len(differ)} of {cells} cells identical to 4 decimals")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
