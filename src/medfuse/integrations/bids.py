"""BIDS derivatives from ``medfuse batch --bids-derivatives ROOT``: names, folders and JSON files.

Follows the BIDS specification 1.10 (https://bids-specification.readthedocs.io/en/v1.10.0/),
"Derivatives": the fusions form the derivative dataset ``ROOT/derivatives/medfuse`` of the raw
dataset ``ROOT``. Each row's output is named after its input A, the reference whose grid, affine
and contrast name the fusion keeps: A's folder below ``ROOT`` (``sub-XX[/ses-YY]/<datatype>``, so
``anat`` for a T1w, ``pet`` for a PET), A's entities, then ``desc-dranfusion`` (the ``desc``
entity marks a derivative that would otherwise clash with its source's name; it is the last
entity) and A's suffix: ``sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz`` fuses into
``sub-01/ses-01/anat/sub-01_ses-01_desc-dranfusion_T1w.nii.gz``. Beside each fusion a sidecar
JSON lists its ``Sources`` as BIDS URIs (``bids:raw:PATH``, with ``raw`` linked to ``../..`` in
``DatasetLinks``) and the settings the batch recorded; ``dataset_description.json`` says
``DatasetType: derivative`` and ``GeneratedBy`` medfuse, its version, rule and weights. The batch
engine's own records (``OUT.medfuse.json``) are listed in ``.bidsignore``.

Pure path and JSON logic: pybids is not needed to write a derivative dataset (the tests read one
back with it). Every user error is an :class:`~medfuse._shared.errors.InputError` raised before
any row is fused, and every file is written atomically.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from medfuse import __version__
from medfuse._shared.errors import InputError, MedfuseError, error_message
from medfuse._shared.files import inside, write_atomically, write_json_atomically
from medfuse.clinical.batch import RECORD_SUFFIX, BatchJob, Outcome, Row, row_inputs, settings_record
from medfuse.io.volumes import is_nifti_path

PIPELINE = "medfuse"
"""The derivative dataset's folder below ``ROOT/derivatives`` and the ``GeneratedBy`` name."""
DESCRIPTION_LABEL = "dranfusion"
"""The label of the ``desc`` entity of every fusion."""
BIDS_VERSION = "1.10.0"
RAW_LINK = "raw"
"""The dataset name of the raw dataset in the ``Sources`` BIDS URIs (``bids:raw:...``)."""
NIFTI_DATATYPES = ("anat", "dwi", "fmap", "func", "perf", "pet")
"""The BIDS datatype folders whose images are NIfTI files."""
DESCRIPTION_FILE = "dataset_description.json"

_NAME = re.compile(
    r"(?P<entities>sub-[A-Za-z0-9]+(?:_[A-Za-z0-9]+-[A-Za-z0-9]+)*)_(?P<suffix>[A-Za-z0-9]+)"
    r"(?P<extension>\.nii(?:\.gz)?)"
)


@dataclass(frozen=True)
class BidsName:
    """A BIDS file name taken apart: its entities as ``(key, label)`` pairs in their order, its
    suffix (``T1w``) and its extension (``.nii.gz``)."""

    entities: tuple[tuple[str, str], ...]
    suffix: str
    extension: str

    def label(self, key: str) -> str | None:
        """The label of the entity ``key`` (``sub``, ``ses``, ...), None if the name has none."""
        return dict(self.entities).get(key)

    def text(self) -> str:
        """The file name."""
        return "_".join([*(f"{key}-{label}" for key, label in self.entities), self.suffix]) + self.extension


def parse_name(name: str) -> BidsName:
    """The parts of a BIDS NIfTI file name ``sub-<label>[_<key>-<label>...]_<suffix>.nii[.gz]``;
    :class:`~medfuse._shared.errors.InputError` for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise InputError(f"{name} is not a BIDS name (sub-<label>[_<key>-<label>...]_<suffix>.nii[.gz])")
    entities = tuple(tuple(part.split("-", 1)) for part in match["entities"].split("_"))
    if len({key for key, _ in entities}) != len(entities):
        raise InputError(f"{name} is not a BIDS name (an entity appears twice)")
    return BidsName(entities, match["suffix"], match["extension"])


def fusion_name(source: BidsName) -> BidsName:
    """The name of the fusion whose reference (A) is named ``source``: its entities (less a
    ``desc``), then ``desc-dranfusion``, its suffix, ``.nii.gz``."""
    entities = tuple(entity for entity in source.entities if entity[0] != "desc")
    return BidsName((*entities, ("desc", DESCRIPTION_LABEL)), source.suffix, ".nii.gz")


def sidecar_path(image: Path) -> Path:
    """The JSON sidecar of a NIfTI image: the same name with ``.json`` for ``.nii[.gz]``."""
    return image.with_name(image.name[: image.name.lower().rindex(".nii")] + ".json")


@dataclass(frozen=True)
class DerivativePlan:
    """A batch as BIDS derivatives: the raw dataset, the derivative dataset's folder, the rows
    with their outputs named, and each row's ``Sources`` (BIDS URIs of A and B) by its line."""

    raw: Path
    root: Path
    rows: list[Row]
    sources: dict[int, tuple[str, str]]


def plan_derivatives(rows: list[Row], job: BatchJob, raw: str | os.PathLike) -> DerivativePlan:
    """Name every row's output in ``raw/derivatives/medfuse`` after its input A. Refused with an
    :class:`~medfuse._shared.errors.InputError` naming every row at fault (before any work): an
    ``out`` given (the name is derived), an input that is not a NIfTI file inside ``raw``, an A
    that is not BIDS-named in its subject's (and session's) datatype folder, a B that is not
    BIDS-named or is of another subject; also a ``raw`` that is not a BIDS dataset, and
    ``resample_to`` B (the fusion would lie on B's grid, not on that of A, whose name it takes),
    and an output that a symbolic link in the derivative dataset would lead out of it."""
    raw = Path(os.path.realpath(Path(raw).expanduser()))  # its folder's links resolved, as the inputs' are
    if not (raw / DESCRIPTION_FILE).is_file():
        raise InputError(f"{raw} is not a BIDS dataset: it has no {DESCRIPTION_FILE}")
    if job.options.resample_to == "B":
        raise InputError(
            "--bids-derivatives names each fusion after A, so it must lie on A's grid; "
            "--resample-to B would put it on B's"
        )
    root = raw / "derivatives" / PIPELINE
    planned, sources, problems = [], {}, []
    for row in rows:
        try:
            if not (row.a and row.b):
                raise InputError("a and b must both be given")
            if row.out:
                raise InputError(f"out {row.out} is given, but --bids-derivatives names the outputs; leave it empty")
            out, sources[row.line] = _derivative(*row_inputs(row, job), raw, root)
            inside(out, root)  # no link planted in the derivative dataset leads a fusion out of it
            planned.append(replace(row, out=str(out)))
        except MedfuseError as error:
            problems.append(f"line {row.line}: {error_message(error)}")
    if problems:
        raise InputError(
            f"{len(problems)} row(s) cannot be BIDS derivatives, nothing was fused: " + "; ".join(problems)
        )
    return DerivativePlan(raw, root, planned, sources)


def _derivative(a: Path, b: Path, raw: Path, root: Path) -> tuple[Path, tuple[str, str]]:
    """The fusion's path for inputs ``a`` and ``b`` and their BIDS URIs; InputError if either
    does not fit (see :func:`plan_derivatives`)."""
    inside = [_inside(path, raw) for path in (a, b)]
    name_a, name_b = parse_name(a.name), parse_name(b.name)
    folder = inside[0].parent
    expected = [f"sub-{name_a.label('sub')}", *([f"ses-{name_a.label('ses')}"] if name_a.label("ses") else [])]
    if list(folder.parts[:-1]) != expected or folder.name not in NIFTI_DATATYPES:
        raise InputError(
            f"{a} is not in its BIDS folder {'/'.join(expected)}/<datatype> "
            f"(a datatype of NIfTI images: {', '.join(NIFTI_DATATYPES)})"
        )
    if name_b.label("sub") != name_a.label("sub"):
        raise InputError(f"{b} is of subject {name_b.label('sub')}, A of subject {name_a.label('sub')}")
    uri_a, uri_b = (f"bids:{RAW_LINK}:{path.as_posix()}" for path in inside)
    return root / folder / fusion_name(name_a).text(), (uri_a, uri_b)


def _inside(path: Path, raw: Path) -> Path:
    """``path`` relative to the raw dataset ``raw``; InputError if it is not a NIfTI file in it."""
    if not is_nifti_path(path):
        raise InputError(f"{path} is not a NIfTI volume (.nii or .nii.gz); BIDS derivatives are made of NIfTI files")
    path = Path(os.path.realpath(path.parent)) / path.name  # the file's own link kept: datalad's point into its annex
    if not path.is_relative_to(raw):
        raise InputError(f"{path} is not inside the BIDS dataset {raw}")
    return path.relative_to(raw)


def generator(job: BatchJob) -> dict[str, str]:
    """The ``GeneratedBy`` entry of the derivative dataset: medfuse, its version, and the rule
    and weights (SHA-256) that every fusion in it was made with."""
    from medfuse.dran.models import weights_digest

    return {
        "Name": PIPELINE,
        "Version": __version__,
        "Description": f"DRAN fusion (medfuse batch) with the rule {job.rule} and the weights of SHA-256 "
        f"{weights_digest(job.weights)}",
    }


def dataset_description(job: BatchJob) -> dict[str, object]:
    """The derivative dataset's ``dataset_description.json`` (BIDS 1.10, "Derived dataset and
    pipeline description")."""
    return {
        "Name": "medfuse DRAN fusions",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generator(job)],
        "DatasetLinks": {RAW_LINK: "../.."},
    }


def start_derivatives(plan: DerivativePlan, job: BatchJob) -> None:
    """Write the derivative dataset's ``dataset_description.json`` and ``.bidsignore`` if they
    are missing; refuse (InputError) a dataset that exists but is not medfuse's, or was made
    with another rule or other weights, so that one dataset never mixes fusions of two kinds."""
    plan.root.mkdir(parents=True, exist_ok=True)
    path, wanted = plan.root / DESCRIPTION_FILE, generator(job)
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
            made = [entry for entry in existing.get("GeneratedBy", []) if entry.get("Name") == PIPELINE]
        except (OSError, ValueError, AttributeError):
            raise InputError(
                f"{path} is not a readable dataset description; give --bids-derivatives another dataset or delete it"
            ) from None
        if existing.get("DatasetType") != "derivative" or not made:
            raise InputError(f"{path} does not describe a medfuse derivative dataset")
        if made[0].get("Description") != wanted["Description"]:
            raise InputError(
                f"{path} holds fusions made otherwise ({made[0].get('Description')!r}), this run's "
                f"would be {wanted['Description']!r}; use the same rule and weights or another dataset"
            )
    else:
        write_json_atomically(path, dataset_description(job))
    ignore = plan.root / ".bidsignore"
    if not ignore.exists():
        write_atomically(ignore, lambda temporary: temporary.write_text(f"*{RECORD_SUFFIX}\n", encoding="utf-8"))


def sidecar(row: Row, job: BatchJob, sources: tuple[str, str]) -> dict[str, object]:
    """The JSON sidecar of a row's fusion: what it is, its ``Sources`` (A, then B, as BIDS URIs),
    the medfuse version that made it, the weights' name or path, and the batch's settings record
    (:func:`medfuse.clinical.batch.settings_record`, less its inputs, which ``Sources`` names) with
    its keys in BIDS's CamelCase."""
    record = {
        "".join(word.capitalize() for word in key.split("_")): value
        for key, value in settings_record(row, job).items()
        if key != "inputs"
    }
    return {
        "Description": "DRAN fusion of the two Sources on the grid of the first, with its affine",
        "Sources": list(sources),
        "MedfuseVersion": __version__,
        "Weights": str(job.weights),
        **record,
    }


def with_sidecars(
    outcomes: Iterable[tuple[Row, Outcome]], plan: DerivativePlan, job: BatchJob
) -> Iterator[tuple[Row, Outcome]]:
    """Pass on each row's outcome, writing the sidecar of every row fused, and of a skipped row
    that lacks one (a run stopped between the two; a skipped row was made from the same inputs
    and settings: :func:`medfuse.clinical.batch.fuse_row`). A sidecar that cannot be written
    fails its row."""
    for row, (status, message) in outcomes:
        path = sidecar_path(Path(row.out))
        if status == "done" or (status == "skipped" and not path.exists()):
            try:
                inside(path, plan.root)
                write_json_atomically(path, sidecar(row, job, plan.sources[row.line]))
            except MedfuseError as error:
                status, message = "failed", error_message(error)
        yield row, (status, message)
