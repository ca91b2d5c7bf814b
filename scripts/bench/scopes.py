#!/usr/bin/env python3
"""The `scopes` scenario of scripts/bench.sh: reads one case's figures, checks a scoped mount,
and writes the scenario's section of the report.

usage: scopes.py scan --dir DIR --seconds S --threads N --block BYTES
       scopes.py case --fio FIO.json --scan SCAN.json --probe HOTFILES.txt --stats STATS.json --block BYTES
       scopes.py check --stats STATS.json NAME=POLICY ...
       scopes.py report --raw RAW --out DIR [--docs FILE] --params "k=v ..."

scan    the scan workload: the files of DIR (in name order) read block by block, O_DIRECT,
        as ONE sequential stream that starts over at the end, for S seconds, by N threads
        (each its own descriptors) taking the stream's next block in turn: N reads in flight,
        as a readahead would keep, every block read once per pass. Prints one JSON object.
case    prints k=v words for bench.sh's `emit`: per workload (hot/: fio; scan/: the scan
        driver) its throughput, its requests (bytes read / block size: every read is one
        aligned block), misses and hits from the `hot-files` probe's report (per file, summed
        per top-level directory), the mount's own cache counters, prefetch issued, probe
        events dropped and, when the stats have `scopes`, each scope's counters.
check   exits 1 with a message unless `kplugfs stats --json` shows each scope NAME with its
        POLICY as active eviction policy (when the stats have `scopes` and the scope lists
        its policies, `active`; a missing field only warns).
report  appends the section "## 14. Scopes ..." to DIR/report.md, adds its summary to
        DIR/report.json and, with --docs, replaces (or adds) that section of FILE, keeping the
        others, as report.py does for its own sections.
"""
import argparse
import json
import mmap
import os
import statistics
import sys
import threading
import time

WORKLOADS = ("hot", "scan")
SECTION = "14."


def scopes_of(stats):
    """The scopes of a stats snapshot as {name: scope}, from an object keyed by name (what
    `kplugfs stats --json` shows) or an array of objects with a `name`; {} when there is none."""
    sc = stats.get("scopes")
    if isinstance(sc, dict):
        return {str(k): v for k, v in sc.items() if isinstance(v, dict)}
    out = {}
    for s in sc if isinstance(sc, list) else []:
        if isinstance(s, dict):
            out[str(s.get("name", s.get("path", "?")))] = s
    return out


def policies_of(scope):
    """A scope's policies by role (`active`, or `policies`), or None when it lists none."""
    p = scope.get("active", scope.get("policies"))
    return p if isinstance(p, dict) else None


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def scan(a):
    block, deadline = int(a.block), time.monotonic() + float(a.seconds)
    files = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir))
    stream = [(i, off) for i, f in enumerate(files) for off in range(0, os.path.getsize(f) // block * block, block)]
    if not stream:
        sys.exit(f"scan: no whole block to read in {a.dir}")
    lock, state, errors = threading.Lock(), {"next": 0, "reads": 0, "bytes": 0}, []

    def reader():
        fds = [os.open(f, os.O_RDONLY | os.O_DIRECT) for f in files]
        buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT wants
        try:
            while not errors and time.monotonic() < deadline:
                with lock:
                    k = state["next"]
                    state["next"] += 1
                fi, off = stream[k % len(stream)]
                n = os.preadv(fds[fi], [buf], off)
                if n != block:
                    raise OSError(f"short read of {files[fi]} at {off}: {n} bytes")
                with lock:
                    state["reads"] += 1
                    state["bytes"] += n
        except OSError as e:
            errors.append(str(e))
        finally:
            for fd in fds:
                os.close(fd)

    t0 = time.monotonic()
    threads = [threading.Thread(target=reader) for _ in range(int(a.threads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if errors:
        sys.exit("scan: " + errors[0])
    print(json.dumps({"reads": state["reads"], "bytes": state["bytes"], "seconds": round(secs, 3),
                      "mib_s": round(state["bytes"] / 2**20 / secs, 2), "iops": round(state["reads"] / secs, 1),
                      "passes": round(state["reads"] / len(stream), 2), "threads": int(a.threads)}))


def case(a):
    block = int(a.block)
    fio = json.load(open(a.fio))
    sc = json.load(open(a.scan))
    w = {k: {"mib_s": 0.0, "iops": 0.0, "jobs": 0, "bytes": 0, "ios": 0} for k in WORKLOADS}
    for j in fio["jobs"]:
        w["hot"]["mib_s"] += j["read"]["bw"] / 1024
        w["hot"]["iops"] += j["read"]["iops"]
        w["hot"]["jobs"] += 1
        w["hot"]["ios"] += j["read"]["total_ios"]
    w["scan"].update(mib_s=sc["mib_s"], iops=sc["iops"], jobs=sc["threads"], ios=sc["reads"])
    # hot-files: "rank bytes reads misses file" under its "by bytes read" header.
    files, section = {}, None
    for line in open(a.probe):
        if line.startswith("#"):
            section = "bytes" if "by bytes read" in line else "misses"
            continue
        f = line.split(None, 4)
        if section == "bytes" and len(f) == 5 and f[0].isdigit():
            files[f[4].strip()] = (int(f[1]), int(f[2]), int(f[3]))
    unknown = 0
    for path, (nbytes, _reads, misses) in files.items():
        top = path.split("/", 1)[0]
        if top not in w:
            unknown += 1
            continue
        w[top]["bytes"] += nbytes
        w[top]["misses"] = w[top].get("misses", 0) + misses
    stats = json.load(open(a.stats))
    cache, pf = stats.get("cache", {}), stats.get("prefetch", {})
    probes = stats.get("probes", {})
    kv = {}
    for k in WORKLOADS:
        req = w[k]["bytes"] // block
        miss = w[k].get("misses", 0)
        kv.update({f"{k}_mib_s": round(w[k]["mib_s"], 2), f"{k}_iops": round(w[k]["iops"], 1),
                   f"{k}_jobs": w[k]["jobs"], f"{k}_ios": w[k]["ios"], f"{k}_requests": req,
                   f"{k}_misses": miss, f"{k}_hits": max(req - miss, 0)})
    kv["scan_passes"] = sc["passes"]
    kv.update({"cache_hits": cache.get("hits", 0), "cache_misses": cache.get("misses", 0),
               "cache_evictions": cache.get("evictions", 0), "pf_issued": pf.get("issued_blocks", 0),
               "backend_reads": stats.get("backend", {}).get("reads", 0),
               "probe_delivered": sum(v.get("delivered", 0) for v in probes.values()),
               "probe_dropped": sum(v.get("dropped", 0) for v in probes.values()),
               "probe_files": len(files), "probe_unknown_files": unknown})
    for name, s in scopes_of(stats).items():
        tag = {"/": "root"}.get(name, name.strip("/").replace("/", "_") or "root")
        for f, keys in (("share_blocks", ("share_blocks",)), ("resident", ("resident_blocks", "resident")),
                        ("hits", ("hits",)), ("misses", ("misses",)), ("evictions", ("evictions",)),
                        ("insertions", ("insertions",))):
            v = next((s[k] for k in keys if num(s.get(k)) is not None), None)
            if v is not None:
                kv[f"sc_{tag}_{f}"] = v
        pol = policies_of(s)
        if pol:
            kv[f"sc_{tag}_policies"] = "+".join(f"{r}:{v}" for r, v in sorted(pol.items()) if v).replace(" ", "_")
    print(" ".join(f"{k}={v}" for k, v in kv.items()))


def check(a):
    stats = json.load(open(a.stats))
    if not isinstance(stats.get("scopes"), (dict, list)):
        print("the mount's stats have no `scopes`: cannot check the scopes and their policies",
              file=sys.stderr)
        return
    sc = scopes_of(stats)
    for want in a.want:
        name, pol = want.split("=", 1)
        s = sc.get(name) or next((x for x in sc.values() if str(x.get("path", "")).strip("/") == name), None)
        if s is None:
            sys.exit(f"scope {name} is not in the stats' `scopes` ({', '.join(sc) or 'none'})")
        p = policies_of(s)
        if p is None:
            print(f"scope {name}: the stats list no policies, cannot check that {pol} is active", file=sys.stderr)
        elif (p.get("eviction") != pol) if "eviction" in p else (pol not in json.dumps(p)):
            sys.exit(f"scope {name}: {pol} is not its active eviction policy ({json.dumps(p)})")


# ------------------------------------------------------------------------- report
def med(v):
    return statistics.median(v) if v else float("nan")


def spread(v):
    return f" ({min(v):.1f}-{max(v):.1f})" if len(v) > 1 else ""


def pct(x):
    return "n/a" if x != x else f"{100 * x:.1f} %"


def report(a):
    recs = [json.loads(l) for l in open(a.raw) if l.strip()]
    params = dict(kv.split("=", 1) for kv in a.params.split())
    S = [r for r in recs if r["scenario"] == "scopes"]
    skipped = [r for r in recs if r["scenario"] == "scopesskip"]
    L = [r for r in recs if r["scenario"] == "scopesload"]
    md = ["## 14. Scopes: per-subtree policies against one global policy (the cache_ext experiment)\n"]
    P = md.append
    if L:
        avg = lambda r: " / ".join(str(r[k]) for k in ("load1", "load5", "load15"))
        P("Load average at the start " + avg(L[0]) + (", at the end " + avg(L[-1]) if len(L) > 1 else "")
          + f" on {L[0]['nproc']} CPUs.\n")
    c, b = int(params["cache_mib"]), int(params["block_kib"])
    P(f"Two workloads in two subtrees of one mount of a slow store, sharing one block cache of C = {c} MiB "
      f"(blocks of {b} KiB): in `hot/`, one file of C/2 = {params['hot_mib']} MiB read by one fio job at "
      f"random (psync, `--direct=1`), one block a read, `random_distribution=zipf:1.2`; in `scan/`, "
      f"{params['scan_files']} files of {params['scan_file_mib']} MiB (3C/2 = {params['scan_mib']} MiB "
      "together, larger than the cache) read block by block (O_DIRECT) as one sequential stream that "
      f"starts over at its end, by {params['scan_threads']} threads taking its next block in turn "
      f"(`scripts/bench/scopes.py scan`: {params['scan_threads']} reads in flight, as a readahead would "
      "keep; every block read once a pass). Both at once for "
      f"{params['secs']} s, pinned to CPU {params['pin_cpu']}. Every case on a fresh copy of the files and a fresh, cold mount "
      f"(`--cache-size {c}MiB --block-size {b}KiB --backend-latency 2ms --no-kernel-cache`, a fresh "
      "`--state-dir`) with prefetch off (the `stride` plugin with a confirmation count it never "
      "reaches: every miss is one demand read of the 2 ms store, so hit ratios measure eviction "
      "alone). *global*: one eviction plugin in `.kplug/plugins/` for the whole mount. *scoped*: "
      "the scopes `hot` (path `hot`, share as given) and `scan` (path `scan`, share 0) in "
      "`.kplug/scopes/`, each with its own eviction plugin in its `plugins/` (both inherit the "
      "mount's prefetch plugin, `stride`). The sizes follow C by rule (hot set C/2: it fits "
      "alone; scan 3C/2: it never fits), not tuned to a result.\n")
    P("Hit ratios come from the `hot-files` probe (`k=100`), loaded in every case, global and "
      "scoped alike: per file, the bytes its FUSE reads returned and its cache misses (misses "
      "joining a fetch in flight included), summed per top-level directory; a workload's "
      "requests are its bytes read / block size (each read is one aligned block), its hits the "
      "requests less the misses. *combined* hit ratio = (hits of both) / (requests of both); "
      "*combined* MiB/s = the sum of both workloads'. Both workloads run for the same time, so "
      "the faster one (the hot reader, when it hits) weighs more in both. MiB/s: median over "
      "the runs (min-max); hit ratios: over the sum of the runs.\n")
    if any(r.get("probe_dropped", 0) for r in S):
        P("**Some probe events were dropped** (ring full): the hit ratios of the cases marked `*` "
          "undercount requests and misses.\n")
    pf = sorted({r["case"] for r in S if r.get("pf_issued", 0)})
    if pf:
        P("**Prefetch was not off** in " + ", ".join(pf) + " (blocks prefetched: `pf_issued` in "
          "report.json): there, hits include prefetched blocks.\n")
    if skipped:
        P("**Scoped cases not run**: " + skipped[0].get("reason", "").replace("_", " ") + ".\n")
    cases = list(dict.fromkeys(r["case"] for r in S))
    rows = {}
    for cs in cases:
        R = [r for r in S if r["case"] == cs]
        t = lambda k: sum(r.get(k, 0) for r in R)
        hr = lambda w: t(f"{w}_hits") / t(f"{w}_requests") if t(f"{w}_requests") else float("nan")
        req = t("hot_requests") + t("scan_requests")
        mib = {w: [r[f"{w}_mib_s"] for r in R] for w in WORKLOADS}
        comb = [r["hot_mib_s"] + r["scan_mib_s"] for r in R]
        rows[cs] = {"kind": R[0]["kind"], "hot_mib_s": med(mib["hot"]), "scan_mib_s": med(mib["scan"]),
                    "hot_hit": hr("hot"), "scan_hit": hr("scan"),
                    "combined_hit": (t("hot_hits") + t("scan_hits")) / req if req else float("nan"),
                    "combined_mib_s": med(comb), "runs": len(R), "dropped": t("probe_dropped"),
                    "spread": {"hot": spread(mib["hot"]), "scan": spread(mib["scan"]), "comb": spread(comb)}}
    P("| case | kind | hot MiB/s | hot hit ratio | scan MiB/s | scan hit ratio | combined hit ratio | combined MiB/s |")
    P("|---|---|---:|---:|---:|---:|---:|---:|")
    for cs, x in rows.items():
        P(f"| {cs}{' *' if x['dropped'] else ''} | {x['kind']} | {x['hot_mib_s']:.1f}{x['spread']['hot']} | "
          f"{pct(x['hot_hit'])} | {x['scan_mib_s']:.1f}{x['spread']['scan']} | {pct(x['scan_hit'])} | "
          f"{pct(x['combined_hit'])} | {x['combined_mib_s']:.1f}{x['spread']['comb']} |")
    P("")
    summary = {"cases": rows}
    G = {k: v for k, v in rows.items() if v["kind"] == "global"}
    Sc = {k: v for k, v in rows.items() if v["kind"] == "scoped"}
    scoped_recs = [r for r in S if r["kind"] == "scoped" and any(k.startswith("sc_") for k in r)]
    if scoped_recs:
        P("The scopes' own counters (`kplugfs stats --json`, `scopes`), summed over the runs, against "
          "the probe's figures:\n")
        P("| case | scope | share blocks | resident | hits | misses | hit ratio (scope) | hit ratio (probe) |")
        P("|---|---|---:|---:|---:|---:|---:|---:|")
        for cs in Sc:
            R = [r for r in scoped_recs if r["case"] == cs]
            for tag in ("hot", "scan", "root"):
                if not any(f"sc_{tag}_hits" in r for r in R):
                    continue
                h, m = sum(r.get(f"sc_{tag}_hits", 0) for r in R), sum(r.get(f"sc_{tag}_misses", 0) for r in R)
                if tag == "root" and h + m == 0:
                    continue  # the rest of the mount: nothing read there
                last = R[-1]
                P(f"| {cs} | {tag if tag != 'root' else '/'} | {last.get(f'sc_{tag}_share_blocks', '')} | "
                  f"{last.get(f'sc_{tag}_resident', '')} | {h} | {m} | {pct(h / (h + m) if h + m else float('nan'))} | "
                  f"{pct(rows[cs][tag + '_hit']) if tag != 'root' else ''} |")
        P("")
    pick = lambda d, k: max(d, key=lambda n: (d[n][k] if d[n][k] == d[n][k] else -1)) if d else None
    gh, gt = pick(G, "combined_hit"), pick(G, "combined_mib_s")
    sb = pick(Sc, "combined_hit")
    if gh:
        P(f"Best global policy by combined hit ratio: **{gh}** ({pct(G[gh]['combined_hit'])}); by combined "
          f"throughput: **{gt}** ({G[gt]['combined_mib_s']:.1f} MiB/s).")
    if not Sc:
        P("\n**Target** (the scoped pair at least 30 % ahead of the best single global policy on the "
          "combined hit ratio or throughput, neither workload worse): **not evaluated**, no scoped case ran.\n")
    elif gh:
        s = Sc[sb]
        rh = s["combined_hit"] / G[gh]["combined_hit"] if G[gh]["combined_hit"] else float("nan")
        rt = s["combined_mib_s"] / G[gt]["combined_mib_s"] if G[gt]["combined_mib_s"] else float("nan")
        # Neither workload worse than under the global policy it is compared with, on the
        # criterion's own measure, at the precision shown (hit ratio 0.1 %; 0.1 MiB/s).
        hit_r = lambda x: round(1000 * x) if x == x else -1
        mib_r = lambda x: round(10 * x) if x == x else -1
        worse_h = [w for w in WORKLOADS if hit_r(s[f"{w}_hit"]) < hit_r(G[gh][f"{w}_hit"])]
        worse_t = [w for w in WORKLOADS if mib_r(s[f"{w}_mib_s"]) < mib_r(G[gt][f"{w}_mib_s"])]
        met_h, met_t = rh >= 1.3 and not worse_h, rt >= 1.3 and not worse_t
        P(f"Best scoped pair (by combined hit ratio, of {len(Sc)} tried: {', '.join(Sc)}): **{sb}** "
          f"({pct(s['combined_hit'])}, {s['combined_mib_s']:.1f} MiB/s).\n")
        P("| best scoped pair / best global | ratio | hot | scan |")
        P("|---|---:|---|---|")
        cmp_ = lambda x, y: "better" if x > y else ("equal" if x == y else "**worse**")
        P(f"| combined hit ratio, {sb} / {gh} | {rh:.3f} | "
          + " | ".join(f"{pct(s[f'{w}_hit'])} vs {pct(G[gh][f'{w}_hit'])}: "
                       + cmp_(hit_r(s[f'{w}_hit']), hit_r(G[gh][f'{w}_hit'])) for w in WORKLOADS) + " |")
        P(f"| combined MiB/s, {sb} / {gt} | {rt:.3f} | "
          + " | ".join(f"{s[f'{w}_mib_s']:.1f} vs {G[gt][f'{w}_mib_s']:.1f}: "
                       + cmp_(mib_r(s[f'{w}_mib_s']), mib_r(G[gt][f'{w}_mib_s'])) for w in WORKLOADS) + " |")
        P("")
        why = []
        if not met_h:
            why.append(f"combined hit ratio x{rh:.2f}" + (f", {' and '.join(worse_h)} worse" if worse_h else ""))
        if not met_t:
            why.append(f"combined throughput x{rt:.2f}" + (f", {' and '.join(worse_t)} slower" if worse_t else ""))
        P("**Target** (issue: the scoped pair at least 30 % ahead of the best single global policy on "
          "the combined hit ratio or throughput, with neither workload worse): "
          + (f"**met** ({'hit ratio' if met_h else ''}{' and ' if met_h and met_t else ''}{'throughput' if met_t else ''})."
             if met_h or met_t else "**not met**: " + "; ".join(why) + ".") + "\n")
        summary.update({"best_global_hit": gh, "best_global_mib_s": gt, "best_scoped": sb,
                        "ratio_hit": rh, "ratio_mib_s": rt, "target_met": met_h or met_t,
                        "target_met_hit": met_h, "target_met_mib_s": met_t})
    section = "\n".join(md).split("\n")
    with open(os.path.join(a.out, "report.md"), "a") as f:
        f.write("\n".join(section).rstrip("\n") + "\n\n")
    rj = os.path.join(a.out, "report.json")
    if os.path.exists(rj):
        j = json.load(open(rj))
        j.setdefault("summary", {})["scopes"] = summary
        j.setdefault("params", {}).update({"scopes_" + k: v for k, v in params.items()})
        json.dump(j, open(rj, "w"), indent=1, default=str, allow_nan=True)
    if a.docs:
        merge_docs(a.docs, section)


def merge_docs(path, section):
    """Replace the section "## 14. ..." of PATH (or add it, in number order), keeping the rest."""
    lines = open(path).read().rstrip("\n").split("\n") if os.path.exists(path) else ["# Benchmarks", ""]
    head, secs = [], []
    for line in lines:
        if line.startswith("## "):
            secs.append([line])
        elif secs:
            secs[-1].append(line)
        else:
            head.append(line)
    new = list(section)
    while new and new[-1] == "":
        new.pop()
    new.append("")
    key = lambda sec: sec[0].split()[1].rstrip(".")
    secs = [s for s in secs if key(s) != SECTION.rstrip(".")] + [new]
    secs.sort(key=lambda s: float(key(s)) if key(s).isdigit() else 1e9)
    out = head + [l for s in secs for l in (s if s[-1] == "" else s + [""])]
    open(path, "w").write("\n".join(out).rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("scan")
    for k in ("dir", "seconds", "threads", "block"):
        n.add_argument("--" + k, required=True)
    c = sub.add_parser("case")
    for k in ("fio", "scan", "probe", "stats", "block"):
        c.add_argument("--" + k, required=True)
    k = sub.add_parser("check")
    k.add_argument("--stats", required=True)
    k.add_argument("want", nargs="+")
    r = sub.add_parser("report")
    for x in ("raw", "out", "params"):
        r.add_argument("--" + x, required=True)
    r.add_argument("--docs")
    a = ap.parse_args()
    {"scan": scan, "case": case, "check": check, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
