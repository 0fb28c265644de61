"""How much of each source a fusion keeps: weight maps, linear fits and fixed blends, on train pairs.

    OMP_NUM_THREADS=1 python benchmarks/source_shares.py --set SPECT-MRI --pairs 20 \\
        --external authors-dran-sfnn=out/authors/SPECT-MRI-train

Draws ``--pairs`` train pairs as ``benchmarks/tune_rule.py`` does (same seed, same pairs) and
prints, on the Y channel in [0, 1]:

- for every source-weighting rule (``sfnn-map``, ``sfnn-map-e4``): the mean weight of the first
  source (the MRI) over the foreground (pixels where either source is above 0.05) and the
  fraction of the foreground where that weight is above 1/2;
- for every ``--external`` method: the least-squares fit ``F = a A + b B + c`` of its fused
  image to the two sources (per pair, then averaged) and the residual's standard deviation; a
  residual near 0 means the method is, in effect, one fixed blend of the sources;
- the seven ranked metrics of fixed blends ``w A + (1 - w) B`` for ``--blends``: what the
  metrics give for leaning towards one source without any fusion rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tune_rule import draw_train_pairs, external_methods

from medfuse.dran.models import load_model
from medfuse.dran.rules import RULES, SourceWeighting
from medfuse.evaluation.benchmark import RANKED_METRICS
from medfuse.evaluation.metrics import score
from medfuse.image.composition import fuse_luminance
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image

FOREGROUND = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard")
    parser.add_argument("--set", required=True, help="CT-MRI, PET-MRI or SPECT-MRI")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--external", action="append", default=[], metavar="NAME=FOLDER")
    parser.add_argument(
        "--blends",
        type=float,
        nargs="*",
        default=[0.5, 0.7, 0.8, 0.9],
        help="weights of the first source in the fixed blends",
    )
    args = parser.parse_args()

    dataset, pairs = draw_train_pairs(Path(args.data) / args.set, args.pairs, args.seed)
    external = external_methods(args.external)
    weightings = {name: rule for name, rule in sorted(RULES.items()) if isinstance(rule, SourceWeighting)}
    model = load_model()

    shares = {name: [] for name in weightings}
    fits = {name: [] for name in external}
    blends = {w: [] for w in args.blends}
    for pair, path_a, path_b in pairs:
        image_a, image_b = load_image(path_a), load_image(path_b)
        a, b = grey_unit(image_a), grey_unit(image_b)
        grey_a, grey_b = (torch.from_numpy(x).float()[None, None] for x in (a, b))
        foreground = (a > FOREGROUND) | (b > FOREGROUND)
        with torch.no_grad():
            features = model.encode(grey_a), model.encode(grey_b)
            for name, rule in weightings.items():
                w_a = rule.weights(*features)[0, 0].double().numpy()[foreground]
                shares[name].append((w_a.mean(), (w_a > 0.5).mean()))
        sources = np.stack([a.ravel(), b.ravel(), np.ones(a.size)], axis=1)
        for name, files in external.items():
            fused = grey_unit(load_image(files[pair])).ravel()
            coefficients = np.linalg.lstsq(sources, fused, rcond=None)[0]
            fits[name].append((*coefficients, np.std(fused - sources @ coefficients)))
        for w in args.blends:
            fused = fuse_luminance(image_a, image_b, lambda x, y, w=w: w * x + (1 - w) * y)
            blends[w].append([score(m, fused, image_a, image_b) for m in RANKED_METRICS])

    print(
        f"{args.set} train, {len(pairs)} pairs (seed {args.seed}), Y channel in [0, 1], "
        f"A = {dataset.modality_a}, B = {dataset.modality_b}"
    )
    print(f"\nweight of A on the foreground (either source > {FOREGROUND})")
    for name, values in shares.items():
        mean, wins = np.mean(values, axis=0)
        print(f"  {name:<14} mean {mean:.3f}   A above 1/2 on {100 * wins:.1f} % of it")
    for name, values in fits.items():
        a_coefficient, b_coefficient, offset, residual = np.mean(values, axis=0)
        print(
            f"\n{name}: F = {a_coefficient:.3f} A + {b_coefficient:.3f} B + {offset:.3f}, "
            f"residual standard deviation {residual:.4f}"
        )
    print("\nfixed blends w A + (1 - w) B\n  w    " + "".join(f"{m:>8}" for m in RANKED_METRICS))
    for w, values in blends.items():
        print(f"  {w:<5}" + "".join(f"{v:8.4f}" for v in np.mean(values, axis=0)))


if __name__ == "__main__":
    main()
