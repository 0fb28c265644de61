"""Issue 31: does the trained fusion stage keep both sources' lesions and win the seven metrics?

    OMP_NUM_THREADS=1 python benchmarks/fusion_stage.py --held-out --weights dran-fusion-havard
    OMP_NUM_THREADS=1 python benchmarks/fusion_stage.py --split test --set CT-MRI --weights dran-fusion-havard

For every pair of the chosen pairs, on the Y channel in [0, 1]: the four lesions of
``benchmarks/lesion_retention.py`` (a bright and a dark Gaussian blob, 3 to 9 px, 0.2 to 0.35, in
each source in turn; the same draw) and the seven ranked metrics of BENCHMARKS.md (on the 8-bit
scale), for the group of the issue: ``dran-trained-pyramid`` (the model given by ``--weights``),
its two ablations (``trained-pyramid-flat``: the head's maps replaced by their means over the
image; ``trained-pyramid-untrained``: an untrained head's constant maps), the network-free twin
``pyramid-energy``, ``dran-sfnn-pyramid``, ``dran-sfnn-map-e4``, pixel maximum, pixel average, the
Laplacian baseline and, when ``../shared/anchors/dilran`` is there, the DRAN authors' released model.

Pairs: ``--held-out``: the pairs ``medfuse train-fusion`` held out of the three Havard train splits
(``--val-fraction`` 0.05, ``--seed`` 0: the choice on train pairs never trained on), by set; or
``--split test --set SET``: a whole test split, run once after the choice. Printed per set: each
source's mean retention, the seven means and the mean rank within the group with and without the
ablations (the issue's group has no ablation rows), the share of the tissue (either source above 0.05)
that is white (254 or 255), beside the more saturated source's own share, and each method's
milliseconds per pair (the clean fusion, encoding included, on a machine shared with the rest).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from lesion_retention import AUTHORS, plant_lesions
from tune_rule import fused_grey

from medfuse.dran.models import load_model
from medfuse.evaluation.benchmark import RANKED_METRICS, find_pairs, mean_ranks
from medfuse.evaluation.metrics import score
from medfuse.evaluation.metrics.fidelity import lesion_retention
from medfuse.fusion.baselines import BASELINES
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image
from medfuse.training.fusion import split_pairs

SETS = ("CT-MRI", "PET-MRI", "SPECT-MRI")
FOREGROUND = 0.05
"""Tissue: either source above this."""
WHITE = 254
"""A fused pixel this bright (8-bit) or brighter counts as saturated."""
TRAINED = "dran-trained-pyramid"
ABLATIONS = ("trained-pyramid-flat", "trained-pyramid-untrained")
GROUP = (TRAINED, "pyramid-energy", AUTHORS, "pixel-max", "pixel-average", "laplacian", "dran-sfnn-map-e4")
OTHERS = ("dran-sfnn-pyramid",)


def grey_methods(
    model: torch.nn.Module, with_authors: bool, candidates: dict[str, torch.nn.Module]
) -> tuple[dict, dict[bytes, torch.Tensor]]:
    """Every method of the table as a function of two grey float arrays; DRAN methods encode each
    image once per pair (``cache``, cleared between methods). ``candidates``: more trained models
    (same encoder), each as ``dran-trained-pyramid[NAME]``."""
    cache: dict[bytes, torch.Tensor] = {}

    def features(grey: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        tensor = torch.from_numpy(grey.astype(np.float32))[None, None]
        key = grey.tobytes()
        if key not in cache:
            with torch.no_grad():
                cache[key] = model.encode(tensor)
        return tensor, cache[key]

    def dran(name: str, fusing: torch.nn.Module = model):
        def fuse(grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
            (a, features_a), (b, features_b) = features(grey_a), features(grey_b)
            with torch.no_grad():
                return fused_grey(fusing, name, a, b, (features_a, features_b))[0, 0].double().clamp(0, 1).numpy()

        return fuse

    methods = {name: dran(name) for name in (TRAINED, *ABLATIONS, "dran-sfnn-pyramid", "dran-sfnn-map-e4")}
    methods.update({f"{TRAINED}[{name}]": dran(TRAINED, other) for name, other in candidates.items()})
    methods.update({name: BASELINES[name] for name in ("pyramid-energy", "pixel-max", "pixel-average", "laplacian")})
    if with_authors:
        from authors_fusion import AUTHORS_CODE, authors_grey_fusion

        if (AUTHORS_CODE / "model_v5.py").is_file():
            warnings.simplefilter("ignore")  # their softmax call without dim
            methods[AUTHORS] = authors_grey_fusion()
        else:
            print(f"{AUTHORS} left out: its code is not at {AUTHORS_CODE}")
    return methods, cache


def held_out_pairs(data: Path, val_fraction: float, seed: int) -> dict[str, list[tuple[str, Path, Path]]]:
    """The pairs ``medfuse train-fusion DATA/*/train`` holds out, by set."""
    from medfuse.training.fusion import find_pair_folders

    folders = [str(data / name / "train") for name in SETS]
    _, held = split_pairs(find_pair_folders(folders), val_fraction, seed)
    return {name: [pair for pair in held if pair[0].startswith(f"{data / name / 'train'}/")] for name in SETS}


def run_set(title: str, pairs: list[tuple[str, Path, Path]], methods: dict, cache: dict) -> None:
    retained = {name: {"A": [], "B": []} for name in methods}
    scores = {name: {metric: [] for metric in RANKED_METRICS} for name in methods}
    seconds = {name: 0.0 for name in methods}
    saturated = {name: [] for name in methods}
    saturated_sources = []
    for index, (_, path_a, path_b) in enumerate(pairs):
        grey_a, grey_b = grey_unit(load_image(path_a)), grey_unit(load_image(path_b))
        rng = np.random.default_rng([0, index])
        lesions = [
            (source, *lesion) for source, grey in (("A", grey_a), ("B", grey_b)) for lesion in plant_lesions(grey, rng)
        ]
        eight_bit = [np.round(grey * 255).astype(np.uint8) for grey in (grey_a, grey_b)]
        tissue = (grey_a > FOREGROUND) | (grey_b > FOREGROUND)
        saturated_sources.append(max(float(np.mean(image[tissue] >= WHITE)) for image in eight_bit))
        for name, fuse in methods.items():
            cache.clear()
            started = time.perf_counter()
            clean = fuse(grey_a, grey_b)
            seconds[name] += time.perf_counter() - started
            for source, _, profile, lesioned in lesions:
                with_lesion = fuse(lesioned, grey_b) if source == "A" else fuse(grey_a, lesioned)
                original = grey_a if source == "A" else grey_b
                retained[name][source].append(lesion_retention(clean, with_lesion, original, lesioned, profile))
            fused = np.round(np.clip(clean, 0, 1) * 255).astype(np.uint8)
            saturated[name].append(float(np.mean(fused[tissue] >= WHITE)))
            for metric in RANKED_METRICS:
                scores[name][metric].append(score(metric, fused, *eight_bit))
    means = {name: {metric: float(np.mean(values)) for metric, values in row.items()} for name, row in scores.items()}
    group = [name for name in GROUP if name in methods]
    ranks_group = mean_ranks({name: means[name] for name in group}, RANKED_METRICS)
    for name in methods:  # a candidate's rank in the group, in the trained stage's place
        if name.startswith(f"{TRAINED}["):
            substituted = {other: means[other] for other in group if other != TRAINED} | {name: means[name]}
            ranks_group[name] = mean_ranks(substituted, RANKED_METRICS)[name]
    ranks_all = mean_ranks(means, RANKED_METRICS)
    print(
        f"\n## {title}: {len(pairs)} pairs x 4 lesions; white (>= {WHITE}) in the tissue: "
        f"{100 * np.mean(saturated_sources):.2f} % in the more saturated source\n"
    )
    print(
        "| method | lesions A | lesions B | "
        + " | ".join(RANKED_METRICS)
        + " | rank in group | rank with ablations | white % | ms per pair |"
    )
    print("| --- |" + " ---: |" * (len(RANKED_METRICS) + 6))
    for name in sorted(methods, key=lambda n: (n not in ranks_group, ranks_group.get(n, 99), ranks_all[n])):
        cells = [f"{np.mean(retained[name]['A']):.3f}", f"{np.mean(retained[name]['B']):.3f}"]
        cells += [f"{means[name][metric]:.4f}" for metric in RANKED_METRICS]
        cells += [
            f"{ranks_group[name]:.2f}" if name in ranks_group else "",
            f"{ranks_all[name]:.2f}",
            f"{100 * np.mean(saturated[name]):.2f}",
            f"{1000 * seconds[name] / len(pairs):.0f}",
        ]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/havard")
    parser.add_argument("--weights", default="dran-fusion-havard", help="a model with a trained fusion stage")
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=WEIGHTS",
        help="another model with a fusion stage on the same encoder, shown as "
        "dran-trained-pyramid[NAME], its rank in the group taken in the trained stage's place",
    )
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--held-out", action="store_true", help="the pairs train-fusion held out of the train splits")
    choice.add_argument("--split", choices=("test",), help="a whole test split (with --set)")
    parser.add_argument("--set", choices=SETS, help="the set (needed with --split test; default with --held-out: all)")
    parser.add_argument("--pairs", type=int, help="at most this many pairs per set")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-authors", action="store_true", help="leave the authors' model out")
    args = parser.parse_args()
    if args.split and not args.set:
        parser.error("--split test needs --set")

    model = load_model(args.weights)
    candidates = {name: load_model(path) for name, path in (spec.split("=", 1) for spec in args.candidate)}
    methods, cache = grey_methods(model, not args.no_authors, candidates)
    data = Path(args.data)
    if args.held_out:
        chosen = held_out_pairs(data, args.val_fraction, args.seed)
        chosen = {args.set: chosen[args.set]} if args.set else chosen
    else:
        chosen = {args.set: find_pairs(data / args.set / "test").pairs}
    print(
        f"weights {args.weights}; pairs: {'held out of train' if args.held_out else 'test'}; "
        f"A = MRI, B = the other modality"
    )
    for name, pairs in chosen.items():
        run_set(f"{name} ({'held-out train' if args.held_out else 'test'})", pairs[: args.pairs], methods, cache)


if __name__ == "__main__":
    main()
