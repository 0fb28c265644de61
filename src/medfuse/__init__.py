"""medfuse: multimodal medical image fusion with DRAN.

>>> import medfuse
>>> fused = medfuse.fuse(mri, pet, rule="sfnn")   # arrays in, array out

The names below load on first use, so ``import medfuse.metrics`` does not import torch.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "DRAN": "medfuse.network",
    "create_model": "medfuse.models",
    "fuse": "medfuse.fusion",
    "fuse_tensors": "medfuse.fusion",
    "get_rule": "medfuse.rules",
    "list_models": "medfuse.models",
    "list_rules": "medfuse.rules",
    "load_model": "medfuse.models",
    "nuclear_norms": "medfuse.rules",
    "register_rule": "medfuse.rules",
    "DEFAULT_RULE": "medfuse.rules",
}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'medfuse' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
