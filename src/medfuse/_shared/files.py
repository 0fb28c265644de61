"""Files written whole or not at all, and digests: what every layer that writes may use.

:func:`write_atomically` writes beside the target and renames, so a reader never sees half a
file; a failed write leaves nothing and raises :class:`~medfuse._shared.errors.OutputError`.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from medfuse._shared.errors import OutputError, one_line


def write_error(path: Path, error: BaseException) -> OutputError:
    """The :class:`OutputError` for ``path`` from the error that stopped the write."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else one_line(error)
    return OutputError(f"cannot write {path}: {reason}")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of what a file holds."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def current_umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _new_file_beside(path: Path, suffix: str) -> Path:
    """A new empty hidden file in ``path``'s folder; OutputError naming ``path`` if none can be made."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=suffix, dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from None
    os.close(handle)
    return Path(name)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` on a new file beside ``path``, then rename it to ``path``:
    the file appears complete or not at all, and a failed write leaves nothing behind and
    raises :class:`OutputError`."""
    path = Path(path)
    temporary = _new_file_beside(path, ".part")
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp (or a writer's own file) is 0600: the usual mode
        os.replace(temporary, path)
    except Exception as error:  # whatever the writer raises (OSError, torch's RuntimeError, ...)
        temporary.unlink(missing_ok=True)
        raise write_error(path, error) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def remove_partial_writes(path: str | os.PathLike) -> None:
    """Delete what interrupted atomic writes of ``path`` left beside it: the hidden
    ``.NAME-*.part`` files and folders of a process killed mid-write (a kill can't be caught,
    so :func:`write_atomically` can't tidy up). Call it only while nothing is writing ``path``;
    what can't be deleted stays."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}-*.part"):
        try:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        except OSError:
            continue


def check_folder_writable(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless a file can be created beside ``path`` (in its folder):
    a cheap test before long work whose result would go there."""
    _new_file_beside(Path(path), ".probe").unlink()
