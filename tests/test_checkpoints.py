"""``medfuse train --resume`` never runs code from a checkpoint, and refuses damaged ones in one line."""

import copy
import os
import pickle
import re
import shutil

import numpy as np
import pytest
import torch

from medfuse._shared.errors import MedfuseError
from medfuse.cli import main
from medfuse.io.images import save_image
from medfuse.training.config import FusionTrainConfig, TrainConfig
from medfuse.training.loop import train


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def resume(folder, out, capsys, steps=2):
    """``medfuse train FOLDER -o OUT --resume`` with small settings; its exit status and standard error."""
    arguments = ["train", folder, "-o", out, "--steps", steps, "--batch-size", 2, "--crop", 16, "--val-every", 1]
    arguments += ["--width", 8, "--val-fraction", 0.34, "--resume", "--quiet"]
    code = main([str(argument) for argument in arguments])
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
    for content, message in (
        (b"", "not a readable medfuse checkpoint"),
        (good[: len(good) // 2], "not a readable medfuse checkpoint"),
        (b"not a checkpoint at all", "not a readable medfuse checkpoint"),
        (good, "not a medfuse checkpoint (no optimiser, torch_rng, log, elapsed, config)"),
    ):
        (out / "checkpoint.pt").write_bytes(content)
        code, err = resume(samples, out, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err


# A checkpoint with every key in place but contents that are not what train wrote: each is refused
# before any step, in one line naming the file, from Python (a MedfuseError) and the command line (exit 2).

SETTINGS = dict(steps=4, batch_size=2, crop=16, val_every=1, width=8, val_fraction=0.34, seed=0)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Three noise images and a run of two steps on them: its folder and its checkpoint."""
    root = tmp_path_factory.mktemp("resume")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        save_image(images / f"{index}.png", rng.integers(0, 256, (24, 24)).astype(np.uint8))
    train(TrainConfig(data=[str(images)], out=str(root / "run"), **{**SETTINGS, "steps": 2}), progress=False)
    return images, root / "run", torch.load(root / "run" / "checkpoint.pt", weights_only=True)


def first_group(state):
    return state["optimiser"]["param_groups"][0]


def first_moments(state):
    return state["optimiser"]["state"][0]


def rank_rng(state):
    return state["rank_rngs"][0]


def delete(mapping, key):
    del mapping[key]


MODEL_KEY = "encoder.shallow.weight"
DAMAGE = {
    # the model's state dict
    "model is a list": lambda s: s.update(model=[]),
    "model entry is text": lambda s: s["model"].update({MODEL_KEY: "weights"}),
    "model entry of another shape": lambda s: s["model"].update({MODEL_KEY: torch.zeros(3, 3)}),
    "model entry missing": lambda s: delete(s["model"], MODEL_KEY),
    "model entry extra": lambda s: s["model"].update({"extra.weight": torch.zeros(1)}),
    "model entry of integers": lambda s: s["model"].update({MODEL_KEY: torch.zeros(8, 1, 3, 3, dtype=torch.int64)}),
    "model entry not finite": lambda s: s["model"][MODEL_KEY].fill_(float("nan")),
    "model key a number": lambda s: s["model"].update({7: torch.zeros(1)}),
    # the optimiser's state dict
    "optimiser is text": lambda s: s.update(optimiser="adam"),
    "optimiser without state": lambda s: delete(s["optimiser"], "state"),
    "param_groups a dict": lambda s: s["optimiser"].update(param_groups={}),
    "param_groups empty": lambda s: s["optimiser"].update(param_groups=[]),
    "param_groups too many": lambda s: s["optimiser"]["param_groups"].append(copy.deepcopy(first_group(s))),
    "param group is text": lambda s: s["optimiser"].update(param_groups=["group"]),
    "params too short": lambda s: first_group(s).update(params=first_group(s)["params"][:-1]),
    "params not integers": lambda s: first_group(s)["params"].__setitem__(0, "zero"),
    "params twice": lambda s: first_group(s)["params"].__setitem__(1, 0),
    "lr is text": lambda s: first_group(s).update(lr="fast"),
    "lr negative": lambda s: first_group(s).update(lr=-1.0),
    "lr missing": lambda s: delete(first_group(s), "lr"),
    "betas too short": lambda s: first_group(s).update(betas=(0.9,)),
    "betas a number": lambda s: first_group(s).update(betas=0.9),
    "beta above one": lambda s: first_group(s).update(betas=(0.9, 1.5)),
    "eps is None": lambda s: first_group(s).update(eps=None),
    "weight_decay is None": lambda s: first_group(s).update(weight_decay=None),
    "amsgrad is text": lambda s: first_group(s).update(amsgrad="yes"),
    "foreach is a number": lambda s: first_group(s).update(foreach=3),
    "state a list": lambda s: s["optimiser"].update(state=[]),
    "state of an unknown parameter": lambda s: s["optimiser"]["state"].update({999: first_moments(s)}),
    "state entry is a number": lambda s: s["optimiser"]["state"].update({0: 5}),
    "moment missing": lambda s: delete(first_moments(s), "exp_avg"),
    "moment of another shape": lambda s: first_moments(s).update(exp_avg=torch.zeros(8)),
    "moment a list": lambda s: first_moments(s).update(exp_avg_sq=[0.0] * 72),
    "moment step missing": lambda s: delete(first_moments(s), "step"),
    "moment step two counts": lambda s: first_moments(s).update(step=torch.tensor([1.0, 2.0])),
    "amsgrad without its moment": lambda s: first_group(s).update(amsgrad=True),
    # random generators
    "rank_rngs a dict": lambda s: s.update(rank_rngs={}),
    "rank_rngs too short": lambda s: s.update(rank_rngs=[]),
    "rank rng is text": lambda s: s.update(rank_rngs=["seed"]),
    "rank rng of another generator": lambda s: rank_rng(s).update(bit_generator="MT19937"),
    "rank rng state a number": lambda s: rank_rng(s).update(state=5),
    "rank rng state text": lambda s: rank_rng(s)["state"].update(state="x"),
    "rank rng increment negative": lambda s: rank_rng(s)["state"].update(inc=-1),
    "rank rng state a float": lambda s: rank_rng(s)["state"].update(state=1.5),
    "rank rng without has_uint32": lambda s: delete(rank_rng(s), "has_uint32"),
    "rank rng uinteger too large": lambda s: rank_rng(s).update(uinteger=2**40),
    "no generator state at all": lambda s: delete(s, "rank_rngs"),
    "old single rng a list": lambda s: s.update(rng=[], rank_rngs=None) or delete(s, "rank_rngs"),
    "torch_rng a list": lambda s: s.update(torch_rng=[1, 2]),
    "torch_rng too short": lambda s: s.update(torch_rng=s["torch_rng"][:10]),
    "torch_rng of floats": lambda s: s.update(torch_rng=s["torch_rng"].float()),
    # step, log, trace, time, settings
    "step is text": lambda s: s.update(step="2"),
    "step zero": lambda s: s.update(step=0),
    "step a float": lambda s: s.update(step=2.0),
    "step a flag": lambda s: s.update(step=True),
    "step beyond the run": lambda s: s.update(step=10**9),
    "log a dict": lambda s: s.update(log={}),
    "log empty": lambda s: s.update(log=[]),
    "log record is text": lambda s: s["log"].__setitem__(0, "record"),
    "log record without val_loss": lambda s: delete(s["log"][-1], "val_loss"),
    "log record without val_psnr": lambda s: delete(s["log"][-1], "val_psnr"),
    "log loss is text": lambda s: s["log"][-1].update(train_loss="low"),
    "log record holds a tensor": lambda s: s["log"][0].update(note=torch.zeros(2)),
    "log steps fall": lambda s: s["log"].reverse(),
    "log ends early": lambda s: s["log"].pop(),
    "trace a number": lambda s: s.update(trace=5),
    "trace point too short": lambda s: s.update(trace=[[1]]),
    "trace step is text": lambda s: s.update(trace=[["a", 0.5]]),
    "elapsed is text": lambda s: s.update(elapsed="soon"),
    "elapsed negative": lambda s: s.update(elapsed=-1.0),
    "elapsed not a number": lambda s: s.update(elapsed=float("nan")),
    "config a list": lambda s: s.update(config=[]),
    "world_size is text": lambda s: s.update(world_size="one"),
    "world_size zero": lambda s: s.update(world_size=0),
}


def damaged_run(finished_run, tmp_path, damage):
    images, run, state = finished_run
    out = tmp_path / "run"
    shutil.copytree(run, out)
    state = copy.deepcopy(state)
    damage(state)
    torch.save(state, out / "checkpoint.pt")
    return images, out


@pytest.mark.parametrize("name", DAMAGE)
def test_a_checkpoint_with_wrong_contents_is_refused_in_one_line(finished_run, tmp_path, capsys, name):
    images, out = damaged_run(finished_run, tmp_path, DAMAGE[name])
    written = sorted(path.name for path in out.iterdir())
    with pytest.raises(MedfuseError) as refused:
        train(TrainConfig(data=[str(images)], out=str(out), resume=True, **SETTINGS), progress=False)
    message = str(refused.value)
    assert message.startswith(str(out / "checkpoint.pt")) and "\n" not in message

    code, err = resume(images, out, capsys, steps=SETTINGS["steps"])
    assert code == 2 and err.count("\n") == 1 and str(out / "checkpoint.pt") in err, err
    assert sorted(path.name for path in out.iterdir()) == written  # nothing trained, nothing written


def test_the_undamaged_checkpoint_resumes(finished_run, tmp_path):
    images, out = damaged_run(finished_run, tmp_path, lambda state: None)
    last = train(TrainConfig(data=[str(images)], out=str(out), resume=True, **SETTINGS), progress=False)
    assert last["step"] == 4


def test_the_refusals_say_what_is_wrong(finished_run, tmp_path):
    images = finished_run[0]
    for name, words in (
        ("model entry of another shape", "made with other settings (--architecture dran --width 8)"),
        ("lr is text", "optimiser param_groups[0] lr is 'fast', not a finite number"),
        ("moment of another shape", "optimiser state[0] exp_avg has shape (8,), not (8, 1, 3, 3)"),
        ("rank_rngs too short", "rank_rngs has 0 entries, not 1"),
        ("step beyond the run", "is at step 1000000000, beyond this run's 4 steps"),
        ("log ends early", "log ends at step 1, not at the checkpoint's step 2"),
    ):
        _, out = damaged_run(finished_run, tmp_path / name.replace(" ", "-"), DAMAGE[name])
        with pytest.raises(MedfuseError, match=re.escape(words)):
            train(TrainConfig(data=[str(images)], out=str(out), resume=True, **SETTINGS), progress=False)


def test_a_fusion_checkpoint_with_wrong_contents_is_refused_in_one_line(tmp_path, capsys, tiny_weights):
    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for modality in ("MRI", "CT"):
        (root / modality).mkdir(parents=True)
        for index in range(3):
            save_image(root / modality / f"{index}.png", rng.integers(0, 256, (24, 24)).astype(np.uint8))
    out = tmp_path / "run"
    settings = dict(
        data=[str(root)],
        out=str(out),
        init=str(tiny_weights),
        batch_size=1,
        crop=16,
        val_every=1,
        val_fraction=0.34,
        fusion_head=4,
        val_crops=1,
        lesions=1,
    )
    train(FusionTrainConfig(**settings, steps=1), progress=False)
    good = torch.load(out / "checkpoint.pt", weights_only=True)
    head = "fusion_head.reduce.weight"
    for damage, words in (
        (lambda s: delete(s["log"][-1], "val_transfer"), "log[0] has no val_transfer"),
        (lambda s: s["model"].update({head: s["model"][head][:1]}), "made with other settings (--init"),
        (lambda s: first_group(s).update(params=[]), "params has 0 entries"),
        (
            lambda s: s["optimiser"]["state"].update({0: {"step": torch.tensor(1.0)}}),
            "optimiser state[0] has no exp_avg",
        ),
    ):
        state = copy.deepcopy(good)
        damage(state)
        torch.save(state, out / "checkpoint.pt")
        with pytest.raises(MedfuseError, match=re.escape(words)):
            train(FusionTrainConfig(**settings, steps=2, resume=True), progress=False)
        code = main(
            [
                "train-fusion",
                str(root),
                "-o",
                str(out),
                "--init",
                str(tiny_weights),
                "--steps",
                "2",
                "--batch-size",
                "1",
                "--crop",
                "16",
                "--val-every",
                "1",
                "--val-fraction",
                "0.34",
                "--fusion-head",
                "4",
                "--val-crops",
                "1",
                "--lesions",
                "1",
                "--resume",
                "--quiet",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and words in err, err
