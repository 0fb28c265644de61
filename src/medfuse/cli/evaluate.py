"""``medfuse evaluate``: :func:`medfuse.evaluation.scoring.evaluate_paths` on the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from medfuse._shared.errors import InputError
from medfuse.cli import deferred_epilog

if TYPE_CHECKING:
    from medfuse.evaluation.scoring import Evaluation


def _metrics_epilog() -> str:
    from medfuse.evaluation.metrics import METRICS

    lower = [name for name, metric in METRICS.items() if not metric.higher_is_better]
    return (
        f"metrics: {', '.join(METRICS)} ({' and '.join(lower)}: lower is better). Conventions: "
        "docs/metrics.md and each function's docstring in medfuse.evaluation.metrics."
    )


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser(
        "evaluate",
        help=summary,
        description="Score a fused image against its two sources, or every image of a folder of "
        "fused images against the two source folders (matched by file name, ignoring the "
        "suffix). Colour images are scored on their Y channel (BT.601). Prints the mean and "
        "standard deviation of each metric (an infinite value, the PSNR of a copy of a source, is "
        "left out of them and counted); --csv and --json write every score. Exit status 1 if an "
        "image of a folder could not be read or scored (the others are), 2 for a usage error. In Python: "
        "medfuse.evaluation.scoring.evaluate_paths(FUSED, A, B, metrics).",
        epilog=deferred_epilog(_metrics_epilog),
    )
    parser.add_argument("fused", help="fused image, or folder of them")
    parser.add_argument("a", help="first source image (or folder)")
    parser.add_argument("b", help="second source image (or folder)")
    parser.add_argument("--metrics", default="all", help="comma-separated metric names (default: all)")
    parser.add_argument(
        "--csv",
        help="write per-image scores as CSV here (one row per image) and the summary "
        "(mean, std, infinite count per metric) beside it as NAME.summary.csv",
    )
    parser.add_argument("--json", help="write per-image scores and the summary as JSON here")
    parser.set_defaults(run=run)


def print_table(evaluation: Evaluation) -> None:
    summary = evaluation.summary()
    count = len(evaluation.scores)
    print(f"{'metric':<8}{'mean':>14}{'std':>14}   ({count} image{'s' if count != 1 else ''})")
    for name in evaluation.metrics:
        infinite = summary[name]["infinite"]
        note = f"   ({infinite} infinite, left out of mean and std)" if infinite else ""
        print(f"{name:<8}{summary[name]['mean']:>14.6g}{summary[name]['std']:>14.6g}{note}")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from medfuse._shared.checks import check_exists, check_new_output, same_path
    from medfuse.cli.common import show_progress
    from medfuse.evaluation.metrics import METRICS
    from medfuse.evaluation.scoring import check_metric_names, evaluate_paths, summary_path, write_csv, write_json

    metrics = (
        list(METRICS)
        if args.metrics == "all"
        else check_metric_names(name.strip() for name in args.metrics.split(",") if name.strip())
    )
    inputs = check_exists(args.fused, args.a, args.b)
    outputs = [check_new_output(path, inputs) for path in (args.csv, args.json) if path]
    if args.csv:
        outputs.append(check_new_output(summary_path(args.csv), inputs, "summary CSV"))
    if any(same_path(first, second) for n, first in enumerate(outputs) for second in outputs[n + 1 :]):
        raise InputError("--csv, its summary (NAME.summary.csv) and --json must be three files")
    fused, a, b = inputs
    evaluation = evaluate_paths(
        fused,
        a,
        b,
        metrics,
        lambda triples: tqdm(triples, desc="evaluating", unit="image", disable=not show_progress(args)),
    )
    for problem in evaluation.problems:
        print(f"medfuse evaluate: skipped {problem}", file=sys.stderr)
    print_table(evaluation)
    if args.csv:
        print(f"scores written to {args.csv}, their summary to {write_csv(evaluation, args.csv)}")
    if args.json:
        write_json(evaluation, args.json)
        print(f"scores written to {args.json}")
    if evaluation.failures:
        print(f"{len(evaluation.failures)} image(s) could not be scored; the others were", file=sys.stderr)
        return 1
    return 0
