"""Volume files in and out, whatever the format: NIfTI (:mod:`medfuse.io.nifti`) and DICOM files
and series (:mod:`medfuse.io.dicom`).

Every reader returns a :class:`VolumeFile`: a :class:`medfuse.image.grid.Volume` (float32
data indexed ``(i, j, k)`` and a RAS+ affine in mm) plus what a writer needs to give an
output the same geometry (the NIfTI header or the DICOM datasets of the slices).
:func:`read_volume` and :func:`write_volume` choose the format by the path (and, for an
output, the reference); the format modules' public names are also importable from here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from medfuse._shared.checks import check_new_output, same_path
from medfuse._shared.errors import MissingDependencyError, NotEnoughMemoryError, OutputError, one_line
from medfuse.io.dicom import (
    DICOM_SCALE,
    SERIES_NUMBER_OFFSET,
    check_dicom_reference,
    dicom_files,
    is_dicom_file,
    read_dicom,
    write_dicom_series,
)
from medfuse.io.nifti import NIFTI_SUFFIXES, is_nifti_path, read_nifti, write_nifti
from medfuse.io.volume_file import VolumeFile, VolumeFileError

__all__ = [
    "DICOM_SCALE",
    "NIFTI_SUFFIXES",
    "SERIES_NUMBER_OFFSET",
    "VolumeFile",
    "VolumeFileError",
    "check_dicom_reference",
    "check_volume_format",
    "check_volume_target",
    "dicom_files",
    "is_dicom_file",
    "is_nifti_path",
    "is_volume_path",
    "read_dicom",
    "read_nifti",
    "read_volume",
    "write_dicom_series",
    "write_nifti",
    "write_volume",
]


def is_volume_path(path: str | os.PathLike) -> bool:
    """True for a NIfTI file name, a DICOM file, or a folder holding DICOM files."""
    path = Path(path)
    if is_nifti_path(path):
        return True
    if path.is_dir():
        return bool(dicom_files(path))
    return is_dicom_file(path)


def read_volume(path: str | os.PathLike) -> VolumeFile:
    """Read a NIfTI file, a DICOM file or a DICOM series folder; VolumeFileError if it can't.

    Warnings of the readers (pydicom warns of values that break the standard, often over
    several lines) are held back: dropped if the file can't be read (the error says why),
    else passed on once each, as one line naming ``path``."""
    path = Path(path)
    if not path.exists():
        raise VolumeFileError(f"{path}: no such file or folder")
    nifti = is_nifti_path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            volume_file = read_nifti(path) if nifti else read_dicom(path)
        except (VolumeFileError, MissingDependencyError):
            raise
        except NotEnoughMemoryError as error:  # a declared size beyond the free memory: an unusable file
            raise VolumeFileError(str(error)) from None
        except Exception as error:  # damaged bytes can make nibabel or pydicom raise anything
            kind = "NIfTI volume" if nifti else "DICOM file or series"
            raise VolumeFileError(
                f"{path}: not a readable {kind} ({type(error).__name__}: {one_line(error)})"
            ) from None
    for message in dict.fromkeys(f"{path}: {one_line(warning.message)}" for warning in caught):
        warnings.warn(message, UserWarning, stacklevel=2)
    return volume_file


def write_volume(
    path: str | os.PathLike,
    data: np.ndarray,
    reference: VolumeFile,
    summary: str = "",
    description: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
    sources: tuple[VolumeFile, ...] = (),
    hounsfield: bool = False,
) -> Path:
    """Write ``data`` on ``reference``'s grid: NIfTI for a .nii/.nii.gz path (float32, any
    values), else a DICOM series folder (which needs a classic CT or MR DICOM reference; values
    in ``value_range``, made from ``sources``, in HU if ``hounsfield``: see
    :func:`write_dicom_series`)."""
    check_volume_format(path, reference)
    if is_nifti_path(path):
        return write_nifti(path, data, reference.volume.geometry, reference, summary, description)
    return write_dicom_series(path, data, reference, summary, description, value_range, sources, hounsfield)


def check_volume_format(out: str | os.PathLike, reference: VolumeFile) -> None:
    """:class:`VolumeFileError` unless ``out`` is a NIfTI name, or ``reference`` can carry a DICOM
    series output (:func:`check_dicom_reference`)."""
    if not is_nifti_path(out):
        check_dicom_reference(out, reference)


def check_volume_target(out: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``out`` as a Path if it can take a volume: not one of ``inputs``, in a folder that exists
    and takes files; a NIfTI name that is not a folder, or a DICOM series folder that does not
    exist yet. Else :class:`~medfuse._shared.errors.OutputError`, before any work."""
    out = Path(out)
    if is_nifti_path(out):
        if out.is_dir():
            raise OutputError(f"output {out} is a folder; give a .nii or .nii.gz file name")
    elif out.exists() and not any(same_path(out, path) for path in inputs):
        raise OutputError(f"output {out} already exists; a DICOM series is written into a new folder")
    return check_new_output(out, inputs)
