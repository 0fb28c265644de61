"""A PET or SPECT volume fused with an MRI as a colour overlay: RGB NIfTI through a named colour map (issue 22)."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from volume_data import oblique_affine, phantom, write_nifti

from medfuse._shared.errors import InputError
from medfuse.cli import main
from medfuse.image.colour import colour_overlay, hot, luminance


def test_hot_runs_from_black_through_red_and_yellow_to_white():
    np.testing.assert_allclose(
        hot(np.array([0.0, 1 / 3, 2 / 3, 1.0])), [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], atol=1e-12
    )


def test_the_overlay_keeps_the_fusions_brightness_and_colours_only_where_the_source_is_high():
    fused = np.array([0.2, 0.5, 0.5, 0.8])
    source = np.array([0.0, 0.0, 0.6, 0.6])
    rgb = colour_overlay(fused, source)
    np.testing.assert_allclose(rgb[:2], [[0.2] * 3, [0.5] * 3], atol=1e-12)  # no uptake: grey, as the fusion
    assert rgb[2, 0] > rgb[2, 1] > rgb[2, 2]  # uptake 0.6: the hot map's orange
    np.testing.assert_allclose(luminance(rgb[2:]), fused[2:], atol=0.02)  # brightness kept (to clipping)
    with pytest.raises(InputError, match="colour map 'jet'"):
        colour_overlay(fused, source, "jet")
    with pytest.raises(InputError, match="differ in shape"):
        colour_overlay(fused, source[:2])


def test_cli_writes_an_rgb_nifti_that_nibabel_and_simpleitk_read_on_the_fusions_grid(tmp_path, capsys, tiny_weights):
    affine = oblique_affine()
    mri = write_nifti(tmp_path / "mri.nii.gz", phantom((12, 10, 4)) * 100, affine)
    pet = write_nifti(tmp_path / "pet.nii.gz", phantom((12, 10, 4), inner=0.5, outer=1.0) * 50, affine)
    grey, colour = tmp_path / "grey.nii.gz", tmp_path / "colour.nii.gz"
    for out, extra in ((grey, []), (colour, ["--colour-map", "hot"])):
        assert main(["fuse", str(mri), str(pet), "-o", str(out), "--weights", str(tiny_weights), *extra]) == 0
    written = nib.load(colour)
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    data = np.asanyarray(written.dataobj)
    rgb = np.stack([data["R"], data["G"], data["B"]], axis=-1).astype(float) / 255
    fused = nib.load(grey).get_fdata()
    error = np.abs(luminance(rgb) - fused)  # the grey fusion's brightness (less where bright colour clips)
    assert np.median(error) < 0.01 and error.max() < 0.1
    uptake = phantom((12, 10, 4), inner=0.5, outer=1.0)
    warmth = rgb[..., 0] - rgb[..., 2]  # half the maximum uptake: the hot map's orange; none: grey
    assert warmth[uptake == 0.5].mean() > 0.1 and np.abs(warmth[uptake == 0]).max() < 0.02
    image = sitk.ReadImage(str(colour))
    assert image.GetNumberOfComponentsPerPixel() == 3 and image.GetSize() == (12, 10, 4)
    np.testing.assert_allclose(image.GetSpacing(), (0.9, 1.1, 2.5), atol=1e-5)
    capsys.readouterr()
    code = main(["fuse", str(colour), str(pet), "-o", str(tmp_path / "y.nii"), "--weights", str(tiny_weights)])
    assert code == 2 and "an RGB colour volume; medfuse reads grey volumes" in capsys.readouterr().err
    code = main(
        ["fuse", str(mri), str(pet), "-o", str(tmp_path / "x"), "--weights", str(tiny_weights), "--colour-map", "hot"]
    )
    assert code == 2 and "written as RGB NIfTI" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_colour_overlay_is_planned_with_the_fusion(tmp_path, capsys, tiny_weights, monkeypatch):
    from medfuse.fusion import memory
    from medfuse.fusion.memory import MEMORY_SHARE, VOLUME_BYTES_PER_VOXEL, fusion_memory

    shape = (12, 10, 4)
    mri = write_nifti(tmp_path / "mri.nii.gz", phantom(shape) * 100, oblique_affine())
    pet = write_nifti(tmp_path / "pet.nii.gz", phantom(shape, inner=0.5, outer=1.0) * 50, oblique_affine())
    voxels = int(np.prod(shape))
    grey_needs = fusion_memory(10, 12) + voxels * (VOLUME_BYTES_PER_VOXEL + 4)  # with the weight map
    monkeypatch.setattr(memory, "free_memory", lambda device: (grey_needs + 40 * voxels) / MEMORY_SHARE)
    assert main(["fuse", str(mri), str(pet), "-o", str(tmp_path / "grey.nii.gz"), "--weights", str(tiny_weights)]) == 0
    capsys.readouterr()
    code = main(
        [
            "fuse",
            str(mri),
            str(pet),
            "-o",
            str(tmp_path / "colour.nii.gz"),
            "--weights",
            str(tiny_weights),
            "--colour-map",
            "hot",
        ]
    )
    stderr = capsys.readouterr().err
    assert code == 2 and "for the volume's arrays needs" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "colour.nii.gz").exists()
