"""``medfuse benchmark``: methods x image pairs x metrics on a paired dataset folder."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from medfuse.baselines import BASELINES
from medfuse.benchmark import (
    RANKED_METRICS,
    BenchmarkResult,
    Dataset,
    find_pairs,
    markdown_table,
    method_identity,
    run_benchmark,
    write_distributions,
    write_montage,
    write_scores_csv,
)
from medfuse.cli.common import UserError, torch_device
from medfuse.evaluation import check_metric_names
from medfuse.io import ImageFileError, images_by_stem, write_atomically
from medfuse.methods import DRAN_PREFIX, create_method, is_dran_method, list_methods
from medfuse.models import DEFAULT_MODEL, SHIPPED_WEIGHTS, load_model
from medfuse.rules import get_rule


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "benchmark",
        help="compare fusion methods on a dataset folder with fusion metrics",
        description="Fuse every pair of a dataset folder (two modality folders, images paired by "
        "file name, e.g. ../shared/data/havard/CT-MRI/test with MRI/ and CT/) with every method, "
        "score the results and rank the methods. Writes into OUT: table.md (mean ± standard "
        "deviation per metric, methods ordered by their mean rank over the ranked metrics "
        f"{', '.join(RANKED_METRICS)}), scores.csv (every pair), montage.png (sources and "
        "results of the first pairs), distributions.png (box plots per metric) and fused/METHOD/ "
        "(the fused images, reused by a rerun with the same method and weights). Colour "
        "images are scored on their Y channel.",
        epilog=f"methods: {', '.join(list_methods())}",
    )
    parser.add_argument("data", help="dataset folder holding two modality folders of paired images")
    parser.add_argument("-o", "--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--methods", default="all",
                        help="comma-separated method names (default all: every DRAN rule as dran-RULE "
                        "and every baseline)")
    parser.add_argument("--external", action="append", default=[], metavar="NAME=FOLDER",
                        help="a method run elsewhere: a folder of its fused images named like the pairs "
                        "(may be repeated)")
    parser.add_argument("--metrics", default=",".join(RANKED_METRICS),
                        help=f"comma-separated metric names (default {','.join(RANKED_METRICS)})")
    parser.add_argument("--a", dest="modality_a",
                        help="folder name of the first modality (default MRI if present)")
    parser.add_argument("--b", dest="modality_b", help="folder name of the second modality")
    parser.add_argument("--weights", default=DEFAULT_MODEL,
                        help=f"shipped model name or safetensors path for the DRAN methods (default {DEFAULT_MODEL})")
    parser.add_argument("--device", default="cpu", help="torch device for the DRAN methods (default cpu)")
    parser.add_argument("--montage-pairs", type=int, default=3,
                        help="pairs shown in montage.png (default 3)")
    parser.set_defaults(run=run)


def _split_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _external_methods(specifications: list[str]) -> dict[str, Path]:
    external = {}
    for specification in specifications:
        name, _, folder = specification.partition("=")
        if not name or not folder:
            raise UserError(f"--external {specification}: expected NAME=FOLDER")
        if name in external or name in list_methods():
            raise UserError(f"--external {specification}: the name {name} is taken")
        if not Path(folder).is_dir():
            raise UserError(f"--external {specification}: {folder} is not a folder")
        external[name] = Path(folder)
    return external


def run(args: argparse.Namespace) -> None:
    try:
        metrics = check_metric_names(_split_names(args.metrics))
    except ValueError as error:
        raise UserError(str(error)) from None
    names = list_methods() if args.methods == "all" else _split_names(args.methods)
    unknown = [name for name in names if name not in list_methods()]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(list_methods())}")
    external = _external_methods(args.external)
    if not names and not external:
        raise UserError("no methods chosen")
    if args.montage_pairs < 0:
        raise UserError("--montage-pairs must be 0 or more")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} is a file; give a folder")
    try:
        dataset = find_pairs(args.data, args.modality_a, args.modality_b)
    except ImageFileError as error:
        raise UserError(str(error)) from None
    for path in dataset.unpaired:
        print(f"medfuse benchmark: warning: {path} has no partner of the same name; skipped", file=sys.stderr)

    methods, identities = {}, {}
    if any(is_dran_method(name) for name in names):
        device = torch_device(args.device)
        try:
            model = load_model(args.weights, device)
        except (FileNotFoundError, ValueError, RuntimeError) as error:
            raise UserError(f"--weights: {error}") from None
        weights_file = SHIPPED_WEIGHTS.get(args.weights, Path(args.weights))
    for name in names:
        dran = is_dran_method(name)
        methods[name] = create_method(name, model=model) if dran else create_method(name)
        function = get_rule(name.removeprefix(DRAN_PREFIX)) if dran else BASELINES[name]
        identities[name] = method_identity(name, function, weights_file if dran else None)
    methods.update(external)

    start = time.perf_counter()
    try:
        result = run_benchmark(dataset, methods, metrics, out, identities,
                               progress=lambda pairs: tqdm(pairs, desc="benchmark", unit="pair"))
    except ImageFileError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"-o {out}: cannot write there ({error.strerror or error})") from None
    seconds = time.perf_counter() - start
    _write_reports(result, dataset, external, args.montage_pairs, out, seconds)


def _write_reports(result: BenchmarkResult, dataset: Dataset, external: dict[str, Path], montage_pairs: int,
                   out: Path, seconds: float) -> None:
    table = markdown_table(result)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}"
    heading = (f"{len(dataset.pairs)} pairs {dataset.modality_a}/{dataset.modality_b}, "
               f"{len(result.methods)} methods, mean ± standard deviation; fused and scored in "
               f"{seconds:.0f} s ({machine})\n\n")
    write_atomically(out / "table.md", lambda temporary: temporary.write_text(heading + table))
    write_scores_csv(result, out / "scores.csv")
    write_distributions(result, out / "distributions.png")
    written = ["table.md", "scores.csv", "distributions.png"]
    if montage_pairs:
        ranks = result.mean_ranks()
        order = sorted(result.methods, key=lambda method: (ranks[method], method))
        fused = {m: external[m] if m in external else out / "fused" / m for m in order}
        write_montage(dataset, {m: images_by_stem(folder) for m, folder in fused.items()},
                      out / "montage.png", montage_pairs)
        written.append("montage.png")
    print(heading + table)
    print(f"written to {out}: {', '.join(written)}, fused/ (cached fused images)")

