"""Volume files in and out: NIfTI (nibabel) and DICOM files and series (pydicom).

Every reader returns a :class:`VolumeFile`: a :class:`medfuse.image.grid.Volume` (float32
data indexed ``(i, j, k)`` and a RAS+ affine in mm) plus what a writer needs to give an
output the same geometry (the NIfTI header or the DICOM datasets of the slices).

DICOM conventions (PS3.3 C.7.6.2, Image Plane module): pixel ``(row r, column c)`` of a
slice lies at ``IPP + c * PixelSpacing[1] * X + r * PixelSpacing[0] * Y`` in LPS mm, with
``X, Y`` the two halves of ImageOrientationPatient. So ``i`` is the column, ``j`` the row,
and the slices of a series are ordered by ``IPP . (X x Y)`` (their position along the
slice normal). Stored values become ``stored * RescaleSlope + RescaleIntercept`` (HU for
CT), or the Real World Value Mapping's values where the rescale is an identity of unspecified
units (see :func:`_rescaled`). LPS is turned into RAS+ by negating x and y.

Compressed series (JPEG lossless and baseline, JPEG-LS, JPEG 2000, RLE) are decoded by
pydicom's plug-ins (pylibjpeg-libjpeg, pylibjpeg-openjpeg, pyjpegls, pinned); an enhanced
multi-frame image (one file, PS3.3 C.7.6.16 functional groups) is read frame by frame with
each frame's plane position, orientation, pixel measures and rescale.

Written DICOM is a derived series of classic single-frame images of the reference's SOP
class (CT or MR Image Storage), not a Parametric Map or an enhanced multi-frame object:
SimpleITK's ImageSeriesReader and common viewers read a classic series as a volume with its
geometry, and each slice keeps the reference slice's geometry, patient, study and
acquisition attributes. Values in a range ``[low, high]`` (a fusion's [0, 1]) are stored as
16-bit integers 0 .. 65535 that span the range, with a Real World Value Mapping back to the
values (PS3.3 C.7.6.16.2.11, built by highdicom); the Modality LUT is that map only for HU
in a CT image, and otherwise the identity with RescaleType "US", since an MR image has no
Modality LUT and viewers may ignore a rescale there (or round a small slope to 0): every
viewer then shows the stored 0 .. 65535 under one window. See :func:`write_dicom_series`.
"""

from __future__ import annotations

import copy
import gzip
import os
import warnings
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from medfuse._shared.checks import check_new_output, same_path
from medfuse._shared.errors import InputError, NotEnoughMemoryError, OutputError, one_line
from medfuse._shared.files import write_atomically, write_folder_atomically
from medfuse.fusion.memory import check_decoding
from medfuse.image.grid import LPS_TO_RAS, Geometry, Volume

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIX = ".dcm"
DICOM_SCALE = 65535
"""Written DICOM stores a value range as the 16-bit integers 0 .. DICOM_SCALE."""
VALUE_MAPPING_LABEL = "medfuse"
"""The LUTLabel of the Real World Value Mapping that medfuse writes (and applies when it reads)."""
SLICE_GAP_TOLERANCE = 0.01
"""Slices of a series are evenly spaced if every gap is within 1 % of the median gap."""


class VolumeFileError(InputError):
    """A file or folder that cannot be read or written as a volume; the message names it."""


@dataclass(frozen=True)
class VolumeFile:
    """A volume read from ``path``: ``kind`` "nifti" or "dicom"; ``header`` the NIfTI header,
    or the DICOM datasets of the slices in ``k`` order (pixel data dropped; for a multi-frame
    file, one small dataset per frame: see :func:`_frames`); ``modality`` the DICOM Modality
    (e.g. "CT", "MR") if known; ``frames`` the frame number (from 1) of each slice ``k`` of a
    multi-frame DICOM file, empty otherwise."""

    path: Path
    kind: str
    volume: Volume
    header: object
    modality: str | None = None
    frames: tuple[int, ...] = ()


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


def _floats(dataset: Dataset, keyword: str, count: int, path: Path) -> np.ndarray:
    value = dataset.get(keyword)
    try:
        values = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([])
    if values.size != count or not np.all(np.isfinite(values)):
        raise VolumeFileError(f"{path}: {keyword} missing or invalid, so the slice's geometry is unknown")
    return values


def _decoded(dataset: Dataset, path: Path) -> np.ndarray:
    """The stored pixels of ``dataset``, decoded by pydicom's plug-ins (JPEG lossless and baseline by
    pylibjpeg-libjpeg, JPEG 2000 by pylibjpeg-openjpeg, JPEG-LS by pyjpegls, RLE natively); an
    undecodable one is one line naming the transfer syntax and what pydicom says is missing."""
    try:
        return dataset.pixel_array
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        syntax = dataset.file_meta.get("TransferSyntaxUID")
        name = getattr(syntax, "name", "") or "no transfer syntax"
        raise VolumeFileError(f"{path}: cannot decode its pixel data ({name}: {one_line(error)})") from None


def _rescaled(stored: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The values of ``stored`` pixels as float32: ``stored * RescaleSlope + RescaleIntercept``
    of ``dataset`` (1 and 0 if absent), or, in a derived image medfuse wrote (the rescale the
    identity of unspecified units, RescaleType "US", and one linear Real World Value Mapping,
    PS3.3 C.7.6.16.2.11, labelled ``VALUE_MAPPING_LABEL`` over all of 0 .. DICOM_SCALE), that
    mapping's values: medfuse's output reads back as the values it was given (see
    :func:`_value_mapping`), and every slice of such a series is read alike. Other producers'
    mappings are left alone: their meaning is not medfuse's to assume."""
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    mappings = dataset.get("RealWorldValueMappingSequence") or []
    if (str(dataset.get("RescaleType", "")).upper() == "US" and (slope, intercept) == (1.0, 0.0)
            and len(mappings) == 1 and "RealWorldValueSlope" in mappings[0]
            and mappings[0].get("LUTLabel") == VALUE_MAPPING_LABEL
            and (mappings[0].get("RealWorldValueFirstValueMapped"),
                 mappings[0].get("RealWorldValueLastValueMapped")) == (0, DICOM_SCALE)):
        slope = float(mappings[0].RealWorldValueSlope)
        intercept = float(mappings[0].get("RealWorldValueIntercept", 0.0) or 0.0)
    return (stored.astype(np.float64) * slope + intercept).astype(np.float32)


def _read_file(path: Path, files: int = 1) -> list[tuple[Dataset, np.ndarray, int]]:
    """The images of one DICOM file as ``(dataset, rescaled (rows, columns) float32 pixels, frame)``:
    none for a file without pixel data, one (frame 0) for a single-frame image, one per frame
    (numbered from 1) for a multi-frame image (see :func:`_frames`). The dataset of a
    single-frame image is the file's, pixel data dropped. The declared size, times the
    ``files`` of its series, is checked against the free memory before pixels are decoded."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, AttributeError, KeyError) as error:
        raise VolumeFileError(f"{path}: not a readable DICOM file ({one_line(error)})") from None
    if "PixelData" not in dataset:
        return []
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise VolumeFileError(f"{path}: a colour DICOM image; medfuse reads grey volumes only")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    check_decoding(str(path), (int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0)), frames * files), 12)
    if frames > 1 or "PerFrameFunctionalGroupsSequence" in dataset:
        return _frames(dataset, path)
    pixels = _rescaled(_decoded(dataset, path), dataset)
    del dataset.PixelData
    return [(dataset, pixels, 0)]


_FRAME_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "Rows",
                   "Columns")
"""What each frame's dataset copies from a multi-frame file (beside its functional groups)."""


def _frame_item(dataset: Dataset, frame: Dataset, sequence: str, path: Path, number: int,
                required: bool = True) -> Dataset | None:
    """The first item of functional group ``sequence`` for one frame: from the frame's own
    PerFrameFunctionalGroupsSequence item, else from SharedFunctionalGroupsSequence (PS3.3
    C.7.6.16); a missing ``required`` group is refused."""
    shared = dataset.get("SharedFunctionalGroupsSequence") or []
    for group in (frame, *shared[:1]):
        if group.get(sequence):
            return group[sequence].value[0]
    if required:
        raise VolumeFileError(f"{path}: frame {number} has no {sequence} (in its per-frame or the shared "
                              "functional groups), so its geometry is unknown")
    return None


def _frames(dataset: Dataset, path: Path) -> list[tuple[Dataset, np.ndarray, int]]:
    """The frames of an enhanced multi-frame image (Enhanced MR/CT, legacy converted, ...), each
    with a small dataset holding the file's identifiers and, from the frame's functional groups
    (PS3.3 C.7.6.16.2): ImagePositionPatient (PlanePositionSequence), ImageOrientationPatient
    (PlaneOrientationSequence), PixelSpacing, SliceThickness and SpacingBetweenSlices
    (PixelMeasuresSequence), and RescaleSlope/Intercept (PixelValueTransformationSequence, else
    the file's). A multi-frame image without per-frame functional groups is refused."""
    from pydicom.dataset import Dataset

    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    if not per_frame or len(per_frame) != count:
        raise VolumeFileError(f"{path}: a multi-frame DICOM image without a PerFrameFunctionalGroupsSequence item "
                              "per frame, so the positions of its slices are unknown; medfuse reads enhanced "
                              "multi-frame images and series of one slice per file")
    stored = _decoded(dataset, path).reshape(count, int(dataset.Rows), int(dataset.Columns))
    images = []
    for number, group in enumerate(per_frame, start=1):
        frame = Dataset()
        for keyword in _FRAME_KEYWORDS:
            if keyword in dataset:
                setattr(frame, keyword, dataset[keyword].value)
        frame.ImagePositionPatient = _frame_item(dataset, group, "PlanePositionSequence", path,
                                                 number).get("ImagePositionPatient")
        frame.ImageOrientationPatient = _frame_item(dataset, group, "PlaneOrientationSequence", path,
                                                    number).get("ImageOrientationPatient")
        measures = _frame_item(dataset, group, "PixelMeasuresSequence", path, number)
        for keyword in ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"):
            if keyword in measures:
                setattr(frame, keyword, measures[keyword].value)
        scaling = _frame_item(dataset, group, "PixelValueTransformationSequence", path, number, False) or dataset
        images.append((frame, _rescaled(stored[number - 1], scaling), number))
    return images


def read_dicom(path: str | os.PathLike) -> VolumeFile:
    """A DICOM file (one slice, or an enhanced multi-frame image) or a folder holding one
    series of single-frame files, as a volume.

    Slices are sorted by their position along the slice normal; they must share size,
    pixel spacing and orientation and be evenly spaced (a gap that is not the common
    spacing means a missing slice: refused). RescaleSlope and RescaleIntercept are applied.
    Compressed pixel data (JPEG, JPEG-LS, JPEG 2000, RLE) is decoded by pydicom's plug-ins.
    """
    path = Path(path)
    files = dicom_files(path) if path.is_dir() else [path]
    if not files:
        raise VolumeFileError(f"{path}: no DICOM files in this folder")
    read = [images for images in (_read_file(f, len(files)) for f in files) if images]
    if not read:
        raise VolumeFileError(f"{path}: no DICOM images (files without pixel data only)")
    if len(read) > 1 and any(frame for images in read for _, _, frame in images):
        raise VolumeFileError(f"{path}: holds a multi-frame DICOM image and other images; give the multi-frame "
                              "file on its own")
    images = [image for file_images in read for image in file_images]
    slices = [dataset for dataset, _, _ in images]
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
    frames = tuple(images[n][2] for n in order) if images[0][2] else ()
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
    return VolumeFile(path, "dicom", Volume(data, geometry), slices, modality, frames)


def _slice_step(path: Path, positions: np.ndarray, normal: np.ndarray, first: Dataset) -> np.ndarray:
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


_CT_IMAGE, _MR_IMAGE = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
DICOM_OUTPUT_CLASSES = (_CT_IMAGE, _MR_IMAGE)
"""CT Image Storage and MR Image Storage: the SOP classes of a reference that a DICOM series output
copies (classic single-frame images with the Image Plane and Frame of Reference modules, which
viewers and SimpleITK read as volumes)."""
SERIES_NUMBER_OFFSET = 1000
"""A written series is numbered the reference's SeriesNumber plus this (1000 if it has none)."""

_DROPPED_TAGS = (
    "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries", "LargestPixelValueInSeries",
    "PixelPaddingValue", "PixelPaddingRangeLimit", "VOILUTSequence", "VOILUTFunction", "ModalityLUTSequence",
    "PresentationLUTShape", "WindowCenterWidthExplanation", "FloatPixelData", "DoubleFloatPixelData",
    "NumberOfFrames", "IconImageSequence", "SourceImageSequence", "DerivationCodeSequence",
    "ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence", "RealWorldValueMappingSequence",
)
"""What a fused slice does not copy from its reference slice: statements about the reference's
pixels, their display and their references (the fused slice writes its own)."""

_TYPE_2_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "Laterality", "PatientPosition",
    "PositionReferenceIndicator", "Manufacturer",
)
"""Type 2 (and 2C) attributes of the Patient, General Study, General Series, Frame of Reference
and General Equipment modules (PS3.3 C.7): written empty where the reference lacks them, as a
Type 2 attribute must be present but may be empty (PS3.5 7.4.3)."""


@dataclass(frozen=True)
class _DerivedSeries:
    """What every slice of a written series shares: its identifiers, texts, value mapping
    (``value_range`` onto stored 0 .. DICOM_SCALE, in Hounsfield units or none) and creation time."""

    uid: str
    number: int
    frame_of_reference: str
    title: str
    description: str
    value_range: tuple[float, float]
    hounsfield: bool
    created: tuple[str, str]


def _source_item(source: VolumeFile, k: int) -> Dataset:
    """A SourceImageSequence item (PS3.3 C.7.6.1, Image SOP Instance Reference Macro) for slice ``k``
    of ``source``, with the purpose "Source image for image processing operation" (DCM 121322)."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    slice_dataset = source.header[k]
    item = Dataset()
    item.ReferencedSOPClassUID = slice_dataset.SOPClassUID
    item.ReferencedSOPInstanceUID = slice_dataset.SOPInstanceUID
    if source.frames:
        item.ReferencedFrameNumber = source.frames[k]
    purpose = codes.DCM.SourceImageForImageProcessingOperation
    item.PurposeOfReferenceCodeSequence = [hd.sr.CodedConcept.from_code(purpose)]
    return item


def _instance_references(referenced: list[tuple[VolumeFile, list[int]]], study_uid: str) -> dict[str, list]:
    """The Common Instance Reference module (PS3.3 C.12.2) for the instances of slices ``ks`` of
    each DICOM source in ``referenced``: ReferencedSeriesSequence for series of the output's
    study ``study_uid``, StudiesContainingOtherReferencedInstancesSequence for other studies."""
    from pydicom.dataset import Dataset

    studies: dict[str, list] = {}
    for source, ks in referenced:
        series = Dataset()
        series.SeriesInstanceUID = source.header[0].SeriesInstanceUID
        series.ReferencedInstanceSequence = []
        for sop_class, sop_instance in dict.fromkeys((source.header[k].SOPClassUID, source.header[k].SOPInstanceUID)
                                                     for k in ks):
            instance = Dataset()
            instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID = sop_class, sop_instance
            series.ReferencedInstanceSequence.append(instance)
        studies.setdefault(str(source.header[0].StudyInstanceUID), []).append(series)
    references = {"ReferencedSeriesSequence": studies.pop(study_uid, [])}
    others = []
    for other_study, series_items in studies.items():
        study = Dataset()
        study.StudyInstanceUID, study.ReferencedSeriesSequence = other_study, series_items
        others.append(study)
    references["StudiesContainingOtherReferencedInstancesSequence"] = others
    return {keyword: items for keyword, items in references.items() if items}


def _value_mapping(dataset: Dataset, series: _DerivedSeries) -> None:
    """Set the modality LUT, the window and the real-world value mapping of a fused slice.

    Stored values 0 .. DICOM_SCALE stand for ``series.value_range``. The Real World Value
    Mapping (PS3.3 C.7.6.16.2.11; highdicom) says so for every IOD, in UCUM units ("1", no
    units, or "[hnsf'U]"). The Modality LUT (RescaleSlope, RescaleIntercept, RescaleType,
    PS3.3 C.11.1) is that same map, RescaleType "HU", only for Hounsfield units in a CT image;
    otherwise it is the identity with RescaleType "US" (unspecified), so that a viewer which
    ignores a rescale (an MR image has no Modality LUT) or rounds a small slope shows the same
    values as one that applies it. The window spans the whole range."""
    import highdicom as hd

    low, high = series.value_range
    step = (high - low) / DICOM_SCALE
    hounsfield = series.hounsfield and str(dataset.SOPClassUID) == _CT_IMAGE
    if hounsfield:
        dataset.RescaleSlope, dataset.RescaleIntercept, dataset.RescaleType = f"{step:.10g}", f"{low:.10g}", "HU"
        dataset.WindowCenter, dataset.WindowWidth = f"{(low + high) / 2:.10g}", f"{high - low:.10g}"
    else:
        dataset.RescaleSlope, dataset.RescaleIntercept, dataset.RescaleType = "1", "0", "US"
        dataset.WindowCenter, dataset.WindowWidth = str((DICOM_SCALE + 1) // 2), str(DICOM_SCALE + 1)
    dataset.WindowCenterWidthExplanation = "all values"
    unit = (hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit") if series.hounsfield
            else hd.sr.CodedConcept("1", "UCUM", "no units"))
    explanation = f"values {low:.6g} to {high:.6g}" + (" HU" if series.hounsfield else "")
    dataset.RealWorldValueMappingSequence = [
        hd.pm.RealWorldValueMapping(VALUE_MAPPING_LABEL, explanation, unit, (0, DICOM_SCALE), slope=step,
                                    intercept=low)]


def _fused_slice(reference: Dataset, stored: np.ndarray, k: int, series: _DerivedSeries,
                 sources: list[Dataset], references: dict[str, list]) -> Dataset:
    """A copy of reference slice ``k`` (patient, study, equipment, acquisition and geometry:
    ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness,
    FrameOfReferenceUID...) as a derived image of the series: new SOPInstanceUID, the series'
    identifiers and texts, ImageType DERIVED\\SECONDARY, the ``sources`` slices in
    SourceImageSequence, the Common Instance Reference module ``references`` and ``stored``
    uint16 pixels."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    dataset = copy.deepcopy(reference)
    dataset.remove_private_tags()
    for keyword in _DROPPED_TAGS:
        if keyword in dataset:
            delattr(dataset, keyword)
    for keyword in _TYPE_2_KEYWORDS:
        if keyword not in dataset:
            setattr(dataset, keyword, "")
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.set_pixel_data(stored, "MONOCHROME2", 16, generate_instance_uid=False)
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.SeriesInstanceUID, dataset.SeriesNumber, dataset.InstanceNumber = series.uid, series.number, k + 1
    dataset.FrameOfReferenceUID = series.frame_of_reference
    image_type = reference.get("ImageType") or []
    image_type = [image_type] if isinstance(image_type, str) else list(image_type)
    default_value_3 = "AXIAL" if str(dataset.SOPClassUID) == _CT_IMAGE else "OTHER"
    dataset.ImageType = ["DERIVED", "SECONDARY", *(image_type[2:] or [default_value_3])]
    dataset.SeriesDescription = series.title[:64]
    dataset.ImageComments = series.description[:10240]
    dataset.DerivationDescription = series.description[:1024]
    dataset.SeriesDate = dataset.ContentDate = dataset.InstanceCreationDate = series.created[0]
    dataset.SeriesTime = dataset.ContentTime = dataset.InstanceCreationTime = series.created[1]
    if sources:
        dataset.SourceImageSequence = sources
    for keyword, items in references.items():
        setattr(dataset, keyword, items)
    _value_mapping(dataset, series)
    return dataset


def _on_grid(source: VolumeFile, reference: VolumeFile) -> bool:
    """True if DICOM ``source`` has the reference's grid, so its slice ``k`` is the output's slice ``k``."""
    return (source.kind == "dicom" and source.volume.shape == reference.volume.shape
            and np.allclose(source.volume.geometry.affine, reference.volume.geometry.affine, atol=1e-3))


def write_dicom_series(folder: str | os.PathLike, data: np.ndarray, reference: VolumeFile,
                       summary: str = "", description: str = "",
                       value_range: tuple[float, float] = (0.0, 1.0), sources: tuple[VolumeFile, ...] = (),
                       hounsfield: bool = False) -> Path:
    """Write (I, J, K) ``data`` in ``value_range`` (default [0, 1], a fusion) as a derived DICOM
    series on the grid of a classic CT or MR ``reference`` series (see :func:`check_volume_format`).

    A series of single-frame images of the reference's SOP class (not a multi-frame or
    parametric map object: SimpleITK's series reader and common viewers read classic series
    as volumes with their geometry). Slice k copies reference slice k (patient, study,
    acquisition and geometry: ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
    SliceThickness, SpacingBetweenSlices, FrameOfReferenceUID) with new Series and SOP
    Instance UIDs, SeriesNumber the reference's plus :data:`SERIES_NUMBER_OFFSET`, ``summary``
    as SeriesDescription, ``description`` as DerivationDescription and ImageComments,
    ImageType DERIVED\\SECONDARY. Values are stored as
    ``round((value - low) / (high - low) * DICOM_SCALE)`` with a real-world value mapping back
    (see :func:`_value_mapping`; ``hounsfield``: the values are HU). The ``sources`` (the
    volumes the data was made from) are referenced in each slice k: slice k of the DICOM ones on
    the reference's grid in SourceImageSequence, and in the Common Instance Reference module
    those slices and every slice of the DICOM sources that were resampled onto the grid (the
    whole volume went into each output slice). Files go into a temporary folder beside
    ``folder`` that is renamed to ``folder`` at the end, so the series appears complete or not
    at all; ``folder`` must not exist.
    """
    import pydicom
    from pydicom.uid import generate_uid

    folder = Path(folder)
    if not value_range[1] > value_range[0]:
        raise ValueError(f"value_range must rise, got {value_range}")
    check_dicom_reference(folder, reference)
    slices = reference.header
    if data.shape != reference.volume.shape:
        raise VolumeFileError(f"{folder}: data of shape {data.shape} is not on the reference grid "
                              f"{reference.volume.shape}")
    if folder.exists():
        raise VolumeFileError(f"{folder}: already exists; medfuse writes a DICOM series into a new folder")
    first = slices[0]
    now = datetime.now()
    dicom_sources = tuple(source for source in sources if source.kind == "dicom" and _identified(source))
    lossy = any(str(dataset.get("LossyImageCompression", "")) == "01" for source in dicom_sources
                for dataset in source.header)
    series = _DerivedSeries(generate_uid(), int(first.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET,
                            str(first.get("FrameOfReferenceUID") or generate_uid()), summary, description,
                            value_range, hounsfield, (now.strftime("%Y%m%d"), now.strftime("%H%M%S")))
    on_grid = [source for source in dicom_sources if _on_grid(source, reference)]
    off_grid = [(source, list(range(len(source.header)))) for source in dicom_sources
                if not _on_grid(source, reference)]
    low, high = value_range

    def write(temporary: Path) -> None:
        for k, reference_slice in enumerate(slices):
            unit = (np.clip(data[:, :, k].T, low, high) - low) / (high - low)
            stored = np.round(unit * DICOM_SCALE).astype(np.uint16)
            referenced = [(source, [k]) for source in on_grid] + off_grid
            dataset = _fused_slice(reference_slice, stored, k, series, [_source_item(s, k) for s in on_grid],
                                   _instance_references(referenced, str(first.StudyInstanceUID)))
            if lossy:
                dataset.LossyImageCompression = "01"  # PS3.3 C.7.6.1.1.5: derived from lossy data stays lossy
            pydicom.dcmwrite(temporary / f"slice_{k + 1:04d}.dcm", dataset, enforce_file_format=True)

    write_folder_atomically(folder, write)
    return folder


def write_volume(path: str | os.PathLike, data: np.ndarray, reference: VolumeFile,
                 summary: str = "", description: str = "", value_range: tuple[float, float] = (0.0, 1.0),
                 sources: tuple[VolumeFile, ...] = (), hounsfield: bool = False) -> Path:
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


IDENTIFYING_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
"""What every slice of a DICOM reference or source must hold for a derived series to name it."""


def _identified(file: VolumeFile) -> bool:
    """True if every slice of DICOM ``file`` holds the UIDs a derived series refers to it by."""
    return all(keyword in dataset for dataset in file.header for keyword in IDENTIFYING_KEYWORDS)


def check_dicom_reference(out: str | os.PathLike, reference: VolumeFile) -> None:
    """:class:`VolumeFileError` unless ``reference`` is a DICOM series of single-frame images of a
    class in :data:`DICOM_OUTPUT_CLASSES`, every slice with its UIDs (whose slices a DICOM
    series output ``out`` copies): checked before any work."""
    if reference.kind != "dicom":
        raise VolumeFileError(f"{out}: the output must end in .nii or .nii.gz (a DICOM series is written only "
                              "when the reference input is DICOM)")
    if reference.frames:
        raise VolumeFileError(f"{out}: a DICOM series output copies the reference's single-frame slices, and "
                              f"{reference.path} is a multi-frame image; write NIfTI (.nii or .nii.gz) instead")
    sop_class = str(reference.header[0].get("SOPClassUID", ""))
    if sop_class not in DICOM_OUTPUT_CLASSES:
        name = getattr(reference.header[0].get("SOPClassUID"), "name", sop_class or "of no SOP class")
        raise VolumeFileError(f"{out}: a DICOM series output is written on a CT or MR Image Storage reference, and "
                              f"{reference.path} is {name}; write NIfTI (.nii or .nii.gz) instead")
    if not _identified(reference):
        raise VolumeFileError(f"{out}: a DICOM series output copies the reference's slices, and some slice of "
                              f"{reference.path} lacks one of {', '.join(IDENTIFYING_KEYWORDS)}; write NIfTI instead")


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
