"""Every command answers a failed write with one line and exit status 2 (``medfuse batch``:
a failed row, as for any row error), and leaves no partial or temporary file behind.

``/proc`` stands for a folder that exists but takes no files (a read-only or special file
system; these tests may run as root, for whom permission bits do not stop a write); a full
disk is simulated by a writer that writes part of its file and then fails with ENOSPC."""

import errno

import numpy as np
import pytest
import torch
from volume_data import ct_hu, oblique_affine, phantom, write_dicom_series, write_nifti

from medfuse._shared.errors import OutputError
from medfuse._shared.files import write_atomically
from medfuse.cli import main
from medfuse.io.images import save_image
from medfuse.io.volumes import read_volume
from medfuse.io.volumes import write_dicom_series as write_fused_series

UNWRITABLE = "/proc"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, stderr: str, text: str) -> bool:
    """Exit status 2 and one error line naming ``text`` (a progress bar may stand before it)."""
    errors = [line for line in stderr.splitlines() if "error:" in line]
    return code == 2 and len(errors) == 1 and text in errors[0] and "Traceback" not in stderr


def fill_the_disk(path, *args, **kwargs):
    with open(path, "wb") as file:
        file.write(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def pair(samples):
    return samples / "CT-MRI" / "MRI" / "41010.png", samples / "CT-MRI" / "CT" / "41010.png"


def test_write_atomically_leaves_nothing_and_says_why(tmp_path):
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'x.txt'}: No space left on device"):
        write_atomically(tmp_path / "x.txt", fill_the_disk)
    with pytest.raises(OutputError, match="cannot write .*: out of memory in the writer"):
        write_atomically(
            tmp_path / "y.pt",
            lambda path: (path.write_bytes(b"half"), _raise(RuntimeError("out of memory in the writer"))),
        )
    assert list(tmp_path.iterdir()) == []


def _raise(error):
    raise error


def test_fuse_into_a_folder_that_takes_no_files(capsys, pair, tiny_weights):
    code, _, stderr = run_cli(capsys, "fuse", *pair, "-o", f"{UNWRITABLE}/fused.png", "--weights", tiny_weights)
    assert one_line_error(code, stderr, f"cannot write {UNWRITABLE}/fused.png")


def test_fuse_on_a_full_disk_leaves_nothing(monkeypatch, tmp_path, capsys, pair, tiny_weights):
    monkeypatch.setattr("PIL.Image.Image.save", lambda image, path, **kwargs: fill_the_disk(path))
    code, _, stderr = run_cli(capsys, "fuse", *pair, "-o", tmp_path / "fused.png", "--weights", tiny_weights)
    assert one_line_error(code, stderr, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_fuse_folders_into_a_folder_that_cannot_be_made(capsys, samples, tiny_weights):
    folder_a, folder_b = samples / "PET-MRI" / "MRI", samples / "PET-MRI" / "PET"
    code, _, stderr = run_cli(
        capsys, "fuse", folder_a, folder_b, "-o", f"{UNWRITABLE}/fused", "--weights", tiny_weights
    )
    assert one_line_error(code, stderr, f"{UNWRITABLE}/fused")


def test_fuse_volumes_into_a_folder_that_takes_no_files(tmp_path, capsys, tiny_weights):
    mr = write_nifti(tmp_path / "mr.nii", phantom() * 800, oblique_affine())
    code, _, stderr = run_cli(capsys, "fuse", mr, mr, "-o", f"{UNWRITABLE}/fused.nii.gz", "--weights", tiny_weights)
    assert one_line_error(code, stderr, f"cannot write {UNWRITABLE}/fused.nii.gz")
    assert stderr.count("\n") == 1  # refused before the work: no progress bar


def test_dicom_series_on_a_full_disk_leaves_no_folder(monkeypatch, tmp_path):
    series = write_dicom_series(tmp_path / "ct", ct_hu())
    reference = read_volume(series)
    monkeypatch.setattr("pydicom.dcmwrite", fill_the_disk)
    out = tmp_path / "out" / "fused"
    out.parent.mkdir()
    with pytest.raises(OutputError, match="No space left on device"):
        write_fused_series(out, np.zeros(reference.volume.shape), reference)
    assert list(out.parent.iterdir()) == []


def test_evaluate_scores_into_a_folder_that_takes_no_files(capsys, pair):
    code, _, stderr = run_cli(
        capsys, "evaluate", pair[1], *pair, "--metrics", "psnr", "--csv", f"{UNWRITABLE}/scores.csv"
    )
    assert one_line_error(code, stderr, f"{UNWRITABLE}/scores.csv")


def test_benchmark_into_a_folder_that_cannot_be_made(tmp_path, capsys, phantom):
    for modality in ("MRI", "CT"):
        (tmp_path / "data" / modality).mkdir(parents=True)
        save_image(tmp_path / "data" / modality / "p.png", phantom)
    code, _, stderr = run_cli(
        capsys,
        "benchmark",
        tmp_path / "data",
        "-o",
        f"{UNWRITABLE}/bench",
        "--methods",
        "pixel-average",
        "--metrics",
        "psnr",
    )
    assert one_line_error(code, stderr, f"{UNWRITABLE}/bench")


TRAINING = ("--steps", "2", "--batch-size", "2", "--crop", "16", "--width", "8", "--val-every", "1")


def test_train_into_a_folder_that_cannot_be_made(capsys, noise_images):
    code, _, stderr = run_cli(capsys, "train", noise_images, "-o", f"{UNWRITABLE}/run", *TRAINING)
    assert one_line_error(code, stderr, f"{UNWRITABLE}/run")


def test_train_on_a_full_disk_leaves_no_checkpoint(monkeypatch, tmp_path, capsys, noise_images):
    def failing_save(state, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", failing_save)
    code, _, stderr = run_cli(capsys, "train", noise_images, "-o", tmp_path / "run", *TRAINING)
    assert one_line_error(code, stderr, f"cannot write {tmp_path / 'run' / 'checkpoint.pt'}")
    assert list((tmp_path / "run").iterdir()) == []


def test_batch_reports_an_unwritable_row_and_fuses_the_others(tmp_path, capsys, tiny_weights):
    write_nifti(tmp_path / "mr.nii", phantom() * 800, oblique_affine())
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"a,b,out\nmr.nii,mr.nii,{UNWRITABLE}/f.nii\nmr.nii,mr.nii,out/f.nii\n")
    code, stdout, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert code == 1 and "1 fused, 0 skipped (output exists), 1 failed" in stdout
    assert "Traceback" not in stderr and f"line 2 failed: cannot write {UNWRITABLE}/f.nii" in stderr
    assert (tmp_path / "out" / "f.nii").is_file()


def test_outputs_that_cannot_take_the_result_are_refused_before_fusing(
    monkeypatch, tmp_path, capsys, samples, tiny_weights
):
    import medfuse.fusion.engine as engine

    def no_fusion(*args, **kwargs):
        raise AssertionError("fused although the output could not take the result")

    monkeypatch.setattr(engine, "fuse", no_fusion)
    monkeypatch.setattr(engine, "fuse_pairs", no_fusion)
    folder_a, folder_b = samples / "CT-MRI" / "MRI", samples / "CT-MRI" / "CT"
    code, _, stderr = run_cli(capsys, "fuse", folder_a, folder_b, "-o", UNWRITABLE, "--weights", tiny_weights)
    assert one_line_error(code, stderr, f"cannot write {UNWRITABLE}/41010.png")
    import tifffile

    mri = tmp_path / "mri16.tif"
    tifffile.imwrite(mri, np.full((32, 32), 4000, np.uint16))
    pet = tmp_path / "pet16.tif"
    tifffile.imwrite(pet, np.full((32, 32, 3), 9000, np.uint16), photometric="rgb")
    code, _, stderr = run_cli(capsys, "fuse", mri, pet, "-o", tmp_path / "f.png", "--weights", tiny_weights)
    assert one_line_error(code, stderr, "16-bit colour images need .tif") and not (tmp_path / "f.png").exists()
