"""Volume files in and out: NIfTI (nibabel) and DICOM files and series (pydicom).

Every reader returns a :class:`VolumeFile`: a :class:`medfuse.image.grid.Volume` (float32
data indexed ``(i, j, k)`` and a RAS+ affine in mm) plus what a writer needs to give an
output the same geometry (the NIfTI header or the DICOM datasets of the slices).

DICOM conventions (PS3.3 C.7.6.2, Image Plane module): pixel ``(row r, column c)`` of a
slice lies at ``IPP + c * PixelSpacing[1] * X + r * PixelSpacing[0] * Y`` in LPS mm, with
``X, Y`` the two halves of ImageOrientationPatient. So ``i`` is the column, ``j`` the row,
and the slices of a series are ordered by ``IPP . (X x Y)`` (their position along the
slice normal). Stored values become ``stored * RescaleSlope + RescaleIntercept`` (HU for
CT). LPS is turned into RAS+ by negating x and y.

Written DICOM holds the fused intensities in [0, 1] as 16-bit unsigned stored values
``round(fused * 50000)`` with RescaleSlope 0.00002 and RescaleIntercept 0, so a reader that
applies the rescale gets back the fused value (to 1e-5); they are not Hounsfield units.
"""

from __future__ import annotations

import copy
import gzip
import os
import shutil
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from medfuse._shared.checks import check_new_output, same_path
from medfuse._shared.errors import InputError, NotEnoughMemoryError, OutputError, one_line
from medfuse._shared.files import finish_atomically, new_temporary_beside, write_atomically, write_error
from medfuse.fusion.memory import check_decoding
from medfuse.image.grid import LPS_TO_RAS, Geometry, Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIX = ".dcm"
DICOM_SCALE = 50000
"""Written DICOM stores ``round(fused * DICOM_SCALE)``; RescaleSlope is ``1 / DICOM_SCALE``."""
SLICE_GAP_TOLERANCE = 0.01
"""Slices of a series are evenly spaced if every gap is within 1 % of the median gap."""


class VolumeFileError(InputError):
    """A file or folder that cannot be read or written as a volume; the message names it."""


@dataclass(frozen=True)
class VolumeFile:
    """A volume read from ``path``: ``kind`` "nifti" or "dicom"; ``header`` the NIfTI header,
    or the DICOM datasets of the slices in ``k`` order (pixel data dropped); ``modality``
    the DICOM Modality (e.g. "CT", "MR") if known."""

    path: Path
    kind: str
    volume: Volume
    header: object
    modality: str | None = None


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True for a name ending in .nii or .nii.gz."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a file named ``*.dcm`` or starting with the DICOM preamble and ``DICM``."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == DICOM_SUFFIX:
        return True
    with open(path, "rb") as file:
        return file.read(132)[128:] == b"DICM"


def dicom_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files of a folder (see :func:`is_dicom_file`), sorted by name."""
    return [p for p in sorted(Path(folder).iterdir()) if is_dicom_file(p)]


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
        except VolumeFileError:
            raise
        except NotEnoughMemoryError as error:  # a declared size beyond the free memory: an unusable file
            raise VolumeFileError(str(error)) from None
        except Exception as error:  # damaged bytes can make nibabel or pydicom raise anything
            kind = "NIfTI volume" if nifti else "DICOM file or series"
            raise VolumeFileError(f"{path}: not a readable {kind} ({type(error).__name__}: "
                                  f"{one_line(error)})") from None
    for message in dict.fromkeys(f"{path}: {one_line(warning.message)}" for warning in caught):
        warnings.warn(message, UserWarning, stacklevel=2)
    return volume_file


def read_nifti(path: str | os.PathLike) -> VolumeFile:
    """A 3-D NIfTI-1 or -2 volume with ``image.affine`` (sform, else qform) as geometry.

    A 2-D image is one slice; trailing axes of length 1 are dropped; a 4-D volume (several
    time points or components) is refused. Scaling (scl_slope, scl_inter) is applied.
    """
    path = Path(path)
    try:
        image = nib.load(path)
        if image.get_data_dtype().names:  # RGB24 (or RGBA32): as medfuse fuse --colour-map writes
            raise VolumeFileError(f"{path}: an RGB colour volume; medfuse reads grey volumes (for a colour overlay "
                                  "it wrote, give the grey fusion instead)")
        shape = tuple(image.shape)
        check_decoding(str(path), shape, 12)  # float64 scaling, then the float32 volume
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) > 3:
            raise VolumeFileError(f"{path}: a {len(shape)}-D NIfTI ({'x'.join(map(str, shape))}); medfuse fuses "
                                  "3-D volumes only, so extract one volume (e.g. one time point) first")
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


def _floats(dataset: pydicom.Dataset, keyword: str, count: int, path: Path) -> np.ndarray:
    value = dataset.get(keyword)
    try:
        values = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([])
    if values.size != count or not np.all(np.isfinite(values)):
        raise VolumeFileError(f"{path}: {keyword} missing or invalid, so the slice's geometry is unknown")
    return values


def _read_slice(path: Path, slices: int = 1) -> tuple[pydicom.Dataset, np.ndarray] | None:
    """One DICOM file (pixel data dropped) and its rescaled (rows, columns) pixels as float32;
    None if it has no image. Its declared size, times the ``slices`` of its series, is checked
    against the free memory before its pixels are decoded."""
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, AttributeError, KeyError) as error:
        raise VolumeFileError(f"{path}: not a readable DICOM file ({one_line(error)})") from None
    if "PixelData" not in dataset:
        return None
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise VolumeFileError(f"{path}: a colour DICOM image; medfuse reads grey volumes only")
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        raise VolumeFileError(f"{path}: a multi-frame DICOM image; medfuse reads one slice per file")
    check_decoding(str(path), (int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0)), slices), 12)
    try:
        stored = dataset.pixel_array
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        raise VolumeFileError(f"{path}: cannot decode its pixel data ({one_line(error)})") from None
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    pixels = (stored.astype(np.float64) * slope + intercept).astype(np.float32)
    del dataset.PixelData
    return dataset, pixels


def read_dicom(path: str | os.PathLike) -> VolumeFile:
    """A DICOM file (one slice) or a folder holding one series, as a volume.

    Slices are sorted by their position along the slice normal; they must share size,
    pixel spacing and orientation and be evenly spaced (a gap that is not the common
    spacing means a missing slice: refused). RescaleSlope and RescaleIntercept are applied.
    """
    path = Path(path)
    files = dicom_files(path) if path.is_dir() else [path]
    if not files:
        raise VolumeFileError(f"{path}: no DICOM files in this folder")
    images = [image for image in (_read_slice(f, len(files)) for f in files) if image is not None]
    if not images:
        raise VolumeFileError(f"{path}: no DICOM images (files without pixel data only)")
    slices = [dataset for dataset, _ in images]
    series = {str(s.get("SeriesInstanceUID", "")) for s in slices}
    if len(series) > 1:
        raise VolumeFileError(f"{path}: holds {len(series)} DICOM series; put each series in its own folder")
    first = slices[0]
    orientation = _floats(first, "ImageOrientationPatient", 6, path)
    pixel_spacing = _floats(first, "PixelSpacing", 2, path)
    shape = (int(first.Rows), int(first.Columns))
    for dataset in slices[1:]:
        if (int(dataset.Rows), int(dataset.Columns)) != shape:
            raise VolumeFileError(f"{path}: slices of different sizes ({shape[1]}x{shape[0]} and "
                                  f"{dataset.Columns}x{dataset.Rows})")
        if np.abs(_floats(dataset, "ImageOrientationPatient", 6, path) - orientation).max() > 1e-4:
            raise VolumeFileError(f"{path}: slices with different orientations")
        if np.abs(_floats(dataset, "PixelSpacing", 2, path) - pixel_spacing).max() > 1e-4:
            raise VolumeFileError(f"{path}: slices with different pixel spacings")
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    positions = np.array([_floats(s, "ImagePositionPatient", 3, path) for s in slices])
    order = np.argsort(positions @ normal, kind="stable")
    slices, positions = [slices[n] for n in order], positions[order]
    data = np.stack([images[n][1].T for n in order], axis=-1)
    slice_step = _slice_step(path, positions, normal, first)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_direction * pixel_spacing[1]
    affine_lps[:3, 1] = column_direction * pixel_spacing[0]
    affine_lps[:3, 2] = slice_step
    affine_lps[:3, 3] = positions[0]
    try:
        geometry = Geometry(LPS_TO_RAS @ affine_lps)
    except ValueError as error:
        raise VolumeFileError(f"{path}: {one_line(error)}") from None
    modality = str(first.get("Modality", "")) or None
    return VolumeFile(path, "dicom", Volume(data, geometry), slices, modality)


def _slice_step(path: Path, positions: np.ndarray, normal: np.ndarray, first: pydicom.Dataset) -> np.ndarray:
    """The LPS vector from one slice to the next; refuses duplicate or missing slices."""
    if len(positions) == 1:
        thickness = float(first.get("SpacingBetweenSlices", 0) or first.get("SliceThickness", 0) or 1.0)
        return normal * abs(thickness)
    distances = positions @ normal
    gaps = np.diff(distances)
    if gaps.min() < 1e-4:
        at = distances[int(np.argmin(gaps))]
        raise VolumeFileError(f"{path}: two slices at one position ({at:.4g} mm along the slice normal)")
    typical = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - typical)))
    if abs(gaps[worst] - typical) > SLICE_GAP_TOLERANCE * typical:
        raise VolumeFileError(
            f"{path}: slices are not evenly spaced: a gap of {gaps[worst]:.4g} mm after the slice at "
            f"{distances[worst]:.4g} mm where the others are {typical:.4g} mm apart (a missing slice?)")
    return (positions[-1] - positions[0]) / (len(positions) - 1)


def nifti_header_text(description: str) -> bytes:
    """``description`` as ASCII cut to the 80 bytes of the NIfTI ``descrip`` field."""
    return description.encode("ascii", "replace")[:80]


def write_nifti(path: str | os.PathLike, data: np.ndarray, geometry: Geometry,
                reference: VolumeFile | None = None, summary: str = "", description: str = "") -> Path:
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
        header = nib.Nifti1Header.from_header(reference.header)
        _, qform_code = reference.header.get_qform(coded=True)
        _, sform_code = reference.header.get_sform(coded=True)
        if np.allclose(geometry.affine, reference.volume.geometry.affine):  # its grid: both forms as they came
            qform, sform = reference.header.get_qform(), reference.header.get_sform()
    else:
        header, qform_code, sform_code = nib.Nifti1Header(), 1, 1
        header.set_xyzt_units("mm", "sec")
    header.extensions.clear()
    data = np.asarray(data)
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
        image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", description.encode("utf-8")))
    content = image.to_bytes()
    if path.name.lower().endswith(".gz"):
        content = gzip.compress(content, mtime=0)
    write_atomically(path, lambda temporary: temporary.write_bytes(content))
    return path


_DROPPED_TAGS = (
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "VOILUTSequence", "ModalityLUTSequence", "WindowCenterWidthExplanation", "FloatPixelData",
    "DoubleFloatPixelData", "RescaleType", "NumberOfFrames",
)


def _fused_slice(reference: pydicom.Dataset, pixels: np.ndarray, series_uid: str, number: int,
                 summary: str, description: str, value_range: tuple[float, float]) -> pydicom.Dataset:
    """A copy of one reference slice with new pixels (values in ``value_range``) and new identifiers."""
    dataset = copy.deepcopy(reference)
    for keyword in _DROPPED_TAGS:
        if keyword in dataset:
            delattr(dataset, keyword)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    low, high = value_range
    unit = (np.clip(pixels, low, high) - low) / (high - low)
    stored = np.round(unit * DICOM_SCALE).astype(np.uint16)
    dataset.set_pixel_data(stored, "MONOCHROME2", 16, generate_instance_uid=False)
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.SeriesInstanceUID = series_uid
    dataset.InstanceNumber = number
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.SeriesDescription = summary[:64]
    dataset.ImageComments = description[:10240]
    dataset.DerivationDescription = description[:1024]
    dataset.RescaleSlope, dataset.RescaleIntercept = f"{(high - low) / DICOM_SCALE:.10g}", f"{low:.10g}"
    dataset.WindowCenter, dataset.WindowWidth = f"{(low + high) / 2:.10g}", f"{high - low:.10g}"
    return dataset


def write_dicom_series(folder: str | os.PathLike, data: np.ndarray, reference: VolumeFile,
                       summary: str = "", description: str = "",
                       value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Write (I, J, K) ``data`` in ``value_range`` (default [0, 1], a fusion) as a DICOM series
    on the grid of a DICOM ``reference``. Another range (a registered CT in HU, say) is stored
    as ``round((value - low) / (high - low) * DICOM_SCALE)`` with RescaleSlope and
    RescaleIntercept that give the values back (to ``(high - low) / DICOM_SCALE``).

    Slice k copies reference slice k (patient, study, ImagePositionPatient,
    ImageOrientationPatient, PixelSpacing, SliceThickness, SpacingBetweenSlices...) with a
    new SeriesInstanceUID and SOPInstanceUIDs, the fused pixels (module docstring for the
    scale), ``summary`` as SeriesDescription and ``description`` as ImageComments. Files go
    into a temporary folder beside ``folder`` that is renamed to ``folder`` at the end, so
    the series appears complete or not at all; ``folder`` must not exist.
    """
    folder = Path(folder)
    if not value_range[1] > value_range[0]:
        raise ValueError(f"value_range must rise, got {value_range}")
    if reference.kind != "dicom":
        raise VolumeFileError(f"{folder}: a DICOM series output needs a DICOM reference input")
    slices = reference.header
    if data.shape != reference.volume.shape:
        raise VolumeFileError(f"{folder}: data of shape {data.shape} is not on the reference grid "
                              f"{reference.volume.shape}")
    if folder.exists():
        raise VolumeFileError(f"{folder}: already exists; medfuse writes a DICOM series into a new folder")
    temporary = new_temporary_beside(folder, folder=True)
    try:
        series_uid = generate_uid()
        for k, reference_slice in enumerate(slices):
            dataset = _fused_slice(reference_slice, data[:, :, k].T, series_uid, k + 1, summary, description,
                                   value_range)
            pydicom.dcmwrite(temporary / f"slice_{k + 1:04d}.dcm", dataset, enforce_file_format=True)
        finish_atomically(temporary, folder, 0o777)
    except Exception as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise write_error(folder, error) from error
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return folder


def write_volume(path: str | os.PathLike, data: np.ndarray, reference: VolumeFile,
                 summary: str = "", description: str = "", value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Write ``data`` on ``reference``'s grid: NIfTI for a .nii/.nii.gz path (float32, any
    values), else a DICOM series folder (which needs a DICOM reference; values in
    ``value_range``, see :func:`write_dicom_series`)."""
    check_volume_format(path, reference)
    if is_nifti_path(path):
        return write_nifti(path, data, reference.volume.geometry, reference, summary, description)
    return write_dicom_series(path, data, reference, summary, description, value_range)



def check_volume_format(out: str | os.PathLike, reference: VolumeFile) -> None:
    """:class:`VolumeFileError` unless ``out`` is a NIfTI name, or ``reference`` is DICOM (whose
    header a DICOM series output copies)."""
    if not is_nifti_path(out) and reference.kind != "dicom":
        raise VolumeFileError(f"{out}: the output must end in .nii or .nii.gz (a DICOM series is written only "
                              "when the reference input is DICOM)")


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
