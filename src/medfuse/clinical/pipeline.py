"""The whole clinical job, from files to a file: what ``medfuse fuse`` and ``medfuse register``
do, callable from Python.

:func:`fuse_files` fuses two 2-D images, every pair of two folders matched by name, or two
volumes (NIfTI, DICOM): it reads, maps volume intensities to [0, 1] (a CT window or
percentiles), registers B to A or checks (or resamples onto) one grid, plans the memory,
fuses and writes the result with the reference's geometry and a record of what was done.
:func:`register_files` registers and resamples one file onto another. Every mistake in the
inputs is a :class:`~medfuse._shared.errors.MedfuseError` raised before anything is written.
torch and SimpleITK are imported only by the steps that use them (registering a pair needs no
torch, reading one no SimpleITK).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medfuse._shared.checks import (
    check_exists,
    check_new_output,
    check_output_folder,
    check_result,
    check_suffix,
    same_path,
)
from medfuse._shared.errors import InputError, OutputError, printable
from medfuse._shared.files import (
    check_folder_writable,
    inside,
    make_folders,
    output_locks,
    written_together,
)
from medfuse.clinical import FOLDER_SUFFIX
from medfuse.clinical.intensity import DEFAULT_PERCENTILES, CtWindow, check_percentiles, hounsfield_doubts, normalise
from medfuse.clinical.registration import TRANSFORM_SUFFIXES
from medfuse.dran import DEFAULT_MODEL, DEFAULT_RULE
from medfuse.fusion.memory import check_batch_size
from medfuse.image.composition import fused_like
from medfuse.image.grid import Volume
from medfuse.image.scales import grey_unit
from medfuse.io.images import (
    IMAGE_SUFFIXES,
    ImageFileError,
    check_image_target,
    check_writable,
    images_by_stem,
    load_image,
    save_image,
)
from medfuse.io.volumes import (
    VolumeFile,
    VolumeFileError,
    check_volume_format,
    check_volume_target,
    is_nifti_path,
    is_volume_path,
    read_volume,
    write_nifti,
    write_volume,
)

if TYPE_CHECKING:
    from medfuse.clinical.registration import Registration
    from medfuse.dran import network
    from medfuse.dran.rules import FusionRule

Progress = Callable[[int, int, str], object]
"""``progress(done, total, unit)``: called after each step of long work with the number of
items (``unit``: "pair" or "slice") just finished and the total."""

CHECK_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
WEIGHT_MAP_SUFFIXES = {"image": (".png", ".tif", ".tiff"), "volume": (".nii", ".nii.gz")}
"""A weight map is a 16-bit grey image (A's weight times 65535) for two images, a float32 NIfTI
on the fusion's grid for two volumes."""
COLOUR_BYTES_PER_VOXEL = 136
"""Host memory per voxel of a volume's ``--colour-map`` overlay, planned with the fusion: the float64
intermediates of :func:`medfuse.image.colour.colour_overlay` peak at 112 B per voxel (tracemalloc,
64^3), and rounding its RGB result takes 24 more."""


@dataclass(frozen=True)
class VolumeOptions:
    """How two volumes are prepared: the CT window and the input it applies to ("a" or "b"),
    the percentiles for the other input(s) and the grid to resample onto ("A", "B" or None).
    A window on an input that does not look like a CT in Hounsfield units is refused unless
    ``force_window``."""

    window: CtWindow | None = None
    window_on: str = "b"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    resample_to: str | None = None
    force_window: bool = False

    def __post_init__(self) -> None:
        if self.window_on not in ("a", "b"):
            raise InputError(f"the CT window applies to input 'a' or 'b', got {self.window_on!r}")
        if self.resample_to not in (None, "A", "B"):
            raise InputError(f"resample onto the grid of 'A' or 'B', got {self.resample_to!r}")
        object.__setattr__(self, "percentiles", check_percentiles(*self.percentiles))


@dataclass(frozen=True)
class RegistrationRequest:
    """Register B to A before fusing (``kind`` "rigid" or "affine"), and where to write the
    transform (ITK text, .tfm/.txt) and a checkerboard check image; ``force`` accepts a result
    that looks wrong."""

    kind: str
    save_transform: Path | None = None
    check_image: Path | None = None
    force: bool = False

    def check_outputs(self, inputs: tuple[Path, ...], outputs: dict[str, Path | None] | None = None) -> None:
        """Refuse, before any work, output paths that cannot be written, that are inputs, or that
        name one of the job's other ``outputs`` (what -> path)."""
        taken = {what: path for what, path in (outputs or {}).items() if path is not None}
        for what, path, suffixes in (
            ("transform file", self.save_transform, TRANSFORM_SUFFIXES),
            ("check image", self.check_image, CHECK_IMAGE_SUFFIXES),
        ):
            if path is not None:
                check_suffix(path, suffixes, what)
                check_new_output(path, inputs, what)
                for other, other_path in taken.items():
                    if same_path(path, other_path):
                        raise OutputError(f"{what} {path} is also the {other}; choose another path")
                taken[what] = path


@dataclass
class FusedFiles:
    """What :func:`fuse_files` did: ``kind`` "image", "folder" or "volume"; ``out`` the result;
    for folders the pairs fused, those found and one message per pair that failed;
    ``registration`` when B was registered to A; ``notes`` what was done to the inputs."""

    out: Path
    kind: str
    fused: int = 1
    pairs: int = 1
    failures: list[str] = field(default_factory=list)
    registration: Registration | None = None
    notes: list[str] = field(default_factory=list)
    shares: tuple[float, float] | None = None
    """A's and B's shares of the fused foreground for one pair or two volumes: the mean of the
    rule's weight map, or for a rule without one the least-squares fit of the fusion to its
    sources (:mod:`medfuse.evaluation.metrics.fidelity`)."""
    shares_measure: str = ""
    """How ``shares`` were measured: "weight map" or "least-squares fit"."""
    weight_map: Path | None = None

    @property
    def warnings(self) -> list[str]:
        """A sentence for each source that keeps less than ``SMALL_SHARE`` of the fused foreground."""
        from medfuse.evaluation.metrics.fidelity import SMALL_SHARE

        if self.shares is None:
            return []
        return [
            f"{name} keeps only {share:.0%} of the fused foreground: the fusion shows mostly the other "
            "source there (see the weight map; another rule may keep more of it)"
            for name, share in zip("AB", self.shares)
            if share < SMALL_SHARE
        ]

    def describe_shares(self) -> str:
        """One line: each source's share of the fused foreground, or why there is none."""
        if self.shares is None:
            return ""
        return f"share of the fused foreground ({self.shares_measure}): A {self.shares[0]:.0%}, B {self.shares[1]:.0%}"


def fuse_files(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    out: str | os.PathLike,
    *,
    rule: str = DEFAULT_RULE,
    model: str | os.PathLike | network.DRAN = DEFAULT_MODEL,
    device: str | None = None,
    register: RegistrationRequest | None = None,
    volume: VolumeOptions | None = None,
    batch_size: int | None = None,
    suffix: str = FOLDER_SUFFIX,
    progress: Progress | None = None,
    weight_map: str | os.PathLike | None = None,
    colour_map: str | None = None,
) -> FusedFiles:
    """Fuse the files (or folders) ``path_a`` and ``path_b`` into ``out``, as ``medfuse fuse`` does.

    - Two 2-D images (PNG, JPEG, TIFF, BMP; 8 or 16 bit, grey or colour) -> one image, whose
      suffix picks the format. With ``register``, B is registered to A first (any sizes).
    - Two folders -> every pair of files with one name (ignoring the suffix) fused into the
      folder ``out`` (created), as ``NAME{suffix}`` (a 16-bit colour result as .tif). A pair
      that cannot be read is reported in ``failures``; a file without a partner is a warning.
    - Two volumes (NIfTI, a DICOM file or a DICOM series folder) -> fused slice by slice into
      NIfTI (``out`` ending in .nii/.nii.gz) or, for a DICOM reference, a DICOM series folder,
      with ``volume`` saying how intensities are mapped and grids are matched (default
      :class:`VolumeOptions`: percentiles, grids must agree) or ``register`` aligning B to A.

    ``rule`` names a fusion rule, ``model`` is a shipped model name, a weights path or a loaded
    model, ``device`` a torch device name (default: the CPU for a name or path, a given model's own
    device); ``batch_size`` pairs of one size (folders) or slices
    (volumes) go through the network at once (None: planned from the free memory). For one pair
    or two volumes, a rule with a weight map also gives each source's share of the fused
    foreground (``shares``), and ``weight_map`` (a path) receives A's weight at every pixel
    (``WEIGHT_MAP_SUFFIXES``). For two volumes into NIfTI, ``colour_map`` (a name of
    :data:`~medfuse.image.colour.COLOUR_MAPS`, e.g. "hot") writes an RGB NIfTI instead: the
    fusion's brightness in the colours of B through that map (:func:`~medfuse.image.colour.colour_overlay`),
    as a colour PET or SPECT image is fused in 2-D. Every user error is raised before anything
    is written; the outputs (the result, the weight map, registration's files) appear whole and
    together or not at all, and a second run writing one of them at the same time is refused
    (:func:`~medfuse._shared.files.output_lock`).
    """
    outputs = (out, weight_map, *((register.save_transform, register.check_image) if register else ()))
    with output_locks(*outputs), written_together():
        return _fuse_files(
            path_a,
            path_b,
            out,
            rule,
            model,
            device,
            register,
            volume,
            batch_size,
            suffix,
            progress,
            weight_map,
            colour_map,
        )


def _fuse_files(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    out: str | os.PathLike,
    rule: str,
    model: str | os.PathLike | network.DRAN,
    device: str | None,
    register: RegistrationRequest | None,
    volume: VolumeOptions | None,
    batch_size: int | None,
    suffix: str,
    progress: Progress | None,
    weight_map: str | os.PathLike | None,
    colour_map: str | None,
) -> FusedFiles:
    path_a, path_b = check_exists(path_a, path_b)
    out = Path(out)
    check_batch_size(batch_size)
    weight_map = None if weight_map is None else Path(weight_map)
    if is_volume_path(path_a) or is_volume_path(path_b):
        for path in (path_a, path_b):
            if not is_volume_path(path):
                raise InputError(
                    f"{path}: not a volume (NIfTI .nii/.nii.gz, DICOM file or DICOM series folder), "
                    "but the other input is one; fuse two volumes or two 2-D images"
                )
        _check_weight_map_target(weight_map, "volume", rule, (path_a, path_b, out))
        if colour_map is not None:
            from medfuse.image.colour import COLOUR_MAPS
            from medfuse.io.volumes import is_nifti_path

            if colour_map not in COLOUR_MAPS:
                raise InputError(f"colour map {colour_map!r}: choose one of {', '.join(COLOUR_MAPS)}")
            if not is_nifti_path(out):
                raise InputError(f"{out}: a colour overlay is written as RGB NIfTI; name the output .nii or .nii.gz")
        return _fuse_volume_pair(
            path_a,
            path_b,
            out,
            rule,
            model,
            device,
            register,
            volume or VolumeOptions(),
            batch_size,
            progress,
            weight_map,
            colour_map,
        )
    if colour_map is not None:
        raise InputError("a colour map is for two volumes; a colour 2-D source is fused in its own colours")
    if volume is not None:
        raise InputError("CT windows, percentiles and resampling are for volumes (NIfTI or DICOM), not for 2-D images")
    if path_a.is_dir() != path_b.is_dir():
        raise InputError("A and B must both be files or both be folders")
    if path_a.is_dir():
        if register is not None or weight_map is not None:
            raise InputError(
                f"{'registration' if register is not None else 'a weight map'} is for one pair of images "
                "or two volumes, not for folders"
            )
        return _fuse_folders(path_a, path_b, out, rule, model, device, suffix, batch_size, progress)
    if batch_size is not None:
        raise InputError("a batch size is only for two folders or two volumes, not for one pair of images")
    check_image_target(out, (path_a, path_b))
    _check_weight_map_target(weight_map, "image", rule, (path_a, path_b, out))
    if register is not None:
        register.check_outputs((path_a, path_b), {"output": out, "weight map": weight_map})
    fusion_model, fusion_rule = load_fusion(model, rule, device)
    from medfuse.fusion.engine import fuse_with_weights

    registration = None
    notes = []
    image_a, image_b = load_pair(path_a, path_b) if register is None else (load_image(path_a), load_image(path_b))
    check_writable(out, fused_like(image_a, image_b))
    if register is not None:
        grey_a, grey_b = grey_unit(image_a), grey_unit(image_b)
        registration = registered(grey_a, grey_b, register)
        from medfuse.clinical.registration import move_image

        image_b = move_image(image_b, image_a.shape, registration.transform)
        notes.append(f"B registered to A ({register.kind}): {registration.transform.describe('pixels')}")
    fused, w_a = fuse_with_weights(image_a, image_b, rule=fusion_rule, model=fusion_model)
    save_image(out, fused, provenance(rule, model, path_a, path_b, notes))
    from medfuse.evaluation.metrics.fidelity import fusion_shares
    from medfuse.fusion.engine import weights_make_the_fusion

    shares, measure = fusion_shares(
        w_a if weights_make_the_fusion(fusion_rule) else None, grey_unit(image_a), grey_unit(image_b), grey_unit(fused)
    )
    if weight_map is not None:
        assert w_a is not None  # the rule has one: checked by _check_weight_map_target
        save_image(weight_map, np.round(w_a * 65535).astype(np.uint16))
    if register is not None and registration is not None:  # both or neither
        write_registration_outputs(register, grey_a, grey_b, registration)
    return FusedFiles(
        out, "image", registration=registration, shares=shares, shares_measure=measure, weight_map=weight_map
    )


def provenance(
    rule: str | FusionRule,
    model: str | os.PathLike | network.DRAN,
    path_a: Path,
    path_b: Path,
    notes: Sequence[str] = (),
) -> dict[str, str]:
    """How a fused image was made, for its file (PNG text chunks, TIFF description): medfuse's
    version, the rule, the weights (name and SHA-256), the sources and what was done to them."""
    from medfuse import __version__

    record = {
        "Software": f"medfuse {__version__}",
        "Source": "; ".join(
            f"{name} {printable(Path(path.parent.name, path.name))}" for name, path in (("A", path_a), ("B", path_b))
        ),
        "Fusion rule": rule if isinstance(rule, str) else getattr(rule, "__name__", "custom"),
    }
    if isinstance(model, (str, os.PathLike)):
        from medfuse.dran.models import weights_digest

        record["Weights"] = f"{model} sha256 {weights_digest(model)}"
    else:
        record["Weights"] = "a model given in Python"
    if notes:
        record["Comment"] = "; ".join(notes)
    return record


def _check_weight_map_target(
    weight_map: Path | None, kind: str, rule: str | FusionRule, inputs: tuple[Path, ...]
) -> None:
    """Refuse, before any work, a weight map that cannot be written or that the rule has not."""
    if weight_map is None:
        return
    from medfuse.fusion.engine import check_weight_map

    check_suffix(weight_map, WEIGHT_MAP_SUFFIXES[kind], f"weight map of two {kind}s")
    check_new_output(weight_map, inputs, "weight map")
    check_folder_writable(weight_map.parent)
    check_weight_map(rule)


def load_fusion(
    model: str | os.PathLike | network.DRAN, rule: str | FusionRule, device: str | None = None
) -> tuple[network.DRAN, FusionRule]:
    """The model on ``device`` and the rule, from names (a shipped model name or weights path,
    a rule name) or as given; ``device`` None keeps a given model where it is and loads a named
    one on the CPU. :class:`~medfuse._shared.errors.InputError` for an unknown rule, device or
    unusable weights."""
    from medfuse.dran.models import device_named
    from medfuse.dran.rules import get_rule
    from medfuse.fusion.engine import cached_model

    fusion_rule = get_rule(rule) if isinstance(rule, str) else rule
    if isinstance(model, (str, os.PathLike)):
        return cached_model(str(model), str(device_named(device or "cpu"))), fusion_rule
    return (model if device is None else model.to(device_named(device))), fusion_rule


def load_pair(path_a: Path, path_b: Path) -> tuple[np.ndarray, np.ndarray]:
    """Both images of a pair, or an :class:`~medfuse.io.images.ImageFileError` naming them
    (unreadable, or of two sizes)."""
    from medfuse.image.composition import check_pair

    image_a, image_b = load_image(path_a), load_image(path_b)
    try:
        check_pair(image_a, image_b)
    except InputError as error:  # e.g. two sizes, or an image too small for the network
        raise ImageFileError(
            f"{path_a.name} and {path_b.name}: {error}; the images must be registered to one grid"
        ) from None
    return image_a, image_b


def _folder_suffix(suffix: str) -> str:
    suffix = suffix if suffix.startswith(".") else f".{suffix}"
    if suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"suffix {suffix}: use one of {', '.join(IMAGE_SUFFIXES)}")
    return suffix


def _fuse_folders(
    folder_a: Path,
    folder_b: Path,
    out: Path,
    rule: str,
    model: str | os.PathLike | network.DRAN,
    device: str | None,
    suffix: str,
    batch_size: int | None,
    progress: Progress | None,
) -> FusedFiles:
    if same_path(out, folder_a) or same_path(out, folder_b):
        raise OutputError(f"output folder {out} is one of the input folders; choose another")
    check_output_folder(out)
    suffix = _folder_suffix(suffix)
    files_a, files_b = images_by_stem(folder_a), images_by_stem(folder_b)
    names = sorted(files_a.keys() & files_b.keys())
    for name in sorted(files_a.keys() ^ files_b.keys()):
        warnings.warn(
            f"{files_a.get(name) or files_b.get(name)} has no partner of the same name; skipped", stacklevel=2
        )
    if not names:
        raise InputError(f"no images with the same name in {folder_a} and {folder_b}")
    fusion_model, fusion_rule = load_fusion(model, rule, device)
    from medfuse.fusion.engine import fuse_pairs
    from medfuse.fusion.memory import plan_batch

    failures: list[str] = []
    step = progress or (lambda done, total, unit: None)

    def readable_pairs() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for name in names:
            try:
                yield (name, *load_pair(files_a[name], files_b[name]))
            except ImageFileError as error:
                failures.append(str(error))
                step(1, len(names), "pair")

    pairs = readable_pairs()
    first = next(pairs, None)
    if first is not None:
        height, width = first[1].shape[:2]
        plan_batch(next(fusion_model.parameters()).device, height, width, batch_size)
    make_folders(out)
    check_folder_writable(out / f"{names[0]}{suffix}")
    fused = 0
    for name, image in fuse_pairs(
        chain([first] if first else [], pairs), fusion_rule, fusion_model, batch_size=batch_size
    ):
        target = out / f"{name}{suffix}"
        inside(target, out)  # a link planted in the output folder under a result's name is refused
        try:
            check_writable(target, image)
        except ImageFileError:
            target = target.with_suffix(".tif")
        save_image(target, image, provenance(rule, model, files_a[name], files_b[name]))
        fused += 1
        step(1, len(names), "pair")
    return FusedFiles(out, "folder", fused=fused, pairs=len(names), failures=failures)


def registered(fixed: Volume | np.ndarray, moving: Volume | np.ndarray, request: RegistrationRequest) -> Registration:
    """``moving`` registered to ``fixed``; a result that looks wrong is refused
    (:class:`~medfuse._shared.errors.RegistrationError`) unless ``request.force``, and then kept
    with its doubts in ``Registration.doubts``."""
    from medfuse._shared.errors import RegistrationError
    from medfuse.clinical.registration import implausibilities, register

    registration = register(fixed, moving, request.kind)
    problems = implausibilities(registration, fixed)
    if problems and not request.force:
        raise RegistrationError(
            "the registration looks wrong: " + "; ".join(problems) + "; nothing was written "
            "(--force, or force=True in Python, accepts it)",
            registration,
        )
    return replace(registration, doubts=tuple(problems))


def write_registration_outputs(
    request: RegistrationRequest, fixed: Volume | np.ndarray, moving: Volume | np.ndarray, registration: Registration
) -> None:
    """The transform file and the check image, where ``request`` asks for them."""
    from medfuse.clinical.registration import check_picture, write_transform

    if request.save_transform:
        write_transform(registration.transform, request.save_transform)
    if request.check_image:
        save_image(request.check_image, check_picture(fixed, moving, registration))


def _fuse_volume_pair(
    path_a: Path,
    path_b: Path,
    out: Path,
    rule: str,
    model: str | os.PathLike | network.DRAN,
    device: str | None,
    register: RegistrationRequest | None,
    options: VolumeOptions,
    batch_size: int | None,
    progress: Progress | None,
    weight_map: Path | None,
    colour_map: str | None,
) -> FusedFiles:
    if register is not None and options.resample_to is not None:
        raise InputError("register B to A or resample onto one grid: choose one (registration puts B on A's grid)")
    check_volume_target(out, (path_a, path_b))
    if register is not None:
        register.check_outputs((path_a, path_b), {"output": out, "weight map": weight_map})
    fusion_model, fusion_rule = load_fusion(model, rule, device)
    files = {"a": read_volume(path_a), "b": read_volume(path_b)}
    unit, mappings = {}, {}
    for name, file in files.items():
        window = options.window if name == options.window_on else None
        doubts = hounsfield_doubts(file.volume.data, file.modality) if window is not None else []
        if doubts and not options.force_window:
            other = "a" if name == "b" else "b"
            if not hounsfield_doubts(files[other].volume.data, files[other].modality):
                raise InputError(
                    f"{file.path}: the CT window applies to input {name.upper()}, which does not look "
                    f"like a CT in Hounsfield units ({'; '.join(doubts)}), while input "
                    f"{other.upper()} ({files[other].path.name}) does: --window-on {other} (or "
                    f"window_on={other!r}) windows it"
                )
            raise InputError(
                f"{file.path}: a CT window on a volume that does not look like a CT in Hounsfield "
                f"units: {'; '.join(doubts)} (--force-window, or force_window=True, applies it anyway)"
            )
        try:
            unit[name], mappings[name] = normalise(file.volume.data, window, options.percentiles)
        except InputError as error:
            raise InputError(f"{file.path}: {error}") from None
    reference_name = (options.resample_to or "A").lower()
    reference = files[reference_name]
    check_volume_format(out, reference)
    notes, registration = [], None
    if register is not None:
        volume_a, volume_b = (Volume(unit[name], files[name].volume.geometry) for name in ("a", "b"))
        registration = registered(volume_a, volume_b, register)
        assert isinstance(registration.moved, Volume)  # registered volumes give a volume
        unit["b"] = registration.moved.data
        notes.append(f"B registered to A ({register.kind}): {registration.transform.describe('mm')}")
    else:
        notes.extend(_match_grids(files, unit, options.resample_to))
    width, height, depth = reference.volume.shape
    if min(width, height) < 2:
        raise InputError(f"{reference.path}: slices of {width} x {height} voxels; the network needs at least 2 x 2")
    from medfuse.fusion.engine import has_weight_map
    from medfuse.fusion.memory import running_out_as_error
    from medfuse.fusion.volumes import fuse_volumes

    host_bytes = (
        width * height * depth * (4 * has_weight_map(fusion_rule) + COLOUR_BYTES_PER_VOXEL * (colour_map is not None))
    )
    step = (lambda count: progress(count, depth, "slice")) if progress else None
    w_a = np.empty(unit["a"].shape, dtype=np.float32) if has_weight_map(fusion_rule) else None
    fused = fuse_volumes(
        fusion_model, unit["a"], unit["b"], fusion_rule, batch_size, step, weights_out=w_a, host_bytes=host_bytes
    )  # planned there, before the first slice
    check_result(fused, str(out), 0.0, 1.0)
    from medfuse.evaluation.metrics.fidelity import fusion_shares
    from medfuse.fusion.engine import weights_make_the_fusion

    with running_out_as_error("measuring the sources' shares"):
        shares, measure = fusion_shares(
            w_a if weights_make_the_fusion(fusion_rule) else None, unit["a"], unit["b"], fused
        )
    rule_name = rule if isinstance(rule, str) else getattr(rule, "__name__", "custom")
    summary = f"medfuse fusion (rule {rule_name}): A {mappings['a'].brief()}; B {mappings['b'].brief()}"
    description = "; ".join(
        [
            f"medfuse fuse, rule {rule_name}, output in [0, 1]",
            f"A {files['a'].path.name}: {mappings['a'].describe()}",
            f"B {files['b'].path.name}: {mappings['b'].describe()}",
            *notes,
        ]
    )
    record = "; registered" if registration is not None else "; resampled" if notes else ""
    if colour_map is None:
        write_volume(out, fused, reference, summary + record, description, sources=(files["a"], files["b"]))
    else:
        from medfuse.image.colour import colour_overlay

        with running_out_as_error("colouring the fusion"):
            overlay = np.round(colour_overlay(fused, unit["b"], colour_map) * 255).astype(np.uint8)
        write_nifti(
            out,
            overlay,
            reference.volume.geometry,
            reference,
            f"{summary}; RGB, B {colour_map}",
            f"{description}; RGB: the fusion's brightness in B's colours through the {colour_map} map",
        )
    if weight_map is not None:
        assert w_a is not None  # the rule has one: checked by _check_weight_map_target
        write_nifti(
            weight_map,
            w_a,
            reference.volume.geometry,
            reference,
            f"medfuse {rule_name}: weight of A",
            f"weight of A ({files['a'].path.name}) in the fusion {out.name}, rule {rule_name}; B's is 1 - it",
        )
    if register is not None and registration is not None:  # both or neither
        write_registration_outputs(register, volume_a, volume_b, registration)
    return FusedFiles(
        out,
        "volume",
        registration=registration,
        notes=notes,
        shares=shares,
        shares_measure=measure,
        weight_map=weight_map,
    )


def _match_grids(files: dict[str, VolumeFile], unit: dict[str, np.ndarray], resample_to: str | None) -> list[str]:
    """Check that both volumes share a grid, or resample the other onto ``resample_to``'s (in
    ``unit``); the notes for the record."""
    from medfuse.clinical.grids import GridMismatchError, check_same_grid, resample

    if resample_to is None:
        try:
            check_same_grid(files["a"].volume, files["b"].volume)
        except GridMismatchError as error:
            raise GridMismatchError(
                f"{error} (--register rigid registers B to A, register= in Python; "
                "--resample-to A only resamples B onto A's grid, for volumes that already "
                "lie in one world space)"
            ) from None
        return []
    reference_name = resample_to.lower()
    other_name = "b" if reference_name == "a" else "a"
    reference, other = files[reference_name].volume, files[other_name].volume
    unit[other_name] = resample(Volume(unit[other_name], other.geometry), reference.shape, reference.geometry).data
    return [f"{other_name.upper()} resampled onto {resample_to}'s grid (trilinear)"]


def register_files(
    fixed: str | os.PathLike, moving: str | os.PathLike, out: str | os.PathLike, request: RegistrationRequest
) -> Registration:
    """Register MOVING to FIXED and write MOVING resampled onto FIXED's grid as ``out``, as
    ``medfuse register`` does: two 2-D images (colour kept; any image format) or two volumes
    (NIfTI, or a DICOM series when FIXED is DICOM). A result that looks wrong is refused and
    nothing is written, unless ``request.force``. The outputs appear together or not at all,
    and a second run writing one of them at the same time is refused."""
    with output_locks(out, request.save_transform, request.check_image), written_together():
        return _register_files(fixed, moving, out, request)


def _register_files(
    fixed: str | os.PathLike, moving: str | os.PathLike, out: str | os.PathLike, request: RegistrationRequest
) -> Registration:
    path_fixed, path_moving = check_exists(fixed, moving)
    out = Path(out)
    is_volume = [is_volume_path(path) for path in (path_fixed, path_moving)]
    if is_volume[0] != is_volume[1]:
        from medfuse._shared.errors import RegistrationError

        raise RegistrationError("cannot register a 2-D image with a volume: give two images or two volumes")
    inputs = (path_fixed, path_moving)
    if is_volume[0]:
        check_volume_target(out, inputs)
        fixed_file, moving_file = read_volume(path_fixed), read_volume(path_moving)
        check_volume_format(out, fixed_file)
        if not is_nifti_path(out) and moving_file.modality != fixed_file.modality:
            raise VolumeFileError(
                f"{out}: a DICOM series output copies FIXED's {fixed_file.modality} slices, which "
                f"would label the registered {moving_file.modality or 'NIfTI'} image "
                f"{fixed_file.modality}; write NIfTI (.nii or .nii.gz) instead"
            )
        request.check_outputs(inputs)
        registration = registered(fixed_file.volume, moving_file.volume, request)
        assert isinstance(registration.moved, Volume)  # registered volumes give a volume
        data = registration.moved.data
        low, high = float(data.min()), float(data.max())
        summary = f"medfuse register {request.kind}: {moving_file.path.name} on {fixed_file.path.name}"
        description = (
            f"medfuse register, {request.kind}: {moving_file.path.name} registered to and resampled "
            f"onto {fixed_file.path.name}"
        )
        write_volume(
            out,
            data,
            fixed_file,
            summary,
            description,
            (low, high if high > low else low + 1),
            sources=(moving_file,),
            hounsfield=moving_file.modality == "CT",
        )
        write_registration_outputs(request, fixed_file.volume, moving_file.volume, registration)
        return registration
    fixed_image, moving_image = load_image(path_fixed), load_image(path_moving)
    check_image_target(out, inputs)
    request.check_outputs(inputs)
    from medfuse.clinical.registration import move_image

    registration = registered(grey_unit(fixed_image), grey_unit(moving_image), request)
    save_image(out, move_image(moving_image, fixed_image.shape, registration.transform))
    write_registration_outputs(request, grey_unit(fixed_image), grey_unit(moving_image), registration)
    return registration
