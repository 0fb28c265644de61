"""Does a fusion keep what each source shows? Synthetic lesions planted in one source at a time.

    OMP_NUM_THREADS=1 python benchmarks/lesion_retention.py --set CT-MRI --split test
    OMP_NUM_THREADS=1 python benchmarks/lesion_retention.py --set SPECT-MRI --split train --pairs 24 \\
        --candidates evidence-p4 --methods dran-sfnn-map laplacian

For every pair of ``DATA/SET/SPLIT`` (or ``--pairs`` of them, drawn as ``benchmarks/tune_rule.py``
draws train pairs), on the Y channel in [0, 1] (colour sources on their Y, as every method fuses
them): four lesions, one at a time, each a Gaussian blob ``g`` (standard deviation ``r`` drawn
from 3 to 9 px, amplitude from 0.2 to 0.35 of full scale) added to one source, bright and dark,
in each source in turn, centred on a random pixel of that source's tissue (above 0.1, at least
``r`` px inside it) where the lesion's peak stays within [0, 1], and clipped to [0, 1]. Every
method fuses the pair without and with the lesion; the lesion's retention is ``<g, F' - F> / <g, S' - S>``
(:func:`medfuse.evaluation.metrics.fidelity.lesion_retention`). The draw depends only on ``--seed`` and the
pair, so every method sees the same lesions.

Printed per method: the mean retention of the lesions of each source (and its 10th
percentile), the smaller of the two means, and each source's share of the clean fusion on the
foreground (either source above 0.05; :func:`medfuse.evaluation.metrics.fidelity.source_shares`). Methods:
every DRAN rule, every baseline, the DRAN authors' released model (``authors-dran-sfnn``, through
``benchmarks/authors_fusion.py``) when ``../shared/anchors/dilran`` is there, and any
``--candidates`` of ``benchmarks/tune_rule.py``. Per-lesion records go to ``OUT/SET-SPLIT.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm
from tune_rule import CANDIDATES, draw_train_pairs, fused_grey

import medfuse.dran.rules
from medfuse.dran.models import load_model
from medfuse.dran.rules import list_rules
from medfuse.evaluation.benchmark import find_pairs
from medfuse.evaluation.metrics.fidelity import gaussian_blob, lesion_retention, source_shares
from medfuse.fusion.baselines import BASELINES
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image

RADII = (3.0, 9.0)
AMPLITUDES = (0.2, 0.35)
TISSUE = 0.1
FOREGROUND = 0.05
AUTHORS = "authors-dran-sfnn"
GreyFusion = Callable[[np.ndarray, np.ndarray], np.ndarray]


def plant_lesions(source: np.ndarray, rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """A bright and a dark lesion in ``source``: ``(polarity, profile, source with the lesion)``."""
    lesions = []
    for polarity, sign in (("bright", 1.0), ("dark", -1.0)):
        radius = rng.uniform(*RADII)
        amplitude = rng.uniform(*AMPLITUDES)
        tissue = ndimage.binary_erosion(source > TISSUE, iterations=int(np.ceil(radius)))
        room = tissue & (source + sign * amplitude >= 0.0) & (source + sign * amplitude <= 1.0)
        tissue = room if room.any() else tissue if tissue.any() else source > TISSUE
        rows, columns = np.nonzero(tissue)
        pick = rng.integers(len(rows))
        profile = gaussian_blob(source.shape, (rows[pick], columns[pick]), radius)
        lesions.append((polarity, profile, np.clip(source + sign * amplitude * profile, 0.0, 1.0)))
    return lesions


class Encodings:
    """The network's features of each image array of one pair, and their nuclear norms,
    computed once for all rules (``clear`` between pairs)."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.cache, self.norms = model, {}, {}
        computed = medfuse.dran.rules.nuclear_norms

        def nuclear_norms_once(features: torch.Tensor) -> torch.Tensor:
            kept = self.norms.get(id(features))
            if kept is None or kept[0] is not features:
                kept = self.norms[id(features)] = (features, computed(features))
            return kept[1]

        medfuse.dran.rules.nuclear_norms = nuclear_norms_once  # the rules look it up when they run

    def clear(self) -> None:
        self.cache.clear()
        self.norms.clear()

    def tensor_and_features(self, grey: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        key = id(grey)
        if key not in self.cache:
            tensor = torch.from_numpy(grey).float()[None, None]
            with torch.no_grad():
                self.cache[key] = (grey, tensor, self.model.encode(tensor))
        return self.cache[key][1:]


def dran_fusion(encodings: Encodings, name: str) -> GreyFusion:
    """A DRAN rule (``dran-RULE``) or a tune_rule candidate as a grey fusion on cached features."""

    def fuse(grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
        (a, features_a), (b, features_b) = (encodings.tensor_and_features(g) for g in (grey_a, grey_b))
        with torch.no_grad():
            fused = fused_grey(encodings.model, name, a, b, (features_a, features_b))
        return fused[0, 0].double().clamp(0, 1).numpy()

    return fuse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard")
    parser.add_argument("--set", required=True, help="CT-MRI, PET-MRI or SPECT-MRI")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--pairs", type=int, help="pairs drawn (default: every pair of the split)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair draw and of the lesions")
    parser.add_argument("--methods", nargs="*", help="default: every DRAN rule, baseline and the authors' model")
    parser.add_argument("--candidates", nargs="*", default=[], help="tune_rule candidates to add")
    parser.add_argument("--weights", default="dran-havard")
    parser.add_argument("-o", "--out", default="out/lesions")
    args = parser.parse_args()

    folder = Path(args.data) / args.set
    if args.pairs is None:
        dataset = find_pairs(folder / args.split)
        pairs = dataset.pairs
    elif args.split == "train":
        dataset, pairs = draw_train_pairs(folder, args.pairs, args.seed)
    else:
        raise SystemExit("--pairs draws train pairs only; the test split runs whole")
    encodings = Encodings(load_model(args.weights))
    methods: dict[str, GreyFusion] = {}
    for name in (
        args.methods
        if args.methods is not None
        else ([f"dran-{rule}" for rule in list_rules()] + sorted(BASELINES) + [AUTHORS])
    ):
        if name in BASELINES:
            methods[name] = BASELINES[name]
        elif name == AUTHORS:
            from authors_fusion import AUTHORS_CODE, authors_grey_fusion

            if (AUTHORS_CODE / "model_v5.py").is_file():
                import warnings

                warnings.simplefilter("ignore")  # their softmax call without dim
                methods[name] = authors_grey_fusion()
            else:
                print(f"{AUTHORS} left out: its code is not at {AUTHORS_CODE}")
        elif name.removeprefix("dran-") in list_rules():
            methods[name] = dran_fusion(encodings, name)
        else:
            raise SystemExit(f"unknown method {name!r}")
    for name in args.candidates:
        if name not in CANDIDATES:
            raise SystemExit(f"unknown candidate {name!r}; tune_rule has: {', '.join(CANDIDATES)}")
        methods[name] = dran_fusion(encodings, name)

    records: list[dict] = []
    shares: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    started = time.perf_counter()
    for index, (pair, path_a, path_b) in enumerate(tqdm(pairs, desc=f"{args.set} {args.split}", unit="pair")):
        grey_a, grey_b = grey_unit(load_image(path_a)), grey_unit(load_image(path_b))
        encodings.clear()
        rng = np.random.default_rng([args.seed, index])
        lesions = [
            (source, *lesion) for source, grey in (("A", grey_a), ("B", grey_b)) for lesion in plant_lesions(grey, rng)
        ]
        foreground = (grey_a > FOREGROUND) | (grey_b > FOREGROUND)
        for name, fuse in methods.items():
            clean = fuse(grey_a, grey_b)
            shares[name].append(source_shares(clean, grey_a, grey_b, foreground))
            for source, polarity, profile, lesioned in lesions:
                if source == "A":
                    with_lesion, original = fuse(lesioned, grey_b), grey_a
                else:
                    with_lesion, original = fuse(grey_a, lesioned), grey_b
                records.append(
                    {
                        "pair": pair,
                        "method": name,
                        "source": source,
                        "polarity": polarity,
                        "retention": lesion_retention(clean, with_lesion, original, lesioned, profile),
                    }
                )
    seconds = time.perf_counter() - started

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.set}-{args.split}.json").write_text(json.dumps({"seed": args.seed, "records": records}))
    a, b = dataset.modality_a, dataset.modality_b
    print(
        f"{args.set} {args.split}, {len(pairs)} pairs x 4 lesions (seed {args.seed}), A = {a}, B = {b}, "
        f"{seconds:.0f} s; retention = lesion contrast in the fusion / in the source, mean (10th percentile)"
    )
    print(
        f"{'method':<24}{'lesions of ' + a:>22}{'lesions of ' + b:>22}{'smaller':>9}"
        f"{'share ' + a:>12}{'share ' + b:>12}"
    )
    rows = []
    for name in methods:
        kept = {
            s: np.array([r["retention"] for r in records if r["method"] == name and r["source"] == s])
            for s in ("A", "B")
        }
        share_a, share_b = np.mean(shares[name], axis=0)
        rows.append((min(kept["A"].mean(), kept["B"].mean()), name, kept, share_a, share_b))
    for smaller, name, kept, share_a, share_b in sorted(rows, key=lambda row: -row[0]):
        cells = "".join(f"{k.mean():>13.3f} ({np.percentile(k, 10):5.2f})" for k in kept.values())
        print(f"{name:<24}{cells}{smaller:>9.3f}{share_a:>12.3f}{share_b:>12.3f}")


if __name__ == "__main__":
    main()
