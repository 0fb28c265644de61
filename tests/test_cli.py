import shutil

import numpy as np
import pytest

from medfuse.cli import main
from medfuse.io.images import load_image, save_image


@pytest.fixture
def pair(samples):
    return samples / "PET-MRI" / "MRI" / "25015.png", samples / "PET-MRI" / "PET" / "25015.png"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_fuse_bundled_pair(tmp_path, capsys, pair, tiny_weights):
    out = tmp_path / "fused.png"
    code, stdout, _ = run_cli(capsys, "fuse", *pair, "-o", out, "--weights", tiny_weights)
    assert code == 0 and str(out) in stdout
    fused = load_image(out)
    assert fused.shape == (256, 256, 3) and fused.dtype == np.uint8


def test_fuse_with_shipped_weights(tmp_path, capsys, samples):
    out = tmp_path / "fused.tif"
    code, _, _ = run_cli(
        capsys, "fuse", samples / "CT-MRI/MRI/41010.png", samples / "CT-MRI/CT/41010.png", "-o", out, "--rule", "sfnn"
    )
    assert code == 0
    fused = load_image(out)
    assert fused.shape == (256, 256) and fused.dtype == np.uint8
    assert fused.std() > 10  # a real image, not a constant


def test_sixteen_bit_in_gives_sixteen_bit_out(tmp_path, capsys, pair, tiny_weights):
    mri = load_image(pair[0]).astype(np.uint16) * 257
    save_image(tmp_path / "mri16.png", mri)
    out = tmp_path / "fused16.tif"
    code, _, _ = run_cli(capsys, "fuse", tmp_path / "mri16.png", pair[1], "-o", out, "--weights", tiny_weights)
    assert code == 0 and load_image(out).dtype == np.uint16


def test_folder_mode(tmp_path, capsys, samples, tiny_weights):
    folder_a, folder_b = samples / "PET-MRI" / "MRI", tmp_path / "pet"
    shutil.copytree(samples / "PET-MRI" / "PET", folder_b)
    (folder_b / "99999.png").write_bytes((folder_b / "25015.png").read_bytes())
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "fuse", folder_a, folder_b, "-o", out, "--weights", tiny_weights)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["25015.png", "25022.png"]
    assert "99999.png has no partner" in stderr and "fused 2 of 2 pairs" in stdout


def bad_cases(tmp_path, pair):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    small = tmp_path / "small.png"
    save_image(small, np.zeros((100, 120), np.uint8))
    return {
        "missing file": ([tmp_path / "missing.png", pair[1]], "no such file"),
        "unreadable file": ([tmp_path / "broken.png", pair[1]], "not a readable image"),
        "different sizes": ([small, pair[1]], "differ in size"),
        "unknown rule": ([*pair, "--rule", "median"], "unknown fusion rule 'median'"),
    }


@pytest.mark.parametrize("case", ["missing file", "unreadable file", "different sizes", "unknown rule"])
def test_bad_input_one_line_nonzero_no_output(tmp_path, capsys, pair, tiny_weights, case):
    arguments, message = bad_cases(tmp_path, pair)[case]
    out = tmp_path / "fused.png"
    code, _, stderr = run_cli(capsys, "fuse", *arguments, "-o", out, "--weights", tiny_weights)
    assert code != 0
    assert message in stderr and stderr.count("\n") == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_output_equal_to_input_is_refused(tmp_path, capsys, pair, tiny_weights):
    mri = tmp_path / "mri.png"
    shutil.copy(pair[0], mri)
    before = mri.read_bytes()
    code, _, stderr = run_cli(capsys, "fuse", mri, pair[1], "-o", mri, "--weights", tiny_weights)
    assert code != 0 and "is one of the inputs" in stderr and stderr.count("\n") == 1
    assert mri.read_bytes() == before


def test_bad_weights_and_format(tmp_path, capsys, pair):
    code, _, stderr = run_cli(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "--weights", tmp_path / "none")
    assert code != 0 and "no model" in stderr
    code, _, stderr = run_cli(capsys, "fuse", *pair, "-o", tmp_path / "f.gif")
    assert code != 0 and "unknown output format" in stderr
    assert list(tmp_path.iterdir()) == []


def test_tiny_image_and_folder_output_are_refused(tmp_path, capsys, tiny_weights):
    save_image(tmp_path / "one.png", np.zeros((1, 5), np.uint8))
    code, _, stderr = run_cli(
        capsys, "fuse", tmp_path / "one.png", tmp_path / "one.png", "-o", tmp_path / "f.png", "--weights", tiny_weights
    )
    assert code == 2 and "at least 2 x 2" in stderr and not (tmp_path / "f.png").exists()
    code, _, stderr = run_cli(capsys, "fuse", tmp_path / "one.png", tmp_path / "one.png", "-o", tmp_path)
    assert code == 2 and "is a folder" in stderr


def test_help_lists_rules(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fuse", "--help"])
    assert exit_info.value.code == 0
    assert "sfnn-channel" in capsys.readouterr().out


def test_folder_mode_writes_sixteen_bit_colour_as_tiff(tmp_path, capsys, samples, tiny_weights):
    mri, pet = tmp_path / "mri", samples / "PET-MRI" / "PET"
    mri.mkdir()
    save_image(mri / "25015.png", load_image(samples / "PET-MRI/MRI/25015.png").astype(np.uint16) * 257)
    code, _, _ = run_cli(capsys, "fuse", mri, pet, "-o", tmp_path / "out", "--weights", tiny_weights)
    assert code == 0
    written = load_image(tmp_path / "out" / "25015.tif")
    assert written.dtype == np.uint16 and written.shape == (256, 256, 3)


def test_folder_mode_in_batches_writes_what_one_by_one_writes(tmp_path, capsys, samples, tiny_weights):
    folder_a, folder_b = samples / "PET-MRI" / "MRI", samples / "PET-MRI" / "PET"
    for batch in ("1", "2"):
        code, _, _ = run_cli(
            capsys, "fuse", folder_a, folder_b, "-o", tmp_path / batch, "--weights", tiny_weights, "--batch-size", batch
        )
        assert code == 0
    for name in ("25015.png", "25022.png"):  # a batch's float32 sums may round a pixel the other way
        one, two = (load_image(tmp_path / batch / name).astype(int) for batch in ("1", "2"))
        assert np.abs(one - two).max() <= 1 and (one != two).mean() < 1e-3


def test_batch_size_is_refused_for_one_pair_and_below_one(tmp_path, capsys, pair, samples):
    code, _, stderr = run_cli(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "--batch-size", "4")
    assert code == 2 and "only for two folders or two volumes" in stderr
    code, _, stderr = run_cli(
        capsys,
        "fuse",
        samples / "PET-MRI" / "MRI",
        samples / "PET-MRI" / "PET",
        "-o",
        tmp_path / "out",
        "--batch-size",
        "0",
    )
    assert code == 2 and "at least 1" in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["pair", "folders"])
def test_work_too_large_for_memory_is_one_line_and_writes_nothing(
    monkeypatch, tmp_path, capsys, pair, tiny_weights, mode
):
    from medfuse.fusion import memory

    monkeypatch.setattr(memory, "free_memory", lambda device: 100 * 2**20)
    inputs = pair if mode == "pair" else (pair[0].parent, pair[1].parent)
    out = tmp_path / ("fused.png" if mode == "pair" else "out")
    code, _, stderr = run_cli(capsys, "fuse", *inputs, "-o", out, "--weights", tiny_weights)
    assert code == 2 and stderr.count("\n") == 1
    assert "256 x 256 pixels needs about 384 MB on cpu, but only 100 MB is free" in stderr
    assert not out.exists() or list(out.iterdir()) == []
