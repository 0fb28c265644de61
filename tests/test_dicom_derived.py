"""Derived DICOM output (issue 23): a fused series is a valid derived CT or MR series (dciodvfy),
with 16-bit values and a real-world value mapping, new identifiers, the sources referenced and
the reference's geometry, read back alike by pydicom and SimpleITK."""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from volume_data import ct_hu, phantom, write_dicom_series

from medfuse.cli import main
from medfuse.io.volumes import DICOM_SCALE, SERIES_NUMBER_OFFSET, VolumeFileError, read_volume, write_volume

ORIENTATION = (0.96, 0.28, 0.0, -0.28, 0.96, 0.0)
"""An oblique ImageOrientationPatient (a rotation about the slice normal), so that geometry is tested."""


@pytest.fixture
def ct_and_mr(tmp_path):
    """A CT and an MR series of two studies on one oblique grid, read."""
    ct = write_dicom_series(tmp_path / "ct", ct_hu(), spacing=(0.8, 0.9), thickness=2.5, orientation=ORIENTATION)
    mr = write_dicom_series(
        tmp_path / "mr", ct_hu() + 1200, spacing=(0.8, 0.9), thickness=2.5, orientation=ORIENTATION, modality="MR"
    )
    return read_volume(ct), read_volume(mr)


def fused_series(tmp_path, reference, sources, name="fused"):
    fused = phantom(inner=0.75, outer=0.123456)
    out = write_volume(
        tmp_path / name,
        fused,
        reference,
        "medfuse fusion (rule sfnn-pyramid): A pct; B win",
        "medfuse fuse, rule sfnn-pyramid, output in [0, 1]",
        sources=sources,
    )
    return fused, [pydicom.dcmread(path) for path in sorted(out.iterdir())]


@pytest.mark.parametrize("reference_index", [0, 1], ids=["CT", "MR"])
def test_every_written_file_passes_dciodvfy(tmp_path, ct_and_mr, reference_index):
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy (Debian's dicom3tools) is not installed; .ci/run installs it")
    reference = ct_and_mr[reference_index]
    _, written = fused_series(tmp_path, reference, ct_and_mr)
    in_hu = write_volume(
        tmp_path / "hu",
        ct_hu(),
        reference,
        "medfuse register rigid",
        "",
        (-1000.0, 1000.0),
        sources=(ct_and_mr[0],),
        hounsfield=True,
    )
    for path in [dataset.filename for dataset in written] + sorted(in_hu.iterdir()):
        result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
        report = (result.stdout + result.stderr).splitlines()
        assert report[0].strip() == ("CTImage" if reference_index == 0 else "MRImage")
        assert [line for line in report if line.startswith("Error")] == [], path


@pytest.mark.parametrize("reference_index", [0, 1], ids=["CT", "MR"])
def test_values_are_16_bit_with_an_identity_rescale_and_a_real_world_value_mapping(
    tmp_path, ct_and_mr, reference_index
):
    reference = ct_and_mr[reference_index]
    fused, written = fused_series(tmp_path, reference, ct_and_mr)
    stored = np.stack([dataset.pixel_array.T for dataset in written], axis=-1)
    assert stored.dtype == np.uint16 and stored.max() == round(0.75 * DICOM_SCALE)
    for dataset in written:
        assert (dataset.RescaleSlope, dataset.RescaleIntercept, dataset.RescaleType) == (1, 0, "US")
        assert (dataset.WindowCenter, dataset.WindowWidth) == (32768, 65536)
        (mapping,) = dataset.RealWorldValueMappingSequence
        assert (mapping.RealWorldValueFirstValueMapped, mapping.RealWorldValueLastValueMapped) == (0, DICOM_SCALE)
        assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "1"
        assert mapping.RealWorldValueSlope == pytest.approx(1 / DICOM_SCALE) and mapping.RealWorldValueIntercept == 0
    real = stored * written[0].RealWorldValueMappingSequence[0].RealWorldValueSlope
    np.testing.assert_allclose(real, fused, atol=0.5 / DICOM_SCALE + 1e-7)


def test_identifiers_texts_geometry_and_references(tmp_path, ct_and_mr):
    ct, mr = ct_and_mr
    ct.header[0].add_new(0x00091010, "LO", "a private note that must not be copied")
    _, written = fused_series(tmp_path, ct, ct_and_mr)
    source_instances = {s.SOPInstanceUID for s in ct.header + mr.header}
    assert len({d.SeriesInstanceUID for d in written}) == 1
    assert written[0].SeriesInstanceUID not in {ct.header[0].SeriesInstanceUID, mr.header[0].SeriesInstanceUID}
    new_instances = {d.SOPInstanceUID for d in written}
    assert len(new_instances) == len(written) and not new_instances & source_instances
    for k, (new, old) in enumerate(zip(written, ct.header)):
        assert new.SOPClassUID == old.SOPClassUID and new.InstanceNumber == k + 1
        assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
        assert new.SeriesNumber == old.SeriesNumber + SERIES_NUMBER_OFFSET
        assert new.SeriesDescription == "medfuse fusion (rule sfnn-pyramid): A pct; B win"
        assert list(new.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
        assert new.DerivationDescription == "medfuse fuse, rule sfnn-pyramid, output in [0, 1]"
        for keyword in (
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "SliceThickness",
            "FrameOfReferenceUID",
            "StudyInstanceUID",
            "PatientID",
        ):
            assert new[keyword].value == old[keyword].value, keyword
        assert [(item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID) for item in new.SourceImageSequence] == [
            (old.SOPClassUID, old.SOPInstanceUID),
            (mr.header[k].SOPClassUID, mr.header[k].SOPInstanceUID),
        ]
        assert new.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
        assert 0x00091010 not in new
    (own_series,) = written[2].ReferencedSeriesSequence
    assert own_series.SeriesInstanceUID == ct.header[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in own_series.ReferencedInstanceSequence] == [ct.header[2].SOPInstanceUID]
    (other_study,) = written[2].StudiesContainingOtherReferencedInstancesSequence
    assert other_study.StudyInstanceUID == mr.header[0].StudyInstanceUID
    (other_series,) = other_study.ReferencedSeriesSequence
    assert other_series.SeriesInstanceUID == mr.header[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in other_series.ReferencedInstanceSequence] == [
        mr.header[2].SOPInstanceUID
    ]


def test_a_resampled_source_is_referenced_whole_and_not_as_a_source_slice(tmp_path, ct_and_mr):
    ct, _ = ct_and_mr
    other_grid = read_volume(write_dicom_series(tmp_path / "shifted", ct_hu(), origin=(90.0, -50.0, 20.0)))
    _, written = fused_series(tmp_path, ct, (ct, other_grid))
    assert [item.ReferencedSOPInstanceUID for item in written[2].SourceImageSequence] == [ct.header[2].SOPInstanceUID]
    (other_study,) = written[2].StudiesContainingOtherReferencedInstancesSequence
    instances = other_study.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert {i.ReferencedSOPInstanceUID for i in instances} == {s.SOPInstanceUID for s in other_grid.header}


def test_simpleitk_and_medfuse_read_back_the_geometry_and_values(tmp_path, ct_and_mr):
    sitk = pytest.importorskip("SimpleITK")
    ct, mr = ct_and_mr
    fused, written = fused_series(tmp_path, mr, ct_and_mr)
    stored = np.round(fused * DICOM_SCALE)

    def series(folder):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        return reader.Execute()

    source, back = series(mr.path), series(tmp_path / "fused")
    np.testing.assert_allclose(back.GetSpacing(), (0.9, 0.8, 2.5), atol=1e-6)
    for name in ("GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(back, name)(), getattr(source, name)(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back).transpose(2, 1, 0), stored)
    medfuse_back = read_volume(tmp_path / "fused")  # through the real-world value mapping: the fused values
    np.testing.assert_allclose(medfuse_back.volume.geometry.affine, mr.volume.geometry.affine, atol=1e-6)
    np.testing.assert_allclose(medfuse_back.volume.data, stored / DICOM_SCALE, atol=1e-7)


@pytest.mark.parametrize("reference_index", [0, 1], ids=["CT", "MR"])
def test_hounsfield_units_are_the_modality_lut_of_a_ct_and_the_real_world_values_of_an_mr(
    tmp_path, ct_and_mr, reference_index
):
    reference = ct_and_mr[reference_index]
    hu = ct_hu()
    out = write_volume(
        tmp_path / "hu",
        hu,
        reference,
        "medfuse register",
        "",
        (-1000.0, 1000.0),
        sources=(ct_and_mr[0],),
        hounsfield=True,
    )
    dataset = pydicom.dcmread(sorted(out.iterdir())[0])
    mapping = dataset.RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "[hnsf'U]"
    real = dataset.pixel_array * mapping.RealWorldValueSlope + mapping.RealWorldValueIntercept
    np.testing.assert_allclose(real, hu[:, :, 0].T, atol=1000 / DICOM_SCALE + 1e-6)
    if reference_index == 0:
        assert dataset.RescaleType == "HU" and dataset.RescaleSlope == pytest.approx(2000 / DICOM_SCALE)
        np.testing.assert_allclose(read_volume(out).volume.data, hu, atol=1000 / DICOM_SCALE + 1e-4)
    else:
        assert (dataset.RescaleSlope, dataset.RescaleType) == (1, "US")
        np.testing.assert_allclose(read_volume(out).volume.data, hu, atol=1000 / DICOM_SCALE + 1e-4)


def test_references_name_the_frame_of_a_multi_frame_source(tmp_path, ct_and_mr):
    hd = pytest.importorskip("highdicom")
    ct, mr = ct_and_mr
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        [pydicom.dcmread(path) for path in sorted(mr.path.iterdir())], hd.UID(), 7, hd.UID(), 1
    )
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "mr.dcm")
    source = read_volume(tmp_path / "enhanced" / "mr.dcm")
    _, written = fused_series(tmp_path, ct, (ct, source))
    for k, dataset in enumerate(written):
        item = dataset.SourceImageSequence[1]
        assert item.ReferencedSOPInstanceUID == enhanced.SOPInstanceUID
        assert item.ReferencedFrameNumber == source.frames[k]
    with pytest.raises(VolumeFileError, match="is a multi-frame image; write NIfTI"):
        write_volume(tmp_path / "on_enhanced", phantom(), source)
    assert not (tmp_path / "on_enhanced").exists()


def test_a_reference_of_another_sop_class_is_refused_in_one_line(tmp_path, ct_and_mr):
    ct, _ = ct_and_mr
    for dataset in ct.header:
        dataset.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    with pytest.raises(VolumeFileError, match="is Secondary Capture Image Storage; write NIfTI") as caught:
        write_volume(tmp_path / "fused", phantom(), ct)
    assert "\n" not in str(caught.value) and not (tmp_path / "fused").exists()


def test_medfuse_fuse_references_both_dicom_sources(tmp_path, capsys, ct_and_mr, tiny_weights):
    ct, mr = ct_and_mr
    code = main(
        [
            "fuse",
            str(ct.path),
            str(mr.path),
            "-o",
            str(tmp_path / "out"),
            "--weights",
            str(tiny_weights),
            "--rule",
            "average",
            "--window",
            "brain",
            "--window-on",
            "a",
        ]
    )
    assert code == 0, capsys.readouterr().err
    first = pydicom.dcmread(sorted((tmp_path / "out").iterdir())[0])
    assert first.SeriesDescription.startswith("medfuse fusion (rule average): A win brain")
    assert [item.ReferencedSOPInstanceUID for item in first.SourceImageSequence] == [
        ct.header[0].SOPInstanceUID,
        mr.header[0].SOPInstanceUID,
    ]


def test_medfuse_register_writes_hounsfield_units_for_a_ct(tmp_path, capsys):
    hu = ct_hu()
    fixed = write_dicom_series(tmp_path / "ct", hu)
    moving = write_dicom_series(tmp_path / "ct_moved", np.roll(hu, 1, axis=0), origin=(100.8, -50.0, 20.0))
    code = main(["register", str(fixed), str(moving), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    first = pydicom.dcmread(sorted((tmp_path / "out").iterdir())[0])
    assert first.RescaleType == "HU" and first.SeriesDescription.startswith("medfuse register rigid")
    assert "SourceImageSequence" not in first  # the moving series is resampled: referenced by series only
    assert (
        first.StudiesContainingOtherReferencedInstancesSequence[0].ReferencedSeriesSequence[0].SeriesInstanceUID
        == read_volume(moving).header[0].SeriesInstanceUID
    )


def test_medfuse_register_will_not_label_an_mr_as_the_fixed_ct(tmp_path, capsys):
    fixed = write_dicom_series(tmp_path / "ct", ct_hu())
    moving = write_dicom_series(
        tmp_path / "mr", np.roll(ct_hu(), 1, axis=0) + 1024, modality="MR", slope=1.0, intercept=0.0
    )
    code = main(["register", str(fixed), str(moving), "-o", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert code == 2 and "would label the registered MR image CT; write NIfTI" in stderr
    assert not (tmp_path / "out").exists()
    assert main(["register", str(fixed), str(moving), "-o", str(tmp_path / "out.nii.gz")]) == 0


def test_a_scanner_mr_slice_and_its_jpeg_ls_copy_give_a_valid_derived_mr(tmp_path):
    """pydicom's bundled MR_small.dcm (a scanner's file) and its JPEG-LS copy, as in the README's example."""
    from pydicom.data import get_testdata_file

    plain, compressed = (
        read_volume(get_testdata_file(name)) for name in ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm")
    )
    np.testing.assert_array_equal(compressed.volume.data, plain.volume.data)
    out = write_volume(
        tmp_path / "fused_mr",
        plain.volume.data / plain.volume.data.max(),
        plain,
        "medfuse fusion (rule max)",
        "",
        sources=(plain, compressed),
    )
    (written,) = [pydicom.dcmread(path) for path in sorted(out.iterdir())]
    assert len(written.SourceImageSequence) == 2 and written.Manufacturer == plain.header[0].Manufacturer
    assert written.SeriesNumber == plain.header[0].SeriesNumber + SERIES_NUMBER_OFFSET
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy (Debian's dicom3tools) is not installed; .ci/run installs it")
    result = subprocess.run([dciodvfy, str(written.filename)], capture_output=True, text=True, check=False)
    assert [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")] == []


def test_a_reference_without_its_uids_is_refused_before_the_work(tmp_path, capsys):
    ct = write_dicom_series(tmp_path / "ct", ct_hu())
    for path in ct.iterdir():
        dataset = pydicom.dcmread(path)
        del dataset.StudyInstanceUID
        dataset.save_as(path)
    reference = read_volume(ct)
    with pytest.raises(VolumeFileError, match="lacks one of SOPClassUID, SOPInstanceUID, SeriesInstanceUID"):
        write_volume(tmp_path / "out", reference.volume.data, reference)
    code = main(["fuse", str(ct), str(ct), "-o", str(tmp_path / "fused"), "--rule", "average"])
    assert code == 2 and "write NIfTI instead" in capsys.readouterr().err and not (tmp_path / "fused").exists()


def test_a_dicom_series_named_like_nifti_on_a_nifti_reference_is_one_error(tmp_path):
    from volume_data import oblique_affine, write_nifti

    from medfuse.io.volumes import read_nifti
    from medfuse.io.volumes import write_dicom_series as write_series

    nifti = read_nifti(write_nifti(tmp_path / "a.nii.gz", phantom(), oblique_affine()))
    with pytest.raises(VolumeFileError, match="a DICOM series is written only when the reference input is DICOM"):
        write_series(tmp_path / "x.nii", nifti.volume.data, nifti)


def test_a_fusion_of_a_lossy_source_is_marked_lossy(tmp_path, ct_and_mr):
    ct, mr = ct_and_mr
    for path in mr.path.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.LossyImageCompression = "01"
        dataset.save_as(path)
    lossy_mr = read_volume(mr.path)
    out = write_volume(tmp_path / "fused", np.zeros(ct.volume.shape), ct, sources=(ct, lossy_mr))
    assert {pydicom.dcmread(path).LossyImageCompression for path in out.iterdir()} == {"01"}
    plain = write_volume(tmp_path / "plain", np.zeros(ct.volume.shape), ct, sources=(ct,))
    assert all(pydicom.dcmread(path).get("LossyImageCompression") != "01" for path in plain.iterdir())
