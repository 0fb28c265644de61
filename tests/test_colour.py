import numpy as np
import pytest

from medfuse.image.colour import is_grey, luminance, rgb_to_ycbcr, ycbcr_to_rgb


def test_round_trip_within_one_grey_level():
    rgb = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3)).astype(np.uint8)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb / 255.0))
    assert np.abs(np.round(back * 255) - rgb).max() <= 1
    assert np.abs(back * 255 - rgb).max() < 1e-3


def test_known_values():
    # BT.601 full range: white -> (1, 0.5, 0.5); pure red -> Y 0.299, Cr 1.0
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([1.0, 1.0, 1.0])), [1.0, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([1.0, 0.0, 0.0])), [0.299, 0.331264, 1.0], atol=1e-6)
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([0.0, 0.0, 1.0]))[1], 1.0, atol=1e-6)


def test_luminance_is_y_and_grey_is_its_own_luminance():
    rgb = np.random.default_rng(1).random((5, 6, 3))
    np.testing.assert_allclose(luminance(rgb), rgb_to_ycbcr(rgb)[..., 0])
    grey = np.random.default_rng(2).random((5, 6))
    np.testing.assert_allclose(luminance(np.stack([grey] * 3, axis=-1)), grey)


def test_is_grey():
    grey = np.random.default_rng(3).integers(0, 256, (4, 4), dtype=np.uint8)
    assert is_grey(np.stack([grey] * 3, axis=-1))
    colour = np.stack([grey, grey, 255 - grey], axis=-1)
    assert not is_grey(colour)


def test_wrong_channel_count():
    with pytest.raises(ValueError, match="three channels"):
        rgb_to_ycbcr(np.zeros((4, 4, 2)))
