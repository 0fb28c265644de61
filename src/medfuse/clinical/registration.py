"""Rigid and affine registration of one image or volume onto another, with SimpleITK.

Real scans of one patient (MRI and CT, PET or SPECT) come from different scanners and
sessions: :func:`register` finds the transform that brings MOVING onto FIXED and resamples
MOVING onto FIXED's grid, so that the two can be fused. The method: Mattes mutual
information (it compares modalities whose intensities differ), the grids' geometric centres
aligned first (centres of mass mislead across modalities: a PET's uptake is not the head's
centre), a multi-start search over rotations, each tried at shifts up to a quarter of the
field of view, at the coarsest resolution (:func:`_best_start`; its winner must also beat the
plain start at full resolution), three resolutions (shrink 4, 2, 1 with
Gaussian smoothing of 2, 1, 0 mm), a rigid stage and, for ``"affine"``, an affine stage
started from it; regular-step gradient descent with scales from physical shifts; every voxel of
a small image, a seeded random sample of a large one, so that the same inputs give the same
transform (to rounding: SimpleITK sums on several threads). Each result carries an uncertainty:
how far it lands when knocked off by a few degrees and pixels and optimised again (where it lands
becomes the result if it fits better); how much of
its information the poorer image shares with the other (about all for one modality); and, for 2-D
images, how much of either image's object it puts beyond an edge that cuts the other's object, where
the mutual information of single slices of two modalities misleads (:func:`implausibilities`
doubts such results).

SimpleITK stays inside this module: images come in as :class:`~medfuse.image.grid.Volume`
(array + geometry) or as 2-D arrays, whose physical space is SimpleITK's for a PNG (spacing
1, origin 0, x along columns, y along rows), and a :class:`LinearTransform` (numpy) comes out.
The transform is in ITK's convention: physical LPS coordinates in mm, mapping a point of
FIXED to the point of MOVING that lands on it; :func:`write_transform` writes it in ITK's text
format, which ``SimpleITK.ReadTransform`` and 3D Slicer read.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from medfuse._shared.errors import InputError, RegistrationError
from medfuse._shared.files import write_atomically
from medfuse._shared.optional import import_optional
from medfuse.image.grid import LPS_TO_RAS, Volume

if TYPE_CHECKING:
    import SimpleITK as sitk

    MatrixTransform = sitk.Euler2DTransform | sitk.Euler3DTransform | sitk.AffineTransform
    """The transforms registration makes: each has a matrix, a translation and a centre."""
    SitkImage = sitk.Image  # for annotations inside functions that import SimpleITK as sitk

TRANSFORMS = ("rigid", "affine")
TRANSFORM_SUFFIXES = (".tfm", ".txt")
"""ITK's text transform format, as SimpleITK and 3D Slicer read it."""
RAS_TO_LPS = LPS_TO_RAS[:3, :3]  # its own inverse
MAX_ROTATION_DEGREES = {2: 100.0, 3: 60.0}
"""A registration that rotates more than this (2-D, 3-D) is refused as implausible (unless
forced): the multi-start search recovers up to 90 degrees in 2-D and 45 in 3-D."""
START_ANGLES_2D: tuple[float, ...] = tuple(range(-90, 91, 30))
"""Rotations (degrees) the 2-D search starts from: every 30 degrees up to 90 either way, so that
the optimiser, which finds rotations within about 20 degrees of its start, reaches any angle up
to ``MAX_ROTATION_DEGREES``. None starts further round: a result there is refused anyway, and a
nearly symmetric head turned by 180 degrees can fit a single PET slice better than the truth
(an unmoved Havard PET-MRI test pair went there when the search started from every 30 degrees)."""
START_ANGLES_3D = (-30.0, 30.0)
"""Rotations (degrees) about each axis the 3-D search starts from, besides none (7 starts)."""
START_SHIFT_STEPS = (-2, -1, 0, 1, 2)
START_SHIFT_SHARE = 1 / 8
"""Shifts (in steps of ``START_SHIFT_SHARE`` of the field of view along each axis, up to a
quarter) each start rotation is tried at, by its mutual information alone, before it is
optimised: the optimiser alone finds shifts up to about 20 pixels of a 256-pixel slice."""
PREFER_UNSHIFTED = 0.15
"""A shifted start replaces the unshifted one only if its mutual information beats it by this share."""
START_SHIFT_STEPS_3D = (-1, 0, 1)
START_SHIFT_SHARE_3D = 1 / 4
"""In 3-D, steps of a quarter (27 shifts per start, 189 in all)."""
START_ITERATIONS = 60
"""Optimiser steps of each start, at the coarsest resolution only."""
START_SHRINK = {2: (4, 2, 1), 3: (8, 4, 2, 1)}
START_SMOOTHING_MM = {2: (2.0, 1.0, 0.0), 3: (4.0, 2.0, 1.0, 0.0)}
"""The resolution the starts are compared at: the coarsest whose shortest side keeps 8 voxels
(a volume's 7 starts at shrink 4 tripled the time of a 256 x 256 x 128 registration)."""
AMBIGUITY_MARGIN = 0.035
"""The best start must beat the best start that ends elsewhere (a corner of the fixed grid lands
more than ``DISTINCT_SHARE`` of the field of view's longest side away; nearer ones are the same
optimum, not yet converged) by this share of its mutual information, else the result is doubted.
Chosen on train pairs (``benchmarks/registration_cases.py``, 56 single cross-modal slices, rotations
to 90 and 10 degrees): every result that agreed with the pair's own registration had its next
distinct start at 95.0 % or less; three that did not, at 97.4 to 99.0 %, went unrefused with 0.01."""
DISTINCT_SHARE = 0.1
CLOSE_CALL = 0.05
"""A coarse rival within this share of the search's winner is optimised at full resolution too,
where the two are compared again (the coarse comparison is blurred, and the preference for
unturned, unshifted starts may keep a start that a turned one beat there by a little)."""
PREFER_UNROTATED = 0.05
"""A start turned away from the images as they lie wins only if its mutual information beats the
unturned start's by this share: single slices of two modalities (PET, SPECT) have flat metric
landscapes whose far optima win by a hair and are wrong."""
MAX_SHIFT_SHARE = 1 / 3
"""... or that shifts the fixed image's centre by more than this share of its field of view."""
METRIC_TOLERANCE = 0.02
"""... or whose mutual information ends lower than at the start by more than this share: an
image registered to itself loses a little to interpolation, which is not a failure."""
HISTOGRAM_BINS = 32
"""Mattes histogram bins: 32 recovered known shifts of CT, PET and SPECT slices to MRI best of
50, 32, 24 and 16 on Havard train pairs (a 2-D cross-modal case; 3-D volumes do well with any)."""
SAMPLING_SHARE = 0.25
MIN_SAMPLES = 100_000
"""The metric samples ``SAMPLING_SHARE`` of the voxels, but at least this many (all of a
smaller image): a quarter of a 256 x 256 slice let 4 of 72 MRI slices slip by pixels."""
CHECK_DEGREES = 3.0
CHECK_SHIFT_SHARE = 0.02
"""The uncertainty check knocks the result off by this rotation and this share of the field of
view, then optimises again at full resolution with a fresh metric sample: how far it lands from
the result is reported as the result's uncertainty."""
SHRINK_FACTORS = (4, 2, 1)
SMOOTHING_MM = (2.0, 1.0, 0.0)
OBJECT_LEVEL = 0.1
"""An image's object: its values above this share of its 99.5th percentile (a scan's background lies
near 0)."""
MAX_UNMATCHED_SHARE_2D = 0.03
ONE_MODALITY_SHARE = 0.7
"""A 2-D result is doubted when more than ``MAX_UNMATCHED_SHARE_2D`` of one image's object lands
beyond the other's edge where the other's object is cut (:func:`unmatched_share`) and the two share
less than ``ONE_MODALITY_SHARE`` of their
information (:attr:`Registration.shared`: about 1 for two images of one modality, 0.2 to 0.55 for
Havard CT, PET or SPECT slices with their MRI): across modalities, the mutual information of the
part of a single slice that both fields of view hold prefers wrong alignments. Chosen on train pairs
(``benchmarks/registration_cases.py``, 28 slices turned by up to 90 degrees and shifted by up to 64
pixels; ``benchmarks/results/registration_cases_train_cut.jsonl``): the four results over 2 pixels
from the pair's own registration that only this check refuses put 3.1 to 16 % of the MRI's head
beyond the moved slice's cut edge; 7 results that agreed put 4.1 to 8.9 % there and are refused too
(a refusal, not a silent error); one of 2.0 pixels put 0.2 % there and passes."""

CROSS_MODAL_SLICE_CAVEAT = (
    "single 2-D slices of two modalities have no reliable self-check: a result accepted here may still be "
    "several pixels off, with nothing in it to tell; look at the alignment (a check image: medfuse register "
    "--check-image, or check_picture in Python)"
)
"""Said, as a warning, by every :func:`register` of two single slices of two modalities
(:attr:`Registration.cross_modal_slice`). Measured with ``benchmarks/registration_large_rotations.py``
(``benchmarks/results/registration_large_rotations.md``): Havard CT-MRI test slices turned by 25 to 60
degrees and shifted, then registered back (48 cases): 10 ended over 2 pixels from where the unmoved
pair registers; :func:`implausibilities` refused 3 of them and let 7 through (3.0 to 15.5 pixels off),
whose mutual information, shares of their images' own, next distinct starts and uncertainty-check
landings all lie inside the ranges of the 38 right results: no threshold refuses those 7 without
refusing right results too (the best pair, fitted on these cases, refuses 6 of the 38)."""

Image = Volume | np.ndarray


@dataclass(frozen=True)
class LinearTransform:
    """``x_moving = matrix (x_fixed - center) + center + translation``, physical coordinates
    (LPS mm for volumes, pixels for 2-D images): ITK's convention, FIXED to MOVING."""

    kind: str
    matrix: np.ndarray
    translation: np.ndarray
    center: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map fixed points (N, d) to moving points (N, d)."""
        points = np.asarray(points, dtype=np.float64)
        return (points - self.center) @ self.matrix.T + self.center + self.translation

    def inverse(self) -> LinearTransform:
        """The transform from MOVING back to FIXED, about the same centre."""
        matrix = np.linalg.inv(self.matrix)
        return LinearTransform(self.kind, matrix, -matrix @ self.translation, self.center)

    @property
    def rotation(self) -> np.ndarray:
        """The rotation part of ``matrix`` (the orthogonal factor of its polar decomposition)."""
        u, _, vt = np.linalg.svd(self.matrix)
        return u @ vt

    @property
    def rotation_degrees(self) -> float:
        """The angle of :attr:`rotation`, in degrees."""
        rotation = self.rotation
        if len(rotation) == 2:
            return math.degrees(abs(math.atan2(rotation[1, 0], rotation[0, 0])))
        return math.degrees(math.acos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0)))

    @property
    def scales(self) -> np.ndarray:
        """The scalings of ``matrix`` (its singular values; all 1 for a rigid transform)."""
        return np.linalg.svd(self.matrix, compute_uv=False)

    @property
    def shear_degrees(self) -> float:
        """How far the transformed axes are from right angles: the largest departure, in degrees."""
        columns = self.matrix / np.linalg.norm(self.matrix, axis=0)
        cosines = np.abs(columns.T @ columns - np.eye(len(columns)))
        return math.degrees(math.asin(min(1.0, float(cosines.max()))))

    def describe(self, unit: str) -> str:
        """One line: rotation, translation (in ``unit``) and, for an affine transform, scale and
        shear, with the signs of the transform file (FIXED to MOVING, ITK's convention): in 2-D
        the signed angle (positive turns +x towards +y), in 3-D the angle and its axis."""
        shift = ", ".join(f"{value:.2f}" for value in self.translation)
        rotation = self.rotation
        if len(rotation) == 2:
            turn = f"rotation {math.degrees(math.atan2(rotation[1, 0], rotation[0, 0])):+.2f} degrees (+x towards +y)"
        else:
            axis = np.array(
                [rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]]
            )
            norm = np.linalg.norm(axis)
            about = ", ".join(f"{value:.2f}" for value in (axis / norm if norm > 1e-12 else np.array([0, 0, 1.0])))
            turn = f"rotation {self.rotation_degrees:.2f} degrees about ({about})"
        text = f"{turn}, translation ({shift}) {unit}"
        if self.kind == "affine":
            scales = ", ".join(f"{value:.3f}" for value in self.scales)
            text += f", scales ({scales}), shear {self.shear_degrees:.2f} degrees"
        return text


@dataclass(frozen=True)
class Registration:
    """What :func:`register` found: the transform, the Mattes mutual information before
    (images as they lie) and after (higher is better aligned), MOVING resampled onto FIXED's
    grid (same type as the inputs: a :class:`Volume` or a 2-D array), and the seconds it took."""

    transform: LinearTransform
    metric_before: float
    metric_after: float
    moved: Image
    seconds: float
    rivals: tuple[tuple[float, float], ...] = ()
    """The search's other outcomes: for each start that ended elsewhere, how far it lands from the
    result (the largest move of a corner of FIXED's grid, mm or pixels) and its mutual information
    as a share of the result's (1 = as good; at full resolution for the close calls optimised
    there, at the coarsest for the others), highest first: the first says how clearly the result won."""
    uncertainty: tuple[float, float] | None = None
    """How far the result moves when knocked off and optimised again (see ``CHECK_DEGREES``): the
    largest shift of a corner of FIXED's field of view (mm for volumes, pixels for 2-D images)
    and the rotation between the two (degrees)."""
    shared: float = 0.0
    """``metric_after`` as a share of the smaller of the two images' own mutual information (each
    image's with itself), at most 1: how much of its information the poorer image shares with the other."""
    unmatched: float | None = None
    """For 2-D images, how much of either image's object the result puts beyond the other's edge
    where the other's object is cut (:func:`unmatched_share`): 0 when neither is cut; None for volumes."""
    doubts: tuple[str, ...] = field(default=())
    """Why the result looks wrong (:func:`implausibilities`), when it was accepted all the same."""

    @property
    def cross_modal_slice(self) -> bool:
        """Two 2-D images of two modalities (sharing less than ``ONE_MODALITY_SHARE`` of their
        information): a result that nothing of its own can vouch for (``CROSS_MODAL_SLICE_CAVEAT``)."""
        return self.unmatched is not None and self.shared < ONE_MODALITY_SHARE

    def describe(self, unit: str) -> str:
        """One line: the mutual information before and after, then the transform (shifts in ``unit``)."""
        spread = (
            f"; uncertain to about {self.uncertainty[0]:.2f} {unit} and {self.uncertainty[1]:.2f} degrees"
            if self.uncertainty
            else ""
        )
        margin = (
            f"; the next distinct start ({self.rivals[0][0]:.0f} {unit} away) reached {self.rivals[0][1]:.1%} of it"
            if self.rivals
            else ""
        )
        outside = f"; {self.unmatched:.1%} of an image's object beyond the other's cut edge" if self.unmatched else ""
        return (
            f"registered ({self.transform.kind}) in {self.seconds:.1f} s: mutual information "
            f"{self.metric_before:.4f} before, {self.metric_after:.4f} after ({self.shared:.0%} of the poorer "
            f"image's own){margin}; "
            f"{self.transform.describe(unit)}{spread}{outside}"
        )


def _check_pair(fixed: Image, moving: Image) -> int:
    """The dimension (2 or 3) of a valid pair, or a RegistrationError."""
    kinds = [isinstance(image, Volume) for image in (fixed, moving)]
    if kinds[0] != kinds[1]:
        raise RegistrationError("cannot register a 2-D image with a volume: give two images or two volumes")
    for name, image in (("fixed", fixed), ("moving", moving)):
        data = image.data if isinstance(image, Volume) else np.asarray(image)
        if not kinds[0] and data.ndim != 2:
            raise RegistrationError(f"{name}: expected a grey 2-D image (H, W), got shape {data.shape}")
        if min(data.shape) < 4:
            raise RegistrationError(f"{name}: {'x'.join(map(str, data.shape))} is too small to register")
        if not np.all(np.isfinite(data)):
            raise RegistrationError(f"{name}: holds NaN or infinite values")
        if data.min() == data.max():
            raise RegistrationError(f"{name}: the image is empty (constant, {data.min():g} everywhere)")
    return 3 if kinds[0] else 2


def to_sitk(image: Image) -> sitk.Image:
    """A SimpleITK image of a :class:`Volume` (LPS geometry from its RAS affine) or a 2-D array."""
    sitk = import_optional("SimpleITK", purpose="registration")

    if not isinstance(image, Volume):
        return sitk.GetImageFromArray(np.asarray(image, dtype=np.float32))
    converted = sitk.GetImageFromArray(np.ascontiguousarray(image.data.transpose(2, 1, 0), dtype=np.float32))
    geometry = image.geometry
    converted.SetSpacing([float(s) for s in geometry.spacing])
    converted.SetOrigin([float(v) for v in RAS_TO_LPS @ geometry.origin])
    converted.SetDirection([float(v) for v in (RAS_TO_LPS @ geometry.orientation).ravel()])
    return converted


def from_sitk(image: sitk.Image, like: Image) -> Image:
    """The array of a SimpleITK image on ``like``'s grid, as ``like`` is (Volume or 2-D array)."""
    sitk = import_optional("SimpleITK", purpose="registration")

    array = sitk.GetArrayFromImage(image)
    if isinstance(like, Volume):
        return Volume(np.ascontiguousarray(array.transpose(2, 1, 0)), like.geometry)
    return array


def _method(dimension_sizes: tuple[int, ...], seed: int, levels: bool) -> sitk.ImageRegistrationMethod:
    sitk = import_optional("SimpleITK", purpose="registration")

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(HISTOGRAM_BINS)
    share = min(1.0, max(SAMPLING_SHARE, MIN_SAMPLES / math.prod(dimension_sizes)))
    if share < 1.0:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(share, seed + 1)  # SimpleITK's seed 0 means "the clock"
    method.SetInterpolator(sitk.sitkLinear)
    if levels:
        pairs = [(f, s) for f, s in zip(SHRINK_FACTORS, SMOOTHING_MM) if min(dimension_sizes) / f >= 8] or [(1, 0.0)]
        method.SetShrinkFactorsPerLevel([f for f, _ in pairs])
        method.SetSmoothingSigmasPerLevel([s for _, s in pairs])
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def _optimise(
    fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, seed: int, iterations: int, levels: bool = True
) -> None:
    method = _method(fixed.GetSize(), seed, levels)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-4,
        numberOfIterations=iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)


def _mutual_information(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, seed: int) -> float:
    method = _method(fixed.GetSize(), seed, levels=False)
    method.SetInitialTransform(transform)
    return -method.MetricEvaluate(fixed, moving)


def _as_linear(transform: MatrixTransform, kind: str, dimension: int) -> LinearTransform:
    return LinearTransform(
        kind,
        np.array(transform.GetMatrix()).reshape(dimension, dimension),
        np.array(transform.GetTranslation()),
        np.array(transform.GetCenter()),
    )


def to_sitk_transform(transform: LinearTransform) -> MatrixTransform:
    """The SimpleITK transform (Euler for rigid, affine for affine) of a :class:`LinearTransform`."""
    sitk = import_optional("SimpleITK", purpose="registration")

    dimension = len(transform.center)
    if transform.kind == "rigid":
        converted = sitk.Euler3DTransform() if dimension == 3 else sitk.Euler2DTransform()
    else:
        converted = sitk.AffineTransform(dimension)
    converted.SetCenter([float(v) for v in transform.center])
    converted.SetMatrix([float(v) for v in transform.matrix.ravel()])
    converted.SetTranslation([float(v) for v in transform.translation])
    return converted


@overload
def resample_onto(moving: Image, fixed: Volume, transform: LinearTransform, fill: float = 0.0) -> Volume: ...


@overload
def resample_onto(moving: Image, fixed: np.ndarray, transform: LinearTransform, fill: float = 0.0) -> np.ndarray: ...


@overload
def resample_onto(moving: Image, fixed: Image, transform: LinearTransform, fill: float = 0.0) -> Image: ...


def resample_onto(moving: Image, fixed: Image, transform: LinearTransform, fill: float = 0.0) -> Image:
    """``moving`` resampled onto ``fixed``'s grid through ``transform`` (linear interpolation,
    ``fill`` outside): ``SimpleITK.Resample(moving, fixed, transform)``."""
    sitk = import_optional("SimpleITK", purpose="registration")

    resampled = sitk.Resample(
        to_sitk(moving), to_sitk(fixed), to_sitk_transform(transform), sitk.sitkLinear, fill, sitk.sitkFloat32
    )
    return from_sitk(resampled, fixed)


def register(fixed: Image, moving: Image, kind: str = "rigid", seed: int = 0, iterations: int = 200) -> Registration:
    """Register ``moving`` to ``fixed``: two :class:`Volume` or two grey 2-D arrays.

    ``kind`` is ``"rigid"`` (rotation and translation) or ``"affine"`` (a rigid stage, then
    a full affine one started from it). ``seed`` fixes the random sample of voxels the metric
    uses. Raises :class:`RegistrationError` for a 2-D image with a volume or a constant image.
    The result is not judged here: see :func:`implausibilities`. Two single slices of two
    modalities are registered with a warning (``CROSS_MODAL_SLICE_CAVEAT``): nothing tells a
    wrong result of theirs from a right one.
    """
    sitk = import_optional("SimpleITK", purpose="registration")

    if kind not in TRANSFORMS:
        raise InputError(f"unknown transform {kind!r}; choose one of {', '.join(TRANSFORMS)}")
    dimension = _check_pair(fixed, moving)
    started = time.perf_counter()
    fixed_image, moving_image = to_sitk(fixed), to_sitk(moving)
    rigid = sitk.Euler3DTransform() if dimension == 3 else sitk.Euler2DTransform()
    rigid = sitk.CenteredTransformInitializer(
        fixed_image, moving_image, rigid, sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    identity = sitk.Transform(dimension, sitk.sitkIdentity)
    before = _mutual_information(fixed_image, moving_image, identity, seed)
    plain = sitk.Euler3DTransform(rigid) if dimension == 3 else sitk.Euler2DTransform(rigid)
    best, coarse_rivals = _best_start(fixed_image, moving_image, rigid, seed)
    rigid, rivals = _full_resolution_choice(fixed_image, moving_image, best, plain, coarse_rivals, seed, iterations)
    final: MatrixTransform = rigid
    if kind == "affine":
        final = sitk.AffineTransform(dimension)
        final.SetCenter(rigid.GetCenter())
        final.SetMatrix(rigid.GetMatrix())
        final.SetTranslation(rigid.GetTranslation())
        _optimise(fixed_image, moving_image, final, seed, iterations)
    after = _mutual_information(fixed_image, moving_image, final, seed)
    result = _as_linear(final, kind, dimension)
    shift, degrees, checked = _uncertainty(fixed_image, moving_image, result, seed, iterations)
    checked_score = _mutual_information(fixed_image, moving_image, to_sitk_transform(checked), seed)
    if checked_score > after:  # knocked off, it found a better optimum nearby
        result, after = checked, checked_score
    moved = sitk.Resample(moving_image, fixed_image, to_sitk_transform(result), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    own = min(_mutual_information(image, image, identity, seed) for image in (fixed_image, moving_image))
    registration = Registration(
        result,
        before,
        after,
        from_sitk(moved, fixed),
        time.perf_counter() - started,
        rivals,
        (shift, degrees),
        min(1.0, after / own) if own > 0 else 0.0,
        None if isinstance(fixed, Volume) or isinstance(moving, Volume) else unmatched_share(fixed, moving, result),
    )
    if registration.cross_modal_slice:
        warnings.warn(
            f"{CROSS_MODAL_SLICE_CAVEAT} (the two share {registration.shared:.0%} of their information)",
            UserWarning,
            stacklevel=2,
        )
    return registration


def _object(image: np.ndarray) -> np.ndarray:
    """The mask of an image's object: values above ``OBJECT_LEVEL`` of the 99.5th percentile."""
    return image > OBJECT_LEVEL * np.percentile(image, 99.5)


def unmatched_share(fixed: np.ndarray, moving: np.ndarray, transform: LinearTransform) -> float:
    """How much of one 2-D image's object has no counterpart because the other's object is cut by
    its field of view: the larger of two shares, of FIXED's object that ``transform`` maps beyond
    MOVING's edge where MOVING's object reaches that edge (the nearest pixel inside is object), and
    of MOVING's object that the inverse maps beyond FIXED's edge where FIXED's object reaches it
    (objects: ``OBJECT_LEVEL``). Object beyond an edge where the other image shows background (an
    MRI's scalp beyond a PET slice that holds all of the brain) is not counted. Mattes mutual
    information counts only the overlap, so an object cut by one field of view lets a wrong
    alignment of two modalities score higher than the right one."""
    objects = _object(np.asarray(fixed)), _object(np.asarray(moving))
    shares = []
    for first, second, mapping in ((objects[0], objects[1], transform), (objects[1], objects[0], transform.inverse())):
        rows, columns = np.nonzero(first)
        if not len(rows):
            shares.append(0.0)
            continue
        landed = mapping.apply(np.stack([columns, rows], axis=1).astype(np.float64))  # SimpleITK's (x, y)
        height, width = second.shape
        beyond = np.any((landed < -0.5) | (landed > np.array([width, height]) - 0.5), axis=1)
        nearest_x = np.clip(np.rint(landed[:, 0]), 0, width - 1).astype(int)
        nearest_y = np.clip(np.rint(landed[:, 1]), 0, height - 1).astype(int)
        shares.append(float(np.mean(beyond & second[nearest_y, nearest_x])))
    return max(shares)


def _full_resolution_choice(
    fixed: sitk.Image,
    moving: sitk.Image,
    best: MatrixTransform,
    plain: MatrixTransform,
    coarse_rivals: list[tuple[float, float, MatrixTransform]],
    seed: int,
    iterations: int,
) -> tuple[MatrixTransform, tuple[tuple[float, float], ...]]:
    """The search's winner optimised at full resolution, against those that may beat it there:
    the plain start (the grids' centres, unturned; when the search moved away from it) and the
    coarse rivals within ``CLOSE_CALL`` of the winner. Each is optimised too and the one with
    the highest mutual information at full resolution wins, but one that lands away from the
    plain start only if it beats the plain start's by ``PREFER_UNROTATED`` (single slices of two
    modalities have far optima that win by a little and are wrong); the others that land
    elsewhere are the rivals, with their full-resolution share, then the coarse rivals not refined."""
    candidates = [best]
    if _apart(fixed, plain, best) > _distinct(fixed):
        candidates.append(plain)
    anchor = candidates[-1]  # the plain start, or the search's winner where it is the plain start
    close = [transform for _, share, transform in coarse_rivals if share > 1 - CLOSE_CALL]
    candidates += close
    scores = []
    for candidate in candidates:
        _optimise(fixed, moving, candidate, seed, iterations)
        scores.append(_mutual_information(fixed, moving, candidate, seed))
    winner = candidates[int(np.argmax(scores))]
    anchor_score = scores[candidates.index(anchor)]
    if _apart(fixed, winner, anchor) > _distinct(fixed) and max(scores) < anchor_score * (1 + PREFER_UNROTATED):
        winner = anchor
    top = scores[candidates.index(winner)]
    rivals = []
    for candidate, score in zip(candidates, scores):
        apart = _apart(fixed, candidate, winner)
        if candidate is not winner and apart > _distinct(fixed):
            rivals.append((apart, score / top if top > 0 else 1.0))
    for _, share, transform in coarse_rivals:
        apart = _apart(fixed, transform, winner)
        if apart > _distinct(fixed) and not any(transform is other for other in close):
            rivals.append((apart, share))
    return winner, tuple(sorted(rivals, key=lambda rival: -rival[1]))


def _corners(image: sitk.Image) -> np.ndarray:
    """The physical positions of the corners of an image's grid, (2 ** d, d)."""
    size = np.array(image.GetSize()) - 1
    corners = np.array(np.meshgrid(*[[0, n] for n in size], indexing="ij")).reshape(len(size), -1).T
    return np.array([image.TransformContinuousIndexToPhysicalPoint([float(v) for v in corner]) for corner in corners])


def _apart(fixed: sitk.Image, first: MatrixTransform, second: MatrixTransform) -> float:
    """How far two rigid transforms land from each other: the largest distance between the
    images of a corner of ``fixed``'s grid."""
    corners = _corners(fixed)
    dimension = fixed.GetDimension()
    landings = [_as_linear(transform, "rigid", dimension).apply(corners) for transform in (first, second)]
    return float(np.linalg.norm(landings[0] - landings[1], axis=1).max())


def _distinct(fixed: sitk.Image) -> float:
    """Transforms that land further apart than this (``DISTINCT_SHARE``) are different optima."""
    return DISTINCT_SHARE * float(np.max(np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())))


def _uncertainty(
    fixed: sitk.Image, moving: sitk.Image, result: LinearTransform, seed: int, iterations: int
) -> tuple[float, float, LinearTransform]:
    """How far ``result`` lands when knocked off (``CHECK_DEGREES``, ``CHECK_SHIFT_SHARE``) and
    optimised again at full resolution with another metric sample: the largest move of a corner
    of FIXED's grid, the rotation between the two results (degrees), and where it landed."""
    dimension = len(result.center)
    extents = np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())
    axes = np.array(fixed.GetDirection()).reshape(dimension, dimension)
    angle = math.radians(CHECK_DEGREES)
    if dimension == 2:
        turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    else:
        axis = np.ones(3) / math.sqrt(3)
        cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        turn = np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross
    knocked = LinearTransform(
        result.kind, result.matrix @ turn, result.translation + axes @ (CHECK_SHIFT_SHARE * extents), result.center
    )
    again = to_sitk_transform(knocked)
    _optimise(fixed, moving, again, seed + 1, iterations, levels=False)
    second = _as_linear(again, result.kind, dimension)
    corners = _corners(fixed)
    moved = float(np.linalg.norm(second.apply(corners) - result.apply(corners), axis=1).max())
    between = LinearTransform("rigid", second.rotation @ result.rotation.T, np.zeros(dimension), np.zeros(dimension))
    return moved, between.rotation_degrees, second


def _starts(centred: sitk.Transform, dimension: int) -> list[MatrixTransform]:
    """The centred rigid transform turned to each start rotation (about its centre)."""
    sitk = import_optional("SimpleITK", purpose="registration")

    starts = []
    if dimension == 2:
        for degrees in START_ANGLES_2D:
            start = sitk.Euler2DTransform(centred)
            start.SetAngle(math.radians(degrees))
            starts.append(start)
        return starts
    starts.append(sitk.Euler3DTransform(centred))
    for axis in range(3):
        for degrees in START_ANGLES_3D:
            start = sitk.Euler3DTransform(centred)
            angles = [0.0, 0.0, 0.0]
            angles[axis] = math.radians(degrees)
            start.SetRotation(*angles)
            starts.append(start)
    return starts


def _best_start(
    fixed: sitk.Image, moving: sitk.Image, centred: sitk.Transform, seed: int
) -> tuple[MatrixTransform, list[tuple[float, float, MatrixTransform]]]:
    """Each start optimised at the coarsest resolution and scored by its mutual information
    there; the best, and the others that land elsewhere: (how far, share of the best's mutual
    information, the transform), as :attr:`Registration.rivals` with their transforms."""
    sitk = import_optional("SimpleITK", purpose="registration")

    dimension = fixed.GetDimension()
    factor, smoothing = next(
        (
            (f, s)
            for f, s in zip(START_SHRINK[dimension], START_SMOOTHING_MM[dimension])
            if min(fixed.GetSize()) / f >= 8
        ),
        (1, 0.0),
    )

    def coarse(image: SitkImage) -> SitkImage:
        return (
            sitk.Shrink(sitk.SmoothingRecursiveGaussian(image, smoothing), [factor] * dimension) if smoothing else image
        )

    small_fixed, small_moving = coarse(fixed), coarse(moving)
    outcomes = []
    for start in _starts(centred, dimension):  # the first start is the unturned one
        start = _best_shift(small_fixed, small_moving, start, seed)
        method = _method(small_fixed.GetSize(), seed, levels=False)
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0,
            minStep=1e-3,
            numberOfIterations=START_ITERATIONS,
            relaxationFactor=0.6,
            gradientMagnitudeTolerance=1e-8,
        )
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetInitialTransform(start, inPlace=True)
        method.Execute(small_fixed, small_moving)
        outcomes.append((-method.GetMetricValue(), start))
    unturned = outcomes[0] if dimension == 3 else outcomes[START_ANGLES_2D.index(0)]
    outcomes.sort(key=lambda outcome: -outcome[0])
    if outcomes[0][0] < unturned[0] * (1 + PREFER_UNROTATED):
        outcomes.remove(unturned)
        outcomes.insert(0, unturned)
    best_score, best = outcomes[0]
    rivals = []
    for score, start in outcomes[1:]:
        apart = _apart(fixed, start, best)
        if apart > _distinct(fixed):
            rivals.append((apart, score / best_score if best_score > 0 else 1.0, start))
    return best, rivals


def _best_shift(fixed: sitk.Image, moving: sitk.Image, start: MatrixTransform, seed: int) -> MatrixTransform:
    """``start`` shifted by the step of ``START_SHIFT_STEPS`` (along FIXED's axes) whose mutual
    information is highest, if it beats the unshifted start's by ``PREFER_UNSHIFTED``."""
    import itertools

    dimension = fixed.GetDimension()
    steps, share = (
        (START_SHIFT_STEPS, START_SHIFT_SHARE) if dimension == 2 else (START_SHIFT_STEPS_3D, START_SHIFT_SHARE_3D)
    )
    extents = np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())
    axes = np.array(fixed.GetDirection()).reshape(dimension, dimension)
    translation = np.array(start.GetTranslation())
    unshifted = _mutual_information(fixed, moving, start, seed)
    best, best_score = translation, unshifted * (1 + PREFER_UNSHIFTED)
    for step in itertools.product(steps, repeat=dimension):
        if not any(step):
            continue
        shifted = translation + axes @ (np.array(step) * share * extents)
        start.SetTranslation([float(v) for v in shifted])
        score = _mutual_information(fixed, moving, start, seed)
        if score > best_score:
            best, best_score = shifted, score
    start.SetTranslation([float(v) for v in best])
    return start


def field_of_view(image: Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (physical, LPS for volumes), unit axes (columns) and extents of an image's grid."""
    converted = to_sitk(image)
    size = np.array(converted.GetSize())
    spacing = np.array(converted.GetSpacing())
    dimension = len(size)
    axes = np.array(converted.GetDirection()).reshape(dimension, dimension)
    centre = np.array(converted.TransformContinuousIndexToPhysicalPoint([float(v) for v in (size - 1) / 2]))
    return centre, axes, size * spacing


def implausibilities(registration: Registration, fixed: Image) -> list[str]:
    """Why a registration looks wrong, one phrase each (empty if it looks right): the mutual
    information fell by more than ``METRIC_TOLERANCE`` of its start, the rotation exceeds
    ``MAX_ROTATION_DEGREES``, another start fits about as well (``AMBIGUITY_MARGIN``), the
    uncertainty check lands more than ``DISTINCT_SHARE`` of the field of view away, a 2-D result of two
    modalities (``ONE_MODALITY_SHARE``) puts more than ``MAX_UNMATCHED_SHARE_2D`` of an image's object
    beyond the other's cut edge, or the fixed
    image's centre moves by more than ``MAX_SHIFT_SHARE`` of the field of view along one of its axes."""
    problems = []
    before, after = registration.metric_before, registration.metric_after
    if after < before - METRIC_TOLERANCE * abs(before):
        problems.append(f"the mutual information fell from {before:.4f} to {after:.4f}")
    angle = registration.transform.rotation_degrees
    limit = MAX_ROTATION_DEGREES[len(registration.transform.center)]
    if angle > limit:
        problems.append(f"a rotation of {angle:.1f} degrees (more than {limit:g})")
    if registration.rivals and registration.rivals[0][1] > 1 - AMBIGUITY_MARGIN:
        apart, share = registration.rivals[0]
        unit = "mm" if isinstance(fixed, Volume) else "pixels"
        problems.append(
            f"another start, landing {apart:.0f} {unit} away, fits about as well ({share:.1%} of the "
            "mutual information): the alignment is ambiguous"
        )
    unmatched = registration.unmatched
    if unmatched is not None and unmatched > MAX_UNMATCHED_SHARE_2D and registration.shared < ONE_MODALITY_SHARE:
        problems.append(
            f"{unmatched:.0%} of one image's object lands beyond the other's edge, where the other's "
            f"object is cut, and the two share {registration.shared:.0%} of their information: the "
            "mutual information of a part of a single slice of two modalities is unreliable"
        )
    centre, axes, extents = field_of_view(fixed)
    if registration.uncertainty and registration.uncertainty[0] > DISTINCT_SHARE * extents.max():
        unit = "mm" if isinstance(fixed, Volume) else "pixels"
        problems.append(
            f"knocked off by {CHECK_DEGREES:g} degrees, it lands {registration.uncertainty[0]:.1f} "
            f"{unit} away (more than {DISTINCT_SHARE:.0%} of the field of view): the optimum is not stable"
        )
    shift = registration.transform.apply(centre[None])[0] - centre
    along = np.abs(axes.T @ shift)
    for axis, (moved, extent) in enumerate(zip(along, extents)):
        if moved > MAX_SHIFT_SHARE * extent:
            problems.append(
                f"a shift of {moved:.1f} along axis {axis} (more than a third of the {extent:.1f} field of view)"
            )
    return problems


def write_transform(transform: LinearTransform, path: str | os.PathLike) -> Path:
    """Write ``transform`` in ITK's text format (``.tfm`` or ``.txt``), atomically."""
    sitk = import_optional("SimpleITK", purpose="registration")

    path = Path(path)
    if path.suffix.lower() not in TRANSFORM_SUFFIXES:
        raise InputError(f"{path}: a transform file needs the suffix .tfm or .txt (ITK's text format)")
    converted = to_sitk_transform(transform)

    def write(temporary: Path) -> None:
        named = temporary.with_name(temporary.name + path.suffix)  # SimpleITK picks the format by suffix
        try:
            sitk.WriteTransform(converted, str(named))
            os.replace(named, temporary)
        finally:
            named.unlink(missing_ok=True)

    return write_atomically(path, write)


def _unit(image: np.ndarray) -> np.ndarray:
    """An image scaled to [0, 1] between its 1st and 99th percentiles, for viewing."""
    low, high = np.percentile(image, (1, 99))
    return np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image, dtype=np.float64)


def checkerboard(first: np.ndarray, second: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Two 2-D images of one shape in alternating squares (``tiles`` across the shorter side),
    each scaled to [0, 1] on its own: edges that continue across the squares are aligned."""
    rows, columns = np.indices(first.shape)
    side = max(1, min(first.shape) // tiles)
    return np.where((rows // side + columns // side) % 2 == 0, _unit(first), _unit(second))


def _planes(data: np.ndarray) -> list[np.ndarray]:
    """The middle slice of each plane of an (I, J, K) volume, as images: k (rows j, columns i),
    then j and i (rows k, flipped so that the last slice is on top)."""
    i, j, k = (n // 2 for n in data.shape)
    return [data[:, :, k].T, data[:, j, :].T[::-1], data[i, :, :].T[::-1]]


def check_picture(fixed: Image, moving: Image, registration: Registration) -> np.ndarray:
    """A uint8 grey picture to judge a registration at a glance: checkerboards of FIXED with
    MOVING as it lies (top row) and with the moved image (bottom row); for volumes the middle
    slice of each of the three planes across each row (pixels, not mm: a plane with thick
    slices looks squashed)."""
    identity = LinearTransform(
        "rigid",
        np.eye(len(registration.transform.center)),
        np.zeros(len(registration.transform.center)),
        registration.transform.center,
    )
    before = resample_onto(moving, fixed, identity)
    rows = []
    for other in (before, registration.moved):
        pairs: Iterable[tuple[np.ndarray, np.ndarray]]
        if isinstance(fixed, Volume):
            assert isinstance(other, Volume)  # on FIXED's grid, as FIXED is
            pairs = zip(_planes(fixed.data), _planes(other.data))
        else:
            pairs = [(np.asarray(fixed, dtype=np.float64), np.asarray(other, dtype=np.float64))]
        rows.append([checkerboard(a, b) for a, b in pairs])
    height = max(panel.shape[0] for row in rows for panel in row)
    width = max(panel.shape[1] for row in rows for panel in row)
    gap = 4
    canvas = np.ones((len(rows) * (height + gap) - gap, len(rows[0]) * (width + gap) - gap))
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            canvas[top : top + panel.shape[0], left : left + panel.shape[1]] = panel
    return np.round(canvas * 255).astype(np.uint8)


def move_image(moving: np.ndarray, fixed_shape: tuple[int, ...], transform: LinearTransform) -> np.ndarray:
    """A 2-D image as users have it (grey or RGB; uint8, uint16 or float) resampled onto a
    grid of ``fixed_shape`` (H, W) through ``transform``: every channel alike, linear
    interpolation, 0 outside, the same pixel type back (integers rounded and clipped)."""
    moving = np.asarray(moving)
    channels = moving[..., None] if moving.ndim == 2 else moving
    grid = np.zeros(fixed_shape[:2], dtype=np.float32)
    moved = np.stack(
        [resample_onto(channels[..., c].astype(np.float32), grid, transform) for c in range(channels.shape[-1])],
        axis=-1,
    )
    if np.issubdtype(moving.dtype, np.integer):
        limits = np.iinfo(moving.dtype)
        moved = np.clip(np.round(moved), limits.min, limits.max)
    moved = moved.astype(moving.dtype)
    return moved[..., 0] if moving.ndim == 2 else moved
