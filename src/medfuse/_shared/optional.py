"""The libraries that come with an optional extra of medfuse, and the one error when one is missing.

The core (``pip install medfuse``) fuses and scores images and NIfTI volumes. Reading or writing
DICOM, registering, running a batch on Dask, MONAI and ONNX each need the libraries of an extra
(pyproject.toml's ``[project.optional-dependencies]``; ``[all]`` brings every one). Every place
that imports one of those libraries goes through :func:`import_optional`, so that a missing one
is a :class:`~medfuse._shared.errors.MissingDependencyError` whose one line names the
``pip install`` that brings it, which the command line prints as it prints every error.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from medfuse._shared.errors import MissingDependencyError

EXTRAS = {
    "pydicom": "dicom",
    "highdicom": "dicom",
    "SimpleITK": "registration",
    "dask": "cluster",
    "distributed": "cluster",
    "monai": "monai",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
}
"""The extra that brings each optional library, by the top-level name it is imported as."""


def install_command(extra: str) -> str:
    """The command that installs medfuse with ``extra``; double quotes, which every shell takes."""
    return f'pip install "medfuse[{extra}]"'


def missing_message(name: str, extra: str, purpose: str | None = None) -> str:
    """The one line for the library ``name`` of ``extra`` not being installed, e.g. ``pydicom is not
    installed; reading DICOM needs the [dicom] extra: pip install "medfuse[dicom]"``."""
    needs = f"{purpose} needs" if purpose else "it comes with"
    return f"{name} is not installed; {needs} the [{extra}] extra: {install_command(extra)}"


def import_optional(name: str, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """The module ``name`` (e.g. "pydicom" or "distributed.scheduler") of an optional extra, imported
    now. ``extra`` defaults to the one :data:`EXTRAS` names for its top-level package; ``purpose``
    says what needs it ("reading DICOM"). If the library is not installed:
    :class:`MissingDependencyError` with :func:`missing_message`. A library that is installed but
    fails to import (one of its own requirements is missing or broken) raises its own error, which
    says what is wrong."""
    top = name.partition(".")[0]
    extra = extra or EXTRAS[top]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:  # also what importing a name that sys.modules maps to None raises
        if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
            raise
        raise MissingDependencyError(missing_message(top, extra, purpose)) from None
