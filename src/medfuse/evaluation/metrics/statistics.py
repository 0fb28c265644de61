"""Metrics of the fused image alone (SD, SF, AG) and correlations with the sources (CC, SCD)."""

from __future__ import annotations

import numpy as np

from medfuse.evaluation.metrics._validation import grey_8bit, grey_triple, pearson


def sd(fused: np.ndarray) -> float:
    """Standard deviation: the population standard deviation of F, ``sqrt(mean((F - mean F)^2))``."""
    return float(np.std(grey_8bit(fused, "fused")))


def sf(fused: np.ndarray) -> float:
    """Spatial frequency (Eskicioglu and Fisher 1995): ``sqrt(RF^2 + CF^2)``.

    ``RF^2`` is the mean of squared differences between horizontal neighbours, over the
    H x (W - 1) pairs; ``CF^2`` the same for vertical neighbours, over (H - 1) x W pairs.
    """
    f = grey_8bit(fused, "fused")
    row_frequency = np.mean(np.diff(f, axis=1) ** 2)
    column_frequency = np.mean(np.diff(f, axis=0) ** 2)
    return float(np.sqrt(row_frequency + column_frequency))


def ag(fused: np.ndarray) -> float:
    """Average gradient: mean over all pixels of ``sqrt((Gx^2 + Gy^2) / 2)``.

    Gx, Gy are central differences inside the image and one-sided differences on its
    border (the convention of ``numpy.gradient``).
    """
    gy, gx = np.gradient(grey_8bit(fused, "fused"))
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def cc(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Correlation coefficient: ``(corr(A, F) + corr(B, F)) / 2``, Pearson.

    A constant image has no defined correlation; it counts as 0.
    """
    f, a, b = grey_triple(fused, a, b)
    return (pearson(a, f) + pearson(b, f)) / 2


def scd(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Sum of the correlations of differences (Aslantas and Bendes 2015):
    ``corr(F - B, A) + corr(F - A, B)``, Pearson; an undefined correlation counts as 0."""
    f, a, b = grey_triple(fused, a, b)
    return pearson(f - b, a) + pearson(f - a, b)
