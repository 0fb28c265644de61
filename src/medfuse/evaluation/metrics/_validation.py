"""Input checks and the one input convention of every metric.

Metrics work on grey float64 images on the 8-bit scale: uint8 as is, uint16 scaled by
255/65535, floats taken to be on the 8-bit scale already (``round(255 * x)`` for images
in [0, 1], as the project's metrics conventions page fixes). Colour (H, W, 3) images are reduced
to their Y channel (ITU-R BT.601, full range); grey stored as RGB is taken as grey.
"""

from __future__ import annotations

import numpy as np

from medfuse._shared.checks import check_same_shape
from medfuse._shared.errors import InputError
from medfuse.image.colour import is_grey, luminance
from medfuse.image.scales import INTEGER_MAXIMA


def grey_8bit(image: np.ndarray, name: str = "image") -> np.ndarray:
    """One image -> (H, W) float64 on the 8-bit scale; ValueError on bad input."""
    image = np.asarray(image)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"{name}: expected an integer or float image, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise InputError(f"{name}: expected a 2-D grey or (H, W, 3) RGB image, got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise InputError(f"{name}: image must be at least 2 x 2 pixels, got {image.shape[:2]}")
    values = image.astype(np.float64)
    if image.dtype == np.uint16:
        values *= INTEGER_MAXIMA[np.dtype(np.uint8)] / INTEGER_MAXIMA[image.dtype]
    if not np.all(np.isfinite(values)):
        raise InputError(f"{name}: image has NaN or infinite values")
    if values.min() < 0 or values.max() > 255:
        raise InputError(
            f"{name}: values must lie on the 8-bit scale [0, 255] (uint16 is scaled), "
            f"got [{values.min():.4g}, {values.max():.4g}]"
        )
    if np.issubdtype(image.dtype, np.floating) and 0 < values.max() <= 1 and np.any(values != np.round(values)):
        raise InputError(
            f"{name}: float values all within [0, 1] look like the unit scale; metrics expect "
            "the 8-bit scale: pass round(255 * x)"
        )
    if values.ndim == 3:
        values = values[..., 0] if is_grey(values) else luminance(values)
    return values


def grey_triple(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused image and its two sources, each through :func:`grey_8bit`, of one size."""
    f, a, b = grey_8bit(fused, "fused"), grey_8bit(a, "a"), grey_8bit(b, "b")
    check_same_shape("images", {"fused": f.shape, "a": a.shape, "b": b.shape})
    return f, a, b


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two arrays; 0 where either is constant (undefined)."""
    x = x - x.mean()
    y = y - y.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / denominator) if denominator > 0 else 0.0
