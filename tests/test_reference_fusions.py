"""Every rule still gives the fused images of the bundled pairs that it gave before the fast
nuclear norms and the channels-last encoder (``scripts/reference_fusions.py``, commit ec680d1;
``sfnn-map-e4``, ``sfnn-pyramid``, ``pyramid-energy`` (the default) and ``trained-pyramid`` (the
shipped fusion stage of ``dran-fusion-havard``) added when they were registered):
within one grey level (1/255) everywhere."""

from pathlib import Path

import numpy as np
import pytest

import medfuse
from medfuse.io.images import load_image

REFERENCE = Path(__file__).parent / "data" / "reference_fusions.npz"
PAIRS = {
    "CT-MRI-41010": ("CT-MRI", "CT", "41010"),
    "PET-MRI-25015": ("PET-MRI", "PET", "25015"),
    "PET-MRI-25022": ("PET-MRI", "PET", "25022"),
    "SPECT-MRI-10018": ("SPECT-MRI", "SPECT", "10018"),
}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as stored:
        return dict(stored)


@pytest.fixture(scope="module")
def shipped_model():
    return medfuse.load_model()


def test_reference_holds_every_pair_and_rule(reference):
    assert set(reference) == {f"{pair}/{rule}" for pair in PAIRS for rule in medfuse.list_rules()}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_every_rule_gives_the_reference_images(pair, reference, shipped_model, samples):
    folder, modality, stem = PAIRS[pair]
    mri = load_image(samples / folder / "MRI" / f"{stem}.png")
    other = load_image(samples / folder / modality / f"{stem}.png")
    for rule in medfuse.list_rules():
        expected = reference[f"{pair}/{rule}"]
        fused = medfuse.fuse(mri, other, rule=rule, model=shipped_model)
        assert fused.shape == expected.shape and fused.dtype == expected.dtype
        difference = np.abs(fused.astype(np.int16) - expected.astype(np.int16)).max()
        assert difference <= 1, f"{pair} {rule}: {difference} grey levels from the reference"
