"""Layer 8: stage 1 of DRAN, the autoencoder trained on single images of every modality: the
settings (:mod:`~medfuse.training.config`, no torch), images and crops
(:mod:`~medfuse.training.data`), losses (:mod:`~medfuse.training.losses`), the one loop
(:mod:`~medfuse.training.loop`) and its distributed set-up (:mod:`~medfuse.training.distributed`)."""

from medfuse._shared.lazy import lazy_names

_PUBLIC = {
    "TrainConfig": "medfuse.training.config",
    "train": "medfuse.training.loop",
    "GradientLoss": "medfuse.training.losses",
    "PerceptualLoss": "medfuse.training.losses",
    "ReconstructionLoss": "medfuse.training.losses",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_names(__name__, _PUBLIC)  # imported on first use: medfuse.training.config needs no torch
