"""Methods x image pairs x metrics on a paired dataset folder: scores, ranks, tables, figures.

The API behind ``medfuse benchmark``. A dataset folder holds two modality folders of
registered images paired by file name (the layout of the Havard set: ``CT-MRI/test/MRI``
and ``CT-MRI/test/CT``). Fused images are cached in ``OUT/fused/METHOD/``, beside a note
of what made them, so that a rerun of the same methods only scores.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import io as text_io
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import rankdata

from medfuse._shared.checks import check_output_folder
from medfuse._shared.errors import InputError, MedfuseError, OutputError
from medfuse._shared.files import file_digest, output_locks, write_atomically
from medfuse.dran import DEFAULT_MODEL
from medfuse.evaluation import MONTAGE_PAIRS, RANKED_METRICS
from medfuse.evaluation.metrics import METRICS, score
from medfuse.evaluation.scoring import check_metric_names, mean_and_std
from medfuse.image.composition import Method
from medfuse.image.scales import to_unit
from medfuse.io.images import ImageFileError, check_writable, images_by_stem, load_image, save_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IDENTITY_FILE = "method.json"


@dataclass
class Dataset:
    """Pairs ``(name, path_a, path_b)`` of two modality folders, and the unpaired files."""

    modality_a: str
    modality_b: str
    pairs: list[tuple[str, Path, Path]]
    unpaired: list[Path] = field(default_factory=list)


def find_pairs(folder: str | os.PathLike, modality_a: str | None = None, modality_b: str | None = None) -> Dataset:
    """The pairs of a dataset folder with two modality subfolders. Without names given, a
    folder called MRI comes first and the other second; any other two come in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"{folder}: no such folder")
    if modality_a is not None and modality_a == modality_b:
        raise ImageFileError(f"--a and --b both name {modality_a}; give two different modality folders")
    if modality_a is None or modality_b is None:
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        given = [m for m in (modality_a, modality_b) if m is not None]
        others = [s for s in subfolders if s not in given]
        if len(subfolders) != 2 and not (given and len(others) == 1):
            raise ImageFileError(
                f"{folder}: expected two modality folders, found {len(subfolders)} "
                f"({', '.join(subfolders) or 'none'}); name them with --a and --b"
            )
        if not given:
            others.sort(key=lambda name: (name.upper() != "MRI", name))
        modality_a = modality_a or others.pop(0)
        modality_b = modality_b or others.pop(0)
    files = []
    for modality in (modality_a, modality_b):
        if not (folder / modality).is_dir():
            raise ImageFileError(f"{folder}: no modality folder {modality}")
        files.append(images_by_stem(folder / modality))
    names = sorted(files[0].keys() & files[1].keys())
    if not names:
        raise ImageFileError(f"{folder}: no images of the same name in {modality_a} and {modality_b}")
    unpaired = [g[n] for f, g in (files, files[::-1]) for n in sorted(g.keys() - f.keys())]
    return Dataset(modality_a, modality_b, [(n, files[0][n], files[1][n]) for n in names], unpaired)


def mean_ranks(means: Mapping[str, Mapping[str, float]], metrics: Iterable[str]) -> dict[str, float]:
    """The mean over ``metrics`` of every method's rank (1 = best) by its mean score.

    ``means`` maps method -> metric -> mean. Ties share their average rank; a NaN mean
    ranks last. Direction follows each metric (lower is better for nabf and qcv).
    """
    methods, metrics = list(means), list(metrics)
    if not methods or not metrics:
        raise ValueError("mean ranks need at least one method and one metric")
    ranks = np.zeros(len(methods))
    for metric in metrics:
        values = np.array([means[m][metric] for m in methods], dtype=float)
        sign = -1.0 if METRICS[metric].higher_is_better else 1.0
        ranks += rankdata(np.where(np.isnan(values), np.inf, sign * values))
    return {method: float(rank / len(metrics)) for method, rank in zip(methods, ranks)}


@dataclass
class BenchmarkResult:
    """Scores method -> pair -> metric, in the order the methods and metrics were given."""

    methods: list[str]
    metrics: list[str]
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Mean and population standard deviation of each metric, per method."""
        return {
            method: {
                metric: mean_and_std(row[metric] for row in self.scores[method].values()) for metric in self.metrics
            }
            for method in self.methods
        }

    def mean_ranks(self, metrics: Iterable[str] | None = None) -> dict[str, float]:
        """Mean rank of every method over ``metrics`` (default: the ranked metrics measured)."""
        if metrics is None:
            metrics = [m for m in self.metrics if m in RANKED_METRICS] or self.metrics
        means = {method: {m: mean for m, (mean, _) in row.items()} for method, row in self.summary().items()}
        return mean_ranks(means, metrics)


FEW_PAIRS = 10
"""A ranking on fewer pairs than this carries a caution (in table.md and on the command line)."""


def few_pairs_caution(pairs: int) -> str:
    """The caution for a ranking on only ``pairs`` pairs."""
    return (
        f"Caution: ranked on {pairs} pair{'s' if pairs != 1 else ''} only (fewer than {FEW_PAIRS}): the "
        "ranks may change with more pairs, and metrics that average over both sources can be won by copying "
        "one; look at montage.png."
    )


def method_identity(name: str, function: object, weights: str | os.PathLike | None = None) -> str:
    """What made a method's cached images: its name, the SHA-256 of the source of its rule
    or baseline ``function`` (of its ``weights`` function, and ``blend`` for a source fusion,
    for the rules that blend the sources) and of its weights file (if any). Changes elsewhere
    (helpers the function calls) are not seen: delete ``OUT/fused/METHOD`` to fuse again after them."""
    parts = [getattr(function, part) for part in ("weights", "blend") if hasattr(function, part)] or [function]
    try:
        source = "".join(inspect.getsource(part) for part in parts)
    except (OSError, TypeError):
        source = getattr(function, "__qualname__", repr(function))
    identity = f"{name} code-sha256={hashlib.sha256(source.encode()).hexdigest()}"
    if weights is not None:
        identity += f" weights-sha256={file_digest(weights)}"
    return identity


def sources_digest(path_a: Path, path_b: Path) -> str:
    """SHA-256 of the two source files, in order: what a cached fused image was made from."""
    digest = hashlib.sha256(path_a.read_bytes())
    digest.update(b"\0")
    digest.update(path_b.read_bytes())
    return digest.hexdigest()


class _Cache:
    """OUT/fused/METHOD: fused images and a note of the identity that made them and of the
    sources of every pair. Images of another identity are deleted; an image whose sources
    changed (other dataset, swapped modalities, edited file) is made again."""

    def __init__(self, out: Path, method: str, identity: str) -> None:
        self.folder = out / "fused" / method
        self.folder.mkdir(parents=True, exist_ok=True)
        self.note = self.folder / IDENTITY_FILE
        self.identity = identity
        try:
            recorded = json.loads(self.note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
        if not isinstance(recorded, dict) or recorded.get("identity") != identity:
            for path in images_by_stem(self.folder).values():
                path.unlink()
            recorded = {}
        self.sources: dict[str, str] = dict(recorded.get("sources", {}))
        self.images = images_by_stem(self.folder)

    def get(self, pair: str, digest: str) -> Path | None:
        """The cached image of ``pair`` if it was made from sources with ``digest``."""
        return self.images.get(pair) if self.sources.get(pair) == digest else None

    def put(self, pair: str, digest: str, image: np.ndarray) -> None:
        if pair in self.images:
            self.images.pop(pair).unlink()
        target = self.folder / f"{pair}.png"
        try:
            check_writable(target, image)
        except ImageFileError:
            target = target.with_suffix(".tif")
        self.images[pair] = save_image(target, image)
        self.sources[pair] = digest

    def save(self) -> None:
        text = json.dumps({"identity": self.identity, "sources": self.sources}, indent=1) + "\n"
        write_atomically(self.note, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def check_sizes(dataset: Dataset, external: Mapping[str, Mapping[str, Path]]) -> None:
    """ImageFileError naming the first pair whose sources, or whose image of an external
    method, differ in size (read before anything is fused or written)."""
    for pair, path_a, path_b in dataset.pairs:
        size = load_image(path_a).shape[:2]
        others = [(path_b, load_image(path_b).shape[:2])]
        others += [(files[pair], load_image(files[pair]).shape[:2]) for files in external.values()]
        for path, other in others:
            if other != size:
                raise ImageFileError(
                    f"pair {pair}: {path} is {other[1]}x{other[0]} but {path_a} is "
                    f"{size[1]}x{size[0]}; every image of a pair must have one size"
                )


def run_benchmark(
    dataset: Dataset,
    methods: Mapping[str, Method | str | os.PathLike],
    metrics: Iterable[str],
    out: str | os.PathLike,
    identities: Mapping[str, str] | None = None,
    progress: Callable[[Iterable], Iterable] = iter,
) -> BenchmarkResult:
    """Fuse every pair with every method and score the results.

    ``methods`` maps a name to a method function, or to a folder of images fused elsewhere
    (found by the pair's name). Fused images of method functions are cached in
    ``OUT/fused/NAME/`` under ``identities[NAME]`` (default the name) and the digest of the
    pair's sources: a rerun with the same identity and sources reads them instead of
    fusing. Sizes are checked first (:func:`check_sizes`). ``progress`` wraps the loop over
    pairs (e.g. ``tqdm``).
    """
    out, metrics = Path(out), list(metrics)
    identities = identities or {}
    external = {}
    for name, method in methods.items():
        if isinstance(method, (str, os.PathLike)):
            external[name] = images_by_stem(method)
            missing = [pair for pair, _, _ in dataset.pairs if pair not in external[name]]
            if missing:
                raise ImageFileError(
                    f"method {name}: {method} has no fused image for {len(missing)} pair(s), "
                    f"e.g. {', '.join(missing[:3])}"
                )
    check_sizes(dataset, external)
    out.mkdir(exist_ok=True)
    caches = {name: _Cache(out, name, identities.get(name, name)) for name in methods if name not in external}
    result = BenchmarkResult(list(methods), metrics, {name: {} for name in methods})
    try:
        for pair, path_a, path_b in progress(dataset.pairs):
            image_a, image_b = load_image(path_a), load_image(path_b)
            digest = sources_digest(path_a, path_b)
            for name, method in methods.items():
                cached = external[name][pair] if name in external else caches[name].get(pair, digest)
                try:
                    if cached is not None:
                        fused = load_image(cached)
                    else:
                        assert callable(method)  # a folder of images fused elsewhere has them all (checked above)
                        fused = method(image_a, image_b)
                        caches[name].put(pair, digest, fused)
                    result.scores[name][pair] = {metric: score(metric, fused, image_a, image_b) for metric in metrics}
                except ImageFileError:
                    raise
                except ValueError as error:  # e.g. an image too small for a method or a metric
                    raise ImageFileError(f"pair {pair}, method {name}: {error}") from None
    finally:
        for cache in caches.values():
            cache.save()
    return result


def markdown_table(result: BenchmarkResult) -> str:
    """Mean ± standard deviation of every metric per method, best mean in bold, methods
    ordered by mean rank (its column last)."""
    summary, ranks = result.summary(), result.mean_ranks()
    order = sorted(result.methods, key=lambda method: (ranks[method], method))
    best = {}
    for metric in result.metrics:
        means = [summary[m][metric][0] for m in result.methods]
        best[metric] = (np.nanmax if METRICS[metric].higher_is_better else np.nanmin)(means)
    lines = [
        "| method | " + " | ".join(result.metrics) + " | mean rank |",
        "| --- |" + " ---: |" * (len(result.metrics) + 1),
    ]
    for method in order:
        cells = []
        for metric in result.metrics:
            mean, std = summary[method][metric]
            cell = f"{mean:.4f} ± {std:.4f}"
            cells.append(f"**{cell}**" if mean == best[metric] else cell)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {ranks[method]:.2f} |")
    return "\n".join(lines) + "\n"


def write_scores_csv(result: BenchmarkResult, path: str | os.PathLike) -> Path:
    """One row per method and pair: ``method, pair, METRIC...``."""
    buffer = text_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "pair", *result.metrics])
    for method in result.methods:
        for pair, row in result.scores[method].items():
            writer.writerow([method, pair, *(repr(row[m]) for m in result.metrics)])
    return write_atomically(path, lambda temporary: temporary.write_text(buffer.getvalue(), encoding="utf-8"))


def _figure_to_png(figure: Figure, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    try:
        return write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
    finally:
        plt.close(figure)


def write_montage(
    dataset: Dataset, fused_images: Mapping[str, Mapping[str, Path]], path: str | os.PathLike, pairs: int = 3
) -> Path:
    """A grid of images: one row per pair (the first ``pairs``), the two sources, then
    each method's result (``fused_images`` maps method -> pair -> file), in the given order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = dataset.pairs[:pairs]
    columns = [dataset.modality_a, dataset.modality_b, *fused_images]
    figure, axes = plt.subplots(len(rows), len(columns), figsize=(1.6 * len(columns), 1.75 * len(rows)), squeeze=False)
    for row, (pair, path_a, path_b) in enumerate(rows):
        files = [path_a, path_b, *(fused_images[m][pair] for m in fused_images)]
        for column, (title, file) in enumerate(zip(columns, files)):
            axis = axes[row][column]
            axis.imshow(to_unit(load_image(file)), cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=7)
            if column == 0:
                axis.set_ylabel(pair, fontsize=7)
    figure.tight_layout(pad=0.3)
    return _figure_to_png(figure, path)


def write_distributions(result: BenchmarkResult, path: str | os.PathLike) -> Path:
    """Box plots of every metric over the pairs, one panel per metric, one box per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(result.metrics))
    rows = -(-len(result.metrics) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, metric in zip(axes.flat, result.metrics):
        values = [[row[metric] for row in result.scores[m].values()] for m in result.methods]
        axis.boxplot(values)
        axis.set_xticks(range(1, len(result.methods) + 1), result.methods, rotation=60, ha="right", fontsize=7)
        higher = "higher" if METRICS[metric].higher_is_better else "lower"
        axis.set_title(f"{metric} ({higher} is better)", fontsize=9)
    for axis in list(axes.flat)[len(result.metrics) :]:
        axis.set_visible(False)
    figure.tight_layout()
    return _figure_to_png(figure, path)


@dataclass
class BenchmarkRun:
    """What :func:`benchmark_folder` did: the scores, the dataset, the report heading and table
    (Markdown) and the files written into ``out``."""

    result: BenchmarkResult
    dataset: Dataset
    heading: str
    table: str
    written: list[str]


def benchmark_folder(
    data: str | os.PathLike,
    out: str | os.PathLike,
    methods: Iterable[str] | None = None,
    external: Mapping[str, str | os.PathLike] | None = None,
    metrics: Iterable[str] = RANKED_METRICS,
    modality_a: str | None = None,
    modality_b: str | None = None,
    weights: str | os.PathLike = DEFAULT_MODEL,
    device: str = "cpu",
    montage_pairs: int = MONTAGE_PAIRS,
    progress: Callable[[Iterable], Iterable] = iter,
) -> BenchmarkRun:
    """Fuse every pair of a dataset folder with every method, score, rank and write the reports
    into ``out``, as ``medfuse benchmark`` does: table.md, scores.csv, distributions.png,
    montage.png (the first ``montage_pairs`` pairs; none for 0) and ``fused/METHOD/`` (cached).

    ``methods`` are names from :func:`medfuse.fusion.methods.list_methods` (None: all);
    ``external`` maps more method names to folders of images fused elsewhere; the DRAN methods
    use ``weights`` on ``device``."""

    from medfuse.dran.models import device_named, load_model, weights_path
    from medfuse.dran.rules import get_rule
    from medfuse.fusion.baselines import BASELINES
    from medfuse.fusion.methods import DRAN_PREFIX, create_method, is_dran_method, list_methods

    metrics = check_metric_names(metrics)
    names = list_methods() if methods is None else list(methods)
    unknown = [name for name in names if name not in list_methods()]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(list_methods())}")
    external_folders = {name: Path(folder) for name, folder in (external or {}).items()}
    for name, folder in external_folders.items():
        if name in list_methods() or name in names:
            raise InputError(f"external method {name}: the name {name} is taken")
        if not folder.is_dir():
            raise InputError(f"external method {name}: {folder} is not a folder")
    if not names and not external_folders:
        raise InputError("no methods chosen")
    if montage_pairs < 0:
        raise InputError("the montage needs 0 or more pairs")
    out = Path(out)
    check_output_folder(out, "output")
    dataset = find_pairs(data, modality_a, modality_b)
    for path in dataset.unpaired:
        warnings.warn(f"{path} has no partner of the same name; skipped", stacklevel=2)
    chosen: dict[str, Method | Path] = {}
    identities = {}
    if any(is_dran_method(name) for name in names):
        model = load_model(weights, device_named(device))
    for name in names:
        dran = is_dran_method(name)
        chosen[name] = create_method(name, model=model) if dran else create_method(name)
        function = get_rule(name.removeprefix(DRAN_PREFIX)) if dran else BASELINES[name]
        identities[name] = method_identity(name, function, weights_path(weights) if dran else None)
    chosen.update(external_folders)
    with output_locks(out):  # a second benchmark into the same folder at once is refused in one line
        return _run_and_write(dataset, chosen, metrics, out, identities, progress, external_folders, montage_pairs)


def _run_and_write(
    dataset: Dataset,
    chosen: Mapping[str, Method | Path],
    metrics: list[str],
    out: Path,
    identities: Mapping[str, str],
    progress: Callable[[Iterable], Iterable],
    external_folders: Mapping[str, Path],
    montage_pairs: int,
) -> BenchmarkRun:
    """:func:`run_benchmark`, then the reports of :func:`benchmark_folder` written into ``out``."""
    import platform
    import time

    import torch

    start = time.perf_counter()
    try:
        result = run_benchmark(dataset, chosen, metrics, out, identities, progress)
    except MedfuseError:
        raise
    except OSError as error:  # e.g. a file where a folder of OUT must go
        raise OutputError(f"output {out}: cannot write there ({error.strerror or error})") from None
    seconds = time.perf_counter() - start
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}"
    heading = (
        f"{len(dataset.pairs)} pairs {dataset.modality_a}/{dataset.modality_b}, "
        f"{len(result.methods)} methods, mean ± standard deviation; fused and scored in "
        f"{seconds:.0f} s ({machine})\n\n"
    )
    if len(dataset.pairs) < FEW_PAIRS:
        heading += few_pairs_caution(len(dataset.pairs)) + "\n\n"
    table = markdown_table(result)
    write_atomically(out / "table.md", lambda temporary: temporary.write_text(heading + table, encoding="utf-8"))
    write_scores_csv(result, out / "scores.csv")
    write_distributions(result, out / "distributions.png")
    written = ["table.md", "scores.csv", "distributions.png"]
    if montage_pairs:
        ranks = result.mean_ranks()
        order = sorted(result.methods, key=lambda method: (ranks[method], method))
        fused = {m: external_folders[m] if m in external_folders else out / "fused" / m for m in order}
        write_montage(
            dataset, {m: images_by_stem(folder) for m, folder in fused.items()}, out / "montage.png", montage_pairs
        )
        written.append("montage.png")
    return BenchmarkRun(result, dataset, heading, table, written)
