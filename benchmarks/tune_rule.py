"""Choose a fusion rule on train pairs: a pool of methods plus candidate rules, mean ranks.

    OMP_NUM_THREADS=1 python benchmarks/tune_rule.py --set CT-MRI --pairs 20 --seed 0 \
        --external authors-dran-sfnn=out/authors/CT-MRI-train --candidates evidence-p3 evidence-p4

Draws ``--pairs`` pairs at random (seeded) from ``DATA/SET/train`` (never a test split),
fuses them with every method of the pool and with every candidate below, scores the seven
ranked metrics of BENCHMARKS.md, and prints, for the pool and for each candidate added to the
pool on its own, the mean of each metric and the mean rank. The pool: every baseline, every
DRAN rule but those chosen in ``--round`` or later (``CHOSEN``), and each ``--external``
method (fused images of the whole train split made elsewhere, e.g. the authors' model by
``benchmarks/authors_fusion.py ../shared/data/havard/SET/train -o out/authors/SET-train``).
Scores are kept in ``OUT/SET/scores.json``, keyed by the method's code, the rules module,
its weights file's digest and the metrics' code, so a rerun only fuses and scores what is
new (external methods are always scored again). The network encodes each image once; every DRAN rule and candidate
works from those features, as ``medfuse.fuse`` does; ``--candidate-weights`` gives the
candidates another model than the pool's.

Candidates: ``pixel-pP-rR``, sfnn-spatial's weights (activity power P, window radius R)
applied to the source images instead of the features; ``guided-pP-rR-eE``, those weights
refined by a guided filter (radius R, epsilon E) with each source as the guide, as GFF
refines its maps; ``half-pixel-sfnn-spatial``, the mean of sfnn-spatial's decoded image and
``pixel-p2-r1``; ``evidence-pQ``, sfnn-map with the per-image evidence at power Q;
``contrast-rR``, sfnn-map with the activity of the features' local contrast; ``two-scale-rR``,
sfnn-map on box-filtered bases plus the locally larger detail.

Round 2 (``--round 2 --pairs 40 / 30 / 30`` for CT-MRI / PET-MRI / SPECT-MRI, seed 0, every
round-2 candidate: ``pixel-*``, ``guided-*``, ``half-pixel-sfnn-spatial``; the outputs, made
before FMI's flat-window convention, are ``benchmarks/results/tune_rule_train_SET.txt``) chose
``sfnn-map``. Round 3 (``--pairs 20``, seeds 0 and 1, the authors' model as ``--external``;
``benchmarks/results/tune_rule3_train_SET_seedS.txt``) chose ``sfnn-map-e4``.
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
import torch.nn.functional as F
from tqdm import tqdm

import medfuse.dran.rules
import medfuse.evaluation.metrics
from medfuse._shared.files import file_digest
from medfuse.dran.fusion_head import PyramidWeightHead
from medfuse.dran.models import load_model, weights_path
from medfuse.dran.pyramid import binomial_blur, collapse_pyramid, gaussian_pyramid, laplacian_pyramid
from medfuse.dran.rules import (
    ACTIVITY_POWER,
    PYRAMID_LEVELS,
    RULES,
    _ratio,
    nuclear_activity,
    nuclear_norms,
    sfnn_spatial_weights,
    trained_maps,
    trained_pyramid_blend,
)
from medfuse.evaluation.benchmark import RANKED_METRICS, Dataset, find_pairs, mean_ranks
from medfuse.evaluation.metrics import score
from medfuse.fusion.baselines import BASELINES, box_mean, guided_filter
from medfuse.fusion.engine import fuse_encoded
from medfuse.image.composition import fuse_luminance
from medfuse.io.images import images_by_stem, load_image

Features = tuple[torch.Tensor, torch.Tensor]
Candidate = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, Features], torch.Tensor]
"""(model, grey A, grey B as (1, 1, H, W) tensors, their features) -> fused grey tensor."""
CANDIDATES: dict[str, Candidate] = {}
CHOSEN = {"sfnn-map": 2, "sfnn-map-e4": 3, "sfnn-pyramid": 4}
"""Rules this harness chose, and in which round (``sfnn-map`` is the candidate ``pixel-p2-r1``,
``sfnn-map-e4`` the candidate ``evidence-p4``, ``sfnn-pyramid`` the candidate ``pyramid-sum-q0-g0.8``): a
round's pool leaves out the rules chosen in it and after it, so that a rerun prints the tables by which
they were chosen."""


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


def evidence_candidate(evidence_power: int) -> Candidate:
    """sfnn-map with the per-image evidence ``m`` raised to ``evidence_power`` instead of 2."""

    def fuse(model, a, b, features):
        w_a = sfnn_spatial_weights(*features, evidence_power=evidence_power)
        return w_a * a + (1 - w_a) * b

    fuse.__doc__ = f"sfnn-map weights with the per-image evidence at power {evidence_power}"
    return fuse


for _power in (3, 4):
    CANDIDATES[f"evidence-p{_power}"] = evidence_candidate(_power)


def contrast_candidate(radius: int) -> Candidate:
    """sfnn-map with the activity taken from the features' local contrast, ``|f_k - mean_w(f_k)|``
    over a (2 radius + 1)^2 window, instead of ``|f_k|``: structure, not brightness, wins."""

    def fuse(model, a, b, features):
        evidence = []
        for f in features:
            norms = nuclear_norms(f)
            local_mean = F.avg_pool2d(F.pad(f, (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)
            evidence.append(
                norms.amax(dim=1).view(-1, 1, 1, 1) ** 2 * nuclear_activity(f - local_mean, norms) ** ACTIVITY_POWER
            )
        w_a = evidence[0] / (evidence[0] + evidence[1]).clamp_min(1e-30)
        return w_a * a + (1 - w_a) * b

    fuse.__doc__ = f"sfnn-map weights from the features' local contrast, radius {radius}"
    return fuse


for _radius in (1, 3):
    CANDIDATES[f"contrast-r{_radius}"] = contrast_candidate(_radius)


def two_scale_candidate(radius: int) -> Candidate:
    """Two scales: each source split into a base (box mean of radius ``radius``) and a detail
    layer (the rest); the bases blended by sfnn-map's weights, the detail of the source with
    the larger local detail (3 x 3 mean of its absolute value) kept at every pixel."""

    def fuse(model, a, b, features):
        w_a = sfnn_spatial_weights(*features)[0, 0].double().numpy()
        grey_a, grey_b = a[0, 0].double().numpy(), b[0, 0].double().numpy()
        base_a, base_b = box_mean(grey_a, radius), box_mean(grey_b, radius)
        detail_a, detail_b = grey_a - base_a, grey_b - base_b
        keep_a = box_mean(np.abs(detail_a), 1) >= box_mean(np.abs(detail_b), 1)
        fused = w_a * base_a + (1 - w_a) * base_b + np.where(keep_a, detail_a, detail_b)
        return torch.from_numpy(np.clip(fused, 0, 1))[None, None]

    fuse.__doc__ = f"sfnn-map bases (box radius {radius}) plus the locally larger detail"
    return fuse


for _radius in (3, 7, 15):
    CANDIDATES[f"two-scale-r{_radius}"] = two_scale_candidate(_radius)


def pyramid_candidate(middle: str, base: str, gain: float) -> Candidate:
    """Round 4: the sources' Laplacian pyramids (5 detail levels) fused level by level, as
    ``sfnn-pyramid``: the finest level shared by the blurred magnitudes at power 4; the middle
    levels 1 to 4 ``sum``: both sources' coefficients added, or ``oppmax``: added where their
    signs agree, the larger in magnitude where they disagree; the base ``average`` averaged,
    or ``qQ`` blended by sfnn-map's weights with the per-image evidence at power Q (0: the
    activity alone) reduced to its size, then scaled by ``gain``."""

    def fuse(model, a, b, features):
        pyramid_a, pyramid_b = laplacian_pyramid(a, PYRAMID_LEVELS), laplacian_pyramid(b, PYRAMID_LEVELS)
        fused = []
        for level, (detail_a, detail_b) in enumerate(zip(pyramid_a[:-1], pyramid_b[:-1])):
            if level == 0:
                w_a = _ratio(binomial_blur(detail_a.abs()) ** 4, binomial_blur(detail_b.abs()) ** 4)
                fused.append(w_a * detail_a + (1 - w_a) * detail_b)
            elif middle == "sum":
                fused.append(detail_a + detail_b)
            else:
                larger = torch.where(detail_a.abs() >= detail_b.abs(), detail_a, detail_b)
                fused.append(torch.where(detail_a * detail_b >= 0, detail_a + detail_b, larger))
        if base == "average":
            w_base = 0.5
        else:
            weights = sfnn_spatial_weights(*features, evidence_power=int(base.removeprefix("q")))
            w_base = gaussian_pyramid(weights, PYRAMID_LEVELS)[-1]
        fused.append(gain * (w_base * pyramid_a[-1] + (1 - w_base) * pyramid_b[-1]))
        return collapse_pyramid(fused).clamp(0, 1)

    fuse.__doc__ = f"Laplacian pyramid, middle levels {middle}, base {base} times {gain}"
    return fuse


for _middle, _base, _gain in [
    ("sum", "q0", 0.7),
    ("sum", "q0", 0.8),
    ("sum", "q0", 1.0),
    ("sum", "average", 0.7),
    ("sum", "q2", 0.7),
    ("oppmax", "q0", 0.7),
]:
    CANDIDATES[f"pyramid-{_middle}-{_base}-g{_gain:g}"] = pyramid_candidate(_middle, _base, _gain)


@candidate("trained-pyramid-flat")
def trained_pyramid_flat(model, a, b, features):
    """Ablation of ``trained-pyramid`` (issue 31): the trained head's maps replaced by their means over
    the image: the network still says how much of each source's detail and brightness, no longer where."""
    maps = trained_maps(model, *features)
    return trained_pyramid_blend(a, b, maps.mean(dim=(2, 3), keepdim=True).expand_as(maps))


@candidate("trained-pyramid-untrained")
def trained_pyramid_untrained(model, a, b, features):
    """Ablation of ``trained-pyramid``: the same blend with an untrained head's constant maps (every
    detail of both sources whole, bases half and half, times 0.8): no network at all."""
    maps = PyramidWeightHead(features[0].shape[1]).to(a)(*features)
    return trained_pyramid_blend(a, b, maps)


@candidate("half-pixel-sfnn-spatial")
def half_pixel_sfnn_spatial(model, a, b, features):
    """Mean of sfnn-spatial's decoded image and its weights applied to the sources."""
    w_a = sfnn_spatial_weights(*features)
    decoded = model.decode(w_a * features[0] + (1 - w_a) * features[1])
    return (decoded + w_a * a + (1 - w_a) * b) / 2


def fused_grey(model: torch.nn.Module, name: str, a: torch.Tensor, b: torch.Tensor, features: Features) -> torch.Tensor:
    if name in CANDIDATES:
        return CANDIDATES[name](model, a, b, features)
    return fuse_encoded(model, a, b, *features, RULES[name.removeprefix("dran-")])[0]


METRICS_CODE = "".join(
    path.read_text() for path in sorted(Path(medfuse.evaluation.metrics.__file__).parent.glob("*.py"))
)
"""Stored scores are keyed by the metric code too: a changed metric rescores everything."""
RULES_CODE = Path(medfuse.dran.rules.__file__).read_text()
"""And DRAN methods by the rules' module: a changed helper (nuclear norms, activity) fuses them again."""


def method_code(name: str, weights: str) -> str:
    function = CANDIDATES.get(name) or RULES.get(name.removeprefix("dran-")) or BASELINES[name]
    function = getattr(function, "weights", getattr(function, "fuse", function))
    code = inspect.getsource(function) + (function.__doc__ or "") + METRICS_CODE
    if name not in BASELINES:
        code += RULES_CODE + file_digest(weights_path(weights))
    return hashlib.sha256(code.encode()).hexdigest()


def draw_train_pairs(folder: Path, count: int, seed: int) -> tuple[Dataset, list[tuple[str, Path, Path]]]:
    """The paired dataset of ``folder/train`` and ``count`` of its pairs drawn with ``seed``, in
    file order: the train pairs of a round (``benchmarks/source_shares.py`` draws the same)."""
    dataset = find_pairs(folder / "train")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(dataset.pairs), size=min(count, len(dataset.pairs)), replace=False))
    return dataset, [dataset.pairs[i] for i in chosen]


def external_methods(specifications: list[str]) -> dict[str, dict[str, Path]]:
    """``NAME=FOLDER`` -> {NAME: {pair name: fused image file}}."""
    return {name: images_by_stem(Path(folder)) for name, folder in (e.split("=", 1) for e in specifications)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard")
    parser.add_argument("--set", required=True, help="CT-MRI, PET-MRI or SPECT-MRI")
    parser.add_argument("--pairs", type=int, default=40, help="train pairs drawn (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES), help="default: all")
    parser.add_argument(
        "--round",
        type=int,
        default=3,
        help="the pool holds the rules chosen before this round (2: neither sfnn-map nor "
        "sfnn-map-e4; 3, the default: sfnn-map)",
    )
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="a pool method run elsewhere: its fused images of the train split, named like the pairs",
    )
    parser.add_argument("--weights", default="dran-havard", help="model of the pool's DRAN rules")
    parser.add_argument("--candidate-weights", help="model of the candidates (default: --weights)")
    parser.add_argument("-o", "--out", default="out/tune")
    args = parser.parse_args()

    dataset, pairs = draw_train_pairs(Path(args.data) / args.set, args.pairs, args.seed)
    external = external_methods(args.external)
    for name, files in external.items():
        missing = [pair for pair, _, _ in pairs if pair not in files]
        if missing:
            raise SystemExit(f"--external {name}: no fused image for {len(missing)} drawn pairs, e.g. {missing[0]}")
    shipped = ["dran-" + rule for rule in sorted(RULES) if CHOSEN.get(rule, 0) < args.round] + sorted(BASELINES)
    pool = shipped + sorted(external)
    candidate_weights = args.candidate_weights or args.weights
    models = {"pool": load_model(args.weights)}
    if candidate_weights != args.weights:
        models["candidates"] = load_model(candidate_weights)

    def weights_of(name: str) -> str:
        return candidate_weights if name in args.candidates else args.weights

    store = Path(args.out) / args.set / "scores.json"
    store.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(store.read_text()) if store.exists() else {}
    keys = {m: f"{m} {method_code(m, weights_of(m))}" for m in shipped + list(args.candidates)}
    scores = {m: saved.get(keys[m], {}) for m in keys} | {m: {} for m in external}
    for pair, path_a, path_b in tqdm(pairs, desc=args.set):
        todo = [m for m in scores if pair not in scores[m]]
        if not todo:
            continue
        image_a, image_b = load_image(path_a), load_image(path_b)
        cache: dict[str, Features] = {}

        def grey_fusion(
            name: str, cache: dict[str, Features] = cache
        ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
            if name in BASELINES:
                return BASELINES[name]
            role = "candidates" if name in args.candidates and "candidates" in models else "pool"
            model = models[role]

            @torch.no_grad()
            def fuse_grey(grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
                a = torch.from_numpy(grey_a).float()[None, None]
                b = torch.from_numpy(grey_b).float()[None, None]
                if role not in cache:
                    cache[role] = (model.encode(a), model.encode(b))
                return fused_grey(model, name, a, b, cache[role])[0, 0].double().numpy()

            return fuse_grey

        for name in todo:
            if name in external:
                fused = load_image(external[name][pair])
            else:
                fused = fuse_luminance(image_a, image_b, grey_fusion(name))
            scores[name][pair] = {m: score(m, fused, image_a, image_b) for m in RANKED_METRICS}
        store.write_text(json.dumps(saved | {keys[m]: scores[m] for m in keys}))

    names = [p for p, _, _ in pairs]
    means = {m: {k: float(np.mean([scores[m][p][k] for p in names])) for k in RANKED_METRICS} for m in scores}
    header = f"{'method':<28}" + "".join(f"{k:>8}" for k in RANKED_METRICS) + f"{'rank':>7}"
    print(
        f"{args.set} train, {len(names)} pairs (seed {args.seed}); pool's DRAN rules with {args.weights}, "
        f"candidates (*) with {candidate_weights}; rank = mean rank in the pool plus that method"
    )
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
