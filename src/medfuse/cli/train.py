"""``medfuse train``: :func:`medfuse.training.loop.train` on the command line. Every default
comes from :class:`~medfuse.training.config.TrainConfig`."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from medfuse._shared.errors import InputError
from medfuse.cli.common import defaulted_options, show_progress
from medfuse.dran import ARCHITECTURE_NAMES
from medfuse.training.config import DEFAULT_LAMBDA_PERC, DEFAULT_LR, TrainConfig

DEFAULTS = {field.name: field.default for field in fields(TrainConfig)}


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser(
        "train",
        help=summary,
        description="Train the DRAN autoencoder on single images of every modality (colour images "
        "are reduced to their Y channel). Loss: pixel MSE + lambda1 * Sobel-gradient MSE "
        "(+ lambda2 * VGG16-BN perceptual loss with --vgg-weights). Writes checkpoint.pt, "
        "weights.safetensors, log.json and loss.png into OUT. On several GPUs or processes: "
        "torchrun --nproc-per-node N -m medfuse train ... trains one model with DistributedDataParallel "
        "(NCCL on CUDA, gloo on the CPU; --batch-size is per process, the global batch N times it; "
        "rank 0 writes; --resume needs the same N). In Python: medfuse.training.loop.train(TrainConfig(...)).",
    )
    parser.add_argument("data", nargs="+", help="folders of training images (searched recursively)")
    parser.add_argument("-o", "--out", required=True, help="output folder for checkpoints, weights and logs")

    option = defaulted_options(parser, DEFAULTS)

    option("steps", int, "optimiser steps in all")
    option("batch_size", int, "crops per step, as the paper")
    option("crop", int, "side of the random square crops")
    parser.add_argument(
        "--lr",
        type=float,
        help=f"Adam learning rate (default {DEFAULT_LR:.0e}, as the paper; with --resume the "
        "checkpoint's, and a different one given with --resume applies from the resumed step on, "
        "as the run prints and log.json records)",
    )
    option("lambda_grad", float, "weight of the gradient loss")
    parser.add_argument(
        "--lambda-perc",
        type=float,
        help=f"weight of the VGG16-BN perceptual loss (default {DEFAULT_LAMBDA_PERC:g} with "
        "--vgg-weights, else the loss is off; a positive value needs --vgg-weights)",
    )
    parser.add_argument(
        "--vgg-weights", help="torchvision vgg16_bn ImageNet state dict (.pth): turns the perceptual loss on"
    )
    option("val_fraction", float, "fraction of file names held out for validation")
    option("val_every", int, "validate and checkpoint every N steps")
    option("width", int, "feature channels C")
    parser.add_argument(
        "--architecture",
        choices=ARCHITECTURE_NAMES,
        default=DEFAULTS["architecture"],
        help=f"dran, or dran-edge: the extended paper's edge-enhanced encoder (default {DEFAULTS['architecture']})",
    )
    option("seed", int, "random seed")
    option("device", str, "torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument(
        "--init",
        metavar="WEIGHTS",
        help="fine-tune: start from these weights (a shipped model name such as dran-havard, or a "
        "safetensors path) instead of random ones; their architecture and width are used",
    )
    parser.set_defaults(run=run)


def describe_split(train_paths: list[Path], val_paths: list[Path], config: TrainConfig) -> str:
    """What the run will train on: images, names and folders of each split, and the steps."""

    def counted(paths: list[Path]) -> str:
        folders = sorted({str(path.parent) for path in paths})
        shown = ", ".join(folders[:3]) + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")
        names = len({path.stem for path in paths})
        return f"{len(paths)} images ({names} name{'s' if names != 1 else ''}) in {shown}"

    start = f"from {config.init}" if config.init else "from random weights"
    return (
        f"training on {counted(train_paths)}; validating on {counted(val_paths)} (split by file name, "
        f"--val-fraction {config.val_fraction:g}); {config.steps} steps of {config.batch_size} crops of "
        f"{config.crop} px, {start}"
    )


def run(args: argparse.Namespace) -> None:
    from medfuse.dran.models import device_named
    from medfuse.training.distributed import ranks_from_environment
    from medfuse.training.loop import check_run, train, training_split

    if args.lambda_perc and not args.vgg_weights:
        raise InputError(
            "the perceptual loss (--lambda-perc) needs --vgg-weights PATH, a torchvision "
            "vgg16_bn ImageNet state dict; medfuse never downloads it"
        )
    if args.vgg_weights and not Path(args.vgg_weights).is_file():
        raise InputError(f"--vgg-weights: no such file: {args.vgg_weights}")
    settings = {name: getattr(args, name) for name in DEFAULTS if name not in ("data", "out")}
    config = TrainConfig(data=args.data, out=args.out, **{**settings, "device": str(device_named(args.device))})
    config.validate()
    check_run(config)
    if ranks_from_environment().is_main:
        print(describe_split(*training_split(config), config))
    last = train(config, progress=show_progress(args))
    if not ranks_from_environment().is_main:
        return
    print(
        f"trained {last['step']} steps: train loss {last['train_loss']:.6f}, "
        f"validation loss {last['val_loss']:.6f}, validation PSNR {last['val_psnr']:.2f} dB"
    )
    print(f"weights: {Path(args.out) / 'weights.safetensors'}")
