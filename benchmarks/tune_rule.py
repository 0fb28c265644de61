"""Choose a fusion rule on train pairs: every shipped method plus candidate rules, mean ranks.

    OMP_NUM_THREADS=1 python benchmarks/tune_rule.py --set CT-MRI --pairs 40 [--seed 0]

Draws ``--pairs`` pairs at random (seeded) from ``DATA/SET/train`` (never a test split),
fuses them with every method of ``medfuse.methods`` (the pool) and with every candidate
below, scores the seven ranked metrics of BENCHMARKS.md, and prints, for the pool and for
each candidate added to the pool on its own, the mean of each metric and the mean rank.
Scores are kept in ``OUT/SET/scores.json`` (keyed by the method's code), so a rerun only
fuses what is new. The network encodes each image once; every DRAN rule and candidate
works from those features, as ``medfuse.fuse`` does.

Candidates: ``pixel-pP-rR``, sfnn-spatial's weights (activity power P, window radius R)
applied to the source images instead of the features; ``guided-pP-rR-eE``, those weights
refined by a guided filter (radius R, epsilon E) with each source as the guide, as GFF
refines its maps; ``half-pixel-sfnn-spatial``, the mean of sfnn-spatial's decoded image and
``pixel-p2-r1``. The outputs of ``--pairs 40 / 30 / 30`` for CT-MRI / PET-MRI / SPECT-MRI,
seed 0, are in ``benchmarks/results/tune_rule_train_SET.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medfuse.baselines import BASELINES, guided_filter
from medfuse.benchmark import RANKED_METRICS, find_pairs, mean_ranks
from medfuse.composition import fuse_luminance
from medfuse.io import load_image
from medfuse.metrics import score
from medfuse.models import load_model
from medfuse.rules import RULES, sfnn_spatial_weights

Features = tuple[torch.Tensor, torch.Tensor]
Candidate = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, Features], torch.Tensor]
"""(model, grey A, grey B as (1, 1, H, W) tensors, their features) -> fused grey tensor."""
CANDIDATES: dict[str, Candidate] = {}
CHOSEN = {"sfnn-map"}
"""Rules this harness chose (``sfnn-map`` is the candidate ``pixel-p2-r1``): left out of the
pool, so that a rerun prints the tables by which they were chosen."""


def candidate(name: str) -> Callable[[Candidate], Candidate]:
    def add(function: Candidate) -> Candidate:
        CANDIDATES[name] = function
        return function
    return add


def pixel_candidate(power: int, radius: int) -> Candidate:
    """The weights applied to the sources instead of the features."""
    def fuse(model, a, b, features):
        w_a = sfnn_spatial_weights(*features, power=power, radius=radius)
        return w_a * a + (1 - w_a) * b
    fuse.__doc__ = f"pixel-domain sfnn-spatial weights, activity power {power}, radius {radius}"
    return fuse


for _power, _radius in [(2, 1), (1, 1), (3, 1), (4, 1), (2, 0), (2, 2), (3, 2)]:
    CANDIDATES[f"pixel-p{_power}-r{_radius}"] = pixel_candidate(_power, _radius)


def guided_candidate(power: int, radius: int, epsilon: float) -> Candidate:
    """The weights refined by a guided filter with each source as the guide (as GFF does)."""
    def fuse(model, a, b, features):
        w_a = sfnn_spatial_weights(*features, power=power)[0, 0].double().numpy()
        grey_a, grey_b = a[0, 0].double().numpy(), b[0, 0].double().numpy()
        refined_a = np.clip(guided_filter(grey_a, w_a, radius, epsilon), 0, None)
        refined_b = np.clip(guided_filter(grey_b, 1 - w_a, radius, epsilon), 0, None)
        total = refined_a + refined_b
        w = np.where(total > 0, refined_a / np.where(total > 0, total, 1), 0.5)
        return torch.from_numpy(w * grey_a + (1 - w) * grey_b)[None, None]
    fuse.__doc__ = f"guided-filter-refined weights, power {power}, radius {radius}, epsilon {epsilon}"
    return fuse


for _power, _radius, _epsilon in [(2, 2, 1e-3), (2, 4, 1e-2), (3, 4, 1e-2), (4, 4, 1e-2), (2, 8, 1e-2)]:
    CANDIDATES[f"guided-p{_power}-r{_radius}-e{_epsilon:g}"] = guided_candidate(_power, _radius, _epsilon)


@candidate("half-pixel-sfnn-spatial")
def half_pixel_sfnn_spatial(model, a, b, features):
    """Mean of sfnn-spatial's decoded image and its weights applied to the sources."""
    w_a = sfnn_spatial_weights(*features)
    decoded = model.decode(w_a * features[0] + (1 - w_a) * features[1])
    return (decoded + w_a * a + (1 - w_a) * b) / 2


def fused_grey(model: torch.nn.Module, name: str, a: torch.Tensor, b: torch.Tensor, features: Features) -> torch.Tensor:
    if name in CANDIDATES:
        return CANDIDATES[name](model, a, b, features)
    return model.decode(RULES[name.removeprefix("dran-")](*features))


def method_code(name: str) -> str:
    function = CANDIDATES.get(name) or RULES.get(name.removeprefix("dran-")) or BASELINES[name]
    code = inspect.getsource(function) + (function.__doc__ or "")
    return hashlib.sha256(code.encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard")
    parser.add_argument("--set", required=True, help="CT-MRI, PET-MRI or SPECT-MRI")
    parser.add_argument("--pairs", type=int, default=40, help="train pairs drawn (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES), help="default: all")
    parser.add_argument("-o", "--out", default="out/tune")
    args = parser.parse_args()

    dataset = find_pairs(Path(args.data) / args.set / "train")
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(len(dataset.pairs), size=min(args.pairs, len(dataset.pairs)), replace=False))
    pairs = [dataset.pairs[i] for i in chosen]
    pool = ["dran-" + rule for rule in sorted(RULES) if rule not in CHOSEN] + sorted(BASELINES)
    methods = pool + list(args.candidates)

    store = Path(args.out) / args.set / "scores.json"
    store.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(store.read_text()) if store.exists() else {}
    scores = {m: saved.get(f"{m} {method_code(m)}", {}) for m in methods}
    model = load_model()
    for pair, path_a, path_b in tqdm(pairs, desc=args.set):
        todo = [m for m in methods if pair not in scores[m]]
        if not todo:
            continue
        image_a, image_b = load_image(path_a), load_image(path_b)
        cache: dict[str, Features] = {}

        def grey_fusion(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
            if name in BASELINES:
                return BASELINES[name]

            @torch.no_grad()
            def fuse_grey(grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
                a = torch.from_numpy(grey_a).float()[None, None]
                b = torch.from_numpy(grey_b).float()[None, None]
                if "features" not in cache:
                    cache["features"] = (model.encode(a), model.encode(b))
                return fused_grey(model, name, a, b, cache["features"])[0, 0].double().numpy()
            return fuse_grey

        for name in todo:
            fused = fuse_luminance(image_a, image_b, grey_fusion(name))
            scores[name][pair] = {m: score(m, fused, image_a, image_b) for m in RANKED_METRICS}
        store.write_text(json.dumps({f"{m} {method_code(m)}": scores[m] for m in methods}))

    names = [p for p, _, _ in pairs]
    means = {m: {k: float(np.mean([scores[m][p][k] for p in names])) for k in RANKED_METRICS} for m in methods}
    header = f"{'method':<28}" + "".join(f"{k:>8}" for k in RANKED_METRICS) + f"{'rank':>7}"
    print(f"{args.set} train, {len(names)} pairs (seed {args.seed}); rank = mean rank in the pool plus that method")
    print(header)
    pool_ranks = mean_ranks({m: means[m] for m in pool}, RANKED_METRICS)
    rows = [(m, pool_ranks[m], "") for m in pool]
    for c in args.candidates:
        ranks = mean_ranks({m: means[m] for m in pool + [c]}, RANKED_METRICS)
        rival = min(pool, key=ranks.get)
        rows.append((c, ranks[c], f"  best other: {rival} {ranks[rival]:.2f}"))
    for name, rank, rival in sorted(rows, key=lambda row: row[1]):
        marker = "*" if name in args.candidates else " "
        print(f"{marker}{name:<27}" + "".join(f"{means[name][k]:8.4f}" for k in RANKED_METRICS) + f"{rank:7.2f}{rival}")


if __name__ == "__main__":
    main()
