"""The settings of one training run, with their defaults in one place (the command line's
options take theirs from here): :class:`TrainConfig` for stage 1 (the autoencoder),
:class:`FusionTrainConfig` for stage 2 (the fusion head). No torch."""

from __future__ import annotations

from dataclasses import dataclass

from medfuse._shared.errors import InputError

DEFAULT_LR = 1e-4
"""Adam's learning rate unless told (the paper's)."""
DEFAULT_LAMBDA_PERC = 0.2
"""Weight of the VGG16-BN perceptual loss when its weights are given (the paper's lambda2)."""
SMALLEST_SIDE = (2, "the encoder mirrors an odd side by one pixel")
"""The smallest image side (px) the autoencoder and its loss take, and why: a crop, and every
whole image held out for validation, must be at least this on each side."""
SMALLEST_SIDE_PERCEPTUAL = (4, "the perceptual loss's VGG16-BN halves the image twice")
"""The same with the perceptual loss on."""
SMALLEST_FUSION_CROP = (6, "the structure term mirrors its 11 x 11 SSIM windows by 5 pixels")
"""The smallest crop of the fusion stage, and why (its held-out pairs are cropped too)."""


@dataclass
class TrainConfig:
    """Settings of one training run (defaults: the paper's Adam 1e-4, batch 4, lambda1 0.2).

    The perceptual term needs ``vgg_weights``; ``lambda_perc`` None means
    ``DEFAULT_LAMBDA_PERC`` with them and 0 (off) without.

    ``lr`` None means ``DEFAULT_LR`` for a new run and the checkpoint's learning rate when
    resuming; a learning rate given with ``resume`` replaces the checkpoint's from the resumed
    step on (said in the log: every record holds the ``lr`` it ran with)."""

    data: list[str]
    out: str
    steps: int = 20000
    batch_size: int = 4
    crop: int = 128
    lr: float | None = None
    lambda_grad: float = 0.2
    lambda_perc: float | None = None
    vgg_weights: str | None = None
    val_fraction: float = 0.05
    val_every: int = 500
    width: int = 64
    architecture: str = "dran"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    resume: bool = False
    init: str | None = None
    """Start from these weights (a shipped model name or a safetensors path) instead of random
    ones: fine-tuning. Their architecture and width replace ``architecture`` and ``width``."""

    def __post_init__(self) -> None:
        if self.lambda_perc is None:
            self.lambda_perc = DEFAULT_LAMBDA_PERC if self.vgg_weights else 0.0

    def check_start(self) -> None:
        """Stage 1 starts from ``init`` weights or resumes a checkpoint, not both."""
        if self.init is not None and self.resume:
            raise InputError(
                "resume continues a run from its checkpoint; init starts a new one from weights: give one of them"
            )

    def smallest_side(self) -> tuple[int, str]:
        """The smallest crop (and validation image side) this run's network and loss take, and why."""
        assert self.lambda_perc is not None  # set by __post_init__
        return SMALLEST_SIDE_PERCEPTUAL if self.lambda_perc > 0 else SMALLEST_SIDE

    def validate(self) -> None:
        for name in ("steps", "batch_size", "crop", "val_every", "width"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        smallest, why = self.smallest_side()
        if self.crop < smallest:
            raise InputError(f"crop must be at least {smallest} px ({why}), got {self.crop}")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.lr is not None and self.lr <= 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads}")
        assert self.lambda_perc is not None  # set by __post_init__
        if self.lambda_perc < 0 or self.lambda_grad < 0:
            raise InputError("loss weights must not be negative")
        from medfuse.dran.models import ARCHITECTURES

        if self.architecture not in ARCHITECTURES:
            raise InputError(f"unknown architecture {self.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
        self.check_start()
        if self.lambda_perc > 0 and not self.vgg_weights:
            raise InputError(
                "the perceptual loss (lambda_perc > 0) needs vgg_weights, a torchvision vgg16_bn "
                "ImageNet state dict; medfuse never downloads it"
            )


DEFAULT_FUSION_INIT = "dran-havard"
"""The stage-1 model whose frozen features a new fusion stage learns from unless told."""


@dataclass
class FusionTrainConfig(TrainConfig):
    """Settings of a stage-2 run: a fusion head (:class:`~medfuse.dran.fusion_head.PyramidWeightHead`,
    hidden width ``fusion_head``) trained on the frozen features of the stage-1 model ``init``
    (default ``dran-havard``), from registered pairs: ``data`` are folders that each hold two
    modality folders of images paired by file name. Each source of a crop gets ``lesions``
    planted lesions; the loss weights are those of
    :class:`~medfuse.training.fusion.FusionLoss` (the transfer term's is 1). ``val_fraction`` of
    the pair names is held out. ``architecture`` and ``width`` come from ``init``. The defaults are the
    recipe of the shipped ``dran-fusion-havard`` (its model card)."""

    steps: int = 700
    crop: int = 96
    lr: float | None = 2e-3
    init: str | None = DEFAULT_FUSION_INIT
    fusion_head: int = 16
    lesions: int = 6
    lambda_structure: float = 0.2
    lambda_gradient: float = 1.0
    lambda_intensity: float = 0.25
    lambda_range: float = 1.0
    val_every: int = 175
    val_crops: int = 16
    """Validation: this many crops of the held-out pairs, with their lesions, drawn once by the seed."""

    def check_start(self) -> None:
        """Stage 2 always names the stage-1 model it reads (``init``), resumed or not."""
        if self.init is None:
            raise InputError(
                "the fusion stage learns from a trained stage-1 model's features: give init "
                "(a shipped model name such as dran-havard, or a safetensors path)"
            )

    def smallest_side(self) -> tuple[int, str]:
        return SMALLEST_FUSION_CROP

    def validate(self) -> None:
        for name in ("fusion_head", "val_crops"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lesions < 0:
            raise InputError(f"lesions must not be negative, got {self.lesions}")
        if min(self.lambda_structure, self.lambda_gradient, self.lambda_intensity, self.lambda_range) < 0:
            raise InputError("loss weights must not be negative")
        super().validate()
