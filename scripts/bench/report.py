#!/usr/bin/env python3
"""Turn scripts/bench.sh's raw records (raw.jsonl) into report.json, report.md and SVG charts.

usage: report.py --raw RAW --machine MACHINE --out DIR --command CMD
                 --total-seconds S --build-seconds S --params "k=v ..."
Every figure in report.md is a median over the runs, with (min-max) where there were
several; ratios are taken between medians of the same run of bench.sh.
"""
import argparse
import html
import json
import os
import statistics
import time

ap = argparse.ArgumentParser()
for a in ("raw", "machine", "out", "command", "params"):
    ap.add_argument("--" + a, required=True)
ap.add_argument("--total-seconds", type=int, required=True)
ap.add_argument("--build-seconds", type=int, required=True)
ap.add_argument("--docs", help="also write this markdown file (docs/benchmarks.md): the report "
                "with a preface and without the charts")
args = ap.parse_args()

recs = [json.loads(l) for l in open(args.raw) if l.strip()]
for r in recs:
    if "split" in r:
        r["split"] = str(r["split"])
machine = json.load(open(args.machine))
machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
params = dict(kv.split("=", 1) for kv in args.params.split())
MiB = 2**20


def med(v):
    return statistics.median(v) if v else float("nan")


def spread(v, fmt):
    if len(v) < 2:
        return ""
    return f" ({fmt(min(v))}-{fmt(max(v))})"


def f0(x):
    return f"{x:.0f}"


def f1(x):
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fr(x):
    return "n/a" if x != x else f"{x:.2f}"


def ratio(a, b):
    return a / b if b else float("nan")


def sel(scenario, **kw):
    return [r for r in recs if r["scenario"] == scenario and all(r.get(k) == v for k, v in kw.items())]


def vals(rows, key):
    return [r[key] for r in rows if key in r]


# ---------------------------------------------------------------- SVG charts
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac", "#1b9e77", "#d95f02", "#7570b3", "#e7298a"]


def hbar_svg(path, title, cats, series, unit, log_note=""):
    """Grouped horizontal bars: cats (rows) x series {name: [value per cat]}."""
    names = list(series)
    bar_h, gap, left, right, top = 12, 10, 210, 120, 40
    group_h = bar_h * len(names) + gap
    h = top + group_h * len(cats) + 20 + 16 * len(names)
    w = 760
    vmax = max([v for s in series.values() for v in s if v == v] + [1e-9])
    sc = (w - left - right) / vmax
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w/2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{html.escape(title)}</text>',
         f'<text x="{w/2}" y="32" text-anchor="middle" fill="#555">{html.escape(unit)}{html.escape(log_note)}</text>']
    for i, c in enumerate(cats):
        y0 = top + i * group_h
        o.append(f'<text x="{left-6}" y="{y0 + group_h/2}" text-anchor="end" dominant-baseline="middle">{html.escape(str(c))}</text>')
        for j, n in enumerate(names):
            v = series[n][i]
            if v != v:
                continue
            y = y0 + j * bar_h
            o.append(f'<rect x="{left}" y="{y}" width="{max(v*sc, 0.5):.1f}" height="{bar_h-2}" fill="{PALETTE[j % len(PALETTE)]}"/>')
            o.append(f'<text x="{left + v*sc + 3:.1f}" y="{y + bar_h/2}" dominant-baseline="middle" fill="#333" font-size="9">{v:.3g}</text>')
    ly = top + group_h * len(cats) + 10
    for j, n in enumerate(names):
        o.append(f'<rect x="{left}" y="{ly + 16*j}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>')
        o.append(f'<text x="{left+14}" y="{ly + 16*j + 9}">{html.escape(n)}</text>')
    o.append("</svg>")
    open(path, "w").write("\n".join(o))


def heatmap_svg(path, title, rows, cols, cell, note):
    """cell(row, col) -> ratio or nan; colour: red < 1 < green, log scale, clamp 1/8..2."""
    import math
    cw, ch, left, top = 62, 20, 150, 70
    w, h = left + cw * len(cols) + 10, top + ch * len(rows) + 30
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="10">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w/2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{html.escape(title)}</text>',
         f'<text x="{w/2}" y="30" text-anchor="middle" fill="#555">{html.escape(note)}</text>']
    for j, c in enumerate(cols):
        x = left + j * cw + cw / 2
        for k, part in enumerate(str(c).split(" ", 1)):
            o.append(f'<text x="{x}" y="{top - 20 + 11*k}" text-anchor="middle">{html.escape(part)}</text>')
    for i, r in enumerate(rows):
        y = top + i * ch
        o.append(f'<text x="{left-5}" y="{y + ch/2}" text-anchor="end" dominant-baseline="middle">{html.escape(r)}</text>')
        for j, c in enumerate(cols):
            v = cell(r, c)
            if v != v:
                col = "#eee"
            else:
                t = max(-1.0, min(1.0, math.log2(max(v, 1e-9)) / (3 if v < 1 else 1)))
                if t < 0:
                    col = "rgb(255,%d,%d)" % (int(255 * (1 + t)), int(255 * (1 + t)))
                else:
                    col = "rgb(%d,255,%d)" % (int(255 * (1 - t * 0.6)), int(255 * (1 - t * 0.6)))
            x = left + j * cw
            o.append(f'<rect x="{x}" y="{y}" width="{cw-1}" height="{ch-1}" fill="{col}"/>')
            o.append(f'<text x="{x + cw/2}" y="{y + ch/2}" text-anchor="middle" dominant-baseline="middle">{fr(v)}</text>')
    o.append("</svg>")
    open(path, "w").write("\n".join(o))


md = []
summary = {}
charts = []
P = md.append

# ---------------------------------------------------------------- header
P("# kplugfs benchmark report\n")
P(f"Command: `{args.command}` ({machine['mode']} mode, {machine['runs']} runs per configuration), "
  f"{time.strftime('%Y-%m-%d %H:%M %Z')}; measurements took **{args.total_seconds} s** "
  f"(plus {args.build_seconds} s of building).\n")
P(f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['mem_mib']} MiB RAM, kernel "
  f"{machine['kernel']}; load average {' '.join(machine['loadavg_start'])} at the start, "
  f"{' '.join(machine['loadavg_end'])} at the end; {machine['rustc']}, {machine['fio']}, "
  f"{machine['bindfs']}; kplugfs {machine['git']}.\n")
P("Figures are medians over the runs, `(min-max)` the spread; ratios are between medians of "
  "this one run. fio runs pinned (`taskset`) to CPU " + params["pin_cpu"] + "; the FUSE daemons "
  "are not pinned. A load average well above the CPU count means other work shared the "
  "machine: treat such figures as noisy.\n")
timings = {r["phase"]: r["seconds"] for r in recs if r["scenario"] == "timing"}
if timings:
    P("Time per scenario: " + ", ".join(f"{k} {v} s" for k, v in timings.items()) + ".\n")

# ---------------------------------------------------------------- 1. reads
R = sel("reads")
if R:
    P("## 1. Reads through the mount (fio, psync, 1 job)\n")
    P(f"A {params['read_mib']} MiB file; the kplugfs block cache is {params['cache_mib']} MiB "
      "(half the file, so eviction policies matter). Sequential reads read the file once; random "
      f"reads run {params['read_rt']}. *cold*: the file's cached pages dropped "
      "(`posix_fadvise` DONTNEED on the backing file and on the path read) and, for kplugfs, a fresh "
      "mount (empty block cache) before every run; *warm*: one sequential 1 MiB read of the "
      "whole file first. `kplugfs` is the default mount (kernel page cache kept across opens); "
      "`nkc:*` are mounted with `--no-kernel-cache` so every read reaches the block cache, with "
      "the built-in LRU (`nkc:builtin`) or a WASM eviction plugin loaded through "
      "`.kplug/plugins/`.\n")
    pats = []
    for r in R:
        k = (("seq" if r["rw"] == "read" else "rand") + " " + r["bs"], r["cache"])
        if k not in pats:
            pats.append(k)
    systems = []
    for r in R:
        if r["system"] not in systems:
            systems.append(r["system"])

    def rsel(p, c, s):
        rw = "read" if p.startswith("seq") else "randread"
        return sel("reads", rw=rw, bs=p.split()[1], cache=c, system=s)

    def mibs(p, c, s):
        return vals(rsel(p, c, s), "mib_s")

    def hitratio(p, c, s):
        rows = rsel(p, c, s)
        h, m = sum(vals(rows, "hits")), sum(vals(rows, "misses"))
        return h / (h + m) if h + m else float("nan")

    base = [s for s in ("native", "bindfs", "kplugfs", "kplugfs-nkc:builtin") if s in systems]
    short = {s: s.replace("kplugfs-nkc:", "nkc:") for s in systems}
    P("MiB/s, and ratios to native and bindfs:\n")
    hdr = "| pattern | cache | " + " | ".join(short[s] for s in base)
    cols_r = [(s, "native") for s in base if s != "native"] + [(s, "bindfs") for s in base if s not in ("native", "bindfs")]
    hdr += " | " + " | ".join(f"{short[a]}/{b}" for a, b in cols_r) + " |"
    P(hdr)
    P("|---|---|" + "---:|" * (len(base) + len(cols_r)))
    summary["reads"] = []
    for p, c in pats:
        m = {s: med(mibs(p, c, s)) for s in systems}
        row = f"| {p} | {c} | " + " | ".join(f1(m[s]) + spread(mibs(p, c, s), f0) for s in base)
        row += " | " + " | ".join(fr(ratio(m[a], m[b])) for a, b in cols_r) + " |"
        P(row)
        summary["reads"].append({"pattern": p, "cache": c, "mib_s": m,
                                 "hit_ratio": {s: hitratio(p, c, s) for s in systems if s.startswith("kplugfs")}})
    wasm = [s for s in systems if s.startswith("kplugfs-nkc:") and s != "kplugfs-nkc:builtin"]
    if wasm and "kplugfs-nkc:builtin" in systems:
        P("\nEach WASM eviction plugin (" + ("warm only, one run each, in quick mode" if machine["mode"] == "quick" else "same runs as above") + "): MiB/s as a ratio to the built-in LRU in the same "
          "`--no-kernel-cache` configuration (`nkc:builtin` above), and the block-cache hit ratio "
          "of the measured runs (`hits/(hits+misses)` from `.kplug/status`):\n")
        P("| pattern | cache | " + " | ".join(s.split(":")[1] for s in wasm) + " |")
        P("|---|---|" + "---:|" * len(wasm))
        for p, c in pats:
            if not any(mibs(p, c, s) for s in wasm):
                continue
            b = med(mibs(p, c, "kplugfs-nkc:builtin"))
            P(f"| {p} | {c} | " + " | ".join(
                f"{fr(ratio(med(mibs(p, c, s)), b))} (hit {fr(hitratio(p, c, s))})" for s in wasm) + " |")
        P(f"\nHit ratio of the built-in LRU, for reference: " + ", ".join(
            f"{p} {c} {fr(hitratio(p, c, 'kplugfs-nkc:builtin'))}" for p, c in pats) + ".\n")
    heatmap_svg(os.path.join(args.out, "reads.svg"), "Read throughput relative to native",
                [short[s] for s in systems if s != "native"], [f"{p} {c}" for p, c in pats],
                lambda rs, col: ratio(med(mibs(" ".join(col.split()[:2]), col.split()[2], next(s for s in systems if short[s] == rs))),
                                      med(mibs(" ".join(col.split()[:2]), col.split()[2], "native"))),
                "median MiB/s / native median MiB/s (green > 1 > red)")
    P("\n![reads](reads.svg)\n")

# ---------------------------------------------------------------- 2. slow backend
S = sel("slow")
if S:
    P("## 2. Slow backend: prefetch policies (`--backend-latency 2ms`)\n")
    P(f"A {params['slow_mib']} MiB file, each mount fresh (cold), `--no-kernel-cache "
      "--kernel-hints off`, the backing file's cached pages dropped. *seq 1M*: fio reads the whole file in 1 MiB "
      f"requests; *rand 4k*: {params['slow_io']}B of random 4 KiB reads (a fixed amount: "
      "mostly first touches of their 128 KiB block). `none` is the `stride` "
      "plugin with `confirm=4294967295` (it never prefetches; no policy or mount option "
      "disables prefetch otherwise); `builtin:readahead` is the mount's default (no plugin). "
      "Prefetch counters come from `.kplug/status` after the run (+0.2 s for in-flight "
      "prefetches): *issued* = blocks the policy asked for after the host's clamping "
      "(`prefetch.issued_blocks`), *unused* = prefetched blocks inserted but never hit "
      "(`completed_blocks - used_blocks`: evicted unused, `wasted_blocks`, plus still resident "
      "unused), *amplification* = bytes read from the backend / bytes the reader got.\n")
    variants = []
    for r in S:
        if r["variant"] not in variants:
            variants.append(r["variant"])
    summary["slow"] = []
    chart = {}
    for rw, bs, label in (("read", "1M", "seq 1M"), ("randread", "4k", "rand 4k")):
        if not sel("slow", rw=rw, bs=bs):
            continue
        P(f"**{label}**\n")
        P("| prefetch | MiB/s | vs none | issued MiB | used MiB | unused MiB | wasted (evicted unused) MiB | dropped blocks | amplification |")
        P("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        none = med(vals(sel("slow", rw=rw, bs=bs, variant="none"), "mib_s"))
        chart[label] = []
        for v in variants:
            rows = sel("slow", rw=rw, bs=bs, variant=v)
            if not rows:
                chart[label].append(float("nan"))
                continue
            bsz = rows[0]["block_size"]
            m = med(vals(rows, "mib_s"))
            iss = med([r["pf_issued"] * bsz / MiB for r in rows])
            used = med([r["pf_used"] * bsz / MiB for r in rows])
            unused = med([(r["pf_completed"] - r["pf_used"]) * bsz / MiB for r in rows])
            wasted = med([r["pf_wasted"] * bsz / MiB for r in rows])
            dropped = med([r["pf_dropped"] for r in rows])
            amp = med([r["backend_bytes"] / r["io_bytes"] for r in rows if r["io_bytes"]])
            P(f"| {v} | {f1(m)}{spread(vals(rows, 'mib_s'), f1)} | {fr(ratio(m, none))} | {f1(iss)} | {f1(used)} | "
              f"{f1(unused)} | {f1(wasted)} | {dropped:.0f} | {amp:.2f} |")
            chart[label].append(m)
            summary["slow"].append({"pattern": label, "variant": v, "mib_s": m, "vs_none": ratio(m, none),
                                    "issued_mib": iss, "used_mib": used, "unused_mib": unused,
                                    "wasted_mib": wasted, "dropped_blocks": dropped, "amplification": amp})
        P("")
    for label, series in chart.items():
        fn = "slow-" + label.replace(" ", "-") + ".svg"
        hbar_svg(os.path.join(args.out, fn), f"Slow backend (2 ms), {label}", variants, {"MiB/s": series}, "MiB/s, median")
        P(f"![slow {label}]({fn})")
    P("")

# ---------------------------------------------------------------- 3. hooks
H = sel("hooks")
if H:
    P("## 3. Plugin cost: ns per hook call (criterion, `fusefs/cache/benches/hook_call.rs`)\n")
    P("`hook/*` time one access + victim + insert cycle (3 hook calls) on an LRU of 4096 keys "
      "(`wasm_empty_call`: one call with an empty body); `core/*` time 100 000 "
      "`CacheCore::request`s (4096-block cache, skewed stream over 64 Ki keys); `instance/*` "
      "a new instance of the SDK LRU for a 128-block cache, as a hot swap of a module seen "
      "before makes, dropping one, and both (`cycle`); `swap/*` what a swap of the SDK LRU into "
      "a core of 65,536 resident blocks holds its lock for (the snapshot's copy and the install, "
      "100 misses between them), from a snapshot taken for the install (`logged`) or walking the "
      "resident set (`walked`), and what its `close()` waits for outside the lock: telling a fresh "
      "instance the 65,536 blocks with one call each or 128 a call (`replay_*`, ABI 1.9's "
      "`kplug_evict_seed`), the whole preparation (`prepare_65536`: the snapshot's sort, the "
      "replay, the host's map of handles); `compile/*` compiling the SDK LRU as a swap of a module "
      "never seen does, with Winch (`baseline`, a mount's first load) or Cranelift "
      "(`optimized`). Criterion "
      "median of each run (`target/criterion/*/*/new/estimates.json`), then the median over runs; "
      "with a single run, `[CI a-b]` is criterion's 95% confidence interval of the median.\n")
    P("| bench | time per iteration | per hook call / request | vs native |")
    P("|---|---:|---:|---:|")
    names = []
    for r in H:
        if (r["group"], r["bench"]) not in names:
            names.append((r["group"], r["bench"]))
    get = {n: vals(sel("hooks", group=n[0], bench=n[1]), "ns_per_iter") for n in names}
    summary["hooks"] = {}
    native_cycle = med(get.get(("hook", "native_lru_cycle"), []))
    native_core = med(get.get(("core", "requests_native_lru"), []))
    hook_cats, hook_vals = [], []
    for g, b in names:
        v = get[(g, b)]
        rows = sel("hooks", group=g, bench=b)
        m = med(v)
        if g == "hook":
            per = m / (1 if b == "wasm_empty_call" else 3)
            vs = fr(ratio(m, native_cycle)) if b.endswith("_cycle") else ""
            ci = f" [CI {med(vals(rows, 'ci_lo')):.1f}-{med(vals(rows, 'ci_hi')):.1f}]" if len(v) == 1 and vals(rows, "ci_lo") else ""
            P(f"| {g}/{b} | {m:.1f} ns{spread(v, lambda x: f'{x:.1f}')}{ci} | {per:.1f} ns | {vs} |")
            summary["hooks"][f"{g}/{b}"] = {"ns_per_iter": m, "ns_per_hook": per}
            hook_cats.append(b)
            hook_vals.append(per)
        elif g in ("instance", "swap", "compile"):
            P(f"| {g}/{b} | {m/1e3:.1f} us{spread(v, lambda x: f'{x/1e3:.1f}')} | | |")
            summary["hooks"][f"{g}/{b}"] = {"ns_per_iter": m}
        else:
            rps = 1e5 / (m * 1e-9)
            P(f"| {g}/{b} | {m/1e6:.2f} ms / 100k | {rps/1e6:.1f} M req/s ({1e9/rps:.1f} ns) | {fr(ratio(m, native_core))} (time) |")
            summary["hooks"][f"{g}/{b}"] = {"ns_per_iter": m, "req_per_s": rps}
    P("")
    hbar_svg(os.path.join(args.out, "hooks.svg"), "Cost per hook call", hook_cats, {"ns": hook_vals}, "ns per call, median")
    P("![hooks](hooks.svg)\n")

# ---------------------------------------------------------------- 4. sim
SM = sel("sim")
if SM:
    P("## 4. Simulator throughput (`kplugfs sim`, release build, one job)\n")
    reqs = {s: SM[[r['split'] for r in SM].index(s)]["requests"] for s in dict.fromkeys(r["split"] for r in SM)}
    P("`traces/data/cloudPhysicsIO.vscsi` at a cache of 10% of the unique ids, as recorded "
      + ", and ".join(f"{'unsplit' if s == 'none' else f'split into {s}-byte blocks (`--split-blocks {s}`)'}: {n:,} requests"
                     for s, n in reqs.items())
      + ". Requests/s of the whole replay (trace parsing excluded), WASM plugins vs the native "
      "`builtin:lru`.\n")
    pols = list(dict.fromkeys(r["policy"] for r in SM))
    splits = list(reqs)
    P("| policy | " + " | ".join(f"{'unsplit' if s == 'none' else s + ' B split'} M req/s | vs builtin:lru | miss ratio" for s in splits) + " |")
    P("|---|" + "---:|---:|---:|" * len(splits))
    summary["sim"] = []
    series = {('unsplit' if s == 'none' else s + ' B split'): [] for s in splits}
    for p in pols:
        row = f"| {p} |"
        for s in splits:
            rows = sel("sim", split=s, policy=p)
            v = [r["requests_per_sec"] / 1e6 for r in rows]
            b = med([r["requests_per_sec"] / 1e6 for r in sel("sim", split=s, policy="builtin:lru")])
            mr = med(vals(rows, "miss_ratio"))
            row += f" {med(v):.2f}{spread(v, lambda x: f'{x:.2f}')} | {fr(ratio(med(v), b))} | {mr:.4f} |"
            summary["sim"].append({"policy": p, "split": s, "mreq_s": med(v), "vs_builtin_lru": ratio(med(v), b),
                                   "miss_ratio": mr, "requests": reqs[s]})
            series['unsplit' if s == 'none' else s + ' B split'].append(med(v))
        P(row)
    P("")
    hbar_svg(os.path.join(args.out, "sim.svg"), "Simulator throughput", pols, series, "million requests/s, median")
    P("![sim](sim.svg)\n")

# ---------------------------------------------------------------- 5. hotswap
HS = sel("hotswap")
if HS:
    h = HS[0]
    P("## 5. Hot swap (`tests/benches/hotswap.rs`)\n")
    P(f"`SWAPS={h['swaps']} cargo bench -p kplugfs-tests --bench hotswap`: copies plugins into "
      "`.kplug/plugins/` of a mount (8 MiB cache, 64 KiB blocks, `--no-kernel-cache`) while 2 "
      "reader threads verify every byte: half of the swaps a module never seen (the SDK "
      "LRU with a unique custom section: compiled), on a mount with the default "
      "`--plugin-code tiered` (served first from Winch's baseline code; each swap then waits "
      "until Cranelift's optimized code serves, timed too) and as many on a mount with "
      "`--plugin-code optimized` (every load waits for Cranelift); the other half the SDK LRU "
      "and the WAT LRU alternately, each loaded once before (seen before: the compiled-module "
      "cache). One run (the bench itself reports median/p99/max over its swaps). Targets "
      "(issue 19): seen before p99 <= 1000 us, never seen p99 <= 20000 us, close() start -> "
      "first decision.\n")
    P("| measure | median | p99 | max |")
    P("|---|---:|---:|---:|")
    for kind, what in (("fresh", "never seen, tiered"),
                       ("fresh_optimized", "never seen, --plugin-code optimized"),
                       ("seen", "seen before")):
        for k, label in (("close_us", "close() of the copied plugin (load + install), us"),
                         ("swap_us", "close() start -> first decision, us"),
                         ("optimized_us", "close() start -> optimized code serving, us")):
            r = h.get(kind, {}).get(k)
            if r:
                P(f"| {what}: {label} | {r['median']} | {r['p99']} | {r['max']} |")
    P(f"\nReads during the swaps: {h.get('reads', '?')}, failed or wrong: **{h.get('bad_reads', '?')}**; "
      f"swaps without a decision within 5 s: {h.get('stuck', '?')}.\n")
    summary["hotswap"] = h
    SS = sel("swapstall")
    if SS:
        P(f"Reads during seen-before swaps on a large cache (`scripts/bench/swapstall.py`: "
          f"{SS[0]['blocks']:,} resident blocks of 4 KiB, one reader of random 4 KiB `O_DIRECT` "
          f"hits, {SS[0]['swap_count']} swaps of the SDK LRU 250 ms apart, each replaying every "
          f"resident block into the new instance; {len(SS)} run(s), median over runs):\n")
        P("| reads | median ms | p99 ms | p99.9 ms | max ms |")
        P("|---|---:|---:|---:|---:|")
        for ph, label in (("quiet", "no swap"), ("swaps", "during the swaps")):
            cols = [med([r[ph][k] for r in SS]) for k in ("median", "p99", "p999", "max")]
            P(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cols) + " |")
        P(f"\nThe swaps' close(): median {med([r['close_ms']['median'] for r in SS]):.1f} ms, "
          f"max {med([r['close_ms']['max'] for r in SS]):.1f} ms; plugins not active after: "
          f"{max(r['plugins_not_active'] for r in SS)}.\n")
        summary["swapstall"] = SS

# ---------------------------------------------------------------- 6. small files
SF = sel("smallfiles")
if SF:
    n = SF[0]["files"]
    P("## 6. Many small files (`scripts/bench/smallfiles.py`)\n")
    P(f"Create (open O_CREAT|O_EXCL, write 4 KiB, close), then stat, then read {n:,} files of "
      "4 KiB spread over 100 directories, one Python process pinned to CPU "
      f"{params['pin_cpu']}; page, dentry and inode caches dropped before stat and before read. "
      "kplugfs is mounted with default options. Operations per second:\n")
    P("| phase | native | bindfs | kplugfs | bindfs/native | kplugfs/native | kplugfs/bindfs |")
    P("|---|---:|---:|---:|---:|---:|---:|")
    summary["smallfiles"] = []
    series = {s: [] for s in ("native", "bindfs", "kplugfs")}
    for ph in ("create", "stat", "read"):
        v = {s: vals(sel("smallfiles", system=s), ph + "_per_s") for s in series}
        m = {s: med(x) for s, x in v.items()}
        P(f"| {ph} | " + " | ".join(f0(m[s]) + spread(v[s], f0) for s in series) +
          f" | {fr(ratio(m['bindfs'], m['native']))} | {fr(ratio(m['kplugfs'], m['native']))} | {fr(ratio(m['kplugfs'], m['bindfs']))} |")
        summary["smallfiles"].append({"phase": ph, "ops_s": m})
        for s in series:
            series[s].append(m[s])
    P("")
    hbar_svg(os.path.join(args.out, "smallfiles.svg"), f"{n} files of 4 KiB", ["create", "stat", "read"], series, "operations/s, median")
    P("![smallfiles](smallfiles.svg)\n")

# ---------------------------------------------------------------- 7. object store (S3)
S3 = sel("s3")
if S3:
    P("## 7. Object store: kplugfs and its peers on S3\n")
    loads = sel("s3load")
    start = next((l for l in loads if "phase" not in l), None)
    end = next((l for l in loads if l.get("phase") == "end"), None)
    fmt_load = lambda l: f"{l['load1']} {l['load5']} {l['load15']}" if l else "?"
    busy = start and float(start["load1"]) >= machine["nproc"]
    P(f"Command: `{args.command}`, {time.strftime('%Y-%m-%d %H:%M %Z')}, kplugfs {machine['git']}; "
      f"load average {fmt_load(start)} at the start of this scenario, {fmt_load(end)} at its end, on "
      f"{machine['nproc']} CPUs" + (" (**a busy machine: other work shared it, figures are noisy**)" if busy else "") + ".\n")
    big, ws, n = int(params["s3_big_mib"]), int(params["s3_ws_mib"]), int(params["s3_nsmall"])
    sb = int(params["s3_small_bytes"])
    wm = int(params.get("s3_write_mib", 0))
    size = lambda mib: f"{mib // 1024} GiB" if mib >= 1024 else f"{mib} MiB"
    P(f"One bucket of the project's Ceph RGW 16.2 (`scripts/s3/ceph-s3.sh`, memstore: objects in "
      f"the OSD's memory, on this machine), the same objects for every system: one of {size(big)}, "
      f"one of {size(ws)}, {n:,} of {sb // 1024} KiB. *0 ms*: the mounts talk to the server "
      f"directly; *20 ms*: through `kplug-delay-proxy --delay 10ms` (tests/delay-proxy: every "
      f"byte held 10 ms in each direction, so each request-response pays 20 ms more, and a new "
      f"connection one more round trip for its handshake). Every row is measured on a fresh "
      f"mount (so cold: no page cache, nothing in the system's own cache; rclone's cache "
      f"directory emptied). fio: one job, psync, through the page cache, pinned to CPU "
      f"{params['pin_cpu']}. Rows: *seq*: the {size(big)} object read once in 1 MiB reads "
      f"(stopped after {params['s3_seq_cap']} s: the rate is over what was read); *rand*: a fixed "
      f"count of random reads in it at a fixed seed ({params['s3_rand_n0']} at 0 ms, "
      f"{params['s3_rand_n']} at 20 ms); *re-read*: the {size(ws)} object read once, then timed "
      f"again with its pages kept by the kernel, and again after dropping them "
      f"(`posix_fadvise` DONTNEED: the system's own cache, if any); *list*: `os.listdir` of the "
      f"{n:,} objects' prefix (getdents only, like `ls -f`); *read small*: then every one of "
      f"them read whole by 16 threads; *write*: a new object of {size(wm)} written in 1 MiB writes, "
      f"timed to the return of `close()` and to the moment a LIST of the server shows it whole "
      f"(polled every 0.1 s; rclone uploads after close, its `--vfs-write-back` is 5 s; "
      f"mountpoint-s3 is mounted read-only: its writes fail on this RGW) ({params['s3_runs']} run(s), medians).\n")
    P("Systems: **kplugfs** mounted with its defaults (`kplugfs mount s3://BUCKET/PREFIX MNT "
      "--endpoint URL`: 256 MiB block cache of 128 KiB blocks, built-in readahead, 32 prefetch "
      "threads), **+s3window** and **+scanboost**: the same with that plugin copied into "
      "`MNT/.kplug/plugins/` after mounting; **s3fs** 1.90 (`-o use_path_request_style`, no "
      "local cache: its default); **rclone** 1.60 `mount --vfs-cache-mode full`; "
      "**mountpoint-s3** (mountpoint-s3-fs 0.11.0 through scripts/bench/mountpoint-peer: "
      "mount-s3's defaults, read-only, no data cache). Ratios are kplugfs (defaults) / peer: "
      "above 1, kplugfs is ahead.\n")
    rtts = list(dict.fromkeys(r["rtt_ms"] for r in S3))
    order = ["kplugfs", "kplugfs+s3window", "kplugfs+scanboost", "s3fs", "rclone", "mountpoint-s3"]
    systems = [s for s in order if any(r["system"] == s for r in S3)]
    peers = [s for s in ("s3fs", "rclone", "mountpoint-s3") if s in systems]
    for chk in sel("s3rtt"):
        P(f"- endpoint at {chk['rtt_ms']} ms: an S3 request takes {chk.get('first_ms', '?')} ms on a new "
          f"connection, {chk.get('next_ms', '?')} ms on a kept one (curl)")
    P("")

    def metric(row, key):
        return lambda s, rtt: vals(sel("s3", row=row, system=s, rtt_ms=rtt), key)

    ROWS = [("seq", f"seq read {size(big)}, cold", metric("seq", "mib_s"), "MiB/s"),
            ("rand4k", "rand 4 KiB, cold", metric("rand4k", "iops"), "IOPS"),
            ("rand128k", "rand 128 KiB, cold", metric("rand128k", "iops"), "IOPS"),
            ("warm", f"re-read {size(ws)}, warm", metric("warm", "mib_s"), "MiB/s"),
            ("warm-dropped", f"re-read {size(ws)}, pages dropped", metric("warm-dropped", "mib_s"), "MiB/s"),
            ("list", f"list {n:,} objects", metric("small", "entries_per_s"), "entries/s"),
            ("small", f"read {n:,} x {sb // 1024} KiB", metric("small", "files_per_s"), "files/s"),
            ("write", f"write {size(wm)} new, to close", metric("write", "mib_s"), "MiB/s"),
            ("write-visible", f"write {size(wm)} new, to listed", metric("write", "visible_mib_s"), "MiB/s")]
    short = {"kplugfs+s3window": "+s3window", "kplugfs+scanboost": "+scanboost"}
    P("| row | RTT | unit | " + " | ".join(short.get(s, s) for s in systems) + " | "
      + " | ".join(f"kplugfs/{p}" for p in peers) + " |")
    P("|---|---:|---|" + "---:|" * (len(systems) + len(peers)))
    summary["s3"] = []
    behind = []
    for rtt in rtts:
        for key, label, get, unit in ROWS:
            if not any(get(s, rtt) for s in systems):
                continue
            m = {s: med(get(s, rtt)) for s in systems}
            cells = []
            for s in systems:
                v = get(s, rtt)
                cell = "" if not v else f1(m[s]) + spread(v, f1)
                if key.startswith("rand") and v:
                    mb = med(vals(sel("s3", row=key, system=s, rtt_ms=rtt), "mib_s"))
                    cell += f" ({f1(mb)} MiB/s)"
                cells.append(cell)
            rs = {p: ratio(m.get("kplugfs", float("nan")), m[p]) for p in peers}
            P(f"| {label} | {rtt} ms | {unit} | " + " | ".join(cells) + " | "
              + " | ".join(("**" + fr(v) + "**") if v < 1 else fr(v) for v in rs.values()) + " |")
            for p, v in rs.items():
                if v < 1:
                    behind.append(f"{label} at {rtt} ms vs {p} ({fr(v)})")
            summary["s3"].append({"row": key, "rtt_ms": rtt, "unit": unit, "median": m, "kplugfs_over": rs})
    P("")
    # Prefetch on / off, sequential.
    NP = sel("s3", system="kplugfs-noprefetch", row="seq")
    if NP:
        P("**Prefetch on and off, sequential read, cold.** *prefetch off*: kplugfs's own prefetch "
          "disabled by the `stride` plugin with `confirm=4294967295` (a prefetch policy that never "
          "asks; no mount option turns prefetch off, and `--cache-size 0` would remove the block "
          "cache as well); the kernel's own readahead of the FUSE mount (1 MiB, `max_readahead`) "
          "still runs, as in every kplugfs row.\n")
        P("| RTT | prefetch off MiB/s | kplugfs | +s3window | +scanboost | kplugfs / off | +s3window / off | +scanboost / off |")
        P("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rtt in rtts:
            off = med(vals(sel("s3", row="seq", system="kplugfs-noprefetch", rtt_ms=rtt), "mib_s"))
            if off != off:
                continue
            on = {s: med(vals(sel("s3", row="seq", system=s, rtt_ms=rtt), "mib_s")) for s in order[:3]}
            P(f"| {rtt} ms | {f1(off)} | " + " | ".join(f1(on[s]) for s in order[:3]) + " | "
              + " | ".join(fr(ratio(on[s], off)) for s in order[:3]) + " |")
            summary.setdefault("s3_prefetch", []).append({"rtt_ms": rtt, "off_mib_s": off, "on_mib_s": on})
        P("")
    # kplugfs's requests to the store, per row (default mount).
    K = [r for r in S3 if r["system"] == "kplugfs" and "get_n" in r]
    if K:
        P("**What kplugfs (defaults) asked the store** (`.kplug/stats` after each measured row, "
          "the whole mount's life: the warm row includes its first read; medians over runs): GETs, "
          "MiB they fetched, their latency p50/p99 (ms, body included), HEADs and LISTs.\n")
        P("| row | RTT | GETs | GET MiB | GET p50 / p99 ms | HEADs | LISTs | prefetch issued / used blocks |")
        P("|---|---:|---:|---:|---:|---:|---:|---:|")
        for rtt in rtts:
            for key in ("seq", "rand4k", "rand128k", "warm-dropped", "small"):
                rows = [r for r in K if r["row"] == key and r["rtt_ms"] == rtt]
                if not rows:
                    continue
                g = lambda k: med(vals(rows, k))
                P(f"| {key} | {rtt} ms | {g('get_n'):.0f} | {g('get_mib'):.1f} | "
                  f"{g('get_p50_us') / 1000:.1f} / {g('get_p99_us') / 1000:.1f} | "
                  f"{g('head_n') if vals(rows, 'head_n') else 0:.0f} | {g('list_n') if vals(rows, 'list_n') else 0:.0f} | "
                  f"{g('pf_issued'):.0f} / {g('pf_used'):.0f} |")
        P("")
    P("**Targets.** kplugfs (defaults) at or ahead of every peer on every row: "
      + ("met." if not behind else f"**not met**, behind on {len(behind)}: " + "; ".join(behind) + ".")
      + (" At 20 ms, sequential read with prefetch at least 10x the same mount with prefetch off: "
         + next((("met" if ratio(p["on_mib_s"]["kplugfs"], p["off_mib_s"]) >= 10 else "**not met**")
                 + f" ({fr(ratio(p['on_mib_s']['kplugfs'], p['off_mib_s']))}x)"
                 for p in summary.get("s3_prefetch", []) if p["rtt_ms"] == 20), "not measured")
         + ".") + "\n")
    summary["s3_behind"] = behind

# ---------------------------------------------------------------- 8. writes
WR = sel("writes")
if WR:
    P("## 8. Writes (fio, psync, 1 job, fsync at the end)\n")
    P(f"{params['write_mib']} MiB written into a new file, `--end_fsync=1` (the time includes "
      "the final fsync to disk), buffered and with "
      "`O_DIRECT`; kplugfs with default options. MiB/s (0: the system refused the mode):\n")
    P("| pattern | O_DIRECT | native | bindfs | kplugfs | kplugfs/native | kplugfs/bindfs |")
    P("|---|---|---:|---:|---:|---:|---:|")
    summary["writes"] = []
    for direct in (0, 1):
        for rw, bs in (("write", "4k"), ("write", "128k"), ("write", "1M"), ("randwrite", "4k")):
            v = {s: vals(sel("writes", system=s, rw=rw, bs=bs, direct=direct), "mib_s")
                 for s in ("native", "bindfs", "kplugfs")}
            m = {s: med(x) for s, x in v.items()}
            label = ("seq " if rw == "write" else "rand ") + bs
            P(f"| {label} | {'yes' if direct else 'no'} | " +
              " | ".join(f1(m[s]) + spread(v[s], f1) for s in v) +
              f" | {fr(ratio(m['kplugfs'], m['native']))} | {fr(ratio(m['kplugfs'], m['bindfs']))} |")
            summary["writes"].append({"pattern": label, "direct": direct, "mib_s": m})
    P("")

# ---------------------------------------------------------------- 9. stalls
ST = sel("stall")
if ST:
    P("## 9. Read stalls under slow plugins (`tests/benches/stall.rs`)\n")
    P(f"`STALL_SECS={ST[0]['secs']} cargo bench -p kplugfs-tests --bench stall`: 8 reader threads "
      "read random 64 KiB blocks of 16 MiB of files through a 2 MiB cache (`--no-kernel-cache`, "
      "most reads miss and call the eviction hooks). *governor*: a governor whose admission "
      "candidates each spend 300 ms in `kplug_init` is copied in (reads during its load); "
      "*eviction hook*: the WAT LRU spinning in every eviction hook, read for STALL_SECS s from "
      "its copy on, with the defaults (2 ms deadline, 10 ms/s slow-call budget) and with the "
      "bound before the budget (`--hook-deadline 10ms --hook-budget 0`). One run.\n")
    P("| scenario | reads | p50 ms | p99 ms | max ms | plugin at the end |")
    P("|---|---:|---:|---:|---:|---|")
    for r in ST:
        g = lambda k: "-" if r[k] is None else f"{r[k]:.1f}"
        P(f"| {r['case']} | {r['reads']} | {g('p50_ms')} | {g('p99_ms')} | {g('max_ms')} | {r['plugin']} |")
    P("")
    for d in sel("stall_deadline"):
        P("The per-call deadline's real distribution: " + d["text"].replace("runaway hook", "a runaway hook is") + ".\n")
    summary["stall"] = ST

# ---------------------------------------------------------------- 10. simulator vs cachesim
SP = sel("simpeer")
if SP:
    P("## 10. Simulator vs libCacheSim's `cachesim` (whole process, one thread)\n")
    loads = sel("simpeerload")
    start = next((l for l in loads if l.get("phase") == "start"), None)
    end = next((l for l in loads if l.get("phase") == "end"), None)
    fmt_load = lambda l: f"{l['load1']} {l['load5']} {l['load15']}" if l else "?"
    busy = start and float(start["load1"]) >= machine["nproc"]
    P(f"Command: `{args.command}`, {time.strftime('%Y-%m-%d %H:%M %Z')}, kplugfs {machine['git']}; "
      f"load average {fmt_load(start)} at the start of this scenario, {fmt_load(end)} at its end, on "
      f"{machine['nproc']} CPUs" + (" (**a busy machine: other work shared it, figures are noisy**)" if busy else "") + ".\n")
    algos = {r["policy"]: r["algo"] for r in SP if r["system"] == "cachesim"}
    P("Both simulators replay the same oracleGeneral file (by default "
      "`traces/data/cloudPhysicsIO.oracleGeneral.bin`, the same requests split into 4 KiB and "
      "1 KiB blocks, as `kplugfs sim --split-blocks` splits them, written by "
      "`scripts/bench/oracle-split.py` during the run, and cache2k's `orm-busy` from "
      "`traces/heldout/cache2k/` (5 M requests over 76,349 sparse ids, most of them hits), "
      "written as oracleGeneral by `kplugfs trace convert` during the run; "
      "`KPLUG_SIMPEER_TRACES` names others) "
      "at a cache of 10% of its unique ids "
      "(an object count, every object of size 1): `kplugfs sim --trace FILE --format oracle "
      "--policy P --cache-objects N --jobs 1 --json` with the WASM plugin `P` (and, for LRU, the "
      "host's native `builtin:lru`), and libCacheSim's `cachesim FILE oracleGeneral ALGO N "
      "--ignore-obj-size=1 --num-thread=1` running its own C implementation of the policy "
      "(" + ", ".join(f"{p} = `{a}`" for p, a in algos.items()) + "), built with cmake (Release, "
      "tcmalloc when installed, as libCacheSim's own setup does) from the C sources in the sdist "
      "of the PyPI package `libcachesim` " + params.get("cachesim_ver", "") + " (not its Python "
      "`process_trace` loop). One process per (policy, run), both pinned to the same CPU "
      f"({params['pin_cpu']}), in turn; the time is the whole process's wall time (start-up, "
      "reading the trace, the replay, exit), the median over the runs with `(min-max)`. "
      "*speed* = cachesim time / kplugfs time: above 1, kplugfs is faster. *equal* compares "
      "the miss ratios to 4 decimals (cachesim prints 4); the policies follow the libCacheSim "
      "the golden tests pin (`traces/data/libcachesim-miss-ratios.csv`, docs/policies.md), and "
      "where that version's policy changed since, kplugfs runs with the parameter that follows "
      "the newer one ("
      + (", ".join(f"`--param {q}`" for q in sorted({r['param'] for r in SP if r.get('param')})) or "none")
      + "; docs/policies.md). The target (issue 19): every WASM policy at speed >= 1 with equal "
      "miss ratios.\n")
    summary["simpeer"] = []
    short = []
    for tname in dict.fromkeys(r["trace"] for r in SP):
        T = [r for r in SP if r["trace"] == tname]
        P(f"**{tname}**: {T[0]['requests']:,} requests, {T[0]['unique']:,} unique ids, cache "
          f"{T[0]['cache_objects']:,} objects.\n")
        P("| policy | cachesim s | kplugfs sim s | speed (cachesim/kplugfs) | builtin:lru s | speed builtin | "
          "miss ratio cachesim | miss ratio kplugfs | equal (4 dp) | own replay M req/s cachesim / kplugfs |")
        P("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for p in dict.fromkeys(r["policy"] for r in T):
            w = {s: vals([r for r in T if r["policy"] == p and r["system"] == s], "wall_s")
                 for s in ("cachesim", "kplugfs", "kplugfs-builtin")}
            m = {s: med(v) for s, v in w.items()}
            mr = {s: med(vals([r for r in T if r["policy"] == p and r["system"] == s], "miss_ratio"))
                  for s in ("cachesim", "kplugfs")}
            own = {s: med(vals([r for r in T if r["policy"] == p and r["system"] == s], "self_mreq_s"))
                   for s in ("cachesim", "kplugfs")}
            sp, spb = ratio(m["cachesim"], m["kplugfs"]), ratio(m["cachesim"], m["kplugfs-builtin"])
            eq = f"{mr['cachesim']:.4f}" == f"{mr['kplugfs']:.4f}"
            f3 = lambda x: f"{x:.3f}"
            cell = lambda s: (f3(m[s]) + spread(w[s], f3)) if w[s] else ""
            par = next((r["param"] for r in T if r["policy"] == p and r["system"] == "kplugfs" and r.get("param")), "")
            label = p + (f" (`{par.split(':', 1)[1]}`)" if par else "")
            P(f"| {label} | {cell('cachesim')} | {cell('kplugfs')} | " + (f"**{fr(sp)}**" if sp < 1 else fr(sp))
              + f" | {cell('kplugfs-builtin')} | {fr(spb) if w['kplugfs-builtin'] else ''} | "
              f"{mr['cachesim']:.4f} | {mr['kplugfs']:.4f} | {'yes' if eq else '**no**'} | "
              f"{own['cachesim']:.2f} / {own['kplugfs']:.2f} |")
            summary["simpeer"].append({"trace": tname, "policy": p, "wall_s": m, "speed": sp, "own_mreq_s": own,
                                       "speed_builtin": spb, "miss_ratio": mr, "equal": eq})
            if sp < 1 or not eq:
                short.append(f"{p} on {tname} (" + (f"{fr(sp)}x" if sp < 1 else "")
                             + ("" if eq else (", " if sp < 1 else "") + f"miss {mr['kplugfs']:.4f} vs {mr['cachesim']:.4f}") + ")")
        sps = [x["speed"] for x in summary["simpeer"] if x["trace"] == tname]

        def outside(system):  # wall time minus requests / own replay rate, every run
            return [r["wall_s"] - r["requests"] / (r["self_mreq_s"] * 1e6)
                    for r in T if r["system"] == system and r.get("self_mreq_s")]
        o = {s: outside(s) for s in ("cachesim", "kplugfs", "kplugfs-builtin")}
        f3 = lambda x: f"{x:.3f}"
        P(f"\nkplugfs at least as fast on {sum(x >= 1 for x in sps)} of {len(sps)} policies "
          f"(speed {min(sps):.2f}-{max(sps):.2f}). Time outside each tool's own replay loop "
          "(wall time - requests / own replay rate; median over every policy and run, (min-max)): "
          f"cachesim {f3(med(o['cachesim']))}{spread(o['cachesim'], f3)} s, kplugfs sim (WASM) "
          f"{f3(med(o['kplugfs']))}{spread(o['kplugfs'], f3)} s"
          + (f", builtin:lru {f3(med(o['kplugfs-builtin']))}{spread(o['kplugfs-builtin'], f3)} s" if o["kplugfs-builtin"] else "")
          + ".\n")
        summary["simpeer_outside_s"] = summary.get("simpeer_outside_s", {})
        summary["simpeer_outside_s"][tname] = {s: med(v) for s, v in o.items()}
    P("*own replay M req/s*: what each tool reports of itself (cachesim: its `throughput` "
      "over its simulation loop, trace reading included; kplugfs: `requests_per_sec` of the "
      "replay, the trace already parsed), the medians; the rest of the wall time is start-up, "
      "parsing and exit.\n")
    P("**Target.** " + ("met on every policy and trace." if not short else
                        f"**not met** on {len(short)} of {len(summary['simpeer'])}: " + "; ".join(short) + ".") + "\n")

def load_line(scenario):
    """The load average a scenario recorded at its start and end (its `<name>load` records)."""
    L = sel(scenario)
    if L:
        avg = lambda r: " / ".join(str(r[k]) for k in ("load1", "load5", "load15"))
        P("Load average at the start " + avg(L[0]) + (", at the end " + avg(L[-1]) if len(L) > 1 else "")
          + f" on {L[0]['nproc']} CPUs.\n")


V = sel("views")
if V:
    P("## 11. Views: transforms in the mount against the user-space pipeline\n")
    load_line("viewsload")
    P("Each command on a fresh mount (`--backend-latency 1ms --no-kernel-cache`), the backing "
      "file dropped from the page cache; median (min-max) over the runs.\n")
    P("| row | pipeline through the plain mount | s | view | s | speed | bytes to user space (view / plain) |")
    P("|---|---|---|---|---|---|---|")
    cmds = {"grep": ("`grep -c ZZPAT file`", "`wc -l views/grep/file`"),
            "cut": ("`cut -d, -f1,3 file`", "`cat views/cut/file`"),
            "gunzip": ("`zcat file.gz`", "`cat views/gunzip/file.gz`")}
    summary["views"] = []
    for row, (pc, vc) in cmds.items():
        pl, vw = vals(sel("views", row=row, system="plain"), "seconds"), vals(sel("views", row=row, system="view"), "seconds")
        if not pl or not vw:
            continue
        pb, vb = sel("views", row=row, system="plain")[0]["bytes"], sel("views", row=row, system="view")[0]["bytes"]
        f2 = lambda x: f"{x:.2f}"
        sp = ratio(med(pl), med(vw))
        P(f"| {row} | {pc} | {f2(med(pl))}{spread(pl, f2)} | {vc} | {f2(med(vw))}{spread(vw, f2)} | {fr(sp)} | "
          f"{vb} / {pb} ({100 * vb / pb:.1f} %) |")
        summary["views"].append({"row": row, "plain_s": med(pl), "view_s": med(vw), "speed": sp,
                                 "view_bytes": vb, "plain_bytes": pb})
    T = sel("viewsthroughput")
    if T:
        P("\nTransform throughput on the same data (`tests/benches/transform.rs`): the same Rust "
          "code through the engine (WASM, 64 KiB chunks through linear memory) and linked natively.\n")
        P("| transform | input MiB | output MiB | WASM MiB/s | native MiB/s | WASM / native |")
        P("|---|---|---|---|---|---|")
        for t in T:
            P(f"| {t['transform']} | {t['input_mib']} | {t['output_mib']} | {t['wasm_mib_s']} | "
              f"{t['native_mib_s']} | {t['wasm_over_native']:.2f} |")
        summary["views_throughput"] = T
    P("")

F = sel("probes")
if F:
    P("## 13. Probes under a flood: fio through a real mount\n")
    load_line("probesload")
    P("fio random 4 KiB reads (one job, psync, `--direct=1`) of a 64 MiB file held in the block "
      "cache (O_DIRECT: every read is a FUSE request and a cache hit, two events a read), "
      "each case on a fresh mount; median (min-max) over the runs. *delivered* and *dropped* are "
      "the events of all the case's probes (`.kplug/stats`), summed over one run.\n")
    P("| case | probes | IOPS | vs no probe | events delivered | dropped |")
    P("|---|---|---|---|---|---|")
    names = {"none": "none", "one": "`bottleneck` (every FUSE, cache and backend event)",
             "four": "`hot-files`, `latency-by-dir`, `seq-by-process`, `bottleneck`",
             "five": "the four and `policy-audit`"}
    base = med(vals(sel("probes", case="none"), "iops"))
    summary["probes"] = []
    for c in ("none", "one", "four", "five"):
        rows = sel("probes", case=c)
        if not rows:
            continue
        iops = vals(rows, "iops")
        dl, dr = med(vals(rows, "delivered")), med(vals(rows, "dropped"))
        P(f"| {c} | {names[c]} | {f0(med(iops))}{spread(iops, f0)} | {fr(ratio(med(iops), base))} | "
          f"{f0(dl)} | {f0(dr)} |")
        summary["probes"].append({"case": c, "iops": med(iops), "vs_none": ratio(med(iops), base),
                                  "delivered": dl, "dropped": dr})
    P("")

A = sel("adaptive")
if A:
    P("## 15. `adaptive` against every fixed eviction policy (`scripts/adaptive-check.py`)\n")
    load_line("adaptiveload")
    P("Each (trace, size) cell replayed by `kplugfs sim --policy adaptive,fifo,lru,clock,sieve,arc,"
      "twoq,lirs,s3fifo,wtinylfu --cache-size 0.01,0.05,0.1,0.25` (libCacheSim's object mode; "
      "deterministic, so one run): *diff* is `adaptive`'s miss ratio less the best fixed "
      "policy's in that cell (negative: better than every fixed policy). Sets: the repo's real "
      "traces (`traces/data/`, the ones the governor's rule was chosen on), the held-out traces "
      "of `traces/heldout/` (no setting chosen on them), the phase-changing trace of "
      "`scripts/phase-trace.py`. Target (issue 19): never more than 0.01 behind the best fixed "
      "policy on any cell, within 0.005 on all but the cells shown out of reach of a governor "
      "deciding from the past (docs/policies.md), below every fixed policy on the phase trace "
      "at every size.\n")
    names = {"repo": "repo's real traces", "heldout": "held-out traces", "phase": "phase trace"}
    # The held-out traces are replayed from text files: the format is no news in a table.
    cell = lambda r: r["trace"].replace(" --format txt", "")
    P("| set | cells | within 0.005 | within 0.01 | below every fixed policy | worst (cell) |")
    P("|---|---:|---:|---:|---:|---|")
    summary["adaptive"] = {}
    for st in ("repo", "heldout", "phase"):
        rows = sel("adaptive", set=st)
        if not rows:
            continue
        w = max(rows, key=lambda r: r["diff"])
        n5 = sum(r["diff"] <= 0.005 for r in rows)
        n10 = sum(r["diff"] <= 0.01 for r in rows)
        below = sum(r["diff"] < 0 for r in rows)
        P(f"| {names[st]} | {len(rows)} | {n5} | {n10} | {below} | {w['diff']:+.4f} ({cell(w)} "
          f"{w['size'] * 100:g} %, best {w['best']}) |")
        summary["adaptive"][st] = {"cells": len(rows), "within_0_005": n5, "within_0_01": n10,
                                   "below_every_fixed": below, "worst": w["diff"],
                                   "worst_cell": f"{cell(w)} {w['size']}"}
    ph = sel("adaptive", set="phase")
    if ph:
        P("\nThe phase trace, size by size:\n")
        P("| size | best fixed | its miss ratio | adaptive | diff | switches |")
        P("|---|---|---:|---:|---:|---:|")
        for r in sorted(ph, key=lambda r: r["size"]):
            P(f"| {r['size'] * 100:g} % | {r['best']} | {r['best_miss_ratio']:.4f} | "
              f"{r['adaptive_miss_ratio']:.4f} | {r['diff']:+.4f} | {r['switches']} |")
    over = sorted((r for r in A if r["diff"] > 0.005), key=lambda r: -r["diff"])
    if over:
        P(f"\nThe {len(over)} cells more than 0.005 behind (worst first):\n")
        P("| set | trace | size | best fixed | diff | switches |")
        P("|---|---|---:|---|---:|---:|")
        for r in over:
            P(f"| {r['set']} | {cell(r)} | {r['size'] * 100:g} % | {r['best']} | {r['diff']:+.4f} | "
              f"{r['switches']} |")
    P("")

open(os.path.join(args.out, "report.md"), "w").write("\n".join(md) + "\n")
if args.docs:
    body = [l for l in md if not l.startswith("![")]
    body[0] = "# Benchmarks\n"
    pre = ("Produced by `scripts/bench.sh` (the one benchmark command; `--help` lists its options). "
           "Every number below comes from the single run of the command shown next; re-running it with "
           "`--docs docs/benchmarks.md` regenerates this page. The full report of a run (with SVG "
           "charts: `reads.svg`, `slow-*.svg`, `hooks.svg`, `sim.svg`, `smallfiles.svg`) and its "
           "machine-readable `report.json` are in the `--out` directory. Quick mode (`--quick`) uses "
           "small sizes and short runs; the full mode (no flag) uses 512 MiB files, 5 s random "
           "reads, 100 000 small files and every run for every policy.\n")
    body.insert(1, pre)
    scenarios = {r["scenario"] for r in recs}
    everything = {"reads", "slow", "hooks", "sim", "hotswap", "smallfiles", "s3"} <= scenarios
    if everything or not os.path.exists(args.docs):
        open(args.docs, "w").write("\n".join(body) + "\n")
    else:
        # A run of some scenarios: replace only their sections ("## N. ...") of the page,
        # keeping the others (and the page's header, which names the run that made them).
        def sections(lines):
            head, secs = [], []
            for line in lines:
                if line.startswith("## "):
                    secs.append([line])
                elif secs:
                    secs[-1].append(line)
                else:
                    head.append(line)
            return head, secs

        num = lambda sec: sec[0].split()[1]
        old_head, old = sections(open(args.docs).read().rstrip("\n").split("\n"))
        _, new = sections("\n".join(body).split("\n"))
        fresh = {num(sec): sec for sec in new}
        merged = [fresh.pop(num(sec), sec) for sec in old]
        merged += list(fresh.values())
        merged.sort(key=lambda sec: float(num(sec).rstrip(".")) if num(sec).rstrip(".").isdigit() else 1e9)
        # Each section ends with a blank line, whichever run wrote it.
        out = old_head + [l for sec in merged for l in (sec if sec[-1] == "" else sec + [""])]
        open(args.docs, "w").write("\n".join(out).rstrip("\n") + "\n")
json.dump({"command": args.command, "machine": machine, "params": params,
           "seconds": {"measurements": args.total_seconds, "build": args.build_seconds, **timings},
           "summary": summary, "records": recs},
          open(os.path.join(args.out, "report.json"), "w"), indent=1, default=str, allow_nan=True)
