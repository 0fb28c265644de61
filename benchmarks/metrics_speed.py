"""Time every metric of medfuse.evaluation.metrics on one 256 x 256 triple.

    python benchmarks/metrics_speed.py [--repeats 3]

The triple is the bundled MRI/PET pair 25015 (PET on its Y channel) and their pixel
average as the fused image. Prints the median time per metric and the total; the target
is a total under 2 seconds on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import medfuse
from medfuse import metrics
from medfuse.image.colour import luminance
from medfuse.io.images import load_image

SAMPLES = Path(medfuse.__file__).parent / "samples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mri = load_image(SAMPLES / "PET-MRI" / "MRI" / "25015.png").astype(np.float64)
    pet = luminance(load_image(SAMPLES / "PET-MRI" / "PET" / "25015.png").astype(np.float64))
    fused = np.round((mri + pet) / 2)
    total = 0.0
    print(f"256 x 256 triple, median of {args.repeats}, {os.cpu_count()} CPU cores visible")
    for name in metrics.METRICS:
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            value = metrics.score(name, fused, mri, pet)
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        total += seconds
        print(f"{name:<6} {seconds * 1000:8.1f} ms   value {value:.6g}")
    verdict = "under" if total < 2.0 else "OVER"
    print(f"total  {total * 1000:8.1f} ms   ({verdict} the 2 s target)")


if __name__ == "__main__":
    main()
