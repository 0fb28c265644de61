"""``medfuse train`` under torchrun: two CPU processes (gloo) train one model."""

import json
import os
import subprocess
import sys

from medfuse.cli import main
from medfuse.dran.models import load_model

SETTINGS = (
    "--batch-size",
    "2",
    "--crop",
    "16",
    "--width",
    "8",
    "--val-every",
    "2",
    "--val-fraction",
    "0.34",
    "--threads",
    "1",
)


def torchrun(*arguments: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "medfuse",
        "train",
        *arguments,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )


def test_two_processes_train_one_model_and_resume(noise_images, tmp_path, capsys):
    out = tmp_path / "run"
    finished = torchrun(str(noise_images), "-o", str(out), "--steps", "4", *SETTINGS)
    assert finished.returncode == 0, finished.stderr[-3000:]
    log = json.loads((out / "log.json").read_text())
    assert log["config"]["world_size"] == 2 and log["config"]["global_batch_size"] == 4
    first, second = log["rank_weight_digests"]
    assert first == second
    assert load_model(out / "weights.safetensors").width == 8
    assert finished.stdout.count("trained 4 steps") == 1  # rank 0 alone reports

    resumed = torchrun(str(noise_images), "-o", str(out), "--steps", "6", "--resume", *SETTINGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = json.loads((out / "log.json").read_text())
    assert [record["step"] for record in log["log"]] == [2, 4, 6]
    assert len(set(log["rank_weight_digests"])) == 1

    code = main(["train", str(noise_images), "-o", str(out), "--steps", "8", "--resume", *SETTINGS])
    assert code == 2 and "made by 2 process(es); resume it with as many" in capsys.readouterr().err
