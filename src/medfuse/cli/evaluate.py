"""``medfuse evaluate``: score fused images against their two sources."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from medfuse.cli.common import UserError
from medfuse.evaluation import (
    Evaluation,
    check_metric_names,
    evaluate_files,
    match_folders,
    write_csv,
    write_json,
)
from medfuse.io import ImageFileError
from medfuse.metrics import METRICS

DEFAULT_METRICS = ",".join(METRICS)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="score fused images against their sources with fusion metrics",
        description="Score a fused image against its two sources, or every image of a folder of "
        "fused images against the two source folders (matched by file name, ignoring the "
        "suffix). Colour images are scored on their Y channel (BT.601). Prints the mean and "
        "standard deviation of each metric; --csv and --json write every score.",
        epilog=f"metrics: {', '.join(METRICS)} (nabf and qcv: lower is better). "
        "Conventions: docs/metrics.md and each function's docstring in medfuse.metrics.",
    )
    parser.add_argument("fused", help="fused image, or folder of them")
    parser.add_argument("a", help="first source image (or folder)")
    parser.add_argument("b", help="second source image (or folder)")
    parser.add_argument("--metrics", default=DEFAULT_METRICS,
                        help="comma-separated metric names (default: all)")
    parser.add_argument("--csv", help="write per-image scores and the summary as CSV here")
    parser.add_argument("--json", help="write per-image scores and the summary as JSON here")
    parser.set_defaults(run=run)


def print_table(evaluation: Evaluation) -> None:
    summary = evaluation.summary()
    count = len(evaluation.scores)
    print(f"{'metric':<8}{'mean':>14}{'std':>14}   ({count} image{'s' if count != 1 else ''})")
    for name in evaluation.metrics:
        print(f"{name:<8}{summary[name]['mean']:>14.6g}{summary[name]['std']:>14.6g}")


def run(args: argparse.Namespace) -> None:
    try:
        metrics = check_metric_names(m.strip() for m in args.metrics.split(",") if m.strip())
    except ValueError as error:
        raise UserError(str(error)) from None
    paths = [Path(p) for p in (args.fused, args.a, args.b)]
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
    outputs = [Path(o) for o in (args.csv, args.json) if o]
    for output in outputs:
        if not output.parent.is_dir():
            raise UserError(f"{output}: folder {output.parent} does not exist")
        if output.is_dir():
            raise UserError(f"{output}: is a folder; give a file name")
        if any(output.resolve() == p.resolve() for p in paths):
            raise UserError(f"{output} is one of the inputs; choose another path")
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise UserError("--csv and --json name the same file")
    if all(p.is_dir() for p in paths):
        try:
            triples, problems = match_folders(*paths)
        except ImageFileError as error:
            raise UserError(str(error)) from None
        if not triples:
            raise UserError(f"no fused image in {paths[0]} has sources of the same name in {paths[1]} and {paths[2]}")
        evaluation = evaluate_files(tqdm(triples, desc="evaluating", unit="image"), metrics)
        evaluation.problems[:0] = problems
    elif not any(p.is_dir() for p in paths):
        evaluation = evaluate_files([(paths[0].stem, *paths)], metrics)
    else:
        raise UserError("FUSED, A and B must be three files or three folders")
    if not evaluation.scores:
        raise UserError("nothing could be scored: " + "; ".join(evaluation.problems))
    for problem in evaluation.problems:
        print(f"medfuse evaluate: skipped {problem}", file=sys.stderr)
    print_table(evaluation)
    if args.csv:
        write_csv(evaluation, args.csv)
        print(f"scores written to {args.csv}")
    if args.json:
        write_json(evaluation, args.json)
        print(f"scores written to {args.json}")
