"""Heavy libraries imported when first used, not when a module that may use them is imported.

``torch = lazy_module("torch")`` at the top of a module gives a stand-in whose first
attribute lookup (``torch.tensor``) imports torch and hands the attribute over. A module
whose registry the command line's help lists (rules, baselines, metrics) can so be imported
in milliseconds; the cost moves to the first call that needs the library. The same idea as
scikit-image's lazy loading (Scientific Python SPEC 1), for third-party modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for the module ``name`` until an attribute is looked up."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:  # the module's attribute, whatever it is (as ModuleType's)
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> LazyModule:
    """A stand-in for the module ``name`` (e.g. "torch" or "scipy.signal"), imported on first use."""
    return LazyModule(name)


def lazy_names(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports each of ``names`` (name -> module
    defining it) on first use, so that importing the package stays cheap."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__
