"""DRAN fusion as MONAI transforms (the optional extra ``medfuse[monai]``).

>>> from monai.transforms import Compose, LoadImaged, EnsureChannelFirstd, ScaleIntensityRanged, SaveImaged
>>> from medfuse.integrations.monai import FuseDRANd
>>> fuse = Compose([LoadImaged(("mri", "ct")), EnsureChannelFirstd(("mri", "ct")),
...                 ScaleIntensityRanged("mri", 0, 800, 0, 1, clip=True),
...                 ScaleIntensityRanged("ct", 0, 80, 0, 1, clip=True),   # a brain window, in HU
...                 FuseDRANd(("mri", "ct"), output_key="fused"),
...                 SaveImaged("fused", output_postfix="fused")])

:class:`FuseDRAN` fuses two one-channel MetaTensors (1, I, J[, K]) whose values are already in
[0, 1] on one grid (same shape, same affine within
:data:`medfuse.clinical.grids.GRID_TOLERANCE`), slice by slice along the last axis, with
:func:`medfuse.fusion.volumes.fuse_volumes`: the same numbers ``medfuse.fuse_volumes`` gives
for the same arrays. The fused MetaTensor carries A's affine and metadata, and says how it was
made under :data:`PROVENANCE_KEYS`. :class:`FuseDRANd` is its dictionary form. Mapping
intensities to [0, 1] (a CT window, percentiles) and bringing B onto A's grid (``Spacingd``,
``ResampleToMatchd``) are the pipeline's steps before it, in MONAI's own transforms.

MONAI is imported when this module is (a missing MONAI is one line naming ``pip install
'medfuse[monai]'``); nothing else in medfuse imports this module.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch

from medfuse._shared.optional import import_optional

monai = import_optional("monai", "monai")

from monai.config import KeysCollection  # noqa: E402 (after the check that MONAI is installed)
from monai.data import MetaTensor  # noqa: E402
from monai.transforms import MapTransform, Transform  # noqa: E402

from medfuse import __version__  # noqa: E402
from medfuse._shared.checks import check_output_folder  # noqa: E402
from medfuse._shared.errors import InputError  # noqa: E402
from medfuse._shared.files import write_folder_atomically  # noqa: E402
from medfuse.clinical.grids import grid_differences  # noqa: E402
from medfuse.dran import DEFAULT_MODEL, DEFAULT_RULE  # noqa: E402
from medfuse.dran.models import weights_digest, weights_path  # noqa: E402
from medfuse.dran.rules import get_rule  # noqa: E402
from medfuse.fusion.engine import cached_model, check_weight_map  # noqa: E402
from medfuse.fusion.volumes import fuse_volumes  # noqa: E402
from medfuse.image.grid import Geometry  # noqa: E402

PROVENANCE_KEYS = (
    "medfuse_version",
    "medfuse_rule",
    "medfuse_weights",
    "medfuse_weights_sha256",
    "medfuse_source_a",
    "medfuse_source_b",
)
"""Metadata keys of the fused MetaTensor: medfuse's version, the rule, the weights (name or path)
and their SHA-256, and the two sources' ``filename_or_obj`` (empty when unknown)."""
UNIT_TOLERANCE = 1e-4
"""How far outside [0, 1] an input value may lie (rounding of an intensity scaling) before it is refused."""


def _spatial(name: str, image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The one channel of a channel-first image, as float32 (I, J, K) (2-D images get K = 1)."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim not in (3, 4) or array.shape[0] != 1:
        raise InputError(
            f"{name}: DRAN fuses one-channel images, channel first (1, I, J) or (1, I, J, K); got "
            f"shape {tuple(array.shape)} (EnsureChannelFirstd first; colour: fuse the luminance)"
        )
    array = array[0].astype(np.float32, copy=False)
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if not np.isfinite([low, high]).all() or low < -UNIT_TOLERANCE or high > 1 + UNIT_TOLERANCE:
        raise InputError(
            f"{name}: values must lie in [0, 1], got [{low:.4g}, {high:.4g}] (scale it first, e.g. "
            f"ScaleIntensityRanged(..., b_min=0, b_max=1, clip=True))"
        )
    array = np.clip(array, 0, 1)
    return array if array.ndim == 3 else array[..., None]


def _affine(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The image's 4 x 4 affine (MONAI keeps one for 2-D images too), identity for a plain array."""
    return image.affine.detach().cpu().numpy().astype(np.float64) if isinstance(image, MetaTensor) else np.eye(4)


def _source_name(image: torch.Tensor | np.ndarray) -> str:
    return str(image.meta.get("filename_or_obj", "")) if isinstance(image, MetaTensor) else ""


class FuseDRAN(Transform):
    """Fuse two one-channel images on one grid with DRAN and a fusion rule: ``FuseDRAN()(a, b)``.

    ``rule`` (default ``DEFAULT_RULE``) and ``weights`` (a shipped name, default ``DEFAULT_MODEL``,
    or a weights path) are checked when the transform is made; the model loads once per process
    and ``device``. ``with_weight_map=True`` returns ``(fused, w_a)``: A's weight at every voxel,
    for rules that have one (:func:`medfuse.fusion.engine.check_weight_map`).
    """

    def __init__(
        self,
        rule: str = DEFAULT_RULE,
        weights: str = DEFAULT_MODEL,
        device: str = "cpu",
        batch_size: int | None = None,
        with_weight_map: bool = False,
    ) -> None:
        get_rule(rule)
        if with_weight_map:
            check_weight_map(rule)
        self.rule, self.weights, self.device = rule, weights, device
        self.batch_size, self.with_weight_map = batch_size, with_weight_map
        self.digest = weights_digest(weights)

    def __call__(  # type: ignore[override]  # a transform of two images, where MONAI's Transform takes one
        self, image_a: torch.Tensor | np.ndarray, image_b: torch.Tensor | np.ndarray
    ) -> MetaTensor | tuple[MetaTensor, MetaTensor]:
        unit_a, unit_b = _spatial("image A", image_a), _spatial("image B", image_b)
        affine_a, affine_b = _affine(image_a), _affine(image_b)
        differences = grid_differences(unit_a.shape, Geometry(affine_a), unit_b.shape, Geometry(affine_b))
        if differences:
            raise InputError(
                f"images A and B are not on one grid ({'; '.join(differences)}): resample B onto A "
                f"first (ResampleToMatchd)"
            )
        weights = np.empty(unit_a.shape, dtype=np.float32) if self.with_weight_map else None
        model = cached_model(self.weights, self.device)
        fused = fuse_volumes(model, unit_a, unit_b, self.rule, self.batch_size, weights_out=weights)
        results = [self._like_a(array, image_a, image_b) for array in (fused, weights) if array is not None]
        return (results[0], results[1]) if self.with_weight_map else results[0]

    def _like_a(
        self, array: np.ndarray, image_a: torch.Tensor | np.ndarray, image_b: torch.Tensor | np.ndarray
    ) -> MetaTensor:
        """``array`` (I, J[, 1]) as a (1, I, J[, K]) MetaTensor with A's affine and metadata and the provenance."""
        spatial = array if np.ndim(image_a) == 4 else array[..., 0]
        meta = dict(image_a.meta) if isinstance(image_a, MetaTensor) else {}
        if isinstance(image_a, MetaTensor):
            meta["affine"] = image_a.affine.clone()
        meta.update(
            zip(
                PROVENANCE_KEYS,
                (__version__, self.rule, str(self.weights), self.digest, _source_name(image_a), _source_name(image_b)),
            )
        )
        result = MetaTensor(torch.from_numpy(np.ascontiguousarray(spatial[None])), meta=meta)
        if isinstance(image_a, MetaTensor):
            result.applied_operations = list(image_a.applied_operations)
        return result


class FuseDRANd(MapTransform):
    """Dictionary form of :class:`FuseDRAN`: ``keys`` names A and B (in that order); the fusion
    goes to ``output_key``, and with ``weight_map_key`` A's weight map goes there too. The other
    arguments are :class:`FuseDRAN`'s."""

    def __init__(
        self,
        keys: KeysCollection,
        output_key: Hashable = "fused",
        rule: str = DEFAULT_RULE,
        weights: str = DEFAULT_MODEL,
        device: str = "cpu",
        batch_size: int | None = None,
        weight_map_key: Hashable | None = None,
    ) -> None:
        super().__init__(keys)
        if len(self.keys) != 2:
            raise InputError(f"FuseDRANd takes two keys, A's and B's, got {len(self.keys)}: {list(self.keys)}")
        self.output_key, self.weight_map_key = output_key, weight_map_key
        self.fuse = FuseDRAN(rule, weights, device, batch_size, with_weight_map=weight_map_key is not None)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        result = dict(data)
        missing = [key for key in self.keys if key not in result]
        if missing:
            raise InputError(f"FuseDRANd: no {', '.join(map(repr, missing))} in the data (keys: {list(result)})")
        key_a, key_b = self.keys
        fused = self.fuse(result[key_a], result[key_b])
        if isinstance(fused, tuple):  # with a weight map: as weight_map_key is given
            result[self.output_key], result[self.weight_map_key] = fused
        else:
            result[self.output_key] = fused
        return result


BUNDLE_TEMPLATE = Path(__file__).with_name("monai_bundle")
"""The bundle's configs and README, with the versions and the default rule left as MEDFUSE_VERSION,
MEDFUSE_RULE and the like (:func:`_versions`)."""


def _versions() -> dict[str, str]:
    """What the bundle's templates leave open: the versions installed now and medfuse's default rule."""
    import nibabel
    import PIL
    import safetensors

    return {
        "MEDFUSE_VERSION": __version__,
        "MONAI_VERSION": monai.__version__,
        "PYTORCH_VERSION": torch.__version__.split("+")[0],
        "NUMPY_VERSION": np.__version__,
        "SAFETENSORS_VERSION": safetensors.__version__,
        "NIBABEL_VERSION": nibabel.__version__,
        "PILLOW_VERSION": PIL.__version__,
        "MEDFUSE_RULE": DEFAULT_RULE,
    }


def write_bundle(folder: str | os.PathLike, weights: str = DEFAULT_MODEL) -> Path:
    """Write a MONAI bundle (the model-zoo layout) of ``weights`` (a shipped name or a path) to the
    new folder ``folder``: ``configs/inference.json`` (load, scale to [0, 1], :class:`FuseDRANd`,
    save, for every pair of a dataset folder), ``configs/metadata.json`` (with the versions
    installed now), ``models/model.safetensors`` and ``docs/README.md`` (how to run it, then the
    weights' model card). The folder appears whole or not at all; an existing one is refused.
    Run it with ``python -m monai.bundle run --config_file configs/inference.json ...``."""
    folder = check_output_folder(folder, "bundle folder")
    source = weights_path(weights)
    card = source.with_suffix(".md")
    versions = _versions()

    def write(temporary: Path) -> None:
        for part in ("configs/inference.json", "configs/metadata.json", "docs/README.md"):
            text = (BUNDLE_TEMPLATE / part).read_text(encoding="utf-8")
            for name, version in versions.items():
                text = text.replace(name, version)
            if part == "docs/README.md":
                text += (
                    card.read_text(encoding="utf-8") if card.exists() else f"No model card was found beside {source}.\n"
                )
            (temporary / part).parent.mkdir(exist_ok=True)
            (temporary / part).write_text(text, encoding="utf-8")
        (temporary / "models").mkdir()
        shutil.copyfile(source, temporary / "models" / "model.safetensors")

    return write_folder_atomically(folder, write)
