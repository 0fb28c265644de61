"""The errors medfuse raises for what a user can mend, under one base.

Every error below :class:`MedfuseError` carries a message that names the file or option at
fault and says why, in words a user reads without the code; the command line prints it as
one line (:func:`one_line`) and exits with status 2. Each kind also derives from the
built-in error it refines (``ValueError``, ``FileNotFoundError``, ``OSError``,
``MemoryError``, ``ImportError``), so code that catches those keeps working.
"""

from __future__ import annotations

import os


class MedfuseError(Exception):
    """Base of every error that medfuse raises for a user's input, output or machine."""


class InputError(MedfuseError, ValueError):
    """An input that cannot be used: an unreadable or unsupported file, images of two sizes,
    an unknown name, an option out of range or options that contradict each other."""


class MissingInputError(MedfuseError, FileNotFoundError):
    """An input file or folder (or a named model) that does not exist."""


class OutputError(MedfuseError, OSError):
    """A result that cannot be written (no permission, a read-only or full disk, a path that is
    taken or is an input); nothing is left behind."""


class NotEnoughMemoryError(MedfuseError, MemoryError):
    """Work that would not fit in the device's free memory; raised before the work starts."""


class MissingDependencyError(MedfuseError, ImportError):
    """An optional library that a feature needs and that is not installed; the message names the
    ``pip install`` line of the optional extra that brings it."""


class RegistrationError(MedfuseError, ValueError):
    """Images that cannot be registered (a 2-D image with a volume, a constant image), or a
    result that looks wrong; the message says why, with the numbers. ``registration`` is the
    refused result, when there is one (to show what was found)."""

    def __init__(self, message: str, registration: object | None = None) -> None:
        super().__init__(message)
        self.registration = registration


def printable(text: str | os.PathLike[str]) -> str:
    """Text (or a path) that can be printed and stored as UTF-8 anywhere: the bytes of file names
    that are not UTF-8 (which Python keeps as lone surrogates) shown as ``\\xNN``."""
    text = os.fspath(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name's byte made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(error: BaseException | str) -> str:
    """An error's text on one line (libraries' messages may span several), whitespace collapsed,
    :func:`printable`."""
    return printable(" ".join(str(error).split()))


def error_message(error: BaseException) -> str:
    """One line for an error: a medfuse error's message, or for a failed file operation the file
    and the system's reason."""
    if isinstance(error, OSError) and not isinstance(error, MedfuseError) and error.strerror:
        return one_line(f"{error.filename}: {error.strerror}" if error.filename else error.strerror)
    return one_line(error)
