"""medfuse: multimodal medical image fusion with DRAN.

>>> import medfuse
>>> fused = medfuse.fuse(mri, pet, rule="sfnn")                 # arrays in, array out
>>> medfuse.fuse_files("mri.nii.gz", "ct.nii.gz", "fused.nii.gz", volume=medfuse.VolumeOptions(
...     window=medfuse.CtWindow.named("brain")))                   # files in, file out

The names below load on first use, so ``import medfuse`` imports neither torch nor the
readers of any format. Where each lives (one package per layer) is in docs/layout.md.
"""

from __future__ import annotations

import importlib

from medfuse._shared.lazy import lazy_names

__version__ = "0.1.0"

_PUBLIC = {
    "DEFAULT_MODEL": "medfuse.dran",
    "DEFAULT_RULE": "medfuse.dran",
    "DRAN": "medfuse.dran.network",
    "create_model": "medfuse.dran.models",
    "list_models": "medfuse.dran.models",
    "load_model": "medfuse.dran.models",
    "get_rule": "medfuse.dran.rules",
    "list_rules": "medfuse.dran.rules",
    "nuclear_norms": "medfuse.dran.rules",
    "register_rule": "medfuse.dran.rules",
    "fuse": "medfuse.fusion.engine",
    "fuse_tensors": "medfuse.fusion.engine",
    "fuse_with_weights": "medfuse.fusion.engine",
    "weight_map": "medfuse.fusion.engine",
    "weight_shares": "medfuse.evaluation.metrics.fidelity",
    "fuse_volumes": "medfuse.fusion.volumes",
    "fuse_files": "medfuse.clinical.pipeline",
    "register_files": "medfuse.clinical.pipeline",
    "RegistrationRequest": "medfuse.clinical.pipeline",
    "VolumeOptions": "medfuse.clinical.pipeline",
    "CtWindow": "medfuse.clinical.intensity",
    "MedfuseError": "medfuse._shared.errors",
}
_MODULES = {"metrics": "medfuse.evaluation.metrics"}

__all__ = sorted([*_PUBLIC, *_MODULES])


_public_name = lazy_names(__name__, _PUBLIC)


def __getattr__(name: str) -> object:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    return _public_name(name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC, *_MODULES])
