"""Time ``medfuse.fuse`` for every fusion rule on one 256 x 256 pair, side by side.

    python benchmarks/fusion_speed.py [--repeats 5] [--device cpu] [--threads N]

Prints the median wall time per fused pair and its ratio to the ``average`` rule (whose
cost is the network alone), so the cost of each rule's arithmetic shows directly.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import medfuse
from medfuse.io import load_image

SAMPLES = Path(medfuse.__file__).parent / "samples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = medfuse.load_model(device=args.device)
    mri = load_image(SAMPLES / "PET-MRI" / "MRI" / "25015.png")
    pet = load_image(SAMPLES / "PET-MRI" / "PET" / "25015.png")
    medfuse.fuse(mri, pet, model=model)  # warm-up
    times = {}
    for rule in medfuse.list_rules():
        samples = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            medfuse.fuse(mri, pet, rule=rule, model=model)
            samples.append(time.perf_counter() - started)
        times[rule] = statistics.median(samples)
    print(f"device {args.device}, {torch.get_num_threads()} threads, 256 x 256 MRI + PET, "
          f"median of {args.repeats}")
    for rule, seconds in times.items():
        print(f"{rule:<14} {seconds * 1000:8.1f} ms   x{seconds / times['average']:.2f} of average")


if __name__ == "__main__":
    main()
