import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import medfuse
from medfuse.cli import main
from medfuse.dran.models import load_model
from medfuse.io.images import save_image
from medfuse.training.config import TrainConfig
from medfuse.training.data import held_out_names, split_by_name
from medfuse.training.loop import train
from medfuse.training.losses import PerceptualLoss, ReconstructionLoss, sobel_gradients, vgg16_bn_blocks


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Six registered 'pairs' of small synthetic images: grey discs and colour squares."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "A").mkdir()
    (root / "B").mkdir()
    yy, xx = np.mgrid[:40, :40]
    for index in range(6):
        disc = ((yy - rng.integers(10, 30)) ** 2 + (xx - 20) ** 2 < rng.integers(30, 150)) * 200
        save_image(root / "A" / f"{index}.png", disc.astype(np.uint8))
        colour = np.zeros((40, 40, 3), np.uint8)
        colour[5:25, 10:30] = rng.integers(0, 256, 3)
        save_image(root / "B" / f"{index}.png", colour)
    return root


def config(folder, out, **changes) -> TrainConfig:
    settings = dict(
        data=[str(folder)],
        out=str(out),
        steps=4,
        batch_size=2,
        crop=16,
        lr=1e-3,
        val_every=2,
        width=8,
        val_fraction=0.34,
        seed=0,
    )
    settings.update(changes)
    return TrainConfig(**settings)


def test_training_writes_everything_and_resume_is_exact(image_folder, tmp_path):
    last = train(config(image_folder, tmp_path / "straight"), progress=False)
    assert last["step"] == 4
    for name in ("checkpoint.pt", "weights.safetensors", "log.json", "loss.png"):
        assert (tmp_path / "straight" / name).is_file()
    log = json.loads((tmp_path / "straight" / "log.json").read_text())
    assert [r["step"] for r in log["log"]] == [2, 4]
    assert log["train_images"] + log["val_images"] == 12

    train(config(image_folder, tmp_path / "split", steps=2), progress=False)
    train(config(image_folder, tmp_path / "split", steps=4, resume=True), progress=False)
    straight = load_file(str(tmp_path / "straight" / "weights.safetensors"))
    resumed = load_file(str(tmp_path / "split" / "weights.safetensors"))
    for key in straight:
        torch.testing.assert_close(straight[key], resumed[key])
    assert load_model(tmp_path / "split" / "weights.safetensors").width == 8


def test_loss_decreases(image_folder, tmp_path):
    log = train(config(image_folder, tmp_path, steps=40, val_every=20, lr=3e-3), progress=False)
    history = json.loads((tmp_path / "log.json").read_text())["log"]
    assert history[-1]["val_loss"] < history[0]["val_loss"] and log["val_psnr"] > 0


def test_split_keeps_pairs_together(image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    train_paths, val_paths = split_by_name(paths, 0.34, seed=0)
    assert {p.stem for p in train_paths}.isdisjoint({p.stem for p in val_paths})
    assert len(val_paths) == 4  # two names, both modalities


def test_gradient_loss_sees_edges():
    flat = torch.zeros(1, 1, 8, 8)
    step = flat.clone()
    step[..., 4:] = 1.0
    assert sobel_gradients(flat).abs().sum() == 0
    gradients = sobel_gradients(step)
    assert gradients[0, 0, 3:5, 3:5].min() > 0 and gradients[0, 1, 1:-1, 1:-1].abs().sum() == 0
    loss = ReconstructionLoss(lambda_grad=0.5)
    assert loss(step, step) == 0 and loss(flat, step) > torch.mean(step**2)


def test_perceptual_loss_with_torchvision_style_weights(tmp_path):
    torch.manual_seed(0)
    state = {f"features.{key}": value for key, value in vgg16_bn_blocks().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)  # a full state dict carries more; it is ignored
    torch.save(state, tmp_path / "vgg16_bn.pth")
    perceptual = PerceptualLoss(tmp_path / "vgg16_bn.pth")
    image = torch.rand(1, 1, 16, 16)
    assert perceptual(image, image) == 0 and perceptual(image, 1 - image) > 0
    with pytest.raises(FileNotFoundError, match="VGG16-BN"):
        PerceptualLoss(tmp_path / "missing.pth")


def test_cli_perceptual_without_weights_is_a_clear_error(image_folder, tmp_path, capsys):
    code = main(["train", str(image_folder), "-o", str(tmp_path / "run"), "--lambda-perc", "0.2"])
    assert code == 2 and "--vgg-weights" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_resume_without_checkpoint(image_folder, tmp_path, capsys):
    code = main(["train", str(image_folder), "-o", str(tmp_path), "--resume", "--steps", "2"])
    assert code == 2 and "no checkpoint" in capsys.readouterr().err


def test_cli_refuses_to_overwrite_a_run_and_bad_device(image_folder, tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"an earlier run")
    code = main(["train", str(image_folder), "-o", str(tmp_path), "--steps", "2"])
    assert code == 2 and "holds a checkpoint already" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"an earlier run"
    code = main(["train", str(image_folder), "-o", str(tmp_path / "new"), "--device", "bogus"])
    assert code == 2 and "not a torch device" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_config_refuses_perceptual_loss_without_weights_and_bad_threads(image_folder, tmp_path):
    with pytest.raises(ValueError, match="needs vgg_weights"):
        train(config(image_folder, tmp_path, lambda_perc=0.2), progress=False)
    with pytest.raises(ValueError, match="threads"):
        train(config(image_folder, tmp_path, threads=-1), progress=False)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a torchvision vgg16_bn"):
        PerceptualLoss(tmp_path / "junk.pth")


def test_resume_keeps_the_checkpoints_learning_rate_unless_given_one(image_folder, tmp_path, capsys):
    train(config(image_folder, tmp_path, steps=2, val_every=2, lr=2e-3), progress=False)
    train(config(image_folder, tmp_path, steps=4, val_every=2, lr=None, resume=True), progress=False)
    history = json.loads((tmp_path / "log.json").read_text())
    assert [record["lr"] for record in history["log"]] == [2e-3, 2e-3] and history["config"]["lr"] == 2e-3

    code = main(
        [
            "train",
            str(image_folder),
            "-o",
            str(tmp_path),
            "--resume",
            "--steps",
            "6",
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
            "--lr",
            "5e-4",
        ]
    )
    assert code == 0 and "learning rate 0.002 until step 4, 0.0005 from here on" in capsys.readouterr().out
    history = json.loads((tmp_path / "log.json").read_text())
    assert [record["lr"] for record in history["log"]] == [2e-3, 2e-3, 5e-4] and history["config"]["lr"] == 5e-4
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["optimiser"]["param_groups"][0]["lr"] == 5e-4


def test_a_new_run_takes_the_papers_learning_rate(image_folder, tmp_path):
    from medfuse.training.config import DEFAULT_LR

    train(config(image_folder, tmp_path, steps=2, val_every=2, lr=None), progress=False)
    assert json.loads((tmp_path / "log.json").read_text())["log"][0]["lr"] == DEFAULT_LR == 1e-4


def test_edge_enhanced_architecture_trains_and_loads(image_folder, tmp_path):
    train(config(image_folder, tmp_path, steps=2, val_every=2, architecture="dran-edge"), progress=False)
    model = load_model(tmp_path / "weights.safetensors")
    assert type(model).__name__ == "EdgeDRAN" and model.width == 8
    with pytest.raises(ValueError, match="unknown architecture"):
        config(image_folder, tmp_path / "x", architecture="unet").validate()


def test_a_short_run_has_a_loss_plot_with_a_point_per_step(image_folder, tmp_path):
    """issue 22: with one validation record the plot used to be empty; the training loss is traced."""
    train(config(image_folder, tmp_path, steps=5, val_every=500), progress=False)
    payload = json.loads((tmp_path / "log.json").read_text())
    assert len(payload["log"]) == 1 and [step for step, _ in payload["trace"]] == [1, 2, 3, 4, 5]
    assert all(loss > 0 for _, loss in payload["trace"]) and (tmp_path / "loss.png").stat().st_size > 0


def test_init_fine_tunes_from_weights_with_their_architecture(image_folder, tmp_path, tiny_weights):
    train(
        config(image_folder, tmp_path, steps=1, val_every=1, lr=1e-12, width=64, init=str(tiny_weights)), progress=False
    )
    tuned = load_model(tmp_path / "weights.safetensors")
    start = load_model(tiny_weights)
    for (name, before), (_, after) in zip(start.state_dict().items(), tuned.state_dict().items()):
        torch.testing.assert_close(after, before, atol=1e-6, rtol=0, msg=name)  # lr 1e-12: where it started
    recorded = json.loads((tmp_path / "log.json").read_text())["config"]
    assert recorded["width"] == 8 and recorded["init"] == str(tiny_weights)  # the file's width, not the 64 asked
    with pytest.raises(ValueError, match="give one of them"):
        train(config(image_folder, tmp_path, init=str(tiny_weights), resume=True), progress=False)


def test_cli_says_what_it_trains_on_before_it_starts(image_folder, tmp_path, capsys):
    arguments = ["train", str(image_folder), "--steps", "1", "--crop", "16", "--width", "8", "--val-fraction", "0.34"]
    code = main([*arguments, "-o", str(tmp_path / "run"), "--init", str(tmp_path / "missing.safetensors")])
    captured = capsys.readouterr()
    assert code == 2 and "missing.safetensors" in captured.err and captured.out == ""  # checks first, then the summary
    (tmp_path / "not-weights.safetensors").write_bytes(b"\x89PNG not weights")
    code = main([*arguments, "-o", str(tmp_path / "run"), "--init", str(tmp_path / "not-weights.safetensors")])
    captured = capsys.readouterr()
    assert code == 2 and "not a safetensors weights file" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "run").exists()
    assert main([*arguments, "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("training on 8 images (4 names) in ") and "validating on 4 images (2 names)" in out
    assert "from random weights" in out


def test_a_crop_too_small_for_the_network_is_refused_before_anything(image_folder, tmp_path, capsys):
    from medfuse._shared.errors import InputError

    code = main(["train", str(image_folder), "-o", str(tmp_path / "run"), "--crop", "1", "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "crop must be at least 2 px" in err
    assert not (tmp_path / "run").exists()
    train(config(image_folder, tmp_path / "two", crop=2, steps=1, val_every=1), progress=False)  # the real minimum

    torch.manual_seed(0)
    vgg = tmp_path / "vgg16_bn.pth"
    torch.save({f"features.{key}": value for key, value in vgg16_bn_blocks().state_dict().items()}, vgg)
    with pytest.raises(InputError, match=r"crop must be at least 4 px \(the perceptual loss"):
        train(config(image_folder, tmp_path / "three", crop=3, vgg_weights=str(vgg)), progress=False)
    train(config(image_folder, tmp_path / "four", crop=4, steps=1, val_every=1, vgg_weights=str(vgg)), progress=False)
    model = medfuse.create_model("dran", width=8)
    with pytest.raises(RuntimeError):  # one pixel less than each minimum fails inside torch
        model(torch.rand(1, 1, 1, 1))
    with pytest.raises(RuntimeError):
        ReconstructionLoss(0.2, 0.2, PerceptualLoss(vgg))(model(torch.rand(1, 1, 3, 3)), torch.rand(1, 1, 3, 3))


def test_an_image_too_small_held_out_for_validation_is_named_before_the_first_step(image_folder, tmp_path, capsys):
    from medfuse._shared.errors import InputError

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    save_image(data / "A" / "tiny.png", np.full((1, 1), 90, np.uint8))
    names = sorted({path.stem for path in data.rglob("*.png")})
    seed = next(seed for seed in range(100) if "tiny" in held_out_names(names, 0.34, seed))
    with pytest.raises(InputError, match=r"tiny\.png: 1 x 1 px is held out for validation.*at least 2 px"):
        train(config(data, tmp_path / "run", seed=seed, val_every=500, steps=1000), progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    code = main(
        [
            "train",
            str(data),
            "-o",
            str(tmp_path / "cli"),
            "--seed",
            str(seed),
            "--val-fraction",
            "0.34",
            "--crop",
            "16",
            "--width",
            "8",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "tiny.png: 1 x 1 px" in err
    assert not (tmp_path / "cli" / "checkpoint.pt").exists()
