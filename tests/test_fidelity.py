"""medfuse.evaluation.metrics.fidelity: lesion retention and source shares on cases with known answers."""

import numpy as np
import pytest

from medfuse.evaluation.metrics.fidelity import (
    gaussian_blob,
    lesion_contrast,
    lesion_retention,
    source_shares,
)

RNG = np.random.default_rng(3)
A = RNG.uniform(0.2, 0.6, (48, 56))
B = RNG.uniform(0.2, 0.6, (48, 56))
PROFILE = gaussian_blob(A.shape, (20, 30), 4.0)
A_WITH_LESION = np.clip(A + 0.3 * PROFILE, 0, 1)
B_WITH_DARK_LESION = np.clip(B - 0.25 * PROFILE, 0, 1)


def retentions(fuse):
    """Retention of a bright lesion of A and of a dark lesion of B under ``fuse``."""
    clean = fuse(A, B)
    return (
        lesion_retention(clean, fuse(A_WITH_LESION, B), A, A_WITH_LESION, PROFILE),
        lesion_retention(clean, fuse(A, B_WITH_DARK_LESION), B, B_WITH_DARK_LESION, PROFILE),
    )


def test_blob_peaks_at_its_centre_with_the_given_spread():
    assert PROFILE[20, 30] == 1.0 and PROFILE.max() == 1.0
    assert PROFILE[20, 34] == pytest.approx(np.exp(-0.5))


def test_contrast_recovers_the_planted_amplitude_and_its_sign():
    assert lesion_contrast(0.3 * PROFILE, PROFILE) == pytest.approx(0.3)
    assert lesion_contrast(-0.25 * PROFILE, PROFILE) == pytest.approx(-0.25)


def test_a_fusion_that_copies_a_keeps_all_of_a_and_none_of_b():
    assert retentions(lambda a, b: a) == pytest.approx((1.0, 0.0))


def test_the_pixel_average_keeps_half_of_each():
    assert retentions(lambda a, b: (a + b) / 2) == pytest.approx((0.5, 0.5))


def test_a_fusion_that_ignores_the_pair_keeps_nothing_and_an_inversion_is_negative():
    assert retentions(lambda a, b: np.zeros_like(a)) == (0.0, 0.0)
    assert retentions(lambda a, b: 1 - (a + b) / 2) == pytest.approx((-0.5, -0.5))


def test_nothing_planted_is_refused():
    with pytest.raises(ValueError, match="nothing was planted"):
        lesion_retention(A, A, A, A, PROFILE)


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="one shape"):
        lesion_retention(A, A, A, A_WITH_LESION, PROFILE[:-1])


def test_shares_of_a_blend_are_its_weights():
    assert source_shares(0.7 * A + 0.3 * B + 0.05, A, B) == pytest.approx((0.7, 0.3))
    assert source_shares(A, A, B, A > 0.3) == pytest.approx((1.0, 0.0), abs=1e-12)
