"""Stage 1 of DRAN: train the autoencoder on single images of every modality."""

from medfuse.training.loop import TrainConfig, train
from medfuse.training.losses import GradientLoss, PerceptualLoss, ReconstructionLoss

__all__ = ["GradientLoss", "PerceptualLoss", "ReconstructionLoss", "TrainConfig", "train"]
