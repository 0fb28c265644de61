"""``medfuse register``: :func:`medfuse.clinical.pipeline.register_files` on the command line;
what ``medfuse fuse --register`` does before fusing."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from medfuse.clinical.registration import TRANSFORMS

if TYPE_CHECKING:
    from medfuse.clinical.pipeline import RegistrationRequest
    from medfuse.clinical.registration import Registration

T = TypeVar("T")
TRANSFORM_HELP = (
    "MOVING registered to FIXED by Mattes mutual information, multi-resolution, a rigid stage "
    "(rotation and shift) and for 'affine' an affine one after it (scale and shear too)"
)


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser(
        "register",
        help=summary,
        description="Register MOVING to FIXED (e.g. a CT or PET to the MRI of the same patient) and write "
        "MOVING resampled onto FIXED's grid as OUT: NIfTI (.nii/.nii.gz) or, when FIXED is DICOM, a DICOM "
        "series folder for volumes; PNG, TIFF, JPEG or BMP for 2-D images (colour kept). "
        f"{TRANSFORM_HELP}; the same inputs give the same transform. It prints the mutual information "
        "before and after, the rotation, translation (mm for volumes, pixels for 2-D images) and, for "
        "affine, scale and shear. A multi-start search finds rotations up to 90 degrees (2-D) or 45 (3-D). "
        "A result that looks wrong (the mutual information fell, a rotation over 100 degrees in 2-D or 60 in "
        "3-D, a shift over a third of the field of view, another start that fits about as well, an unstable "
        "optimum, or single slices of two modalities with over 3% of an object beyond the other's edge where "
        "its object is cut) is refused and nothing is written, "
        "unless --force. Single 2-D slices of two modalities have no reliable self-check: their result comes "
        "with a warning saying so; look at it (--check-image). "
        "In Python: medfuse.register_files(FIXED, MOVING, OUT, ...).",
    )
    parser.add_argument("fixed", help="the image or volume that stays (e.g. the MRI)")
    parser.add_argument("moving", help="the image or volume that moves onto it (e.g. the CT)")
    parser.add_argument("-o", "--out", required=True, help="MOVING resampled onto FIXED's grid")
    parser.add_argument("--transform", choices=TRANSFORMS, default="rigid", help="rigid (default) or affine")
    add_registration_outputs(parser)
    parser.set_defaults(run=run)


def add_registration_outputs(parser: argparse.ArgumentParser) -> None:
    """--save-transform, --check-image and --force (register and fuse --register)."""
    parser.add_argument(
        "--save-transform",
        metavar="T.tfm",
        help="also write the transform in ITK's text format (.tfm or .txt): physical LPS "
        "coordinates, FIXED to MOVING, as SimpleITK.ReadTransform and 3D Slicer read it",
    )
    parser.add_argument(
        "--check-image",
        metavar="CHECK.png",
        help="also write checkerboards of FIXED with MOVING before and after registration "
        "(for volumes the middle slice of each plane)",
    )
    parser.add_argument("--force", action="store_true", help="accept a result that looks wrong")


def registration_request(args: argparse.Namespace, kind: str | None) -> RegistrationRequest | None:
    """What the registration options ask for; None without a transform kind."""
    if kind is None:
        return None
    from medfuse.clinical.pipeline import RegistrationRequest

    return RegistrationRequest(
        kind,
        Path(args.save_transform) if args.save_transform else None,
        Path(args.check_image) if args.check_image else None,
        args.force,
    )


def print_registration(registration: Registration, unit: str, args: argparse.Namespace) -> None:
    """What the registration found, what was accepted with --force, what was written."""
    print(registration.describe(unit))
    if registration.doubts:
        print("accepted with --force although: " + "; ".join(registration.doubts))
    if args.save_transform:
        print(f"transform written to {args.save_transform}")
    if args.check_image:
        print(f"check image written to {args.check_image}")


def showing_refusals(work: Callable[[], T], unit: str) -> T:
    """``work()``; a registration it refuses is shown (what it found) before the error goes on."""
    from medfuse._shared.errors import RegistrationError

    try:
        return work()
    except RegistrationError as error:
        from medfuse.clinical.registration import Registration

        if isinstance(error.registration, Registration):  # the refused result (None where there is none)
            print(error.registration.describe(unit))
        raise


def run(args: argparse.Namespace) -> None:
    from medfuse.clinical.pipeline import register_files
    from medfuse.io.volumes import is_volume_path

    unit = "mm" if is_volume_path(Path(args.fixed)) else "pixels"
    request = registration_request(args, args.transform)
    assert request is not None  # --transform has a default
    registration = showing_refusals(lambda: register_files(args.fixed, args.moving, args.out, request), unit)
    print_registration(registration, unit, args)
    print(f"moved image written to {args.out}")
