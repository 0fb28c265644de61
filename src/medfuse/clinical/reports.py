"""``medfuse report`` from Python: read two sources (and a fusion), build the page of
:mod:`medfuse.evaluation.report`, write it atomically.

Two 2-D images: the fusion is read from ``fused`` or made here (``rule``, ``model``), with A's
weight map where the rule has one. Two volumes on one grid: the fusion (and, if given, the
weight map) are the NIfTI files ``medfuse fuse ... --weight-map`` wrote; the sources are shown
through percentile clipping at the default percentiles (not a CT window the fusion may have
used), and the shares are measured on that foreground.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfuse._shared.checks import check_exists, check_new_output, check_suffix
from medfuse._shared.errors import InputError, MedfuseError, one_line, printable
from medfuse._shared.files import write_atomically
from medfuse.dran import DEFAULT_MODEL, DEFAULT_RULE
from medfuse.evaluation import RANKED_METRICS
from medfuse.image.scales import grey_unit

REPORT_SUFFIXES = (".html", ".htm")
UPTAKE_MODALITIES = ("PT", "NM")
"""DICOM modalities (PET, nuclear medicine / SPECT) whose volume is shown with the ``hot`` colour map."""


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote: the page, the kind ("image", "volume", "folder" or
    "benchmark"), each source's share of the fused foreground (pairs and volumes) and how it was
    measured."""

    out: Path
    kind: str
    shares: tuple[float, float] | None
    shares_measure: str


def write_report(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    fused: str | os.PathLike | None = None,
    weight_map: str | os.PathLike | None = None,
    rule: str = DEFAULT_RULE,
    model: str | os.PathLike = DEFAULT_MODEL,
    device: str | None = None,
    metrics: tuple[str, ...] = RANKED_METRICS,
    colour_b: str | None = None,
) -> Report:
    """Write the HTML report of fusing ``path_a`` with ``path_b`` to ``out`` (.html).

    A ``medfuse benchmark`` output folder (``path_a``, with ``path_b`` None): its scores, ranks
    and figures (``scores.csv`` must be UTF-8 text, as the benchmark writes it; bytes of
    ``table.md``'s heading that are not UTF-8 are shown as U+FFFD). Two folders of sources:
    ``fused`` (a folder) is scored against them with ``metrics``, the first triples shown. Two
    images: ``fused`` (an image file) or, if None, the fusion by ``rule`` and ``model``;
    ``weight_map`` a 16-bit map as ``medfuse fuse --weight-map`` writes (with ``fused``), else
    the rule's own; ``metrics`` are scored and shown. Two volumes: ``fused`` (required) and
    ``weight_map`` are NIfTI files on A's grid, B must lie on it too; ``colour_b`` "hot" or
    "grey" (default: hot for a PET or SPECT DICOM series). Errors before anything is written.
    """
    from medfuse.io.volumes import is_volume_path

    out = Path(out)
    check_suffix(out, REPORT_SUFFIXES, "report")
    if path_b is None:
        (folder,) = check_exists(path_a)
        if fused is not None or weight_map is not None or not (folder / "scores.csv").is_file():
            raise InputError(
                f"{folder}: one input is a medfuse benchmark output folder (holding scores.csv); "
                "otherwise give two sources"
            )
        check_new_output(out, (folder,), "report")
        page = _benchmark_page(folder)
        write_atomically(out, lambda temporary: temporary.write_text(printable(page), encoding="utf-8"))
        return Report(out, "benchmark", None, "")
    path_a, path_b = check_exists(path_a, path_b)
    extra = tuple(Path(path) for path in (fused, weight_map) if path is not None)
    check_exists(*extra)
    check_new_output(out, (path_a, path_b, *extra), "report")
    if weight_map is not None and fused is None:
        raise InputError("a weight map file goes with the fusion it belongs to: give --fused too")
    if path_a.is_dir() and path_b.is_dir() and not (is_volume_path(path_a) or is_volume_path(path_b)):
        if fused is None or not Path(fused).is_dir() or weight_map is not None:
            raise InputError("for two folders of sources, give the folder of fused images (--fused), no weight map")
        page = _folder_page(path_a, path_b, Path(fused), metrics)
        write_atomically(out, lambda temporary: temporary.write_text(printable(page), encoding="utf-8"))
        return Report(out, "folder", None, "")
    if is_volume_path(path_a) or is_volume_path(path_b):
        if fused is None:
            raise InputError("for two volumes, give the fused volume (--fused, as medfuse fuse wrote it)")
        page, shares = _volume_page(
            path_a, path_b, Path(fused), None if weight_map is None else Path(weight_map), colour_b
        )
        kind, measure = "volume", "weight map"
    else:
        if colour_b is not None:
            raise InputError("a colour map is for volumes: a colour image is shown in its own colours")
        page, shares, measure = _image_page(path_a, path_b, fused, weight_map, rule, model, device, metrics)
        kind = "image"
    write_atomically(out, lambda temporary: temporary.write_text(printable(page), encoding="utf-8"))
    return Report(out, kind, shares, measure)


def _image_page(
    path_a: Path,
    path_b: Path,
    fused: str | os.PathLike | None,
    weight_map: str | os.PathLike | None,
    rule: str,
    model: str | os.PathLike,
    device: str | None,
    metrics: tuple[str, ...],
) -> tuple[str, tuple[float, float] | None, str]:
    from medfuse.clinical.pipeline import load_pair
    from medfuse.evaluation.metrics.fidelity import fusion_shares
    from medfuse.evaluation.report import pair_report
    from medfuse.evaluation.scoring import check_metric_names, score_triple
    from medfuse.io.images import load_image

    check_metric_names(metrics)
    image_a, image_b = load_pair(path_a, path_b)
    notes = []
    if fused is None:
        from medfuse.clinical.pipeline import load_fusion
        from medfuse.fusion.engine import fuse_with_weights, weights_make_the_fusion

        fusion_model, fusion_rule = load_fusion(model, rule, device)
        fused_image, w_a = fuse_with_weights(image_a, image_b, fusion_rule, fusion_model)
        share_map = w_a if weights_make_the_fusion(fusion_rule) else None
        notes.append(f"fused here with rule {rule}, weights {model}")
    else:
        fused_image = load_image(fused)
        w_a = share_map = None if weight_map is None else _weight_image(Path(weight_map))
        notes.append(f"fusion read from {fused}")
    for name, image in (("fusion", fused_image), ("weight map", w_a)):
        if image is not None and image.shape[:2] != image_a.shape[:2]:
            raise InputError(
                f"the {name} is {image.shape[1]} x {image.shape[0]}, the sources "
                f"{image_a.shape[1]} x {image_a.shape[0]}"
            )
    shares, measure = fusion_shares(share_map, grey_unit(image_a), grey_unit(image_b), grey_unit(fused_image))
    scores = score_triple(fused_image, image_a, image_b, metrics)
    names = (_name(path_a), _name(path_b))
    page = pair_report(
        image_a,
        image_b,
        fused_image,
        w_a,
        scores,
        names,
        shares,
        measure,
        title=f"medfuse: {names[0]} + {names[1]}",
        notes=notes,
    )
    return page, shares, measure


def _name(path: Path) -> str:
    """A file's name with its folder's (sources of one name sit in folders named by modality)."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _weight_image(path: Path) -> np.ndarray:
    from medfuse.io.images import load_image

    image = load_image(path)
    if image.ndim != 2 or image.dtype != np.uint16:
        raise InputError(f"{path}: not a weight map as medfuse fuse --weight-map writes it (16-bit grey)")
    return image / 65535.0


def _volume_page(
    path_a: Path, path_b: Path, fused: Path, weight_map: Path | None, colour_b: str | None
) -> tuple[str, tuple[float, float] | None]:
    from medfuse.clinical.grids import check_same_grid
    from medfuse.clinical.intensity import normalise
    from medfuse.evaluation.metrics.fidelity import weight_shares
    from medfuse.evaluation.report import volume_report
    from medfuse.io.volumes import read_volume

    files = {"a": read_volume(path_a), "b": read_volume(path_b), "fused": read_volume(fused)}
    if weight_map is not None:
        files["weights"] = read_volume(weight_map)
    for name, file in files.items():
        if name != "a":
            try:
                check_same_grid(files["a"].volume, file.volume)
            except InputError as error:
                raise InputError(
                    f"{file.path} and {path_a}: {error} (register B to A first: medfuse register; "
                    "medfuse fuse writes its fusion on A's grid)"
                ) from None
    unit_a, _ = normalise(files["a"].volume.data)
    unit_b, _ = normalise(files["b"].volume.data)
    fused_data = np.clip(files["fused"].volume.data, 0.0, 1.0)
    w_a = None if weight_map is None else np.clip(files["weights"].volume.data, 0.0, 1.0)
    if colour_b is None:
        colour_b = "hot" if files["b"].modality in UPTAKE_MODALITIES else "grey"
    geometry = files["a"].volume.geometry
    import nibabel

    codes = "".join(nibabel.orientations.aff2axcodes(geometry.affine))
    described = (
        f"spacing {', '.join(f'{s:.3g}' for s in geometry.spacing)} mm; origin (RAS) "
        f"{', '.join(f'{v:.1f}' for v in geometry.origin)} mm; i, j, k point towards {codes} "
        "(nibabel's axis codes); planes drawn with the highest index on top"
    )
    shares = None if w_a is None else weight_shares(w_a, unit_a, unit_b)
    names = (_name(path_a), _name(path_b))
    page = volume_report(
        unit_a,
        unit_b,
        fused_data,
        w_a,
        tuple(geometry.spacing),
        described,
        colour_b,
        names,
        shares,
        title=f"medfuse: {names[0]} + {names[1]}",
        notes=[f"fusion read from {fused}"],
    )
    return page, shares


def _folder_page(folder_a: Path, folder_b: Path, fused: Path, metrics: tuple[str, ...]) -> str:
    from medfuse.evaluation import MONTAGE_PAIRS
    from medfuse.evaluation.report import folder_report
    from medfuse.evaluation.scoring import evaluate_paths, match_folders
    from medfuse.io.images import load_image

    evaluation = evaluate_paths(fused, folder_a, folder_b, metrics)
    triples, _ = match_folders(fused, folder_a, folder_b)
    shown = [
        (name, load_image(path_a), load_image(path_b), load_image(path_f))
        for name, path_f, path_a, path_b in triples
        if name in evaluation.scores
    ][:MONTAGE_PAIRS]
    return folder_report(
        evaluation.scores,
        shown,
        evaluation.problems,
        title=f"medfuse: {fused.name} against {folder_a.name} and {folder_b.name}",
        notes=[f"fused images from {fused}; sources from {folder_a} and {folder_b}"],
    )


def _benchmark_page(folder: Path) -> str:
    """The page of a benchmark output folder: ``scores.csv`` must be UTF-8 (what medfuse benchmark
    writes); of ``table.md`` only the first line is shown, bytes that are not UTF-8 as U+FFFD."""
    import csv
    import io

    from medfuse.evaluation import RANKED_METRICS
    from medfuse.evaluation.benchmark import mean_ranks
    from medfuse.evaluation.report import benchmark_report
    from medfuse.evaluation.scoring import check_metric_names, mean_and_std

    scores = folder / "scores.csv"
    try:
        text = scores.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{scores}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}), as medfuse benchmark writes it; save it as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    values: dict[str, dict[str, list[float]]] = {}
    pairs = set()
    try:
        metrics = check_metric_names([name for name in reader.fieldnames or () if name not in ("method", "pair")])
        for row in reader:
            pairs.add(row["pair"])
            for metric in metrics:
                values.setdefault(row["method"], {}).setdefault(metric, []).append(float(row[metric]))
    except (KeyError, ValueError, TypeError, csv.Error) as error:
        if isinstance(error, MedfuseError):
            raise
        raise InputError(f"{scores}: not a medfuse benchmark score table ({one_line(error)})") from None
    if not values:
        raise InputError(f"{folder / 'scores.csv'}: holds no scores")
    means = {method: {m: mean_and_std(v) for m, v in row.items()} for method, row in values.items()}
    ranked = [m for m in metrics if m in RANKED_METRICS] or metrics
    ranks = mean_ranks({method: {m: mean for m, (mean, _) in row.items()} for method, row in means.items()}, ranked)
    table = folder / "table.md"
    heading = table.read_text(encoding="utf-8", errors="replace").splitlines()[0] if table.is_file() else ""
    figures = [
        ((folder / name).read_bytes(), caption)
        for name, caption in (
            ("distributions.png", "Distributions per method"),
            ("montage.png", "Montage (sources and fusions)"),
        )
        if (folder / name).is_file()
    ]
    return benchmark_report(means, ranks, len(pairs), figures, heading, title=f"medfuse benchmark: {folder.name}")
