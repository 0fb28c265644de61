"""Files written whole or not at all, and digests: what every layer that writes may use.

:func:`write_atomically` writes beside the target and renames, so a reader never sees half a
file; a failed write leaves nothing and raises :class:`~medfuse._shared.errors.OutputError`.
Three guards make this hold when several runs and hostile folders meet:

- :func:`output_lock` (and :func:`output_locks`): one run at a time writes an output; a second
  is refused in one line. Every atomic write takes it, and a job takes the locks of all its
  outputs before its work, so temporary files and records of two runs never mix.
- :func:`inside`: an output path resolved (links included) and checked to lie in the folder the
  user named, before anything is written.
- :func:`written_together`: the outputs of one job appear together or not at all.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from medfuse._shared.errors import MedfuseError, OutputError, one_line, printable


def write_error(path: Path, error: BaseException) -> OutputError:
    """The :class:`OutputError` for ``path`` from the error that stopped the write: the system's
    reason where a failed file operation lies under it (a library may wrap one in its own error,
    as pydicom wraps a full disk in a message holding the whole traceback), else its one line."""
    cause = system_error(error)
    reason = cause.strerror if cause is not None else one_line(error)
    return OutputError(f"cannot write {printable(path)}: {reason}")


def system_error(error: BaseException) -> OSError | None:
    """The first failed file operation (an ``OSError`` with the system's reason) in ``error``'s
    chain of causes, itself included; None if there is none."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and not isinstance(current, MedfuseError) and current.strerror:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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
TEMPORARY_EXTRA = 28
"""Bytes a temporary name adds to its target's: the dot, the dash, the process id (up to 10
digits) and a dash, 8 random characters, ``.part`` and a spare."""


def partial_prefix(path: Path) -> str:
    """The start of the hidden temporary names beside ``path`` (``.NAME-``); a name too long to
    take the extra bytes is cut and tagged with its digest, so the temporary name still fits."""
    name, stored = path.name, os.fsencode(path.name)  # the name's bytes on disk, UTF-8 or not
    if len(stored) + TEMPORARY_EXTRA > NAME_LIMIT:
        digest = hashlib.sha256(stored).hexdigest()[:12]
        name = f"{os.fsdecode(stored[: NAME_LIMIT - TEMPORARY_EXTRA - 13])}~{digest}"
    return f".{name}-"


def new_temporary_beside(path: Path, suffix: str = ".part", folder: bool = False) -> Path:
    """A new empty hidden file (or folder) beside ``path`` for writing it atomically;
    :class:`OutputError` naming ``path`` if none can be made."""
    try:
        prefix = f"{partial_prefix(path)}{os.getpid()}-"  # whose it is, for a reader of the folder
        if folder:
            return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
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
    _remove_leftovers(path)  # the caller holds the output's lock: no other run is writing it


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` on a new file beside ``path``, then rename it to ``path``:
    the file appears complete or not at all, and a failed write leaves nothing behind and
    raises :class:`OutputError`. Leftovers of earlier writes of ``path`` that were killed are
    deleted once it is written."""
    path = Path(path)
    with output_lock(path):
        return _write_whole(path, write)


def _write_whole(path: Path, write: Callable[[Path], object], folder: bool = False) -> Path:
    """``write(temporary)`` on a new hidden file (or folder) beside ``path``, renamed to ``path`` when
    complete; whatever fails, the temporary one goes (the caller holds the output's lock)."""
    temporary = new_temporary_beside(path, folder=folder)

    def remove_temporary() -> None:
        shutil.rmtree(temporary, ignore_errors=True) if folder else temporary.unlink(missing_ok=True)

    try:
        write(temporary)
        finish_atomically(temporary, path, 0o777 if folder else 0o666)
        _record_output(path)
    except MedfuseError:  # the writer's own one-line error (a bad input, say), not a failed write
        remove_temporary()
        raise
    except Exception as error:  # whatever the writer raises (OSError, torch's RuntimeError, ...)
        remove_temporary()
        raise write_error(path, error) from error
    except BaseException:
        remove_temporary()
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
    with output_lock(folder):
        if folder.exists():
            raise OutputError(f"{folder} exists; medfuse writes this folder new")
        return _write_whole(folder, write, folder=True)


def remove_partial_writes(path: str | os.PathLike) -> None:
    """Delete what interrupted atomic writes of ``path`` left beside it: the hidden
    ``.NAME-*.part`` files and folders of a process killed mid-write (a kill can't be caught,
    so :func:`write_atomically` can't tidy up). Only while no other run holds the output's lock
    (:func:`output_lock`), so a live writer's files stay; what can't be deleted stays."""
    path = Path(path)
    try:
        with output_lock(path):
            _remove_leftovers(path)
    except OutputError:  # another run writes it (its own leftovers are its business), or no lock can be made
        return


def _remove_leftovers(path: Path) -> None:
    for leftover in path.parent.glob(f"{glob.escape(partial_prefix(path))}*.part"):
        try:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        except OSError:
            continue


def check_folder_writable(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless a file can be created beside ``path`` (in its folder):
    a cheap test before long work whose result would go there."""
    new_temporary_beside(Path(path), ".probe").unlink()


LOCK_SUFFIX = "lock"
UNLOCKABLE = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
"""What ``flock`` answers on a file system that has no locks (some network and FUSE ones): the
write goes ahead with a warning."""


def lock_path(path: str | os.PathLike) -> Path:
    """The hidden lock file of the output ``path``, beside it: ``.NAME-lock``."""
    path = Path(path)
    return path.parent / f"{partial_prefix(path)}{LOCK_SUFFIX}"


_held: dict[tuple[str, int], tuple[int, int]] = {}
"""The locks this process holds: (lock file, thread) -> (descriptor, depth), so that a job's
writers take again the lock that the job took first."""
_held_guard = threading.Lock()


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of the output ``path`` (an exclusive ``flock`` on :func:`lock_path`) while the
    block runs; :class:`OutputError` at once if another run (or thread) holds it. The same thread
    may take it again inside (a job, then its writers). The lock file is deleted on release; the
    kernel releases the lock of a killed process, so a lock is never stale."""
    path = Path(path)
    key = (str(lock_path(path).absolute()), threading.get_ident())
    with _held_guard:
        descriptor, depth = _held.get(key, (-1, 0))
        if depth:
            _held[key] = (descriptor, depth + 1)
    if not depth:
        descriptor = _acquire(path)
        with _held_guard:
            _held[key] = (descriptor, 1)
    try:
        yield path
    finally:
        with _held_guard:
            descriptor, depth = _held.pop(key)
            if depth > 1:
                _held[key] = (descriptor, depth - 1)
        if depth == 1:
            lock = lock_path(path)
            try:
                lock.unlink(missing_ok=True)  # before the release: whoever opens it next makes a new one
            except OSError:
                pass
            os.close(descriptor)


def _acquire(path: Path) -> int:
    """A descriptor of the output's lock file holding its exclusive lock."""
    lock = lock_path(path)
    while True:
        try:
            descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise write_error(path, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise OutputError(
                f"{path} is being written by another medfuse run; wait for it to finish, or choose another output"
            ) from None
        except OSError as error:
            if error.errno in UNLOCKABLE:  # a file system without flock: write, unguarded, rather than not at all
                warnings.warn(
                    f"{lock.parent} cannot hold locks ({error.strerror}): two medfuse runs writing there at once "
                    "would not be kept apart",
                    stacklevel=4,
                )
                return descriptor
            os.close(descriptor)
            raise write_error(path, error) from None
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            return descriptor
        os.close(descriptor)  # a run released and deleted the file between our open and lock: again


@contextmanager
def output_locks(*paths: str | os.PathLike | None) -> Iterator[None]:
    """:func:`output_lock` of every path given (None skipped; a path in a folder that does not
    exist yet is skipped too: the job's own checks refuse it, or its writer locks it)."""
    with ExitStack() as stack:
        for path in paths:
            if path is not None and Path(path).absolute().parent.is_dir():
                stack.enter_context(output_lock(path))
        yield


def inside(path: str | os.PathLike, root: str | os.PathLike, what: str = "output") -> Path:
    """``path`` with its links resolved, checked to lie in the folder ``root`` (links resolved
    too); :class:`OutputError` if a link (or a ``..``) leads it out, before anything is written."""
    resolved, folder = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if not resolved.is_relative_to(folder):
        raise OutputError(
            f"{what} {path} leads to {resolved}, outside {root} (a symbolic link?); nothing was written there"
        )
    return resolved


class _Job:
    """What one :func:`written_together` block has written so far."""

    def __init__(self) -> None:
        self.outputs: list[Path] = []
        self.folders: list[Path] = []


_jobs = threading.local()


def _record_output(path: Path) -> None:
    for job in getattr(_jobs, "stack", []):
        job.outputs.append(path)


@contextmanager
def written_together() -> Iterator[None]:
    """The outputs of one job appear together or not at all: every file or folder that an atomic
    write (:func:`write_atomically`, :func:`write_folder_atomically`) finishes while the block
    runs, in this thread, is deleted if the block fails, and so is every folder that
    :func:`make_folders` made for it, if it is then empty."""
    job = _Job()
    stack = _jobs.__dict__.setdefault("stack", [])
    stack.append(job)
    try:
        yield
    except BaseException:
        for path in reversed(job.outputs):
            try:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
            except OSError:
                continue
        for folder in reversed(job.folders):
            try:
                folder.rmdir()
            except OSError:  # not empty (someone else's files), or gone
                continue
        raise
    finally:
        stack.remove(job)


def make_folders(folder: str | os.PathLike) -> None:
    """``folder`` and the folders above it that are missing, made now; :class:`OutputError` if
    one cannot be. Inside :func:`written_together` those new folders go if the job fails."""
    folder = Path(folder)
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue  # another run made it meanwhile: not ours to remove
        except OSError as error:
            raise write_error(new, error) from None
        for job in getattr(_jobs, "stack", []):
            job.folders.append(new)
