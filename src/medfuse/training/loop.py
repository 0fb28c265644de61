"""The stage-1 training loop: seeded, resumable, logged."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medfuse._shared.checks import check_output_folder
from medfuse._shared.errors import InputError, MissingInputError, OutputError
from medfuse._shared.files import check_folder_writable, output_locks, write_atomically, write_json_atomically
from medfuse.dran.models import create_model, load_model, save_weights, weights_metadata, weights_path
from medfuse.training.checkpoints import check_checkpoint, read_checkpoint, restore
from medfuse.training.config import DEFAULT_LR, FusionTrainConfig, TrainConfig
from medfuse.training.data import find_images, load_grey, random_crops, split_by_name
from medfuse.training.distributed import (
    Ranks,
    gather,
    mean_over_ranks,
    parallel,
    parameters_digest,
    process_group,
    ranks_from_environment,
    wait_for_all,
)
from medfuse.training.losses import PerceptualLoss, ReconstructionLoss

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.safetensors"
LOG = "log.json"
CURVE = "loss.png"


def psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB for images in [0, 1] (output clipped to [0, 1] as a saved image would be)."""
    mse = torch.mean((output.clamp(0, 1) - target) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loss_fn: torch.nn.Module, images: list[torch.Tensor], device: torch.device
) -> tuple[float, float]:
    """Mean loss and mean reconstruction PSNR over whole images, one at a time."""
    model.eval()
    losses, psnrs = [], []
    for image in images:
        image = image[None].to(device)
        output = model(image)
        losses.append(loss_fn(output, image).item())
        psnrs.append(psnr(output, image))
    model.train()
    return float(np.mean(losses)), float(np.mean(psnrs))


class AutoencoderStage:
    """Stage 1, what :func:`train` needs to know of it: the autoencoder learns to rebuild random
    crops of single images (:class:`~medfuse.training.losses.ReconstructionLoss`), validated on
    whole held-out images (loss and PSNR). :class:`medfuse.training.fusion.FusionStage` is stage 2."""

    record_keys = ("val_loss", "val_psnr")
    """What :meth:`evaluate` adds to each record of the log (a resumed checkpoint's log is checked for them)."""
    settings = ("architecture", "width")
    """The settings that shape the model: a checkpoint of other ones is resumed with them."""

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        assert config.lambda_perc is not None  # set by TrainConfig.__post_init__
        perceptual = None
        if config.lambda_perc > 0:
            assert config.vgg_weights is not None  # TrainConfig.validate: the perceptual loss needs them
            perceptual = PerceptualLoss(config.vgg_weights).to(device)
        self.loss_fn = ReconstructionLoss(config.lambda_grad, config.lambda_perc, perceptual).to(device)

    def initial_model(self) -> tuple[torch.nn.Module, TrainConfig]:
        return _initial_model(self.config, self.device)

    def data(self, config: TrainConfig) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, int]]:
        """Training and validation images, and their counts for the log."""
        train_paths, val_paths = training_split(config)
        val_images = load_grey(val_paths)
        smallest, why = config.smallest_side()
        for path, image in zip(val_paths, val_images):
            if min(image.shape[-2:]) < smallest:
                raise InputError(
                    f"{path}: {image.shape[-1]} x {image.shape[-2]} px is held out for validation, "
                    f"where whole images go through the network, which needs at least {smallest} px "
                    f"a side ({why}); remove it from the data"
                )
        return load_grey(train_paths), val_images, {"train_images": len(train_paths), "val_images": len(val_paths)}

    def trainable(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module whose parameters the optimiser moves and the ranks synchronise."""
        return model

    def loss(self, trained: torch.nn.Module, data: list[torch.Tensor], rng: np.random.Generator) -> torch.Tensor:
        batch = random_crops(data, self.config.batch_size, self.config.crop, rng).to(self.device)
        return self.loss_fn(trained(batch), batch)

    def evaluate(self, model: torch.nn.Module, data: list[torch.Tensor]) -> dict[str, float]:
        val_loss, val_psnr = evaluate(model, self.loss_fn, data, self.device)
        return {"val_loss": val_loss, "val_psnr": val_psnr}

    def arguments(self, config: TrainConfig, model: torch.nn.Module) -> dict[str, int]:
        """The architecture's arguments, as the weights file records them (a fusion stage that
        ``init`` weights had is kept as it was: this stage does not use it)."""
        head = getattr(model, "fusion_head", None)
        return (
            {"width": config.width}
            if head is None
            else {"width": config.width, "fusion_head": head.reduce.out_channels}
        )


TRACE_POINTS = 200
"""About this many points of the training loss go into the loss plot (``trace`` in log.json),
whatever the validation interval: a short run's plot is never empty."""


def plot_curve(log: list[dict], trace: list[list[float]], path: Path) -> None:
    """The loss plot: the training loss's running mean at ``trace``'s ``[step, loss]`` points
    (a line) and the validation loss at each of ``log``'s records (marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([step for step, _ in trace], [loss for _, loss in trace], label="train (running mean)")
    axis.plot([r["step"] for r in log], [r["val_loss"] for r in log], marker="o", label="validation")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    try:
        write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
    finally:
        plt.close(figure)


def stage_of(config: TrainConfig, device: torch.device) -> AutoencoderStage:
    """The stage a config trains: :class:`~medfuse.training.fusion.FusionStage` for a
    :class:`~medfuse.training.config.FusionTrainConfig`, else :class:`AutoencoderStage`."""
    if isinstance(config, FusionTrainConfig):
        from medfuse.training.fusion import FusionStage

        # FusionStage has AutoencoderStage's methods, on its own config and validation data (duck-typed).
        return FusionStage(config, device)  # type: ignore[return-value]
    return AutoencoderStage(config, device)


def train(config: TrainConfig, progress: bool = True) -> dict:
    """Train a DRAN autoencoder (stage 1), or a fusion head on a trained one's frozen features
    (stage 2, a :class:`~medfuse.training.config.FusionTrainConfig`); returns the last log record.

    Writes into ``config.out``: ``checkpoint.pt`` (every ``val_every`` steps, what
    ``resume`` continues from), ``weights.safetensors``, ``log.json`` and ``loss.png``.
    Under ``torchrun`` every rank runs this same loop (:mod:`medfuse.training.distributed`):
    the gradients are averaged over the ranks, each draws its own crops (rank r > 0 seeded by
    ``(seed, r)``, rank 0 by ``seed`` as a single process), and rank 0 alone writes; ``log.json``
    records the world size, the global batch size and every rank's weights digest.
    """
    config.validate()
    ranks = ranks_from_environment()
    # rank 0 writes: it holds the output folder's lock, so a second run into it at once is refused in one line
    with (
        process_group(ranks, torch.device(config.device)) as device,
        output_locks(config.out if ranks.is_main else None),
    ):
        return _train(config, progress, ranks, device)


def training_split(config: TrainConfig) -> tuple[list[Path], list[Path]]:
    """The training and validation images of ``config`` (found in its folders, split by file
    name): what :func:`train` will use, to show before it starts."""
    train_paths, val_paths = split_by_name(find_images(config.data), config.val_fraction, config.seed)
    if not train_paths or not val_paths:
        raise InputError("need at least two distinct file names to hold some out for validation")
    return train_paths, val_paths


def check_run(config: TrainConfig) -> None:
    """Refuse, before anything is read, a run whose output cannot be written: an output folder in a
    missing folder, a checkpoint that is there (or not, with ``resume``), ``init`` weights that
    are not there."""
    out = Path(config.out)
    check_output_folder(out)
    if config.init is not None:
        weights_path(config.init)
    checkpoint_path = out / CHECKPOINT
    if config.resume and not checkpoint_path.is_file():
        raise MissingInputError(f"--resume: no checkpoint at {checkpoint_path}")
    if not config.resume and checkpoint_path.is_file():
        raise OutputError(f"{out} holds a checkpoint already; resume it (--resume) or choose another folder")


def _initial_model(config: TrainConfig, device: torch.device) -> tuple[torch.nn.Module, TrainConfig]:
    """A random model of ``config``'s architecture, or the weights ``config.init`` names (with
    their architecture and width, which the returned config then records)."""
    if config.init is None:
        return create_model(config.architecture, width=config.width).to(device), config
    path = weights_path(config.init)
    model = load_model(path, device)  # one line for a file that is not weights; loaded frozen, for inference
    metadata = weights_metadata(path)
    model.train()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    width = json.loads(metadata.get("arguments", "{}")).get("width", config.width)
    return model, replace(config, init=str(config.init), architecture=metadata.get("architecture", "dran"), width=width)


def _train(config: TrainConfig, progress: bool, ranks: Ranks, device: torch.device) -> dict:
    out = Path(config.out)
    if config.threads:
        torch.set_num_threads(config.threads)
    stage = stage_of(config, device)

    check_run(config)
    checkpoint_path = out / CHECKPOINT
    torch.manual_seed(config.seed)
    model, config = stage.initial_model()  # before the images: a bad --init is said at once
    train_data, val_data, counts = stage.data(config)
    if ranks.is_main:
        out.mkdir(exist_ok=True)
        check_folder_writable(checkpoint_path)
    wait_for_all(ranks)

    module = stage.trainable(model)
    optimiser = torch.optim.Adam(
        [p for p in module.parameters() if p.requires_grad], lr=DEFAULT_LR if config.lr is None else config.lr
    )
    rng = np.random.default_rng(config.seed if ranks.rank == 0 else (config.seed, ranks.rank))
    step, log, trace, elapsed, change = 0, [], [], 0.0, None
    trace_every = max(1, config.steps // TRACE_POINTS)
    if config.resume:
        state = read_checkpoint(checkpoint_path, device)
        check_checkpoint(
            state, checkpoint_path, model, optimiser, ranks.world_size, config.steps, stage.record_keys, stage.settings
        )
        restore(state, checkpoint_path, model, optimiser, rng, ranks.rank)
        if config.lr is not None and config.lr != optimiser.param_groups[0]["lr"]:
            before = optimiser.param_groups[0]["lr"]
            change = f"learning rate {before:g} until step {state['step']}, {config.lr:g} from here on"
            for group in optimiser.param_groups:
                group["lr"] = config.lr
        step, log, elapsed, trace = state["step"], state["log"], state["elapsed"], state.get("trace", [])

    lr = optimiser.param_groups[0]["lr"]
    settings = {
        **asdict(replace(config, lr=lr)),
        "world_size": ranks.world_size,
        "global_batch_size": config.batch_size * ranks.world_size,
    }
    trained = parallel(module, ranks, device)
    trained.train()
    running, count = 0.0, 0
    started = time.perf_counter() - elapsed
    bar = tqdm(total=config.steps, initial=step, disable=not (progress and ranks.is_main), desc="training", unit="step")
    if change and ranks.is_main:
        bar.write(change)
    while step < config.steps:
        loss = stage.loss(trained, train_data, rng)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        running, count = running + loss.item(), count + 1
        if step % trace_every == 0 and ranks.is_main:
            trace.append([step, running / count])
        bar.update(1)
        bar.set_postfix(loss=f"{running / count:.5f}")
        if step % config.val_every == 0 or step == config.steps:
            record = {
                "step": step,
                "lr": lr,
                "train_loss": mean_over_ranks(running / count, ranks, device),
                **stage.evaluate(model, val_data),
                "elapsed_s": round(time.perf_counter() - started, 1),
            }
            log.append(record)
            running, count = 0.0, 0
            rank_rngs = gather(rng.bit_generator.state, ranks)
            if ranks.is_main:
                bar.write(json.dumps(record))
                state = {
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "rank_rngs": rank_rngs,
                    "world_size": ranks.world_size,
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "log": log,
                    "trace": trace,
                    "elapsed": record["elapsed_s"],
                    "config": settings,
                }
                write_atomically(checkpoint_path, partial(torch.save, state))
                write_json_atomically(out / LOG, {"config": settings, **counts, "log": log, "trace": trace})
                plot_curve(log, trace, out / CURVE)
    bar.close()
    digests = gather(parameters_digest(model), ranks)
    if ranks.is_main:
        write_json_atomically(
            out / LOG, {"config": settings, **counts, "log": log, "trace": trace, "rank_weight_digests": digests}
        )
        save_weights(
            model.cpu(),
            out / WEIGHTS,
            config.architecture,
            stage.arguments(config, model),
            {
                "steps": str(step),
                "train_loss": f"{log[-1]['train_loss']:.6g}",
                "val_loss": f"{log[-1]['val_loss']:.6g}",
                "world_size": str(ranks.world_size),
            },
        )
    wait_for_all(ranks)
    return log[-1]
