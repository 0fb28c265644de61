"""``medfuse register``: MOVING registered to FIXED (rigid or affine, SimpleITK) and resampled
onto FIXED's grid; what ``medfuse fuse --register`` does before fusing."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medfuse.cli.common import UserError, check_image_output
from medfuse.cli.volume import check_volume_output
from medfuse.images import grey_unit
from medfuse.io import ImageFileError, check_folder_writable, load_image, save_image
from medfuse.registration import (
    TRANSFORMS,
    Registration,
    RegistrationError,
    check_picture,
    implausibilities,
    move_image,
    register,
    write_transform,
)
from medfuse.volume_io import VolumeFile, VolumeFileError, is_nifti_path, is_volume_path, read_volume, write_volume
from medfuse.volumes import Volume

TRANSFORM_HELP = ("MOVING registered to FIXED by Mattes mutual information, multi-resolution, a rigid stage "
                  "(rotation and shift) and for 'affine' an affine one after it (scale and shear too)")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "register",
        help="register MOVING to FIXED (rigid or affine) and resample it onto FIXED's grid",
        description="Register MOVING to FIXED (e.g. a CT or PET to the MRI of the same patient) and write "
        "MOVING resampled onto FIXED's grid as OUT: NIfTI (.nii/.nii.gz) or, when FIXED is DICOM, a DICOM "
        "series folder for volumes; PNG, TIFF, JPEG or BMP for 2-D images (colour kept). "
        f"{TRANSFORM_HELP}; the same inputs give the same transform. It prints the mutual information "
        "before and after, the rotation, translation (mm for volumes, pixels for 2-D images) and, for "
        "affine, scale and shear. A result that looks wrong (the mutual information fell, a rotation over "
        "30 degrees or a shift over a third of the field of view) is refused and nothing is written, "
        "unless --force.",
    )
    parser.add_argument("fixed", help="the image or volume that stays (e.g. the MRI)")
    parser.add_argument("moving", help="the image or volume that moves onto it (e.g. the CT)")
    parser.add_argument("-o", "--out", required=True, help="MOVING resampled onto FIXED's grid")
    parser.add_argument("--transform", choices=TRANSFORMS, default="rigid", help="rigid (default) or affine")
    add_registration_outputs(parser)
    parser.set_defaults(run=run)


def add_registration_outputs(parser: argparse.ArgumentParser) -> None:
    """--save-transform, --check-image and --force (register and fuse --register)."""
    parser.add_argument("--save-transform", metavar="T.tfm",
                        help="also write the transform in ITK's text format (.tfm or .txt): physical LPS "
                        "coordinates, FIXED to MOVING, as SimpleITK.ReadTransform and 3D Slicer read it")
    parser.add_argument("--check-image", metavar="CHECK.png",
                        help="also write checkerboards of FIXED with MOVING before and after registration "
                        "(for volumes the middle slice of each plane)")
    parser.add_argument("--force", action="store_true", help="accept a result that looks wrong")


def check_registration_outputs(args: argparse.Namespace, inputs: tuple[Path, Path]) -> None:
    """UserError unless the transform and check-image paths (if given) can be written."""
    for option, path, suffixes in (("--save-transform", args.save_transform, (".tfm", ".txt")),
                                   ("--check-image", args.check_image, (".png", ".tif", ".tiff"))):
        if path is None:
            continue
        path = Path(path)
        if path.suffix.lower() not in suffixes:
            raise UserError(f"{option} {path}: use a name ending in {' or '.join(suffixes)}")
        if any(path.resolve() == given.resolve() for given in inputs):
            raise UserError(f"{option} {path} is one of the inputs; choose another path")
        if not path.parent.is_dir():
            raise UserError(f"{option} {path}: folder {path.parent} does not exist")
        check_folder_writable(path)


def registered(fixed: Volume | np.ndarray, moving: Volume | np.ndarray, args: argparse.Namespace,
               kind: str, unit: str) -> Registration:
    """Register and report; a refusal (unless --force) or bad input is a UserError."""
    try:
        registration = register(fixed, moving, kind)
    except RegistrationError as error:
        raise UserError(str(error)) from None
    print(f"registered ({kind}) in {registration.seconds:.1f} s: mutual information "
          f"{registration.metric_before:.4f} before, {registration.metric_after:.4f} after; "
          f"{registration.transform.describe(unit)}")
    problems = implausibilities(registration, fixed)
    if problems and not args.force:
        raise UserError("the registration looks wrong: " + "; ".join(problems) + "; nothing was written "
                        "(--force accepts it)")
    if problems:
        print("accepted with --force although: " + "; ".join(problems))
    return registration


def write_registration_outputs(args: argparse.Namespace, fixed: Volume | np.ndarray, moving: Volume | np.ndarray,
                               registration: Registration) -> None:
    if args.save_transform:
        write_transform(registration.transform, args.save_transform)
        print(f"transform written to {args.save_transform}")
    if args.check_image:
        save_image(args.check_image, check_picture(fixed, moving, registration))
        print(f"check image written to {args.check_image}")


def _read_pair(path_fixed: Path, path_moving: Path) -> tuple[bool, object, object]:
    for path in (path_fixed, path_moving):
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
    volumes = [is_volume_path(path) for path in (path_fixed, path_moving)]
    if volumes[0] != volumes[1]:
        raise UserError("cannot register a 2-D image with a volume: give two images or two volumes")
    try:
        if volumes[0]:
            return True, read_volume(path_fixed), read_volume(path_moving)
        return False, load_image(path_fixed), load_image(path_moving)
    except (ImageFileError, VolumeFileError) as error:
        raise UserError(str(error)) from None


def run(args: argparse.Namespace) -> None:
    path_fixed, path_moving, out = Path(args.fixed), Path(args.moving), Path(args.out)
    is_volume, fixed, moving = _read_pair(path_fixed, path_moving)
    if is_volume:
        check_volume_output(out, (path_fixed, path_moving))
        if not is_nifti_path(out) and fixed.kind != "dicom":
            raise UserError(f"{out}: the output must end in .nii or .nii.gz (a DICOM series is written only "
                            "when FIXED is DICOM)")
    else:
        check_image_output(out, (path_fixed, path_moving))
    check_registration_outputs(args, (path_fixed, path_moving))
    if is_volume:
        registration = registered(fixed.volume, moving.volume, args, args.transform, "mm")
        _write_moved_volume(out, registration.moved.data, fixed, moving, args.transform)
        write_registration_outputs(args, fixed.volume, moving.volume, registration)
    else:
        registration = registered(grey_unit(fixed), grey_unit(moving), args, args.transform, "pixels")
        moved = move_image(moving, fixed.shape, registration.transform)
        try:
            save_image(out, moved)
        except ImageFileError as error:
            raise UserError(str(error)) from None
        write_registration_outputs(args, grey_unit(fixed), grey_unit(moving), registration)
    print(f"moved image written to {out}")


def _write_moved_volume(out: Path, data: np.ndarray, fixed: VolumeFile, moving: VolumeFile, kind: str) -> None:
    low, high = float(data.min()), float(data.max())
    summary = f"medfuse register {kind}: {moving.path.name} on {fixed.path.name}"
    description = f"medfuse register, {kind}: {moving.path.name} registered to and resampled onto {fixed.path.name}"
    try:
        write_volume(out, data, fixed, summary, description, (low, high if high > low else low + 1))
    except VolumeFileError as error:
        raise UserError(str(error)) from None
