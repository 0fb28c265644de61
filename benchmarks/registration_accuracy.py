"""How well ``medfuse.clinical.registration.register`` recovers known transforms, and how fast.

    python benchmarks/registration_accuracy.py [--data ../shared/data/havard] [--trials 20] [--seed 0]
        [--degrees-2d 10] [--shift-2d 10] [--degrees-3d 10] [--shift-3d 10] [--no-speed]
        [--sets volumes,MRI,CT-MRI,PET-MRI,SPECT-MRI]

The rotations and shifts of the random transforms are drawn up to the given bounds (default 10
degrees and 10 pixels or mm; issue 21's goal: 90 degrees and a quarter of the field of view in
2-D, 45 degrees in 3-D). A case is silently wrong when its mean residual exceeds 2 pixels or mm and
it was not refused (for the Havard pairs also measured against where registration puts the
unmoved pair, since the pairs' own alignment differs from mutual information's by 1 to 3 pixels,
and how many unmoved pairs were refused as they came); each result's reported uncertainty
(``Registration.uncertainty``) is summarised. Each case also reports the search's margin: the coarse mutual
information of the best start that ended elsewhere, as a share of the best's.

Every case moves an image by a known random rigid transform T (``resample_onto``: the moved
image at p is the source at T(p)) and registers the moved image back to a fixed image; a
perfect result R has T(R(p)) = p, so the residual at p is |T(R(p)) - p|, taken over the
object (brain voxels, foreground pixels), in mm for volumes and pixels for 2-D images.

1. Volumes: nibabel's bundled ``anatomical.nii`` (a T1, 33 x 41 x 25 at 2 mm) moved, against a
   CT-like fixed image made from it by a non-monotonic intensity remap; rotations up to 10
   degrees about each axis, shifts up to 10 mm. Goal: mean residual under 1 mm, maximum under 2.
2. 2-D, same modality: each MRI image moved (rotation up to 10 degrees, shift up to 10 pixels)
   and registered back to itself. Goal: under 0.5 pixel.
3. 2-D, across modalities (with ``--data``): the Havard test pairs (registered already), CT,
   PET or SPECT (its Y channel) moved and registered to the MRI. No goal: single slices of two
   modalities carry little mutual information, and this says how little.
4. Speed: a 256 x 256 x 128 pair (the T1 and its remap, upsampled, 0.9 x 0.9 x 1.2 mm),
   rigid, on this machine's threads. Goal: under 30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nibabel
import numpy as np
import torch
from scipy.ndimage import zoom
from scipy.spatial.transform import Rotation

import medfuse
from medfuse.clinical.registration import (
    RAS_TO_LPS,
    LinearTransform,
    field_of_view,
    implausibilities,
    register,
    resample_onto,
)
from medfuse.image.grid import Geometry, Volume
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image
from medfuse.io.volumes import read_volume

ANATOMICAL = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
CASE_SETS = ("volumes", "MRI", "CT-MRI", "PET-MRI", "SPECT-MRI")
"""The case sets, in the order they run: volumes, MRI slices to themselves, and each Havard pair set."""
SAMPLES = Path(medfuse.__file__).parent / "samples"


def ct_like(t1: Volume) -> tuple[Volume, np.ndarray]:
    """The remapped fixed volume and the brain mask (T1 above a tenth of its maximum)."""
    unit = t1.data / t1.data.max()
    remapped = np.where(unit < 0.1, 0.0, 0.2 + 0.8 * np.abs(unit - 0.55) / 0.45).astype(np.float32)
    return Volume(remapped, t1.geometry), unit > 0.1


def random_rigid(rng: np.random.Generator, centre: np.ndarray, degrees: float, shift: float) -> LinearTransform:
    dimension = len(centre)
    if dimension == 3:
        rotation = Rotation.from_euler("xyz", rng.uniform(-degrees, degrees, 3), degrees=True).as_matrix()
    else:
        angle = np.radians(rng.uniform(-degrees, degrees))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return LinearTransform("rigid", rotation, rng.uniform(-shift, shift, dimension), centre)


def residuals(true: LinearTransform, found: LinearTransform, points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(true.apply(found.apply(points)) - points, axis=1)


def volume_points(volume: Volume, mask: np.ndarray) -> np.ndarray:
    """LPS positions (mm) of the voxels in ``mask``."""
    voxels = np.argwhere(mask)
    ras = (volume.geometry.affine @ np.c_[voxels, np.ones(len(voxels))].T).T[:, :3]
    return ras @ RAS_TO_LPS.T


def image_points(mask: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(mask)
    return np.stack([columns, rows], axis=1).astype(np.float64)


def summarise(
    label: str, means: list[float], maxima: list[float], unit: str, refusals: list[bool], uncertainties: list[float]
) -> None:
    """One line per case set; a case is silently wrong when its mean residual exceeds 2 ``unit``
    and it was not refused."""
    means_array, refused = np.array(means), np.array(refusals)
    print(
        f"{label}: {len(means)} cases; mean residual {np.mean(means):.3f} {unit} (worst case "
        f"{np.max(means):.3f}, median {np.median(means):.3f}); largest residual {np.max(maxima):.3f} {unit}; "
        f"cases with mean under 0.5 / 1 / 2 {unit}: {np.mean(means_array < 0.5):.0%} / "
        f"{np.mean(means_array < 1):.0%} / {np.mean(means_array < 2):.0%}; refused as implausible: "
        f"{refused.sum()} ({(refused & (means_array <= 2)).sum()} of them right); silently wrong: "
        f"{(~refused & (means_array > 2)).sum()}; reported uncertainty median {np.median(uncertainties):.2f} "
        f"{unit} (largest {np.max(uncertainties):.2f})"
    )


def volume_trials(trials: int, rng: np.random.Generator, degrees: float, shift: float) -> None:
    t1 = read_volume(ANATOMICAL).volume
    fixed, brain = ct_like(t1)
    points = volume_points(t1, brain)
    centre, _, _ = field_of_view(t1)
    for kind in ("rigid", "affine"):
        means, maxima, refused, uncertainties = [], [], [], []
        for _ in range(trials):
            true = random_rigid(rng, centre, degrees, shift)
            found = register(fixed, resample_onto(t1, t1, true), kind)
            errors = residuals(true, found.transform, points)
            means.append(errors.mean())
            maxima.append(errors.max())
            refused.append(bool(implausibilities(found, fixed)))
            uncertainties.append(found.uncertainty[0])
        summarise(f"volumes, T1 to CT-like remap, {kind}", means, maxima, "mm", refused, uncertainties)


def same_modality_trials(images: list[np.ndarray], rng: np.random.Generator, degrees: float, shift: float) -> None:
    means, maxima, refused, uncertainties = [], [], [], []
    for image in images:
        centre = (np.array(image.shape[::-1]) - 1) / 2
        true = random_rigid(rng, centre, degrees, shift)
        found = register(image, resample_onto(image, image, true))
        errors = residuals(true, found.transform, image_points(image > 0.08))
        means.append(errors.mean())
        maxima.append(errors.max())
        refused.append(bool(implausibilities(found, image)))
        uncertainties.append(found.uncertainty[0])
    summarise("2-D, MRI to itself", means, maxima, "pixels", refused, uncertainties)


def cross_modality_trials(
    data: Path, rng: np.random.Generator, degrees: float, shift: float, pair_sets: list[str]
) -> None:
    for pair_set in pair_sets:
        modality = pair_set.split("-")[0]
        means, maxima, refused, uncertainties, as_given, margins, consistency = [], [], [], [], [], [], []
        unmoved_refused = []
        for mri_path in sorted((data / pair_set / "test" / "MRI").glob("*.png")):
            mri = grey_unit(load_image(mri_path))
            other = grey_unit(load_image(data / pair_set / "test" / modality / mri_path.name))
            points = image_points((mri > 0.08) | (other > 0.08))
            centre = (np.array(mri.shape[::-1]) - 1) / 2
            true = random_rigid(rng, centre, degrees, shift)
            found = register(mri, resample_onto(other, other, true))
            margins.append(found.rivals[0][1] if found.rivals else float("nan"))
            errors = residuals(true, found.transform, points)
            means.append(errors.mean())
            maxima.append(errors.max())
            refused.append(bool(implausibilities(found, mri)))
            uncertainties.append(found.uncertainty[0])
            unmoved_registration = register(mri, other)
            unmoved = unmoved_registration.transform
            unmoved_refused.append(bool(implausibilities(unmoved_registration, mri)))
            as_given.append(np.linalg.norm(unmoved.apply(points) - points, axis=1).mean())
            consistency.append(
                np.linalg.norm(true.apply(found.transform.apply(points)) - unmoved.apply(points), axis=1).mean()
            )
        summarise(f"2-D, {modality} to MRI (Havard test pairs)", means, maxima, "pixels", refused, uncertainties)
        print(
            f"  search margin: the best start that ended elsewhere reached {np.nanmedian(margins):.1%} of the "
            f"best's mutual information (median; largest {np.nanmax(margins):.1%})"
        )
        print(
            f"  the same pairs unmoved: registration moves them by {np.mean(as_given):.2f} pixels on average "
            f"(median {np.median(as_given):.2f}): the pairs' own alignment is only that certain; refused as they "
            f"came: {sum(unmoved_refused)} of {len(unmoved_refused)}"
        )
        apart, refused_array = np.array(consistency), np.array(refused)
        print(
            f"  against the pair's own registration (where the unmoved pair registers): median "
            f"{np.median(apart):.2f} pixels; over 2 pixels and not refused: {(~refused_array & (apart > 2)).sum()} "
            f"of {len(apart)}; refused: {refused_array.sum()} ({(refused_array & (apart <= 2)).sum()} of them "
            f"agreeing)"
        )


def speed_trial(rng: np.random.Generator) -> None:
    t1 = read_volume(ANATOMICAL).volume
    shape = (256, 256, 128)
    data = zoom(t1.data, [n / m for n, m in zip(shape, t1.shape)], order=1).astype(np.float32)
    geometry = Geometry.from_parts((0.9, 0.9, 1.2), np.diag([-1.0, 1.0, 1.0]), (115.0, -115.0, -76.0))
    big = Volume(data, geometry)
    fixed, brain = ct_like(big)
    centre, _, _ = field_of_view(big)
    true = random_rigid(rng, centre, 10.0, 10.0)
    moving = resample_onto(big, big, true)
    started = time.perf_counter()
    found = register(fixed, moving)
    seconds = time.perf_counter() - started
    errors = residuals(true, found.transform, volume_points(big, brain)[::50])
    print(
        f"speed: 256 x 256 x 128 pair, rigid, {seconds:.1f} s ({os.cpu_count()} CPU cores); "
        f"residual mean {errors.mean():.3f} mm, largest {errors.max():.3f} mm; reported uncertainty "
        f"{found.uncertainty[0]:.2f} mm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the Havard data folder (SET/test/MODALITY/*.png)")
    parser.add_argument("--trials", type=int, default=20, help="random transforms per volume case (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--degrees-2d", type=float, default=10.0, help="largest 2-D rotation drawn (default 10)")
    parser.add_argument("--shift-2d", type=float, default=10.0, help="largest 2-D shift drawn, pixels (default 10)")
    parser.add_argument("--degrees-3d", type=float, default=10.0, help="largest rotation per axis drawn (default 10)")
    parser.add_argument("--shift-3d", type=float, default=10.0, help="largest 3-D shift drawn, mm (default 10)")
    parser.add_argument("--no-speed", action="store_true", help="leave out the 256 x 256 x 128 speed case")
    parser.add_argument(
        "--sets",
        default=",".join(CASE_SETS),
        help=f"the case sets to run, comma-separated (default all: {','.join(CASE_SETS)})",
    )
    args = parser.parse_args()
    chosen = args.sets.split(",")
    unknown = sorted(set(chosen) - set(CASE_SETS))
    if unknown:
        parser.error(f"unknown case set(s) {', '.join(unknown)}; choose from {', '.join(CASE_SETS)}")
    rng = np.random.default_rng(args.seed)
    print(
        f"medfuse.clinical.registration, SimpleITK, seed {args.seed}, {os.cpu_count()} CPU cores, torch threads "
        f"{torch.get_num_threads()} (unused here); rotations up to {args.degrees_2d:g} (2-D) and {args.degrees_3d:g} "
        f"(3-D, per axis) degrees, shifts up to {args.shift_2d:g} pixels and {args.shift_3d:g} mm"
    )
    if "volumes" in chosen:
        volume_trials(args.trials, rng, args.degrees_3d, args.shift_3d)
    mri_paths = sorted(SAMPLES.glob("*/MRI/*.png"))
    if args.data is not None:
        mri_paths = sorted(args.data.glob("*/test/MRI/*.png"))
    if "MRI" in chosen:
        same_modality_trials([grey_unit(load_image(path)) for path in mri_paths], rng, args.degrees_2d, args.shift_2d)
    pair_sets = [name for name in chosen if name.endswith("-MRI")]
    if args.data is not None and pair_sets:
        cross_modality_trials(args.data, rng, args.degrees_2d, args.shift_2d, pair_sets)
    if not args.no_speed:
        speed_trial(rng)


if __name__ == "__main__":
    main()
