"""Does torch's default thread count collapse when another process is busy? Fusion time of one
pair at several sizes with 1 and 2 torch threads, on an idle machine and beside one busy
process (a pure-Python loop on one core), measured side by side in one run (median of 5).

    python benchmarks/threads_under_load.py [--sides 32 128 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import medfuse

BUSY = "while True: pass"


def seconds(model, image_a, image_b, threads: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    medfuse.fuse(image_a, image_b, model=model)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        medfuse.fuse(image_a, image_b, model=model)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[32, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = medfuse.load_model()
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPU cores, torch default threads {torch.get_num_threads()}, rule {medfuse.DEFAULT_RULE}")
    print("| side | idle, 1 thread | idle, 2 threads | busy, 1 thread | busy, 2 threads |")
    print("|---:|---:|---:|---:|---:|")
    for side in args.sides:
        image_a, image_b = (rng.integers(0, 256, (side, side), dtype=np.uint8) for _ in range(2))
        row = {}
        for load in ("idle", "busy"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
            try:
                if busy:
                    time.sleep(1.0)
                for threads in (1, 2):
                    row[load, threads] = seconds(model, image_a, image_b, threads, args.repeats)
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
        print(
            f"| {side} | "
            + " | ".join(f"{row[key] * 1000:.0f} ms" for key in (("idle", 1), ("idle", 2), ("busy", 1), ("busy", 2)))
            + " |"
        )


if __name__ == "__main__":
    main()
