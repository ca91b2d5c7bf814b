#!/usr/bin/env python3
"""Fail when two source files of one crate import each other, directly or through others.

A crate's files should form a layered graph: a file may use what files below it define,
never what uses it. This script builds the graph of `crate::`/`super::`/`self::` paths
between the `.rs` files of each crate's `src/` (the paths in `use` items and in
expressions), and prints every strongly connected component of more than one file.

What is not an edge:
- `mod x;` declarations (a parent naming its children is structure, not use);
- `pub use` re-exports (a facade: `lib.rs` re-exporting `Foo` does not depend on the
  files that use `crate::Foo`); `crate::Foo` itself resolves to the file defining `Foo`
  when a `pub use` names it, else to the module file the path names.

Usage: scripts/check-cycles.py [CRATE_DIR ...]   (default: every workspace crate)
Exit status 1 when a cycle is found.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PATH_RE = re.compile(r"\b(crate|super|self)((?:::(?:\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*))+)")
REEXPORT_RE = re.compile(r"^\s*pub(\([^)]*\))?\s+use\s+([^;]+);", re.M)
COMMENT_RE = re.compile(r"//[^\n]*")


def module_files(src):
    """Map module path tuple -> file, for every .rs file under src."""
    files = {}
    for dirpath, _, names in os.walk(src):
        for n in names:
            if not n.endswith(".rs"):
                continue
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            files[tuple(rel)] = full
    return files


def strip_comments(text):
    return COMMENT_RE.sub("", text)


def expand(segments):
    """`a::{b, c::d}` -> [[a, b], [a, c, d]] (one level of braces is enough here)."""
    out = [[]]
    for seg in segments:
        if seg.startswith("{"):
            alts = [s.strip() for s in seg[1:-1].split(",") if s.strip()]
            out = [o + [p for p in alt.split("::") if p] for o in out for alt in alts]
        else:
            out = [o + [seg] for o in out]
    return out


def resolve(files, here, kind, segments):
    """The file a path names: the longest module prefix (crate-relative)."""
    if kind == "crate":
        base = ()
    elif kind == "self":
        base = here
    else:  # super, possibly repeated: super::super::x
        base = here[:-1]
        while segments and segments[0] == "super":
            base = base[:-1]
            segments = segments[1:]
    path = tuple(base) + tuple(s.split(" as ")[0].strip() for s in segments)
    for n in range(len(path), -1, -1):
        if path[:n] in files:
            return path[:n], path[n:]
    return None, ()


def crate_graph(src):
    files = module_files(src)
    # Items re-exported by a module facade: (module, item) -> module path that defines it.
    reexports = {}
    texts = {}
    for mod, f in files.items():
        with open(f, encoding="utf-8") as fh:
            texts[mod] = strip_comments(fh.read())
    for mod, text in texts.items():
        for m in REEXPORT_RE.finditer(text):
            body = m.group(2).strip()
            pm = PATH_RE.match(body)
            if pm:
                kind, rest = pm.group(1), pm.group(2)
                segs = [s for s in re.split(r"::(?![^{]*\})", rest) if s]
                for alt in expand(segs):
                    target, tail = resolve(files, mod, kind, alt)
                    if target is not None and tail:
                        reexports[(mod, tail[-1].split(" as ")[-1].strip())] = target
            else:
                # `pub use child::Item;` relative to this module
                segs = [s for s in re.split(r"::(?![^{]*\})", body) if s]
                for alt in expand(segs):
                    target, tail = resolve(files, mod, "self", alt)
                    if target is not None and tail:
                        reexports[(mod, tail[-1].split(" as ")[-1].strip())] = target
    graph = {mod: set() for mod in files}
    for mod, text in texts.items():
        body = REEXPORT_RE.sub("", text)
        for m in PATH_RE.finditer(body):
            kind, rest = m.group(1), m.group(2)
            segs = [s for s in re.split(r"::(?![^{]*\})", rest) if s]
            for alt in expand(segs):
                target, tail = resolve(files, mod, kind, alt)
                if target is None:
                    continue
                if tail and (target, tail[0]) in reexports:
                    target = reexports[(target, tail[0])]
                if target != mod and not (kind == "self" and target == mod):
                    graph[mod].add(target)
    return files, graph


def sccs(graph):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def crate_dirs():
    out = []
    for dirpath, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in ("target", ".git", "node_modules")]
        if "Cargo.toml" in names and os.path.isdir(os.path.join(dirpath, "src")):
            out.append(dirpath)
    return sorted(out)


def main():
    dirs = sys.argv[1:] or crate_dirs()
    bad = 0
    for d in dirs:
        src = os.path.join(d, "src")
        files, graph = crate_graph(src)
        for comp in sccs(graph):
            bad += 1
            names = sorted(os.path.relpath(files[m], ROOT) for m in comp)
            print("import cycle: " + " <-> ".join(names))
    print(f"{len(dirs)} crates checked, {bad} import cycle(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
