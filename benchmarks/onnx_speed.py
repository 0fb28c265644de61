"""onnxruntime against PyTorch on the CPU: ms per 256 x 256 pair, the exported graph against
``medfuse.fuse`` with the same rule, with 1 and 2 threads, in one run.

    python benchmarks/onnx_speed.py [--rule sfnn-pyramid] [--repeats 5]

The rule (default ``sfnn-pyramid``) and the shipped weights are exported once
(:func:`medfuse.integrations.onnx.export_onnx`, timed); then on the bundled CT-MRI pair 41010,
for each thread count (torch's and BLAS's, as ``--threads`` sets them, and onnxruntime's), three
ways take turns within each repeat (a busier moment of the machine hits them alike), after one
warm-up each, and the median of the repeats is reported:

- ``torch``: ``medfuse.fuse``, as the library runs on the CPU (nuclear norms from the Gram
  matrices' eigenvalues in float64);
- ``torch, polar``: the same within ``polar_iteration_everywhere``, the graph that is exported
  (nuclear norms by the polar iteration in float32), still run by PyTorch;
- ``onnxruntime``: the exported file, :class:`medfuse.integrations.onnx.OnnxFusion`.

The second separates what the runtime changes from what the nuclear-norm method changes. The
largest difference of the ONNX fusion from ``medfuse.fuse``, in grey levels, is printed too.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import medfuse
from medfuse._shared.threads import limit_threads
from medfuse.dran.nuclear import polar_iteration_everywhere
from medfuse.integrations.onnx import OnnxFusion, export_onnx
from medfuse.io.images import load_image

SAMPLES = Path(medfuse.__file__).parent / "samples"


def torch_polar(image_a: np.ndarray, image_b: np.ndarray, rule: str, model: torch.nn.Module) -> np.ndarray:
    with polar_iteration_everywhere():
        return medfuse.fuse(image_a, image_b, rule, model=model)


def medians(methods: dict[str, Callable[[], np.ndarray]], repeats: int) -> dict[str, float]:
    """Seconds per call of each method, median of ``repeats`` rounds in which they take turns."""
    for method in methods.values():
        method()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rule", default="sfnn-pyramid")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    image_a = load_image(SAMPLES / "CT-MRI" / "MRI" / "41010.png")
    image_b = load_image(SAMPLES / "CT-MRI" / "CT" / "41010.png")
    model = medfuse.load_model()
    print(
        f"## CPU: {os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, rule {args.rule}, 256 x 256 CT-MRI pair 41010, median of {args.repeats}, "
        f"load average before {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_onnx(Path(folder) / "fusion.onnx", rule=args.rule)
        print(f"export: {time.perf_counter() - start:.1f} s, file {path.stat().st_size / 2**20:.2f} MiB")
        print("threads  torch ms  torch, polar ms  onnxruntime ms  onnxruntime / torch  grey levels apart")
        for threads in (1, 2):
            limit_threads(threads)  # torch and numpy's BLAS, as --threads does; onnxruntime's below
            fusion = OnnxFusion(path, threads=threads)
            seconds = medians(
                {
                    "torch": lambda: medfuse.fuse(image_a, image_b, args.rule, model=model),
                    "torch, polar": lambda: torch_polar(image_a, image_b, args.rule, model),
                    "onnxruntime": lambda fusion=fusion: fusion.fuse(image_a, image_b),
                },
                args.repeats,
            )
            apart = np.abs(
                fusion.fuse(image_a, image_b).astype(np.int16)
                - medfuse.fuse(image_a, image_b, args.rule, model=model).astype(np.int16)
            ).max()
            print(
                f"{threads:>7}  {seconds['torch'] * 1000:>8.0f}  {seconds['torch, polar'] * 1000:>15.0f}  "
                f"{seconds['onnxruntime'] * 1000:>14.0f}  {seconds['onnxruntime'] / seconds['torch']:>19.2f}  "
                f"{apart:>17}"
            )


if __name__ == "__main__":
    main()
