"""Volume fusion for the command line (``medfuse fuse`` on volumes, ``medfuse batch``):
read two volumes, map their intensities to [0, 1], check or align their grids, fuse slice
by slice, write the result with the reference's geometry and a record of what was done."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from medfuse.cli.common import UserError, memory_error
from medfuse.fusion import CPU_BATCH_SIZE, MAX_CUDA_BATCH_SIZE, MEMORY_SHARE, NotEnoughMemoryError, plan_batch
from medfuse.intensity import CT_WINDOWS, DEFAULT_PERCENTILES, CtWindow, check_percentiles, normalise
from medfuse.io import check_folder_writable
from medfuse.rules import FusionRule
from medfuse.volume_io import VolumeFileError, is_nifti_path, read_volume, write_volume
from medfuse.volumes import (
    GridMismatchError,
    Volume,
    check_same_grid,
    fuse_volumes,
    resample,
)

RESAMPLE_HELP = ("resample the other volume onto the grid of A (or B) by trilinear interpolation; the "
                 "output takes that grid. This is NOT registration: it only helps volumes that already "
                 "lie in one world space (e.g. one scanner session), it cannot correct movement")


@dataclass(frozen=True)
class VolumeOptions:
    """How two volumes are prepared: the CT window and the input it applies to ("a" or "b"),
    the percentiles for the other input(s), the grid to resample onto ("A", "B" or None) and
    the number of slices per network batch."""

    window: CtWindow | None = None
    window_on: str = "b"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    resample_to: str | None = None
    batch_size: int | None = None


def add_volume_arguments(parser: argparse.ArgumentParser, window: bool = True) -> None:
    """The volume options; ``window=False`` leaves out --window/--level/--width (batch takes
    the window from its manifest)."""
    group = parser.add_argument_group("volumes (NIfTI .nii/.nii.gz, a DICOM file or a folder of one DICOM series)")
    if window:
        group.add_argument("--window", choices=sorted(CT_WINDOWS),
                           help="CT window by name for the CT input (see --window-on): brain L40 W80, "
                           "subdural L75 W215, bone L600 W2800, soft-tissue L50 W400 (HU)")
        group.add_argument("--level", type=float, help="CT window level in HU (with --width)")
        group.add_argument("--width", type=float, help="CT window width in HU (with --level)")
    group.add_argument("--window-on", choices=("a", "b"), default=None,
                       help="which input is the CT that the window applies to (default b)")
    group.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                       help="inputs without a window (MRI, PET, SPECT) are clipped at these percentiles "
                       f"and scaled to [0, 1] (default {DEFAULT_PERCENTILES[0]:g} {DEFAULT_PERCENTILES[1]:g})")
    group.add_argument("--resample-to", choices=("A", "B"), default=None, help=RESAMPLE_HELP)
    group.add_argument("--batch-size", type=int, default=None,
                       help="slices (or, for folders of 2-D images, pairs of one size) per network batch "
                       f"(default {CPU_BATCH_SIZE} on the CPU, where larger batches measured slower; on CUDA "
                       f"as many as fit in {MEMORY_SHARE * 100:.0f}%% of the free GPU memory, at most "
                       f"{MAX_CUDA_BATCH_SIZE})")


def given_volume_options(args: argparse.Namespace) -> list[str]:
    """The volume options set on the command line (to refuse them for 2-D images)."""
    names = ("window", "level", "width", "window_on", "percentiles", "resample_to")
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name, None) is not None]


def parse_window(text: str | None) -> CtWindow | None:
    """A window from text (name or LEVEL/WIDTH); None for empty text; UserError if invalid."""
    if text is None or not text.strip():
        return None
    try:
        return CtWindow.parse(text)
    except ValueError as error:
        raise UserError(str(error)) from None


def volume_options(args: argparse.Namespace) -> VolumeOptions:
    """Validated :class:`VolumeOptions` from the parsed arguments; UserError if inconsistent."""
    window = None
    level, width = getattr(args, "level", None), getattr(args, "width", None)
    if getattr(args, "window", None) is not None:
        if level is not None or width is not None:
            raise UserError("give --window or --level/--width, not both")
        window = CtWindow.named(args.window)
    elif level is not None or width is not None:
        if level is None or width is None:
            raise UserError("an explicit CT window needs both --level and --width (HU)")
        try:
            window = CtWindow(level, width)
        except ValueError as error:
            raise UserError(str(error)) from None
    percentiles = DEFAULT_PERCENTILES
    if args.percentiles is not None:
        try:
            percentiles = check_percentiles(*args.percentiles)
        except ValueError as error:
            raise UserError(f"--percentiles: {error}") from None
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    return VolumeOptions(window, args.window_on or "b", percentiles, args.resample_to, args.batch_size)


def check_volume_output(out: Path, inputs: tuple[Path, Path]) -> None:
    """UserError unless ``out`` can take a volume: not an input, in a folder that exists and takes
    files; a NIfTI name, or a DICOM series folder that does not exist yet."""
    for path in inputs:
        if out.resolve() == path.resolve():
            raise UserError(f"output {out} is one of the inputs; choose another path")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    if is_nifti_path(out):
        if out.is_dir():
            raise UserError(f"output {out} is a folder; give a .nii or .nii.gz file name")
    elif out.exists():
        raise UserError(f"output {out} already exists; a DICOM series is written into a new folder")
    check_folder_writable(out)


def fuse_volume_files(path_a: Path, path_b: Path, out: Path, model: torch.nn.Module, rule: FusionRule,
                      rule_name: str, options: VolumeOptions, progress: bool = True,
                      align: Callable[[Volume, Volume], tuple[Volume, str]] | None = None) -> Path:
    """Fuse volume files A and B into ``out`` (NIfTI for .nii/.nii.gz, else a DICOM series
    folder, which needs a DICOM reference). The reference grid is A's, or that of
    ``options.resample_to``; ``align(A, B)``, if given, returns B on A's grid (registered) and a
    note for the record. Every user error is a UserError, raised before anything is written."""
    check_volume_output(out, (path_a, path_b))
    try:
        files = {"a": read_volume(path_a), "b": read_volume(path_b)}
    except VolumeFileError as error:
        raise UserError(str(error)) from None
    unit, mappings = {}, {}
    for name, file in files.items():
        window = options.window if name == options.window_on else None
        try:
            unit[name], mappings[name] = normalise(file.volume.data, window, options.percentiles)
        except ValueError as error:
            raise UserError(f"{file.path}: {error}") from None
    reference_name = (options.resample_to or "A").lower()
    other_name = "b" if reference_name == "a" else "a"
    reference = files[reference_name]
    notes = []
    if align is not None:
        volume_a, volume_b = (Volume(unit[name], files[name].volume.geometry) for name in ("a", "b"))
        moved, note = align(volume_a, volume_b)
        unit["b"] = moved.data
        notes.append(note)
    elif options.resample_to is None:
        try:
            check_same_grid(files["a"].volume, files["b"].volume)
        except GridMismatchError as error:
            raise UserError(f"{error} (--register rigid registers B to A; --resample-to A only resamples B "
                            "onto A's grid, for volumes that already lie in one world space)") from None
    else:
        other = files[other_name].volume
        resampled = resample(Volume(unit[other_name], other.geometry), reference.volume.shape,
                             reference.volume.geometry)
        unit[other_name] = resampled.data
        notes.append(f"{other_name.upper()} resampled onto {reference_name.upper()}'s grid (trilinear)")
    if not is_nifti_path(out) and reference.kind != "dicom":
        raise UserError(f"{out}: the output must end in .nii or .nii.gz (a DICOM series is written only when "
                        "the reference input is DICOM)")
    width, height, depth = reference.volume.shape
    if min(width, height) < 2:
        raise UserError(f"{reference.path}: slices of {width} x {height} voxels; the network needs at least 2 x 2")
    try:
        batch_size = plan_batch(next(model.parameters()).device, height, width, options.batch_size)
    except NotEnoughMemoryError as error:
        raise memory_error(error, options.batch_size) from None
    with tqdm(total=depth, desc="fusing", unit="slice", disable=not progress) as bar:
        fused = fuse_volumes(model, unit["a"], unit["b"], rule, batch_size, bar.update)
    summary = f"medfuse {rule_name}: A {mappings['a'].brief()}; B {mappings['b'].brief()}"
    description = "; ".join([
        f"medfuse fuse, rule {rule_name}, output in [0, 1]",
        f"A {files['a'].path.name}: {mappings['a'].describe()}",
        f"B {files['b'].path.name}: {mappings['b'].describe()}",
        *notes,
    ])
    try:
        suffix = "; registered" if align is not None else "; resampled" if notes else ""
        return write_volume(out, fused, reference, summary + suffix, description)
    except VolumeFileError as error:
        raise UserError(str(error)) from None
