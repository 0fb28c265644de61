"""Fused slices per second of ``medfuse.fusion.volumes.fuse_volumes`` on a 256 x 256 x 64 volume pair.

    python benchmarks/volume_speed.py [--rules sfnn-map,sfnn,average] [--batch-size 8] [--repeats 1]
                                      [--devices cpu,cuda] [--threads N] [--slices 64]

Synthetic pair (an ellipsoid phantom and a shifted, inverted copy, in [0, 1]), the shipped
weights, every device asked for that torch can use (default: the CPU, and CUDA when
available). Each rule is warmed up on one batch, then the whole volume is fused ``--repeats``
times; the best time gives slices per second. Intensity mapping and file I/O are not timed
(they take milliseconds next to the network).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from medfuse.dran import DEFAULT_RULE
from medfuse.dran.models import load_model
from medfuse.fusion.memory import default_batch_size
from medfuse.fusion.volumes import fuse_volumes


def phantom_pair(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 volumes in [0, 1]: nested ellipsoids, and the same shifted and inverted inside."""
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in shape), indexing="ij")
    outer = (i / 0.85) ** 2 + (j / 0.7) ** 2 + (k / 1.1) ** 2 < 1
    inner = ((i - 0.2) / 0.3) ** 2 + (j / 0.25) ** 2 + (k / 0.8) ** 2 < 1
    a = np.where(inner, 1.0, np.where(outer, 0.45, 0.0)).astype(np.float32)
    b = np.where(np.roll(inner, 20, axis=0), 0.1, np.where(outer, 0.8, 0.0)).astype(np.float32)
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", default=f"{DEFAULT_RULE},sfnn,average")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="slices per network call (default: as medfuse fuse, "
        "1 on the CPU, on CUDA as many as fit in the free GPU memory)",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--devices", help="comma-separated torch devices (default cpu, and cuda if available)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    shape = (256, 256, args.slices)
    volume_a, volume_b = phantom_pair(shape)
    defaults = ", ".join(f"{device} {default_batch_size(device, *shape[:2])}" for device in devices)
    print(
        f"volume pair {shape[0]} x {shape[1]} x {shape[2]}, shipped weights, batch size "
        f"{args.batch_size or f'default ({defaults})'}, "
        f"best of {args.repeats}; {torch.get_num_threads()} CPU threads, {os.cpu_count()} CPU cores, "
        f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for device in devices:
        model = load_model(device=device)
        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
        batch_size = args.batch_size or default_batch_size(device, *shape[:2])
        for rule in args.rules.split(","):
            fuse_volumes(model, volume_a[:, :, :batch_size], volume_b[:, :, :batch_size], rule, batch_size)
            best = float("inf")
            for _ in range(args.repeats):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                started = time.perf_counter()
                fused = fuse_volumes(model, volume_a, volume_b, rule, batch_size)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - started)
            assert fused.shape == shape
            print(f"{name:<24} {rule:<12} {shape[2] / best:8.2f} slices/s   ({best:.2f} s per volume)")


if __name__ == "__main__":
    main()
