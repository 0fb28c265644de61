"""Model + rule -> fused image with the DRAN network.

The network fuses grey images; :func:`medfuse.composition.fuse_luminance` handles colour
(through YCbCr) and the pixel type around it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from medfuse.composition import fuse_luminance
from medfuse.models import DEFAULT_MODEL, load_model
from medfuse.rules import DEFAULT_RULE, FusionRule, SourceWeighting, get_rule


@torch.no_grad()
def fuse_tensors(model: nn.Module, image_a: torch.Tensor, image_b: torch.Tensor,
                 rule: FusionRule) -> torch.Tensor:
    """Fuse two batches of one-channel images (N, 1, H, W) in [0, 1]: ``D(rule(E(a), E(b)))``
    for a feature rule; ``w a + (1 - w) b`` with ``w = rule.weights(E(a), E(b))`` for a
    :class:`~medfuse.rules.SourceWeighting`."""
    features_a, features_b = model.encode(image_a), model.encode(image_b)
    if isinstance(rule, SourceWeighting):
        w_a = rule.weights(features_a, features_b)
        return w_a * image_a + (1 - w_a) * image_b
    return model.decode(rule(features_a, features_b))


@lru_cache(maxsize=4)
def _cached_model(name: str, device: str) -> nn.Module:
    return load_model(name, device)


def fuse(image_a: np.ndarray, image_b: np.ndarray, rule: str | FusionRule = DEFAULT_RULE,
         model: nn.Module | str | None = None, device: str | torch.device | None = None) -> np.ndarray:
    """Fuse two registered images with a DRAN model and a fusion rule.

    Args:
        image_a, image_b: grey (H, W) or RGB (H, W, 3) arrays of one size; uint8, uint16 or
            float in [0, 1]. RGB with three equal channels counts as grey.
        rule: a registered rule name (see ``list_rules()``), a feature rule function or a
            :class:`~medfuse.rules.SourceWeighting`.
        model: a loaded model, a shipped model name or a weights path; default the
            shipped ``dran-havard``.
        device: torch device to run on; default the model's (CPU for names and paths).

    Returns:
        The fused image: RGB if either input is 3-D, else grey; pixel type float if
        either input is float, else uint16 if either is uint16, else uint8.
    """
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    if model is None or isinstance(model, str):
        model = _cached_model(model or DEFAULT_MODEL, str(device or "cpu"))
    elif device is not None:
        model = model.to(device)
    device = next(model.parameters()).device

    def fuse_grey(grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
        tensor_a = torch.from_numpy(grey_a).float()[None, None].to(device)
        tensor_b = torch.from_numpy(grey_b).float()[None, None].to(device)
        return fuse_tensors(model, tensor_a, tensor_b, rule_function)[0, 0].double().cpu().numpy()

    return fuse_luminance(image_a, image_b, fuse_grey)
