"""The DRAN autoencoder of Zhou, Xu and Zhang (arXiv 2212.04661).

Encoder: shallow convolution -> residual attention module -> dilated residual
attention block (three dilated branches, merge, pyramid attention, residual).
Decoder: three 3x3 convolutions back to one channel.

Choices where the paper is silent, made here and kept:

- ReLU after the shallow convolution and after each dilated branch (the released code
  wraps its convolutions with ReLU); the attention paths themselves are linear.
- The merge of the three branches is a 3x3 convolution, as drawn in the extended paper
  (arXiv 2411.11799); with it the model has about 0.36 million parameters.
- No batch normalisation: it is optional in the design, and without it training and
  inference behave the same.
- The two average-pool masks need even sides, so ``encode`` reflect-pads odd sides by
  one pixel and crops the features back: features always have the input's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medfuse._shared.errors import InputError
from medfuse.dran.fusion_head import PyramidWeightHead


def pooled_mask(x: torch.Tensor) -> torch.Tensor:
    """``Up2(AvgPool2(x))`` with nearest-neighbour upsampling; sides must be even."""
    return F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")


class ResidualAttention(nn.Module):
    """``y = x + sigmoid(Conv1x1(Up2(AvgPool2(x)))) * Conv3x3(x)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.mask = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sigmoid(self.mask(pooled_mask(x))) * self.body(x)


class PyramidAttention(nn.Module):
    """One shared 3x3 convolution applied in a chain (effective kernels 3, 5, 7).

    Output ``sigmoid(Up2(AvgPool2(z))) * (c1 + c2 + c3)`` with ``c1 = conv(z)``,
    ``c2 = conv(c1)``, ``c3 = conv(c2)``.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c1 = self.conv(z)
        c2 = self.conv(c1)
        c3 = self.conv(c2)
        return torch.sigmoid(pooled_mask(z)) * (c1 + c2 + c3)


class DilatedResidualAttention(nn.Module):
    """Three dilated 3x3 branches (dilation 1, 3, 5), merged, pyramid attention, residual."""

    def __init__(self, width: int, dilations: tuple[int, ...] = (1, 3, 5)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in dilations)
        self.merge = nn.Conv2d(width * len(dilations), width, 3, padding=1)
        self.attention = PyramidAttention(width)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        branches = [F.relu(branch(y)) for branch in self.branches]
        z = self.merge(torch.cat(branches, dim=1))
        return y + self.attention(z)


class DRANEncoder(nn.Module):
    """One-channel image in [0, 1], shape (N, 1, H, W) -> features (N, C, H, W)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.shallow = nn.Conv2d(1, width, 3, padding=1)
        self.residual_attention = ResidualAttention(width)
        self.dran = DilatedResidualAttention(width)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        padded = F.pad(image, (0, width % 2, 0, height % 2), mode="reflect")
        return self.deep(F.relu(self.shallow(padded)))[..., :height, :width]

    def deep(self, shallow: torch.Tensor) -> torch.Tensor:
        """The features from the shallow ones (the part an encoder variant extends)."""
        return self.dran(self.residual_attention(shallow))


class DRANDecoder(nn.Module):
    """Features (N, C, H, W) -> one-channel image (N, 1, H, W)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width // 2, 1, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class SobelMagnitude(nn.Module):
    """``|S_x * f| + |S_y * f|`` for every channel f: fixed 3 x 3 Sobel kernels, zero padding."""

    kernels: torch.Tensor  # a buffer (register_buffer), which nn.Module's typing cannot tell from a submodule

    def __init__(self, width: int) -> None:
        super().__init__()
        sobel_x = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        kernels = torch.stack([sobel_x, sobel_x.T])[:, None].repeat(width, 1, 1, 1)  # (2 width, 1, 3, 3)
        self.register_buffer("kernels", kernels, persistent=False)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        responses = F.conv2d(x, self.kernels.to(x.dtype), padding=1, groups=self.width)
        return responses.abs().view(x.shape[0], self.width, 2, *x.shape[2:]).sum(dim=2)


class EdgeBranch(nn.Module):
    """The gradient branch of the edge-enhanced DRAN (Zhou et al., BIBM 2024, arXiv 2411.11799)
    on the shallow features s: a dense residual block ``d = LReLU(conv3(s ++ LReLU(conv3(s))))``
    (++: channel concatenation) projected back by a 1 x 1 convolution, plus the features'
    Sobel gradient magnitude projected by another: ``E(s) = P_d(d) + P_g(|grad s|)``.
    LeakyReLU slope 0.2 as the extended paper's code; its dropout is left out (inference and
    training then see the same network)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gradient = SobelMagnitude(width)
        self.gradient_projection = nn.Conv2d(width, width, 1)
        self.dense_first = nn.Conv2d(width, width, 3, padding=1)
        self.dense_second = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.dense_projection = nn.Conv2d(2 * width, width, 1)

    def forward(self, shallow: torch.Tensor) -> torch.Tensor:
        dense = torch.cat([shallow, F.leaky_relu(self.dense_first(shallow), 0.2)], dim=1)
        dense = F.leaky_relu(self.dense_second(dense), 0.2)
        return self.dense_projection(dense) + self.gradient_projection(self.gradient(shallow))


class EdgeEnhancedEncoder(DRANEncoder):
    """The DRAN encoder with :class:`EdgeBranch` on its shallow features, added to its output."""

    def __init__(self, width: int = 64) -> None:
        super().__init__(width)
        self.edge = EdgeBranch(width)

    def deep(self, shallow: torch.Tensor) -> torch.Tensor:
        return super().deep(shallow) + self.edge(shallow)


class DRAN(nn.Module):
    """The DRAN autoencoder: ``decode(encode(x))`` reconstructs ``x``.

    Fusion runs the frozen encoder on both sources, combines the features with a rule
    from :mod:`medfuse.dran.rules` and decodes the result. With ``fusion_head`` > 0 the model
    also holds a trained fusion stage of that hidden width
    (:class:`~medfuse.dran.fusion_head.PyramidWeightHead`, stage 2), which the ``trained-pyramid``
    rule uses; 0: none.
    """

    def __init__(self, width: int = 64, fusion_head: int = 0) -> None:
        super().__init__()
        if width < 2 or width % 2:
            raise InputError(f"width must be an even number >= 2, got {width}")
        if fusion_head < 0:
            raise InputError(f"fusion_head must be 0 (none) or a positive width, got {fusion_head}")
        self.width = width
        self.encoder = DRANEncoder(width)
        self.decoder = DRANDecoder(width)
        self.fusion_head = PyramidWeightHead(width, fusion_head) if fusion_head else None

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(image))


class EdgeDRAN(DRAN):
    """The edge-enhanced DRAN (arXiv 2411.11799): :class:`EdgeEnhancedEncoder`, DRAN's decoder."""

    def __init__(self, width: int = 64, fusion_head: int = 0) -> None:
        super().__init__(width, fusion_head)
        self.encoder = EdgeEnhancedEncoder(width)
