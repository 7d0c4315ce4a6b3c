#!/usr/bin/env python3
"""How much of the SQLite store backend repeats the PostgreSQL one (issue 13, item 1).

Counts the code lines of the SQLite backend (`store/sqlite.rs` and `store/sqlite/`; blank
lines, `//` comments and `#[cfg(test)]` modules left out) that also stand in the PostgreSQL
backend (`store/postgres.rs`, `store/postgres/`), as a multiset: each PostgreSQL line matches
at most one SQLite line. Before comparing, `$N`/`?N` placeholders, backend names
(sqlite, postgres, postgresql, pg) and pool names (reader, writer, pool, read, write,
queue_pool) are normalised. Prints the counts and the share; the target is under 25 %.

Usage: python3 scripts/store-overlap.py [--kinds] [STORE_DIR]   (default crates/jarvis/src/store)

--kinds also sorts the matching lines by kind (punctuation, signatures and declarations, imports
and modules, other) and prints the "other" ones.
"""
import collections
import pathlib
import re
import sys

ARGS = [a for a in sys.argv[1:] if a != "--kinds"]
KINDS = "--kinds" in sys.argv[1:]
ROOT = pathlib.Path(ARGS[0] if ARGS else "crates/jarvis/src/store")


def backend_files(name):
    files = [ROOT / f"{name}.rs"] + sorted((ROOT / name).rglob("*.rs"))
    return [f for f in files if f.exists()]


def normalise(line):
    line = re.sub(r"[$?]\d+", "$N", line)
    line = re.sub(r"(?i)sqlite|postgres(ql)?|pg", "B", line)
    return re.sub(r"\b(reader|writer|pool|queue_pool|read|write)\b", "P", line)


def code_lines(files):
    out = []
    for path in files:
        in_tests = False
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line.startswith("#[cfg(test)]"):
                in_tests = True
            if in_tests or not line or line.startswith("//"):
                continue
            out.append(normalise(line))
    return out


sqlite = code_lines(backend_files("sqlite"))
postgres = collections.Counter(code_lines(backend_files("postgres")))
matching = 0
matched = []
for line in sqlite:
    if postgres[line] > 0:
        postgres[line] -= 1
        matching += 1
        matched.append(line)
share = 100 * matching / max(len(sqlite), 1)
print(f"SQLite backend: {len(sqlite)} code lines, {matching} match a PostgreSQL line ({share:.0f} %)")


def kind(line):
    if re.fullmatch(r"[\]\)\}\{;,.?]*", line) or line in (".await?;", ".await", "Ok(())"):
        return "punctuation or .await"
    if line.startswith(("use ", "mod ")) or line.startswith("missing_keys"):
        return "imports and modules"
    if re.match(r"(async fn|&self|[a-z_]+: .*,$|\) -> Result|fn |impl |#\[async_trait\]|const |type |pub struct|static )", line):
        return "signatures and declarations"
    return "other"


if KINDS:
    kinds = collections.Counter(kind(l) for l in matched)
    for k, n in kinds.most_common():
        print(f"  {n:4} {k}")
    for line in matched:
        if kind(line) == "other":
            print(f"       other: {line}")
