#!/usr/bin/env python3
"""The module graph of a crate, from its `use crate::...`, `use super::...`
and inline `crate::a::b` paths, and the cycles in it.

    .ci/module_graph.py cachefn/src            # edges, then cycles
    .ci/module_graph.py cachefn/src --dot      # Graphviz
    .ci/module_graph.py cachefn/src --check    # exit 1 if two modules import each other

A module is a file (`cache/mod.rs` is `cache`, `cache/api.rs` is
`cache::api`). An edge A -> B means A names something in B (or below B). A module
naming its own descendants is an edge; a module naming what an ancestor
declares (`super::Item`) is not one: its ancestors are its namespace. Paths inside `#[cfg(test)]` modules and doc comments are
left out: tests may reach anywhere.
"""

import os
import re
import sys


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3]  # strip .rs
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_tests_and_comments(text):
    # Drop `#[cfg(test)] mod tests { ... }` blocks (brace-matched).
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    text = "".join(out)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return text


def use_paths(text):
    """Every path a file names: `use` trees expanded, and inline paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(expand(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"(?<![\w:])((?:\w+)(?:::\w+)+)", text):
        paths.append(m.group(1))
    return paths


def expand(tree):
    tree = tree.strip()
    if "{" not in tree:
        return [tree.split(" as ")[0].strip()]
    head, rest = tree.split("{", 1)
    inner = rest.rsplit("}", 1)[0]
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    items.append(cur)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        for p in expand(item):
            out.append(head + p if p != "self" else head.rstrip(":"))
    return out


def resolve(path, here, modules):
    parts = path.split("::")
    if parts[0] == "crate":
        base, parts = (), parts[1:]
    elif parts[0] in ("super", "self"):
        base = here
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    elif here + (parts[0],) in modules:
        base = here  # a child module, named without `self::`
    else:
        return None
    target = base
    for p in parts:
        if target + (p,) in modules:
            target = target + (p,)
        else:
            break
    return target


def graph(root):
    files = []
    for d, _, names in os.walk(root):
        files += [os.path.join(d, n) for n in names if n.endswith(".rs")]
    modules = {module_of(root, f): f for f in files}
    edges = set()
    for mod, f in modules.items():
        text = strip_tests_and_comments(open(f, encoding="utf-8").read())
        for p in use_paths(text):
            t = resolve(p, mod, modules)
            if t is None or t == mod or t == () or mod[: len(t)] == t:
                # A module may use what its ancestors declare (they are its
                # namespace); the cycles that matter are between modules
                # that neither contains the other, and a parent using a
                # child that uses another of the parent's children back.
                continue
            edges.add((mod, t))
    return modules, edges


def cycles(modules, edges):
    adj = {m: set() for m in modules}
    for a, b in edges:
        adj[a].add(b)
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                strong(w)
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in modules:
        if v not in index:
            strong(v)
    return out


def name(m):
    return "::".join(m) or "crate"


def main():
    root = sys.argv[1]
    modules, edges = graph(root)
    found = cycles(modules, edges)
    if "--dot" in sys.argv:
        print("digraph modules {\n  rankdir=LR; node [shape=box, fontsize=10];")
        for a, b in sorted(edges):
            print(f'  "{name(a)}" -> "{name(b)}";')
        print("}")
        return
    if "--check" not in sys.argv:
        for a, b in sorted(edges):
            print(f"{name(a)} -> {name(b)}")
    for comp in found:
        print("cycle: " + " <-> ".join(name(m) for m in comp))
    if "--check" in sys.argv and found:
        sys.exit(1)


if __name__ == "__main__":
    main()
