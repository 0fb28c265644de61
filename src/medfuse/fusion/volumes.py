"""Slice-batched fusion of two volumes on one grid (arrays in, array out)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from medfuse._shared.checks import check_same_shape
from medfuse._shared.errors import InputError
from medfuse.dran.network import DRAN
from medfuse.dran.rules import FusionRule, get_rule
from medfuse.fusion.engine import check_weight_map, fuse_images
from medfuse.fusion.memory import VOLUME_BYTES_PER_VOXEL, plan_batch, running_out_as_error
from medfuse.image.grid import volume_slices


@torch.no_grad()
def fuse_volumes(
    model: DRAN,
    volume_a: np.ndarray,
    volume_b: np.ndarray,
    rule: str | FusionRule,
    batch_size: int | None = None,
    progress: Callable[[int], object] | None = None,
    weights_out: np.ndarray | None = None,
    host_bytes: int = 0,
) -> np.ndarray:
    """Fuse two (I, J, K) volumes in [0, 1] on one grid, slice by slice along k.

    ``batch_size`` slices at a time (default :func:`medfuse.fusion.memory.default_batch_size`: 1 on
    the CPU, as many as fit in the free memory on CUDA) go through
    :func:`medfuse.fusion.engine.fuse_images` as one (N, 1, J, I) batch (the rules act per item of
    the batch, so this equals fusing the slices one by one).
    ``progress(n)`` is called after each batch with its number of slices. ``weights_out``, a
    float32 (I, J, K) array, is filled with A's weight at every voxel (the rule must have a weight
    map: :func:`~medfuse.fusion.engine.check_weight_map`). ``host_bytes``: RAM the caller needs
    beside the fusion's own (the weight map it passes, an overlay it makes of the result), planned
    with it. Returns float32
    (I, J, K) in [0, 1] (the fused slices, clipped). Raises
    :class:`~medfuse._shared.errors.NotEnoughMemoryError` before any work if one batch and the
    result's arrays (``VOLUME_BYTES_PER_VOXEL``) would not fit, and the same error, in one line,
    if the memory runs out all the same while it works.
    """
    volume_a, volume_b = np.asarray(volume_a), np.asarray(volume_b)
    check_same_shape("volumes", {"volume_a": volume_a.shape, "volume_b": volume_b.shape}, "(I, J, K)")
    if min(volume_a.shape[:2]) < 2:
        raise InputError(f"slices must be at least 2 x 2 voxels, got {volume_a.shape[0]} x {volume_a.shape[1]}")
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    if weights_out is not None:
        check_weight_map(rule_function)
        check_same_shape("weight map", {"volume_a": volume_a.shape, "weights_out": weights_out.shape}, "(I, J, K)")
    device = next(model.parameters()).device
    width, height = volume_a.shape[:2]
    batch_size = plan_batch(
        device, height, width, batch_size, host_bytes=VOLUME_BYTES_PER_VOXEL * volume_a.size + host_bytes
    )
    with running_out_as_error(f"fusing {width} x {height} x {volume_a.shape[2]} volumes"):
        return _fuse_slices(model, volume_a, volume_b, rule_function, batch_size, progress, weights_out)


def _fuse_slices(
    model: DRAN,
    volume_a: np.ndarray,
    volume_b: np.ndarray,
    rule_function: FusionRule,
    batch_size: int,
    progress: Callable[[int], object] | None,
    weights_out: np.ndarray | None,
) -> np.ndarray:
    """The work of :func:`fuse_volumes`, its arguments checked and planned."""
    device = next(model.parameters()).device
    slices_a, slices_b = volume_slices(volume_a), volume_slices(volume_b)
    weights_slices = volume_slices(weights_out) if weights_out is not None else None
    fused = np.empty(slices_a.shape, dtype=np.float32)
    for start in range(0, len(slices_a), batch_size):
        stop = min(start + batch_size, len(slices_a))
        batch_a = torch.from_numpy(np.ascontiguousarray(slices_a[start:stop], dtype=np.float32))
        batch_b = torch.from_numpy(np.ascontiguousarray(slices_b[start:stop], dtype=np.float32))
        batch_a, batch_b = batch_a[:, None].to(device), batch_b[:, None].to(device)
        out, w_a = fuse_images(model, batch_a, batch_b, rule_function)
        fused[start:stop] = out[:, 0].float().cpu().numpy()
        if weights_slices is not None:
            assert w_a is not None  # the rule has a weight map: checked by fuse_volumes
            weights_slices[start:stop] = w_a[:, 0].float().cpu().numpy()
        if progress is not None:
            progress(stop - start)
    np.clip(fused, 0.0, 1.0, out=fused)
    return np.ascontiguousarray(volume_slices(fused))
