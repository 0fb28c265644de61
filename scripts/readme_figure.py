"""The README picture: bundled sample pairs, their fusion by the default rule and by another.

python scripts/readme_figure.py -o docs/fusion-example.png [--rule pyramid-energy] [--compare trained-pyramid]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import medfuse  # noqa: E402
from medfuse.dran import DEFAULT_RULE  # noqa: E402
from medfuse.io.images import load_image  # noqa: E402

SAMPLES = Path(medfuse.__file__).parent / "samples"
PAIRS = (("CT-MRI", "CT", "41010"), ("PET-MRI", "PET", "25015"), ("SPECT-MRI", "SPECT", "10018"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--rule", default=DEFAULT_RULE)
    parser.add_argument("--compare", default="trained-pyramid", help="a second rule, shown in the last column")
    args = parser.parse_args()
    model = medfuse.load_model()
    figure, axes = plt.subplots(len(PAIRS), 4, figsize=(12, 3 * len(PAIRS)))
    for row, (folder, modality, name) in zip(axes, PAIRS):
        mri = load_image(SAMPLES / folder / "MRI" / f"{name}.png")
        other = load_image(SAMPLES / folder / modality / f"{name}.png")
        fused = [medfuse.fuse(mri, other, rule=rule, model=model) for rule in (args.rule, args.compare)]
        titles = (f"MRI {name}", f"{modality} {name}", f"fused, {args.rule}", f"fused, {args.compare}")
        for axis, image, title in zip(row, (mri, other, *fused), titles):
            axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            axis.set_title(title)
            axis.axis("off")
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=80)
    print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()
