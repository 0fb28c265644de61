"""Gaussian and Laplacian pyramids of image or feature tensors (N, C, H, W), in torch.

Burt and Adelson (1983): ``reduce`` blurs with the 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16``
(mirrored borders) and keeps every second row and column; ``expand`` brings a level back to a
given size by bilinear interpolation. A Laplacian level is ``G_l - expand(G_{l+1})``, so
:func:`collapse_pyramid` rebuilds the image exactly, for any size (odd sides too). Each level
costs a quarter of the one below it: a whole pyramid costs about 4/3 of its first level, linear
in the number of pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from medfuse._shared.lazy import lazy_module

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:
    torch = lazy_module("torch")
    F = lazy_module("torch.nn.functional")


BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)
SMALLEST_SIDE = 3
"""A level is reduced only while both its sides are at least this (the mirrored 5-tap blur needs 3)."""


def binomial_blur(tensor: torch.Tensor) -> torch.Tensor:
    """Every channel of ``tensor`` (N, C, H, W) blurred by the separable 5-tap binomial kernel,
    mirrored borders."""
    channels = tensor.shape[1]
    kernel = torch.tensor(BINOMIAL, dtype=tensor.dtype, device=tensor.device) / 16
    padded = F.pad(tensor, (2, 2, 2, 2), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)


def reduce_level(tensor: torch.Tensor) -> torch.Tensor:
    """The next, coarser Gaussian level: blurred, then every second row and column."""
    return binomial_blur(tensor)[..., ::2, ::2]


def expand_level(tensor: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A coarser level brought to ``size`` (H, W) by bilinear interpolation."""
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)


def pyramid_depth(height: int, width: int, levels: int) -> int:
    """How many reductions an image of ``height`` x ``width`` takes, at most ``levels``."""
    depth = 0
    while depth < levels and min(height, width) >= SMALLEST_SIDE:
        height, width = (height + 1) // 2, (width + 1) // 2
        depth += 1
    return depth


def gaussian_pyramid(tensor: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[G_0, ..., G_L]``: ``tensor`` and its ``L`` reductions (fewer for small images:
    :func:`pyramid_depth`)."""
    pyramid = [tensor]
    for _ in range(pyramid_depth(tensor.shape[-2], tensor.shape[-1], levels)):
        pyramid.append(reduce_level(pyramid[-1]))
    return pyramid


def laplacian_pyramid(tensor: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[L_0, ..., L_{L-1}, G_L]``: the detail levels ``G_l - expand(G_{l+1})``, then the
    coarsest Gaussian level (the base)."""
    gaussians = gaussian_pyramid(tensor, levels)
    details = [fine - expand_level(coarse, fine.shape[-2:]) for fine, coarse in zip(gaussians, gaussians[1:])]
    return [*details, gaussians[-1]]


def collapse_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """The tensor of a :func:`laplacian_pyramid`: ``G_l = L_l + expand(G_{l+1})`` from the base down."""
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        image = detail + expand_level(image, detail.shape[-2:])
    return image
