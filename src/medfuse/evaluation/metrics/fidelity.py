"""What a fusion keeps of each source: the contrast of a planted lesion, and each source's share.

These are not metrics of one fused image; they compare fusions of a pair with and without a
change in one source, or fit the fusion to its sources. Inputs are grey float arrays in
[0, 1] of one shape (colour sources on their Y channel).

- :func:`gaussian_blob`: the lesion profile ``g(x) = exp(-|x - c|^2 / (2 r^2))``.
- :func:`lesion_contrast`: the amplitude of ``g`` in a difference image, by least squares,
  ``<g, D> / <g, g>``.
- :func:`lesion_retention`: the lesion's contrast in the fusion over its contrast in the
  source, ``<g, F' - F> / <g, S' - S>``: 1 when the fusion keeps it whole, 0 when it is lost,
  1/2 for the pixel average.
- :func:`source_shares`: the least-squares fit ``F = alpha A + beta B + c`` over a mask, as the
  two shares ``alpha / (alpha + beta)`` and ``beta / (alpha + beta)``.
- :func:`weight_shares`: the mean of a rule's weight map ``w_A`` (and ``1 - w_A``) over the
  foreground (:func:`foreground`): the shares the rule itself gives.
"""

from __future__ import annotations

import numpy as np

from medfuse._shared.checks import check_same_shape
from medfuse._shared.errors import InputError


def _grey_float(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise InputError(f"{name}: expected a grey (H, W) array, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise InputError(f"{name}: has NaN or infinite values")
    return image


def _same_shapes(**images: np.ndarray) -> list[np.ndarray]:
    arrays = [_grey_float(image, name) for name, image in images.items()]
    check_same_shape("arrays", {name: array.shape for name, array in zip(images, arrays)})
    return arrays


def gaussian_blob(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """The profile ``exp(-((i - c_i)^2 + (j - c_j)^2) / (2 r^2))`` on an (H, W) grid: peak 1 at
    ``centre`` (row, column), standard deviation ``radius`` pixels."""
    if radius <= 0:
        raise InputError(f"radius must be positive, got {radius}")
    rows, columns = np.ogrid[: shape[0], : shape[1]]
    squared = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2
    return np.exp(-squared / (2.0 * radius**2))


def lesion_contrast(difference: np.ndarray, profile: np.ndarray) -> float:
    """Amplitude of ``profile`` in ``difference`` (an image with the lesion minus the same image
    without it), by least squares: ``<g, D> / <g, g>``. Signed: negative for a dark lesion."""
    difference, profile = _same_shapes(difference=difference, profile=profile)
    energy = float(np.sum(profile * profile))
    if energy == 0:
        raise InputError("profile is zero everywhere")
    return float(np.sum(profile * difference)) / energy


def lesion_retention(
    fused: np.ndarray,
    fused_with_lesion: np.ndarray,
    source: np.ndarray,
    source_with_lesion: np.ndarray,
    profile: np.ndarray,
) -> float:
    """The share of a planted lesion that a fusion keeps.

    ``R = <g, F' - F> / <g, S' - S>``: the lesion's contrast (:func:`lesion_contrast`) in the
    fusion of the pair with the lesion (``F'``) against the fusion without it (``F``), over
    its contrast in the source with the lesion (``S'``) against the source (``S``); ``g`` is
    the lesion's ``profile``. Comparing two fusions of one pair isolates the lesion from
    whatever else the method does. 1: kept whole; 0: lost; 1/2: the pixel average; above 1:
    enhanced; negative: inverted.
    """
    fused, fused_with_lesion, source, source_with_lesion, profile = _same_shapes(
        fused=fused,
        fused_with_lesion=fused_with_lesion,
        source=source,
        source_with_lesion=source_with_lesion,
        profile=profile,
    )
    planted = lesion_contrast(source_with_lesion - source, profile)
    if planted == 0:
        raise InputError("the source with the lesion equals the source where the profile is: nothing was planted")
    return lesion_contrast(fused_with_lesion - fused, profile) / planted


def source_shares(
    fused: np.ndarray, image_a: np.ndarray, image_b: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """Each source's share of the fusion: the least-squares fit ``F = alpha A + beta B + c``
    over the pixels of ``mask`` (default all), returned as ``(alpha, beta) / (alpha + beta)``.
    A blend ``w A + (1 - w) B`` gives ``(w, 1 - w)``; a fusion that copies A gives ``(1, 0)``.
    :class:`~medfuse._shared.errors.InputError` where the shares are undefined: sources that are
    linearly dependent on the mask, or a fit that follows neither."""
    fused, image_a, image_b = _same_shapes(fused=fused, image_a=image_a, image_b=image_b)
    mask = np.ones(fused.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != fused.shape or mask.sum() < 3:
        raise InputError(f"mask must be of shape {fused.shape} with at least 3 pixels set")
    design = np.stack([image_a[mask], image_b[mask], np.ones(int(mask.sum()))], axis=1)
    (alpha, beta, _), _, rank, _ = np.linalg.lstsq(design, fused[mask], rcond=None)
    if rank < 3:  # A, B and the constant are linearly dependent: many fits are exact, the shares arbitrary
        raise InputError(
            "the sources are linearly dependent on the mask (one is a scaled copy of the other, or "
            "constant): shares are undefined"
        )
    total = alpha + beta
    if abs(total) < 1e-12:
        raise InputError("the fusion follows neither source on the mask: shares are undefined")
    return float(alpha / total), float(beta / total)


FOREGROUND_LEVEL = 0.05
"""A pixel where either grey source (in [0, 1]) exceeds this belongs to the foreground: the head,
not the air around it."""


def foreground(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """The pixels (or voxels) where either source exceeds ``FOREGROUND_LEVEL``; all of them if
    none does."""
    image_a, image_b = np.asarray(image_a), np.asarray(image_b)
    check_same_shape("sources", {"image_a": image_a.shape, "image_b": image_b.shape})
    mask = np.maximum(image_a, image_b) > FOREGROUND_LEVEL
    return mask if mask.any() else np.ones(mask.shape, dtype=bool)


def weight_shares(w_a: np.ndarray, image_a: np.ndarray, image_b: np.ndarray) -> tuple[float, float]:
    """A's and B's shares of the fusion by the rule's own weight map: the mean of ``w_a`` (A's
    weight, in [0, 1], any shape) and of ``1 - w_a`` over :func:`foreground` of the grey sources
    ``image_a`` and ``image_b`` (in [0, 1], ``w_a``'s shape). The two add up to 1."""
    w_a = np.asarray(w_a)
    check_same_shape(
        "weight map and sources", {"w_a": w_a.shape, "image_a": np.shape(image_a), "image_b": np.shape(image_b)}
    )
    share_a = float(np.mean(w_a[foreground(image_a, image_b)], dtype=np.float64))  # no float64 copy of a volume
    return share_a, 1.0 - share_a


SMALL_SHARE = 0.2
"""A source that keeps less than this share of the fused foreground is reported as nearly absent."""


def fusion_shares(
    w_a: np.ndarray | None, image_a: np.ndarray, image_b: np.ndarray, fused: np.ndarray
) -> tuple[tuple[float, float] | None, str]:
    """Each source's share of the fused foreground and how it was measured: by the rule's weight
    map ``w_a`` where there is one (:func:`weight_shares`, "weight map"), else by the
    least-squares fit of the grey ``fused`` to the grey sources over :func:`foreground`
    (:func:`source_shares`, "least-squares fit"; None where the fit follows neither)."""
    if w_a is not None:
        return weight_shares(w_a, image_a, image_b), "weight map"
    mask = foreground(image_a, image_b)
    try:
        return source_shares(
            *(np.asarray(image)[mask][None] for image in (fused, image_a, image_b))
        ), "least-squares fit"
    except InputError:
        return None, "least-squares fit"
