#!/usr/bin/env bash
# readme-bench.sh — copy tables of docs/bench/results.md into README.md
# between their markers (run after `make bench`): the small-body table
# (BENCH-TABLE, with the "CPU ÷ plain zkgate" and "CPU ÷ nginx" lines
# under it when their targets were measured, and the "CPU ÷ nginx, 1 worker,
# back to back" line of the pairs), the both-cores small-body table
# (BENCH-2CORE, with the "Rate ÷" line of the back-to-back pairs), the memory per held connection (BENCH-HELD), zkgate's
# TLS entry point against nginx (BENCH-TLS), zkgate's compression of a
# 64 KiB JSON answer against nginx's gzip (BENCH-GZIP) and gRPC unary calls
# through zkgate and nginx against direct (BENCH-GRPC).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import re, sys

results = open("docs/bench/results.md").read().splitlines()

def first_table(heading):
    """The first table after the line heading (exact), or exit."""
    try:
        i = results.index(heading)
    except ValueError:
        sys.exit(f"readme-bench: no {heading!r} in docs/bench/results.md")
    rows, end = [], len(results)
    for j, line in enumerate(results[i + 1:], i + 1):
        if line.startswith("|"):
            rows.append(line)
        elif rows or line.startswith("#"):
            end = j
            break
    if not rows:
        sys.exit(f"readme-bench: no table after {heading!r}")
    # The lines under a table giving CPU ratios (the policies row's
    # against the plain zkgate row's, zkgate's against nginx's) and the
    # back-to-back rate ratios ("Rate ÷", under the both-cores table) go
    # with it.
    while end + 1 < len(results) and results[end] == "" and results[end + 1].startswith(("CPU ÷ ", "Rate ÷ ")):
        rows += ["", results[end + 1]]
        end += 2
    return "\n".join(rows)

s = open("README.md").read()
for marker, heading in [("BENCH-TABLE", "### 13-byte body"),
                        ("BENCH-2CORE", "#### Both cores, 13-byte body"),
                        ("BENCH-HELD", "### Memory per held connection"),
                        ("BENCH-TLS", "### TLS against nginx"),
                        ("BENCH-GZIP", "### Compression against nginx"),
                        ("BENCH-GRPC", "### gRPC unary calls")]:
    block = f"<!-- {marker} -->\n{first_table(heading)}\n<!-- /{marker} -->"
    pat = re.compile(rf"<!-- {marker} -->.*?<!-- /{marker} -->", re.S)
    if pat.search(s):
        s = pat.sub(lambda m: block, s)
    elif f"<!-- {marker} -->" in s:
        s = s.replace(f"<!-- {marker} -->", block, 1)
    else:
        sys.exit(f"readme-bench: README.md has no <!-- {marker} --> marker")
open("README.md", "w").write(s)
PY
