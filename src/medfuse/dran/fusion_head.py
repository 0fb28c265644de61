"""DRAN's trained fusion stage: the frozen encoder's features weigh the sources' pyramids.

Stage 2 of medfuse (trained by :mod:`medfuse.training.fusion`, shipped inside ``dran-havard``):
a small head reads the DRAN features of both sources and gives, at every pixel, how much of each
source's Laplacian detail to keep at each scale and which source's brightness to show. The
fused image is built from the sources' own pyramids (:func:`blend_pyramids`), so every detail in
it is a source's detail, scaled; the network decides where and how much.

For features ``f_A``, ``f_B`` (N, C, H, W) the head gives ``2 L + 3`` maps (N, 2 L + 3, H, W),
``L`` = :data:`LEVELS`:

- channel 0: ``w_A``, A's weight in the blended base (B's is ``1 - w_A``);
- channel 1: ``k``, the base's gain in (0, 1), and channel 2: ``o``, a lift of the base in
  (0, :data:`LIFT_MAX`): room in [0, 1] for the details of both sources, bright and dark, as tone
  mapping compresses a base layer and keeps its details, where the network finds it needs it;
- channels ``3 .. L + 2``: ``g_{A,l}``, A's detail gain at level ``l``: in (0, ``GAIN_MAX``) at
  the finest level (where noise lives), in (``GAIN_MIN``, ``GAIN_MAX``) at the others, so that no
  detail of lesion scale is ever dropped;
- channels ``L + 3 .. 2 L + 2``: ``g_{B,l}``, B's.

The head is symmetric: swapping A and B swaps their maps (``w_A -> 1 - w_A``). Each source's
features are reduced to ``hidden`` channels by a shared 1 x 1 convolution; the two reductions,
own first, pass a shared 3 x 3 convolution and a 1 x 1 convolution to ``L + 3`` logits per
source: ``L`` detail gains, a base score (``w_A = sigmoid(s_A - s_B)``) and half the logits of
the base gain and lift (``k = sigmoid(t_A + t_B)``, ``o = LIFT_MAX sigmoid(u_A + u_B)``).
Untrained, it keeps every detail of both sources whole (gains 1), blends the bases half and
half, scales them by :data:`INITIAL_BASE_GAIN` and barely lifts them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medfuse._shared.checks import check_same_shape
from medfuse.dran.pyramid import collapse_pyramid, gaussian_pyramid, laplacian_pyramid

LEVELS = 5
"""Detail levels of the sources' pyramids: the base is the sources at 1/32 of their size."""
GAIN_MAX = 1.5
"""Largest detail gain: a source's detail may be strengthened by half, never more."""
GAIN_MIN = 0.85
"""Smallest detail gain above the finest level: what a source shows at 2 to 32 px stays."""
LIFT_MAX = 0.25
"""Largest lift of the base."""
INITIAL_BASE_GAIN = 0.8
"""The base gain of an untrained head (that of the network-free ``sfnn-pyramid``)."""
INITIAL_LIFT = 0.005
"""The lift of an untrained head's base (nearly none)."""
MAP_COUNT = 2 * LEVELS + 3
GAINS = 3
"""Channel of A's first detail gain."""


class PyramidWeightHead(nn.Module):
    """Features of both sources (N, C, H, W) -> the per-pixel, per-scale maps of
    :func:`blend_pyramids` (N, :data:`MAP_COUNT`, H, W)."""

    def __init__(self, width: int = 64, hidden: int = 16) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(width, hidden, 1)
        self.mix = nn.Conv2d(2 * hidden, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, LEVELS + 3, 1)
        nn.init.zeros_(self.out.weight)
        bias = self.out.bias
        assert bias is not None  # nn.Conv2d has one unless told bias=False
        with torch.no_grad():
            bias.zero_()
            bias[0] = _logit(1 / GAIN_MAX)  # gain 1
            bias[1:LEVELS] = _logit((1 - GAIN_MIN) / (GAIN_MAX - GAIN_MIN))
            bias[LEVELS + 1] = _logit(INITIAL_BASE_GAIN) / 2
            bias[LEVELS + 2] = _logit(INITIAL_LIFT / LIFT_MAX) / 2

    def logits(self, reduced_own: torch.Tensor, reduced_other: torch.Tensor) -> torch.Tensor:
        """One source's ``L + 3`` logits from its own reduced features and the other's."""
        return self.out(F.relu(self.mix(torch.cat([reduced_own, reduced_other], dim=1))))

    def forward(self, features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
        check_same_shape(
            "feature tensors", {"features_a": features_a.shape, "features_b": features_b.shape}, "(N, C, H, W)"
        )
        reduced_a, reduced_b = F.relu(self.reduce(features_a)), F.relu(self.reduce(features_b))
        logits_a, logits_b = self.logits(reduced_a, reduced_b), self.logits(reduced_b, reduced_a)
        w_a = torch.sigmoid(logits_a[:, LEVELS : LEVELS + 1] - logits_b[:, LEVELS : LEVELS + 1])
        base_gain = torch.sigmoid(logits_a[:, LEVELS + 1 : LEVELS + 2] + logits_b[:, LEVELS + 1 : LEVELS + 2])
        lift = LIFT_MAX * torch.sigmoid(logits_a[:, LEVELS + 2 :] + logits_b[:, LEVELS + 2 :])
        return torch.cat(
            [w_a, base_gain, lift, detail_gains(logits_a[:, :LEVELS]), detail_gains(logits_b[:, :LEVELS])], dim=1
        )


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def detail_gains(logits: torch.Tensor) -> torch.Tensor:
    """Gains of the ``L`` detail levels from their logits: (0, GAIN_MAX) at the finest,
    (GAIN_MIN, GAIN_MAX) above it."""
    finest = GAIN_MAX * torch.sigmoid(logits[:, :1])
    coarser = GAIN_MIN + (GAIN_MAX - GAIN_MIN) * torch.sigmoid(logits[:, 1:])
    return torch.cat([finest, coarser], dim=1)


def blend_pyramids(image_a: torch.Tensor, image_b: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """The fused image (N, 1, H, W) of images (N, 1, H, W) in [0, 1] and the head's maps
    (N, :data:`MAP_COUNT`, H, W), not clipped:

    ``F = collapse([g_{A,l} L_{A,l} + g_{B,l} L_{B,l} for l < L] + [k (w_A G_{A,L} + (1 - w_A) G_{B,L}) + o])``

    with ``L_{S,l}`` the Laplacian detail levels and ``G_{S,L}`` the base of source S
    (:mod:`medfuse.dran.pyramid`), and every map taken at each level's size through its own
    Gaussian pyramid (a map is averaged, never sampled). Small images get fewer levels; the
    gains of the finest levels are used."""
    pyramid_a, pyramid_b = laplacian_pyramid(image_a, LEVELS), laplacian_pyramid(image_b, LEVELS)
    depth = len(pyramid_a) - 1
    map_pyramid = gaussian_pyramid(maps, depth)
    fused = [
        level_maps[:, GAINS + level : GAINS + 1 + level] * detail_a
        + level_maps[:, GAINS + LEVELS + level : GAINS + 1 + LEVELS + level] * detail_b
        for level, (level_maps, detail_a, detail_b) in enumerate(zip(map_pyramid, pyramid_a, pyramid_b))
        if level < depth
    ]
    base_maps = map_pyramid[depth]
    w_a, base_gain, lift = base_maps[:, :1], base_maps[:, 1:2], base_maps[:, 2:3]
    fused.append(base_gain * (w_a * pyramid_a[-1] + (1 - w_a) * pyramid_b[-1]) + lift)
    return collapse_pyramid(fused)
