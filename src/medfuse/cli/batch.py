"""``medfuse batch MANIFEST.csv``: fuse many volume pairs listed in a CSV file.

Columns ``a``, ``b``, ``out`` and optionally ``window`` (a CT window name or LEVEL/WIDTH in
HU, for the input named by --window-on; empty for percentile clipping). Relative paths are
relative to the manifest's folder. A row whose output exists is skipped (outputs are written
atomically, so an existing one is complete): rerunning resumes. A failing row is reported and
the others still run. Exit status 0 if every row is done, 1 if any failed, 2 if the manifest
itself is unusable.

With --bids-derivatives ROOT (a BIDS dataset), the column out is left out: each fusion is named
after its A and written into the derivative dataset ROOT/derivatives/medfuse, for example
sub-01/anat/sub-01_T1w.nii.gz fuses into sub-01/anat/sub-01_desc-dranfusion_T1w.nii.gz there,
with a JSON sidecar listing its sources.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from medfuse._shared.errors import InputError
from medfuse.cli import deferred_epilog
from medfuse.cli.common import add_model_arguments, add_volume_arguments, rules_epilog, show_progress, volume_options

if TYPE_CHECKING:
    from medfuse.clinical.batch import BatchJob, Outcome, Row
    from medfuse.integrations.bids import DerivativePlan


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser(
        "batch",
        help=summary,
        description=__doc__.split("\n", 2)[2].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=deferred_epilog(rules_epilog),
    )
    parser.add_argument(
        "manifest", help="CSV file with the columns a, b, out (none with --bids-derivatives) and optionally window"
    )
    parser.add_argument(
        "--bids-derivatives",
        metavar="ROOT",
        help="write BIDS derivatives of the BIDS dataset ROOT (its NIfTI files, BIDS-named) into "
        "ROOT/derivatives/medfuse: each fusion named after A "
        "(sub-XX[_ses-YY]_..._desc-dranfusion_<A's suffix>.nii.gz in A's datatype folder) with a "
        "JSON sidecar of its Sources and settings, and a dataset_description.json; the manifest "
        "then has no out column. Default: the outputs the manifest names",
    )
    add_model_arguments(parser)
    add_volume_arguments(parser, window=False)
    group = parser.add_argument_group(
        "scale-out with Dask (optional; without these, one process fuses row after row)",
        "Each row is one task; every worker loads the model once and keeps it. Rows whose output "
        "exists are skipped, every output is written whole or not at all, and a row whose worker dies "
        "runs again on another. Workers need the same medfuse version and the same paths to the "
        "files. With --device cuda and --scheduler, each task asks for the Dask resource GPU=1: start "
        "each worker with `dask worker ADDRESS --resources GPU=1` on a machine with one GPU per worker.",
    )
    group.add_argument("--workers", type=int, help="start a local Dask cluster of N worker processes")
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use a running Dask scheduler, e.g. tcp://scheduler-host:8786 (from `dask scheduler`, "
        "or dask-jobqueue on SLURM/PBS/SGE)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from medfuse.clinical.batch import BatchJob, check_rows, fuse_rows, read_manifest
    from medfuse.clinical.pipeline import load_fusion

    manifest = Path(args.manifest)
    rows = read_manifest(manifest, outputs=args.bids_derivatives is None)
    options = volume_options(args)
    if args.workers is not None and args.scheduler is not None:
        raise InputError("give --workers (a local Dask cluster) or --scheduler (a running one), not both")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    model, _ = load_fusion(args.weights, args.rule, args.device)  # refuse a bad rule, device or weights at once
    device = str(next(model.parameters()).device)
    job = BatchJob(manifest.parent.resolve(), args.weights, device, args.rule, options, args.batch_size)
    plan = None
    if args.bids_derivatives is not None:
        from medfuse.integrations.bids import plan_derivatives, start_derivatives

        plan = plan_derivatives(rows, job, args.bids_derivatives)
        rows = plan.rows
        job = replace(job, output_root=plan.root)
    check_rows(rows, job)
    if plan is not None:
        start_derivatives(plan, job)
    if args.workers is None and args.scheduler is None:
        return report_rows(rows, _finished(fuse_rows(rows, job), plan, job), show_progress(args))
    from medfuse.scaleout.cluster import dask_client, fuse_rows_on_dask

    with dask_client(args.workers, args.scheduler) as client:
        outcomes = fuse_rows(rows, job, lambda rows, job: fuse_rows_on_dask(rows, job, client))
        return report_rows(rows, _finished(outcomes, plan, job), show_progress(args))


def _finished(
    outcomes: Iterable[tuple[Row, Outcome]], plan: DerivativePlan | None, job: BatchJob
) -> Iterable[tuple[Row, Outcome]]:
    """The outcomes, with each fused row's BIDS sidecar written on the way when there is a ``plan``."""
    if plan is None:
        return outcomes
    from medfuse.integrations.bids import with_sidecars

    return with_sidecars(outcomes, plan, job)


def report_rows(rows: list[Row], outcomes: Iterable[tuple[Row, Outcome]], progress: bool = True) -> int:
    """Count the outcomes under a progress bar (if ``progress``), print the summary; the exit status."""
    from tqdm import tqdm

    counts, failures = {"done": 0, "skipped": 0}, []
    with tqdm(total=len(rows), desc="batch", unit="pair", disable=not progress) as bar:
        for row, (status, message) in outcomes:
            bar.update(1)
            if status == "failed":
                failures.append((row.line, message))
                tqdm.write(f"medfuse batch: line {row.line} failed: {message}", file=sys.stderr)
            else:
                counts[status] += 1
    print(
        f"batch: {len(rows)} pair(s): {counts['done']} fused, {counts['skipped']} skipped (output exists), "
        f"{len(failures)} failed"
    )
    for line, message in sorted(failures):  # Dask finishes rows in any order
        print(f"  failed line {line}: {message}")
    return 1 if failures else 0
