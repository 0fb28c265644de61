"""Files written whole or not at all, and digests: what every layer that writes may use.

:func:`write_atomically` writes beside the target and renames, so a reader never sees half a
file; a failed write leaves nothing and raises :class:`~medfuse._shared.errors.OutputError`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from medfuse._shared.errors import MedfuseError, OutputError, one_line


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


NAME_LIMIT = 255
"""Bytes in a file name on the usual file systems (ext4, XFS, APFS, NTFS)."""
TEMPORARY_EXTRA = 16
"""Bytes a temporary name adds to its target's: the dot, the dash, 8 random characters, ``.part``
and a spare."""


def partial_prefix(path: Path) -> str:
    """The start of the hidden temporary names beside ``path`` (``.NAME-``); a name too long to
    take the extra bytes is cut and tagged with its digest, so the temporary name still fits."""
    name = path.name
    if len(name.encode()) + TEMPORARY_EXTRA > NAME_LIMIT:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        cut = name.encode()[:NAME_LIMIT - TEMPORARY_EXTRA - 13].decode(errors="ignore")
        name = f"{cut}~{digest}"
    return f".{name}-"


def new_temporary_beside(path: Path, suffix: str = ".part", folder: bool = False) -> Path:
    """A new empty hidden file (or folder) beside ``path`` for writing it atomically;
    :class:`OutputError` naming ``path`` if none can be made."""
    try:
        if folder:
            return Path(tempfile.mkdtemp(prefix=partial_prefix(path), suffix=suffix, dir=path.parent))
        handle, name = tempfile.mkstemp(prefix=partial_prefix(path), suffix=suffix, dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from None
    os.close(handle)
    return Path(name)


def finish_atomically(temporary: Path, path: Path, mode: int) -> None:
    """Give ``temporary`` the usual ``mode`` (less the umask), rename it to ``path`` and delete
    what earlier interrupted writes of ``path`` left beside it."""
    os.chmod(temporary, mode & ~current_umask())  # mkstemp/mkdtemp (or a writer's own file) is private
    if temporary.is_dir():
        os.rename(temporary, path)  # a folder is never swapped for another: its target must be new
    else:
        os.replace(temporary, path)
    remove_partial_writes(path)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` on a new file beside ``path``, then rename it to ``path``:
    the file appears complete or not at all, and a failed write leaves nothing behind and
    raises :class:`OutputError`. Leftovers of earlier writes of ``path`` that were killed are
    deleted once it is written."""
    path = Path(path)
    temporary = new_temporary_beside(path)
    try:
        write(temporary)
        finish_atomically(temporary, path, 0o666)
    except MedfuseError:  # the writer's own one-line error (a bad input, say), not a failed write
        temporary.unlink(missing_ok=True)
        raise
    except Exception as error:  # whatever the writer raises (OSError, torch's RuntimeError, ...)
        temporary.unlink(missing_ok=True)
        raise write_error(path, error) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_json_atomically(path: str | os.PathLike, content: object) -> Path:
    """``content`` as indented UTF-8 JSON at ``path``, written atomically (:func:`write_atomically`)."""
    text = json.dumps(content, indent=1) + "\n"
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_folder_atomically(folder: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """:func:`write_atomically` for a new folder: ``write(temporary)`` fills a new hidden folder
    beside ``folder``, which is then renamed to ``folder``. An existing ``folder`` is refused
    (:class:`OutputError`): a folder is never swapped for another."""
    folder = Path(folder)
    if folder.exists():
        raise OutputError(f"{folder} exists; medfuse writes this folder new")
    temporary = new_temporary_beside(folder, folder=True)
    try:
        write(temporary)
        finish_atomically(temporary, folder, 0o777)
    except MedfuseError:  # the writer's own one-line error (a bad input, say), not a failed write
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    except Exception as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise write_error(folder, error) from error
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return folder


def remove_partial_writes(path: str | os.PathLike) -> None:
    """Delete what interrupted atomic writes of ``path`` left beside it: the hidden
    ``.NAME-*.part`` files and folders of a process killed mid-write (a kill can't be caught,
    so :func:`write_atomically` can't tidy up). Call it only while nothing is writing ``path``;
    what can't be deleted stays."""
    path = Path(path)
    for leftover in path.parent.glob(f"{glob.escape(partial_prefix(path))}*.part"):
        try:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        except OSError:
            continue


def check_folder_writable(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless a file can be created beside ``path`` (in its folder):
    a cheap test before long work whose result would go there."""
    new_temporary_beside(Path(path), ".probe").unlink()
