"""Reconstruction PSNR of a trained DRAN autoencoder on every single test image.

    python benchmarks/reconstruction.py --data ../shared/data/havard [--weights dran-havard]

For each of CT-MRI, PET-MRI and SPECT-MRI it reads every image of the *test* split (both
modalities; colour images reduced to their Y channel, as in training), runs
``decode(encode(x))`` and prints the PSNR (data range 1, output clipped to [0, 1]) per
set and modality, and the mean over all images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medfuse.dran import DEFAULT_MODEL
from medfuse.dran.models import load_model
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image
from medfuse.training.loop import psnr

SETS = ("CT-MRI", "PET-MRI", "SPECT-MRI")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard", help="folder holding the three sets")
    parser.add_argument("--weights", default=DEFAULT_MODEL, help="shipped model name or safetensors path")
    args = parser.parse_args()
    model = load_model(args.weights)
    results: dict[str, list[float]] = {}
    paths = sorted(p for name in SETS for p in (Path(args.data) / name / "test").glob("*/*.png"))
    if not paths:
        parser.error(f"no test images under {args.data}")
    started = time.perf_counter()
    with torch.no_grad():
        for path in tqdm(paths, desc="reconstructing", unit="image"):
            image = torch.from_numpy(grey_unit(load_image(path))).float()[None, None]
            results.setdefault(f"{path.parts[-4]} {path.parts[-2]}", []).append(psnr(model(image), image))
    elapsed = time.perf_counter() - started
    for key, values in results.items():
        print(f"{key:<18} {len(values):4d} images  PSNR {np.mean(values):6.2f} dB (min {np.min(values):.2f})")
    everything = [v for values in results.values() for v in values]
    print(
        f"{'all':<18} {len(everything):4d} images  PSNR {np.mean(everything):6.2f} dB "
        f"(min {np.min(everything):.2f}); {elapsed / len(everything) * 1000:.0f} ms per image"
    )


if __name__ == "__main__":
    main()
