"""Structural metrics: SSIM, PSNR and FSIM."""

from __future__ import annotations

import numpy as np

from medfuse._shared.errors import InputError
from medfuse._shared.lazy import lazy_module
from medfuse.evaluation.metrics._validation import grey_triple

signal = lazy_module("scipy.signal")
skimage_metrics = lazy_module("skimage.metrics")

REDUCTIONS = ("mean", "sum")


SSIM_WINDOW = 11
"""Side of the smallest image SSIM scores: skimage's Gaussian window for sigma 1.5
(``2 int(3.5 sigma + 0.5) + 1``)."""


def _reduce(value_a: float, value_b: float, reduction: str) -> float:
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    total = value_a + value_b
    return float(total / 2 if reduction == "mean" else total)


def ssim(fused: np.ndarray, a: np.ndarray, b: np.ndarray, reduction: str = "mean") -> float:
    """Structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004) of F with each source.

    ``SSIM(x, y) = mean over windows of (2 mu_x mu_y + C1)(2 s_xy + C2) /
    ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``, Gaussian window sigma 1.5,
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, L = 255, population covariances (computed by
    ``skimage.metrics.structural_similarity``). ``reduction="mean"`` (the DRAN papers)
    averages SSIM(F, A) and SSIM(F, B); ``"sum"`` adds them.
    """
    f, a, b = grey_triple(fused, a, b)
    if min(f.shape) < SSIM_WINDOW:
        raise InputError(
            f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got {f.shape[1]} x {f.shape[0]}"
        )
    options = {"data_range": 255, "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    return _reduce(
        skimage_metrics.structural_similarity(a, f, **options),
        skimage_metrics.structural_similarity(b, f, **options),
        reduction,
    )


def psnr(fused: np.ndarray, a: np.ndarray, b: np.ndarray, reduction: str = "mean") -> float:
    """Peak signal-to-noise ratio ``10 log10(255^2 / MSE)`` of F against each source, their mean
    (``reduction="sum"`` adds them); computed by ``skimage.metrics.peak_signal_noise_ratio``.
    Identical images give infinity."""
    f, a, b = grey_triple(fused, a, b)
    with np.errstate(divide="ignore"):
        return _reduce(
            skimage_metrics.peak_signal_noise_ratio(a, f, data_range=255),
            skimage_metrics.peak_signal_noise_ratio(b, f, data_range=255),
            reduction,
        )


def _centred_coordinates(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequency coordinates normalised to +-0.5, zero in the centre (Kovesi's convention)."""

    def axis(n: int) -> np.ndarray:
        return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1) if n % 2 else np.arange(-n / 2, n / 2) / n

    return np.meshgrid(axis(cols), axis(rows))


def phase_congruency(
    image: np.ndarray,
    scales: int = 4,
    orientations: int = 4,
    min_wavelength: float = 6,
    multiplier: float = 2,
    sigma_on_f: float = 0.55,
    k: float = 2.0,
) -> np.ndarray:
    """Phase congruency (Kovesi 1999, the ``phasecong2`` variant used by FSIM): log-Gabor
    filters over ``scales`` x ``orientations``, energy ``sum_s (E cos - |O sin|)`` against the
    weighted mean phase, a noise threshold estimated from the smallest scale per
    orientation, and ``PC = sum_o max(Energy_o - T_o, 0) / sum_o sum_s A_so`` (0 where the
    amplitudes are all 0, as in a constant image: no signal, no congruency)."""
    rows, cols = image.shape
    spectrum = np.fft.fft2(image)
    x, y = _centred_coordinates(rows, cols)
    centred_radius = np.sqrt(x**2 + y**2)
    low_pass = np.fft.ifftshift(1.0 / (1.0 + (centred_radius / 0.45) ** (2 * 15)))
    radius = np.fft.ifftshift(centred_radius)
    radius[0, 0] = 1.0  # no log(0); the filters are zeroed there below
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    sin_theta, cos_theta = np.sin(theta), np.cos(theta)
    radial = []
    for scale in range(scales):
        centre = 1.0 / (min_wavelength * multiplier**scale)
        log_gabor = np.exp(-(np.log(radius / centre) ** 2) / (2 * np.log(sigma_on_f) ** 2)) * low_pass
        log_gabor[0, 0] = 0.0
        radial.append(log_gabor)
    theta_sigma = np.pi / orientations / 1.2
    energy_all = np.zeros((rows, cols))
    amplitude_all = np.zeros((rows, cols))
    for orientation in range(orientations):
        angle = orientation * np.pi / orientations
        ds = sin_theta * np.cos(angle) - cos_theta * np.sin(angle)
        dc = cos_theta * np.cos(angle) + sin_theta * np.sin(angle)
        spread = np.exp(-(np.arctan2(ds, dc) ** 2) / (2 * theta_sigma**2))
        filters = [g * spread for g in radial]
        responses = [np.fft.ifft2(spectrum * h) for h in filters]
        sum_even = sum(r.real for r in responses)
        sum_odd = sum(r.imag for r in responses)
        amplitude = sum(np.abs(r) for r in responses)
        magnitude = np.sqrt(sum_even**2 + sum_odd**2) + 1e-4
        mean_even, mean_odd = sum_even / magnitude, sum_odd / magnitude
        energy = sum(
            r.real * mean_even + r.imag * mean_odd - np.abs(r.real * mean_odd - r.imag * mean_even) for r in responses
        )
        noise_power = -np.median(np.abs(responses[0]) ** 2) / np.log(0.5) / np.sum(filters[0] ** 2)
        spatial = [np.fft.ifft2(h).real * np.sqrt(rows * cols) for h in filters]
        sum_squares = sum(np.sum(s**2) for s in spatial)
        sum_cross = sum(np.sum(spatial[i] * spatial[j]) for i in range(scales) for j in range(i + 1, scales))
        tau = np.sqrt((2 * noise_power * sum_squares + 4 * noise_power * sum_cross) / 2)
        threshold = (tau * np.sqrt(np.pi / 2) + k * np.sqrt((2 - np.pi / 2) * tau**2)) / 1.7
        energy_all += np.maximum(energy - threshold, 0)
        amplitude_all += amplitude
    return np.where(amplitude_all > 0, energy_all / np.where(amplitude_all > 0, amplitude_all, 1), 0.0)


def _fsim_pair(reference: np.ndarray, distorted: np.ndarray) -> float:
    rows, cols = reference.shape
    factor = max(1, round(min(rows, cols) / 256))
    if factor > 1:  # the reference's automatic downscaling: box filter, then every factor-th pixel
        reference, distorted = (_box_same(image, factor)[::factor, ::factor] for image in (reference, distorted))
    pc_r, pc_d = phase_congruency(reference), phase_congruency(distorted)
    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]]) / 16
    dy = dx.T
    gradient_r = np.hypot(signal.convolve2d(reference, dx, mode="same"), signal.convolve2d(reference, dy, mode="same"))
    gradient_d = np.hypot(signal.convolve2d(distorted, dx, mode="same"), signal.convolve2d(distorted, dy, mode="same"))
    pc_similarity = (2 * pc_r * pc_d + 0.85) / (pc_r**2 + pc_d**2 + 0.85)
    gradient_similarity = (2 * gradient_r * gradient_d + 160) / (gradient_r**2 + gradient_d**2 + 160)
    pc_max = np.maximum(pc_r, pc_d)
    similarity = gradient_similarity * pc_similarity
    if not np.any(pc_max > 0):  # no phase congruency in either image: every pixel weighs the same
        return float(np.mean(similarity))
    return float(np.sum(similarity * pc_max) / np.sum(pc_max))


def _box_same(image: np.ndarray, size: int) -> np.ndarray:
    """MATLAB's ``conv2(image, fspecial('average', size), 'same')`` (zero padding)."""
    kernel = np.full((size, size), 1.0 / size**2)
    return signal.convolve2d(image, kernel, mode="same")


def fsim(fused: np.ndarray, a: np.ndarray, b: np.ndarray, reduction: str = "mean") -> float:
    """Feature similarity, grey version (Zhang, Zhang, Mou and Zhang 2011), of F with each source.

    ``FSIM = sum(S_PC S_G PC_m) / sum(PC_m)`` with ``S_PC = (2 PC1 PC2 + 0.85) /
    (PC1^2 + PC2^2 + 0.85)``, ``S_G = (2 G1 G2 + 160) / (G1^2 + G2^2 + 160)``, G the
    Scharr gradient magnitude, ``PC_m = max(PC1, PC2)``; where neither image has any phase
    congruency (both flat), every pixel weighs the same: ``mean(S_PC S_G)``, 1 for two
    constant images; phase congruency with the
    reference implementation's settings (:func:`phase_congruency`), images larger than
    about 384 pixels downscaled first as ``FeatureSIM.m`` does. Mean of FSIM(A, F) and
    FSIM(B, F) (``reduction="sum"`` adds them).
    """
    f, a, b = grey_triple(fused, a, b)
    return _reduce(_fsim_pair(a, f), _fsim_pair(b, f), reduction)
