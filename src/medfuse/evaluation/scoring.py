"""Score fused images against their sources: one triple, or folders matched by file name.

The API behind ``medfuse evaluate``; the command line only parses and prints.
"""

from __future__ import annotations

import csv
import io as text_io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medfuse._shared.checks import check_exists
from medfuse._shared.errors import InputError
from medfuse._shared.files import write_atomically
from medfuse.evaluation.metrics import METRICS, score
from medfuse.io.images import ImageFileError, images_by_stem, load_image


@dataclass
class Evaluation:
    """Scores per image (name -> metric -> value) and every image skipped, with why
    (``problems``); ``failures`` are those of them that could not be read or scored (a file
    without partners is a problem, not a failure)."""

    metrics: list[str]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per metric: the mean and population standard deviation over the scored images whose
        value is finite, and how many were infinite (a PSNR of a fused image equal to a source):
        an infinite value is reported as such per image but does not make the mean infinite."""
        result = {}
        for name in self.metrics:
            values = [row[name] for row in self.scores.values()]
            mean, std = mean_and_std(values)
            result[name] = {"mean": mean, "std": std, "infinite": sum(1 for value in values if np.isinf(value))}
        return result

    def fail(self, message: str) -> None:
        """Record an image that could not be read or scored."""
        self.problems.append(message)
        self.failures.append(message)


def mean_and_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population standard deviation of the finite ``values`` (an infinite one, e.g. the
    PSNR of a copy, is left out, as is NaN); NaN for none."""
    array = np.array(list(values), dtype=float)
    array = array[np.isfinite(array)]
    if not array.size:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std())


def check_metric_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise InputError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if not names:
        raise InputError("no metrics chosen")
    return names


def score_triple(fused: np.ndarray, a: np.ndarray, b: np.ndarray, metrics: Iterable[str]) -> dict[str, float]:
    """Every metric in ``metrics`` of one fused image against its sources."""
    return {name: score(name, fused, a, b) for name in check_metric_names(metrics)}


def match_folders(fused: Path, a: Path, b: Path) -> tuple[list[tuple[str, Path, Path, Path]], list[str]]:
    """Triples of files sharing a name (ignoring the suffix) and a note for every image
    that lacks a partner: a fused image without both sources, a source without a fused image."""
    files_f, files_a, files_b = (images_by_stem(folder) for folder in (fused, a, b))
    triples, problems = [], []
    for name, path in files_f.items():
        missing = [str(folder) for folder, files in ((a, files_a), (b, files_b)) if name not in files]
        if missing:
            problems.append(f"{path.name}: no source of the same name in {' and '.join(missing)}")
        else:
            triples.append((name, path, files_a[name], files_b[name]))
    for files in (files_a, files_b):
        for name, path in files.items():
            if name not in files_f:
                problems.append(f"{path}: no fused image of the same name in {fused}")
    return triples, problems


def evaluate_files(triples: Iterable[tuple[str, Path, Path, Path]], metrics: Iterable[str]) -> Evaluation:
    """Score each (name, fused, a, b) file triple (any iterable: wrap it in a progress bar
    to show progress); unreadable, mismatched or unscorable images (too small for a metric,
    say) are recorded as problems by name and skipped."""
    evaluation = Evaluation(check_metric_names(metrics))
    for name, path_f, path_a, path_b in triples:
        try:
            images = [load_image(p) for p in (path_f, path_a, path_b)]
        except ImageFileError as error:
            evaluation.fail(str(error))
            continue
        sizes = [image.shape[:2] for image in images]
        if len(set(sizes)) > 1:
            evaluation.fail(f"{name}: sizes differ (fused {sizes[0]}, a {sizes[1]}, b {sizes[2]})")
            continue
        try:
            image_f, image_a, image_b = images
            evaluation.scores[name] = score_triple(image_f, image_a, image_b, evaluation.metrics)
        except ValueError as error:
            evaluation.fail(f"{name}: cannot be scored ({error})")
    return evaluation


def evaluate_paths(
    fused: str | os.PathLike,
    a: str | os.PathLike,
    b: str | os.PathLike,
    metrics: Iterable[str],
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Evaluation:
    """Score a fused image against its sources, or every image of a folder of fused images
    against two source folders (matched by file name), as ``medfuse evaluate`` does.
    ``progress`` wraps the folder's triples (e.g. in a progress bar). Files without partners and
    images that cannot be scored are listed in ``problems``; InputError if nothing is scored."""
    paths = check_exists(fused, a, b)
    metrics = check_metric_names(metrics)
    if all(path.is_dir() for path in paths):
        triples, problems = match_folders(*paths)
        if not triples:
            raise InputError(f"no fused image in {paths[0]} has sources of the same name in {paths[1]} and {paths[2]}")
        evaluation = evaluate_files(progress(triples) if progress else triples, metrics)
        evaluation.problems[:0] = problems
    elif not any(path.is_dir() for path in paths):
        evaluation = evaluate_files([(paths[0].stem, paths[0], paths[1], paths[2])], metrics)
    else:
        raise InputError("FUSED, A and B must be three files or three folders")
    if not evaluation.scores:
        raise InputError("nothing could be scored: " + "; ".join(evaluation.problems))
    return evaluation


def _write_text(path: str | os.PathLike, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def summary_path(path: str | os.PathLike) -> Path:
    """Where :func:`write_csv` puts the summary of the scores it writes to ``path``:
    ``NAME.summary.csv`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.name.removesuffix(path.suffix)}.summary{path.suffix or '.csv'}")


def write_csv(evaluation: Evaluation, path: str | os.PathLike) -> Path:
    """One row per image (``image, METRIC...``) at ``path``, nothing else, so that every row is an
    image; the summary, one row per metric (``metric, mean, std, infinite``), at
    :func:`summary_path`. Returns the summary's path."""
    buffer = text_io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", *evaluation.metrics])
    for name, row in evaluation.scores.items():
        writer.writerow([name, *(repr(row[m]) for m in evaluation.metrics)])
    summary_buffer = text_io.StringIO()
    summary_writer = csv.writer(summary_buffer)
    summary_writer.writerow(["metric", "mean", "std", "infinite"])
    for metric, values in evaluation.summary().items():
        summary_writer.writerow([metric, repr(values["mean"]), repr(values["std"]), values["infinite"]])
    _write_text(path, buffer.getvalue())
    _write_text(summary_path(path), summary_buffer.getvalue())
    return summary_path(path)


def write_json(evaluation: Evaluation, path: str | os.PathLike) -> None:
    """``{"metrics", "images", "summary", "problems"}``, standard JSON: a value that is not
    finite (PSNR of a fused image equal to a source is infinite) is written as null."""

    def finite(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
        return {
            key: {name: value if np.isfinite(value) else None for name, value in row.items()}
            for key, row in table.items()
        }

    payload = {
        "metrics": evaluation.metrics,
        "images": finite(evaluation.scores),
        "summary": finite(evaluation.summary()),
        "problems": evaluation.problems,
    }
    _write_text(path, json.dumps(payload, indent=1, allow_nan=False))
