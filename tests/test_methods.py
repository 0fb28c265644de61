import numpy as np
import pytest

from medfuse.dran.rules import list_rules
from medfuse.fusion.engine import fuse
from medfuse.fusion.methods import create_method, is_dran_method, list_methods


def test_every_rule_and_baseline_is_a_method():
    names = list_methods()
    assert {f"dran-{rule}" for rule in list_rules() if rule != "pyramid-energy"} <= set(names)
    assert {"pixel-average", "pixel-max", "laplacian", "dwt", "gff", "pyramid-energy"} <= set(names)
    assert "dran-pyramid-energy" not in names  # the rule that needs no network is the baseline
    assert all(is_dran_method(n) == n.startswith("dran-") for n in names)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown fusion method 'dran-nope'"):
        create_method("dran-nope")


def test_dran_method_is_fuse_with_its_rule(phantom, tiny_model):
    method = create_method("dran-average", model=tiny_model)
    assert np.array_equal(method(phantom, phantom.T), fuse(phantom, phantom.T, rule="average", model=tiny_model))


def test_baseline_method_takes_colour_and_integers(samples):
    from medfuse.io.images import load_image

    mri = load_image(samples / "PET-MRI/MRI/25015.png")
    pet = load_image(samples / "PET-MRI/PET/25015.png")
    fused = create_method("gff")(mri, pet)
    assert fused.shape == pet.shape and fused.dtype == np.uint8
    # the colour comes from the PET: where the MRI is black and the PET coloured, chroma survives
    assert np.abs(fused.astype(int) - fused.mean(axis=-1, keepdims=True)).max() > 50
