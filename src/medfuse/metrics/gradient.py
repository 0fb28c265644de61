"""Gradient metrics: Qabf (edge information kept) and Nabf (artifacts added by fusion)."""

from __future__ import annotations

import numpy as np
from scipy.signal import correlate2d

from medfuse.metrics._validation import grey_triple

SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength ``g = sqrt(Sx^2 + Sy^2)`` and orientation ``alpha = arctan(Sy / Sx)``
    (pi/2 where Sx = 0) from 3x3 Sobel responses with zero padding, input-sized."""
    sx = correlate2d(image, SOBEL_X, mode="same")
    sy = correlate2d(image, SOBEL_X.T, mode="same")
    strength = np.hypot(sx, sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        orientation = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1, sx)))
    return strength, orientation


def _relative(strength_x: np.ndarray, orientation_x: np.ndarray, strength_f: np.ndarray,
              orientation_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``G = min(g_x, g_f) / max(g_x, g_f)`` (0 where both are 0) and
    ``D = 1 - |alpha_x - alpha_f| / (pi / 2)``."""
    high = np.maximum(strength_x, strength_f)
    ratio = np.where(high > 0, np.minimum(strength_x, strength_f) / np.where(high > 0, high, 1), 0.0)
    return ratio, 1 - np.abs(orientation_x - orientation_f) / (np.pi / 2)


def _edge_preservation(source: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel ``Q_XF = Qg * Qa`` of Xydeas and Petrovic, and the source's edge strength."""
    strength_x, orientation_x = sobel_edges(source)
    ratio, alignment = _relative(strength_x, orientation_x, *sobel_edges(fused))
    q_g = 0.9994 / (1 + np.exp(-15 * (ratio - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (alignment - 0.8)))
    return q_g * q_a, strength_x


def qabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Edge-based fusion quality Q^{AB/F} (Xydeas and Petrovic 2000).

    Per pixel ``G = min(g_A, g_F) / max(g_A, g_F)``, ``D = 1 - |alpha_A - alpha_F| / (pi/2)``
    (see :func:`sobel_edges`), ``Qg = 0.9994 / (1 + exp(-15 (G - 0.5)))``,
    ``Qa = 0.9879 / (1 + exp(-22 (D - 0.8)))``, ``Q_AF = Qg Qa``;
    ``Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B)`` (0 for images without edges).
    """
    f, a, b = grey_triple(fused, a, b)
    q_af, g_a = _edge_preservation(a, f)
    q_bf, g_b = _edge_preservation(b, f)
    total = np.sum(g_a + g_b)
    return float(np.sum(q_af * g_a + q_bf * g_b) / total) if total > 0 else 0.0


def nabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Artifacts added by fusion, N^{AB/F} as modified by Kumar (2013), as in the VIFB toolbox.

    Edge strength and orientation as :func:`qabf`; ``Q_XF = sqrt(Qg Qa)`` with
    ``Qg = 0.9999 / (1 + exp(-19 (G - 0.5)))`` and ``Qa = 0.9995 / (1 + exp(-22 (D - 0.5)))``;
    weights ``w_X = g_X^1.5`` where ``g_X >= 2``, else 0.001;
    ``Nabf = sum(AM ((1 - Q_AF) w_A + (1 - Q_BF) w_B)) / sum(w_A + w_B)``, where AM is 1 at
    pixels whose fused edge is stronger than both sources' (``g_F > g_A`` and ``g_F > g_B``).
    Lower is better.
    """
    f, a, b = grey_triple(fused, a, b)
    strength_f, orientation_f = sobel_edges(f)
    numerator, denominator = 0.0, 0.0
    artifacts = np.ones_like(f, dtype=bool)
    terms = []
    for source in (a, b):
        strength_x, orientation_x = sobel_edges(source)
        ratio, alignment = _relative(strength_x, orientation_x, strength_f, orientation_f)
        q_g = 0.9999 / (1 + np.exp(-19 * (ratio - 0.5)))
        q_a = 0.9995 / (1 + np.exp(-22 * (alignment - 0.5)))
        weight = np.where(strength_x >= 2, strength_x**1.5, 0.001)
        artifacts &= strength_f > strength_x
        terms.append((1 - np.sqrt(q_g * q_a)) * weight)
        denominator += np.sum(weight)
    numerator = np.sum(artifacts * (terms[0] + terms[1]))
    return float(numerator / denominator)
