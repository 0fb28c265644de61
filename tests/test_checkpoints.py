"""``medfuse train --resume`` never runs code from a checkpoint, and refuses damaged ones in one line."""

import os
import pickle

import torch

from medfuse.cli import main


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def resume(folder, out, capsys):
    code = main(["train", str(folder), "-o", str(out), "--steps", "2", "--batch-size", "2", "--crop", "16",
                 "--val-every", "1", "--width", "8", "--val-fraction", "0.34", "--resume"])
    return code, capsys.readouterr().err


def test_a_crafted_checkpoint_does_not_run_its_code(tmp_path, capsys, samples):
    marker = tmp_path / "ran"
    out = tmp_path / "run"
    out.mkdir()
    with open(out / "checkpoint.pt", "wb") as file:
        pickle.dump({"model": RunsAShellCommand(marker)}, file)
    code, err = resume(samples, out, capsys)
    assert code == 2 and not marker.exists()
    assert "not a readable medfuse checkpoint" in err and err.count("\n") == 1


def test_damaged_or_foreign_checkpoints_are_refused_in_one_line(tmp_path, capsys, samples):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": {}, "step": 1}, tmp_path / "foreign.pt")
    good = (tmp_path / "foreign.pt").read_bytes()
    for content, message in ((b"", "not a readable medfuse checkpoint"),
                             (good[: len(good) // 2], "not a readable medfuse checkpoint"),
                             (b"not a checkpoint at all", "not a readable medfuse checkpoint"),
                             (good, "not a medfuse checkpoint (no optimiser, torch_rng, log, elapsed, config)")):
        (out / "checkpoint.pt").write_bytes(content)
        code, err = resume(samples, out, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
