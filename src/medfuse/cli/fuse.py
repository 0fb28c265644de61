"""``medfuse fuse``: fuse two image files, every pair of two folders matched by name, or two
volumes (NIfTI, DICOM) slice by slice."""

from __future__ import annotations

import argparse
import sys
from itertools import chain
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from medfuse.cli.common import UserError, check_image_output, memory_error, torch_device
from medfuse.cli.register import (
    TRANSFORM_HELP,
    add_registration_outputs,
    check_registration_outputs,
    registered,
    write_registration_outputs,
)
from medfuse.cli.volume import add_volume_arguments, fuse_volume_files, given_volume_options, volume_options
from medfuse.composition import check_pair
from medfuse.fusion import NotEnoughMemoryError, fuse, fuse_pairs, plan_batch
from medfuse.images import grey_unit
from medfuse.io import IMAGE_SUFFIXES, ImageFileError, check_writable, images_by_stem, load_image, save_image
from medfuse.models import DEFAULT_MODEL, load_model
from medfuse.registration import TRANSFORMS, move_image
from medfuse.rules import DEFAULT_RULE, FusionRule, get_rule, list_rules
from medfuse.volume_io import is_volume_path
from medfuse.volumes import Volume


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fuse",
        help="fuse two registered images (or two folders of them)",
        description="Fuse two registered images of one size, e.g. MRI with CT, PET or SPECT, with a "
        "DRAN model and a fusion rule. A colour (PET/SPECT) image is fused through YCbCr: its "
        "luminance is fused, its colour kept. Reads and writes PNG, JPEG, TIFF and BMP, 8 or 16 "
        "bit; a 16-bit input gives a 16-bit output. If A and B are folders, every pair of files "
        "with the same name (ignoring the suffix) is fused into the folder OUT. Two volumes (NIfTI "
        ".nii/.nii.gz, a DICOM file, or a folder holding one DICOM series) are fused slice by slice "
        "along their third (slice) axis into a NIfTI file (OUT ending in .nii or .nii.gz) or, when the "
        "reference input is DICOM, a DICOM series folder OUT, with the reference's geometry. Their "
        "intensities are first mapped to [0, 1]: a CT window for the CT input, percentile clipping otherwise. "
        "On a GPU (--device cuda), the slices of a volume and consecutive folder pairs of one size go "
        "through the network in batches sized to the free GPU memory; work that cannot fit is refused "
        "before it starts.",
        epilog=f"rules: {', '.join(list_rules())}",
    )
    parser.add_argument("a", help="first image (e.g. the MRI), or a folder of them, or a volume")
    parser.add_argument("b", help="second image (e.g. CT, PET or SPECT), or a folder of them, or a volume")
    parser.add_argument("-o", "--out", required=True,
                        help="output image (its suffix picks the format), or output folder in folder mode")
    parser.add_argument("--rule", default=DEFAULT_RULE,
                        help=f"fusion rule (default {DEFAULT_RULE}: both sources' detail kept whole at "
                        "lesion scales, their brightness blended by the network's weights, for grey + grey "
                        "and grey + colour alike; sfnn-map-e4, the previous default, leans to one source; "
                        "the list is below)")
    parser.add_argument("--weights", default=DEFAULT_MODEL,
                        help=f"shipped model name or safetensors path (default {DEFAULT_MODEL})")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--suffix", default=".png",
                        help="folder mode: suffix of the written files (default .png; 16-bit colour "
                        "results are written as .tif)")
    group = parser.add_argument_group("registration (one pair of images, or two volumes)")
    group.add_argument("--register", choices=TRANSFORMS,
                       help=f"register B to A first: {TRANSFORM_HELP}; see medfuse register --help")
    add_registration_outputs(group)
    add_volume_arguments(parser)
    parser.set_defaults(run=run)


def _prepare(args: argparse.Namespace) -> tuple[torch.nn.Module, FusionRule]:
    try:
        rule = get_rule(args.rule)
    except ValueError as error:
        raise UserError(str(error)) from None
    device = torch_device(args.device)
    try:
        model = load_model(args.weights, device)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        raise UserError(f"--weights: {error}") from None
    return model, rule


def _load_pair(path_a: Path, path_b: Path) -> tuple[np.ndarray, np.ndarray]:
    """Both images of a pair, or an ImageFileError naming them (unreadable, or of two sizes)."""
    image_a, image_b = load_image(path_a), load_image(path_b)
    try:
        check_pair(image_a, image_b)
    except ValueError as error:  # e.g. two sizes, or an image too small for the network
        raise ImageFileError(f"{path_a.name} and {path_b.name}: {error} (the images must be registered "
                             "to one grid)") from None
    return image_a, image_b


def _same_path(first: Path, second: Path) -> bool:
    return first.resolve() == second.resolve()


def run(args: argparse.Namespace) -> None:
    path_a, path_b, out = Path(args.a), Path(args.b), Path(args.out)
    for path in (path_a, path_b):
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
    if is_volume_path(path_a) or is_volume_path(path_b):
        run_volumes(path_a, path_b, out, args)
        return
    if given_volume_options(args):
        raise UserError(f"{', '.join(given_volume_options(args))}: only for volumes (NIfTI or DICOM), "
                        "not for 2-D images")
    if path_a.is_dir() != path_b.is_dir():
        raise UserError("A and B must both be files or both be folders")
    if args.register is None:
        options = (("--save-transform", args.save_transform), ("--check-image", args.check_image),
                   ("--force", args.force))
        given = [name for name, value in options if value]
        if given:
            raise UserError(f"{', '.join(given)}: only with --register")
    elif args.resample_to is not None:
        raise UserError("--register and --resample-to: choose one (registration puts B on A's grid)")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if path_a.is_dir():
        if args.register:
            raise UserError("--register: for one pair of images or two volumes, not for folders")
        run_folders(path_a, path_b, out, args)
        return
    if args.batch_size is not None:
        raise UserError("--batch-size: only for two folders or two volumes, not for one pair of images")
    check_image_output(out, (path_a, path_b))
    if args.register:
        check_registration_outputs(args, (path_a, path_b))
    model, rule = _prepare(args)
    try:
        image_a, image_b = _registered_pair(path_a, path_b, args) if args.register else _load_pair(path_a, path_b)
        save_image(out, fuse(image_a, image_b, rule=rule, model=model))
    except (ImageFileError, NotEnoughMemoryError) as error:
        raise UserError(str(error)) from None
    print(f"fused image written to {out}")


def _registered_pair(path_a: Path, path_b: Path, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """A, and B registered to A and resampled onto its grid (any sizes)."""
    image_a, image_b = load_image(path_a), load_image(path_b)
    grey_a, grey_b = grey_unit(image_a), grey_unit(image_b)
    registration = registered(grey_a, grey_b, args, args.register, "pixels")
    write_registration_outputs(args, grey_a, grey_b, registration)
    return image_a, move_image(image_b, image_a.shape, registration.transform)


def run_volumes(path_a: Path, path_b: Path, out: Path, args: argparse.Namespace) -> None:
    for path in (path_a, path_b):
        if not is_volume_path(path):
            raise UserError(f"{path}: not a volume (NIfTI .nii/.nii.gz, DICOM file or DICOM series folder), "
                            "but the other input is one; fuse two volumes or two 2-D images")
    options = volume_options(args)
    if args.register:
        check_registration_outputs(args, (path_a, path_b))
    model, rule = _prepare(args)

    def align(volume_a: Volume, volume_b: Volume) -> tuple[Volume, str]:
        registration = registered(volume_a, volume_b, args, args.register, "mm")
        write_registration_outputs(args, volume_a, volume_b, registration)
        return registration.moved, f"B registered to A ({args.register}): {registration.transform.describe('mm')}"

    fuse_volume_files(path_a, path_b, out, model, rule, args.rule, options, align=align if args.register else None)
    print(f"fused volume written to {out}")


def run_folders(folder_a: Path, folder_b: Path, out: Path, args: argparse.Namespace) -> None:
    if _same_path(out, folder_a) or _same_path(out, folder_b):
        raise UserError(f"output folder {out} is one of the input folders; choose another")
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} is a file; folder mode needs an output folder")
    suffix = args.suffix if args.suffix.startswith(".") else f".{args.suffix}"
    if suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"--suffix {args.suffix}: use one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        files_a, files_b = images_by_stem(folder_a), images_by_stem(folder_b)
    except ImageFileError as error:
        raise UserError(str(error)) from None
    names = sorted(files_a.keys() & files_b.keys())
    for name in sorted(files_a.keys() ^ files_b.keys()):
        alone = files_a.get(name) or files_b.get(name)
        print(f"medfuse fuse: warning: {alone} has no partner of the same name; skipped", file=sys.stderr)
    if not names:
        raise UserError(f"no images with the same name in {folder_a} and {folder_b}")
    model, rule = _prepare(args)
    failures = []
    with tqdm(total=len(names), desc="fusing", unit="pair", delay=0.5) as bar:

        def readable_pairs() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
            for name in names:
                try:
                    yield (name, *_load_pair(files_a[name], files_b[name]))
                except ImageFileError as error:
                    failures.append(str(error))
                    bar.update(1)

        pairs = readable_pairs()
        first = next(pairs, None)
        try:
            if first is not None:
                plan_batch(next(model.parameters()).device, *first[1].shape[:2], args.batch_size)
            out.mkdir(parents=True, exist_ok=True)
            fused_pairs = fuse_pairs(chain([first] if first else [], pairs), rule, model, batch_size=args.batch_size)
            for name, fused in fused_pairs:
                target = out / f"{name}{suffix}"
                try:
                    check_writable(target, fused)
                except ImageFileError:
                    target = target.with_suffix(".tif")
                save_image(target, fused)
                bar.update(1)
        except NotEnoughMemoryError as error:
            bar.leave = False
            raise memory_error(error, args.batch_size) from None
    print(f"fused {len(names) - len(failures)} of {len(names)} pairs into {out}")
    if failures:
        raise UserError(f"{len(failures)} pair(s) failed: " + "; ".join(failures))

