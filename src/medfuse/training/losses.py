"""Training losses of DRAN: ``L = L_pixel + lambda1 L_grad + lambda2 L_perc``."""

from __future__ import annotations

import os
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from medfuse._shared.errors import InputError, MissingInputError

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sobel_gradients(image: torch.Tensor) -> torch.Tensor:
    """Sobel responses of a (N, 1, H, W) batch, shape (N, 2, H, W): x then y (zero padding)."""
    kernels = torch.stack([SOBEL_X, SOBEL_X.T]).unsqueeze(1).to(image)
    return F.conv2d(image, kernels, padding=1)


class GradientLoss(nn.Module):
    """Mean squared error between the Sobel gradients (x and y) of two images."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(sobel_gradients(output), sobel_gradients(target))


def vgg16_bn_blocks() -> nn.Sequential:
    """The first three convolutional blocks of VGG16-BN, indexed as torchvision's ``features``.

    Layers 0-22 of ``vgg16_bn().features``: so a torchvision state dict (keys
    ``features.N.*``) loads into it directly. Block outputs are taken after layers
    5, 12 and 22 (the last ReLU of each block).
    """
    layers: list[nn.Module] = []
    channels_in = 3
    for block, (channels, convolutions) in enumerate(((64, 2), (128, 2), (256, 3))):
        if block:
            layers.append(nn.MaxPool2d(2, 2))
        for _ in range(convolutions):
            layers += [nn.Conv2d(channels_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            channels_in = channels
    return nn.Sequential(*layers)


VGG_BLOCK_OUTPUTS = (5, 12, 22)


class PerceptualLoss(nn.Module):
    """Squared error between VGG16-BN features, summed over its first three blocks.

    Needs ImageNet weights: a torchvision ``vgg16_bn`` state dict (``.pth``) at
    ``weights_path``. Grey images are repeated to three channels and normalised with
    the ImageNet mean and standard deviation. The VGG stays frozen, in evaluation mode.
    """

    mean: torch.Tensor  # buffers (register_buffer), which nn.Module's typing cannot tell from submodules
    std: torch.Tensor

    def __init__(self, weights_path: str | os.PathLike) -> None:
        super().__init__()
        if not os.path.isfile(weights_path):
            raise MissingInputError(f"perceptual loss needs VGG16-BN ImageNet weights; no file at {weights_path}")
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
        except Exception as error:  # torch.load raises many types on foreign files
            raise InputError(f"{weights_path} is not a torchvision vgg16_bn state dict ({error})") from None
        features = {
            key.removeprefix("features."): value
            for key, value in state.items()
            if key.startswith("features.") and int(key.split(".")[1]) <= VGG_BLOCK_OUTPUTS[-1]
        }
        self.vgg = vgg16_bn_blocks()
        try:
            self.vgg.load_state_dict(features, strict=True)
        except RuntimeError as error:
            raise InputError(f"{weights_path} is not a torchvision vgg16_bn state dict: {error}") from None
        self.vgg.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()
        return self

    def block_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image.repeat(1, 3, 1, 1) - self.mean) / self.std
        outputs = []
        for index, layer in enumerate(self.vgg):
            x = layer(x)
            if index in VGG_BLOCK_OUTPUTS:
                outputs.append(x)
        return outputs

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pairs = zip(self.block_features(output), self.block_features(target))
        return cast(torch.Tensor, sum(F.mse_loss(a, b) for a, b in pairs))  # of tensors: one per VGG block


class ReconstructionLoss(nn.Module):
    """``MSE(x, x_hat) + lambda1 * GradientLoss + lambda2 * PerceptualLoss``.

    The perceptual term is present only when ``perceptual`` is given.
    """

    def __init__(
        self, lambda_grad: float = 0.2, lambda_perc: float = 0.2, perceptual: PerceptualLoss | None = None
    ) -> None:
        super().__init__()
        self.lambda_grad = lambda_grad
        self.lambda_perc = lambda_perc
        self.gradient = GradientLoss()
        self.perceptual = perceptual

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(output, target) + self.lambda_grad * self.gradient(output, target)
        if self.perceptual is not None:
            loss = loss + self.lambda_perc * self.perceptual(output, target)
        return loss
