"""Time medfuse's rules beside the DRAN authors' released code on one 256 x 256 CT-MRI pair.

    python benchmarks/fusion_speed.py [--repeats 7] [--threads N] [--slices 128] [--sides 128 256 512]

In one process, on the bundled pair CT-MRI/41010 (grey, 256 x 256):

- CPU: ``medfuse.fuse`` with every rule, and the authors' code (``../shared/anchors/dilran``,
  run as their ``inference.py`` runs it: encoder on each image, their SFNN rule, decoder) when
  it is there. The methods take turns within each repeat, so a slower or busier moment of the
  machine hits them alike; the median of the repeats is reported, with each rule's speed-up
  over the authors' code and its cost in units of the ``average`` rule (the network alone), and
  the network-free twin ``pyramid-energy`` as a baseline method; then the network's floor (the
  FLOPs of every convolution of the encoder on both images and of the fusion head, at the rate
  this CPU convolves a 3 x 3, 64 -> 64 layer) against what the rules take; then the default rule,
  ``trained-pyramid`` and ``average`` on the pair resized to each of ``--sides``: how the cost
  grows with the image side.
- CUDA, when available: the same per pair (``torch.cuda.synchronize`` around each), then
  ``fuse_volumes`` on a 256 x 256 x ``--slices`` phantom pair with the batch size it picks from
  the free GPU memory, in slices per second; and the exactness checks: the nuclear norms of the
  GPU features against float64 ``svdvals``, and every rule's fused pair against the CPU
  reference images of ``tests/data/reference_fusions.npz`` (grey levels apart, at most).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import medfuse
from medfuse.dran.nuclear import matrix_nuclear_norms
from medfuse.fusion.memory import default_batch_size
from medfuse.fusion.methods import create_method
from medfuse.fusion.volumes import fuse_volumes
from medfuse.io.images import load_image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(medfuse.__file__).parent / "samples"
AUTHORS_CODE = ROOT.parent / "shared" / "anchors" / "dilran"
REFERENCE = ROOT / "tests" / "data" / "reference_fusions.npz"
AUTHORS = "authors' DRAN + SFNN"


def authors_fusion(device: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """The authors' released model and SFNN rule as one function of two grey float32 arrays,
    run as their inference script runs it; None when their code is not beside the project."""
    if not (AUTHORS_CODE / "model_v5.py").is_file():
        return None
    sys.path.insert(0, str(AUTHORS_CODE))
    from model_v5 import fullModel
    from our_utils import fusion_strategy

    model = fullModel()
    model.load_state_dict(torch.load(AUTHORS_CODE / "pretrained" / "last.pt", map_location=device))
    model.to(device)

    def fuse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            features_a = model.fe(torch.from_numpy(a)[None, None].to(device))
            features_b = model.fe(torch.from_numpy(b)[None, None].to(device))
            fused = model.recon(fusion_strategy(features_a, features_b, device, "SFNN")).clamp(0, 1)[0, 0]
        return fused.cpu().numpy()

    return fuse


def median_times(methods: dict[str, Callable[[], object]], repeats: int, synchronise: bool) -> dict[str, float]:
    """Median seconds of each method; the methods take turns within each repeat, after a warm-up."""
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(repeats + 1):
        for name, method in methods.items():
            if synchronise:
                torch.cuda.synchronize()
            started = time.perf_counter()
            method()
            if synchronise:
                torch.cuda.synchronize()
            if repeat:
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in samples.items()}


def print_table(times: dict[str, float]) -> None:
    authors = times.get(AUTHORS)
    header = f"{'method':<22} {'ms per pair':>12} {'x average':>10}"
    print(header + (f" {'speed-up over the authors':>26}" if authors else ""))
    for name, seconds in times.items():
        line = f"{name:<22} {seconds * 1000:12.1f} {seconds / times['average']:10.2f}"
        print(line + (f" {authors / seconds:26.2f}" if authors else ""))


def pair_methods(device: str, mri: np.ndarray, ct: np.ndarray) -> dict[str, Callable[[], object]]:
    model = medfuse.load_model(device=device)
    methods: dict[str, Callable[[], object]] = {
        rule: (lambda rule=rule: medfuse.fuse(mri, ct, rule=rule, model=model)) for rule in medfuse.list_rules()
    }
    twin = create_method("pyramid-energy")
    methods["pyramid-energy (twin)"] = lambda: twin(mri, ct)
    authors = authors_fusion(device)
    if authors is not None:
        grey_mri, grey_ct = (np.float32(image) / np.float32(255) for image in (mri, ct))
        methods[AUTHORS] = lambda: authors(grey_mri, grey_ct)
    return methods


def convolution_flops(model: torch.nn.Module, image: torch.Tensor) -> dict[str, float]:
    """Multiply-adds x 2 of every convolution that fusing one pair with the default rule runs: the
    encoder on both images and the fusion head (when the model has one), counted by hooks."""
    counted = {"encoder": 0.0, "fusion head": 0.0}
    part = {"name": "encoder"}

    def count(module: torch.nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        counted[part["name"]] += 2.0 * kernel * output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            features = model.encode(torch.cat([image, image]))
            if getattr(model, "fusion_head", None) is not None:
                part["name"] = "fusion head"
                model.fusion_head(*features.chunk(2))
    finally:
        for hook in hooks:
            hook.remove()
    return counted


def convolution_rate(repeats: int) -> float:
    """FLOP/s of this CPU on the encoder's typical layer: a 3 x 3, 64 -> 64 convolution of two
    256 x 256 maps, channels-last, median of ``repeats``."""
    layer = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last).eval()
    maps = torch.randn(2, 64, 256, 256).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = median_times({"conv": lambda: layer(maps)}, repeats, synchronise=False)["conv"]
    return 2.0 * 9 * 64 * 64 * 256 * 256 * 2 / seconds


def network_floor(mri: np.ndarray, repeats: int, times: dict[str, float]) -> None:
    """The network's floor, its convolutions' FLOPs at this CPU's rate, against what the rules that
    run it take (the default, which runs none, beside them)."""
    model = medfuse.load_model()
    image = torch.from_numpy(np.float32(mri) / np.float32(255))[None, None]
    flops = convolution_flops(model, image)
    rate = convolution_rate(repeats)
    floor = sum(flops.values()) / rate
    print(
        f"\nthe network's floor on this CPU: {rate / 1e9:.1f} GFLOP/s (a 3 x 3, 64 -> 64 convolution of two "
        f"256 x 256 maps); "
        + ", ".join(f"{name} {value / 1e9:.2f} GFLOP" for name, value in flops.items())
        + f" per pair: {floor * 1000:.0f} ms"
    )
    for rule in dict.fromkeys((medfuse.DEFAULT_RULE, "trained-pyramid", "sfnn-pyramid", "average")):
        print(f"  {rule:<18} {times[rule] * 1000:8.1f} ms, {times[rule] / floor:6.2f}x the floor")


def growth_with_side(mri: np.ndarray, ct: np.ndarray, sides: list[int], repeats: int) -> None:
    """The default rule, ``trained-pyramid`` and ``average`` (the network alone) on the pair resized
    to each side."""
    model = medfuse.load_model()
    rules = list(dict.fromkeys((medfuse.DEFAULT_RULE, "trained-pyramid", "average")))
    print(f"\ncost with the image side, CPU, median of {repeats}: ms per pair, and microseconds per pixel")
    print(f"{'side':>6} " + " ".join(f"{rule + ' ms':>20} {'us/px':>7}" for rule in rules))
    for side in sides:
        a, b = (np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR)) for image in (mri, ct))
        times = median_times(
            {rule: (lambda rule=rule, a=a, b=b: medfuse.fuse(a, b, rule=rule, model=model)) for rule in rules},
            repeats,
            synchronise=False,
        )
        print(
            f"{side:>6} " + " ".join(f"{times[rule] * 1000:20.1f} {times[rule] * 1e6 / side**2:7.2f}" for rule in rules)
        )


def phantom_volumes(side: int, slices: int) -> tuple[np.ndarray, np.ndarray]:
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in (side, side, slices)), indexing="ij")
    outer = (i / 0.85) ** 2 + (j / 0.7) ** 2 + (k / 1.1) ** 2 < 1
    inner = ((i - 0.2) / 0.3) ** 2 + (j / 0.25) ** 2 + (k / 0.8) ** 2 < 1
    a = np.where(inner, 1.0, np.where(outer, 0.45, 0.0)).astype(np.float32)
    b = np.where(np.roll(inner, 20, axis=0), 0.1, np.where(outer, 0.8, 0.0)).astype(np.float32)
    return a, b


def cuda_section(mri: np.ndarray, ct: np.ndarray, repeats: int, slices: int) -> None:
    print(f"\n## CUDA: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print_table(median_times(pair_methods("cuda", mri, ct), repeats, synchronise=True))
    model = medfuse.load_model(device="cuda")
    volume_a, volume_b = phantom_volumes(256, slices)
    batch = default_batch_size("cuda", 256, 256)
    print(f"\nfuse_volumes, 256 x 256 x {slices} phantom pair, batch size {batch} (from the free GPU memory)")
    for rule in (medfuse.DEFAULT_RULE, "sfnn", "average"):
        fuse_volumes(model, volume_a[..., :batch], volume_b[..., :batch], rule)
        torch.cuda.synchronize()
        started = time.perf_counter()
        fuse_volumes(model, volume_a, volume_b, rule)
        torch.cuda.synchronize()
        print(f"{rule:<22} {slices / (time.perf_counter() - started):10.1f} slices/s")
    with torch.no_grad():
        pair = torch.from_numpy(np.stack([mri, ct]) / np.float32(255)).float()[:, None].cuda()
        softmax = torch.softmax(model.encode(pair), dim=1)
    reference = torch.linalg.svdvals(softmax.double()).sum(dim=-1)
    error = ((matrix_nuclear_norms(softmax).double() - reference).abs() / reference).max().item()
    print(f"\nnuclear norms on CUDA: largest relative error against float64 svdvals {error:.2e}")
    with np.load(REFERENCE) as stored:
        worst = max(
            int(
                np.abs(
                    medfuse.fuse(mri, ct, rule=rule, model=model).astype(int)
                    - stored[f"CT-MRI-41010/{rule}"].astype(int)
                ).max()
            )
            for rule in medfuse.list_rules()
        )
    print(f"fused on CUDA against the CPU reference images, every rule: at most {worst} grey level(s) apart")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--slices", type=int, default=128, help="slices of the CUDA volume (default 128)")
    parser.add_argument(
        "--sides",
        type=int,
        nargs="*",
        default=[128, 256, 512],
        help="image sides of the cost-growth table (default 128 256 512; none to skip)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the authors' code calls softmax without dim
    mri = load_image(SAMPLES / "CT-MRI" / "MRI" / "41010.png")
    ct = load_image(SAMPLES / "CT-MRI" / "CT" / "41010.png")
    print(
        f"## CPU: {torch.get_num_threads()} torch threads, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"256 x 256 CT-MRI pair 41010, median of {args.repeats}, load average before "
        f"{os.getloadavg()[0]:.2f}"
    )
    if not (AUTHORS_CODE / "model_v5.py").is_file():
        print(f"(the authors' code is not at {AUTHORS_CODE}: their row is left out)")
    times = median_times(pair_methods("cpu", mri, ct), args.repeats, synchronise=False)
    print_table(times)
    network_floor(mri, args.repeats, times)
    if args.sides:
        growth_with_side(mri, ct, args.sides, max(3, args.repeats // 2))
    if torch.cuda.is_available():
        cuda_section(mri, ct, args.repeats, args.slices)
    else:
        print("\n(no CUDA device: the GPU section is left out)")


if __name__ == "__main__":
    main()
