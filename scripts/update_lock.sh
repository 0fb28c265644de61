#!/usr/bin/env bash
# Write requirements/lock.txt: the exact version of every package that `pip install '.[test]'`
# (and requirements/docs.txt, where it exists) resolves to today, as a pip constraints file.
# pip resolves in a throw-away virtual environment (--dry-run: nothing is installed); torch stays
# at TORCH (the CPU build that this machine and CI install from their local wheel). Run it, run
# `make test`, and commit the lock with a CHANGELOG line when the versions move.
#   scripts/update_lock.sh                 # newest releases within pyproject.toml's ranges
#   TORCH=2.14.1 scripts/update_lock.sh    # another torch
#   scripts/update_lock.sh -c pins.txt     # more pip options: keep the versions pins.txt names
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
requests=('.[test]')
[ -f requirements/docs.txt ] && requests+=(-r requirements/docs.txt)
echo "torch==$TORCH" >"$work/torch.txt"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed \
  --report "$work/report.json" -c "$work/torch.txt" "$@" "${requests[@]}"
"$work/venv/bin/python" - "$work/report.json" >"$work/lock.txt" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
print("# The exact versions that `make install` (so `make demo`, `make test` and CI) installs, as a pip")
print("# constraints file: pip install -c requirements/lock.txt -e '.[test]'. pyproject.toml holds the")
print("# ranges users get; this file pins one tested set of them. Written by scripts/update_lock.sh.")
print("# torch==2.13.0 matches the local CPU build (2.13.0+cpu) that this machine and CI install.")
for item in sorted(report["install"], key=lambda item: item["metadata"]["name"].lower()):
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if name.lower() != "medfuse":
        print(f"{name}=={version.split('+')[0]}")
PY
mv "$work/lock.txt" requirements/lock.txt
echo "wrote requirements/lock.txt ($(grep -vc '^#' requirements/lock.txt) packages)"
