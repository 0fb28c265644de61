"""Single training images: every modality, colour reduced to its Y channel."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medfuse._shared.errors import MissingInputError
from medfuse.image.scales import grey_unit
from medfuse.io.images import IMAGE_SUFFIXES, load_image


def find_images(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """Every image file under the given folders (recursively), sorted."""
    paths: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise MissingInputError(f"{folder}: no such folder")
        paths += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not paths:
        raise MissingInputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {', '.join(map(str, folders))}")
    return sorted(paths)


def held_out_names(names: list[str], val_fraction: float, seed: int) -> set[str]:
    """A seeded ``val_fraction`` of ``names`` (at least one; none of a single name), drawn by
    position in the order given: what both training stages hold out for validation."""
    if len(names) < 2:
        return set()
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[i] for i in order[: max(1, round(val_fraction * len(names)))]}


def split_by_name(paths: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Hold out a seeded fraction of file names: both images of a registered pair share a
    name, so a pair lands wholly in train or wholly in validation."""
    held = held_out_names(sorted({p.stem for p in paths}), val_fraction, seed)
    return [p for p in paths if p.stem not in held], [p for p in paths if p.stem in held]


def load_grey(paths: list[Path]) -> list[torch.Tensor]:
    """Images as (1, H, W) float32 tensors in [0, 1] (colour -> Y, BT.601)."""
    return [torch.from_numpy(grey_unit(load_image(p))).float().unsqueeze(0) for p in paths]


def random_crops(images: list[torch.Tensor], batch_size: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    """A batch of random ``crop`` x ``crop`` patches with random horizontal/vertical flips.

    Images smaller than the crop are edge-padded (replicate) first.
    """
    batch = []
    for index in rng.integers(len(images), size=batch_size):
        image = images[index]
        height, width = image.shape[-2:]
        if height < crop or width < crop:
            pad_h, pad_w = max(crop - height, 0), max(crop - width, 0)
            image = torch.nn.functional.pad(image[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
            height, width = image.shape[-2:]
        top = rng.integers(height - crop + 1)
        left = rng.integers(width - crop + 1)
        patch = image[:, top : top + crop, left : left + crop]
        if rng.random() < 0.5:
            patch = patch.flip(-1)
        if rng.random() < 0.5:
            patch = patch.flip(-2)
        batch.append(patch)
    return torch.stack(batch)
