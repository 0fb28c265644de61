"""Fusion metrics: one pure function per metric, on numpy arrays, each returning a float.

``medfuse.evaluation.metrics.NAME(fused)`` for en, sd, sf, ag; ``medfuse.evaluation.metrics.NAME(fused, a, b,
**options)`` for the others. Inputs: uint8, or floats on the 8-bit scale (uint16 is
scaled to it); colour images are scored on their Y channel (BT.601). Conventions follow
``docs/metrics.md``; each docstring gives the formula and the paper. What a fusion keeps of
each source (the retention of a planted lesion, each source's share) is in
:mod:`medfuse.evaluation.metrics.fidelity`: those compare fusions of one pair, not one fused image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from medfuse._shared.errors import InputError
from medfuse.evaluation.metrics.gradient import nabf, qabf
from medfuse.evaluation.metrics.information import en, fmi, mi
from medfuse.evaluation.metrics.statistics import ag, cc, scd, sd, sf
from medfuse.evaluation.metrics.structural import fsim, psnr, ssim
from medfuse.evaluation.metrics.visual import qcb, qcv, vif


class Metric(NamedTuple):
    function: Callable[..., float]
    needs_sources: bool
    higher_is_better: bool


METRICS: dict[str, Metric] = {
    "en": Metric(en, False, True),
    "sd": Metric(sd, False, True),
    "sf": Metric(sf, False, True),
    "ag": Metric(ag, False, True),
    "mi": Metric(mi, True, True),
    "fmi": Metric(fmi, True, True),
    "qabf": Metric(qabf, True, True),
    "nabf": Metric(nabf, True, False),
    "vif": Metric(vif, True, True),
    "scd": Metric(scd, True, True),
    "cc": Metric(cc, True, True),
    "ssim": Metric(ssim, True, True),
    "psnr": Metric(psnr, True, True),
    "fsim": Metric(fsim, True, True),
    "qcb": Metric(qcb, True, True),
    "qcv": Metric(qcv, True, False),
}


def score(name: str, fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Metric ``name`` of a fused image against its sources (sources ignored where not needed)."""
    if name not in METRICS:
        raise InputError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    metric = METRICS[name]
    return metric.function(fused, a, b) if metric.needs_sources else metric.function(fused)


__all__ = [
    "METRICS",
    "Metric",
    "ag",
    "cc",
    "en",
    "fmi",
    "fsim",
    "mi",
    "nabf",
    "psnr",
    "qabf",
    "qcb",
    "qcv",
    "scd",
    "score",
    "sd",
    "sf",
    "ssim",
    "vif",
]
