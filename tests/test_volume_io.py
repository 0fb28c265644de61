import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from volume_data import SHAPE, ct_hu, oblique_affine, phantom, write_dicom_series, write_nifti

from medfuse.image.grid import Geometry
from medfuse.io.volumes import DICOM_SCALE, VolumeFileError, is_volume_path, read_volume, write_volume
from medfuse.io.volumes import write_dicom_series as write_series
from medfuse.io.volumes import write_nifti as write_nifti_volume


def test_nifti_read_gives_data_and_affine(tmp_path):
    affine = oblique_affine()
    data = phantom() * 300 - 20
    path = write_nifti(tmp_path / "mr.nii.gz", data, affine, dtype=np.int16)
    volume_file = read_volume(path)
    assert volume_file.kind == "nifti" and volume_file.volume.shape == SHAPE
    np.testing.assert_allclose(volume_file.volume.data, np.round(data), atol=0.5)
    np.testing.assert_allclose(volume_file.volume.geometry.affine, affine, atol=1e-5)
    assert is_volume_path(path) and is_volume_path(tmp_path / "other.nii")


def test_nifti_two_and_four_dimensions(tmp_path):
    flat = read_volume(write_nifti(tmp_path / "flat.nii", np.ones((6, 5)), np.eye(4)))
    assert flat.volume.shape == (6, 5, 1)
    single = read_volume(write_nifti(tmp_path / "t1.nii", np.ones((6, 5, 4, 1)), np.eye(4)))
    assert single.volume.shape == (6, 5, 4)
    with pytest.raises(VolumeFileError, match="a 4-D NIfTI \\(6x5x4x3\\); medfuse fuses 3-D volumes only"):
        read_volume(write_nifti(tmp_path / "fmri.nii", np.ones((6, 5, 4, 3)), np.eye(4)))
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(VolumeFileError, match="not a readable NIfTI"):
        read_volume(tmp_path / "broken.nii.gz")
    with pytest.raises(VolumeFileError, match="no such file"):
        read_volume(tmp_path / "missing.nii")


def test_nifti_write_keeps_affine_codes_and_records_intensity(tmp_path):
    affine = oblique_affine()
    reference = read_volume(write_nifti(tmp_path / "ref.nii.gz", phantom(), affine))
    out = write_nifti_volume(
        tmp_path / "out.nii.gz",
        phantom() * 0.5,
        reference.volume.geometry,
        reference,
        "medfuse sfnn: A pct 0.5-99.5; B win brain",
        "x" * 200,
    )
    image = nib.load(out)
    assert image.get_data_dtype() == np.float32
    np.testing.assert_allclose(image.affine, reference.volume.geometry.affine, atol=1e-6)
    assert int(image.header["qform_code"]) == 1 and int(image.header["sform_code"]) == 2
    assert image.header["descrip"].item() == b"medfuse sfnn: A pct 0.5-99.5; B win brain"
    assert image.header.extensions[0].get_content() == b"x" * 200
    np.testing.assert_allclose(image.get_fdata(), phantom() * 0.5, atol=1e-7)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dicom_series_sorted_rescaled_and_in_ras(tmp_path):
    hu = ct_hu()
    folder = write_dicom_series(
        tmp_path / "ct",
        hu,
        spacing=(0.8, 0.9),
        thickness=2.5,
        origin=(100.0, -50.0, 20.0),
        slope=2.0,
        intercept=-1024.0,
    )
    volume_file = read_volume(folder)
    assert volume_file.kind == "dicom" and volume_file.modality == "CT"
    np.testing.assert_array_equal(volume_file.volume.data, hu)  # HU exactly: stored * 2 - 1024
    expected = np.array([[-0.9, 0, 0, -100], [0, -0.8, 0, 50], [0, 0, 2.5, 20], [0, 0, 0, 1]])
    np.testing.assert_allclose(volume_file.volume.geometry.affine, expected, atol=1e-9)
    assert [int(s.InstanceNumber) for s in volume_file.header] != list(range(1, 7))  # files were shuffled
    z = [float(s.ImagePositionPatient[2]) for s in volume_file.header]
    assert z == sorted(z)
    single = read_volume(sorted(folder.iterdir())[0])
    assert single.volume.shape == (32, 28, 1) and single.volume.geometry.spacing[2] == pytest.approx(2.5)


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    folder = write_dicom_series(tmp_path / "ct", ct_hu(), thickness=2.0, skip=(3,))
    message = "not evenly spaced: a gap of 4 mm .* 2 mm apart \\(a missing slice\\?\\)"
    with pytest.raises(VolumeFileError, match=message):
        read_volume(folder)


def test_dicom_folder_problems(tmp_path):
    folder = write_dicom_series(tmp_path / "ct", ct_hu())
    first = sorted(folder.iterdir())[0]
    (folder / "copy.dcm").write_bytes(first.read_bytes())
    with pytest.raises(VolumeFileError, match="two slices at one position"):
        read_volume(folder)
    other = write_dicom_series(tmp_path / "two", ct_hu())
    for path in write_dicom_series(tmp_path / "second", ct_hu(), origin=(0.0, 0.0, 500.0)).iterdir():
        path.rename(other / f"second-{path.name}")
    with pytest.raises(VolumeFileError, match="holds 2 DICOM series"):
        read_volume(other)
    (tmp_path / "bad.dcm").write_bytes(b"garbage")
    with pytest.raises(VolumeFileError, match="not a readable DICOM file"):
        read_volume(tmp_path / "bad.dcm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeFileError, match="no DICOM files"):
        read_volume(tmp_path / "empty")


def test_dicom_series_write_keeps_geometry_and_maps_back_to_unit_values(tmp_path):
    reference = read_volume(write_dicom_series(tmp_path / "ct", ct_hu(), spacing=(0.8, 0.9), thickness=2.5))
    fused = phantom(inner=0.75, outer=0.123456)
    out = write_volume(tmp_path / "fused", fused, reference, "medfuse sfnn", "A: window brain L40 W80 HU")
    written = sorted(out.iterdir())
    assert len(written) == 6 and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    back = read_volume(out)
    np.testing.assert_allclose(back.volume.data, fused, atol=0.5 / DICOM_SCALE + 1e-7)
    np.testing.assert_allclose(back.volume.geometry.affine, reference.volume.geometry.affine, atol=1e-9)
    series = {s.SeriesInstanceUID for s in back.header}
    assert len(series) == 1 and series != {reference.header[0].SeriesInstanceUID}
    for new, old in zip(back.header, reference.header):
        for keyword in (
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "SliceThickness",
            "SpacingBetweenSlices",
            "StudyInstanceUID",
            "PatientID",
        ):
            assert new[keyword].value == old[keyword].value
        assert new.SOPInstanceUID != old.SOPInstanceUID
        assert new.ImageComments == "A: window brain L40 W80 HU" and new.BitsAllocated == 16
    raw = pydicom.dcmread(written[0])
    assert raw.file_meta.MediaStorageSOPInstanceUID == raw.SOPInstanceUID
    with pytest.raises(VolumeFileError, match="already exists"):
        write_series(out, fused, reference)


def test_dicom_output_needs_a_dicom_reference(tmp_path):
    reference = read_volume(write_nifti(tmp_path / "ref.nii", phantom(), np.eye(4)))
    with pytest.raises(VolumeFileError, match="must end in .nii or .nii.gz"):
        write_volume(tmp_path / "fused", phantom(), reference)
    assert Geometry(np.eye(4)).spacing.tolist() == [1, 1, 1]


def test_oblique_dicom_series_geometry(tmp_path):
    angle = np.deg2rad(20)
    row, column = np.array([np.cos(angle), np.sin(angle), 0.0]), np.array([0.0, 0.0, -1.0])  # coronal-ish, tilted
    folder = write_dicom_series(
        tmp_path / "obl",
        ct_hu(),
        spacing=(0.7, 0.6),
        thickness=3.0,
        origin=(10.0, 20.0, 30.0),
        orientation=(*row, *column),
    )
    volume_file = read_volume(folder)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row * 0.6, column * 0.7, np.cross(row, column) * 3.0
    lps[:3, 3] = (10.0, 20.0, 30.0)
    np.testing.assert_allclose(volume_file.volume.geometry.affine, np.diag([-1, -1, 1, 1]) @ lps, atol=1e-5)
    np.testing.assert_allclose(volume_file.volume.geometry.spacing, [0.6, 0.7, 3.0], atol=1e-6)
    out = write_volume(tmp_path / "fused.nii.gz", phantom(), volume_file)
    np.testing.assert_allclose(nib.load(out).affine, volume_file.volume.geometry.affine, atol=1e-5)


def test_reader_warnings_pass_on_as_one_line_or_not_at_all(tmp_path, monkeypatch):
    """pydicom's warnings (often several lines) come out once, as one line naming the file, when
    the file is read, and not at all when it can't be (the error says why)."""
    real_dcmread = pydicom.dcmread

    def warning_dcmread(path, *args, **kwargs):
        warnings.warn("The value length exceeds the maximum\nallowed for VR UI", UserWarning, stacklevel=2)
        return real_dcmread(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", warning_dcmread)
    folder = write_dicom_series(tmp_path / "ct", ct_hu())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_volume(folder)
    assert [str(w.message) for w in caught] == [f"{folder}: The value length exceeds the maximum allowed for VR UI"]
    (tmp_path / "bad.dcm").write_bytes(b"garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(VolumeFileError, match="not a readable DICOM file"):
            read_volume(tmp_path / "bad.dcm")
    assert caught == []


def test_a_nifti_whose_qform_and_sform_differ_keeps_both(tmp_path):
    import SimpleITK as sitk

    sform = np.array([[0.9, 0.1, 0.0, -12.0], [0.0, 1.1, 0.0, 30.5], [0.0, 0.0, 2.5, 7.25], [0, 0, 0, 1]])
    qform = np.diag([1.0, 1.2, 2.0, 1.0])
    qform[:3, 3] = (5.0, -4.0, 3.0)
    image = nib.Nifti1Image(np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4), None)
    image.set_sform(sform, 2)
    image.set_qform(qform, 1)
    nib.save(image, tmp_path / "in.nii")
    source = read_volume(tmp_path / "in.nii")
    write_volume(tmp_path / "out.nii.gz", np.zeros(source.volume.shape, np.float32), source)
    written = nib.load(tmp_path / "out.nii.gz").header
    for coded, expected, code in ((written.get_qform(coded=True), qform, 1), (written.get_sform(coded=True), sform, 2)):
        np.testing.assert_allclose(coded[0], expected, atol=1e-5)
        assert coded[1] == code
    before, after = sitk.ReadImage(str(tmp_path / "in.nii")), sitk.ReadImage(str(tmp_path / "out.nii.gz"))
    for read in ("GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(after, read)(), getattr(before, read)(), atol=1e-5)
