"""Named model architectures and shipped weights, created by name (a small registry).

Weights are safetensors files whose metadata records the architecture and its
arguments, so ``load_model(path)`` needs nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from medfuse._shared.errors import InputError, MissingInputError, one_line
from medfuse._shared.files import file_digest, write_atomically
from medfuse.dran import ARCHITECTURE_NAMES, DEFAULT_MODEL
from medfuse.dran.network import DRAN, EdgeDRAN

WEIGHTS_DIR = Path(__file__).parent / "weights"
ARCHITECTURES: dict[str, Callable[..., DRAN]] = dict(zip(ARCHITECTURE_NAMES, (DRAN, EdgeDRAN), strict=True))
SHIPPED_WEIGHTS = {
    "dran-havard": WEIGHTS_DIR / "dran-havard.safetensors",
    "dran-edge-havard": WEIGHTS_DIR / "dran-edge-havard.safetensors",
    "dran-fusion-havard": WEIGHTS_DIR / "dran-fusion-havard.safetensors",
}


def list_models() -> list[str]:
    """Names of the shipped, trained models."""
    return sorted(SHIPPED_WEIGHTS)


def create_model(architecture: str = "dran", **arguments: int) -> DRAN:
    """An untrained model of a registered architecture."""
    if architecture not in ARCHITECTURES:
        raise InputError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[architecture](**arguments)


def save_weights(
    model: nn.Module,
    path: str | os.PathLike,
    architecture: str = "dran",
    arguments: dict[str, int] | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write a model's parameters as safetensors, with what ``load_model`` needs to rebuild it."""
    path = Path(path)
    metadata = {"architecture": architecture, "arguments": json.dumps(arguments or {})}
    metadata.update(extra or {})
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    return write_atomically(path, lambda temporary: save_file(state, str(temporary), metadata=metadata))


def weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def weights_path(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> Path:
    """The weights file of a shipped model name, or the path itself;
    :class:`~medfuse._shared.errors.MissingInputError` (a FileNotFoundError) if none."""
    path = SHIPPED_WEIGHTS.get(str(name_or_path), Path(name_or_path))
    if not path.is_file():
        raise MissingInputError(
            f"no model {str(name_or_path)!r}: not a shipped name ({', '.join(list_models())}) and no such file"
        )
    return path


def weights_digest(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> str:
    """SHA-256 of what the weights file of a name or path holds (what a cache of models is keyed by)."""
    return file_digest(weights_path(name_or_path))


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu") -> DRAN:
    """A trained model in evaluation mode, from a shipped name or a safetensors path.

    Its convolution weights are stored channels-last, the layout oneDNN (CPU) and cuDNN (GPU)
    convolve fastest: the encoder measured 1.4x faster so on the CPU
    (``benchmarks/fusion_speed.py``)."""
    path = weights_path(name_or_path)
    try:
        metadata = weights_metadata(path)
        state = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types
        raise InputError(f"{path}: not a safetensors weights file ({error})") from None
    architecture = metadata.get("architecture", "dran")
    try:
        model = create_model(architecture, **json.loads(metadata.get("arguments", "{}")))
        model.load_state_dict(state)
    except (RuntimeError, TypeError, json.JSONDecodeError) as error:  # parameters of another shape or name
        raise InputError(f"{path}: its weights do not fit a {architecture!r} model ({one_line(error)})") from None
    # Module.to takes memory_format (documented, parsed by torch._C._nn._parse_to); its typed overloads leave it out.
    model = model.to(device_named(device), memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model.eval().requires_grad_(False)


def device_named(name: str | torch.device) -> torch.device:
    """A usable torch device from a name such as ``cpu``, ``cuda`` or ``cuda:1``;
    :class:`~medfuse._shared.errors.InputError` saying why not."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"device {name}: not a torch device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name}: CUDA is not available on this machine")
    return device
