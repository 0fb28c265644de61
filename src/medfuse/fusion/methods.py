"""Fusion methods by name: every DRAN rule as ``dran-RULE`` and every classical baseline.

A method is a function of two images (grey or RGB; uint8, uint16 or float in [0, 1]) that
returns the fused image, as :func:`medfuse.fuse` does. ``create_method("dran-sfnn")`` or
``create_method("gff")``; ``list_methods()`` names them all.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from medfuse._shared.errors import InputError
from medfuse.dran.rules import list_rules
from medfuse.fusion.baselines import BASELINES
from medfuse.image.composition import Method, fuse_luminance

if TYPE_CHECKING:
    import torch

    from medfuse.dran import network

DRAN_PREFIX = "dran-"


def list_methods() -> list[str]:
    """Names of every method: ``dran-RULE`` for each registered rule that uses the network, then
    the baselines (``pyramid-energy``, the rule that needs no network, among them)."""
    return [DRAN_PREFIX + rule for rule in list_rules() if rule not in BASELINES] + sorted(BASELINES)


def is_dran_method(name: str) -> bool:
    """True for the names of DRAN methods (they need a model)."""
    return name.startswith(DRAN_PREFIX)


def create_method(
    name: str, model: network.DRAN | str | None = None, device: str | torch.device | None = None
) -> Method:
    """The method called ``name``; ``model`` and ``device`` apply to DRAN methods (default
    the shipped model on the CPU)."""
    if name in BASELINES:
        return partial(fuse_luminance, fuse_grey=BASELINES[name])
    rule = name.removeprefix(DRAN_PREFIX)
    if is_dran_method(name) and rule in list_rules() and rule not in BASELINES:
        from medfuse.fusion.engine import fuse

        return partial(fuse, rule=rule, model=model, device=device)
    raise InputError(f"unknown fusion method {name!r}; choose one of: {', '.join(list_methods())}")
