"""Peak memory of fusing one batch of image pairs, against the estimate medfuse plans with.

    python benchmarks/fusion_memory.py [--sizes 256,512,1024] [--rules sfnn-map,sfnn,average]

Each case runs in a fresh process: the shipped model fuses one batch of random pairs with
``fuse_tensors``; on the CPU the peak is the growth of the process's maximum resident size
over a warmed-up start, on CUDA ``torch.cuda.max_memory_allocated``. Printed per case: the peak,
the peak per pixel of the batch, and ``medfuse.fusion.memory.BYTES_PER_PIXEL``, which
``check_memory`` and ``default_batch_size`` assume.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

import medfuse
from medfuse.fusion.engine import fuse_tensors
from medfuse.fusion.memory import BYTES_PER_PIXEL


def measure(side: int, count: int, rule: str, device: str) -> int:
    """Peak bytes of one fusion of ``count`` pairs of ``side`` x ``side`` on ``device``."""
    model = medfuse.load_model(device=device)
    small = torch.rand(1, 1, 16, 16, device=device)
    fuse_tensors(model, small, small, medfuse.get_rule(rule))
    pairs = torch.rand(2, count, 1, side, side, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    else:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fuse_tensors(model, pairs[0], pairs[1], medfuse.get_rule(rule))
    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--rules", default=f"{medfuse.DEFAULT_RULE},sfnn,average")
    parser.add_argument("--batch", type=int, default=4, help="also a batch of this many 256 x 256 pairs (default 4)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(**json.loads(args.case))))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cases = [(int(side), 1) for side in args.sizes.split(",")] + [(256, args.batch)]
    print(
        f"{'device':<6} {'rule':<10} {'pairs':>5} {'side':>5} {'peak MB':>9} {'bytes/pixel':>12} "
        f"(medfuse assumes {BYTES_PER_PIXEL})"
    )
    for device in devices:
        for rule in args.rules.split(","):
            for side, count in cases:
                case = json.dumps({"side": side, "count": count, "rule": rule, "device": device})
                result = subprocess.run(
                    [sys.executable, __file__, "--case", case], capture_output=True, text=True, check=True
                )
                peak = int(result.stdout.strip().splitlines()[-1])
                print(
                    f"{device:<6} {rule:<10} {count:5d} {side:5d} {peak / 2**20:9.0f} "
                    f"{peak / (count * side * side):12.0f}"
                )


if __name__ == "__main__":
    main()
