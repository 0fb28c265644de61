"""Many volume pairs from a CSV manifest: the row engine of ``medfuse batch``.

A manifest has the columns ``a``, ``b``, ``out`` and optionally ``window`` (a CT window name
or LEVEL/WIDTH in HU for the input that :attr:`VolumeOptions.window_on` names; empty for
percentile clipping). Relative paths are relative to the manifest's folder. :func:`fuse_row`
fuses one row and never raises for the row's own faults: it returns ``("done", "")``,
``("skipped", "")`` when the output exists and was made with the same settings (outputs are
written whole, so an existing one is complete and a rerun resumes; each output's settings are
recorded beside it in ``OUT.medfuse.json``, :func:`settings_record`), or ``("failed",
message)``, also for an output made with other settings or without a record: a rerun with
another rule or window never passes an old result off as its own. The same function runs row after
row in one process (:func:`fuse_rows`) or as one task per row on a cluster
(:mod:`medfuse.scaleout.cluster`).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from medfuse._shared.errors import InputError, MedfuseError, MissingInputError, error_message
from medfuse._shared.files import (
    inside,
    make_folders,
    output_lock,
    remove_partial_writes,
    write_json_atomically,
    written_together,
)
from medfuse.clinical.intensity import CtWindow
from medfuse.clinical.pipeline import VolumeOptions, fuse_files
from medfuse.fusion.memory import check_batch_size
from medfuse.io.volumes import is_nifti_path, is_volume_path

REQUIRED_COLUMNS = ("a", "b", "out")
OPTIONAL_COLUMNS = ("window",)

Outcome = tuple[str, str]
"""``(status, message)``: status "done", "skipped" or "failed"; the message says why a row failed."""


@dataclass(frozen=True)
class Row:
    """One manifest line: its number in the file (header = 1), inputs, output and window text."""

    line: int
    a: str
    b: str
    out: str
    window: str


@dataclass(frozen=True)
class BatchJob:
    """What every row shares (sent to each cluster worker): the manifest's folder, the model's
    weights and device, the rule, the volume options, the slices per network batch and, when
    the outputs are named by other means (``--bids-derivatives``), the folder they must lie in."""

    base: Path
    weights: str
    device: str
    rule: str
    options: VolumeOptions
    batch_size: int | None = None
    output_root: Path | None = None

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)


def read_manifest(path: str | os.PathLike, outputs: bool = True) -> list[Row]:
    """The rows of a manifest; :class:`~medfuse._shared.errors.MissingInputError` if it is
    missing, :class:`~medfuse._shared.errors.InputError` if it is unreadable, lacks a column or
    has no rows. With ``outputs=False`` (outputs named by other means, as ``--bids-derivatives``
    names them) the column ``out`` may be left out."""
    path = Path(path)
    required = REQUIRED_COLUMNS if outputs else tuple(name for name in REQUIRED_COLUMNS if name != "out")
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            columns = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in required if name not in columns]
            if missing:
                raise InputError(
                    f"{path}: missing column(s) {', '.join(missing)} (the header must name "
                    f"{', '.join(required)} and optionally {', '.join(OPTIONAL_COLUMNS)})"
                )
            unknown = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            if unknown:
                raise InputError(f"{path}: unknown column(s) {', '.join(unknown)} (known: a, b, out, window)")
            rows = []
            for record in reader:
                if None in record and any(value.strip() for value in record[None]):
                    raise InputError(
                        f"{path}: line {reader.line_num} has {len(columns) + len(record[None])} "
                        f"fields, the header {len(columns)} ({', '.join(columns)}); quote a value "
                        "that holds a comma"
                    )
                values = {key.strip(): (value or "").strip() for key, value in record.items() if key is not None}
                if not any(values.values()):
                    continue
                rows.append(
                    Row(
                        reader.line_num,
                        values.get("a", ""),
                        values.get("b", ""),
                        values.get("out", ""),
                        values.get("window", ""),
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: not a readable CSV manifest ({error})") from None
    if not rows:
        raise InputError(f"{path}: no rows to fuse")
    return rows


def check_rows(rows: list[Row], job: BatchJob) -> None:
    """Refuse, before any work, rows whose results would be lost or would destroy an input: two
    rows with one output, an output that is one of its row's inputs, a NIfTI output that is a
    folder. :class:`~medfuse._shared.errors.InputError` naming every such row by its line."""
    problems: list[str] = []
    first_line: dict[Path, int] = {}
    for row in rows:
        if not row.out:
            continue
        out = row_output(row, job).resolve()
        if out in first_line:
            problems.append(f"line {row.line} writes {row.out} as line {first_line[out]} does")
        first_line.setdefault(out, row.line)
        if any(text and path.resolve() == out for text, path in zip((row.a, row.b), row_inputs(row, job))):
            problems.append(f"line {row.line}: out {row.out} is one of its inputs")
        elif is_nifti_path(out) and out.is_dir():
            problems.append(f"line {row.line}: out {row.out} is a folder; give a .nii or .nii.gz file name")
    if problems:
        raise InputError(f"{len(problems)} row(s) would lose work, nothing was fused: " + "; ".join(problems))


def row_output(row: Row, job: BatchJob) -> Path:
    """Where ``row`` writes its result."""
    return _resolve(job.base, row.out)


def row_inputs(row: Row, job: BatchJob) -> tuple[Path, Path]:
    """The paths of ``row``'s inputs A and B."""
    return _resolve(job.base, row.a), _resolve(job.base, row.b)


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def contained_output(row: Row, job: BatchJob) -> Path:
    """``row``'s output, checked to lie where it was asked for, links resolved: in the job's
    ``output_root`` if it has one, else, for an ``out`` relative to the manifest that stays in
    its folder (no leading ``..``), in that folder; :class:`~medfuse._shared.errors.OutputError`
    if a symbolic link leads it out. An absolute ``out`` (or one that climbs out with ``..``)
    goes where it says."""
    out = row_output(row, job)
    if job.output_root is not None:
        inside(out, job.output_root)
    elif not Path(row.out).expanduser().is_absolute() and not os.path.normpath(row.out).startswith(".."):
        inside(out, job.base, f"out {row.out} of line {row.line}")
    return out


RECORD_SUFFIX = ".medfuse.json"


def record_path(out: Path) -> Path:
    """Where the settings of the output ``out`` are recorded: ``OUT.medfuse.json`` beside it."""
    return out.with_name(out.name + RECORD_SUFFIX)


def settings_record(row: Row, job: BatchJob) -> dict[str, object]:
    """What makes a row's output what it is: its inputs (as the manifest names them, normalised),
    the rule, the weights (their SHA-256), the row's window and the volume options."""
    from medfuse.dran.models import weights_digest

    options = job.options
    return {
        "inputs": [os.path.normpath(row.a), os.path.normpath(row.b)],
        "rule": job.rule,
        "weights_sha256": weights_digest(job.weights),
        "window": row.window,
        "window_on": options.window_on,
        "percentiles": list(options.percentiles),
        "resample_to": options.resample_to,
        "force_window": options.force_window,
    }


def _existing_outcome(out: Path, settings: dict[str, object]) -> Outcome:
    """The outcome for an output that exists: skipped if its record holds ``settings``."""
    try:
        recorded = json.loads(record_path(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "failed", (
            f"{out} exists without a readable record of its settings ({record_path(out).name}); "
            "delete it to fuse it again"
        )
    changed = [
        f"{key} {recorded.get(key)!r} there, {value!r} now"
        for key, value in settings.items()
        if recorded.get(key) != value and not (key == "inputs" and key not in recorded)
    ]  # older records
    if changed:
        return "failed", (
            f"{out} was made with other settings ({'; '.join(changed)}); delete it and "
            f"{record_path(out).name} to fuse it again with these"
        )
    return "skipped", ""


def fuse_row(row: Row, job: BatchJob) -> Outcome:
    """Fuse one manifest row; its outcome (see the module's docstring). The row holds its
    output's lock (:func:`~medfuse._shared.files.output_lock`) from the first look at the output
    to the last write, so a second run of the same manifest finds the row taken ("failed", one
    line) rather than mixing its record with this run's; a row that fails leaves neither its
    record nor the folders it made. Each process loads the model once and keeps it
    (:func:`medfuse.fusion.engine.cached_model`)."""
    try:
        if not (row.a and row.b and row.out):
            raise InputError("a, b and out must all be given")
        out = contained_output(row, job)
        settings = settings_record(row, job)
        path_a, path_b = row_inputs(row, job)
        for path in (path_a, path_b):
            if path.exists() and not is_volume_path(path):
                raise InputError(f"{path}: not a volume (NIfTI or DICOM); batch fuses volumes")
        window = CtWindow.parse(row.window) if row.window else None
        with written_together():
            make_folders(out.parent)
            with output_lock(out):
                if out.exists() or out.is_symlink():
                    return _existing_outcome(out, settings)
                # the record first: a row killed after its output is written then still resumes (a
                # record without its output is harmless: only an existing output is skipped)
                write_json_atomically(record_path(out), settings)
                fuse_files(
                    path_a,
                    path_b,
                    out,
                    rule=job.rule,
                    model=job.weights,
                    device=job.device,
                    volume=replace(job.options, window=window),
                    batch_size=job.batch_size,
                )
        return "done", ""
    except (MedfuseError, OSError) as error:  # OSError: a folder or file that could not be written
        return "failed", error_message(error)


RowRunner = Callable[[list[Row], BatchJob], Iterable[tuple[Row, Outcome]]]
"""Runs :func:`fuse_row` over rows and yields ``(row, outcome)`` as each finishes, in any order."""


def run_serially(rows: list[Row], job: BatchJob) -> Iterator[tuple[Row, Outcome]]:
    """Row after row in this process."""
    return ((row, fuse_row(row, job)) for row in rows)


def fuse_rows(rows: list[Row], job: BatchJob, runner: RowRunner = run_serially) -> Iterator[tuple[Row, Outcome]]:
    """``(row, outcome)`` for every row as ``runner`` finishes it. Once a row is finished, the
    hidden files that a killed write of its output left (a worker killed mid-row whose row ran
    again elsewhere, an earlier run killed) are deleted."""
    for row, outcome in runner(rows, job):
        if row.out:
            remove_partial_writes(row_output(row, job))
        yield row, outcome
