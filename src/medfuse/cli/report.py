"""``medfuse report``: :func:`medfuse.clinical.reports.write_report` on the command line."""

from __future__ import annotations

import argparse

from medfuse.cli import deferred_epilog
from medfuse.cli.common import add_model_arguments, rules_epilog
from medfuse.evaluation import RANKED_METRICS

DESCRIPTION = (
    "Write one self-contained HTML page (no network; it opens from a file) to look at a fusion. Two images: "
    "the sources, the fusion, the weight map of A (which source dominates where), the differences of the "
    "fusion from each source, each source's share of the fused foreground and the metrics with the direction "
    "that is better; the fusion is made here (--rule, --weights) unless --fused names one. Two volumes on "
    "one grid: a viewer with the axial, coronal and sagittal planes, a slider per plane, a slider from A "
    "through the fusion to B, the weight map, a colour map for PET or SPECT, and the geometry; give the fused "
    "volume (and its weight map) as medfuse fuse ... --weight-map wrote them. Two folders of sources with "
    "--fused FOLDER: every fused image scored, each metric's values over the images, the first pairs shown. "
    "One benchmark output folder: the methods' scores and mean ranks, its figures, a caution for few pairs. "
    "In Python: "
    "medfuse.clinical.reports.write_report(A, B, OUT, ...)."
)


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser("report", help=summary, description=DESCRIPTION, epilog=deferred_epilog(rules_epilog))
    parser.add_argument(
        "a",
        help="first source (e.g. the MRI): an image, a folder of them or a volume; or, alone, "
        "a medfuse benchmark output folder",
    )
    parser.add_argument("b", nargs="?", help="second source (e.g. CT, PET or SPECT), or a folder of them")
    parser.add_argument("-o", "--out", required=True, help="the report, ending in .html")
    parser.add_argument(
        "--fused", help="the fusion to show: an image, a folder of them, or a volume (required for folders and volumes)"
    )
    parser.add_argument("--weight-map", help="A's weight map as medfuse fuse --weight-map wrote it (with --fused)")
    add_model_arguments(parser)
    parser.add_argument(
        "--metrics",
        default=",".join(RANKED_METRICS),
        help=f"metrics shown for two images, comma-separated (default {','.join(RANKED_METRICS)})",
    )
    parser.add_argument(
        "--colour-b",
        choices=("grey", "hot"),
        help="volumes: how B is shown (default: hot for a PET or SPECT DICOM series, else grey)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from medfuse.clinical.reports import write_report

    metrics = tuple(name.strip() for name in args.metrics.split(",") if name.strip())
    report = write_report(
        args.a,
        args.b,
        args.out,
        fused=args.fused,
        weight_map=args.weight_map,
        rule=args.rule,
        model=args.weights,
        device=args.device,
        metrics=metrics,
        colour_b=args.colour_b,
    )
    if report.shares is not None:
        print(
            f"share of the fused foreground ({report.shares_measure}): A {report.shares[0]:.0%}, "
            f"B {report.shares[1]:.0%}"
        )
    print(f"report written to {report.out} (open it in a browser: file://{report.out.resolve()})")
