"""Image files in and out: the one image loader and writer of medfuse.

Reads PNG, JPEG, BMP and TIFF into numpy arrays: grey (H, W) or RGB (H, W, 3), uint8 or
uint16 as stored (16-bit colour PNG through pypng, since Pillow reduces it to 8 bits).
Writes atomically: the file appears complete or not at all.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import png
import tifffile
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")


class ImageFileError(ValueError):
    """A file that cannot be read or written as an image; the message names it."""


def one_line(error: BaseException | str) -> str:
    """An error's text on one line (libraries' messages may span several), whitespace collapsed."""
    return " ".join(str(error).split())


class WriteError(OSError):
    """A file that could not be written (no permission, a read-only or special file system, a
    full disk); the message names it and says why. Nothing is left behind."""


def write_error(path: Path, error: BaseException) -> WriteError:
    """The :class:`WriteError` for ``path`` from the error that stopped the write."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else one_line(error)
    return WriteError(f"cannot write {path}: {reason}")


def _normalise(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # drop alpha
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ImageFileError(f"{path}: expected a 2-D grey or RGB image, got shape {array.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(array.dtype, np.integer) and array.min() >= 0 and array.max() <= 65535:
            array = array.astype(np.uint16)
        else:
            raise ImageFileError(f"{path}: unsupported pixel type {array.dtype} (use 8 or 16 bit)")
    return np.ascontiguousarray(array)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a grey (H, W) or RGB (H, W, 3) uint8 or uint16 array."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            array = tifffile.imread(path)
            if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
                array = np.moveaxis(array, 0, -1)
        elif _is_sixteen_bit_colour_png(path):
            array = _read_png(path)
        else:
            with Image.open(path) as image:
                image.load()
                array = _pil_to_array(image)
    except ImageFileError:
        raise
    except Exception as error:  # damaged bytes can make Pillow, tifffile or pypng raise anything
        raise ImageFileError(f"{path}: not a readable image ({one_line(error)})") from None
    return _normalise(array, path)


def _is_sixteen_bit_colour_png(path: Path) -> bool:
    """True for a PNG whose header (IHDR, PNG spec 11.2.2) says bit depth 16 and colour type
    2 (RGB) or 6 (RGB + alpha): the kind Pillow would reduce to 8 bits."""
    with open(path, "rb") as file:
        head = file.read(26)
    return (head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
            and head[24] == 16 and head[25] in (2, 6))


def _read_png(path: Path) -> np.ndarray:
    """A PNG read with pypng at its stored bit depth: (H, W, planes) uint16."""
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, info["planes"])


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode == "I":
        return np.asarray(image)
    if image.mode in ("1", "L"):
        return np.asarray(image.convert("L"))
    if image.mode == "LA":
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def images_by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    """The image files of a folder by name without suffix (how pairs are matched across folders).

    Two images with one stem (``x.png`` and ``x.tif``) are ambiguous: ImageFileError.
    """
    files: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise ImageFileError(f"{folder}: two images named {path.stem} ({files[path.stem].name}, {path.name})")
            files[path.stem] = path
    return files


def check_writable(path: str | os.PathLike, image: np.ndarray) -> None:
    """Raise :class:`ImageFileError` unless ``path``'s format can hold ``image`` exactly."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageFileError(f"{path}: unknown image format (use one of {', '.join(IMAGE_SUFFIXES)})")
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageFileError(f"{path}: can only write uint8 or uint16 images, got {image.dtype}")
    if image.dtype == np.uint16 and suffix not in (".png", *TIFF_SUFFIXES):
        raise ImageFileError(f"{path}: 16-bit images need .png or .tif")
    if image.dtype == np.uint16 and image.ndim == 3 and suffix == ".png":
        raise ImageFileError(f"{path}: 16-bit colour images need .tif")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of what a file holds."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def current_umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _new_file_beside(path: Path, suffix: str) -> Path:
    """A new empty hidden file in ``path``'s folder; WriteError naming ``path`` if none can be made."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=suffix, dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from None
    os.close(handle)
    return Path(name)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` on a new file beside ``path``, then rename it to ``path``:
    the file appears complete or not at all, and a failed write leaves nothing behind and
    raises :class:`WriteError`."""
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
    """Raise :class:`WriteError` unless a file can be created beside ``path`` (in its folder):
    a cheap test before long work whose result would go there."""
    _new_file_beside(Path(path), ".probe").unlink()


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a grey or RGB uint8/uint16 array; the file appears only when complete.

    The format follows the suffix. 16-bit data needs PNG or TIFF (RGB 16-bit: TIFF).
    """
    path = Path(path)
    image = np.asarray(image)
    check_writable(path, image)
    suffix = path.suffix.lower()
    if not path.parent.is_dir():
        raise ImageFileError(f"{path}: folder {path.parent} does not exist")
    if suffix in TIFF_SUFFIXES:
        photometric = "rgb" if image.ndim == 3 else "minisblack"
        write_atomically(path, lambda temporary: tifffile.imwrite(temporary, image, photometric=photometric))
    else:
        pil_format = Image.registered_extensions()[suffix]
        write_atomically(path, lambda temporary: Image.fromarray(image).save(temporary, format=pil_format))
    return path
