"""Model + rule -> fused image with the DRAN network.

The network fuses grey images; :func:`medfuse.image.composition.grey_pair` and
:func:`medfuse.image.composition.compose` handle colour (through YCbCr) and the pixel type
around it; :mod:`medfuse.fusion.memory` plans the batches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch

from medfuse._shared.errors import InputError
from medfuse.dran import DEFAULT_MODEL, DEFAULT_RULE
from medfuse.dran.models import load_model, weights_digest, weights_path
from medfuse.dran.network import DRAN
from medfuse.dran.rules import (
    FusionRule,
    ImageFusion,
    SourceFusion,
    SourceWeighting,
    TrainedFusion,
    get_rule,
    list_rules,
    trained_maps,
)
from medfuse.fusion.memory import plan_batch, running_out_as_error
from medfuse.image.composition import compose, grey_pair

Key = TypeVar("Key", bound=Hashable)


@torch.no_grad()
def fuse_tensors(model: DRAN, image_a: torch.Tensor, image_b: torch.Tensor, rule: FusionRule) -> torch.Tensor:
    """Fuse two batches of one-channel images (N, 1, H, W) in [0, 1]: ``D(rule(E(a), E(b)))``
    for a feature rule; ``w a + (1 - w) b`` with ``w = rule.weights(E(a), E(b))`` for a
    :class:`~medfuse.dran.rules.SourceWeighting`; ``rule.blend(a, b, rule.weights(E(a), E(b)))``
    for a :class:`~medfuse.dran.rules.SourceFusion`; ``rule.blend(a, b, model.fusion_head(E(a), E(b)))``
    for a :class:`~medfuse.dran.rules.TrainedFusion`; ``rule.blend(a, b, rule.weights(a, b))``, no
    network, for an :class:`~medfuse.dran.rules.ImageFusion`."""
    return fuse_images(model, image_a, image_b, rule)[0]


@torch.no_grad()
def fuse_images(
    model: DRAN, image_a: torch.Tensor, image_b: torch.Tensor, rule: FusionRule
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`fuse_encoded` with the features computed here, unless the rule needs none (an
    :class:`~medfuse.dran.rules.ImageFusion`: the encoder does not run)."""
    if isinstance(rule, ImageFusion):
        return fuse_encoded(model, image_a, image_b, None, None, rule)
    return fuse_encoded(model, image_a, image_b, model.encode(image_a), model.encode(image_b), rule)


@torch.no_grad()
def fuse_encoded(
    model: DRAN,
    image_a: torch.Tensor,
    image_b: torch.Tensor,
    features_a: torch.Tensor | None,
    features_b: torch.Tensor | None,
    rule: FusionRule,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`fuse_tensors` from the images' features ``E(a)``, ``E(b)`` already computed (to try
    several rules on one encoding), and A's weight map (N, 1, H, W) for a rule that has one
    (:func:`has_weight_map`), else None. The features may be None for an
    :class:`~medfuse.dran.rules.ImageFusion`, which does not use them."""
    if isinstance(rule, ImageFusion):
        w_a = rule.weights(image_a, image_b)
        return rule.blend(image_a, image_b, w_a), w_a
    assert features_a is not None and features_b is not None  # only an ImageFusion goes without
    if isinstance(rule, SourceWeighting):
        w_a = rule.weights(features_a, features_b)
        return w_a * image_a + (1 - w_a) * image_b, w_a
    if isinstance(rule, SourceFusion):
        w_a = rule.weights(features_a, features_b)
        return rule.blend(image_a, image_b, w_a), w_a
    if isinstance(rule, TrainedFusion):
        maps = trained_maps(model, features_a, features_b)
        return rule.blend(image_a, image_b, maps), maps[:, :1]
    return model.decode(rule(features_a, features_b)), None


def has_weight_map(rule: str | FusionRule) -> bool:
    """Whether ``rule`` weighs the sources pixel by pixel (a :class:`~medfuse.dran.rules.SourceWeighting`,
    :class:`~medfuse.dran.rules.SourceFusion`, :class:`~medfuse.dran.rules.TrainedFusion` or
    :class:`~medfuse.dran.rules.ImageFusion`). A feature rule mixes the network's features,
    which the decoder turns into an image: no pixel of the result comes from A or B in a share."""
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    return isinstance(rule_function, (SourceWeighting, SourceFusion, TrainedFusion, ImageFusion))


def weights_make_the_fusion(rule: str | FusionRule) -> bool:
    """Whether the fusion is its weight map's blend pixel by pixel, ``w_A A + (1 - w_A) B`` (a
    :class:`~medfuse.dran.rules.SourceWeighting`), so that the map's mean is each source's share. The
    pyramid rules' maps weigh only the base brightness, both sources' details added on top: their
    shares are measured by fitting the fusion to its sources instead
    (:func:`medfuse.evaluation.metrics.fidelity.fusion_shares`)."""
    return isinstance(get_rule(rule) if isinstance(rule, str) else rule, SourceWeighting)


def check_weight_map(rule: str | FusionRule) -> None:
    """An :class:`~medfuse._shared.errors.InputError` naming the rules that have a weight map,
    if ``rule`` has none."""
    if not has_weight_map(rule):
        name = rule if isinstance(rule, str) else getattr(rule, "__name__", "this rule")
        with_maps = ", ".join(candidate for candidate in list_rules() if has_weight_map(candidate))
        raise InputError(
            f"rule {name!r} mixes the network's features, so no pixel has a weight of A: it has no "
            f"weight map; rules with one: {with_maps}"
        )


@lru_cache(maxsize=4)
def _cached_model(digest: str, path: str, device: str) -> DRAN:
    return load_model(path, device)


def cached_model(name_or_path: str = DEFAULT_MODEL, device: str | torch.device = "cpu") -> DRAN:
    """:func:`medfuse.dran.models.load_model`, loaded once per process for each weights file and
    device and kept by what the file holds: a file replaced under the same path loads again."""
    path = weights_path(name_or_path)
    return _cached_model(weights_digest(path), str(path), str(device))


def _model_on(model: DRAN | str | None, device: str | torch.device | None) -> DRAN:
    """A loaded model on ``device`` from a model, a shipped name or weights path, or None
    (the shipped default); names and paths load on the CPU unless told (:func:`cached_model`)."""
    if model is None or isinstance(model, str):
        return cached_model(model or DEFAULT_MODEL, device or "cpu")
    return model if device is None else model.to(device)


def _fuse_grey_batch(
    model: DRAN, greys_a: list[np.ndarray], greys_b: list[np.ndarray], rule: FusionRule
) -> tuple[np.ndarray, np.ndarray | None]:
    device = next(model.parameters()).device
    batch_a = torch.from_numpy(np.stack(greys_a)).float()[:, None].to(device)
    batch_b = torch.from_numpy(np.stack(greys_b)).float()[:, None].to(device)
    fused, w_a = fuse_images(model, batch_a, batch_b, rule)
    return fused[:, 0].double().cpu().numpy(), None if w_a is None else w_a[:, 0].double().cpu().numpy()


def fuse(
    image_a: np.ndarray,
    image_b: np.ndarray,
    rule: str | FusionRule = DEFAULT_RULE,
    model: DRAN | str | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Fuse two registered images with a DRAN model and a fusion rule.

    Args:
        image_a, image_b: grey (H, W) or RGB (H, W, 3) arrays of one size; uint8, uint16 or
            float in [0, 1]. RGB with three equal channels counts as grey.
        rule: a registered rule name (see ``list_rules()``), a feature rule function, a
            :class:`~medfuse.dran.rules.SourceWeighting` or a :class:`~medfuse.dran.rules.SourceFusion`.
        model: a loaded model, a shipped model name or a weights path; default
            :data:`~medfuse.dran.DEFAULT_MODEL` (``dran-fusion-havard``).
        device: torch device to run on; default the model's (CPU for names and paths).

    Returns:
        The fused image: RGB if either input is 3-D, else grey; pixel type float if
        either input is float, else uint16 if either is uint16, else uint8.

    Raises:
        NotEnoughMemoryError: before any work, if the pair would not fit in the device's
            free memory (see :func:`fusion_memory`); and if the memory runs out all the same
            while it works (one line, not the allocator's traceback).
    """
    return fuse_with_weights(image_a, image_b, rule, model, device)[0]


def fuse_with_weights(
    image_a: np.ndarray,
    image_b: np.ndarray,
    rule: str | FusionRule = DEFAULT_RULE,
    model: DRAN | str | None = None,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`fuse`, and A's weight map from the same network pass: float64 (H, W) in [0, 1], the
    share of A at every pixel (for ``sfnn-pyramid`` and ``trained-pyramid``, A's weight in the
    brightness they blend: :func:`~medfuse.dran.rules.base_weights`, channel 0 of the trained maps), or
    None for a rule without one (:func:`has_weight_map`)."""
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    model = _model_on(model, device)
    # Before any float copy; an image of fewer than 2 dimensions gets here too, for grey_pair to refuse in its words.
    plan_batch(next(model.parameters()).device, *np.shape(image_a)[:2], 1)  # type: ignore[call-arg]
    grey_a, grey_b = grey_pair(image_a, image_b)
    with running_out_as_error(f"fusing a pair of {grey_a.shape[1]} x {grey_a.shape[0]} pixels"):
        lumas, weights = _fuse_grey_batch(model, [grey_a], [grey_b], rule_function)
    return compose(lumas[0], image_a, image_b), None if weights is None else weights[0]


def weight_map(
    image_a: np.ndarray,
    image_b: np.ndarray,
    rule: str | FusionRule = DEFAULT_RULE,
    model: DRAN | str | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """A's weight at every pixel of the fusion of ``image_a`` and ``image_b`` (arguments as
    :func:`fuse`): float64 (H, W) in [0, 1]; B's is one minus it. Raises
    :class:`~medfuse._shared.errors.InputError` for a rule without one (a feature rule)."""
    check_weight_map(rule)
    weights = fuse_with_weights(image_a, image_b, rule, model, device)[1]
    assert weights is not None  # the rule has a weight map: checked above
    return weights


def fuse_pairs(
    pairs: Iterable[tuple[Key, np.ndarray, np.ndarray]],
    rule: str | FusionRule = DEFAULT_RULE,
    model: DRAN | str | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
) -> Iterator[tuple[Key, np.ndarray]]:
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
        with running_out_as_error(
            f"fusing {len(greys_a)} pair(s) of {greys_a[0].shape[1]} x {greys_a[0].shape[0]} pixels"
        ):
            lumas, _ = _fuse_grey_batch(model, greys_a, greys_b, rule_function)
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
            height, width = grey_a.shape
            limit = plan_batch(device, height, width, batch_size)
        waiting.append((key, image_a, image_b))
        greys_a.append(grey_a)
        greys_b.append(grey_b)
        if len(waiting) == limit:
            yield from flush()
    if waiting:
        yield from flush()
