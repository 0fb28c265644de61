"""Nuclear norms of DRAN's channel-softmax maps: time and error of each method, on each device.

    python benchmarks/nuclear_norms.py [--data ../shared/data/havard] [--per-set 4] [--repeats 3]

The maps are the 64 softmax channels of the shipped encoder on real images: the bundled
samples, plus ``--per-set`` train images of each Havard set (seeded choice) when ``--data`` is
given. For every method and device: the median time for one image's 64 maps and the largest
relative error against float64 ``torch.linalg.svdvals`` over all maps. The devices are the CPU
and CUDA when torch has it. ``svdvals`` in float32 is how medfuse computed them before.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import medfuse
from medfuse.dran.nuclear import nuclear_norms_by_eigenvalues, nuclear_norms_by_polar_iteration
from medfuse.image.composition import grey_pair
from medfuse.io.images import load_image

SAMPLES = Path(medfuse.__file__).parent / "samples"
METHODS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "svdvals float32 (before)": lambda maps: torch.linalg.svdvals(maps).sum(dim=-1),
    "Gram + eigenvalues, float64": nuclear_norms_by_eigenvalues,
    "polar iteration, float32": nuclear_norms_by_polar_iteration,
}


def image_files(data: Path | None, per_set: int) -> list[Path]:
    files = sorted(SAMPLES.glob("*/*/*.png"))
    if data is not None:
        chooser = random.Random(0)
        for folder in sorted(data.glob("*/train/*")):
            files += chooser.sample(sorted(folder.glob("*.png")), per_set)
    return files


def softmax_maps(files: list[Path]) -> list[torch.Tensor]:
    model = medfuse.load_model()
    maps = []
    with torch.no_grad():
        for path in files:
            image = load_image(path)
            grey, _ = grey_pair(image, image)
            features = model.encode(torch.from_numpy(grey).float()[None, None])
            maps.append(torch.softmax(features, dim=1)[0].contiguous())
    return maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the Havard data folder (SET/train/MODALITY/*.png)")
    parser.add_argument("--per-set", type=int, default=4, help="train images per set and modality (default 4)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = image_files(args.data, args.per_set)
    maps = softmax_maps(files)
    references = [torch.linalg.svdvals(m.double()).sum(dim=-1) for m in maps]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"{len(maps)} images x 64 softmax maps of {tuple(maps[0].shape[1:])}; {torch.get_num_threads()} CPU threads; "
        f"median time per image of {args.repeats} passes over all images"
    )
    print(f"{'device':<8} {'method':<30} {'ms per image':>13} {'largest relative error':>24}")
    for device in devices:
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        on_device = [m.to(device) for m in maps]
        for method_name, method in METHODS.items():
            errors, times = [], []
            for _ in range(args.repeats):
                for matrices, reference in zip(on_device, references):
                    if device == "cuda":
                        torch.cuda.synchronize()
                    started = time.perf_counter()
                    norms = method(matrices)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - started)
                    errors.append(((norms.double().cpu() - reference).abs() / reference).max().item())
            print(f"{name:<8} {method_name:<30} {statistics.median(times) * 1000:13.1f} {np.max(errors):24.2e}")


if __name__ == "__main__":
    main()
