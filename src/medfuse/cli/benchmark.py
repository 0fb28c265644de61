"""``medfuse benchmark``: :func:`medfuse.evaluation.benchmark.benchmark_folder` on the command line."""

from __future__ import annotations

import argparse

from medfuse._shared.errors import InputError
from medfuse.cli import deferred_epilog
from medfuse.cli.common import add_model_arguments
from medfuse.evaluation import MONTAGE_PAIRS, RANKED_METRICS


def _methods_epilog() -> str:
    from medfuse.fusion.methods import list_methods

    return f"methods: {', '.join(list_methods())}"


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser(
        "benchmark",
        help=summary,
        description="Fuse every pair of a dataset folder (two modality folders, images paired by "
        "file name, e.g. ../shared/data/havard/CT-MRI/test with MRI/ and CT/) with every method, "
        "score the results and rank the methods. Writes into OUT: table.md (mean ± standard "
        "deviation per metric, methods ordered by their mean rank over the ranked metrics "
        f"{', '.join(RANKED_METRICS)}), scores.csv (every pair), montage.png (sources and "
        "results of the first pairs), distributions.png (box plots per metric) and fused/METHOD/ "
        "(the fused images, reused by a rerun with the same method and weights). Colour "
        "images are scored on their Y channel. In Python: "
        "medfuse.evaluation.benchmark.benchmark_folder(DATA, OUT, ...).",
        epilog=deferred_epilog(_methods_epilog),
    )
    parser.add_argument("data", help="dataset folder holding two modality folders of paired images")
    parser.add_argument("-o", "--out", required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--methods",
        default="all",
        help="comma-separated method names (default all: every DRAN rule as dran-RULE and every baseline)",
    )
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="a method run elsewhere: a folder of its fused images named like the pairs (may be repeated)",
    )
    parser.add_argument(
        "--metrics",
        default=",".join(RANKED_METRICS),
        help=f"comma-separated metric names (default {','.join(RANKED_METRICS)})",
    )
    parser.add_argument("--a", dest="modality_a", help="folder name of the first modality (default MRI if present)")
    parser.add_argument("--b", dest="modality_b", help="folder name of the second modality")
    add_model_arguments(parser, rule=False, what=" for the DRAN methods")
    parser.add_argument(
        "--montage-pairs", type=int, default=MONTAGE_PAIRS, help=f"pairs shown in montage.png (default {MONTAGE_PAIRS})"
    )
    parser.set_defaults(run=run)


def _split_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _external_methods(specifications: list[str]) -> dict[str, str]:
    external = {}
    for specification in specifications:
        name, _, folder = specification.partition("=")
        if not name or not folder:
            raise InputError(f"--external {specification}: expected NAME=FOLDER")
        if name in external:
            raise InputError(f"--external {specification}: the name {name} is given twice")
        external[name] = folder
    return external


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from medfuse.cli.common import show_progress
    from medfuse.evaluation.benchmark import benchmark_folder

    run = benchmark_folder(
        args.data,
        args.out,
        None if args.methods == "all" else _split_names(args.methods),
        _external_methods(args.external),
        _split_names(args.metrics),
        args.modality_a,
        args.modality_b,
        args.weights,
        args.device,
        args.montage_pairs,
        progress=lambda pairs: tqdm(pairs, desc="benchmark", unit="pair", disable=not show_progress(args)),
    )
    print(run.heading + run.table)
    print(f"written to {args.out}: {', '.join(run.written)}, fused/ (cached fused images)")
