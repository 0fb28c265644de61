"""medfuse: multimodal medical image fusion with DRAN.

>>> import medfuse
>>> fused = medfuse.fuse(mri, pet, rule="sfnn")   # arrays in, array out
"""

from medfuse.fusion import fuse, fuse_tensors
from medfuse.models import create_model, list_models, load_model
from medfuse.network import DRAN
from medfuse.rules import get_rule, list_rules, nuclear_norms, register_rule

__all__ = [
    "DRAN",
    "create_model",
    "fuse",
    "fuse_tensors",
    "get_rule",
    "list_models",
    "list_rules",
    "load_model",
    "nuclear_norms",
    "register_rule",
]
__version__ = "0.1.0"
