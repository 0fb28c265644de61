"""Metrics modelled on human vision: VIF, Qcb (Chen-Blum) and Qcv (Chen-Varshney)."""

from __future__ import annotations

import numpy as np

from medfuse._shared.lazy import lazy_module
from medfuse.evaluation.metrics._validation import grey_triple
from medfuse.evaluation.metrics.gradient import sobel_edges

signal = lazy_module("scipy.signal")

CONTRAST_FLOOR = 1e-10  # local means below this (images on 0..255) carry no usable contrast


def _gaussian_window(side: int, sigma: float) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', side, sigma)``: a normalised square Gaussian."""
    half = (side - 1) / 2
    x, y = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1))
    window = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return window / window.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    return signal.fftconvolve(image, window[::-1, ::-1], mode="valid")


def _vif_pair(reference: np.ndarray, distorted: np.ndarray, noise_variance: float = 2.0) -> float:
    numerator, denominator = 0.0, 0.0
    eps = 1e-10
    for scale in range(1, 5):
        side = 2 ** (5 - scale) + 1
        window = _gaussian_window(side, side / 5)
        if scale > 1:
            reference = _filter_valid(reference, window)[::2, ::2]
            distorted = _filter_valid(distorted, window)[::2, ::2]
        if min(reference.shape) < side:
            break
        mu_r, mu_d = _filter_valid(reference, window), _filter_valid(distorted, window)
        var_r = np.maximum(_filter_valid(reference * reference, window) - mu_r**2, 0)
        var_d = np.maximum(_filter_valid(distorted * distorted, window) - mu_d**2, 0)
        covariance = _filter_valid(reference * distorted, window) - mu_r * mu_d
        gain = covariance / (var_r + eps)
        noise = var_d - gain * covariance
        gain[var_r < eps] = 0
        noise[var_r < eps] = var_d[var_r < eps]
        var_r[var_r < eps] = 0
        gain[var_d < eps] = 0
        noise[var_d < eps] = 0
        noise[gain < 0] = var_d[gain < 0]
        gain[gain < 0] = 0
        noise[noise <= eps] = eps
        numerator += np.sum(np.log10(1 + gain**2 * var_r / (noise + noise_variance)))
        denominator += np.sum(np.log10(1 + var_r / noise_variance))
    return float(numerator / denominator) if denominator > 0 else 0.0


def vif(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Visual information fidelity for fusion: ``VIF(A, F) + VIF(B, F)``.

    Each term is the multi-scale pixel-domain VIF of Sheikh and Bovik (2006), source as
    reference: 4 scales, Gaussian window of side ``2^(5-s) + 1`` and sigma ``side / 5`` at
    scale s, 'valid' filtering, noise variance 2; from the second scale on the images are
    filtered and decimated by 2 first. Scales whose window no longer fits are skipped.
    """
    f, a, b = grey_triple(fused, a, b)
    return _vif_pair(a, f) + _vif_pair(b, f)


def _stretch_to_8bit(image: np.ndarray) -> np.ndarray:
    """Z. Liu's ``normalize1`` (used by VIFB's Qcb and Qcv): the image's minimum..maximum
    mapped to 0..255 and rounded (halves up); a constant image becomes 0."""
    low, high = image.min(), image.max()
    if high == low:
        return np.zeros_like(image)
    return np.floor((image - low) / (high - low) * 255 + 0.5)


def _centred_frequencies(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``freqspace([rows, cols], 'meshgrid')``: frequencies in [-1, 1), centred."""

    def axis(n: int) -> np.ndarray:
        return (np.arange(n) - n // 2) * (2.0 / n)

    return np.meshgrid(axis(cols), axis(rows))


def _filter_frequency(image: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Multiply the centred spectrum by ``response``; the real part of the result."""
    spectrum = np.fft.fftshift(np.fft.fft2(image))
    return np.fft.ifft2(np.fft.ifftshift(spectrum * response)).real


def _local_contrast(image: np.ndarray) -> np.ndarray:
    """Peli's band-limited contrast ``C = G_2 * I / G_4 * I - 1`` (31 x 31 Gaussians, sigma 2
    and 4, zero padding), then the masking response ``|C|^3 / (C^2 + 1e-4)``.

    C is 0 where ``|G_4 * I| <= CONTRAST_FLOOR``: over flat black regions both filtered
    images are floating-point noise of the FFT (about 1e-13), and so is their ratio.
    """
    x, y = np.meshgrid(np.arange(-15, 16), np.arange(-15, 16))
    narrow, wide = (np.exp(-(x * x + y * y) / (2 * s * s)) / (2 * np.pi * s * s) for s in (2.0, 4.0))
    local_mean = signal.fftconvolve(image, wide, mode="same")
    defined = np.abs(local_mean) > CONTRAST_FLOOR
    ratio = signal.fftconvolve(image, narrow, mode="same") / np.where(defined, local_mean, 1)
    contrast = np.where(defined, np.abs(ratio - 1), 0.0)
    return contrast**3 / (contrast**2 + 1e-4)


def qcb(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Chen-Blum metric Q_CB (Chen and Blum 2009), as in the VIFB toolbox (``metricsQcb.m``).

    Each image is first stretched to 0..255 (:func:`_stretch_to_8bit`), then filtered with
    the contrast sensitivity function
    ``S(r) = exp(-(r / 15.3870)^2) - 0.7622 exp(-(r / 1.3456)^2)`` (r in cycles per degree,
    frequencies scaled by size / 30); local contrast C' from :func:`_local_contrast`;
    contrast preservation ``Q_XF = min(C'_X, C'_F) / max(C'_X, C'_F)``; saliency
    ``lambda_A = C'_A^2 / (C'_A^2 + C'_B^2)``; ``Q_CB = mean(lambda_A Q_AF + lambda_B Q_BF)``.
    Where VIFB divides 0 by 0 (no contrast in either image), Q_XF is 1 and lambda 1/2.
    Over flat black regions VIFB's contrast is a ratio of FFT rounding errors; here it is 0
    there (see :func:`_local_contrast`), so the value is reproducible. This changes Qcb by
    under 1e-4 on images without large black areas; on a PET slice that is mostly black
    it scores the background as contrast kept.
    """
    f, a, b = (_stretch_to_8bit(x) for x in grey_triple(fused, a, b))
    rows, cols = f.shape
    u, v = _centred_frequencies(rows, cols)
    radius = np.hypot(u * cols / 30, v * rows / 30)
    csf = np.exp(-((radius / 15.3870) ** 2)) - 0.7622 * np.exp(-((radius / 1.3456) ** 2))
    contrast_a, contrast_b, contrast_f = (_local_contrast(_filter_frequency(x, csf)) for x in (a, b, f))

    def preservation(source: np.ndarray) -> np.ndarray:
        high = np.maximum(source, contrast_f)
        return np.where(high > 0, np.minimum(source, contrast_f) / np.where(high > 0, high, 1), 1.0)

    energy = contrast_a**2 + contrast_b**2
    weight_a = np.where(energy > 0, contrast_a**2 / np.where(energy > 0, energy, 1), 0.5)
    quality = weight_a * preservation(contrast_a) + (1 - weight_a) * preservation(contrast_b)
    return float(np.mean(quality))


def _block_sums(image: np.ndarray, size: int) -> np.ndarray:
    """The sum of every ``size`` x ``size`` block, the last ones zero-padded (MATLAB's blkproc)."""
    rows, cols = image.shape
    padded = np.pad(image, ((0, -rows % size), (0, -cols % size)))
    return padded.reshape(padded.shape[0] // size, size, padded.shape[1] // size, size).sum(axis=(1, 3))


def qcv(fused: np.ndarray, a: np.ndarray, b: np.ndarray, window: int = 16, alpha: float = 5.0) -> float:
    """Chen-Varshney metric Q_CV (Chen and Varshney 2007), as in the VIFB toolbox
    (``metricsQcv.m``). Lower is better.

    Each image is first stretched to 0..255 (:func:`_stretch_to_8bit`). Regional saliency
    ``lambda_X = sum over a window x window block of g_X^alpha`` (Sobel edge strength,
    alpha 5 as in VIFB); the differences A - F and B - F are filtered by the Mannos-Sakrison
    contrast sensitivity function ``2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1)``
    (frequencies scaled by size / 8) and ``D_X`` is the mean square of the filtered
    difference per block; ``Q_CV = sum(lambda_A D_A + lambda_B D_B) / sum(lambda_A + lambda_B)``.
    """
    f, a, b = (_stretch_to_8bit(x) for x in grey_triple(fused, a, b))
    rows, cols = f.shape
    u, v = _centred_frequencies(rows, cols)
    radius = np.hypot(u * cols / 8, v * rows / 8)
    csf = 2.6 * (0.0192 + 0.144 * radius) * np.exp(-((0.144 * radius) ** 1.1))
    numerator, denominator = 0.0, 0.0
    for source in (a, b):
        saliency = _block_sums(sobel_edges(source)[0] ** alpha, window)
        distortion = _block_sums(_filter_frequency(source - f, csf) ** 2, window) / window**2
        numerator += np.sum(saliency * distortion)
        denominator += np.sum(saliency)
    return float(numerator / denominator) if denominator > 0 else 0.0
