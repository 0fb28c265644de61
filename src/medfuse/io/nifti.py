"""NIfTI-1 and -2 volumes in and out (nibabel): the affine as geometry, the header kept for
outputs on the same grid."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage

from medfuse._shared.checks import check_result
from medfuse._shared.errors import one_line
from medfuse._shared.files import write_atomically
from medfuse.fusion.memory import check_decoding
from medfuse.image.grid import Geometry, Volume
from medfuse.io.volume_file import VolumeFile, VolumeFileError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True for a name ending in .nii or .nii.gz."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: str | os.PathLike) -> VolumeFile:
    """A 3-D NIfTI-1 or -2 volume with ``image.affine`` (sform, else qform) as geometry.

    A 2-D image is one slice; trailing axes of length 1 are dropped; a 4-D volume (several
    time points or components) is refused. Scaling (scl_slope, scl_inter) is applied.
    """
    path = Path(path)
    try:
        # nib.load's type is the base of every format; a NIfTI file gives a spatial image (Nifti1Image, Nifti2Image)
        image = cast(SpatialImage, nib.load(path))
        if image.get_data_dtype().names:  # RGB24 (or RGBA32): as medfuse fuse --colour-map writes
            raise VolumeFileError(
                f"{path}: an RGB colour volume; medfuse reads grey volumes (for a colour overlay "
                "it wrote, give the grey fusion instead)"
            )
        shape = tuple(image.shape)
        check_decoding(str(path), shape, 12)  # float64 scaling, then the float32 volume
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) > 3:
            raise VolumeFileError(
                f"{path}: a {len(shape)}-D NIfTI ({'x'.join(map(str, shape))}); medfuse fuses "
                "3-D volumes only, so extract one volume (e.g. one time point) first"
            )
        if len(shape) < 2:
            raise VolumeFileError(f"{path}: a {len(shape)}-D NIfTI; expected a 3-D volume")
        data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape + (1,) * (3 - len(shape)))
        geometry = Geometry(image.affine)
    except VolumeFileError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as error:
        raise VolumeFileError(f"{path}: not a readable NIfTI volume ({one_line(error)})") from None
    if not np.all(np.isfinite(data)):
        raise VolumeFileError(f"{path}: the volume has NaN or infinite values")
    return VolumeFile(path, "nifti", Volume(data, geometry), image.header)


def nifti_header_text(description: str) -> bytes:
    """``description`` as ASCII cut to the 80 bytes of the NIfTI ``descrip`` field."""
    return description.encode("ascii", "replace")[:80]


def write_nifti(
    path: str | os.PathLike,
    data: np.ndarray,
    geometry: Geometry,
    reference: VolumeFile | None = None,
    summary: str = "",
    description: str = "",
) -> Path:
    """Write float32 ``data`` (I, J, K), or an RGB volume (I, J, K, 3) of uint8 as NIfTI's
    RGB24, as NIfTI-1 (``.nii`` or ``.nii.gz``), atomically.

    The affine is ``geometry.affine``, stored as both sform and qform with code 1 (scanner);
    with a NIfTI ``reference`` its codes and other header fields (e.g. units) are copied, and
    on the reference's own grid its qform and sform are kept as they came, even where they
    differ (readers that prefer the qform, as ITK may, then see what they saw in the input).
    ``summary`` goes into ``descrip`` (80 bytes), ``description`` into a comment extension
    (code 6); cal_min/cal_max are 0 and 1 (0 and 255 for RGB).
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise VolumeFileError(f"{path}: a NIfTI output needs the suffix .nii or .nii.gz")
    qform = sform = geometry.affine
    if reference is not None and reference.kind == "nifti":
        reference_header = cast(nib.Nifti1Header, reference.header)  # a NIfTI file's (NIfTI-2's is a subclass)
        header = nib.Nifti1Header.from_header(reference_header)
        _, qform_code = reference_header.get_qform(coded=True)
        _, sform_code = reference_header.get_sform(coded=True)
        if np.allclose(geometry.affine, reference.volume.geometry.affine):  # its grid: both forms as they came
            qform, sform = reference_header.get_qform(), reference_header.get_sform()
    else:
        header, qform_code, sform_code = nib.Nifti1Header(), 1, 1
        header.set_xyzt_units("mm", "sec")
    header.extensions.clear()
    data = np.asarray(data)
    check_result(data, str(path))
    rgb = data.ndim == 4
    if rgb:
        if data.shape[-1] != 3 or data.dtype != np.uint8:
            raise VolumeFileError(f"{path}: an RGB volume is (I, J, K, 3) uint8, got {data.shape} {data.dtype}")
        rgb24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
        data = np.ascontiguousarray(data).view(rgb24)[..., 0]
    else:
        data = data.astype(np.float32)
    image = nib.Nifti1Image(data, geometry.affine, header)
    image.header.set_data_dtype(data.dtype)
    if not rgb:
        image.header.set_slope_inter(1.0, 0.0)
    image.set_qform(qform, int(qform_code))
    image.set_sform(sform, int(sform_code))
    image.header["descrip"] = nifti_header_text(summary)
    image.header["cal_min"], image.header["cal_max"] = (0.0, 255.0) if rgb else (0.0, 1.0)
    if description:
        comment = description.encode("utf-8", "backslashreplace")  # a file name's undecodable bytes as \\xNN
        image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", comment))
    content = image.to_bytes()
    if path.name.lower().endswith(".gz"):
        content = gzip.compress(content, mtime=0)
    write_atomically(path, lambda temporary: temporary.write_bytes(content))
    return path
