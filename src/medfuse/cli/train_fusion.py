"""``medfuse train-fusion``: stage 2, :func:`medfuse.training.loop.train` with a
:class:`~medfuse.training.config.FusionTrainConfig`. Every default comes from that class."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from medfuse.cli.common import defaulted_options, show_progress
from medfuse.training.config import FusionTrainConfig

DEFAULTS = {field.name: field.default for field in fields(FusionTrainConfig)}


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser(
        "train-fusion",
        help=summary,
        description="Train DRAN's fusion stage: a small head that reads the frozen features of a trained "
        "stage-1 model (--init) for both sources of registered pairs and gives, at every pixel, how much of "
        "each source's Laplacian detail to keep at each scale and which source's brightness to show (the "
        "trained-pyramid rule). No fused ground truth: synthetic lesions (blobs, ellipses, rings, discs, "
        "textures of random size, contrast and polarity) are planted into both sources, and the fusion must "
        "change by what was planted; SSIM to both sources, the locally stronger source's gradient, the "
        "brighter source at a quarter of the size and staying within [0, 1] are weighed against that. "
        "Writes checkpoint.pt, weights.safetensors (the stage-1 model with its new head: use it with "
        "--model and --rule trained-pyramid), log.json and loss.png into OUT. torchrun works as for "
        "medfuse train. In Python: medfuse.training.loop.train(FusionTrainConfig(...)).",
    )
    parser.add_argument(
        "data",
        nargs="+",
        help="folders of registered pairs, each holding two modality folders whose images are "
        "paired by file name (MRI first, as medfuse benchmark reads them)",
    )
    parser.add_argument("-o", "--out", required=True, help="output folder for checkpoints, weights and logs")

    option = defaulted_options(parser, DEFAULTS)

    option("init", str, "the stage-1 model whose frozen features the head reads: a shipped name or a safetensors path")
    option("steps", int, "optimiser steps in all")
    option("batch_size", int, "pairs of crops per step")
    option("crop", int, "side of the random square crops (the same place in both sources)")
    option("lr", float, "Adam learning rate (with --resume, a different one applies from the resumed step on)")
    option("fusion_head", int, "hidden channels of the head")
    option("lesions", int, "lesions planted into each source of a crop")
    option("lambda_structure", float, "weight of 1 - SSIM with both sources (the lesion transfer's is 1)")
    option("lambda_gradient", float, "weight of the difference from the locally stronger source's gradient")
    option("lambda_intensity", float, "weight of the difference from the brighter source at a quarter of the size")
    option("lambda_range", float, "weight of what would be clipped away outside [0, 1]")
    option("val_fraction", float, "fraction of the pairs held out for validation")
    option("val_every", int, "validate and checkpoint every N steps")
    option("val_crops", int, "validation crops of the held-out pairs, drawn once")
    option("seed", int, "random seed")
    option("device", str, "torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from medfuse.dran.models import device_named
    from medfuse.training.distributed import ranks_from_environment
    from medfuse.training.fusion import find_pair_folders, split_pairs
    from medfuse.training.loop import check_run, train

    settings = {name: getattr(args, name) for name in DEFAULTS if hasattr(args, name) and name not in ("data", "out")}
    config = FusionTrainConfig(data=args.data, out=args.out, **{**settings, "device": str(device_named(args.device))})
    config.validate()
    check_run(config)
    main = ranks_from_environment().is_main
    if main:
        train_pairs, val_pairs = split_pairs(find_pair_folders(config.data), config.val_fraction, config.seed)
        print(
            f"training on {len(train_pairs)} pairs, validating on {len(val_pairs)} (--val-fraction "
            f"{config.val_fraction:g}); {config.steps} steps of {config.batch_size} crops of {config.crop} px, "
            f"on the frozen features of {config.init}"
        )
    last = train(config, progress=show_progress(args))
    if main:
        print(
            f"trained {last['step']} steps: train loss {last['train_loss']:.6f}, validation loss "
            f"{last['val_loss']:.6f} (lesion transfer {last['val_transfer']:.4f}, "
            f"1 - SSIM {last['val_structure']:.4f})"
        )
        print(f"weights: {Path(args.out) / 'weights.safetensors'}")
