"""DICOM files and series in and out (pydicom, highdicom; the ``[dicom]`` extra).

Conventions (PS3.3 C.7.6.2, Image Plane module): pixel ``(row r, column c)`` of a
slice lies at ``IPP + c * PixelSpacing[1] * X + r * PixelSpacing[0] * Y`` in LPS mm, with
``X, Y`` the two halves of ImageOrientationPatient. So ``i`` is the column, ``j`` the row,
and the slices of a series are ordered by ``IPP . (X x Y)`` (their position along the
slice normal). Stored values become ``stored * RescaleSlope + RescaleIntercept`` (HU for
CT), or the Real World Value Mapping's values where the rescale is an identity of unspecified
units (see :func:`_rescaled`). LPS is turned into RAS+ by negating x and y.

Compressed series (JPEG lossless and baseline, JPEG-LS, JPEG 2000, RLE) are decoded by
pydicom's plug-ins (pylibjpeg-libjpeg, pylibjpeg-openjpeg, pyjpegls: the ``[dicom]`` extra); an enhanced
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
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, overload

import numpy as np

from medfuse._shared.checks import check_result
from medfuse._shared.errors import OutputError, one_line
from medfuse._shared.files import write_folder_atomically
from medfuse._shared.optional import import_optional
from medfuse.fusion.memory import check_decoding
from medfuse.image.grid import LPS_TO_RAS, Geometry, Volume
from medfuse.io.volume_file import VolumeFile, VolumeFileError

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

DICOM_SUFFIX = ".dcm"
DICOM_SCALE = 65535
"""Written DICOM stores a value range as the 16-bit integers 0 .. DICOM_SCALE."""
VALUE_MAPPING_LABEL = "medfuse"
"""The LUTLabel of the Real World Value Mapping that medfuse writes (and applies when it reads)."""
SLICE_GAP_TOLERANCE = 0.01
"""Slices of a series are evenly spaced if every gap is within 1 % of the median gap."""


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
    if (
        str(dataset.get("RescaleType", "")).upper() == "US"
        and (slope, intercept) == (1.0, 0.0)
        and len(mappings) == 1
        and "RealWorldValueSlope" in mappings[0]
        and mappings[0].get("LUTLabel") == VALUE_MAPPING_LABEL
        and (mappings[0].get("RealWorldValueFirstValueMapped"), mappings[0].get("RealWorldValueLastValueMapped"))
        == (0, DICOM_SCALE)
    ):
        slope = float(mappings[0].RealWorldValueSlope)
        intercept = float(mappings[0].get("RealWorldValueIntercept", 0.0) or 0.0)
    return (stored.astype(np.float64) * slope + intercept).astype(np.float32)


def _read_file(path: Path, files: int = 1) -> list[tuple[Dataset, np.ndarray, int]]:
    """The images of one DICOM file as ``(dataset, rescaled (rows, columns) float32 pixels, frame)``:
    none for a file without pixel data, one (frame 0) for a single-frame image, one per frame
    (numbered from 1) for a multi-frame image (see :func:`_frames`). The dataset of a
    single-frame image is the file's, pixel data dropped. The declared size, times the
    ``files`` of its series, is checked against the free memory before pixels are decoded."""
    pydicom = import_optional("pydicom", purpose="reading DICOM")
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


_FRAME_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "Rows",
    "Columns",
)
"""What each frame's dataset copies from a multi-frame file (beside its functional groups)."""


@overload
def _frame_item(
    dataset: Dataset, frame: Dataset, sequence: str, path: Path, number: int, required: Literal[True] = True
) -> Dataset: ...


@overload
def _frame_item(
    dataset: Dataset, frame: Dataset, sequence: str, path: Path, number: int, required: bool
) -> Dataset | None: ...


def _frame_item(
    dataset: Dataset, frame: Dataset, sequence: str, path: Path, number: int, required: bool = True
) -> Dataset | None:
    """The first item of functional group ``sequence`` for one frame: from the frame's own
    PerFrameFunctionalGroupsSequence item, else from SharedFunctionalGroupsSequence (PS3.3
    C.7.6.16); a missing ``required`` group is refused."""
    shared = dataset.get("SharedFunctionalGroupsSequence") or []
    for group in (frame, *shared[:1]):
        if group.get(sequence):
            return group[sequence].value[0]
    if required:
        raise VolumeFileError(
            f"{path}: frame {number} has no {sequence} (in its per-frame or the shared "
            "functional groups), so its geometry is unknown"
        )
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
        raise VolumeFileError(
            f"{path}: a multi-frame DICOM image without a PerFrameFunctionalGroupsSequence item "
            "per frame, so the positions of its slices are unknown; medfuse reads enhanced "
            "multi-frame images and series of one slice per file"
        )
    stored = _decoded(dataset, path).reshape(count, int(dataset.Rows), int(dataset.Columns))
    images = []
    for number, group in enumerate(per_frame, start=1):
        frame = Dataset()
        for keyword in _FRAME_KEYWORDS:
            if keyword in dataset:
                setattr(frame, keyword, dataset[keyword].value)
        frame.ImagePositionPatient = _frame_item(dataset, group, "PlanePositionSequence", path, number).get(
            "ImagePositionPatient"
        )
        frame.ImageOrientationPatient = _frame_item(dataset, group, "PlaneOrientationSequence", path, number).get(
            "ImageOrientationPatient"
        )
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
        raise VolumeFileError(
            f"{path}: holds a multi-frame DICOM image and other images; give the multi-frame file on its own"
        )
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
            raise VolumeFileError(
                f"{path}: slices of different sizes ({shape[1]}x{shape[0]} and {dataset.Columns}x{dataset.Rows})"
            )
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
            f"{distances[worst]:.4g} mm where the others are {typical:.4g} mm apart (a missing slice?)"
        )
    return (positions[-1] - positions[0]) / (len(positions) - 1)


_CT_IMAGE, _MR_IMAGE = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
DICOM_OUTPUT_CLASSES = (_CT_IMAGE, _MR_IMAGE)
"""CT Image Storage and MR Image Storage: the SOP classes of a reference that a DICOM series output
copies (classic single-frame images with the Image Plane and Frame of Reference modules, which
viewers and SimpleITK read as volumes)."""
SERIES_NUMBER_OFFSET = 1000
"""A written series is numbered the reference's SeriesNumber plus this (:func:`derived_series_number`)."""
IS_RANGE = (-(2**31), 2**31 - 1)
"""The values an Integer String may hold (PS3.5 6.2)."""
TEXT_LIMITS = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "PN": 64,
    "SH": 16,
    "ST": 1024,
    "TM": 14,
    "UI": 64,
}
"""The most characters one value of each string VR may hold (PS3.5 table 6.2-1; PN: per component
group); UC, UR and UT have no practical limit."""
_SINGLE_VALUED = ("LT", "ST", "UT", "UR")
"""String VRs whose values may hold a backslash (the others use it to separate values)."""
_CODE_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _")
"""The characters of a Code String (CS)."""


def derived_series_number(reference_number: object) -> int:
    """The SeriesNumber of a series derived from a reference numbered ``reference_number``: that
    plus :data:`SERIES_NUMBER_OFFSET`, or minus it where the sum would leave :data:`IS_RANGE`;
    :data:`SERIES_NUMBER_OFFSET` for a reference without a number (or with text that is none)."""
    try:
        number = int(str(reference_number).strip())
    except ValueError:
        return SERIES_NUMBER_OFFSET
    low, high = IS_RANGE
    return next(
        (
            candidate
            for candidate in (number + SERIES_NUMBER_OFFSET, number - SERIES_NUMBER_OFFSET)
            if low <= candidate <= high
        ),
        SERIES_NUMBER_OFFSET,
    )


def dicom_text(text: str, vr: str) -> str:
    """``text`` made a valid value of the text VR ``vr`` (LO, SH, ST, LT): undecodable bytes of
    file names as U+FFFD, control characters as spaces, a backslash (the value separator of LO
    and SH) as a slash, cut to the VR's length."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that no file name's byte made
        text = text.encode("utf-8", "replace").decode("utf-8")
    text = "".join(" " if unicodedata.category(character) == "Cc" else character for character in text)
    if vr not in _SINGLE_VALUED:
        text = text.replace("\\", "/")
    return text[: TEXT_LIMITS[vr]]


def _element_values(element: DataElement) -> list[object]:
    value = element.value
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]


def dicom_value_problems(dataset: Dataset, skip: tuple[str, ...] = (), long_decimals: bool = True) -> list[str]:
    """What in ``dataset`` (its sequences' items included) breaks the value rules of PS3.5 6.2:
    a value longer than its VR allows (:data:`TEXT_LIMITS`), an IS outside :data:`IS_RANGE` or a
    DS or IS that is no number, a CS with other characters than A-Z, 0-9, space and underscore,
    a backslash inside a value of a multi-valued VR, or a value that cannot be read at all.
    ``skip`` names keywords left out (those a writer replaces); ``long_decimals=False`` leaves out
    DS values that are only too long (those a writer shortens: :func:`shorten_decimals`). One
    phrase per problem."""
    from pydicom.datadict import keyword_for_tag

    problems = []
    for tag in list(dataset.keys()):
        name = keyword_for_tag(tag) or str(tag)
        if name in skip or tag.is_private:
            continue
        try:
            element = dataset[tag]
        except Exception as error:  # pydicom converts on access; damaged values raise anything
            problems.append(f"{name}: unreadable value ({one_line(error)})")
            continue
        if element.VR == "SQ":
            problems.extend(
                f"{name} > {problem}"
                for item in element.value
                for problem in dicom_value_problems(item, skip, long_decimals)
            )
            continue
        if element.VR not in TEXT_LIMITS:
            continue
        for value in _element_values(element):
            text = str(getattr(value, "original_string", None) or value)
            if element.VR == "PN":
                too_long = any(len(group) > TEXT_LIMITS["PN"] for group in text.split("="))
            else:
                too_long = len(text) > TEXT_LIMITS[element.VR] and (long_decimals or element.VR != "DS")
            if too_long:
                problems.append(f"{name} {text[:20]!r}... is longer than {element.VR}'s {TEXT_LIMITS[element.VR]}")
            if element.VR not in _SINGLE_VALUED and "\\" in text:
                problems.append(f"{name} {text!r} holds a backslash, {element.VR}'s separator of values")
            if element.VR == "CS" and not set(text) <= _CODE_CHARACTERS:
                problems.append(f"{name} {text!r} holds characters a CS may not hold")
            if element.VR in ("IS", "DS"):
                try:
                    number = float(text)
                except ValueError:
                    problems.append(f"{name} {text!r} is not a number")
                    continue
                if element.VR == "IS" and not (number.is_integer() and IS_RANGE[0] <= number <= IS_RANGE[1]):
                    problems.append(f"{name} {text} is outside the IS range {IS_RANGE[0]}..{IS_RANGE[1]}")
    return problems


def shorten_decimals(dataset: Dataset) -> None:
    """Rewrite every Decimal String of ``dataset`` (its sequences' items included) longer than DS's
    16 characters as the closest number that fits (``pydicom.valuerep.format_number_as_ds``: about
    11 significant digits); some scanners write more digits than DS holds, and a copy must not."""
    from pydicom.valuerep import format_number_as_ds

    for element in dataset.iterall():
        if element.VR != "DS":
            continue
        values = _element_values(element)
        texts = [str(getattr(value, "original_string", None) or value) for value in values]
        if all(len(text) <= TEXT_LIMITS["DS"] for text in texts):
            continue
        try:
            numbers = [float(text) for text in texts]
        except ValueError:  # no number: left for dicom_value_problems to report
            continue
        shortened = [
            format_number_as_ds(number) if len(text) > TEXT_LIMITS["DS"] else text
            for number, text in zip(numbers, texts)
        ]
        element.value = shortened if len(shortened) > 1 else shortened[0]


def _text_encoding(dataset: Dataset, texts: tuple[str, ...]) -> None:
    """Keep ``dataset``'s SpecificCharacterSet if it can encode ``texts`` (what medfuse writes into
    it), else declare UTF-8 (ISO_IR 192) after decoding every value, so that no character becomes
    ``?``."""
    from pydicom.charset import convert_encodings

    if all(text.isascii() for text in texts):
        return
    declared = dataset.get("SpecificCharacterSet") or "ISO_IR 6"
    if declared not in ("ISO_IR 6", ["ISO_IR 6"]):
        encodings = convert_encodings(declared)
        if len(encodings) == 1:
            try:
                for text in texts:
                    text.encode(encodings[0])
                return
            except UnicodeEncodeError:
                pass
    dataset.decode()  # every text value to str with the reference's character set, then re-encoded as UTF-8
    dataset.SpecificCharacterSet = "ISO_IR 192"


_DROPPED_TAGS = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "VOILUTSequence",
    "VOILUTFunction",
    "ModalityLUTSequence",
    "PresentationLUTShape",
    "WindowCenterWidthExplanation",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "NumberOfFrames",
    "IconImageSequence",
    "SourceImageSequence",
    "DerivationCodeSequence",
    "ReferencedSeriesSequence",
    "StudiesContainingOtherReferencedInstancesSequence",
    "RealWorldValueMappingSequence",
)
"""What a fused slice does not copy from its reference slice: statements about the reference's
pixels, their display and their references (the fused slice writes its own)."""

_TYPE_2_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "Laterality",
    "PatientPosition",
    "PositionReferenceIndicator",
    "Manufacturer",
)
"""Type 2 (and 2C) attributes of the Patient, General Study, General Series, Frame of Reference
and General Equipment modules (PS3.3 C.7): written empty where the reference lacks them, as a
Type 2 attribute must be present but may be empty (PS3.5 7.4.3)."""


_REPLACED_KEYWORDS = (
    *_DROPPED_TAGS,
    "SeriesNumber",
    "SeriesDescription",
    "ImageComments",
    "DerivationDescription",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "ImageType",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "SeriesDate",
    "SeriesTime",
    "ContentDate",
    "ContentTime",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "PixelData",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "SamplesPerPixel",
)
"""What a fused slice writes itself instead of copying it from its reference slice."""


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
    hd = import_optional("highdicom", purpose="writing DICOM")
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    slice_dataset = _datasets(source)[k]
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
        series.SeriesInstanceUID = _datasets(source)[0].SeriesInstanceUID
        series.ReferencedInstanceSequence = []
        for sop_class, sop_instance in dict.fromkeys(
            (_datasets(source)[k].SOPClassUID, _datasets(source)[k].SOPInstanceUID) for k in ks
        ):
            instance = Dataset()
            instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID = sop_class, sop_instance
            series.ReferencedInstanceSequence.append(instance)
        studies.setdefault(str(_datasets(source)[0].StudyInstanceUID), []).append(series)
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
    hd = import_optional("highdicom", purpose="writing DICOM")

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
    unit = (
        hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")
        if series.hounsfield
        else hd.sr.CodedConcept("1", "UCUM", "no units")
    )
    explanation = f"values {low:.6g} to {high:.6g}" + (" HU" if series.hounsfield else "")
    dataset.RealWorldValueMappingSequence = [
        hd.pm.RealWorldValueMapping(VALUE_MAPPING_LABEL, explanation, unit, (0, DICOM_SCALE), slope=step, intercept=low)
    ]


def _fused_slice(
    reference: Dataset,
    stored: np.ndarray,
    k: int,
    series: _DerivedSeries,
    sources: list[Dataset],
    references: dict[str, list],
) -> Dataset:
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
    shorten_decimals(dataset)
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
    dataset.SeriesDescription = dicom_text(series.title, "LO")
    dataset.ImageComments = dicom_text(series.description, "LT")
    dataset.DerivationDescription = dicom_text(series.description, "ST")
    _text_encoding(dataset, (dataset.SeriesDescription, dataset.ImageComments, dataset.DerivationDescription))
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
    return (
        source.kind == "dicom"
        and source.volume.shape == reference.volume.shape
        and np.allclose(source.volume.geometry.affine, reference.volume.geometry.affine, atol=1e-3)
    )


def write_dicom_series(
    folder: str | os.PathLike,
    data: np.ndarray,
    reference: VolumeFile,
    summary: str = "",
    description: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
    sources: tuple[VolumeFile, ...] = (),
    hounsfield: bool = False,
) -> Path:
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
    pydicom = import_optional("pydicom", purpose="writing DICOM")
    from pydicom.uid import generate_uid

    folder = Path(folder)
    if not value_range[1] > value_range[0]:
        raise ValueError(f"value_range must rise, got {value_range}")
    check_dicom_reference(folder, reference)
    slices = _datasets(reference)
    if data.shape != reference.volume.shape:
        raise VolumeFileError(
            f"{folder}: data of shape {data.shape} is not on the reference grid {reference.volume.shape}"
        )
    if folder.exists():
        raise VolumeFileError(f"{folder}: already exists; medfuse writes a DICOM series into a new folder")
    check_result(data, str(folder))
    first = slices[0]
    now = datetime.now()
    dicom_sources = tuple(source for source in sources if source.kind == "dicom" and _identified(source))
    lossy = any(
        str(dataset.get("LossyImageCompression", "")) == "01"
        for source in dicom_sources
        for dataset in _datasets(source)
    )
    try:
        reference_number = first.get("SeriesNumber", "")
    except ValueError:  # pydicom converts on access, and refuses an IS that is no number
        reference_number = ""
    series = _DerivedSeries(
        generate_uid(),
        derived_series_number(reference_number),
        str(first.get("FrameOfReferenceUID") or generate_uid()),
        summary,
        description,
        value_range,
        hounsfield,
        (now.strftime("%Y%m%d"), now.strftime("%H%M%S")),
    )
    on_grid = [source for source in dicom_sources if _on_grid(source, reference)]
    off_grid = [
        (source, list(range(len(_datasets(source))))) for source in dicom_sources if not _on_grid(source, reference)
    ]
    low, high = value_range

    def write(temporary: Path) -> None:
        for k, reference_slice in enumerate(slices):
            unit = (np.clip(data[:, :, k].T, low, high) - low) / (high - low)
            stored = np.round(unit * DICOM_SCALE).astype(np.uint16)
            referenced = [(source, [k]) for source in on_grid] + off_grid
            dataset = _fused_slice(
                reference_slice,
                stored,
                k,
                series,
                [_source_item(s, k) for s in on_grid],
                _instance_references(referenced, str(first.StudyInstanceUID)),
            )
            if lossy:
                dataset.LossyImageCompression = "01"  # PS3.3 C.7.6.1.1.5: derived from lossy data stays lossy
            problems = dicom_value_problems(dataset)
            if problems:  # checked for the copied values before any work; this would be medfuse's own fault
                raise OutputError(f"{folder}: slice {k + 1} would break DICOM's value rules: {'; '.join(problems)}")
            pydicom.dcmwrite(temporary / f"slice_{k + 1:04d}.dcm", dataset, enforce_file_format=True)

    write_folder_atomically(folder, write)
    return folder


def _datasets(file: VolumeFile) -> Sequence[Dataset]:
    """The datasets of a DICOM ``file``'s slices, in ``k`` order: what its ``header`` holds."""
    return cast("Sequence[Dataset]", file.header)


IDENTIFYING_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
"""What every slice of a DICOM reference or source must hold for a derived series to name it."""


def _identified(file: VolumeFile) -> bool:
    """True if every slice of DICOM ``file`` holds the UIDs a derived series refers to it by."""
    return all(keyword in dataset for dataset in _datasets(file) for keyword in IDENTIFYING_KEYWORDS)


def check_dicom_reference(out: str | os.PathLike, reference: VolumeFile) -> None:
    """:class:`VolumeFileError` unless ``reference`` is a DICOM series of single-frame images of a
    class in :data:`DICOM_OUTPUT_CLASSES`, every slice with its UIDs (whose slices a DICOM
    series output ``out`` copies): checked before any work."""
    if reference.kind != "dicom":
        raise VolumeFileError(
            f"{out}: the output must end in .nii or .nii.gz (a DICOM series is written only "
            "when the reference input is DICOM)"
        )
    if reference.frames:
        raise VolumeFileError(
            f"{out}: a DICOM series output copies the reference's single-frame slices, and "
            f"{reference.path} is a multi-frame image; write NIfTI (.nii or .nii.gz) instead"
        )
    sop_class = str(_datasets(reference)[0].get("SOPClassUID", ""))
    if sop_class not in DICOM_OUTPUT_CLASSES:
        name = getattr(_datasets(reference)[0].get("SOPClassUID"), "name", sop_class or "of no SOP class")
        raise VolumeFileError(
            f"{out}: a DICOM series output is written on a CT or MR Image Storage reference, and "
            f"{reference.path} is {name}; write NIfTI (.nii or .nii.gz) instead"
        )
    if not _identified(reference):
        raise VolumeFileError(
            f"{out}: a DICOM series output copies the reference's slices, and some slice of "
            f"{reference.path} lacks one of {', '.join(IDENTIFYING_KEYWORDS)}; write NIfTI instead"
        )
    for number, dataset in enumerate(_datasets(reference), start=1):
        problems = dicom_value_problems(dataset, skip=_REPLACED_KEYWORDS, long_decimals=False)
        if problems:
            raise VolumeFileError(
                f"{out}: a DICOM series output copies the reference's slices, and slice {number} of "
                f"{reference.path} breaks DICOM's value rules ({'; '.join(problems[:3])}); write "
                "NIfTI (.nii or .nii.gz) instead"
            )
    import_optional("highdicom", purpose="writing DICOM")  # MissingDependencyError before any work
