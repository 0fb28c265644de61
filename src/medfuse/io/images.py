"""Image files in and out: the one image loader and writer of medfuse.

Reads PNG, JPEG, BMP and TIFF into numpy arrays: grey (H, W) or RGB (H, W, 3), uint8 or
uint16 as stored (16-bit colour PNG through pypng, since Pillow reduces it to 8 bits).
Writes atomically: the file appears complete or not at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import png
import tifffile
from PIL import Image

from medfuse._shared.checks import check_new_output
from medfuse._shared.errors import InputError, NotEnoughMemoryError, OutputError, one_line
from medfuse._shared.files import write_atomically
from medfuse.fusion.memory import check_decoding

DECODING_BYTES = 4
"""Bytes per stored byte a reader may hold while decoding (the decoded array, a converted copy,
the normalised result): what the memory check before decoding plans for."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")


class ImageFileError(InputError):
    """A file that cannot be read or written as an image; the message names it."""


def _normalise(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # drop alpha
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ImageFileError(f"{path}: expected a 2-D grey or RGB image, got shape {array.shape}")
    if array.size == 0:  # a damaged TIFF can decode to 0 rows
        raise ImageFileError(f"{path}: holds no pixels ({'x'.join(map(str, array.shape))}); the file may be damaged")
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
    if path.is_dir():
        raise ImageFileError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages[0]
                images = sum(1 for each in tiff.pages if not getattr(each, "subfiletype", 0) & 1)  # thumbnails aside
                if images > 1 or len(tiff.series[0].shape) > len(page.shape):  # a stack, not one image
                    raise ImageFileError(
                        f"{path}: a stack of TIFF images ({'x'.join(map(str, tiff.series[0].shape))}"
                        "); medfuse reads one 2-D image per file (give a volume as NIfTI or DICOM)"
                    )
                if page.dtype is None:  # tifffile's for a sample format numpy has no type for
                    raise ValueError("its pixel type has no numpy equivalent")
                check_decoding(str(path), page.shape, DECODING_BYTES * page.dtype.itemsize)
                array = tiff.asarray()
            if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
                array = np.moveaxis(array, 0, -1)
        elif _is_sixteen_bit_colour_png(path):
            array = _read_png(path)
        else:
            with Image.open(path) as image:
                check_decoding(str(path), (*image.size, len(image.getbands())), DECODING_BYTES)
                image.load()
                array = _pil_to_array(image)
    except ImageFileError:
        raise
    except NotEnoughMemoryError as error:  # a declared size beyond the free memory: an unusable file
        raise ImageFileError(str(error)) from None
    except Exception as error:  # damaged bytes can make Pillow, tifffile or pypng raise anything
        raise ImageFileError(f"{path}: not a readable image ({one_line(error)})") from None
    return _normalise(array, path)


def _is_sixteen_bit_colour_png(path: Path) -> bool:
    """True for a PNG whose header (IHDR, PNG spec 11.2.2) says bit depth 16 and colour type
    2 (RGB) or 6 (RGB + alpha): the kind Pillow would reduce to 8 bits."""
    with open(path, "rb") as file:
        head = file.read(26)
    return head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6)


def _read_png(path: Path) -> np.ndarray:
    """A PNG read with pypng at its stored bit depth: (H, W, planes) uint16."""
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    check_decoding(str(path), (height, width, info["planes"]), DECODING_BYTES * 2)
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


def save_image(path: str | os.PathLike, image: np.ndarray, provenance: Mapping[str, str] | None = None) -> Path:
    """Write a grey or RGB uint8/uint16 array; the file appears only when complete.

    The format follows the suffix. 16-bit data needs PNG or TIFF (RGB 16-bit: TIFF).
    ``provenance`` (how the image was made: key -> text) goes into PNG text chunks (``tEXt``,
    one per key, as ``PIL.Image.open(path).text`` reads them) and into a TIFF's
    ImageDescription tag as JSON; JPEG and BMP carry none.
    """
    path = Path(path)
    image = np.asarray(image)
    check_writable(path, image)
    suffix = path.suffix.lower()
    if not path.parent.is_dir():
        raise ImageFileError(f"{path}: folder {path.parent} does not exist")
    provenance = dict(provenance or {})
    if suffix in TIFF_SUFFIXES:
        photometric = "rgb" if image.ndim == 3 else "minisblack"
        description = json.dumps(provenance) if provenance else None
        write_atomically(
            path,
            lambda temporary: tifffile.imwrite(
                temporary, image, photometric=photometric, description=description, metadata=None
            ),
        )
    else:
        pil_format = Image.registered_extensions()[suffix]
        options = {}
        if pil_format == "PNG" and provenance:
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            for key, value in provenance.items():
                info.add_text(key, value)
            options["pnginfo"] = info
        write_atomically(path, lambda temporary: Image.fromarray(image).save(temporary, format=pil_format, **options))
    return path


def check_image_target(out: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``out`` as a Path if it can take a 2-D image: not one of ``inputs``, not a folder, a known
    format, in a folder that exists and takes files; else :class:`OutputError` or
    :class:`ImageFileError`, before any work."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"output {out} is a folder; give a file name (folders are for folder mode)")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageFileError(f"{out}: unknown output format; use one of {', '.join(IMAGE_SUFFIXES)}")
    return check_new_output(out, inputs)
