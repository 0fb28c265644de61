"""Model + rule -> fused image with the DRAN network, and how much of it fits in memory.

The network fuses grey images; :func:`medfuse.composition.grey_pair` and
:func:`medfuse.composition.compose` handle colour (through YCbCr) and the pixel type around it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Hashable, Iterable, Iterator, TypeVar

import numpy as np
import torch
from torch import nn

from medfuse.composition import compose, grey_pair
from medfuse.models import DEFAULT_MODEL, load_model, weights_digest, weights_path
from medfuse.rules import DEFAULT_RULE, FusionRule, SourceFusion, SourceWeighting, get_rule

Key = TypeVar("Key", bound=Hashable)

BYTES_PER_PIXEL = 4096
"""Peak memory of fusing one pixel of one image pair: the float32 network activations of
both encoders (and the decoder) and the nuclear norms. Measured on the CPU: 3.3 to 3.5 kB per
pixel for 512 x 512 to 1024 x 1024 pairs and batches of 4 (``benchmarks/fusion_memory.py``)."""
FUSION_OVERHEAD = 128 * 2**20
"""Memory a fusion takes whatever its size (allocator and library workspaces): measured 100 MB
on the CPU for a 256 x 256 pair over the per-pixel share."""
MEMORY_SHARE = 0.8
"""The share of the free memory that one fusion may plan to use."""
CPU_BATCH_SIZE = 1
"""Slices per network call on the CPU: larger batches measured slower there
(``benchmarks/results/volume_speed_cpu.txt``)."""
MAX_CUDA_BATCH_SIZE = 64
"""Most slices per network call on CUDA; fewer when the free GPU memory holds fewer."""


class NotEnoughMemoryError(MemoryError):
    """A fusion that would not fit in the device's free memory; raised before the work starts."""


def _in_units(count: int) -> str:
    return f"{count / 2**30:.1f} GB" if count >= 2**30 else f"{count / 2**20:.0f} MB"


def _free_cpu_memory() -> int | None:
    """Bytes of RAM this process can still take (Linux: MemAvailable, bounded by a cgroup v2
    memory limit); None where the system does not say."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return available
    if limit != "max":
        room = int(limit) - used
        available = room if available is None else min(available, room)
    return available


def free_memory(device: str | torch.device) -> int | None:
    """Bytes free on ``device``: GPU memory on CUDA (the driver's free memory plus what torch
    holds unused), RAM otherwise; None where it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "cpu":
        return _free_cpu_memory()
    return None


def fusion_memory(height: int, width: int, count: int = 1) -> int:
    """Bytes that fusing ``count`` pairs of ``height`` x ``width`` images at once needs at its
    peak: ``BYTES_PER_PIXEL * count * height * width + FUSION_OVERHEAD`` (about 0.4 GB for one
    256 x 256 pair, 1.1 GB for 512 x 512, 4.1 GB for 1024 x 1024)."""
    return BYTES_PER_PIXEL * count * height * width + FUSION_OVERHEAD


def check_memory(height: int, width: int, count: int, device: str | torch.device) -> None:
    """Raise :class:`NotEnoughMemoryError`, with the numbers, if ``count`` pairs of
    ``height`` x ``width`` would not fit in ``MEMORY_SHARE`` of the free memory of ``device``."""
    free = free_memory(device)
    needed = fusion_memory(height, width, count)
    if free is not None and needed > MEMORY_SHARE * free:
        what = f"{count} pairs" if count > 1 else "a pair"
        raise NotEnoughMemoryError(
            f"fusing {what} of {width} x {height} pixels needs about {_in_units(needed)} on {device}, "
            f"but only {_in_units(free)} is free (about {BYTES_PER_PIXEL // 1024} kB per pixel of each pair, "
            f"plus {FUSION_OVERHEAD >> 20} MB)"
        )


def default_batch_size(device: str | torch.device, height: int, width: int) -> int:
    """Pairs (or slices) of ``height`` x ``width`` per network call on ``device``: 1 on the CPU;
    on CUDA as many as fit in ``MEMORY_SHARE`` of the free GPU memory, at most
    ``MAX_CUDA_BATCH_SIZE``. Raises :class:`NotEnoughMemoryError` if not even one fits."""
    device = torch.device(device)
    check_memory(height, width, 1, device)
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    fitting = (int(MEMORY_SHARE * free_memory(device)) - FUSION_OVERHEAD) // (BYTES_PER_PIXEL * height * width)
    return max(1, min(MAX_CUDA_BATCH_SIZE, fitting))


def plan_batch(device: str | torch.device, height: int, width: int, batch_size: int | None = None) -> int:
    """The batch size to fuse ``height`` x ``width`` pairs with on ``device``: ``batch_size``
    if given (at least 1, and it must fit: :func:`check_memory`), else :func:`default_batch_size`
    (which fits by construction). Raises before any work, never during it."""
    if batch_size is None:
        return default_batch_size(device, height, width)
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    check_memory(height, width, batch_size, device)
    return batch_size


@torch.no_grad()
def fuse_tensors(model: nn.Module, image_a: torch.Tensor, image_b: torch.Tensor,
                 rule: FusionRule) -> torch.Tensor:
    """Fuse two batches of one-channel images (N, 1, H, W) in [0, 1]: ``D(rule(E(a), E(b)))``
    for a feature rule; ``w a + (1 - w) b`` with ``w = rule.weights(E(a), E(b))`` for a
    :class:`~medfuse.rules.SourceWeighting`; ``rule.fuse(a, b, E(a), E(b))`` for a
    :class:`~medfuse.rules.SourceFusion`."""
    return fuse_encoded(model, image_a, image_b, model.encode(image_a), model.encode(image_b), rule)


def fuse_encoded(model: nn.Module, image_a: torch.Tensor, image_b: torch.Tensor, features_a: torch.Tensor,
                 features_b: torch.Tensor, rule: FusionRule) -> torch.Tensor:
    """:func:`fuse_tensors` from the images' features ``E(a)``, ``E(b)`` already computed (to try
    several rules on one encoding)."""
    if isinstance(rule, SourceWeighting):
        w_a = rule.weights(features_a, features_b)
        return w_a * image_a + (1 - w_a) * image_b
    if isinstance(rule, SourceFusion):
        return rule.fuse(image_a, image_b, features_a, features_b)
    return model.decode(rule(features_a, features_b))


@lru_cache(maxsize=4)
def _cached_model(digest: str, path: str, device: str) -> nn.Module:
    return load_model(path, device)


def cached_model(name_or_path: str = DEFAULT_MODEL, device: str | torch.device = "cpu") -> nn.Module:
    """:func:`medfuse.models.load_model`, loaded once per process for each weights file and
    device and kept by what the file holds: a file replaced under the same path loads again."""
    path = weights_path(name_or_path)
    return _cached_model(weights_digest(path), str(path), str(device))


def _model_on(model: nn.Module | str | None, device: str | torch.device | None) -> nn.Module:
    """A loaded model on ``device`` from a model, a shipped name or weights path, or None
    (the shipped default); names and paths load on the CPU unless told (:func:`cached_model`)."""
    if model is None or isinstance(model, str):
        return cached_model(model or DEFAULT_MODEL, device or "cpu")
    return model if device is None else model.to(device)


def _fuse_grey_batch(model: nn.Module, greys_a: list[np.ndarray], greys_b: list[np.ndarray],
                     rule: FusionRule) -> np.ndarray:
    device = next(model.parameters()).device
    batch_a = torch.from_numpy(np.stack(greys_a)).float()[:, None].to(device)
    batch_b = torch.from_numpy(np.stack(greys_b)).float()[:, None].to(device)
    return fuse_tensors(model, batch_a, batch_b, rule)[:, 0].double().cpu().numpy()


def fuse(image_a: np.ndarray, image_b: np.ndarray, rule: str | FusionRule = DEFAULT_RULE,
         model: nn.Module | str | None = None, device: str | torch.device | None = None) -> np.ndarray:
    """Fuse two registered images with a DRAN model and a fusion rule.

    Args:
        image_a, image_b: grey (H, W) or RGB (H, W, 3) arrays of one size; uint8, uint16 or
            float in [0, 1]. RGB with three equal channels counts as grey.
        rule: a registered rule name (see ``list_rules()``), a feature rule function, a
            :class:`~medfuse.rules.SourceWeighting` or a :class:`~medfuse.rules.SourceFusion`.
        model: a loaded model, a shipped model name or a weights path; default the
            shipped ``dran-havard``.
        device: torch device to run on; default the model's (CPU for names and paths).

    Returns:
        The fused image: RGB if either input is 3-D, else grey; pixel type float if
        either input is float, else uint16 if either is uint16, else uint8.

    Raises:
        NotEnoughMemoryError: before any work, if the pair would not fit in the device's
            free memory (see :func:`fusion_memory`).
    """
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    grey_a, grey_b = grey_pair(image_a, image_b)
    model = _model_on(model, device)
    plan_batch(next(model.parameters()).device, *grey_a.shape, 1)
    return compose(_fuse_grey_batch(model, [grey_a], [grey_b], rule_function)[0], image_a, image_b)


def fuse_pairs(pairs: Iterable[tuple[Key, np.ndarray, np.ndarray]], rule: str | FusionRule = DEFAULT_RULE,
               model: nn.Module | str | None = None, device: str | torch.device | None = None,
               batch_size: int | None = None) -> Iterator[tuple[Key, np.ndarray]]:
    """Fuse many pairs, several per network call: ``(key, image_a, image_b)`` in,
    ``(key, fused)`` out, in the same order, each as :func:`fuse` gives it.

    Consecutive pairs of one size go through the network together, ``batch_size`` at a time
    (default :func:`default_batch_size`: 1 on the CPU, as many as fit on CUDA); the result
    equals fusing them one by one, to float32 rounding (a pixel may round to the next level).
    Pairs are read from ``pairs`` only as the batches need them.
    """
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    model = _model_on(model, device)
    device = next(model.parameters()).device
    waiting: list[tuple[Key, np.ndarray, np.ndarray]] = []
    greys_a: list[np.ndarray] = []
    greys_b: list[np.ndarray] = []

    def flush() -> Iterator[tuple[Key, np.ndarray]]:
        lumas = _fuse_grey_batch(model, greys_a, greys_b, rule_function)
        for (key, image_a, image_b), luma in zip(waiting, lumas):
            yield key, compose(luma, image_a, image_b)
        for batch in (waiting, greys_a, greys_b):
            batch.clear()

    limit = None
    for key, image_a, image_b in pairs:
        grey_a, grey_b = grey_pair(image_a, image_b)
        if greys_a and greys_a[0].shape != grey_a.shape:
            yield from flush()
        if not greys_a:
            limit = plan_batch(device, *grey_a.shape, batch_size)
        waiting.append((key, image_a, image_b))
        greys_a.append(grey_a)
        greys_b.append(grey_b)
        if len(waiting) == limit:
            yield from flush()
    if waiting:
        yield from flush()
