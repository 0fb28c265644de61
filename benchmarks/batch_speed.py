"""Rows per minute of ``medfuse batch``: one process, then local Dask clusters of 1 and 2 workers.

    python benchmarks/batch_speed.py [--rows 8] [--shape 128,128,32] [--rule sfnn-map]

A manifest of ``--rows`` synthetic NIfTI pairs (phantoms of ``--shape``) is fused with the
shipped weights, each run into a fresh output folder (no row skipped); the time includes the
cluster's start and each worker's model load, as a user's run would. From the per-row time it
prints what 10,000 such pairs would take on N workers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from medfuse.cli import main


def phantom(shape: tuple[int, int, int], shift: float) -> np.ndarray:
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    outer = (i / 0.85) ** 2 + (j / 0.7) ** 2 + (k / 1.1) ** 2 < 1
    inner = ((i - shift) / 0.3) ** 2 + (j / 0.25) ** 2 + (k / 0.8) ** 2 < 1
    return np.where(inner, 1.0, np.where(outer, 0.4, 0.0)).astype(np.float32)


def make_manifest(folder: Path, rows: int, shape: tuple[int, int, int]) -> Path:
    affine = np.diag([0.9, 0.9, 2.0, 1.0])
    lines = ["a,b,out"]
    for index in range(rows):
        nib.save(nib.Nifti1Image(phantom(shape, 0.02 * index) * 800, affine), folder / f"mr{index}.nii")
        nib.save(nib.Nifti1Image(phantom(shape, -0.02 * index) * 3, affine), folder / f"pet{index}.nii")
        lines.append(f"mr{index}.nii,pet{index}.nii,OUT/f{index}.nii.gz")
    (folder / "template.csv").write_text("\n".join(lines) + "\n")
    return folder / "template.csv"


def timed_run(folder: Path, template: Path, name: str, extra: list[str], rule: str) -> float:
    manifest = folder / f"{name}.csv"
    manifest.write_text(template.read_text().replace("OUT/", f"out-{name}/"))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["batch", str(manifest), "--rule", rule, *extra])
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"batch run {name} failed with status {code}")
    return seconds


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--shape", default="128,128,32")
    parser.add_argument("--rule", default="sfnn-map")
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split(","))
    folder = Path(tempfile.mkdtemp(prefix="medfuse-batch-speed-"))
    try:
        template = make_manifest(folder, args.rows, shape)
        print(
            f"{args.rows} rows of {'x'.join(map(str, shape))} NIfTI pairs, rule {args.rule}, shipped weights, "
            f"{os.cpu_count()} CPU cores, load average before {os.getloadavg()[0]:.2f}"
        )
        results = {}
        for name, extra in (("serial", []), ("1-worker", ["--workers", "1"]), ("2-workers", ["--workers", "2"])):
            seconds = timed_run(folder, template, name, extra, args.rule)
            results[name] = seconds
            print(f"{name:<10} {seconds:7.1f} s   {60 * args.rows / seconds:6.1f} rows/min")
        per_row = results["serial"] / args.rows
        print(
            f"one row takes {per_row:.2f} s in one process here; 10,000 such rows would take "
            f"{10_000 * per_row / 3600:.1f} h on one such worker, {10_000 * per_row / 3600 / 8:.1f} h on 8, "
            f"{10_000 * per_row / 3600 / 32:.2f} h on 32 (if the file system keeps up)"
        )
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main_benchmark()
