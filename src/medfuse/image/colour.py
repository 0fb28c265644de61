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


def hot(unit: np.ndarray) -> np.ndarray:
    """The ``hot`` colour map (black, red, yellow, white) of values in [0, 1]:
    ``R = 3v, G = 3v - 1, B = 3v - 2``, each clipped to [0, 1]; (..., 3)."""
    unit = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)[..., None]
    return np.clip(3 * unit - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)


COLOUR_MAPS = {"hot": hot}
"""Colour maps by name, for showing uptake (PET, SPECT) as colour: :func:`colour_overlay`."""


def colour_overlay(fused: np.ndarray, source: np.ndarray, colour_map: str = "hot") -> np.ndarray:
    """A colour fusion of a grey source shown through a colour map, as a colour PET or SPECT
    image is fused: the luminance (Y) of ``fused``, the chroma (Cb, Cr) of ``source`` coloured by
    ``colour_map`` (see ``COLOUR_MAPS``) with its strength scaled by the source's value
    (``0.5 + v (C - 0.5)``), so that where the uptake is low the fusion stays grey and the other
    source's anatomy shows as it is. Inputs in [0, 1] of one shape, RGB (..., 3) in [0, 1] out."""
    if colour_map not in COLOUR_MAPS:
        raise InputError(f"colour map {colour_map!r}: choose one of {', '.join(COLOUR_MAPS)}")
    fused, source = np.asarray(fused, dtype=np.float64), np.asarray(source, dtype=np.float64)
    if fused.shape != source.shape:
        raise InputError(f"fusion and source differ in shape: {fused.shape} and {source.shape}")
    strength = np.clip(source, 0.0, 1.0)[..., None]
    chroma = 0.5 + strength * (rgb_to_ycbcr(COLOUR_MAPS[colour_map](source))[..., 1:] - 0.5)
    return np.clip(ycbcr_to_rgb(np.concatenate([fused[..., None], chroma], axis=-1)), 0.0, 1.0)
