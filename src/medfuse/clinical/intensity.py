"""Intensities of clinical volumes -> [0, 1] before fusion: CT windows and percentile clipping.

Pure functions on arrays. Each returns the mapped array and an :class:`IntensityMapping`
that records what was applied, so that it can be written into the output's metadata.

CT windows (level L and width W in Hounsfield units) map ``L - W/2`` to 0 and ``L + W/2``
to 1, linearly, clipping outside: ``y = clip((x - (L - W/2)) / W, 0, 1)``. The named
windows are those of Radiopaedia's article "Windowing (CT)" (Murphy A, Baba Y et al.,
https://radiopaedia.org/articles/windowing-ct): brain W80 L40; subdural W130-300 L50-100,
of which we take the middle, W215 L75; bone (temporal bone) W2800 L600; soft tissue
W350-400 L20-60, here W400 L50.

MRI, PET and SPECT have no absolute scale; they are clipped at two percentiles of the
volume's own values (default 0.5 and 99.5) and scaled to [0, 1]:
``y = clip((x - p_low) / (p_high - p_low), 0, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medfuse._shared.errors import InputError

CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "bone": (600.0, 2800.0),
    "soft-tissue": (50.0, 400.0),
}
"""Named CT windows: name -> (level, width) in HU (sources in the module docstring)."""

DEFAULT_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class IntensityMapping:
    """What mapped a volume's intensities to [0, 1]: input value ``low`` -> 0, ``high`` -> 1.

    ``method`` is "window" (then ``name`` is the window's name or None for an explicit
    level/width) or "percentiles" (then ``percentiles`` holds the two percentiles).
    """

    method: str
    low: float
    high: float
    name: str | None = None
    percentiles: tuple[float, float] | None = None

    @property
    def level(self) -> float:
        """Centre of the mapped range (the window level for a CT window)."""
        return (self.low + self.high) / 2

    @property
    def width(self) -> float:
        """Length of the mapped range (the window width for a CT window)."""
        return self.high - self.low

    def describe(self) -> str:
        """A short, human-readable record, e.g. ``window brain L40 W80 HU`` or
        ``percentiles 0.5-99.5 (12.3..840)``."""
        if self.method == "window":
            label = f"window {self.name} " if self.name else "window "
            return f"{label}L{self.level:g} W{self.width:g} HU"
        low_p, high_p = self.percentiles or DEFAULT_PERCENTILES
        return f"percentiles {low_p:g}-{high_p:g} ({self.low:.4g}..{self.high:.4g})"

    def brief(self) -> str:
        """A few characters for tight fields (NIfTI descrip): ``win brain``, ``win 40/80``, ``pct 0.5-99.5``."""
        if self.method == "window":
            return f"win {self.name}" if self.name else f"win {self.level:g}/{self.width:g}"
        low_p, high_p = self.percentiles or DEFAULT_PERCENTILES
        return f"pct {low_p:g}-{high_p:g}"


def _finite(volume: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume, dtype=np.float32)
    if not np.all(np.isfinite(volume)):
        raise InputError("volume has NaN or infinite values")
    return volume


LINEAR_CHUNK = 1 << 22
"""Voxels mapped at once by :func:`_linear_unit` (in float64: 32 MiB of intermediates)."""


def _linear_unit(volume: np.ndarray, low: float, high: float) -> np.ndarray:
    """``clip((x - low) / (high - low), 0, 1)`` as float32; all zeros when ``high <= low``.
    Computed in float64, chunk by chunk: values near float32's limit (+-3.4e38) would overflow
    ``x - low`` and ``high - low`` in float32 and give NaN."""
    if not high > low:
        return np.zeros_like(volume)
    source = np.ascontiguousarray(volume).reshape(-1)
    unit = np.empty(source.size, dtype=np.float32)
    for start in range(0, source.size, LINEAR_CHUNK):
        chunk = source[start : start + LINEAR_CHUNK].astype(np.float64)
        unit[start : start + LINEAR_CHUNK] = np.clip((chunk - low) / (high - low), 0.0, 1.0)
    return unit.reshape(np.shape(volume))


@dataclass(frozen=True)
class CtWindow:
    """A CT window: ``level`` (centre) and ``width`` in HU, and its name if it has one."""

    level: float
    width: float
    name: str | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.level) and np.isfinite(self.width) and self.width > 0):
            raise InputError(
                f"a CT window needs a finite level and a positive width (HU), "
                f"got level {self.level:g}, width {self.width:g}"
            )

    @classmethod
    def named(cls, name: str) -> CtWindow:
        """The window of :data:`CT_WINDOWS` called ``name``; ValueError for an unknown name."""
        if name not in CT_WINDOWS:
            raise InputError(f"unknown CT window {name!r} (known: {', '.join(CT_WINDOWS)}, or LEVEL/WIDTH in HU)")
        level, width = CT_WINDOWS[name]
        return cls(level, width, name)

    @classmethod
    def parse(cls, text: str) -> CtWindow:
        """A window from text: a name (``brain``) or ``LEVEL/WIDTH`` in HU (``40/80``)."""
        text = text.strip()
        if "/" not in text:
            return cls.named(text)
        level, _, width = text.partition("/")
        try:
            level_hu, width_hu = float(level), float(width)
        except ValueError:
            raise InputError(f"CT window {text!r}: expected a name or LEVEL/WIDTH in HU, e.g. 40/80") from None
        return cls(level_hu, width_hu)


def apply_window(volume: np.ndarray, window: CtWindow) -> tuple[np.ndarray, IntensityMapping]:
    """CT window: ``clip((x - (L - W/2)) / W, 0, 1)`` with x, level L and width W in HU; float32 out."""
    low, high = window.level - window.width / 2, window.level + window.width / 2
    return _linear_unit(_finite(volume), low, high), IntensityMapping("window", low, high, name=window.name)


AIR_BOUND_HU = -100.0
"""A CT of a body part holds air (about -1000 HU) around or inside it; a volume with no value
at or below this bound is not plausibly in Hounsfield units (e.g. an 8-bit export, an MRI)."""


def hounsfield_doubts(volume: np.ndarray, modality: str | None = None) -> list[str]:
    """Why ``volume`` does not look like a CT in Hounsfield units, one phrase each (empty if it
    does): a DICOM ``modality`` other than CT, or no value as low as air."""
    doubts = []
    if modality and modality.upper() != "CT":
        doubts.append(f"its DICOM modality is {modality}, not CT")
    finite = volume[np.isfinite(volume)]
    if finite.size and float(finite.min()) > AIR_BOUND_HU:
        doubts.append(
            f"its values run from {float(finite.min()):g} to {float(finite.max()):g}, none as low as "
            f"air (about -1000 HU; none at or below {AIR_BOUND_HU:g})"
        )
    return doubts


def check_percentiles(low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` if ``0 <= low < high <= 100``, else ValueError."""
    if not (0.0 <= low < high <= 100.0):
        raise InputError(f"percentiles must satisfy 0 <= low < high <= 100, got {low:g} and {high:g}")
    return float(low), float(high)


def percentile_clip(
    volume: np.ndarray, low: float = DEFAULT_PERCENTILES[0], high: float = DEFAULT_PERCENTILES[1]
) -> tuple[np.ndarray, IntensityMapping]:
    """``clip((x - p_low) / (p_high - p_low), 0, 1)`` with ``p`` the volume's percentiles
    (numpy's linear interpolation); a constant volume maps to zeros. Float32 out."""
    low, high = check_percentiles(low, high)
    volume = _finite(volume)
    p_low, p_high = (float(p) for p in np.percentile(volume, [low, high]))
    return _linear_unit(volume, p_low, p_high), IntensityMapping("percentiles", p_low, p_high, percentiles=(low, high))


def normalise(
    volume: np.ndarray, window: CtWindow | None = None, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> tuple[np.ndarray, IntensityMapping]:
    """``volume`` -> float32 in [0, 1]: the CT ``window`` if given, else percentile clipping."""
    if window is not None:
        return apply_window(volume, window)
    return percentile_clip(volume, *percentiles)
