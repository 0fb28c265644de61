import numpy as np
from volume_data import oblique_affine, phantom, write_nifti

from medfuse.cli import main
from medfuse.dran import DEFAULT_RULE


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_inputs(tmp_path):
    for name, shift in (("mr1", 0.0), ("mr2", 0.2)):
        write_nifti(tmp_path / f"{name}.nii.gz", phantom(shift=shift) * 700, oblique_affine())
    write_nifti(tmp_path / "ct.nii.gz", phantom(inner=1.0, outer=0.05) * 1400 - 1000, oblique_affine())


def test_batch_runs_good_rows_reports_bad_one_and_resumes(tmp_path, capsys, tiny_weights):
    make_inputs(tmp_path)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "a,b,out,window\n"
        "mr1.nii.gz,ct.nii.gz,out/f1.nii.gz,brain\n"
        "mr1.nii.gz,missing.nii.gz,out/bad.nii.gz,\n"
        "mr2.nii.gz,ct.nii.gz,out/f2.nii,40/400\n"
    )
    code, stdout, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "f1.nii.gz",
        "f1.nii.gz.medfuse.json",
        "f2.nii",
        "f2.nii.medfuse.json",
    ]
    assert "3 pair(s): 2 fused, 0 skipped (output exists), 1 failed" in stdout
    assert "line 3" in stdout and "missing.nii.gz: no such file" in stderr
    first = (tmp_path / "out" / "f1.nii.gz").stat().st_mtime_ns

    code, stdout, _ = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert code == 1 and "0 fused, 2 skipped (output exists), 1 failed" in stdout
    assert (tmp_path / "out" / "f1.nii.gz").stat().st_mtime_ns == first
    # issue 22: a rerun with another rule does not pass the old results off as its own
    code, stdout, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights)
    assert code == 1 and "0 fused, 0 skipped (output exists), 3 failed" in stdout
    assert f"f1.nii.gz was made with other settings (rule 'average' there, '{DEFAULT_RULE}' now)" in stderr
    assert (tmp_path / "out" / "f1.nii.gz").stat().st_mtime_ns == first

    manifest.write_text(
        "a,b,out,window\nmr1.nii.gz,ct.nii.gz,out/f1.nii.gz,brain\nmr2.nii.gz,mr1.nii.gz,out/f3.nii,\n"
        "mr2.nii.gz,ct.nii.gz,out/f2.nii,\n"
    )
    code, stdout, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert code == 1 and "1 fused, 1 skipped (output exists), 1 failed" in stdout
    assert "f2.nii was made with other settings (window '40/400' there, '' now)" in stderr
    manifest.write_text("a,b,out,window\nmr1.nii.gz,./mr2.nii.gz,out/f1.nii.gz,brain\n")
    code, stdout, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert (
        code == 1
        and "f1.nii.gz was made with other settings (inputs ['mr1.nii.gz', 'ct.nii.gz'] there, "
        "['mr1.nii.gz', 'mr2.nii.gz'] now)"
        in stderr
    )  # another B is not skipped as if it were the same result
    manifest.write_text("a,b,out,window\nmr1.nii.gz,ct.nii.gz,out/f1.nii.gz,brain\n")
    (tmp_path / "out" / "f1.nii.gz.medfuse.json").unlink()  # an output without its record is not trusted either
    code, stdout, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert "f1.nii.gz exists without a readable record of its settings" in stderr


def test_batch_window_and_grid_errors_are_row_failures(tmp_path, capsys, tiny_weights):
    make_inputs(tmp_path)
    write_nifti(tmp_path / "moved.nii", phantom(), oblique_affine(origin=(0, 0, 0)))
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "a,b,out,window\nmr1.nii.gz,ct.nii.gz,f1.nii,lung\nmr1.nii.gz,moved.nii,f2.nii,\n"
        "mr1.nii.gz,ct.nii.gz,f3.nii,bone\n"
    )
    code, stdout, _ = run_cli(capsys, "batch", manifest, "--weights", tiny_weights)
    assert code == 1 and "1 fused, 0 skipped (output exists), 2 failed" in stdout
    assert "unknown CT window 'lung'" in stdout and "different grids: origin" in stdout
    assert not (tmp_path / "f1.nii").exists() and not (tmp_path / "f2.nii").exists()


def test_bad_manifest_exits_two(tmp_path, capsys, tiny_weights):
    manifest = tmp_path / "m.csv"
    manifest.write_text("a,b,output\nx,y,z\n")
    code, _, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights)
    assert code == 2 and "missing column(s) out" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_cli(capsys, "batch", tmp_path / "none.csv")
    assert code == 2 and "no such file" in stderr
    manifest.write_text("a,b,out\n")
    code, _, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights)
    assert code == 2 and "no rows" in stderr
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["m.csv"])


def test_batch_deletes_what_killed_writes_of_its_outputs_left(tmp_path, capsys, tiny_weights):
    """A run killed mid-write (SIGKILL can't be caught) leaves a hidden .NAME-*.part file or
    folder beside the output; the next run deletes those of its rows, and nothing else."""
    make_inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".f1.nii.gz-k1ll3d.part").write_bytes(b"half a volume")
    (out / ".series-k1ll3d.part").mkdir()
    (out / ".series-k1ll3d.part" / "slice_0001.dcm").write_bytes(b"half a slice")
    (out / ".someone-elses.nii-1.part").write_bytes(b"not ours")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("a,b,out\nmr1.nii.gz,ct.nii.gz,out/f1.nii.gz\nmr1.nii.gz,missing.nii.gz,out/series\n")
    code, _, _ = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert code == 1  # the second row fails: its input is missing
    assert sorted(p.name for p in out.iterdir()) == [".someone-elses.nii-1.part", "f1.nii.gz", "f1.nii.gz.medfuse.json"]


def test_rows_that_would_lose_work_are_refused_before_any_fusion(tmp_path, capsys, tiny_weights):
    make_inputs(tmp_path)
    (tmp_path / "taken.nii.gz").mkdir()
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "a,b,out\n"
        "mr1.nii.gz,ct.nii.gz,out/f.nii.gz\n"
        "mr2.nii.gz,ct.nii.gz,out/f.nii.gz\n"
        "mr1.nii.gz,ct.nii.gz,mr1.nii.gz\n"
        "mr2.nii.gz,ct.nii.gz,taken.nii.gz\n"
    )
    code, stdout, stderr = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert code == 2 and stderr.count("\n") == 1 and not (tmp_path / "out").exists()
    assert "3 row(s) would lose work" in stderr and "line 3 writes out/f.nii.gz as line 2 does" in stderr
    assert "line 4: out mr1.nii.gz is one of its inputs" in stderr and "line 5: out taken.nii.gz is a folder" in stderr


def test_a_record_from_before_inputs_were_recorded_still_resumes(tmp_path, capsys, tiny_weights):
    import json

    make_inputs(tmp_path)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("a,b,out,window\nmr1.nii.gz,ct.nii.gz,f1.nii.gz,brain\n")
    assert run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")[0] == 0
    record = tmp_path / "f1.nii.gz.medfuse.json"
    older = json.loads(record.read_text())
    del older["inputs"]
    record.write_text(json.dumps(older))
    code, stdout, _ = run_cli(capsys, "batch", manifest, "--weights", tiny_weights, "--rule", "average")
    assert code == 0 and "0 fused, 1 skipped (output exists), 0 failed" in stdout
