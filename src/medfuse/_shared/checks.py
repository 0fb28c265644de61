"""Checks of inputs and outputs made before any work, one helper each, so that every command
and function says the same thing in the same words."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from medfuse._shared.errors import InputError, MissingInputError, OutputError
from medfuse._shared.files import check_folder_writable


def check_exists(*paths: str | os.PathLike) -> tuple[Path, ...]:
    """The paths as :class:`~pathlib.Path`; :class:`MissingInputError` naming the first that
    does not exist."""
    for path in map(Path, paths):
        if not path.exists():
            raise MissingInputError(f"{path}: no such file or folder")
    return tuple(map(Path, paths))


def same_path(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """True if both name one file (after resolving links and relative parts)."""
    return Path(first).resolve() == Path(second).resolve()


def check_new_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], what: str = "output") -> Path:
    """``out`` as a Path, unless it is one of ``inputs``, an existing folder, or lies in a folder
    that does not exist or takes no files (:class:`OutputError`). ``what`` names it in the
    message (e.g. "check image")."""
    out = Path(out)
    if any(same_path(out, path) for path in inputs):
        raise OutputError(f"{what} {out} is one of the inputs; choose another path")
    if out.is_dir():
        raise OutputError(f"{what} {out} is a folder; give a file name")
    if not out.parent.is_dir():
        raise OutputError(f"{what} {out}: folder {out.parent} does not exist")
    check_folder_writable(out)
    return out


def check_output_folder(out: str | os.PathLike, what: str = "output folder") -> Path:
    """``out`` as a Path for an output that is a folder (created by the work if new): refused
    (:class:`OutputError`) if it is a file or if the folder it goes into does not exist. The
    rule is that of every output: the output itself may be new, the folder it lies in must exist."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out} is a file; give a folder")
    parent = out.absolute().parent
    if not parent.is_dir():
        state = "is a file, not a folder" if parent.exists() else "does not exist"
        raise OutputError(f"{what} {out}: {parent} {state}")
    return out


def check_suffix(path: str | os.PathLike, suffixes: Iterable[str], what: str) -> None:
    """:class:`InputError` unless ``path`` ends in one of ``suffixes`` (any case)."""
    suffixes = tuple(suffixes)
    if not str(path).lower().endswith(suffixes):
        raise InputError(f"{what} {path}: use a name ending in {' or '.join(suffixes)}")


def check_same_shape(kind: str, shapes: Mapping[str, tuple[int, ...]], layout: str = "") -> None:
    """:class:`InputError` unless every shape in ``shapes`` (name -> shape) is the same and, when
    ``layout`` names the axes (e.g. "(H, W)"), has that many. ``kind`` names the inputs in the
    message (e.g. "images", "feature tensors")."""
    listed = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
    wanted = f"give {kind} of one shape{' ' + layout if layout else ''}"
    axes = layout.count(",") + 1 if layout else None
    if axes is not None and any(len(shape) != axes for shape in shapes.values()):
        raise InputError(f"{kind} must have {axes} axes, got {listed} ({wanted})")
    if len({tuple(shape) for shape in shapes.values()}) > 1:
        raise InputError(f"{kind} differ in size: {listed} ({wanted})")


def check_result(values: object, what: str, low: float | None = None, high: float | None = None) -> None:
    """Refuse to write a result that is not what it claims (:class:`OutputError`): NaN or infinite
    values, or values outside ``[low, high]`` where given. Writers call it last, so that a fault
    upstream never reaches a file as a plausible image."""
    import numpy as np

    values = np.asarray(values)
    if values.dtype.kind not in "fc":
        return
    finite = np.isfinite(values)
    if not finite.all():
        raise OutputError(
            f"{what}: the result holds {int((~finite).sum())} NaN or infinite value(s); nothing was "
            "written (please report this with the inputs)"
        )
    if values.size and ((low is not None and values.min() < low) or (high is not None and values.max() > high)):
        raise OutputError(
            f"{what}: the result runs from {values.min():g} to {values.max():g}, outside "
            f"[{low:g}, {high:g}]; nothing was written (please report this with the inputs)"
        )
