"""Pixel scales: integer images <-> floats in [0, 1], the one place that knows them."""

from __future__ import annotations

import numpy as np

from medfuse._shared.errors import InputError
from medfuse.image.colour import is_grey, luminance

INTEGER_MAXIMA = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_unit(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 -> float64 in [0, 1]; floats must already lie in [0, 1]."""
    image = np.asarray(image)
    if image.dtype in INTEGER_MAXIMA:
        return image.astype(np.float64) / INTEGER_MAXIMA[image.dtype]
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"expected uint8, uint16 or float pixels, got {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise InputError("image has NaN or infinite values")
    if image.size and (image.min() < 0.0 or image.max() > 1.0):
        raise InputError(
            f"float images must lie in [0, 1], got [{image.min():.4g}, {image.max():.4g}]; "
            "rescale them first (or pass uint8 / uint16)"
        )
    return image.astype(np.float64)


def from_unit(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Floats in [0, 1] (clipped) -> ``dtype``: rounded integers, or floats as they are."""
    image = np.clip(image, 0.0, 1.0)
    dtype = np.dtype(dtype)
    if dtype in INTEGER_MAXIMA:
        return np.round(image * INTEGER_MAXIMA[dtype]).astype(dtype)
    return image.astype(dtype)


def is_colour(image: np.ndarray) -> bool:
    """True for an (H, W, 3) image whose channels differ (grey stored as RGB is not colour)."""
    return image.ndim == 3 and not is_grey(image)


def grey_unit(image: np.ndarray) -> np.ndarray:
    """Any grey or RGB image -> one (H, W) float channel in [0, 1]: grey as is, RGB its Y."""
    unit = to_unit(image)
    if unit.ndim == 2:
        return unit
    if unit.ndim == 3 and unit.shape[-1] == 3:
        return unit[..., 0] if is_grey(image) else luminance(unit)
    raise InputError(f"expected a grey (H, W) or RGB (H, W, 3) image, got shape {unit.shape}")
