#!/usr/bin/env bash
# readme-bench.sh — copy the small-body table of docs/bench/results.md into
# README.md between the BENCH-TABLE markers (run after `make bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(awk '/^### 13-byte body/{on=1; next} on && /^\|/{print; next} on && /^### /{exit}' docs/bench/results.md)
[ -n "$table" ] || { echo "readme-bench: no table in docs/bench/results.md" >&2; exit 1; }
python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1]
s = open("README.md").read()
block = "<!-- BENCH-TABLE -->\n" + table + "\n<!-- /BENCH-TABLE -->"
if "<!-- /BENCH-TABLE -->" in s:
    s = re.sub(r"<!-- BENCH-TABLE -->.*?<!-- /BENCH-TABLE -->", lambda m: block, s, flags=re.S)
else:
    s = s.replace("<!-- BENCH-TABLE -->", block, 1)
open("README.md", "w").write(s)
PY
