import nibabel as nib
import numpy as np
import pytest
from volume_data import ct_hu, oblique_affine, phantom, write_dicom_series, write_nifti

from medfuse.cli import main
from medfuse.clinical.intensity import CtWindow, normalise
from medfuse.dran import DEFAULT_RULE
from medfuse.fusion.volumes import fuse_volumes
from medfuse.io.volumes import read_volume


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def nifti_pair(tmp_path):
    affine = oblique_affine()
    mr = write_nifti(tmp_path / "mr.nii.gz", phantom() * 800 + 10, affine)
    pet = write_nifti(tmp_path / "pet.nii", phantom(inner=0.1, outer=1.0, shift=0.2) * 5, affine)
    return mr, pet


def test_fuse_two_nifti_volumes(tmp_path, capsys, nifti_pair, tiny_weights, tiny_model):
    out = tmp_path / "fused.nii.gz"
    code, stdout, _ = run_cli(
        capsys, "fuse", *nifti_pair, "-o", out, "--weights", tiny_weights, "--rule", "average", "--batch-size", "4"
    )
    assert code == 0 and str(out) in stdout
    image = nib.load(out)
    reference = read_volume(nifti_pair[0])
    np.testing.assert_allclose(image.affine, reference.volume.geometry.affine, atol=1e-6)
    assert image.get_data_dtype() == np.float32 and image.shape == reference.volume.shape
    unit_a, _ = normalise(reference.volume.data)
    unit_b, _ = normalise(read_volume(nifti_pair[1]).volume.data)
    np.testing.assert_allclose(image.get_fdata(), fuse_volumes(tiny_model, unit_a, unit_b, "average"), atol=1e-6)
    assert image.header["descrip"].item() == b"medfuse fusion (rule average): A pct 0.5-99.5; B pct 0.5-99.5"
    assert b"A mr.nii.gz: percentiles 0.5-99.5 (" in image.header.extensions[0].get_content()


def test_fuse_dicom_ct_with_nifti_mr_writes_a_dicom_series(tmp_path, capsys, tiny_weights, tiny_model):
    ct_folder = write_dicom_series(tmp_path / "ct", ct_hu(), spacing=(0.8, 0.9), thickness=2.5)
    ct = read_volume(ct_folder)
    mr = write_nifti(tmp_path / "mr.nii", phantom(inner=0.3, outer=0.8) * 500, ct.volume.geometry.affine)
    out = tmp_path / "fused"
    code, _, _ = run_cli(
        capsys,
        "fuse",
        ct_folder,
        mr,
        "-o",
        out,
        "--weights",
        tiny_weights,
        "--window",
        "brain",
        "--window-on",
        "a",
        "--percentiles",
        "1",
        "99",
    )
    assert code == 0
    fused = read_volume(out)
    for new, old in zip(fused.header, ct.header):
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
            assert new[keyword].value == old[keyword].value
    assert "A ct: window brain L40 W80 HU" in fused.header[0].ImageComments
    assert "B mr.nii: percentiles 1-99" in fused.header[0].ImageComments
    unit_a, _ = normalise(ct.volume.data, CtWindow.named("brain"))
    unit_b, _ = normalise(read_volume(mr).volume.data, percentiles=(1, 99))
    expected = fuse_volumes(tiny_model, unit_a, unit_b, DEFAULT_RULE)
    np.testing.assert_allclose(fused.volume.data, expected, atol=1e-4)


def test_resample_to_a_puts_b_on_a_grid(tmp_path, capsys, tiny_weights):
    a = write_nifti(tmp_path / "a.nii", phantom(), oblique_affine())
    b = write_nifti(tmp_path / "b.nii", phantom((20, 20, 4)), oblique_affine(spacing=(1.5, 1.5, 3.5)))
    out = tmp_path / "fused.nii"
    code, _, stderr = run_cli(capsys, "fuse", a, b, "-o", out, "--weights", tiny_weights)
    assert code == 2 and "shape 32x28x6 vs 20x20x4; spacing" in stderr and "--resample-to A" in stderr
    assert not out.exists()
    code, _, _ = run_cli(capsys, "fuse", a, b, "-o", out, "--weights", tiny_weights, "--resample-to", "A")
    assert code == 0
    np.testing.assert_allclose(nib.load(out).affine, read_volume(a).volume.geometry.affine, atol=1e-6)
    assert b"resampled" in nib.load(out).header["descrip"].item()


def bad_volume_cases(tmp_path):
    affine = oblique_affine()
    a = write_nifti(tmp_path / "a.nii", phantom(), affine)
    return {
        "origin differs": (
            [a, write_nifti(tmp_path / "b1.nii", phantom(), oblique_affine(origin=(0, 0, 0)))],
            "different grids: origin (",
        ),
        "orientation differs": (
            [a, write_nifti(tmp_path / "b2.nii", phantom(), oblique_affine(angle=0.5))],
            "different grids: orientation",
        ),
        "4-D NIfTI": ([a, write_nifti(tmp_path / "b3.nii", np.ones((32, 28, 6, 2)), affine)], "4-D NIfTI"),
        "missing slice": ([write_dicom_series(tmp_path / "ct", ct_hu(), skip=(2,)), a], "a missing slice?"),
        "bad window": ([a, a, "--level", "40"], "needs both --level and --width"),
    }


@pytest.mark.parametrize("case", ["origin differs", "orientation differs", "4-D NIfTI", "missing slice", "bad window"])
def test_refused_volumes_one_line_no_output(tmp_path, capsys, tiny_weights, case):
    arguments, message = bad_volume_cases(tmp_path)[case]
    before = set(tmp_path.rglob("*"))
    out = tmp_path / "fused.nii.gz"
    code, _, stderr = run_cli(capsys, "fuse", *arguments, "-o", out, "--weights", tiny_weights)
    assert code == 2 and message in stderr and stderr.count("\n") == 1
    assert set(tmp_path.rglob("*")) == before


def test_nifti_reference_cannot_give_dicom_output_and_2d_refuses_volume_options(tmp_path, capsys, samples):
    a = write_nifti(tmp_path / "a.nii", phantom(), np.eye(4))
    code, _, stderr = run_cli(capsys, "fuse", a, a.with_name("a.nii"), "-o", tmp_path / "dicom_out")
    assert code == 2 and "must end in .nii or .nii.gz" in stderr and not (tmp_path / "dicom_out").exists()
    mri, ct = samples / "CT-MRI/MRI/41010.png", samples / "CT-MRI/CT/41010.png"
    code, _, stderr = run_cli(capsys, "fuse", mri, ct, "-o", tmp_path / "f.png", "--window", "brain")
    assert code == 2 and "--window: only for volumes" in stderr
    code, _, stderr = run_cli(capsys, "fuse", mri, a, "-o", tmp_path / "f.nii")
    assert code == 2 and "41010.png: not a volume" in stderr


def test_slices_too_small_are_refused(tmp_path, capsys, tiny_weights):
    thin = write_nifti(tmp_path / "thin.nii", np.ones((1, 8, 3)), np.eye(4))
    code, _, stderr = run_cli(capsys, "fuse", thin, thin, "-o", tmp_path / "f.nii", "--weights", tiny_weights)
    assert code == 2 and "slices of 1 x 8 voxels" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "f.nii").exists()


def test_volume_too_large_for_memory_is_refused_before_the_work(
    monkeypatch, tmp_path, capsys, nifti_pair, tiny_weights
):
    from medfuse.fusion import memory

    monkeypatch.setattr(memory, "free_memory", lambda device: 2**20)
    out = tmp_path / "fused.nii.gz"
    code, _, stderr = run_cli(capsys, "fuse", *nifti_pair, "-o", out, "--weights", tiny_weights, "--batch-size", "4")
    assert code == 2 and stderr.count("\n") == 1
    assert "fusing 4 pairs of" in stderr and "try a smaller --batch-size" in stderr
    assert "fusing" not in capsys.readouterr().err and not out.exists()


def test_a_ct_window_on_values_that_are_not_hounsfield_units_is_refused_unless_forced(
    tmp_path, capsys, nifti_pair, tiny_weights
):
    eight_bit = write_nifti(tmp_path / "ct8.nii", phantom() * 255, oblique_affine())
    arguments = [
        "fuse",
        nifti_pair[0],
        eight_bit,
        "-o",
        tmp_path / "f.nii",
        "--weights",
        tiny_weights,
        "--window",
        "brain",
    ]
    code, _, stderr = run_cli(capsys, *arguments)
    assert code == 2 and stderr.count("\n") == 1 and not (tmp_path / "f.nii").exists()
    assert "does not look like a CT in Hounsfield units: its values run from 0 to 255" in stderr
    code, _, _ = run_cli(capsys, *arguments, "--force-window")
    assert code == 0 and (tmp_path / "f.nii").is_file()
    mr_series = write_dicom_series(tmp_path / "mr", ct_hu(), modality="MR")
    code, _, stderr = run_cli(
        capsys, "fuse", mr_series, mr_series, "-o", tmp_path / "g.nii", "--weights", tiny_weights, "--window", "brain"
    )
    assert code == 2 and "its DICOM modality is MR, not CT" in stderr
