"""Fusion rules and their registry.

Five kinds of rule, all pure functions of tensors:

- a feature rule returns the fused features, which the decoder turns into the fused image
  (the paper's pipeline; ``sfnn`` is its released rule);
- a :class:`SourceWeighting` returns A's weight at every pixel, (N, 1, H, W), and the fused
  image is ``w_A A + (1 - w_A) B``: the sources themselves are blended, the decoder is not used;
- a :class:`SourceFusion` fuses the source images themselves, guided by their features
  (``sfnn-pyramid``: both sources' Laplacian pyramids, level by level);
- a :class:`TrainedFusion` fuses the source images with maps from the model's own trained fusion
  stage (``trained-pyramid``: :mod:`medfuse.dran.fusion_head`);
- an :class:`ImageFusion` fuses the source images without the network at all (``pyramid-energy``,
  the default: ``sfnn-pyramid``'s blend with weights from the sources' local brightness, the
  network-free twin that no DRAN fusion beat on lesions and metrics together; BENCHMARKS.md).

A rule itself has no trained parameters (a :class:`TrainedFusion` uses the model's), so a new
rule needs no retraining. Rules are created by
name: ``get_rule("sfnn-map")``; ``list_rules()`` names them all; ``register_rule`` adds
one. ``DEFAULT_RULE`` is what ``medfuse.fuse`` and ``medfuse fuse`` use unless told
otherwise (chosen on train pairs, see BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from medfuse._shared.checks import check_same_shape
from medfuse._shared.errors import InputError
from medfuse._shared.lazy import lazy_module
from medfuse._shared.registry import add_to_registry
from medfuse.dran.nuclear import matrix_nuclear_norms
from medfuse.dran.pyramid import binomial_blur, collapse_pyramid, gaussian_pyramid, laplacian_pyramid

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F

    from medfuse.dran import network
else:
    torch = lazy_module("torch")
    F = lazy_module("torch.nn.functional")

FeatureRule = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class SourceWeighting:
    """A rule that blends the source images: ``weights(features_a, features_b)`` gives A's
    weight at every pixel, (N, 1, H, W) in [0, 1]; the fused image is
    ``w_A(x) A(x) + (1 - w_A(x)) B(x)`` (see :func:`medfuse.fusion.engine.fuse_tensors`)."""

    weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SourceFusion:
    """A rule that fuses the source images, guided by their features: ``weights(features_a,
    features_b)`` gives A's weight at every pixel, (N, 1, H, W) in [0, 1], from the features
    (N, C, H, W); ``blend(image_a, image_b, w_a)`` gives the fused image (N, 1, H, W) in [0, 1]
    from the images (N, 1, H, W) and that weight map, in its own way (``sfnn-pyramid``: level by
    level of the images' pyramids)."""

    weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    blend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainedFusion:
    """A rule that fuses the source images with the model's trained fusion stage:
    ``blend(image_a, image_b, maps)`` gives the fused image (N, 1, H, W) in [0, 1] from the images
    and ``maps = model.fusion_head(features_a, features_b)`` (:func:`trained_maps`), whose channel
    0 is A's weight at every pixel (see :mod:`medfuse.dran.fusion_head`)."""

    blend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ImageFusion:
    """A rule that needs no network: ``weights(image_a, image_b)`` gives A's weight at every pixel
    (N, 1, H, W) from the images themselves, ``blend(image_a, image_b, w_a)`` the fused image, as a
    :class:`SourceFusion`'s. The engine runs no encoder for it."""

    weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    blend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


FusionRule = FeatureRule | SourceWeighting | SourceFusion | TrainedFusion | ImageFusion
RULES: dict[str, FusionRule] = {}
ACTIVITY_POWER = 2
ACTIVITY_RADIUS = 1
EVIDENCE_POWER = 2
"""Power of the per-image evidence ``m`` in the spatial rules (``sfnn-spatial``, ``sfnn-map``): the
square, as the released code's ``sfnn`` (whose own square, like ``sfnn-channel``'s, is fixed)."""
SHARP_EVIDENCE_POWER = 4
"""Power of ``m`` in ``sfnn-map-e4``, chosen on train pairs in round 3 (BENCHMARKS.md)."""
PYRAMID_LEVELS = 5
"""Detail levels of ``sfnn-pyramid``: its base is the sources at 1/32 of their size, so that
details up to about 32 px across lie in the levels that keep both sources whole."""
FINEST_POWER = 4
"""Power of the local magnitudes that share ``sfnn-pyramid``'s finest level between the sources."""
BASE_GAIN = 0.8
"""Scale of ``sfnn-pyramid``'s blended base: room in [0, 1] for the details of both sources
(without it a bright detail of one source on a bright region of the other is clipped away)."""


Rule = TypeVar("Rule", bound=FusionRule)


def register_rule(name: str) -> Callable[[Rule], Rule]:
    """Decorator (or call, for a :class:`SourceWeighting`): make a rule available by ``name``."""
    add = add_to_registry(RULES, "fusion rule", name)

    def register(rule: Rule) -> Rule:
        add(rule)
        return rule

    return register


def list_rules() -> list[str]:
    """Names of every registered fusion rule."""
    return sorted(RULES)


def get_rule(name: str) -> FusionRule:
    """The fusion rule registered as ``name``."""
    if name not in RULES:
        raise InputError(f"unknown fusion rule {name!r}; choose one of: {', '.join(list_rules())}")
    return RULES[name]


def _check_pair(features_a: torch.Tensor, features_b: torch.Tensor) -> None:
    check_same_shape(
        "feature tensors", {"features_a": features_a.shape, "features_b": features_b.shape}, "(N, C, H, W)"
    )


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / (a + b)`` for non-negative ``a``, ``b``, with 0/0 taken as 1/2."""
    total = a + b
    return torch.where(total > 0, a / torch.where(total > 0, total, 1), torch.full_like(a, 0.5))


def nuclear_norms(features: torch.Tensor) -> torch.Tensor:
    """``n_k = ||softmax(f)_k||_*`` for every channel: (N, C, H, W) -> (N, C).

    The softmax runs over the channel dimension at every pixel; the nuclear norm (sum of
    singular values) of every H x W channel comes from
    :func:`medfuse.dran.nuclear.matrix_nuclear_norms` (exact to 1e-4 relative, fast on CPU and GPU).
    """
    return matrix_nuclear_norms(torch.softmax(features, dim=1))


def sfnn_weights(features_a: torch.Tensor, features_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One weight per image, as the released DRAN code: ``m = max_k n_k``,
    ``w_A = m_A^2 / (m_A^2 + m_B^2)``, ``w_B = 1 - w_A``; each of shape (N, 1, 1, 1)."""
    m_a = nuclear_norms(features_a).amax(dim=1)
    m_b = nuclear_norms(features_b).amax(dim=1)
    w_a = _ratio(m_a**2, m_b**2).view(-1, 1, 1, 1)
    return w_a, 1 - w_a


@register_rule("sfnn")
def sfnn(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Softmax + nuclear norm (Zhou, Xu and Zhang, arXiv 2212.04661), the released behaviour:
    ``f = w_A f_A + w_B f_B`` with the per-image weights of :func:`sfnn_weights`."""
    _check_pair(features_a, features_b)
    w_a, w_b = sfnn_weights(features_a, features_b)
    return w_a * features_a + w_b * features_b


@register_rule("sfnn-channel")
def sfnn_channel(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Softmax + nuclear norm with one weight per channel, the paper's formula:
    ``w_{A,k} = n_k(f_A)^2 / (n_k(f_A)^2 + n_k(f_B)^2)``, ``w_{B,k} = 1 - w_{A,k}``."""
    _check_pair(features_a, features_b)
    w_a = _ratio(nuclear_norms(features_a) ** 2, nuclear_norms(features_b) ** 2)[..., None, None]
    return w_a * features_a + (1 - w_a) * features_b


def nuclear_activity(
    features: torch.Tensor, norms: torch.Tensor | None = None, *, radius: int = ACTIVITY_RADIUS
) -> torch.Tensor:
    """Activity of every pixel, (N, C, H, W) -> (N, 1, H, W): the channels' absolute
    responses weighted by their share of the nuclear norms, ``a(x) = sum_k nu_k |f_k(x)|``
    with ``nu_k = n_k / sum_j n_j`` (``n_k`` from :func:`nuclear_norms`), then averaged over
    the (2r + 1) x (2r + 1) window around x (edges replicated; r = ``radius``, 1 for every
    registered rule). ``norms`` (N, C): the nuclear norms of ``features`` if already computed."""
    norms = nuclear_norms(features) if norms is None else norms
    shares = (norms / norms.sum(dim=1, keepdim=True).clamp_min(torch.finfo(norms.dtype).tiny))[..., None, None]
    activity = (shares * features.abs()).sum(dim=1, keepdim=True)
    padded = F.pad(activity, (radius,) * 4, mode="replicate")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


def sfnn_spatial_weights(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    *,
    power: int = ACTIVITY_POWER,
    radius: int = ACTIVITY_RADIUS,
    evidence_power: int = EVIDENCE_POWER,
) -> torch.Tensor:
    """A's weight at every pixel, (N, 1, H, W): sfnn's per-image evidence ``m^q`` times the
    local activity ``a(x)^p`` of :func:`nuclear_activity` (window radius ``radius``):
    ``w_A(x) = m_A^q a_A(x)^p / (m_A^q a_A(x)^p + m_B^q a_B(x)^p)`` (0/0 -> 1/2), ``q`` =
    ``evidence_power``. With q = 2, where the two activities are equal this is sfnn's weight;
    elsewhere the more active source wins. The registered rules use p = 2 and radius 1, and
    q = 2 except ``sfnn-map-e4`` (q = 4); ``benchmarks/tune_rule.py`` varies all three."""
    evidence = []
    for features in (features_a, features_b):
        norms = nuclear_norms(features)
        image_evidence = norms.amax(dim=1).view(-1, 1, 1, 1) ** evidence_power
        evidence.append(image_evidence * nuclear_activity(features, norms, radius=radius) ** power)
    return _ratio(*evidence)


def sharp_evidence_weights(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """:func:`sfnn_spatial_weights` with the per-image evidence at the fourth power,
    ``w_A(x) = m_A^4 a_A(x)^2 / (m_A^4 a_A(x)^2 + m_B^4 a_B(x)^2)``: the image with the larger
    nuclear norm weighs more everywhere than with sfnn's square, while the local activity
    still decides where the two differ."""
    return sfnn_spatial_weights(features_a, features_b, evidence_power=SHARP_EVIDENCE_POWER)


@register_rule("sfnn-spatial")
def sfnn_spatial(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Softmax + nuclear norm with one weight per pixel, blending the features:
    ``f(x) = w_A(x) f_A(x) + (1 - w_A(x)) f_B(x)`` with :func:`sfnn_spatial_weights`, i.e.
    ``w_A = (m_A a_A)^2 / ((m_A a_A)^2 + (m_B a_B)^2)``: sfnn's squared ratio of evidence with
    the evidence taken per pixel."""
    _check_pair(features_a, features_b)
    w_a = sfnn_spatial_weights(features_a, features_b)
    return w_a * features_a + (1 - w_a) * features_b


# medfuse's default: sfnn-spatial's weights (sfnn_spatial_weights) applied to the source
# images instead of the features, F(x) = w_A(x) A(x) + (1 - w_A(x)) B(x). The fused image
# keeps the sources' own intensities, mixed in the proportions the softmax/nuclear-norm
# evidence gives; the decoder is not used.
SFNN_MAP = register_rule("sfnn-map")(SourceWeighting(sfnn_spatial_weights))
SFNN_MAP_E4 = register_rule("sfnn-map-e4")(SourceWeighting(sharp_evidence_weights))


def base_weights(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """``sfnn-pyramid``'s weight map: the nuclear-norm activity of :func:`sfnn_spatial_weights`
    without the per-image term, ``w_A = a_A^2 / (a_A^2 + a_B^2)`` (evidence power 0)."""
    return sfnn_spatial_weights(features_a, features_b, evidence_power=0)


def pyramid_blend(image_a: torch.Tensor, image_b: torch.Tensor, w_a: torch.Tensor) -> torch.Tensor:
    """Fuse the sources level by level of their Laplacian pyramids (:mod:`medfuse.dran.pyramid`),
    so that what either source shows at the scale of a lesion is kept whole:

    - base (the sources reduced ``PYRAMID_LEVELS`` = 5 times): blended by the weight map
      ``w_a`` (:func:`base_weights`, from the network's features) reduced to the base's size:
      the features decide which source's brightness shows where; then scaled by ``BASE_GAIN``
      (0.8), which leaves room in [0, 1] for the details of both sources, as tone mapping
      compresses a base layer and keeps its details;
    - middle levels 1 to 4: both sources' detail coefficients added,
      ``L_A + L_B``: an edge, a texture or a lesion of either source at these scales
      (2 to about 32 px) is in the fusion at its full contrast;
    - finest level 0: each source's coefficients weighted by its local magnitude,
      ``w_A = (G * |L_A|)^4 / ((G * |L_A|)^4 + (G * |L_B|)^4)`` with ``G`` the 5-tap binomial
      blur, so that the sharper source's edges are kept and noise is not added twice.

    The collapsed pyramid is clipped to [0, 1]. Images and weights (N, 1, H, W); any size (small
    images get fewer levels)."""
    pyramid_a, pyramid_b = (laplacian_pyramid(image, PYRAMID_LEVELS) for image in (image_a, image_b))
    fused = []
    for level, (detail_a, detail_b) in enumerate(zip(pyramid_a[:-1], pyramid_b[:-1])):
        if level == 0:
            magnitudes = (binomial_blur(detail.abs()) ** FINEST_POWER for detail in (detail_a, detail_b))
            w_finest = _ratio(*magnitudes)
            fused.append(w_finest * detail_a + (1 - w_finest) * detail_b)
        else:
            fused.append(detail_a + detail_b)
    w_base = gaussian_pyramid(w_a, PYRAMID_LEVELS)[-1]
    fused.append(BASE_GAIN * (w_base * pyramid_a[-1] + (1 - w_base) * pyramid_b[-1]))
    return collapse_pyramid(fused).clamp(0, 1)


SFNN_PYRAMID = register_rule("sfnn-pyramid")(SourceFusion(base_weights, pyramid_blend))


def trained_maps(model: network.DRAN, features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """The maps of ``model``'s trained fusion stage for features (N, C, H, W) of both sources;
    :class:`~medfuse._shared.errors.InputError` if the model has none."""
    head = getattr(model, "fusion_head", None)
    if head is None:
        raise InputError(
            "this model has no trained fusion stage, which rule 'trained-pyramid' needs: use the "
            "shipped dran-fusion-havard, train one (medfuse train-fusion), or choose another rule"
        )
    return head(features_a, features_b)


def trained_pyramid_blend(image_a: torch.Tensor, image_b: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """:func:`medfuse.dran.fusion_head.blend_pyramids`, clipped to [0, 1]: the trained stage's
    per-pixel, per-scale weights of both sources' Laplacian pyramids."""
    from medfuse.dran.fusion_head import blend_pyramids

    return blend_pyramids(image_a, image_b, maps).clamp(0, 1)


TRAINED_PYRAMID = register_rule("trained-pyramid")(TrainedFusion(trained_pyramid_blend))

ENERGY_RADIUS = 4
"""``pyramid-energy``'s local brightness is the mean over (2 * 4 + 1) = 9 x 9 pixels."""


def energy_weights(image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
    """A's weight from the sources' local brightness, no network: ``w_A = e_A^2 / (e_A^2 + e_B^2)``
    with ``e`` each image's (N, 1, H, W) mean over 9 x 9 pixels (mirrored borders; 0/0 -> 1/2)."""

    def local_mean(image: torch.Tensor) -> torch.Tensor:
        pad = min(ENERGY_RADIUS, image.shape[-2] - 1, image.shape[-1] - 1)
        padded = F.pad(image, (pad,) * 4, mode="reflect") if pad else image
        return F.avg_pool2d(padded, 2 * pad + 1, stride=1)

    return _ratio(local_mean(image_a) ** 2, local_mean(image_b) ** 2)


PYRAMID_ENERGY = register_rule("pyramid-energy")(ImageFusion(energy_weights, pyramid_blend))


@register_rule("sfnn-pixel")
def sfnn_pixel(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights from the nuclear-norm activity alone (no per-image term):
    ``w_A(x) = a_A(x)^2 / (a_A(x)^2 + a_B(x)^2)`` with :func:`nuclear_activity`."""
    _check_pair(features_a, features_b)
    w_a = _ratio(nuclear_activity(features_a) ** ACTIVITY_POWER, nuclear_activity(features_b) ** ACTIVITY_POWER)
    return w_a * features_a + (1 - w_a) * features_b


@register_rule("average")
def average(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """``(f_A + f_B) / 2``."""
    _check_pair(features_a, features_b)
    return (features_a + features_b) / 2


@register_rule("addition")
def addition(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """``f_A + f_B``."""
    _check_pair(features_a, features_b)
    return features_a + features_b


@register_rule("max")
def maximum(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Element-wise ``max(f_A, f_B)``."""
    _check_pair(features_a, features_b)
    return torch.maximum(features_a, features_b)


@register_rule("fer")
def feature_energy_ratio(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Feature energy ratio, element-wise: ``k_A = f_A^2 / (f_A^2 + f_B^2)`` (0/0 -> 1/2),
    ``f = k_A f_A + (1 - k_A) f_B``."""
    _check_pair(features_a, features_b)
    k_a = _ratio(features_a**2, features_b**2)
    return k_a * features_a + (1 - k_a) * features_b


@register_rule("l1")
def l1_norm(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """L1-norm weighting per image: ``w_A = |f_A|_1 / (|f_A|_1 + |f_B|_1)`` over the whole
    (C, H, W) tensor (0/0 -> 1/2), ``f = w_A f_A + (1 - w_A) f_B``."""
    _check_pair(features_a, features_b)
    w_a = _ratio(features_a.abs().sum(dim=(1, 2, 3)), features_b.abs().sum(dim=(1, 2, 3))).view(-1, 1, 1, 1)
    return w_a * features_a + (1 - w_a) * features_b
