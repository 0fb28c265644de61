"""Information metrics: EN, MI and FMI."""

from __future__ import annotations

import numpy as np

from medfuse._shared.errors import InputError
from medfuse._shared.lazy import lazy_module
from medfuse.evaluation.metrics._validation import grey_8bit, grey_triple

pywt = lazy_module("pywt")
fft = lazy_module("scipy.fft")
measure = lazy_module("skimage.measure")

FMI_FEATURES = ("none", "gradient", "dct", "wavelet")
FMI_CHUNK_ELEMENTS = 2**20  # joint-PDF entries (windows x l x l) scored at once


def _grey_levels(image: np.ndarray) -> np.ndarray:
    """Values on the 8-bit scale as the 256 integer grey levels (rounded, clipped)."""
    return np.clip(np.round(image), 0, 255).astype(np.intp)


def en(fused: np.ndarray) -> float:
    """Entropy of F in bits, ``-sum p log2 p`` over its 256-bin histogram (Roberts et al. 2008).

    Float values are rounded to the 256 grey levels; for integer images this is
    ``skimage.measure.shannon_entropy``, which computes it.
    """
    return float(measure.shannon_entropy(_grey_levels(grey_8bit(fused, "fused"))))


def _mutual_information(x: np.ndarray, y: np.ndarray, base: float | None) -> float:
    joint = np.zeros((256, 256))
    np.add.at(joint, (_grey_levels(x).ravel(), _grey_levels(y).ravel()), 1)
    joint /= joint.sum()
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    mask = joint > 0
    value = np.sum(joint[mask] * np.log(joint[mask] / outer[mask]))
    return float(value / np.log(base)) if base else float(value)


def mi(fused: np.ndarray, a: np.ndarray, b: np.ndarray, base: float | None = None) -> float:
    """Mutual information (Qu, Zhang and Yan 2002): ``MI(F, A) + MI(F, B)``.

    Each term from the 256 x 256 joint histogram of the grey levels:
    ``sum p(x, y) log(p(x, y) / (p(x) p(y)))``; natural logarithm by default, ``base=2``
    gives bits.
    """
    f, a, b = grey_triple(fused, a, b)
    return _mutual_information(f, a, base) + _mutual_information(f, b, base)


def _features(image: np.ndarray, feature: str) -> np.ndarray:
    if feature == "none":
        return image
    if feature == "gradient":  # MATLAB's gradient(I) with one output: the x derivative
        return np.gradient(image, axis=1)
    if feature == "dct":  # MATLAB's dct2: orthonormal 2-D DCT-II
        return fft.dctn(image, type=2, norm="ortho")
    if feature == "wavelet":  # fmi.m: dwt2(I, 'dmey') tiled as [cA cH; cV cD], rescaled to [0, 1]
        approximation, (horizontal, vertical, diagonal) = pywt.dwt2(image, "dmey", mode="symmetric")
        tiled = np.block([[approximation, horizontal], [vertical, diagonal]])
        return _unit_range(tiled.reshape(1, -1)).reshape(tiled.shape)
    raise InputError(f"unknown FMI feature {feature!r}; choose one of {', '.join(FMI_FEATURES)}")


def _windows(image: np.ndarray, size: int) -> np.ndarray:
    """All ``size`` x ``size`` windows, flattened column by column (MATLAB's ``x(:)``)."""
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return windows.swapaxes(-1, -2).reshape(-1, size * size)


def _unit_range(windows: np.ndarray) -> np.ndarray:
    """Each window scaled to [0, 1] by its own minimum and maximum; constant ones -> all 1."""
    low = windows.min(axis=1, keepdims=True)
    span = windows.max(axis=1, keepdims=True) - low
    return np.where(span > 0, (windows - low) / np.where(span > 0, span, 1), 1.0)


def _is_flat(windows: np.ndarray) -> np.ndarray:
    """Which windows (rows) are constant."""
    return windows.min(axis=1) == windows.max(axis=1)


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    """Row-wise ``-sum p log2 |p|`` over non-zero entries (negative joint masses included,
    as the reference's ``real(-p log2 p)`` does)."""
    safe = np.where(p != 0, np.abs(p), 1.0)
    return -np.sum(p * np.log2(safe), axis=-1)


def _window_fmi(source: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Normalised mutual information ``2 I / (H_s + H_f)`` of matching windows (N, l).

    The windows, scaled to [0, 1], are read as PDFs over the l positions. The joint PDF
    follows Nelsen's method: the Frechet upper bound (or lower bound, for negative
    correlation) of the two CDFs, mixed with independence so that the joint has the
    Pearson correlation of the two PDFs.
    """
    length = source.shape[1]
    p_s = source / source.sum(axis=1, keepdims=True)
    p_f = fused / fused.sum(axis=1, keepdims=True)
    cdf_s, cdf_f = np.cumsum(p_s, axis=1), np.cumsum(p_f, axis=1)

    centred_s = p_s - p_s.mean(axis=1, keepdims=True)
    centred_f = p_f - p_f.mean(axis=1, keepdims=True)
    covariance = np.sum(centred_s * centred_f, axis=1)
    scale = np.sqrt(np.sum(centred_s**2, axis=1) * np.sum(centred_f**2, axis=1))
    correlation = np.where(covariance == 0, 0.0, covariance / np.where(scale > 0, scale, 1))

    index = np.arange(1, length + 1)

    def spread(p: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(p @ index**2 - (p @ index) ** 2, 0))

    sd_s, sd_f = spread(p_s), spread(p_f)
    outer_cdf = cdf_f[:, :, None] * cdf_s[:, None, :]  # (N, i over f, j over s)
    upper = np.minimum(cdf_f[:, :, None], cdf_s[:, None, :])
    lower = np.maximum(cdf_f[:, :, None] + cdf_s[:, None, :] - 1, 0)
    positive = correlation >= 0
    bound = np.where(positive[:, None, None], upper, lower)
    bound_correlation = np.sum(bound - outer_cdf, axis=(1, 2)) / np.where(sd_s * sd_f > 0, sd_s * sd_f, 1)
    defined = (sd_s > 0) & (sd_f > 0) & (correlation != 0) & (bound_correlation != 0)
    mixing = np.where(defined, correlation / np.where(bound_correlation != 0, bound_correlation, 1), 0.0)

    padded = np.pad(bound, ((0, 0), (1, 0), (1, 0)))
    bound_pdf = padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]
    joint = mixing[:, None, None] * bound_pdf + (1 - mixing[:, None, None]) * (p_f[:, :, None] * p_s[:, None, :])
    joint_entropy = _entropy_bits(joint.reshape(len(joint), -1))
    entropy_s, entropy_f = _entropy_bits(p_s), _entropy_bits(p_f)
    information = entropy_s + entropy_f - joint_entropy
    total = entropy_s + entropy_f
    return np.where(information == 0, 0.0, 2 * information / np.where(total != 0, total, 1))


def fmi(fused: np.ndarray, a: np.ndarray, b: np.ndarray, feature: str = "none", window: int = 3) -> float:
    """Feature mutual information (Haghighat, Aghagolzadeh and Seyedarabi 2011), computed
    with the fast algorithm of Haghighat and Razian 2014 (their MATLAB ``fmi.m`` is the
    reference this matches).

    Features: ``"none"`` (raw pixels, the default), ``"gradient"`` (x derivative),
    ``"dct"`` or ``"wavelet"`` (discrete Meyer; PyWavelets' ``dmey`` has 62 taps where
    MATLAB's has 102, so wavelet values differ from ``fmi.m``'s). ``fmi.m``'s ``"edge"``
    (MATLAB's ``edge``) is not offered. For every ``window`` x ``window``
    position where the window fits, each window is scaled to [0, 1] and read as a PDF;
    ``FMI_XF = 2 I(X; F) / (H_X + H_F)`` with the joint PDF from Nelsen's Frechet-bound
    method, 1 for identical windows; the result is the mean over windows of
    ``(FMI_AF + FMI_BF) / 2``.

    Flat windows: a constant window, scaled as ``fmi.m`` scales it, is all ones, i.e. the
    uniform PDF. Where a source window and the fused window are both constant (at any values:
    a saturated skull in a CT against a flat grey in the fusion), the two PDFs are the same,
    so ``FMI_XF = 1``: the fused window tells all that the flat source window holds. This is
    also what ``fmi.m`` gives there (its correlation of two equal uniform PDFs comes out as 1,
    for windows 3 to 11 under GNU Octave), written here as a rule rather than left to
    round-off. Where only one of the two is constant, the formula applies as above.

    As in the reference, the test for identical windows of B and F compares B with the
    window of F as already rescaled for A (unless A's window equalled F's): so an F that
    equals B does not score 1 everywhere. Note that the copy of ``fmi.m`` spread with
    DenseFuse and the DRAN code defaults to MATLAB's ``edge`` features, which give much
    higher values (about 0.85 to 0.9) than pixels (about 0.4 to 0.6).
    """
    if window < 2:
        raise InputError(f"window must be at least 2, got {window}")
    f, a, b = grey_triple(fused, a, b)
    f, a, b = (_features(image, feature) for image in (f, a, b))
    size = 2 * (window // 2) + 1  # fmi.m: an even window grows by one
    if min(f.shape) < size:
        raise InputError(f"images of {f.shape} are smaller than the {size} x {size} window")
    win_a, win_b, win_f = (_windows(image, size) for image in (a, b, f))
    same_af = np.all(win_a == win_f, axis=1)
    unit_f = _unit_range(win_f)
    same_bf = np.where(same_af, np.all(win_b == win_f, axis=1), np.all(win_b == unit_f, axis=1))

    flat_f = _is_flat(win_f)
    scores = np.ones((2, len(win_f)))
    for row, (windows, same) in enumerate(((win_a, same_af), (win_b, same_bf))):
        todo = np.flatnonzero(~(same | (flat_f & _is_flat(windows))))
        chunk_size = max(1, FMI_CHUNK_ELEMENTS // size**4)  # bounded memory: (chunk, l, l) arrays
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            scores[row, chunk] = _window_fmi(_unit_range(windows[chunk]), unit_f[chunk])
    return float(np.mean(scores.mean(axis=0)))
