"""``medfuse batch MANIFEST.csv``: fuse many volume pairs listed in a CSV file.

Columns ``a``, ``b``, ``out`` and optionally ``window`` (a CT window name or LEVEL/WIDTH in
HU, for the input named by --window-on; empty for percentile clipping). Relative paths are
relative to the manifest's folder. A row whose output exists is skipped (outputs are written
atomically, so an existing one is complete): rerunning resumes. A failing row is reported and
the others still run. Exit status 0 if every row is done, 1 if any failed, 2 if the manifest
itself is unusable.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from medfuse.cli.common import UserError, file_error_message, torch_device
from medfuse.cli.volume import VolumeOptions, add_volume_arguments, fuse_volume_files, parse_window, volume_options
from medfuse.fusion import cached_model
from medfuse.io import remove_partial_writes
from medfuse.models import DEFAULT_MODEL
from medfuse.rules import DEFAULT_RULE, get_rule, list_rules
from medfuse.volume_io import is_volume_path

REQUIRED_COLUMNS = ("a", "b", "out")
OPTIONAL_COLUMNS = ("window",)


@dataclass(frozen=True)
class Row:
    """One manifest line: its number in the file (header = 1), inputs, output and window text."""

    line: int
    a: str
    b: str
    out: str
    window: str


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch",
        help="fuse many volume pairs listed in a CSV manifest (resumable)",
        description=__doc__.split("\n", 2)[2].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"rules: {', '.join(list_rules())}",
    )
    parser.add_argument("manifest", help="CSV file with the columns a, b, out and optionally window")
    parser.add_argument("--rule", default=DEFAULT_RULE, help=f"fusion rule (default {DEFAULT_RULE})")
    parser.add_argument("--weights", default=DEFAULT_MODEL,
                        help=f"shipped model name or safetensors path (default {DEFAULT_MODEL})")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    add_volume_arguments(parser, window=False)
    group = parser.add_argument_group(
        "scale-out with Dask (optional; without these, one process fuses row after row)",
        "Each row is one task; every worker loads the model once and keeps it. Rows whose output "
        "exists are skipped, every output is written whole or not at all, and a row whose worker dies "
        "runs again on another. Workers need the same medfuse version and the same paths to the "
        "files. With --device cuda and --scheduler, each task asks for the Dask resource GPU=1: start "
        "each worker with `dask worker ADDRESS --resources GPU=1` on a machine with one GPU per worker.")
    group.add_argument("--workers", type=int, help="start a local Dask cluster of N worker processes")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running Dask scheduler, e.g. tcp://scheduler-host:8786 (from `dask scheduler`, "
                       "or dask-jobqueue on SLURM/PBS/SGE)")
    parser.set_defaults(run=run)


def read_manifest(path: Path) -> list[Row]:
    """The rows of a manifest; UserError if it is missing, unreadable or lacks columns."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            columns = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in REQUIRED_COLUMNS if name not in columns]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)} (the header must name a, b, out "
                                "and optionally window)")
            unknown = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            if unknown:
                raise UserError(f"{path}: unknown column(s) {', '.join(unknown)} (known: a, b, out, window)")
            rows = []
            for record in reader:
                values = {key.strip(): (value or "").strip() for key, value in record.items() if key is not None}
                if not any(values.values()):
                    continue
                rows.append(Row(reader.line_num, values.get("a", ""), values.get("b", ""),
                                values.get("out", ""), values.get("window", "")))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: not a readable CSV manifest ({error})") from None
    if not rows:
        raise UserError(f"{path}: no rows to fuse")
    return rows


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


@dataclass(frozen=True)
class BatchJob:
    """What every row shares (sent to each Dask worker): the manifest's folder, the model's
    weights and device, the rule and the volume options."""

    base: Path
    weights: str
    device: str
    rule: str
    options: VolumeOptions


def fuse_row(row: Row, job: BatchJob) -> tuple[str, str]:
    """Fuse one manifest row: ``("done", "")``, ``("skipped", "")`` when its output exists, or
    ``("failed", message)``. The one per-row function, in one process or on Dask workers."""
    try:
        if not (row.a and row.b and row.out):
            raise UserError("a, b and out must all be given")
        out = _resolve(job.base, row.out)
        if out.exists():
            return "skipped", ""
        path_a, path_b = _resolve(job.base, row.a), _resolve(job.base, row.b)
        for path in (path_a, path_b):
            if not path.exists():
                raise UserError(f"{path}: no such file or folder")
            if not is_volume_path(path):
                raise UserError(f"{path}: not a volume (NIfTI or DICOM); batch fuses volumes")
        options = job.options
        row_options = VolumeOptions(parse_window(row.window), options.window_on, options.percentiles,
                                    options.resample_to, options.batch_size)
        out.parent.mkdir(parents=True, exist_ok=True)
        model = cached_model(job.weights, job.device)  # loaded once per process: each Dask worker keeps its own
        fuse_volume_files(path_a, path_b, out, model, get_rule(job.rule), job.rule, row_options, progress=False)
        return "done", ""
    except (UserError, OSError) as error:  # OSError: a folder or file that could not be written
        return "failed", file_error_message(error) if isinstance(error, OSError) else str(error)


def run(args: argparse.Namespace) -> int:
    manifest = Path(args.manifest)
    rows = read_manifest(manifest)
    options = volume_options(args)
    if args.workers is not None and args.scheduler is not None:
        raise UserError("give --workers (a local Dask cluster) or --scheduler (a running one), not both")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    try:
        get_rule(args.rule)
    except ValueError as error:
        raise UserError(str(error)) from None
    device = str(torch_device(args.device))
    try:
        cached_model(args.weights, device)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        raise UserError(f"--weights: {error}") from None
    job = BatchJob(manifest.parent.resolve(), args.weights, device, args.rule, options)
    if args.workers is None and args.scheduler is None:
        return report_rows(rows, ((row, fuse_row(row, job)) for row in rows), job.base)
    from medfuse.cli.dask_batch import dask_client, fuse_rows_on_dask

    resources = {"GPU": 1} if device.startswith("cuda") and args.scheduler is not None else None
    with dask_client(args.workers, args.scheduler) as client:
        return report_rows(rows, fuse_rows_on_dask(rows, job, client, resources), job.base)


def report_rows(rows: list[Row], outcomes: Iterable[tuple[Row, tuple[str, str]]], base: Path) -> int:
    """Count the outcomes under a progress bar, print the summary; the exit status. Once a row
    is finished, the hidden files a killed write of its output left (a Dask worker killed
    mid-row, whose row Dask ran again elsewhere; an earlier run killed) are deleted."""
    counts, failures = {"done": 0, "skipped": 0}, []
    with tqdm(total=len(rows), desc="batch", unit="pair") as bar:
        for row, (status, message) in outcomes:
            if row.out:
                remove_partial_writes(_resolve(base, row.out))
            bar.update(1)
            if status == "failed":
                failures.append((row.line, message))
                tqdm.write(f"medfuse batch: line {row.line} failed: {message}", file=sys.stderr)
            else:
                counts[status] += 1
    print(f"batch: {len(rows)} pair(s): {counts['done']} fused, {counts['skipped']} skipped (output exists), "
          f"{len(failures)} failed")
    for line, message in sorted(failures):  # Dask finishes rows in any order
        print(f"  failed line {line}: {message}")
    return 1 if failures else 0
