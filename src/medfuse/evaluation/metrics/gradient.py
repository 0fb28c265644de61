"""Gradient metrics: Qabf (edge information kept) and Nabf (artifacts added by fusion)."""

from __future__ import annotations

import numpy as np

from medfuse._shared.lazy import lazy_module
from medfuse.evaluation.metrics._validation import grey_triple

signal = lazy_module("scipy.signal")

# Sobel kernels, applied by correlation: SOBEL_RIGHT responds to (right - left), SOBEL_UP
# to (upper - lower), so that arctan(Sy / Sx) is the gradient's angle with y pointing up.
SOBEL_RIGHT = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_UP = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def sobel_edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength ``g = sqrt(Sx^2 + Sy^2)`` and orientation ``alpha = arctan(Sy / Sx)``
    (pi/2 where Sx = 0) from 3x3 Sobel responses with zero padding, input-sized.

    Sx grows to the right and Sy upwards (the convention of the VIFB ``metricsQabf.m``,
    which applies MATLAB's ``conv2`` to the flipped kernels); the pi/2 rule for Sx = 0 makes
    the sign convention matter.
    """
    sx = signal.correlate2d(image, SOBEL_RIGHT, mode="same")
    sy = signal.correlate2d(image, SOBEL_UP, mode="same")
    strength = np.hypot(sx, sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        orientation = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1, sx)))
    return strength, orientation


def _strength_ratio(strength_x: np.ndarray, strength_f: np.ndarray) -> np.ndarray:
    """``min(g_x, g_f) / max(g_x, g_f)``; 0 where either is 0."""
    high = np.maximum(strength_x, strength_f)
    return np.where(high > 0, np.minimum(strength_x, strength_f) / np.where(high > 0, high, 1), 0.0)


def _edge_preservation(source: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel ``Q_XF = Qg * Qa`` of Xydeas and Petrovic, and the source's edge strength."""
    strength_x, orientation_x = sobel_edges(source)
    strength_f, orientation_f = sobel_edges(fused)
    ratio = _strength_ratio(strength_x, strength_f)
    alignment = 1 - np.abs(orientation_x - orientation_f) / (np.pi / 2)
    q_g = 0.9994 / (1 + np.exp(-15 * (ratio - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (alignment - 0.8)))
    return q_g * q_a, strength_x


def qabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Edge-based fusion quality Q^{AB/F} (Xydeas and Petrovic 2000).

    Per pixel ``G = min(g_A, g_F) / max(g_A, g_F)``, ``D = 1 - |alpha_A - alpha_F| / (pi/2)``
    (Sobel strength and orientation of :func:`sobel_edges`),
    ``Qg = 0.9994 / (1 + exp(-15 (G - 0.5)))``, ``Qa = 0.9879 / (1 + exp(-22 (D - 0.8)))``,
    ``Q_AF = Qg Qa``; ``Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B)`` (0 for images
    without edges). Unlike VIFB's ``metricsQabf.m``, ``G`` is 1 (not g_F) where g_A = g_F.
    """
    f, a, b = grey_triple(fused, a, b)
    q_af, g_a = _edge_preservation(a, f)
    q_bf, g_b = _edge_preservation(b, f)
    total = np.sum(g_a + g_b)
    return float(np.sum(q_af * g_a + q_bf * g_b) / total) if total > 0 else 0.0


def _kumar_edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kumar's ``sobel_fn``: Sobel kernels divided by 8 on the image mirrored by one pixel
    (edge not repeated); strength ``sqrt(gv^2 + gh^2)`` and orientation ``arctan(gv / gh)``
    (+-pi/2 where gh = 0, 0 where both are 0), gv the response to left-right changes."""
    padded = np.pad(image, 1, mode="reflect")
    gv = signal.correlate2d(padded, SOBEL_RIGHT / 8, mode="valid")
    gh = signal.correlate2d(padded, -SOBEL_UP / 8, mode="valid")
    with np.errstate(divide="ignore", invalid="ignore"):
        orientation = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
    return np.hypot(gv, gh), orientation


def nabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Artifacts added by fusion, N^{AB/F} as modified by Shreyamsha Kumar (2013): his
    ``objective_fusion_perform_fn.m``, the version shipped with the VIFB toolbox. Lower is better.

    Edge strength g and orientation alpha from :func:`_kumar_edges`; per pixel
    ``G = min(g_X, g_F) / max(g_X, g_F)`` (0 where either is 0),
    ``D = | |alpha_X - alpha_F| - pi/2 | / (pi/2)``, ``Qg = 0.9999 / (1 + exp(-19 (G - 0.5)))``,
    ``Qa = 0.9995 / (1 + exp(-22 (D - 0.5)))``, ``Q_XF = sqrt(Qg Qa)``; weights
    ``w_X = g_X^1.5`` where ``g_X >= 2``, else 0.001;
    ``Nabf = sum(N ((1 - Q_AF) w_A + (1 - Q_BF) w_B)) / sum(w_A + w_B)`` with N = 1 at
    pixels whose fused edge is stronger than both sources' (``g_F > g_A`` and ``g_F > g_B``).
    """
    f, a, b = grey_triple(fused, a, b)
    strength_f, orientation_f = _kumar_edges(f)
    artifacts = np.ones(f.shape, dtype=bool)
    loss = np.zeros(f.shape)
    total_weight = 0.0
    for source in (a, b):
        strength_x, orientation_x = _kumar_edges(source)
        ratio = _strength_ratio(strength_x, strength_f)
        alignment = np.abs(np.abs(orientation_x - orientation_f) - np.pi / 2) / (np.pi / 2)
        q_g = 0.9999 / (1 + np.exp(-19 * (ratio - 0.5)))
        q_a = 0.9995 / (1 + np.exp(-22 * (alignment - 0.5)))
        weight = np.where(strength_x >= 2, strength_x**1.5, 0.001)
        artifacts &= strength_f > strength_x
        loss += (1 - np.sqrt(q_g * q_a)) * weight
        total_weight += np.sum(weight)
    return float(np.sum(loss[artifacts]) / total_weight)
