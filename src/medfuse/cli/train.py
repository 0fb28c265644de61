"""``medfuse train``: stage-1 training of the DRAN autoencoder."""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse.cli.common import UserError, torch_device
from medfuse.models import ARCHITECTURES


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train a DRAN autoencoder (stage 1) on single images",
        description="Train the DRAN autoencoder on single images of every modality (colour images "
        "are reduced to their Y channel). Loss: pixel MSE + lambda1 * Sobel-gradient MSE "
        "(+ lambda2 * VGG16-BN perceptual loss with --vgg-weights). Writes checkpoint.pt, "
        "weights.safetensors, log.json and loss.png into OUT. On several GPUs or processes: "
        "torchrun --nproc-per-node N -m medfuse train ... trains one model with DistributedDataParallel "
        "(NCCL on CUDA, gloo on the CPU; --batch-size is per process, the global batch N times it; "
        "rank 0 writes; --resume needs the same N).",
    )
    parser.add_argument("data", nargs="+", help="folders of training images (searched recursively)")
    parser.add_argument("-o", "--out", required=True, help="output folder for checkpoints, weights and logs")
    parser.add_argument("--steps", type=int, default=20000, help="optimiser steps in all (default 20000)")
    parser.add_argument("--batch-size", type=int, default=4, help="crops per step (default 4, as the paper)")
    parser.add_argument("--crop", type=int, default=128, help="side of the random square crops (default 128)")
    parser.add_argument("--lr", type=float,
                        help="Adam learning rate (default 1e-4, as the paper; with --resume the checkpoint's, "
                        "and a different one given with --resume applies from the resumed step on, as the "
                        "run prints and log.json records)")
    parser.add_argument("--lambda-grad", type=float, default=0.2, help="weight of the gradient loss (default 0.2)")
    parser.add_argument("--lambda-perc", type=float,
                        help="weight of the VGG16-BN perceptual loss (default 0.2 with --vgg-weights, "
                        "else the loss is off; a positive value needs --vgg-weights)")
    parser.add_argument("--vgg-weights",
                        help="torchvision vgg16_bn ImageNet state dict (.pth): turns the perceptual loss on")
    parser.add_argument("--val-fraction", type=float, default=0.05,
                        help="fraction of file names held out for validation (default 0.05)")
    parser.add_argument("--val-every", type=int, default=500, help="validate and checkpoint every N steps")
    parser.add_argument("--width", type=int, default=64, help="feature channels C (default 64)")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="dran",
                        help="dran (default) or dran-edge, the extended paper's edge-enhanced encoder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from medfuse.training import TrainConfig, train
    from medfuse.training.distributed import ranks_from_environment

    if args.lambda_perc and not args.vgg_weights:
        raise UserError("the perceptual loss (--lambda-perc) needs --vgg-weights PATH, a torchvision "
                        "vgg16_bn ImageNet state dict; medfuse never downloads it")
    if args.vgg_weights and not Path(args.vgg_weights).is_file():
        raise UserError(f"--vgg-weights: no such file: {args.vgg_weights}")
    config = TrainConfig(
        data=args.data, out=args.out, steps=args.steps, batch_size=args.batch_size, crop=args.crop,
        lr=args.lr, lambda_grad=args.lambda_grad,
        lambda_perc=(0.2 if args.lambda_perc is None else args.lambda_perc) if args.vgg_weights else 0.0,
        vgg_weights=args.vgg_weights,
        val_fraction=args.val_fraction, val_every=args.val_every, width=args.width,
        architecture=args.architecture, seed=args.seed,
        device=str(torch_device(args.device)), threads=args.threads, resume=args.resume,
    )
    try:
        last = train(config)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise UserError(str(error)) from None
    if not ranks_from_environment().is_main:
        return
    print(f"trained {last['step']} steps: train loss {last['train_loss']:.6f}, "
          f"validation loss {last['val_loss']:.6f}, validation PSNR {last['val_psnr']:.2f} dB")
    print(f"weights: {Path(args.out) / 'weights.safetensors'}")
