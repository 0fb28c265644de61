"""The clinical job as a Python user calls it (``medfuse.fuse_files``, ``register_files``, the
batch row engine), the one error base, the settings defined once, and ``--version``."""

import inspect

import numpy as np
import pytest
from volume_data import oblique_affine, phantom, write_nifti

import medfuse
from medfuse._shared import errors
from medfuse.cli import main
from medfuse.clinical.batch import BatchJob, Row, fuse_row, fuse_rows
from medfuse.clinical.pipeline import RegistrationRequest, VolumeOptions, fuse_files
from medfuse.io.images import load_image
from medfuse.io.volumes import read_volume
from medfuse.training.config import DEFAULT_LAMBDA_PERC, TrainConfig


def test_fuse_files_on_two_images_is_what_fuse_gives(samples, tmp_path, tiny_weights, tiny_model):
    mri, pet = samples / "PET-MRI/MRI/25015.png", samples / "PET-MRI/PET/25015.png"
    result = medfuse.fuse_files(mri, pet, tmp_path / "f.png", rule="average", model=tiny_weights)
    assert (result.kind, result.out, result.registration) == ("image", tmp_path / "f.png", None)
    expected = medfuse.fuse(load_image(mri), load_image(pet), rule="average", model=tiny_model)
    np.testing.assert_array_equal(load_image(tmp_path / "f.png"), expected)


def test_fuse_files_on_folders_and_volumes_writes_what_the_command_writes(samples, tmp_path, tiny_weights):
    folders = samples / "CT-MRI/MRI", samples / "CT-MRI/CT"
    result = fuse_files(*folders, tmp_path / "lib", rule="average", model=tiny_weights)
    assert (
        main(
            [
                "fuse",
                *map(str, folders),
                "-o",
                str(tmp_path / "cli"),
                "--rule",
                "average",
                "--weights",
                str(tiny_weights),
            ]
        )
        == 0
    )
    assert (result.kind, result.fused, result.pairs, result.failures) == ("folder", 1, 1, [])
    for path in (tmp_path / "cli").iterdir():
        np.testing.assert_array_equal(load_image(tmp_path / "lib" / path.name), load_image(path))
    mr = write_nifti(tmp_path / "mr.nii", phantom() * 700, oblique_affine())
    ct = write_nifti(tmp_path / "ct.nii", phantom(inner=1.0, outer=0.1) * 1200 - 200, oblique_affine())
    volume = VolumeOptions(window=medfuse.CtWindow.named("brain"))
    result = fuse_files(mr, ct, tmp_path / "lib.nii.gz", rule="average", model=tiny_weights, volume=volume)
    assert (
        main(
            [
                "fuse",
                str(mr),
                str(ct),
                "-o",
                str(tmp_path / "cli.nii.gz"),
                "--rule",
                "average",
                "--weights",
                str(tiny_weights),
                "--window",
                "brain",
            ]
        )
        == 0
    )
    assert result.kind == "volume"
    np.testing.assert_array_equal(
        read_volume(tmp_path / "lib.nii.gz").volume.data, read_volume(tmp_path / "cli.nii.gz").volume.data
    )


def test_fuse_files_refuses_before_writing_anything(samples, tmp_path, tiny_weights):
    mri, ct = samples / "CT-MRI/MRI/41010.png", samples / "CT-MRI/CT/41010.png"
    cases = [
        (dict(path_a=tmp_path / "none.png"), errors.MissingInputError, "no such file"),
        (dict(out=mri), errors.OutputError, "is one of the inputs"),
        (dict(rule="median"), errors.InputError, "unknown fusion rule 'median'"),
        (dict(model=tmp_path / "none.safetensors"), errors.MissingInputError, "no model"),
        (dict(device="bogus"), errors.InputError, "not a torch device"),
        (dict(volume=VolumeOptions()), errors.InputError, "for volumes"),
        (dict(batch_size=2), errors.InputError, "only for two folders or two volumes"),
        (
            dict(register=RegistrationRequest("rigid", save_transform=tmp_path / "t.mat")),
            errors.InputError,
            "ending in .tfm or .txt",
        ),
    ]
    for change, kind, message in cases:
        arguments = {"path_a": mri, "path_b": ct, "out": tmp_path / "f.png", "model": tiny_weights, **change}
        with pytest.raises(kind, match=message):
            fuse_files(arguments.pop("path_a"), arguments.pop("path_b"), arguments.pop("out"), **arguments)
        assert not (tmp_path / "f.png").exists()


def test_register_files_returns_the_registration_and_writes_the_moved_image(samples, tmp_path):
    mri = samples / "CT-MRI/MRI/41010.png"
    registration = medfuse.register_files(mri, mri, tmp_path / "moved.png", RegistrationRequest("rigid"))
    assert abs(registration.transform.rotation_degrees) < 0.1 and registration.doubts == ()
    assert "mutual information" in registration.describe("pixels") and (tmp_path / "moved.png").is_file()


def test_the_batch_row_engine_reports_each_row_without_raising(tmp_path, tiny_weights):
    write_nifti(tmp_path / "mr.nii", phantom() * 700, oblique_affine())
    write_nifti(tmp_path / "ct.nii", phantom(inner=1.0, outer=0.1) * 1200 - 200, oblique_affine())
    (tmp_path / "flat.png").write_bytes(b"")
    job = BatchJob(tmp_path, str(tiny_weights), "cpu", "average", VolumeOptions())
    rows = [
        Row(2, "mr.nii", "ct.nii", "out/f.nii.gz", "brain"),
        Row(3, "mr.nii", "flat.png", "g.nii", ""),
        Row(4, "mr.nii", "missing.nii", "h.nii", ""),
        Row(5, "mr.nii", "ct.nii", "i.nii", "nonsense"),
    ]
    outcomes = dict((row.line, outcome) for row, outcome in fuse_rows(rows, job))
    assert outcomes[2] == ("done", "") and (tmp_path / "out/f.nii.gz").is_file()
    assert outcomes[3][0] == "failed" and "not a volume" in outcomes[3][1]
    assert outcomes[4][0] == "failed" and "no such file" in outcomes[4][1]
    assert outcomes[5][0] == "failed" and "unknown CT window 'nonsense'" in outcomes[5][1]
    assert fuse_row(rows[0], job) == ("skipped", "")
    with pytest.raises(errors.InputError, match="at least 1"):
        BatchJob(tmp_path, str(tiny_weights), "cpu", "average", VolumeOptions(), batch_size=0)


def test_every_library_error_derives_from_one_base_and_its_builtin_kind():
    kinds = [value for value in vars(errors).values() if inspect.isclass(value) and issubclass(value, Exception)]
    assert {kind.__name__ for kind in kinds} >= {
        "MedfuseError",
        "InputError",
        "MissingInputError",
        "OutputError",
        "NotEnoughMemoryError",
        "RegistrationError",
    }
    assert all(issubclass(kind, errors.MedfuseError) for kind in kinds)
    assert issubclass(errors.InputError, ValueError) and issubclass(errors.MissingInputError, FileNotFoundError)
    assert issubclass(errors.OutputError, OSError) and issubclass(errors.NotEnoughMemoryError, MemoryError)
    from medfuse.clinical.grids import GridMismatchError
    from medfuse.io.images import ImageFileError
    from medfuse.io.volumes import VolumeFileError

    assert all(issubclass(kind, errors.InputError) for kind in (GridMismatchError, ImageFileError, VolumeFileError))


def test_the_perceptual_loss_weight_has_one_default_for_python_and_the_command_line():
    assert TrainConfig(data=[], out="o").lambda_perc == 0.0
    assert TrainConfig(data=[], out="o", vgg_weights="vgg.pth").lambda_perc == DEFAULT_LAMBDA_PERC
    from medfuse.cli.train import DEFAULTS

    assert DEFAULTS["lambda_perc"] is None and DEFAULTS["steps"] == TrainConfig(data=[], out="o").steps


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"medfuse {medfuse.__version__}"


def test_the_command_line_shows_what_a_refused_registration_found(monkeypatch, samples, tmp_path, capsys):
    import medfuse.clinical.registration as registration

    monkeypatch.setattr(registration, "implausibilities", lambda found, fixed: ["a rotation of 40.0 degrees"])
    pair = samples / "CT-MRI/MRI/41010.png", samples / "CT-MRI/CT/41010.png"
    assert main(["register", *map(str, pair), "-o", str(tmp_path / "o.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("registered (rigid) in ") and "mutual information" in captured.out
    assert "looks wrong: a rotation of 40.0 degrees" in captured.err and list(tmp_path.iterdir()) == []


def test_user_mistakes_found_by_the_library_are_one_line(samples, tmp_path, capsys, image_folder_pair):
    assert main(["train", str(samples), "-o", str(tmp_path / "run"), "--width", "3", "--steps", "1"]) == 2
    assert "width must be an even number" in capsys.readouterr().err
    folder, image = image_folder_pair
    assert main(["fuse", str(folder), str(image), "-o", str(tmp_path / "f"), "--batch-size", "2"]) == 2
    assert "both be files or both be folders" in capsys.readouterr().err


def test_a_batch_row_that_does_not_fit_says_to_try_a_smaller_batch(monkeypatch, tmp_path, tiny_weights):
    from medfuse.fusion import memory

    write_nifti(tmp_path / "mr.nii", phantom() * 700, oblique_affine())
    write_nifti(tmp_path / "ct.nii", phantom(inner=1.0, outer=0.1) * 1200 - 200, oblique_affine())
    monkeypatch.setattr(memory, "free_memory", lambda device: 2**20)
    job = BatchJob(tmp_path, str(tiny_weights), "cpu", "average", VolumeOptions(), batch_size=4)
    status, message = fuse_row(Row(2, "mr.nii", "ct.nii", "f.nii", ""), job)
    assert status == "failed" and "try a smaller --batch-size" in message and not (tmp_path / "f.nii").exists()


@pytest.fixture
def image_folder_pair(samples):
    return samples / "CT-MRI" / "MRI", samples / "CT-MRI" / "CT" / "41010.png"


def test_every_command_takes_threads_and_they_reach_torch(samples, tmp_path, tiny_weights, capsys):
    import os
    import subprocess
    import sys

    for command in ("fuse", "register", "train", "evaluate", "benchmark", "batch"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--threads" in capsys.readouterr().out
    probe = (
        "import torch\nfrom medfuse.cli import main\n"
        f"main(['fuse', {str(samples / 'CT-MRI/MRI/41010.png')!r}, {str(samples / 'CT-MRI/CT/41010.png')!r}, "
        f"'-o', {str(tmp_path / 'f.png')!r}, '--weights', {str(tiny_weights)!r}, '--threads', '1'])\n"
        "print(torch.get_num_threads())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}
    )
    assert result.stdout.strip().splitlines()[-1] == "1", result.stderr
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "f.png"),
                str(samples / "CT-MRI/MRI/41010.png"),
                str(samples / "CT-MRI/CT/41010.png"),
                "--threads",
                "0",
            ]
        )
        == 2
    )
    assert "threads must be at least 1" in capsys.readouterr().err
