#!/usr/bin/env bash
# Build the sdist and the wheel and check that each works on its own, outside this repository:
#   1. python -m build (sdist, then the wheel from the sdist) and twine check;
#   2. the wheel holds the shipped weights, their model card, the samples and the MONAI bundle,
#      and the sdist holds LICENSE, CITATION.cff, CHANGELOG.md and the tests;
#   3. a fresh virtual environment in a temporary folder gets the wheel (the lock as constraints,
#      so torch stays the local CPU build) and, from a folder outside the repository, runs
#      `medfuse --version`, `medfuse fuse` on the samples inside the installed package and
#      `python -c 'import medfuse'`;
#   4. pip resolves the wheel beside an older numpy (--dry-run "numpy<2.4"): the ranges let it
#      install next to what a user has.
# Usage: scripts/check_dist.sh [DIST_FOLDER]   (default out/dist; PYTHON picks the interpreter)
# pip's cache (PIP_CACHE_DIR, else ~/.cache/pip) is kept between runs, so a rerun is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PYTHON=${PYTHON:-python3}
dist=${1:-out/dist}
lock=$repo/requirements/lock.txt
version=$("$PYTHON" -c 'import ast, sys
for node in ast.parse(open("src/medfuse/__init__.py").read()).body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
        print(node.value.value)')
work=$(mktemp -d "${TMPDIR:-/tmp}/medfuse-dist-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
pip_quiet=(--quiet --disable-pip-version-check)
start=$SECONDS
step() { echo "check_dist: $* ($((SECONDS - start)) s)"; }

# Tools in their own environment, pinned by the lock where it names them.
"$PYTHON" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install "${pip_quiet[@]}" -c "$lock" build twine
rm -rf "$dist"
mkdir -p "$dist"
"$work/tools/bin/python" -m build --outdir "$dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$dist"/medfuse-"$version"-py3-none-any.whl)
sdist=$(ls "$dist"/medfuse-"$version".tar.gz)
step "built $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB) and $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
"$work/tools/bin/python" -m twine check --strict "$wheel" "$sdist"
step "twine check passed for both"

# What must travel inside each archive.
"$work/tools/bin/python" - "$wheel" "$sdist" <<'PY'
import sys
import tarfile
import zipfile

wheel, sdist = sys.argv[1:]
names = set(zipfile.ZipFile(wheel).namelist())
needed = [f"medfuse/dran/weights/{name}" for name in (
    "dran-havard.safetensors", "dran-edge-havard.safetensors", "dran-fusion-havard.safetensors", "MODEL_CARD.md")]
needed += ["medfuse/samples/README.md", "medfuse/integrations/monai_bundle/configs/inference.json",
           "medfuse/_shared/optional.py", "medfuse/cli/__init__.py"]
missing = [name for name in needed if name not in names]
samples = sorted(name for name in names if name.startswith("medfuse/samples/") and name.endswith(".png"))
licences = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
if missing or len(samples) < 8 or not licences:
    sys.exit(f"check_dist: the wheel lacks {missing or ''} {'' if len(samples) >= 8 else 'the 8 sample images'} "
             f"{'' if licences else 'LICENSE'}")
print(f"check_dist: the wheel holds the 3 weight files, their model card, {len(samples)} sample images, "
      "the MONAI bundle and LICENSE")
top = tarfile.open(sdist).getnames()[0].split("/")[0]
inside = set(tarfile.open(sdist).getnames())
wanted = [f"{top}/{name}" for name in ("LICENSE", "CITATION.cff", "CHANGELOG.md", "README.md", "pyproject.toml",
                                      "src/medfuse/dran/weights/dran-havard.safetensors")]
lacking = [name for name in wanted if name not in inside]
if lacking:
    sys.exit(f"check_dist: the sdist lacks {lacking}")
print("check_dist: the sdist holds LICENSE, CITATION.cff, CHANGELOG.md, README.md and the weights")
PY

# The wheel alone, in a fresh environment outside the repository, run from outside it.
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install "${pip_quiet[@]}" -c "$lock" "$repo/$wheel"
step "installed the wheel and its core requirements into a fresh environment in $work"
mkdir "$work/run"
cd "$work/run"
"$work/venv/bin/medfuse" --version | tee "$work/version.txt"
[ "$(cat "$work/version.txt")" = "medfuse $version" ] || { echo "check_dist: medfuse --version is not $version"; exit 1; }
samples=$("$work/venv/bin/python" -c 'import medfuse, pathlib; print(pathlib.Path(medfuse.__file__).parent / "samples")')
case "$samples" in "$repo"/*) echo "check_dist: medfuse was imported from the repository ($samples)"; exit 1;; esac
"$work/venv/bin/medfuse" fuse "$samples/CT-MRI/MRI/41010.png" "$samples/CT-MRI/CT/41010.png" -o mri-ct.png --quiet
"$work/venv/bin/medfuse" fuse "$samples/PET-MRI/MRI/25015.png" "$samples/PET-MRI/PET/25015.png" -o mri-pet.png \
  --rule trained-pyramid --quiet
"$work/venv/bin/python" -c 'import medfuse; print(f"import medfuse: {medfuse.__version__} from {medfuse.__file__}")'
"$work/venv/bin/python" -c 'from PIL import Image
for name in ("mri-ct.png", "mri-pet.png"):
    image = Image.open(name)
    assert image.size == (256, 256), (name, image.size)
    print(f"check_dist: {name} is {image.size[0]}x{image.size[1]} {image.mode}")'
cd "$repo"
step "medfuse --version, medfuse fuse (the default rule, and trained-pyramid with the shipped weights) and import medfuse work from $work/run"

# The ranges admit a user's older numpy beside their torch (pip may look releases up on PyPI; nothing is
# installed).
"$work/venv/bin/python" -m pip install "${pip_quiet[@]}" --dry-run --ignore-installed --report "$work/older.json" \
  "$wheel" "numpy<2.4" "torch==2.13.0"
"$work/venv/bin/python" -c 'import json, sys
chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.load(open(sys.argv[1]))["install"]}
numpy, torch = chosen["numpy"], chosen["torch"]
print(f"check_dist: pip resolves the wheel beside numpy {numpy} (asked: numpy<2.4) and torch {torch}")' \
  "$work/older.json"
step "all checks passed; the archives are in $dist"
