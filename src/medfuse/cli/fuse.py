"""``medfuse fuse``: :func:`medfuse.clinical.pipeline.fuse_files` on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medfuse._shared.errors import InputError
from medfuse.cli import deferred_epilog
from medfuse.cli.common import (
    add_model_arguments,
    add_volume_arguments,
    given_volume_options,
    progress_bar,
    rules_epilog,
    show_progress,
    volume_options,
)
from medfuse.cli.register import (
    TRANSFORM_HELP,
    TRANSFORMS,
    add_registration_outputs,
    print_registration,
    registration_request,
    showing_refusals,
)
from medfuse.clinical import FOLDER_SUFFIX

DESCRIPTION = (
    "Fuse two registered images of one size, e.g. MRI with CT, PET or SPECT, with a DRAN model and a fusion "
    "rule. A colour (PET/SPECT) image is fused through YCbCr: its luminance is fused, its colour kept. Reads "
    "and writes PNG, JPEG, TIFF and BMP, 8 or 16 bit; a 16-bit input gives a 16-bit output. If A and B are "
    "folders, every pair of files with the same name (ignoring the suffix) is fused into the folder OUT. Two "
    "volumes (NIfTI .nii/.nii.gz, a DICOM file, or a folder holding one DICOM series) are fused slice by slice "
    "along their third (slice) axis into a NIfTI file (OUT ending in .nii or .nii.gz) or, when the reference "
    "input is DICOM, a DICOM series folder OUT, with the reference's geometry. Their intensities are first "
    "mapped to [0, 1]: a CT window for the CT input, percentile clipping otherwise. On a GPU (--device cuda), "
    "the slices of a volume and consecutive folder pairs of one size go through the network in batches sized "
    "to the free GPU memory; work that cannot fit is refused before it starts. In Python: "
    "medfuse.fuse_files(A, B, OUT, ...)."
)


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser("fuse", help=summary, description=DESCRIPTION, epilog=deferred_epilog(rules_epilog))
    parser.add_argument("a", help="first image (e.g. the MRI), or a folder of them, or a volume")
    parser.add_argument("b", help="second image (e.g. CT, PET or SPECT), or a folder of them, or a volume")
    parser.add_argument(
        "-o", "--out", required=True, help="output image (its suffix picks the format), or output folder in folder mode"
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--weight-map",
        metavar="PATH",
        help="also write A's weight at every pixel (B's is 1 - it): a 16-bit grey PNG or TIFF for two "
        "images (65535 = all A), a float32 NIfTI (.nii, .nii.gz) for two volumes; for rules with a "
        "weight map (not the feature rules, which mix the network's features)",
    )
    parser.add_argument(
        "--colour-map",
        choices=("hot",),
        help="two volumes into NIfTI: write an RGB NIfTI, the fusion's brightness in the colours of B "
        "(e.g. the PET or SPECT) through this colour map, as 2-D fusion keeps a colour source's colour",
    )
    parser.add_argument(
        "--suffix",
        default=FOLDER_SUFFIX,
        help=f"folder mode: suffix of the written files (default {FOLDER_SUFFIX}; 16-bit colour "
        "results are written as .tif)",
    )
    group = parser.add_argument_group("registration (one pair of images, or two volumes)")
    group.add_argument(
        "--register", choices=TRANSFORMS, help=f"register B to A first: {TRANSFORM_HELP}; see medfuse register --help"
    )
    add_registration_outputs(group)
    add_volume_arguments(parser)
    parser.set_defaults(run=run)


def _check_options(args: argparse.Namespace, volumes: bool, folders: bool) -> None:
    """Refuse options that do not fit the inputs, naming them."""
    if not volumes and given_volume_options(args):
        raise InputError(
            f"{', '.join(given_volume_options(args))}: only for volumes (NIfTI or DICOM), not for 2-D images"
        )
    if args.register is None:
        given = [
            name
            for name, value in (
                ("--save-transform", args.save_transform),
                ("--check-image", args.check_image),
                ("--force", args.force),
            )
            if value
        ]
        if given:
            raise InputError(f"{', '.join(given)}: only with --register")
    elif args.resample_to is not None:
        raise InputError("--register and --resample-to: choose one (registration puts B on A's grid)")
    if folders and (args.register or args.weight_map):
        raise InputError(
            f"{'--register' if args.register else '--weight-map'}: for one pair of images or two "
            "volumes, not for folders"
        )
    if not volumes and not folders and args.batch_size is not None:
        raise InputError("--batch-size: only for two folders or two volumes, not for one pair of images")


def run(args: argparse.Namespace) -> None:
    from medfuse._shared.checks import check_exists
    from medfuse.clinical.pipeline import fuse_files
    from medfuse.io.volumes import is_volume_path

    path_a, path_b = check_exists(args.a, args.b)
    volumes = is_volume_path(path_a) or is_volume_path(path_b)
    if not volumes and path_a.is_dir() != path_b.is_dir():
        raise InputError("A and B must both be files or both be folders")
    _check_options(args, volumes, path_a.is_dir() and not volumes)
    unit = "mm" if volumes else "pixels"
    progress, close = progress_bar("fusing", show_progress(args))
    try:
        result = showing_refusals(
            lambda: fuse_files(
                path_a,
                path_b,
                Path(args.out),
                rule=args.rule,
                model=args.weights,
                device=args.device,
                register=registration_request(args, args.register),
                batch_size=args.batch_size,
                volume=volume_options(args) if volumes else None,
                suffix=args.suffix,
                progress=progress,
                weight_map=args.weight_map,
                colour_map=args.colour_map,
            ),
            unit,
        )
    finally:
        close()
    if result.registration is not None:
        print_registration(result.registration, unit, args)
    if result.kind == "folder":
        print(f"fused {result.fused} of {result.pairs} pairs into {result.out}")
        if result.failures:
            raise InputError(f"{len(result.failures)} pair(s) failed: " + "; ".join(result.failures))
        return
    print(f"fused {'volume' if result.kind == 'volume' else 'image'} written to {result.out}")
    if result.shares is not None:
        print(f"{result.describe_shares()} (A {args.a}, B {args.b}; rule {args.rule})")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.weight_map is not None:
        print(f"weight map of A written to {result.weight_map}")
