"""Fuse a paired folder with the DRAN authors' released model, for ``medfuse benchmark --external``.

    python benchmarks/authors_fusion.py ../shared/data/havard/SPECT-MRI/test -o out/authors/SPECT-MRI
    python benchmarks/authors_fusion.py ../shared/data/havard/SPECT-MRI/train -o out/authors/SPECT-MRI-train --pairs 24
    medfuse benchmark ../shared/data/havard/SPECT-MRI/test -o out/benchmark/SPECT-MRI \\
        --external authors-dran-sfnn=out/authors/SPECT-MRI

The authors' code and checkpoint are loaded from ``../shared/anchors/dilran`` (Apache-2.0; not
part of medfuse, never copied into it) and run as their ``inference.py`` runs it: the encoder
on each image without ``model.eval()`` (so BatchNorm uses the batch's statistics), their SFNN
rule, the decoder, the result clamped to [0, 1]. Colour sources go through YCbCr as for every
method in medfuse (``medfuse.image.composition.fuse_luminance``): the authors' network fuses the Y
channel with the MRI, the colour source's Cb and Cr are kept. Pairs are found as ``medfuse
benchmark`` finds them (MRI first); the fused images are written as NAME.png (16-bit colour as
.tif) into the output folder.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medfuse.evaluation.benchmark import find_pairs
from medfuse.image.composition import fuse_luminance
from medfuse.io.images import ImageFileError, check_writable, load_image, save_image

AUTHORS_CODE = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "dilran"


def authors_grey_fusion():
    """The authors' model as a function of two grey float arrays in [0, 1]."""
    sys.path.insert(0, str(AUTHORS_CODE))
    from model_v5 import fullModel
    from our_utils import fusion_strategy

    model = fullModel()
    model.load_state_dict(torch.load(AUTHORS_CODE / "pretrained" / "last.pt", map_location="cpu"))

    def fuse(grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
        a = torch.from_numpy(np.float32(grey_a))[None, None]
        b = torch.from_numpy(np.float32(grey_b))[None, None]
        with torch.no_grad():
            fused = model.recon(fusion_strategy(model.fe(a), model.fe(b), "cpu", "SFNN")).clamp(0, 1)
        return fused[0, 0].double().numpy()

    return fuse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="paired folder: two modality subfolders, files paired by name")
    parser.add_argument("-o", "--out", type=Path, required=True, help="folder for the fused images")
    parser.add_argument(
        "--pairs",
        type=int,
        help="of a train split (DATA ending in /train), only the pairs benchmarks/tune_rule.py draws",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of that draw (default 0)")
    args = parser.parse_args()
    if not (AUTHORS_CODE / "model_v5.py").is_file():
        raise SystemExit(f"the authors' code is not at {AUTHORS_CODE}: this script needs ../shared/anchors/dilran")
    try:
        dataset = find_pairs(args.data)
    except ImageFileError as error:
        raise SystemExit(str(error)) from None
    if args.pairs is not None:
        if args.data.name != "train":
            raise SystemExit("--pairs draws from a train split: DATA must end in /train")
        from tune_rule import draw_train_pairs

        dataset.pairs = draw_train_pairs(args.data.parent, args.pairs, args.seed)[1]
    warnings.simplefilter("ignore")  # their softmax call without dim
    fuse_grey = authors_grey_fusion()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, path_a, path_b in tqdm(dataset.pairs, desc="authors' DRAN", unit="pair"):
        fused = fuse_luminance(load_image(path_a), load_image(path_b), fuse_grey)
        target = args.out / f"{name}.png"
        try:
            check_writable(target, fused)
        except ImageFileError:
            target = target.with_suffix(".tif")
        save_image(target, fused)
    print(f"{len(dataset.pairs)} fused pairs ({dataset.modality_a} + {dataset.modality_b}) written to {args.out}")


if __name__ == "__main__":
    main()
