"""Issue 32: outputs under concurrent runs, hostile layouts and odd values.

Concurrency: one lock per output (``_shared.files.output_lock``), a second run refused in one
line, temporary files that another run never deletes. Containment: links planted in an output
tree never carry a write out of it. Jobs: outputs together or not at all, folders a failed row
made removed. Values: finite results from finite inputs near float32's limit; DICOM values
within their VR's rules; names whose bytes are not UTF-8.
"""

import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from volume_data import ct_hu, oblique_affine, phantom, write_dicom_series, write_nifti

from medfuse._shared.errors import OutputError
from medfuse._shared.files import (
    inside,
    lock_path,
    make_folders,
    new_temporary_beside,
    output_lock,
    remove_partial_writes,
    write_atomically,
    written_together,
)
from medfuse.cli import main
from medfuse.clinical.batch import BatchJob, Row, fuse_row, read_manifest, record_path
from medfuse.clinical.pipeline import VolumeOptions, fuse_files
from medfuse.io.dicom import IS_RANGE, derived_series_number, dicom_text, dicom_value_problems
from medfuse.io.images import ImageFileError, load_image
from medfuse.io.volumes import read_volume


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


class HeldByAnotherRun:
    """The lock of an output held through another open file, as another process holds it."""

    def __init__(self, path: Path) -> None:
        self.descriptor = os.open(lock_path(path), os.O_RDWR | os.O_CREAT)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        os.close(self.descriptor)


@pytest.fixture
def volumes(tmp_path) -> Path:
    write_nifti(tmp_path / "mr.nii", phantom() * 700, oblique_affine())
    write_nifti(tmp_path / "ct.nii", ct_hu(), oblique_affine())
    return tmp_path


# --- locks and temporary files -------------------------------------------------------------


def test_a_second_writer_of_one_output_is_refused_in_one_line_and_the_lock_goes(tmp_path):
    target = tmp_path / "x.txt"
    other = HeldByAnotherRun(target)
    with pytest.raises(OutputError, match="being written by another medfuse run"):
        write_atomically(target, lambda temporary: temporary.write_text("mine"))
    other.release()
    with output_lock(target):
        write_atomically(target, lambda temporary: temporary.write_text("mine"))  # the same run takes it again
    assert target.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_leftovers_of_a_live_writer_are_kept_and_a_dead_ones_removed(tmp_path):
    target = tmp_path / "x.png"
    in_progress = new_temporary_beside(target)
    assert str(os.getpid()) in in_progress.name  # temporary names say whose they are
    other = HeldByAnotherRun(target)
    remove_partial_writes(target)  # another run holds the output: its temporary file is its own
    assert in_progress.exists()
    other.release()
    remove_partial_writes(target)  # nobody writes it: what is there was left by a killed write
    assert not in_progress.exists()


def test_a_batch_row_held_by_another_run_fails_without_touching_its_record(volumes, tiny_weights):
    job = BatchJob(volumes, str(tiny_weights), "cpu", "average", VolumeOptions())
    row = Row(2, "mr.nii", "ct.nii", "f.nii.gz", "")
    other = HeldByAnotherRun(volumes / "f.nii.gz")
    status, message = fuse_row(row, job)
    other.release()
    assert status == "failed" and "being written by another medfuse run" in message
    assert not (volumes / "f.nii.gz").exists() and not record_path(volumes / "f.nii.gz").exists()
    assert fuse_row(row, job) == ("done", "")


@pytest.mark.parametrize("rules", [("average", "max")])
def test_two_batch_processes_over_one_manifest_never_mix_records_and_fusions(volumes, tiny_weights, rules):
    """Both runs at once, each with its own rule: every output's record names the rule whose fusion
    it holds, and every row was fused by one run and refused or skipped by the other."""
    rows = [f"mr.nii,ct.nii,out/f{number}.nii.gz" for number in range(6)]
    (volumes / "pairs.csv").write_text("a,b,out\n" + "\n".join(rows) + "\n")
    command = [
        sys.executable,
        "-c",
        "import sys; from medfuse.cli import main; sys.exit(main())",
        "batch",
        str(volumes / "pairs.csv"),
        "--weights",
        str(tiny_weights),
        "--quiet",
        "--threads",
        "1",
    ]
    runs = [
        subprocess.Popen([*command, "--rule", rule], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rule in rules
    ]
    results = [run.communicate(timeout=240) for run in runs]
    assert all("Traceback" not in err for _, err in results), results
    expected = {
        rule: fuse_files(
            volumes / "mr.nii", volumes / "ct.nii", volumes / f"{rule}.nii.gz", rule=rule, model=tiny_weights
        )
        for rule in rules
    }
    for number in range(6):
        out = volumes / f"out/f{number}.nii.gz"
        rule = json.loads(record_path(out).read_text())["rule"]
        fused = np.asarray(nib.load(out).dataobj)
        assert np.array_equal(fused, np.asarray(nib.load(expected[rule].out).dataobj)), (number, rule)
    assert sorted(p.name for p in (volumes / "out").iterdir() if p.name.startswith(".")) == []


# --- containment -----------------------------------------------------------------------------


def test_inside_follows_links_and_refuses_one_that_leads_out(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "sub-01").symlink_to(tmp_path / "elsewhere")
    assert inside(tmp_path / "root" / "a" / "b.nii", tmp_path / "root") == tmp_path / "root" / "a" / "b.nii"
    with pytest.raises(OutputError, match="outside .*symbolic link"):
        inside(tmp_path / "root" / "sub-01" / "b.nii", tmp_path / "root")
    with pytest.raises(OutputError, match="outside"):
        inside(tmp_path / "root" / ".." / "b.nii", tmp_path / "root")


def test_a_link_planted_in_the_bids_derivatives_is_refused_and_nothing_goes_outside(tmp_path, capsys, tiny_weights):
    raw = tmp_path / "raw"
    for relative, data in (
        ("sub-01/anat/sub-01_T1w.nii.gz", phantom() * 700),
        ("sub-01/anat/sub-01_T2w.nii.gz", phantom(inner=0.1) * 300),
    ):
        (raw / relative).parent.mkdir(parents=True, exist_ok=True)
        write_nifti(raw / relative, data, oblique_affine())
    (raw / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.10.0"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (raw / "derivatives" / "medfuse").mkdir(parents=True)
    (raw / "derivatives" / "medfuse" / "sub-01").symlink_to(elsewhere)
    (tmp_path / "pairs.csv").write_text("a,b\nraw/sub-01/anat/sub-01_T1w.nii.gz,raw/sub-01/anat/sub-01_T2w.nii.gz\n")
    code, _, err = run_cli(
        capsys,
        "batch",
        tmp_path / "pairs.csv",
        "--bids-derivatives",
        raw,
        "--weights",
        tiny_weights,
        "--rule",
        "average",
    )
    assert code == 2 and "outside" in one_error_line(err) and list(elsewhere.iterdir()) == []


def test_a_manifest_output_that_a_link_leads_out_of_the_manifest_folder_fails_its_row(volumes, tiny_weights):
    elsewhere = volumes.parent / f"{volumes.name}-elsewhere"
    elsewhere.mkdir()
    (volumes / "linked").symlink_to(elsewhere)
    job = BatchJob(volumes, str(tiny_weights), "cpu", "average", VolumeOptions())
    status, message = fuse_row(Row(2, "mr.nii", "ct.nii", "linked/f.nii.gz", ""), job)
    assert status == "failed" and "outside" in message and list(elsewhere.iterdir()) == []
    assert fuse_row(Row(3, "mr.nii", "ct.nii", str(elsewhere / "g.nii.gz"), ""), job) == ("done", "")  # as asked


def test_folder_mode_refuses_a_link_planted_under_a_results_name(samples, tmp_path, tiny_weights):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"keep")
    (out / "41010.png").symlink_to(victim)
    with pytest.raises(OutputError, match="outside"):
        fuse_files(samples / "CT-MRI" / "MRI", samples / "CT-MRI" / "CT", out, model=tiny_weights, rule="average")
    assert victim.read_bytes() == b"keep"


# --- jobs that fail: nothing of them stays ---------------------------------------------------


def test_written_together_removes_the_outputs_and_new_folders_of_a_failed_job(tmp_path):
    (tmp_path / "kept.txt").write_text("before")
    with pytest.raises(RuntimeError), written_together():
        make_folders(tmp_path / "new" / "deep")
        write_atomically(tmp_path / "new" / "deep" / "a.txt", lambda temporary: temporary.write_text("a"))
        raise RuntimeError("the job's second output failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_a_weight_map_that_cannot_be_written_takes_the_fusion_with_it(volumes, tiny_weights, monkeypatch):
    import medfuse.clinical.pipeline as pipeline

    real = pipeline.write_nifti

    def full_disk_for_the_map(path, *args, **kwargs):
        if Path(path).name == "w.nii.gz":
            raise OutputError(f"cannot write {path}: No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "write_nifti", full_disk_for_the_map)
    with pytest.raises(OutputError, match="No space left"):
        fuse_files(
            volumes / "mr.nii",
            volumes / "ct.nii",
            volumes / "f.nii.gz",
            model=tiny_weights,
            rule="sfnn-map",
            weight_map=volumes / "w.nii.gz",
        )
    assert sorted(p.name for p in volumes.iterdir()) == ["ct.nii", "mr.nii"]


def test_unwritable_rows_fail_alone_and_leave_no_folders(volumes, capsys, tiny_weights):
    (volumes / "afile").write_text("a file, not a folder")
    long_name = "n" * 240 + ".nii.gz"  # fits, but its record OUT.medfuse.json does not
    (volumes / "pairs.csv").write_text(
        "a,b,out\n"
        "mr.nii,ct.nii,afile/f.nii.gz\n"
        f"mr.nii,ct.nii,{long_name}\n"
        "mr.nii,missing.nii,new/deep/g.nii.gz\n"
        "mr.nii,ct.nii,good.nii.gz\n"
    )
    code, out, err = run_cli(capsys, "batch", volumes / "pairs.csv", "--weights", tiny_weights, "--rule", "average")
    assert code == 1 and "1 fused" in out and "3 failed" in out and "Traceback" not in err
    assert (volumes / "good.nii.gz").is_file() and not (volumes / "new").exists()
    assert sorted(p.name for p in volumes.iterdir()) == sorted(
        ["afile", "ct.nii", "mr.nii", "pairs.csv", "good.nii.gz", "good.nii.gz.medfuse.json"]
    )


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["average", "pyramid-energy"])
def test_finite_values_near_float32s_limit_give_a_finite_fusion(tmp_path, tiny_weights, rule):
    extreme = phantom().astype(np.float64) * 6e38 - 3e38  # -3e38 .. 3e38: finite float32
    assert np.all(np.isfinite(extreme.astype(np.float32)))
    write_nifti(tmp_path / "a.nii", extreme, oblique_affine())
    write_nifti(tmp_path / "b.nii", phantom(inner=0.2) * 500, oblique_affine())
    fuse_files(tmp_path / "a.nii", tmp_path / "b.nii", tmp_path / "f.nii", model=tiny_weights, rule=rule)
    fused = np.asarray(nib.load(tmp_path / "f.nii").dataobj)
    assert np.all(np.isfinite(fused)) and fused.min() >= 0 and fused.max() <= 1 and fused.max() > 0


def test_a_multi_page_grey_tiff_is_refused_not_read_as_colour(tmp_path):
    stack = np.random.default_rng(0).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    with pytest.raises(ImageFileError, match=r"stack of TIFF images \(3x32x32\)"):
        load_image(tmp_path / "stack.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.moveaxis(stack, 0, -1), photometric="rgb")
    assert load_image(tmp_path / "rgb.tif").shape == (32, 32, 3)


def test_a_manifest_row_with_more_fields_than_its_header_is_refused(tmp_path):
    (tmp_path / "pairs.csv").write_text("a,b,out\nmr.nii,ct.nii,f.nii,brain\n")
    with pytest.raises(ValueError, match="line 2 has 4 fields, the header 3"):
        read_manifest(tmp_path / "pairs.csv")
    (tmp_path / "pairs.csv").write_text("a,b,out\nmr.nii,ct.nii,f.nii,\n")  # a trailing empty field is harmless
    assert read_manifest(tmp_path / "pairs.csv")[0].out == "f.nii"


def test_derived_series_numbers_stay_integer_strings():
    assert derived_series_number(3) == 1003 and derived_series_number("") == 1000
    assert derived_series_number(IS_RANGE[1]) == IS_RANGE[1] - 1000 and derived_series_number("ab") == 1000
    assert IS_RANGE[0] <= derived_series_number(IS_RANGE[0]) <= IS_RANGE[1]


def test_dicom_texts_and_value_checks():
    assert dicom_text("CT\\MR \x07 fused", "LO") == "CT/MR   fused"
    assert len(dicom_text("x" * 100, "LO")) == 64 and dicom_text("a\\b", "LT") == "a\\b"
    assert dicom_text(os.fsdecode(b"caf\xe9"), "LO") == "caf\ufffd"  # an undecodable byte of a file name
    dataset = pydicom.Dataset()
    dataset.SeriesNumber, dataset.Modality, dataset.SeriesDescription = "2147484647", "ct", "x" * 70
    dataset.SliceThickness = "1.0"
    problems = "; ".join(dicom_value_problems(dataset))
    assert "SeriesNumber 2147484647 is outside the IS range" in problems
    assert "Modality 'ct' holds characters a CS may not hold" in problems
    assert "SeriesDescription" in problems and "LO's 64" in problems and "SliceThickness" not in problems


def stored_as(folder: Path, tag: bytes, value) -> Path:
    """The implicit-VR series in ``folder`` with the stored bytes of the element ``tag`` (little
    endian) in every file replaced by ``value(old bytes)``, as a foreign writer may have stored
    them: pydicom itself refuses to write such values."""
    for path in folder.iterdir():
        content = path.read_bytes()
        start = content.index(tag)
        length = int.from_bytes(content[start + 4 : start + 8], "little")
        new = value(content[start + 8 : start + 8 + length])
        new += b" " * (len(new) % 2)
        path.write_bytes(content[:start] + tag + len(new).to_bytes(4, "little") + new + content[start + 8 + length :])
    return folder


SERIES_NUMBER, IMAGE_POSITION = b"\x20\x00\x11\x00", b"\x20\x00\x32\x00"


def fuse_windowed_ct(capsys, tmp_path: Path, ct: Path, weights) -> tuple[int, str, str]:
    """``medfuse fuse CT MR -o tmp_path/fused`` (a DICOM series out) with the brain window on the CT."""
    write_nifti(tmp_path / "mr.nii", phantom() * 700, read_volume(ct).volume.geometry.affine)
    options = ["--weights", weights, "--rule", "average", "--window", "brain", "--window-on", "a"]
    return run_cli(capsys, "fuse", ct, tmp_path / "mr.nii", "-o", tmp_path / "fused", *options)


@pytest.mark.parametrize(("stored", "written"), [(b"2147483647", 2147482647), (b"ab", 1000)])
def test_a_derived_series_number_is_valid_whatever_the_reference_holds(tmp_path, capsys, tiny_weights, stored, written):
    ct = write_dicom_series(tmp_path / "ct", ct_hu())
    replaced = []
    stored_as(ct, SERIES_NUMBER, lambda old: replaced.append(old) or stored)
    assert set(replaced) == {b"3 "}  # the element found is the SeriesNumber write_dicom_series wrote
    code, _, err = fuse_windowed_ct(capsys, tmp_path, ct, tiny_weights)
    assert code == 0, err
    for path in (tmp_path / "fused").iterdir():
        dataset = pydicom.dcmread(path)
        assert int(dataset.SeriesNumber) == written and dicom_value_problems(dataset) == []


def test_a_registered_dicom_series_keeps_its_names_characters_valid(tmp_path, capsys):
    fixed = write_dicom_series(tmp_path / "fixed", ct_hu())
    moving = write_dicom_series(tmp_path / "Größe\\Ω moving", ct_hu())
    code, _, err = run_cli(capsys, "register", fixed, moving, "-o", tmp_path / "out", "--force")
    assert code == 0, err
    dataset = pydicom.dcmread(next((tmp_path / "out").iterdir()))
    assert "Größe/Ω moving" in dataset.SeriesDescription and dataset.SpecificCharacterSet == "ISO_IR 192"
    assert dicom_value_problems(dataset) == [] and dataset.PatientName == "Phantom^Test"


def test_a_full_disk_during_a_dicom_write_is_one_short_line(tmp_path, capsys, tiny_weights, monkeypatch):
    ct = write_dicom_series(tmp_path / "ct", ct_hu())
    import pydicom.filewriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    for vr in ("OW", "OB"):  # the pixel data's writers
        monkeypatch.setitem(pydicom.filewriter.writers, vr, (full, None))
    code, _, err = fuse_windowed_ct(capsys, tmp_path, ct, tiny_weights)
    line = one_error_line(err)
    assert code == 2 and line.endswith("No space left on device") and "With tag" not in line and len(line) < 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct", "mr.nii"]


def test_a_source_name_that_is_not_utf8_is_fused_and_named_with_escapes(samples, tmp_path, capsys, tiny_weights):
    folder = os.fsencode(tmp_path)
    mri, ct = folder + b"/mri-\xff.png", folder + b"/ct-\xe9.png"
    for target, source in ((mri, samples / "CT-MRI/MRI/41010.png"), (ct, samples / "CT-MRI/CT/41010.png")):
        with open(target, "wb") as file:
            file.write(source.read_bytes())
    code, out, err = run_cli(
        capsys,
        "fuse",
        os.fsdecode(mri),
        os.fsdecode(ct),
        "-o",
        tmp_path / "f.png",
        "--weights",
        tiny_weights,
        "--rule",
        "average",
    )
    assert code == 0, err
    assert "mri-\\xff.png" in Image.open(tmp_path / "f.png").text["Source"]


def test_a_window_on_the_mr_proposes_the_ct_input_when_that_is_the_ct(tmp_path, capsys, tiny_weights):
    ct = write_dicom_series(tmp_path / "ct", ct_hu())
    write_nifti(tmp_path / "mr.nii", phantom() * 700, read_volume(ct).volume.geometry.affine)
    code, _, err = run_cli(
        capsys,
        "fuse",
        ct,
        tmp_path / "mr.nii",
        "-o",
        tmp_path / "f.nii",
        "--weights",
        tiny_weights,
        "--window",
        "brain",
    )
    line = one_error_line(err)
    assert code == 2 and "--window-on a" in line and "--force-window" not in line


def test_shares_of_sources_that_are_scaled_copies_are_undefined_not_negative():
    from medfuse.evaluation.metrics.fidelity import fusion_shares, source_shares

    a = phantom()[:, :, 4].astype(np.float64)
    b = 0.5 * a + 0.1  # on the mask, B is A scaled and shifted: any split fits the average exactly
    with pytest.raises(ValueError, match="linearly dependent"):
        source_shares((a + b) / 2, a, b)
    assert fusion_shares(None, a, b, (a + b) / 2) == (None, "least-squares fit")
    rng = np.random.default_rng(0)
    a, b = rng.random((16, 16)), rng.random((16, 16))
    assert np.allclose(source_shares(0.3 * a + 0.7 * b, a, b), (0.3, 0.7))


def test_a_result_that_is_not_finite_or_in_range_is_never_written(tmp_path):
    from medfuse._shared.checks import check_result
    from medfuse.image.grid import Geometry
    from medfuse.io.nifti import write_nifti as write_volume_nifti

    data = np.zeros((4, 4, 2), np.float32)
    data[1, 1, 1] = np.nan
    with pytest.raises(OutputError, match="1 NaN or infinite"):
        write_volume_nifti(tmp_path / "f.nii", data, Geometry(np.eye(4)))
    with pytest.raises(OutputError, match="outside \\[0, 1\\]"):
        check_result(np.array([0.0, 1.5]), "fused", 0.0, 1.0)
    check_result(np.array([0, 300]), "an integer image")  # integers are finite by kind
    assert list(tmp_path.iterdir()) == []


def test_a_reference_with_decimal_strings_longer_than_ds_allows_gives_a_valid_series(tmp_path, capsys, tiny_weights):
    """Some scanners write more digits than DS's 16 characters: the copies are shortened, not refused."""
    ct = write_dicom_series(tmp_path / "ct", ct_hu())
    # the first of ImagePositionPatient's values in 19 characters: DS holds 16
    stored_as(ct, IMAGE_POSITION, lambda old: b"100.000000000000012\\" + b"\\".join(old.split(b"\\")[1:]).rstrip())
    code, _, err = fuse_windowed_ct(capsys, tmp_path, ct, tiny_weights)
    assert code == 0, err
    for path in (tmp_path / "fused").iterdir():
        dataset = pydicom.dcmread(path)
        assert dicom_value_problems(dataset) == [] and abs(float(dataset.ImagePositionPatient[0]) - 100.0) < 1e-9


def test_a_file_system_without_locks_still_takes_the_write_with_a_warning(tmp_path, monkeypatch):
    def no_locks(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot hold locks .*would not be kept apart"):
        write_atomically(tmp_path / "x.txt", lambda temporary: temporary.write_text("written"))
    assert (tmp_path / "x.txt").read_text() == "written" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_a_report_and_the_messages_show_undecodable_name_bytes_as_escapes(samples, tmp_path, capsys, tiny_weights):
    mri, ct = samples / "CT-MRI/MRI/41010.png", samples / "CT-MRI/CT/41010.png"
    fused = os.fsdecode(os.fsencode(tmp_path) + b"/f\xfe.png")
    assert run_cli(capsys, "fuse", mri, ct, "-o", fused, "--weights", tiny_weights, "--rule", "average")[0] == 0
    page = os.fsdecode(os.fsencode(tmp_path) + b"/r\xfe.html")
    code, out, err = run_cli(capsys, "report", mri, ct, "--fused", fused, "-o", page, "--weights", tiny_weights)
    assert code == 0, err
    assert "r\\xfe.html" in out and "f\\xfe.png" in Path(page).read_text(encoding="utf-8")


def test_the_command_output_escapes_what_its_encoding_cannot_hold():
    from medfuse.cli import ESCAPE_UNPRINTABLE

    assert "Ω\udcfe.png".encode("ascii", ESCAPE_UNPRINTABLE) == b"\\u03a9\\xfe.png"


def test_a_second_training_or_benchmark_into_one_folder_is_refused(samples, tmp_path, capsys, tiny_weights):
    """Runs that write many files into one folder hold the folder's lock for the whole run."""
    from medfuse.training.config import TrainConfig
    from medfuse.training.loop import train

    other = HeldByAnotherRun(tmp_path / "run")
    with pytest.raises(OutputError, match="being written by another medfuse run"):
        train(TrainConfig(data=[str(samples / "CT-MRI" / "MRI")], out=str(tmp_path / "run"), steps=2, crop=16))
    other.release()
    other = HeldByAnotherRun(tmp_path / "bench")
    code, _, err = run_cli(
        capsys,
        "benchmark",
        samples / "CT-MRI",
        "-o",
        tmp_path / "bench",
        "--methods",
        "pixel-max",
        "--metrics",
        "psnr",
        "--montage-pairs",
        "0",
    )
    other.release()
    assert code == 2 and "being written by another medfuse run" in one_error_line(err)
    assert not (tmp_path / "run").exists() and not (tmp_path / "bench").exists()  # nothing of theirs was touched
