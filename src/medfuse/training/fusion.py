"""Stage 2: what the trained fusion stage learns from (pairs, planted lesions) and its losses.

No fused ground truth exists; the head (:class:`~medfuse.dran.fusion_head.PyramidWeightHead`)
learns from both sources of registered pairs, with four terms chosen to keep what either source
shows (:class:`FusionLoss`):

- **lesion transfer**: synthetic lesions (blobs, ellipses, rings, discs and striped textures of
  random size, contrast and polarity; :func:`plant_lesions`) are planted into both sources at
  random places of their tissue; the fusion must change by exactly what was planted,
  ``||(F' - F) - (d_A + d_B)||^2 / ||d_A + d_B||^2``. This is what keeps a lesion that only one
  source shows, dark ones too;
- **structure**: ``1 - (SSIM(F, A) + SSIM(F, B)) / 2`` (11 x 11 Gaussian windows, sigma 1.5);
- **gradient**: the mean absolute difference between the fusion's Sobel gradient and that of the
  locally stronger source (the larger gradient magnitude at each pixel), as Qabf rewards;
- **intensity**: the mean absolute difference between the fusion and the brighter source at a
  quarter of the size (Gaussian level 2): the brighter tissue shows, while a small dark lesion,
  which that scale does not see, is left to the transfer term;
- **range**: how far the fusion leaves [0, 1] (what would be clipped away).

Every term but the range sees the fusion as it is shown, clipped to [0, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medfuse._shared.errors import InputError
from medfuse.dran import network
from medfuse.dran.fusion_head import PyramidWeightHead, blend_pyramids
from medfuse.dran.models import load_model, weights_metadata, weights_path
from medfuse.dran.pyramid import gaussian_pyramid
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image
from medfuse.training.config import FusionTrainConfig
from medfuse.training.data import held_out_names, random_crops
from medfuse.training.losses import sobel_gradients

LESION_KINDS = ("blob", "ellipse", "ring", "disc", "texture")
LESION_RADII = (1.5, 14.0)
"""Radius (standard deviation of a blob) of a planted lesion, drawn log-uniformly, in pixels."""
LESION_AMPLITUDES = (0.08, 0.4)
"""Contrast of a planted lesion, of full scale."""
TISSUE = 0.08
"""A lesion is centred on a pixel brighter than this when the source has one."""
SSIM_SIGMA = 1.5
SSIM_CONSTANTS = (0.01**2, 0.03**2)


def lesion_profile(
    kind: str, size: tuple[int, int], centre: tuple[float, float], radius: float, rng: np.random.Generator
) -> torch.Tensor:
    """A lesion's shape (H, W), peak magnitude 1: ``blob`` (Gaussian, standard deviation
    ``radius``), ``ellipse`` (a rotated Gaussian, the other axis 0.3 to 1 times as long), ``ring``
    (a Gaussian ridge at ``radius``), ``disc`` (a flat disc, soft edge) or ``texture`` (stripes of
    3 to 8 px period under a Gaussian window; both signs)."""
    rows = torch.arange(size[0], dtype=torch.float32)[:, None] - centre[0]
    columns = torch.arange(size[1], dtype=torch.float32)[None, :] - centre[1]
    angle = rng.uniform(0, math.pi)
    along = rows * math.cos(angle) + columns * math.sin(angle)
    across = -rows * math.sin(angle) + columns * math.cos(angle)
    distance = torch.sqrt(rows**2 + columns**2)
    if kind == "blob":
        return torch.exp(-(distance**2) / (2 * radius**2))
    if kind == "ellipse":
        ratio = rng.uniform(0.3, 1.0)
        return torch.exp(-(along**2 / (2 * radius**2) + across**2 / (2 * (ratio * radius) ** 2)))
    if kind == "ring":
        thickness = radius / 3 + 0.7
        return torch.exp(-((distance - radius) ** 2) / (2 * thickness**2))
    if kind == "disc":
        return torch.sigmoid((radius - distance) / 0.7)
    if kind == "texture":
        period = rng.uniform(3.0, 8.0)
        return torch.exp(-(distance**2) / (2 * radius**2)) * torch.cos(2 * math.pi * along / period)
    raise ValueError(f"unknown lesion kind {kind!r}")


def plant_lesions(images: torch.Tensor, rng: np.random.Generator, count: int = 2) -> torch.Tensor:
    """``images`` (N, 1, H, W) in [0, 1] with ``count`` random lesions each (kind, radius,
    contrast and polarity drawn; centred on the image's tissue), clipped to [0, 1]."""
    planted = images.clone()
    height, width = images.shape[-2:]
    for index in range(images.shape[0]):
        tissue = torch.nonzero(images[index, 0] > TISSUE)
        for _ in range(count):
            if len(tissue):
                row, column = tissue[rng.integers(len(tissue))]
                centre = (float(row), float(column))
            else:
                centre = (rng.uniform(0, height), rng.uniform(0, width))
            kind = LESION_KINDS[rng.integers(len(LESION_KINDS))]
            radius = math.exp(rng.uniform(*np.log(LESION_RADII)))
            contrast = rng.uniform(*LESION_AMPLITUDES) * rng.choice((-1.0, 1.0))
            profile = lesion_profile(kind, (height, width), centre, radius, rng).to(images)
            planted[index, 0] = (planted[index, 0] + contrast * profile).clamp(0, 1)
    return planted


def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = 5) -> torch.Tensor:
    values = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    return values / values.sum()


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004) at every pixel of one-channel images (N, 1, H, W) in [0, 1]:
    ``(2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`` over
    11 x 11 Gaussian windows (sigma 1.5, mirrored borders), C1 = 0.01^2, C2 = 0.03^2."""
    window = gaussian_window().to(x)
    kernel_rows, kernel_columns = window.view(1, 1, 1, -1), window.view(1, 1, -1, 1)
    pad = window.numel() // 2

    def local_mean(image: torch.Tensor) -> torch.Tensor:
        padded = F.pad(image, (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(F.conv2d(padded, kernel_rows), kernel_columns)

    mean_x, mean_y = local_mean(x), local_mean(y)
    variance_x = local_mean(x * x) - mean_x**2
    variance_y = local_mean(y * y) - mean_y**2
    covariance = local_mean(x * y) - mean_x * mean_y
    c1, c2 = SSIM_CONSTANTS
    return (
        (2 * mean_x * mean_y + c1)
        * (2 * covariance + c2)
        / ((mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2))
    )


def transfer_loss(fused: torch.Tensor, fused_planted: torch.Tensor, planted_change: torch.Tensor) -> torch.Tensor:
    """``||(F' - F) - d||^2 / ||d||^2`` per image, averaged: 0 when the fusion changes exactly
    by what was planted (``d``, the sum of both sources' changes), 1 when it does not change."""
    error = ((fused_planted - fused) - planted_change).pow(2).sum(dim=(1, 2, 3))
    energy = planted_change.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-6)
    return (error / energy).mean()


def stronger_gradient_loss(fused: torch.Tensor, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
    """Mean ``|grad F - grad S*|`` (x and y Sobel), ``S*`` the source with the larger gradient
    magnitude at each pixel."""
    gradient_a, gradient_b = sobel_gradients(image_a), sobel_gradients(image_b)
    a_stronger = gradient_a.pow(2).sum(dim=1, keepdim=True) >= gradient_b.pow(2).sum(dim=1, keepdim=True)
    return (sobel_gradients(fused) - torch.where(a_stronger, gradient_a, gradient_b)).abs().mean()


def brighter_intensity_loss(fused: torch.Tensor, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
    """Mean ``|G_2(F) - max(G_2(A), G_2(B))|`` with ``G_2`` the Gaussian pyramid's level 2 (a
    quarter of the size)."""
    coarse = [gaussian_pyramid(image, 2)[-1] for image in (fused, image_a, image_b)]
    return (coarse[0] - torch.maximum(coarse[1], coarse[2])).abs().mean()


def range_loss(fused: torch.Tensor) -> torch.Tensor:
    """Mean distance of the fusion from [0, 1] (what clipping would remove)."""
    return (F.relu(fused - 1) + F.relu(-fused)).mean()


TERMS = ("transfer", "structure", "gradient", "intensity", "range")


@dataclass(frozen=True)
class FusionLossWeights:
    """Weights of :class:`FusionLoss`'s terms (transfer's is 1)."""

    structure: float = 1.0
    gradient: float = 1.0
    intensity: float = 1.0
    range: float = 1.0

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``transfer + sum of weight * term`` over the other terms."""
        return terms["transfer"] + sum(getattr(self, name) * terms[name] for name in TERMS[1:])


class FusionLoss(nn.Module):
    """The stage-2 loss of a model's fusion head on a batch of pairs: the frozen encoder encodes
    the clean and the lesioned sources, the head weighs their pyramids
    (:func:`~medfuse.dran.fusion_head.blend_pyramids`), and ``transfer + structure * (1 - SSIM) +
    gradient * stronger-gradient + intensity * brighter-intensity + range * out-of-range``.

    Called on a batch of crops (N, 4, H, W): A, B, A with its lesions, B with its lesions. A
    module, so that several ranks can train it as one; only the head's parameters take gradients
    (the model is loaded frozen)."""

    def __init__(self, model: network.DRAN, weights: FusionLossWeights = FusionLossWeights()) -> None:
        super().__init__()
        if model.fusion_head is None:
            raise InputError("the model has no fusion head to train")
        self.model = model
        self.weights = weights

    def terms(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term, unweighted, for a batch (N, 4, H, W) of A, B and their lesioned copies."""
        image_a, image_b, planted_a, planted_b = batch.split(1, dim=1)
        with torch.no_grad():
            features = self.model.encode(torch.cat([image_a, image_b, planted_a, planted_b]))
        features_a, features_b, features_pa, features_pb = features.chunk(4)
        head = self.model.fusion_head
        assert head is not None  # checked on creation
        unclipped = blend_pyramids(image_a, image_b, head(features_a, features_b))
        fused = unclipped.clamp(0, 1)
        fused_planted = blend_pyramids(planted_a, planted_b, head(features_pa, features_pb)).clamp(0, 1)
        ssim = (ssim_map(fused, image_a).mean() + ssim_map(fused, image_b).mean()) / 2
        return {
            "transfer": transfer_loss(fused, fused_planted, (planted_a - image_a) + (planted_b - image_b)),
            "structure": 1 - ssim,
            "gradient": stronger_gradient_loss(fused, image_a, image_b),
            "intensity": brighter_intensity_loss(fused, image_a, image_b),
            "range": range_loss(unclipped),
        }

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.weights.total(self.terms(batch))


def find_pair_folders(folders: Sequence[str | os.PathLike]) -> list[tuple[str, Path, Path]]:
    """``(name, A, B)`` for every pair of every folder, each holding two modality folders
    (MRI first; :func:`medfuse.evaluation.benchmark.find_pairs`); names are ``FOLDER/NAME``."""
    from medfuse.evaluation.benchmark import find_pairs

    pairs = []
    for folder in folders:
        dataset = find_pairs(folder)
        pairs += [(f"{folder}/{name}", path_a, path_b) for name, path_a, path_b in dataset.pairs]
    return pairs


def split_pairs(
    pairs: list[tuple[str, Path, Path]], val_fraction: float, seed: int
) -> tuple[list[tuple[str, Path, Path]], list[tuple[str, Path, Path]]]:
    """Hold out a seeded fraction of the pairs (at least one), by their ``FOLDER/NAME`` names
    (:func:`medfuse.training.data.held_out_names`)."""
    if len(pairs) < 2:
        raise InputError(f"need at least two pairs to hold some out for validation, found {len(pairs)}")
    held = held_out_names([name for name, _, _ in pairs], val_fraction, seed)
    return [p for p in pairs if p[0] not in held], [p for p in pairs if p[0] in held]


def load_pair(path_a: Path, path_b: Path) -> torch.Tensor:
    """A registered pair as one (2, H, W) float32 tensor in [0, 1] (colour -> Y, BT.601)."""
    grey_a, grey_b = (grey_unit(load_image(path)) for path in (path_a, path_b))
    if grey_a.shape != grey_b.shape:
        raise InputError(f"{path_a} and {path_b}: sizes differ ({grey_a.shape} and {grey_b.shape})")
    return torch.from_numpy(np.stack([grey_a, grey_b])).float()


def lesioned_crops(
    pairs: list[torch.Tensor], count: int, crop: int, lesions: int, rng: np.random.Generator
) -> torch.Tensor:
    """``count`` random crops of pairs (the same place and flips in both sources) with ``lesions``
    lesions planted into each source: (count, 4, crop, crop), A, B, A', B'."""
    crops = random_crops(pairs, count, crop, rng)
    image_a, image_b = crops[:, :1], crops[:, 1:]
    return torch.cat(
        [image_a, image_b, plant_lesions(image_a, rng, lesions), plant_lesions(image_b, rng, lesions)], dim=1
    )


class FusionStage:
    """Stage 2, what :func:`medfuse.training.loop.train` needs to know of it: the fusion head
    learns on the frozen features of the stage-1 model ``config.init`` from lesioned crops of
    registered pairs (:class:`FusionLoss`), validated on ``val_crops`` fixed crops of the
    held-out pairs (the loss and each term)."""

    record_keys = ("val_loss", *(f"val_{name}" for name in TERMS))
    settings = ("init", "fusion_head")

    def __init__(self, config: FusionTrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        self.loss_fn: FusionLoss | None = None

    def initial_model(self) -> tuple[network.DRAN, FusionTrainConfig]:
        """The ``init`` model, frozen, with a new head of ``fusion_head`` hidden channels (its own
        head, if it has one of that width: fine-tuning)."""
        assert self.config.init is not None  # FusionTrainConfig.validate (check_start) refuses None
        path = weights_path(self.config.init)
        model = load_model(path, self.device)
        width = model.width
        head = model.fusion_head
        if head is None or head.reduce.out_channels != self.config.fusion_head:
            head = model.fusion_head = PyramidWeightHead(width, self.config.fusion_head).to(self.device)
        head.requires_grad_(True).train()
        weights = FusionLossWeights(
            self.config.lambda_structure,
            self.config.lambda_gradient,
            self.config.lambda_intensity,
            self.config.lambda_range,
        )
        self.loss_fn = FusionLoss(model, weights)
        return model, replace(
            self.config,
            init=str(self.config.init),
            architecture=weights_metadata(path).get("architecture", "dran"),
            width=width,
        )

    def data(self, config: FusionTrainConfig) -> tuple[list[torch.Tensor], torch.Tensor, dict[str, int]]:
        """Training pairs, the fixed validation crops, and the pair counts for the log."""
        train_pairs, val_pairs = split_pairs(find_pair_folders(config.data), config.val_fraction, config.seed)
        train = [load_pair(a, b) for _, a, b in train_pairs]
        val = lesioned_crops(
            [load_pair(a, b) for _, a, b in val_pairs],
            config.val_crops,
            config.crop,
            config.lesions,
            np.random.default_rng((config.seed, 1)),
        )
        return train, val, {"train_pairs": len(train_pairs), "val_pairs": len(val_pairs)}

    def trainable(self, model: nn.Module) -> nn.Module:
        assert self.loss_fn is not None  # made by initial_model, which train() calls first
        return self.loss_fn

    def loss(self, trained: nn.Module, data: list[torch.Tensor], rng: np.random.Generator) -> torch.Tensor:
        batch = lesioned_crops(data, self.config.batch_size, self.config.crop, self.config.lesions, rng)
        return trained(batch.to(self.device))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: torch.Tensor) -> dict[str, float]:
        assert self.loss_fn is not None  # made by initial_model, which train() calls first
        terms = self.loss_fn.terms(data.to(self.device))
        return {
            "val_loss": float(self.loss_fn.weights.total(terms)),
            **{f"val_{name}": float(value) for name, value in terms.items()},
        }

    def arguments(self, config: FusionTrainConfig, model: nn.Module) -> dict[str, int]:
        return {"width": config.width, "fusion_head": config.fusion_head}
