"""``medfuse batch`` on a local Dask cluster: the same volumes as the serial run, and every
output whole when a worker process is killed during the run."""

import os
import signal
from pathlib import Path

import numpy as np
from volume_data import oblique_affine, phantom, write_nifti

from medfuse.cli import main
from medfuse.cli.batch import report_rows
from medfuse.clinical.batch import BatchJob, fuse_rows, read_manifest
from medfuse.clinical.pipeline import VolumeOptions
from medfuse.io.volumes import read_volume
from medfuse.scaleout.cluster import dask_client, fuse_rows_on_dask


def make_manifest(tmp_path, rows: int, shape=(24, 28, 6)):
    for index in range(rows):
        write_nifti(tmp_path / f"mr{index}.nii", phantom(shape, shift=0.05 * index) * 700, oblique_affine())
        write_nifti(tmp_path / f"ct{index}.nii", phantom(shape, inner=1.0, outer=0.1) * 1200 - 200, oblique_affine())
    manifest = tmp_path / "manifest.csv"
    lines = [f"mr{index}.nii,ct{index}.nii,out/f{index}.nii.gz,brain" for index in range(rows)]
    manifest.write_text("a,b,out,window\n" + "\n".join(lines) + "\n")
    return manifest


def test_two_workers_write_what_one_process_writes(tmp_path, capsys, tiny_weights):
    manifest = make_manifest(tmp_path, 4)
    assert main(["batch", str(manifest), "--weights", str(tiny_weights)]) == 0
    serial = {p.name: read_volume(p).volume.data for p in (tmp_path / "out").glob("*.nii.gz")}
    (tmp_path / "out").rename(tmp_path / "serial")
    capsys.readouterr()
    assert main(["batch", str(manifest), "--weights", str(tiny_weights), "--workers", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "4 pair(s): 4 fused, 0 skipped (output exists), 0 failed" in stdout
    for name, data in serial.items():
        np.testing.assert_allclose(read_volume(tmp_path / "out" / name).volume.data, data, atol=1e-5)
    assert main(["batch", str(manifest), "--weights", str(tiny_weights), "--workers", "2"]) == 0
    assert "0 fused, 4 skipped (output exists)" in capsys.readouterr().out


def test_a_killed_worker_leaves_every_output_whole(tmp_path, tiny_weights, capsys):
    """A worker SIGKILLed mid-run: Dask runs its row again elsewhere (or finds the output its
    victim had finished: skipped), no row fails, every output reads whole, and the batch
    deletes the hidden file a write cut short left."""
    manifest = make_manifest(tmp_path, 6, shape=(64, 72, 24))
    rows = read_manifest(manifest)
    job = BatchJob(tmp_path, str(tiny_weights), "cpu", "sfnn-map", VolumeOptions())
    with dask_client(2, None) as client:
        victims = list(client.run(os.getpid).values())

        def kill_one_worker_after_the_first_row(rows, job):
            for number, outcome in enumerate(fuse_rows_on_dask(rows, job, client)):
                yield outcome
                if number == 0:
                    os.kill(victims[0], signal.SIGKILL)

        code = report_rows(rows, fuse_rows(rows, job, kill_one_worker_after_the_first_row))
    assert code == 0 and "0 failed" in capsys.readouterr().out
    for row in rows:
        volume = read_volume(tmp_path / row.out).volume  # whole: it reads
        assert volume.shape == (64, 72, 24)
    written = sorted(Path(row.out).name for row in rows)  # each with the record of its settings
    records = [f"{name}.medfuse.json" for name in written]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(written + records)


def test_workers_and_scheduler_are_refused_together(tmp_path, capsys, tiny_weights):
    manifest = make_manifest(tmp_path, 1)
    code = main(["batch", str(manifest), "--weights", str(tiny_weights), "--workers", "2", "--scheduler", "tcp://x:1"])
    assert code == 2 and "not both" in capsys.readouterr().err
    code = main(["batch", str(manifest), "--weights", str(tiny_weights), "--workers", "0"])
    assert code == 2 and "at least 1" in capsys.readouterr().err
