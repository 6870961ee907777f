#!/usr/bin/env python3
"""Worst-case stack of a call path, from -Z emit-stack-sizes (used by size.sh --stack).

usage: stack-estimate.py ELF ROOT [--top N]

ELF is a linked Cortex-M image whose objects were built with
`-Z emit-stack-sizes` (its .stack_sizes section gives each function's frame).
The call graph comes from `llvm-objdump -d`: direct calls and tail branches
(bl, b.w, b to another function's symbol). The estimate is the deepest sum of
frames on any path from ROOT; recursion is cut at the first repeat. Calls
through pointers (the C hooks, dyn trait objects) are not followed: the hooks'
own stack comes on top of the figure. Prints the figure and the path.
"""
import re
import subprocess
import sys


def frames(elf):
    out = subprocess.run(["llvm-readobj", "--stack-sizes", "--demangle", elf],
                         capture_output=True, text=True, check=True).stdout
    sizes = {}
    names = []
    for line in out.splitlines():
        line = line.strip()
        m = re.match(r"Functions: \[(.*)\]$", line)
        if m:
            names = [m.group(1)]
            continue
        m = re.match(r"Size: (0x[0-9A-Fa-f]+)", line)
        if m:
            for n in names:
                sizes[n] = int(m.group(1), 16)
    return sizes


def calls(elf):
    out = subprocess.run(["llvm-objdump", "-d", "--demangle", "--no-show-raw-insn", elf],
                         capture_output=True, text=True, check=True).stdout
    graph = {}
    current = None
    fn = re.compile(r"^[0-9a-f]+ <(.*)>:$")
    call = re.compile(r"\s(bl|b|b\.w)\s+0x[0-9a-f]+\s+<(.*)>(\s+@.*)?$")
    for line in out.splitlines():
        m = fn.match(line)
        # $t/$d/$a mark code and literal pools inside a function.
        if m and not m.group(1).startswith("$"):
            current = m.group(1)
            graph.setdefault(current, set())
            continue
        m = call.search(line)
        if m and current:
            target = m.group(2)
            if not re.search(r"\+0x[0-9a-f]+$", target) and target != current:
                graph[current].add(target)
    return graph


def main():
    elf, root = sys.argv[1], sys.argv[2]
    sizes, graph = frames(elf), calls(elf)
    memo = {}

    def deepest(f, seen):
        if f in memo:
            return memo[f]
        best, path = 0, []
        for g in graph.get(f, ()):
            if g in seen:
                continue
            d, p = deepest(g, seen | {g})
            if d > best:
                best, path = d, p
        result = (sizes.get(f, 0) + best, [f] + path)
        memo[f] = result
        return result

    sys.setrecursionlimit(10000)
    total, path = deepest(root, {root})
    print("stack=%d" % total)
    for f in path:
        if sizes.get(f, 0) >= 64:
            print("  %6d  %s" % (sizes.get(f, 0), f[:150]))


if __name__ == "__main__":
    main()
