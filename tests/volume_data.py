"""Synthetic volumes for the volume tests: an ellipsoid phantom, NIfTI files, DICOM series."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage, generate_uid

SHAPE = (32, 28, 6)


def phantom(
    shape: tuple[int, int, int] = SHAPE, inner: float = 1.0, outer: float = 0.4, shift: float = 0.0
) -> np.ndarray:
    """An ellipsoid (value ``outer``) holding a smaller one (``inner``) on 0, float32 (i, j, k)."""
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    radius = (i / 0.8) ** 2 + (j / 0.7) ** 2 + (k / 1.2) ** 2
    core = ((i - 0.2 - shift) / 0.3) ** 2 + ((j + 0.1) / 0.35) ** 2 + (k / 0.9) ** 2
    volume = np.where(radius < 1, outer, 0.0)
    return np.where(core < 1, inner, volume).astype(np.float32)


def oblique_affine(spacing=(0.9, 1.1, 2.5), origin=(-12.0, 30.5, 7.25), angle=0.3) -> np.ndarray:
    """A RAS affine rotated about z by ``angle`` radians, with the given spacing and origin."""
    cos, sin = np.cos(angle), np.sin(angle)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]) * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> Path:
    image = nib.Nifti1Image(data.astype(dtype), affine)
    image.set_qform(affine, 1)
    image.set_sform(affine, 2)
    nib.save(image, path)
    return path


def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    spacing=(0.8, 0.9),
    thickness=2.0,
    origin=(100.0, -50.0, 20.0),
    slope=2.0,
    intercept=-1024.0,
    modality="CT",
    skip: tuple[int, ...] = (),
    implicit: bool = True,
    shuffle: bool = True,
    orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
) -> Path:
    """A DICOM series of ``hu`` (i = column, j = row, k = slice) in LPS: ``orientation`` is
    ImageOrientationPatient (default: along a row +x, down a column +y), slices step along the
    normal from ``origin``; stored = (hu - intercept) / slope. The slices hold, with made-up
    values, the attributes a CT or MR Image needs (``dciodvfy``'s one error is the conditional
    Laterality, which the derived-DICOM writer adds), so that a derived series can be validated.

    ``spacing`` is (row spacing, column spacing) as in PixelSpacing. Slices in ``skip`` are
    left out; files are written in a shuffled order so that sorting is tested.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    order = np.random.default_rng(0).permutation(hu.shape[2]) if shuffle else range(hu.shape[2])
    for number, k in enumerate(order):
        if k in skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientName, ds.PatientID, ds.Modality = "Phantom^Test", "P001", modality
        ds.PatientBirthDate, ds.PatientSex, ds.PatientPosition = "19700101", "O", "HFS"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
        ds.ReferringPhysicianName, ds.Manufacturer, ds.SeriesNumber = "", "medfuse tests", 3
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
        ds.ImageType, ds.AcquisitionNumber = ["ORIGINAL", "PRIMARY", "AXIAL" if modality == "CT" else "OTHER"], 1
        if modality == "CT":
            ds.KVP = 120
        else:
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
            ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = 500, 15, 1
        ds.InstanceNumber = number + 1
        normal = np.cross(orientation[:3], orientation[3:])
        ds.ImagePositionPatient = [round(float(v), 6) for v in np.asarray(origin) + k * thickness * normal]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in orientation]
        ds.PixelSpacing = list(spacing)
        ds.SliceThickness = thickness
        ds.SpacingBetweenSlices = thickness
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        stored = np.round((hu[:, :, k].T - intercept) / slope).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"IM{number:03d}.dcm", enforce_file_format=True)
    return folder


def ct_hu(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A CT-like phantom in HU: air -1000, soft tissue 40, bone core 1000 (integers)."""
    volume = phantom(shape, inner=1.0, outer=0.5)
    return np.select([volume == 1.0, volume == 0.5], [1000.0, 40.0], -1000.0).astype(np.float32)
