"""RGB <-> YCbCr, ITU-R BT.601 full range (the JPEG convention): the one place that knows it.

All arrays are floats on the unit scale: RGB in [0, 1], Y in [0, 1], Cb and Cr centred
on 0.5. The last axis holds the three channels.
"""

from __future__ import annotations

import numpy as np

from medfuse._shared.errors import InputError

RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
YCBCR_TO_RGB = np.array(
    [
        [1.0, 0.0, 1.402],
        [1.0, -0.344136, -0.714136],
        [1.0, 1.772, 0.0],
    ]
)
CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def _check_channels(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim < 1 or image.shape[-1] != 3:
        raise InputError(f"expected three channels on the last axis, got shape {image.shape}")
    return image


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``[Y, Cb, Cr] = M @ [R, G, B] + [0, 0.5, 0.5]`` (BT.601 full range)."""
    return _check_channels(rgb) @ RGB_TO_YCBCR.T + CHROMA_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`; the result is not clipped."""
    return (_check_channels(ycbcr) - CHROMA_OFFSET) @ YCBCR_TO_RGB.T


def luminance(rgb: np.ndarray) -> np.ndarray:
    """The Y channel of an RGB image (BT.601): ``0.299 R + 0.587 G + 0.114 B``."""
    return _check_channels(rgb) @ RGB_TO_YCBCR[0]


def is_grey(rgb: np.ndarray) -> bool:
    """True when an RGB image carries no colour (its three channels are equal)."""
    rgb = np.asarray(rgb)
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))
