"""FMI and FSIM against values of the MATLAB reference codes.

The values are those of ``docs/reference-values.json`` in the project's shared notes: Haghighat's ``fmi.m``
(pixel features 'none', w = 3; the mean over windows of (FMI_AF + FMI_BF) / 2) and Zhang
et al.'s ``FeatureSIM.m`` (grey; (FSIM(a, f) + FSIM(b, f)) / 2), run under GNU Octave.
Inputs are rebuilt here exactly as the cases say, from the bundled sample pairs (the same
files as in the Havard test split): grey by PIL's ``Image.convert('L')``, then the crop
(top, left, side), then the fused image. The two cases from the CT-MRI train split use their
crops, stored grey in ``tests/data`` (``fmi-flat-*.png``).
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medfuse import metrics

CASES = [
    # metric, a, b, crop (y, x, side) or None, fused, reference value
    ("fmi", "PET-MRI/PET/25015.png", "PET-MRI/MRI/25015.png", (96, 96, 64), "average", 0.4890802003),
    ("fmi", "SPECT-MRI/SPECT/10018.png", "SPECT-MRI/MRI/10018.png", (80, 120, 48), "max", 0.555090192),
    ("fmi", "CT-MRI/CT/41010.png", "CT-MRI/MRI/41010.png", (120, 90, 64), "b", 0.6088574782),
    # CT-MRI train crops (48 x 48, bundled in tests/data): many windows where a source and the
    # fused image are both flat at different values, which count as fully informative (1)
    ("fmi", "fmi-flat-CT-MRI-CT-2005.png", "fmi-flat-CT-MRI-MRI-2005.png", None, "average", 0.6564390086),
    ("fmi", "fmi-flat-CT-MRI-CT-33006.png", "fmi-flat-CT-MRI-MRI-33006.png", None, "max", 0.6461821988),
    ("fsim", "PET-MRI/PET/25015.png", "PET-MRI/MRI/25015.png", None, "average", 0.8224953936),
    ("fsim", "PET-MRI/PET/25022.png", "PET-MRI/MRI/25022.png", None, "max", 0.76817305275),
    ("fsim", "CT-MRI/CT/41010.png", "CT-MRI/MRI/41010.png", None, "average", 0.7710528934),
]


DATA = Path(__file__).parent / "data"


def grey(samples, name):
    path = samples / name if "/" in name else DATA / name
    return np.asarray(Image.open(path).convert("L")).astype(np.float64)


@pytest.mark.parametrize("metric,name_a,name_b,crop,fused,value", CASES)
def test_matches_matlab_reference(samples, metric, name_a, name_b, crop, fused, value):
    a, b = grey(samples, name_a), grey(samples, name_b)
    if crop:
        top, left, side = crop
        a, b = a[top : top + side, left : left + side], b[top : top + side, left : left + side]
    f = {"average": np.round((a + b) / 2), "max": np.maximum(a, b), "b": b.copy()}[fused]
    assert getattr(metrics, metric)(f, a, b) == pytest.approx(value, abs=1e-4)
