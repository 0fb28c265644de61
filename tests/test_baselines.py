import numpy as np
import pytest

from medfuse.fusion.baselines import (
    BASELINES,
    collapse_pyramid,
    dwt_fusion,
    guided_filter,
    guided_filtering_fusion,
    laplacian_fusion,
    laplacian_pyramid,
    pixel_average,
    pixel_maximum,
)


@pytest.fixture
def halves(phantom):
    """The phantom split into a left and a right half, each on black: a pair whose ideal
    fusion is the whole phantom."""
    image = phantom / 255.0
    left, right = image.copy(), image.copy()
    left[:, 32:] = 0
    right[:, :32] = 0
    return left, right, image


def test_registry_names_every_baseline():
    assert set(BASELINES) == {"pixel-average", "pixel-max", "laplacian", "dwt", "gff", "pyramid-energy"}


ADDS_BOTH_DETAILS = {"pyramid-energy"}
"""Baselines that add both sources' details (a detail both show counts twice) and scale the base."""


@pytest.mark.parametrize("name", sorted(set(BASELINES) - ADDS_BOTH_DETAILS))
def test_fusing_an_image_with_itself_gives_it_back(name, phantom):
    image = phantom / 255.0
    assert np.allclose(BASELINES[name](image, image), image, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (5, 9)])
def test_any_size_gives_the_input_size_in_unit_range(name, shape):
    rng = np.random.default_rng(1)
    a, b = rng.random(shape), rng.random(shape)
    fused = BASELINES[name](a, b)
    assert fused.shape == shape and fused.min() >= 0 and fused.max() <= 1


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_refuse_mismatched_or_colour_inputs(name):
    with pytest.raises(ValueError, match="grey images of one shape"):
        BASELINES[name](np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="grey images of one shape"):
        BASELINES[name](np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_pixel_rules():
    a, b = np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])
    assert np.allclose(pixel_average(a, b), [[0.4, 0.6]])
    assert np.allclose(pixel_maximum(a, b), [[0.6, 0.8]])


def test_laplacian_pyramid_inverts_exactly_for_odd_sizes():
    image = np.random.default_rng(2).random((37, 53))
    pyramid = laplacian_pyramid(image, 4)
    assert len(pyramid) == 5 and pyramid[-1].shape == (3, 4)
    assert np.abs(collapse_pyramid(pyramid) - image).max() < 1e-12


@pytest.mark.parametrize(
    ("method", "factor"),
    [(laplacian_fusion, 0.5), (guided_filtering_fusion, 0.5), (pixel_maximum, 0.01), (dwt_fusion, 0.9)],
)
def test_multiscale_methods_keep_both_halves(method, factor, halves):
    left, right, whole = halves
    fused = method(left, right)
    # the detail of each half comes from the half that has it, so the result is closer to the
    # whole phantom than the plain average (which halves the contrast everywhere); DWT's
    # averaged approximation (1/8 scale) still halves the low frequencies
    assert np.abs(fused - whole).mean() < factor * np.abs(pixel_average(left, right) - whole).mean()


def test_guided_filter_keeps_edges_of_the_guide_and_smooths_flat_noise():
    rng = np.random.default_rng(3)
    guide = np.zeros((40, 40))
    guide[:, 20:] = 1.0
    noisy = guide + rng.normal(0, 0.1, guide.shape)
    filtered = guided_filter(guide, noisy, radius=3, epsilon=1e-3)
    assert np.abs(filtered - guide).mean() < 0.5 * np.abs(noisy - guide).mean()
    assert filtered[:, 22:].mean() - filtered[:, :18].mean() > 0.9
    # a flat guide cannot carry edges: with large epsilon the result is the local mean
    flat = guided_filter(np.zeros((40, 40)), noisy, radius=3, epsilon=1.0)
    assert flat.std() < noisy.std()


def test_a_baseline_name_cannot_be_registered_twice():
    from medfuse.fusion.baselines import register_baseline

    with pytest.raises(ValueError, match="a baseline named 'gff' exists already"):
        register_baseline("gff")(pixel_average)
    assert BASELINES["gff"] is guided_filtering_fusion


def test_pyramid_energy_is_sfnn_pyramids_blend_with_weights_from_local_brightness(phantom):
    """The network-free twin: the blend of ``sfnn-pyramid`` with ``w_A = e_A^2 / (e_A^2 + e_B^2)``, ``e``
    the 9 x 9 mean (mirrored borders, 0/0 -> 1/2)."""
    import torch
    from scipy import ndimage

    from medfuse.dran.rules import pyramid_blend

    image_a = phantom / 255.0
    image_b = np.roll(image_a, 9, axis=1) * 0.5
    energy_a, energy_b = (ndimage.uniform_filter(image, 9, mode="mirror") ** 2 for image in (image_a, image_b))
    total = energy_a + energy_b
    w_a = np.where(total > 0, energy_a / np.where(total > 0, total, 1), 0.5)
    tensors = [torch.from_numpy(array.astype(np.float32))[None, None] for array in (image_a, image_b, w_a)]
    expected = pyramid_blend(*tensors)[0, 0].numpy()
    assert np.allclose(BASELINES["pyramid-energy"](image_a, image_b), expected, atol=2e-3)  # float32 means
