"""Classical fusion methods that fusion papers compare against, as pure grey functions.

Each baseline takes two registered grey images (H, W) of floats in [0, 1] and returns the
fused (H, W) image in [0, 1]; :func:`medfuse.image.composition.fuse_luminance` lifts them to
colour and integer images. They are registered by name in ``BASELINES``; none of them
imports the network.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medfuse._shared.checks import check_same_shape
from medfuse._shared.lazy import lazy_module
from medfuse._shared.registry import add_to_registry
from medfuse.image.composition import GreyFusion

pywt = lazy_module("pywt")
ndimage = lazy_module("scipy.ndimage")
torch = lazy_module("torch")

BASELINES: dict[str, GreyFusion] = {}


def register_baseline(name: str) -> Callable[[GreyFusion], GreyFusion]:
    """Decorator: make a baseline available by ``name``."""
    return add_to_registry(BASELINES, "baseline", name)


def _check_grey_pair(image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image_a, image_b = np.asarray(image_a, dtype=np.float64), np.asarray(image_b, dtype=np.float64)
    check_same_shape("grey images", {"image_a": image_a.shape, "image_b": image_b.shape}, "(H, W)")
    return image_a, image_b


def _max_absolute(detail_a: np.ndarray, detail_b: np.ndarray) -> np.ndarray:
    """At each element the coefficient of larger magnitude (A's where equal)."""
    return np.where(np.abs(detail_a) >= np.abs(detail_b), detail_a, detail_b)


@register_baseline("pixel-average")
def pixel_average(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """``F = (A + B) / 2``."""
    image_a, image_b = _check_grey_pair(image_a, image_b)
    return (image_a + image_b) / 2


@register_baseline("pixel-max")
def pixel_maximum(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """``F = max(A, B)`` at every pixel."""
    image_a, image_b = _check_grey_pair(image_a, image_b)
    return np.maximum(image_a, image_b)


def _reduce(image: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(image, sigma=1.0, mode="reflect")[::2, ::2]


def _expand(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    zoom = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    return ndimage.zoom(image, zoom, order=1, mode="nearest", grid_mode=True)


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Burt and Adelson's Laplacian pyramid: ``levels`` detail layers ``G_i - expand(G_{i+1})``
    (Gaussian sigma 1, decimation by 2, bilinear expansion), then the coarsest Gaussian
    level. :func:`collapse_pyramid` inverts it exactly, for any image size."""
    pyramid, current = [], np.asarray(image, dtype=np.float64)
    for _ in range(levels):
        if min(current.shape) < 2:
            break
        smaller = _reduce(current)
        pyramid.append(current - _expand(smaller, current.shape))
        current = smaller
    return [*pyramid, current]


def collapse_pyramid(pyramid: list[np.ndarray]) -> np.ndarray:
    """The image of a :func:`laplacian_pyramid`: ``G_i = L_i + expand(G_{i+1})`` from the top."""
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        image = detail + _expand(image, detail.shape)
    return image


@register_baseline("laplacian")
def laplacian_fusion(image_a: np.ndarray, image_b: np.ndarray, levels: int = 4) -> np.ndarray:
    """Laplacian-pyramid fusion (Burt and Adelson 1983; Burt and Kolczynski 1993): the
    coarsest level is averaged, every detail coefficient is the one of larger magnitude."""
    image_a, image_b = _check_grey_pair(image_a, image_b)
    pyramid_a, pyramid_b = laplacian_pyramid(image_a, levels), laplacian_pyramid(image_b, levels)
    fused = [_max_absolute(a, b) for a, b in zip(pyramid_a[:-1], pyramid_b[:-1])]
    fused.append((pyramid_a[-1] + pyramid_b[-1]) / 2)
    return np.clip(collapse_pyramid(fused), 0.0, 1.0)


@register_baseline("dwt")
def dwt_fusion(image_a: np.ndarray, image_b: np.ndarray, wavelet: str = "db2", levels: int = 3) -> np.ndarray:
    """Discrete wavelet transform fusion (Li, Manjunath and Mitra 1995), with PyWavelets:
    ``levels``-level 2-D DWT (symmetric extension), approximation averaged, every detail
    coefficient the one of larger magnitude, inverse DWT cropped to the input size."""
    image_a, image_b = _check_grey_pair(image_a, image_b)
    levels = max(0, min(levels, pywt.dwtn_max_level(image_a.shape, wavelet)))
    if levels == 0:
        return (image_a + image_b) / 2
    coefficients_a = pywt.wavedec2(image_a, wavelet, mode="symmetric", level=levels)
    coefficients_b = pywt.wavedec2(image_b, wavelet, mode="symmetric", level=levels)
    fused = [(coefficients_a[0] + coefficients_b[0]) / 2]
    for details_a, details_b in zip(coefficients_a[1:], coefficients_b[1:]):
        fused.append(tuple(_max_absolute(a, b) for a, b in zip(details_a, details_b)))
    image = pywt.waverec2(fused, wavelet, mode="symmetric")[: image_a.shape[0], : image_a.shape[1]]
    return np.clip(image, 0.0, 1.0)


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r + 1) x (2r + 1) window around every pixel (mirrored borders)."""
    return ndimage.uniform_filter(image, size=2 * radius + 1, mode="reflect")


def guided_filter(guide: np.ndarray, image: np.ndarray, radius: int, epsilon: float) -> np.ndarray:
    """The guided filter of He, Sun and Tang (2010/2013), grey guide:
    ``q = mean(a) I + mean(b)`` with ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a mean(I)``
    over windows of radius ``radius``."""
    mean_guide, mean_image = box_mean(guide, radius), box_mean(image, radius)
    covariance = box_mean(guide * image, radius) - mean_guide * mean_image
    variance = box_mean(guide * guide, radius) - mean_guide**2
    a = covariance / (variance + epsilon)
    b = mean_image - a * mean_guide
    return box_mean(a, radius) * guide + box_mean(b, radius)


@register_baseline("gff")
def guided_filtering_fusion(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """Guided-filtering fusion, GFF (Li, Kang and Hu, IEEE TIP 22(7), 2013), with the paper's
    parameters: two scales ``B = I * Z`` (31 x 31 mean) and ``D = I - B``; saliency
    ``S = |I * L| * g`` (3 x 3 Laplacian, Gaussian 11 x 11 with sigma 5); binary maps
    ``P = [S_A >= S_B]``; weights ``W_B = G_{45,0.3}(P, I)``, ``W_D = G_{7,1e-6}(P, I)``
    normalised to sum to one; ``F = sum W_B B + sum W_D D``. Where the saliencies tie
    (e.g. black background in both) P gives the pixel to A, as the authors' MATLAB code does,
    so ``gff(A, B)`` and ``gff(B, A)`` can differ there."""
    image_a, image_b = _check_grey_pair(image_a, image_b)
    laplacian = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    saliency = [
        ndimage.gaussian_filter(
            np.abs(ndimage.convolve(image, laplacian, mode="reflect")), sigma=5.0, truncate=1.0, mode="reflect"
        )
        for image in (image_a, image_b)
    ]
    maps = [(saliency[0] >= saliency[1]).astype(np.float64)]
    maps.append(1.0 - maps[0])
    bases = [box_mean(image, 15) for image in (image_a, image_b)]
    layers = {"base": bases, "detail": [image_a - bases[0], image_b - bases[1]]}
    fused = np.zeros_like(image_a)
    for radius, epsilon, layer in ((45, 0.3, "base"), (7, 1e-6, "detail")):
        weights = [
            np.clip(guided_filter(image, p, radius, epsilon), 0.0, None) for image, p in zip((image_a, image_b), maps)
        ]
        total = weights[0] + weights[1]
        weights = [np.where(total > 0, w / np.where(total > 0, total, 1.0), 0.5) for w in weights]
        fused += weights[0] * layers[layer][0] + weights[1] * layers[layer][1]
    return np.clip(fused, 0.0, 1.0)


@register_baseline("pyramid-energy")
def pyramid_energy(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """The rule ``pyramid-energy`` (:data:`medfuse.dran.rules.PYRAMID_ENERGY`) as a baseline, no
    network: ``sfnn-pyramid``'s level-by-level blend (:func:`medfuse.dran.rules.pyramid_blend`) with
    its base weights from the sources themselves, ``w_A = e_A^2 / (e_A^2 + e_B^2)``, ``e`` each
    source's mean brightness over 9 x 9 pixels (:func:`medfuse.dran.rules.energy_weights`). The
    network-free twin that a DRAN fusion must beat to earn its cost."""
    from medfuse.dran.rules import PYRAMID_ENERGY

    image_a, image_b = _check_grey_pair(image_a, image_b)
    a, b = (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None] for image in (image_a, image_b))
    with torch.no_grad():
        return PYRAMID_ENERGY.blend(a, b, PYRAMID_ENERGY.weights(a, b))[0, 0].double().numpy()
