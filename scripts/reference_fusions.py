"""Write the fused images of the bundled sample pairs for every rule, as the tests pin them.

    python scripts/reference_fusions.py -o tests/data/reference_fusions.npz [--keep]

The committed file was written at commit ec680d1 (nuclear norms by ``torch.linalg.svdvals``,
float32, on the CPU) with the shipped weights, for the rules of that time; ``sfnn-map-e4``,
``sfnn-pyramid``, ``pyramid-energy`` and ``trained-pyramid`` (with ``dran-fusion-havard``, whose
encoder and decoder are ``dran-havard``'s), registered later, were added with ``--keep`` (the stored images kept, only
rules they lack fused). ``tests/test_reference_fusions.py`` checks that every rule still gives those images
within one grey level (1/255).
Keys are ``PAIR/RULE`` (PAIR e.g. ``CT-MRI-41010``), values the uint8 fused images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import medfuse
from medfuse.io.images import load_image

SAMPLES = Path(medfuse.__file__).parent / "samples"


def sample_pairs() -> dict[str, tuple[Path, Path]]:
    """Every bundled pair by name ``SET-STEM``: (MRI file, other modality's file)."""
    pairs = {}
    for mri in sorted(SAMPLES.glob("*-MRI/MRI/*.png")):
        modality = mri.parents[1].name.split("-")[0]
        pairs[f"{mri.parents[1].name}-{mri.stem}"] = (mri, mri.parents[1] / modality / mri.name)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--keep", action="store_true", help="keep the images OUT holds; fuse only the rules it lacks")
    args = parser.parse_args()
    model = medfuse.load_model()
    fused = {}
    if args.keep and args.out.exists():
        with np.load(args.out) as stored:
            fused = dict(stored)
    for pair, (path_a, path_b) in sample_pairs().items():
        image_a, image_b = load_image(path_a), load_image(path_b)
        for rule in medfuse.list_rules():
            if f"{pair}/{rule}" in fused:
                continue
            fused[f"{pair}/{rule}"] = medfuse.fuse(image_a, image_b, rule=rule, model=model)
            print(pair, rule)
    np.savez_compressed(args.out, **fused)


if __name__ == "__main__":
    main()
