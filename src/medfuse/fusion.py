"""Model + rule -> fused image: dtype and colour round trip around the DRAN network.

Grey sources are fused directly. A colour source (PET, SPECT) is fused through YCbCr
(BT.601 full range): its Y channel is fused with the other image, its Cb and Cr are kept,
and the result is converted back to RGB.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from medfuse.colour import rgb_to_ycbcr, ycbcr_to_rgb
from medfuse.images import from_unit, grey_unit, is_colour, to_unit
from medfuse.models import DEFAULT_MODEL, load_model
from medfuse.rules import FusionRule, get_rule


@torch.no_grad()
def fuse_tensors(model: nn.Module, image_a: torch.Tensor, image_b: torch.Tensor,
                 rule: FusionRule) -> torch.Tensor:
    """``D(rule(E(a), E(b)))`` for two batches of one-channel images (N, 1, H, W) in [0, 1]."""
    return model.decode(rule(model.encode(image_a), model.encode(image_b)))


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


def _check_image(image: np.ndarray, name: str) -> None:
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(f"{name}: expected grey (H, W) or RGB (H, W, 3), got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"{name}: image must be at least 2 x 2 pixels, got {image.shape[:2]}")


@lru_cache(maxsize=4)
def _cached_model(name: str, device: str) -> nn.Module:
    return load_model(name, device)


def fuse(image_a: np.ndarray, image_b: np.ndarray, rule: str | FusionRule = "sfnn",
         model: nn.Module | str | None = None, device: str | torch.device | None = None) -> np.ndarray:
    """Fuse two registered images with a DRAN model and a fusion rule.

    Args:
        image_a, image_b: grey (H, W) or RGB (H, W, 3) arrays of one size; uint8, uint16 or
            float in [0, 1]. RGB with three equal channels counts as grey.
        rule: a registered rule name (see ``list_rules()``) or a rule function.
        model: a loaded model, a shipped model name or a weights path; default the
            shipped ``dran-havard``.
        device: torch device to run on; default the model's (CPU for names and paths).

    Returns:
        The fused image: RGB if either input is 3-D, else grey; pixel type float if
        either input is float, else uint16 if either is uint16, else uint8.
    """
    image_a, image_b = np.asarray(image_a), np.asarray(image_b)
    _check_image(image_a, "image_a")
    _check_image(image_b, "image_b")
    if image_a.shape[:2] != image_b.shape[:2]:
        raise ValueError(f"images differ in size: {image_a.shape[:2]} and {image_b.shape[:2]}")
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    if model is None or isinstance(model, str):
        model = _cached_model(model or DEFAULT_MODEL, str(device or "cpu"))
    elif device is not None:
        model = model.to(device)
    device = next(model.parameters()).device

    grey_a = torch.from_numpy(grey_unit(image_a)).float()[None, None].to(device)
    grey_b = torch.from_numpy(grey_unit(image_b)).float()[None, None].to(device)
    luma = fuse_tensors(model, grey_a, grey_b, rule_function)[0, 0].double().cpu().numpy()

    chroma = fused_chroma(image_a, image_b)
    if chroma is not None:
        fused = ycbcr_to_rgb(np.concatenate([luma[..., None], chroma], axis=-1))
    elif image_a.ndim == 3 or image_b.ndim == 3:
        fused = np.repeat(luma[..., None], 3, axis=-1)
    else:
        fused = luma
    return from_unit(fused, fused_dtype(image_a.dtype, image_b.dtype))
