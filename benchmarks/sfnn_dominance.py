"""Why the released ``sfnn`` rule lets one modality dominate: its per-image weights.

    python benchmarks/sfnn_dominance.py --data ../shared/data/havard [--split train]

For every pair of a split, prints the distribution of sfnn's MRI weight
``w = m_MRI^2 / (m_MRI^2 + m_other^2)`` (``m`` = largest nuclear norm of the channel-softmax
maps), and what ``m`` follows, over all images of the set: the Pearson correlation of
``log m`` with the fraction of pixels above 10/255 (bright area) and with the mean gradient
magnitude (texture; Sobel, unit scale).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from medfuse.dran.models import load_model
from medfuse.dran.rules import nuclear_norms
from medfuse.image.scales import grey_unit
from medfuse.io.images import images_by_stem, load_image

SETS = {"CT-MRI": "CT", "PET-MRI": "PET", "SPECT-MRI": "SPECT"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=40, help="pairs per set (default 40)")
    args = parser.parse_args()
    model = load_model()
    print(
        f"{'set':<10}{'pairs':>6}{'mean w':>8}{'min w':>8}{'max w':>8}{'w<0.2':>7}{'w>0.8':>7}"
        f"{'corr(log m, area)':>19}{'corr(log m, gradient)':>23}"
    )
    for set_name, modality in SETS.items():
        folder = Path(args.data) / set_name / args.split
        mris, others = images_by_stem(folder / "MRI"), images_by_stem(folder / modality)
        names = sorted(mris.keys() & others.keys())[: args.limit]
        weights, logs, areas, gradients = [], [], [], []
        for name in names:
            maxima = []
            for path in (mris[name], others[name]):
                grey = grey_unit(load_image(path))
                with torch.no_grad():
                    features = model.encode(torch.from_numpy(grey).float()[None, None])
                maxima.append(float(nuclear_norms(features).amax()))
                logs.append(np.log(maxima[-1]))
                areas.append(float((grey > 10 / 255).mean()))
                gradients.append(float(np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1)).mean()))
            weights.append(maxima[0] ** 2 / (maxima[0] ** 2 + maxima[1] ** 2))
        weights = np.array(weights)
        print(
            f"{set_name:<10}{len(names):>6}{weights.mean():8.3f}{weights.min():8.3f}{weights.max():8.3f}"
            f"{(weights < 0.2).mean():7.2f}{(weights > 0.8).mean():7.2f}"
            f"{np.corrcoef(logs, areas)[0, 1]:19.3f}{np.corrcoef(logs, gradients)[0, 1]:23.3f}"
        )


if __name__ == "__main__":
    main()
