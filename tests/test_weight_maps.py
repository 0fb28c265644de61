"""Weight maps (A's weight at every pixel) and each source's share of the fused foreground (issue 22)."""

import nibabel as nib
import numpy as np
import pytest
import torch
from volume_data import oblique_affine, phantom, write_nifti

import medfuse
from medfuse._shared.errors import InputError
from medfuse.cli import main
from medfuse.clinical.pipeline import FusedFiles
from medfuse.dran.rules import get_rule
from medfuse.evaluation.metrics.fidelity import FOREGROUND_LEVEL, weight_shares
from medfuse.fusion.engine import fuse_with_weights, weight_map
from medfuse.io.images import load_image


def pair(seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 1.0, (size, size))
    b = rng.uniform(0.2, 1.0, (size, size))
    a[:, : size // 4] = 0.0  # background of both on the left
    b[:, : size // 4] = 0.0
    return a, b


@pytest.mark.parametrize("rule", ["sfnn-map", "sfnn-map-e4"])
def test_the_weight_map_is_the_blend_the_source_weighting_rules_make(tiny_model, rule):
    a, b = pair()
    fused, w_a = fuse_with_weights(a, b, rule, model=tiny_model)
    assert w_a.shape == a.shape and 0 <= w_a.min() and w_a.max() <= 1 and w_a.std() > 0
    np.testing.assert_allclose(fused, w_a * a + (1 - w_a) * b, atol=1e-6)
    np.testing.assert_allclose(weight_map(a, b, rule, model=tiny_model), w_a)


def test_the_pyramid_rules_map_is_the_activity_weight_of_its_features(tiny_model):
    a, b = pair(1)
    tensors = [torch.from_numpy(x).float()[None, None] for x in (a, b)]
    expected = get_rule("sfnn-pyramid").weights(*(tiny_model.encode(t) for t in tensors))[0, 0]
    np.testing.assert_allclose(weight_map(a, b, "sfnn-pyramid", model=tiny_model), expected.numpy(), atol=1e-6)
    assert np.array_equal(
        fuse_with_weights(a, b, "sfnn-pyramid", model=tiny_model)[0],
        medfuse.fuse(a, b, "sfnn-pyramid", model=tiny_model),
    )


def test_a_feature_rule_has_no_weight_map_and_says_which_do(tiny_model):
    a, b = pair()
    assert fuse_with_weights(a, b, "sfnn", model=tiny_model)[1] is None
    with pytest.raises(
        InputError,
        match="rule 'sfnn' mixes the network's features.*rules with one: pyramid-energy, "
        "sfnn-map, sfnn-map-e4, sfnn-pyramid, trained-pyramid",
    ):
        weight_map(a, b, "sfnn", model=tiny_model)


def test_weight_shares_average_the_map_over_the_foreground_only():
    a, b = pair()
    w_a = np.full(a.shape, 0.3)
    w_a[:, :8] = 1.0  # the background's weight does not count
    assert weight_shares(w_a, a, b) == pytest.approx((0.3, 0.7))
    empty = np.zeros_like(a)
    assert weight_shares(w_a, empty, empty) == pytest.approx((w_a.mean(), 1 - w_a.mean()))  # no foreground: all
    assert FOREGROUND_LEVEL == 0.05
    with pytest.raises(InputError, match="weight map and sources"):
        weight_shares(w_a[:4], a, b)


def test_a_source_below_a_fifth_is_warned_about():
    assert FusedFiles("f.png", "image", shares=(0.25, 0.75)).warnings == []
    warnings = FusedFiles("f.png", "image", shares=(0.09, 0.91)).warnings
    assert len(warnings) == 1 and warnings[0].startswith("A keeps only 9% of the fused foreground")


def test_cli_writes_the_weight_map_and_prints_the_shares(tmp_path, capsys, samples, tiny_weights):
    mri, ct = samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"
    code = main(
        [
            "fuse",
            str(mri),
            str(ct),
            "-o",
            str(tmp_path / "f.png"),
            "--weights",
            str(tiny_weights),
            "--rule",
            "sfnn-map",
            "--weight-map",
            str(tmp_path / "w.png"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    written = load_image(tmp_path / "w.png")
    assert written.dtype == np.uint16 and written.shape == load_image(mri).shape
    share = float(out.split("A ")[1].split("%")[0]) / 100
    grey = [load_image(path) / 255.0 for path in (mri, ct)]
    assert weight_shares(written / 65535.0, *grey)[0] == pytest.approx(share, abs=0.006)
    assert "share of the fused foreground (weight map)" in out and "weight map of A written to" in out
    # a pyramid rule's map weighs the base alone (both sources' details are added): its shares come from the fit
    code = main(
        [
            "fuse",
            str(mri),
            str(ct),
            "-o",
            str(tmp_path / "p.png"),
            "--weights",
            str(tiny_weights),
            "--weight-map",
            str(tmp_path / "pw.png"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "share of the fused foreground (least-squares fit)" in out and (tmp_path / "pw.png").is_file()


def test_cli_refuses_a_weight_map_it_cannot_give_before_any_work(tmp_path, capsys, samples, tiny_weights):
    mri, ct = samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"
    cases = [
        (["--weight-map", str(tmp_path / "w.nii.gz")], "use a name ending in .png or .tif or .tiff"),
        (["--weight-map", str(tmp_path / "w.png"), "--rule", "sfnn"], "has no weight map"),
        (["--weight-map", str(mri)], "is one of the inputs"),
        (["--weight-map", str(tmp_path / "missing" / "w.png")], "does not exist"),
    ]
    for extra, message in cases:
        code = main(["fuse", str(mri), str(ct), "-o", str(tmp_path / "f.png"), "--weights", str(tiny_weights), *extra])
        assert code == 2 and message in capsys.readouterr().err
        assert sorted(path.name for path in tmp_path.iterdir()) == []
    code = main(
        [
            "fuse",
            str(mri),
            str(ct),
            "-o",
            str(tmp_path / "f.png"),
            "--weights",
            str(tiny_weights),
            "--weight-map",
            str(tmp_path / "w.png"),
            "--register",
            "rigid",
            "--check-image",
            str(tmp_path / "w.png"),
        ]
    )
    assert code == 2 and f"check image {tmp_path / 'w.png'} is also the weight map" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    folders = samples / "CT-MRI"
    code = main(
        [
            "fuse",
            str(folders / "MRI"),
            str(folders / "CT"),
            "-o",
            str(tmp_path / "out"),
            "--weight-map",
            str(tmp_path / "w.png"),
        ]
    )
    assert code == 2 and "--weight-map: for one pair of images or two volumes" in capsys.readouterr().err


def test_a_volume_pair_gives_a_nifti_weight_map_on_the_fusions_grid(tmp_path, capsys, tiny_weights):
    affine = oblique_affine()
    a = write_nifti(tmp_path / "a.nii.gz", phantom((12, 10, 4)) * 100, affine)
    b = write_nifti(tmp_path / "b.nii.gz", phantom((12, 10, 4), inner=0.3, outer=1.0) * 50, affine)
    code = main(
        [
            "fuse",
            str(a),
            str(b),
            "-o",
            str(tmp_path / "f.nii.gz"),
            "--weights",
            str(tiny_weights),
            "--rule",
            "sfnn-map",
            "--weight-map",
            str(tmp_path / "w.nii.gz"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "share of the fused foreground (weight map)" in out
    written = nib.load(tmp_path / "w.nii.gz")
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    data = written.get_fdata()
    assert data.shape == (12, 10, 4) and 0 <= data.min() and data.max() <= 1 and data.std() > 0
    code = main(
        [
            "fuse",
            str(a),
            str(b),
            "-o",
            str(tmp_path / "g.nii.gz"),
            "--weights",
            str(tiny_weights),
            "--weight-map",
            str(tmp_path / "w.png"),
        ]
    )
    assert code == 2 and "use a name ending in .nii or .nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "g.nii.gz").exists()
