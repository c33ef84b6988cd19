#!/usr/bin/env python3
"""Checks the build's layout (a `make check` test, TAP-ish like the C unit
tests; docs/development.md "Build"): every source directory under src/ has
its own automake fragment, src/X/X.am (src/src.am for the top of src/),
which names files of that directory only; every C source and header under
src/ is named by its directory's fragment; and the fragments outside src/
(Makefile.am, fuzz/, tests/, bench/) name no file of src/, so a fuzz target
takes a layer's sources from the layer's fragment instead of a second list.

Run by `make check` from the build directory, with top_srcdir in the
environment (AM_TESTS_ENVIRONMENT)."""
import os
import re
import sys

SRC = os.environ.get("top_srcdir", ".")
NAMED = re.compile(r"(?<![\w/.$(])(src/[\w./-]+\.[ch])\b")
n = 0
failed = 0


def check(ok, what):
    global n, failed
    n += 1
    if not ok:
        failed += 1
    print(("ok" if ok else "not ok") + f" {n} - {what}")


def named(path):
    with open(os.path.join(SRC, path)) as f:
        text = "\n".join(line for line in f.read().splitlines() if not line.lstrip().startswith("#"))
    return set(NAMED.findall(text))


def main():
    sources = {}  # directory (relative to the tree) -> its .c and .h files
    for root, _dirs, files in os.walk(os.path.join(SRC, "src")):
        rel = os.path.relpath(root, SRC)
        here = sorted(f"{rel}/{f}" for f in files if f.endswith((".c", ".h")))
        if here:
            sources[rel] = here
    check(sources, "src/ has source directories")
    for d, files in sorted(sources.items()):
        frag = "src/src.am" if d == "src" else f"{d}/{os.path.basename(d)}.am"
        if not os.path.exists(os.path.join(SRC, frag)):
            check(False, f"{d} has its fragment {frag}")
            continue
        names = named(frag)
        foreign = sorted(p for p in names if os.path.dirname(p) != d)
        check(not foreign, f"{frag} names files of {d} only{': ' + ' '.join(foreign) if foreign else ''}")
        generated = {"src/db/migrations_sql.c"}
        missing = sorted(f for f in files if f not in names and f not in generated)
        check(not missing, f"{frag} names every source of {d}{': missing ' + ' '.join(missing) if missing else ''}")
    others = ["Makefile.am"]
    for d in ("fuzz", "tests", "bench", "contrib"):
        for root, _dirs, files in os.walk(os.path.join(SRC, d)):
            others += [os.path.relpath(os.path.join(root, f), SRC) for f in files if f.endswith(".am")]
    for frag in sorted(others):
        names = sorted(named(frag))
        check(not names, f"{frag} names no file of src/ (uses the layers' variables){': ' + ' '.join(names) if names else ''}")
    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
