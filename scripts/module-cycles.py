#!/usr/bin/env python3
"""Import cycles between the modules of the `jarvis` crate (issue 13, item 3).

Builds a graph from every `crate::a::b` / `super::x` path in `crates/jarvis/src` (comment
lines and `#[cfg(test)] mod tests` blocks left out; a path counts for the file that defines
the module it names, so a re-export points at the re-exporting module) and prints the strongly
connected components with more than one member: first between top-level modules, then between
files. The layering ARCHITECTURE.md describes has none at the module level except the two back
edges it names.

Usage: python3 scripts/module-cycles.py [SRC_DIR]   (default crates/jarvis/src)
"""
import collections
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "crates/jarvis/src"
files = {}
for d, _, names in os.walk(ROOT):
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(d, n)
            mod = os.path.relpath(p, ROOT)[:-3].replace("/mod", "").replace("/", "::")
            if mod not in ("lib", "main"):
                files[mod] = p


def resolve(path):
    parts = path.split("::")
    while parts:
        m = "::".join(parts)
        if m in files:
            return m
        parts = parts[:-1]
    return None


edges = collections.defaultdict(set)
for m, p in files.items():
    src = open(p).read()
    src = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", src, flags=re.S)
    src = "\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
    for mm in re.finditer(r"\$?crate::([a-z_]+(?:::[a-z_]+)*)", src):
        t = resolve(mm.group(1))
        if t and t != m:
            edges[m].add(t)
    parent = m.split("::")[:-1]
    for mm in re.finditer(r"\bsuper::([a-z_]+(?:::[a-z_]+)*)", src):
        t = resolve("::".join(parent + mm.group(1).split("::")))
        if t and t != m:
            edges[m].add(t)


def cycles(nodes, graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


top = collections.defaultdict(set)
for a, targets in edges.items():
    for b in targets:
        ta, tb = a.split("::")[0], b.split("::")[0]
        if ta != tb:
            top[ta].add(tb)
for c in cycles({m.split("::")[0] for m in files}, top):
    print(f"module cycle ({len(c)}): {' '.join(c)}")
    for a in c:
        print(f"  {a} -> {' '.join(sorted(b for b in top[a] if b in c))}")
for c in cycles(set(files), edges):
    print(f"file cycle ({len(c)}): {' '.join(c)}")
