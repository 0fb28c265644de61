"""Grey fusion -> image fusion: input checks, colour through YCbCr, pixel type round trip.

Every fusion method in medfuse (DRAN with any rule, the classical baselines) is a function
of two grey (H, W) images in [0, 1]. This module turns such a function into one that takes
what users have: grey or RGB, uint8, uint16 or float. A colour source (PET, SPECT) is fused
through YCbCr (BT.601 full range): its Y channel is fused with the other image, its Cb and
Cr are kept, and the result is converted back to RGB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medfuse._shared.checks import check_same_shape
from medfuse._shared.errors import InputError
from medfuse.image.colour import rgb_to_ycbcr, ycbcr_to_rgb
from medfuse.image.scales import from_unit, grey_unit, is_colour, to_unit

GreyFusion = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Two grey (H, W) images in [0, 1] -> the fused (H, W) image in [0, 1]."""
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Two images as users have them (grey or RGB; uint8, uint16 or float) -> the fused image."""


def fused_dtype(dtype_a: np.dtype, dtype_b: np.dtype) -> np.dtype:
    """The output pixel type: float if either input is float, else the wider integer type."""
    kinds = {np.dtype(dtype_a), np.dtype(dtype_b)}
    floats = [d for d in kinds if np.issubdtype(d, np.floating)]
    if floats:
        return max(floats, key=lambda d: d.itemsize)
    return np.dtype(np.uint16) if np.dtype(np.uint16) in kinds else np.dtype(np.uint8)


def fused_chroma(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray | None:
    """Cb and Cr (H, W, 2) for the fused image: those of the colour source; when both are
    in colour, at each pixel those of the more saturated one; None when neither is."""
    chromas = [rgb_to_ycbcr(to_unit(image))[..., 1:] for image in (image_a, image_b) if is_colour(image)]
    if not chromas:
        return None
    if len(chromas) == 1:
        return chromas[0]
    saturation = [np.abs(c - 0.5).sum(axis=-1, keepdims=True) for c in chromas]
    return np.where(saturation[0] >= saturation[1], chromas[0], chromas[1])


def fused_like(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """An empty array of the kind :func:`compose` returns for this pair (colour or grey, and its
    pixel type), to check before fusing that an output format can hold it."""
    colour = np.ndim(image_a) == 3 or np.ndim(image_b) == 3
    return np.empty((0, 0, 3) if colour else (0, 0), fused_dtype(image_a.dtype, image_b.dtype))


def check_pair(image_a: np.ndarray, image_b: np.ndarray) -> None:
    """Refuse anything but two grey (H, W) or RGB (H, W, 3) images of one size, 2 x 2 or more."""
    for image, name in ((image_a, "image_a"), (image_b, "image_b")):
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
            raise InputError(f"{name}: expected grey (H, W) or RGB (H, W, 3), got shape {image.shape}")
        if min(image.shape[:2]) < 2:
            raise InputError(f"{name}: image must be at least 2 x 2 pixels, got {image.shape[:2]}")
    check_same_shape("images", {"A": image_a.shape[:2], "B": image_b.shape[:2]})


def grey_pair(image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two grey (H, W) images in [0, 1] that a grey fusion takes: a colour image's Y
    (BT.601), a grey image scaled from its pixel type. Checks the pair first."""
    image_a, image_b = np.asarray(image_a), np.asarray(image_b)
    check_pair(image_a, image_b)
    return grey_unit(image_a), grey_unit(image_b)


def compose(luma: np.ndarray, image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """The fused image from its fused grey ``luma`` (H, W) in [0, 1] and the two sources:
    RGB if either source is 3-D (the colour source's Cb and Cr around ``luma``), else grey;
    pixel type float if either source is float, else uint16 if either is uint16, else uint8."""
    image_a, image_b = np.asarray(image_a), np.asarray(image_b)
    luma = np.asarray(luma, dtype=np.float64)
    chroma = fused_chroma(image_a, image_b)
    if chroma is not None:
        fused = ycbcr_to_rgb(np.concatenate([luma[..., None], chroma], axis=-1))
    elif image_a.ndim == 3 or image_b.ndim == 3:
        fused = np.repeat(luma[..., None], 3, axis=-1)
    else:
        fused = luma
    return from_unit(fused, fused_dtype(image_a.dtype, image_b.dtype))


def fuse_luminance(image_a: np.ndarray, image_b: np.ndarray, fuse_grey: GreyFusion) -> np.ndarray:
    """Fuse two images with ``fuse_grey``, a function of two grey (H, W) arrays in [0, 1]:
    :func:`grey_pair`, then ``fuse_grey``, then :func:`compose`."""
    return compose(fuse_grey(*grey_pair(image_a, image_b)), image_a, image_b)
