"""medfuse.metrics: cases whose answers are known without the code."""

import math

import numpy as np
import pytest
from skimage.measure import shannon_entropy
from skimage.metrics import structural_similarity

from medfuse import metrics
from medfuse.colour import luminance

RNG = np.random.default_rng(0)
A = RNG.integers(0, 256, (40, 48)).astype(np.float64)
B = RNG.integers(0, 256, (40, 48)).astype(np.float64)
F = np.round((A + B) / 2)
SOURCE_METRICS = [n for n, m in metrics.METRICS.items() if m.needs_sources]


def test_every_metric_returns_a_python_float():
    for name in metrics.METRICS:
        assert type(metrics.score(name, F, A, B)) is float


def test_constant_image_has_no_entropy_or_spread():
    constant = np.full((8, 8), 77.0)
    assert metrics.en(constant) == 0.0
    assert metrics.sd(constant) == 0.0
    assert metrics.sf(constant) == 0.0
    assert metrics.ag(constant) == 0.0


def test_entropy_of_two_equal_halves_is_one_bit_and_matches_skimage():
    halves = np.zeros((4, 4), np.uint8)
    halves[:, 2:] = 200
    assert metrics.en(halves) == pytest.approx(1.0, abs=1e-12)
    image = RNG.integers(0, 256, (30, 30)).astype(np.uint8)
    assert metrics.en(image) == pytest.approx(shannon_entropy(image, base=2), abs=1e-6)


def test_sd_sf_ag_by_hand():
    assert metrics.sd(np.array([[0.0, 2.0], [0.0, 2.0]])) == pytest.approx(1.0)
    # horizontal differences 1, 1 -> RF^2 = 1; vertical 2, 2 -> CF^2 = 4
    assert metrics.sf(np.array([[0.0, 1.0], [2.0, 3.0]])) == pytest.approx(math.sqrt(5))
    # rows 0 1 4: Gx = 1 (one-sided), 2 (central), 3 (one-sided); Gy = 0
    ramp = np.array([[0.0, 1.0, 4.0]] * 3)
    assert metrics.ag(ramp) == pytest.approx((1 + 2 + 3) / 3 / math.sqrt(2))


def test_mutual_information_by_hand():
    half = np.zeros((4, 4))
    half[:, 2:] = 255
    # F = A = B, two equally likely levels: each MI is ln 2
    assert metrics.mi(half, half, half) == pytest.approx(2 * math.log(2))
    assert metrics.mi(half, half, half, base=2) == pytest.approx(2.0)
    # F independent of both sources: MI 0
    checker = np.zeros((4, 4))
    checker[::2, :] = 255
    assert metrics.mi(checker, half, half) == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_matches_entropies_from_skimage():
    """MI(F, A) = H(F) + H(A) - H(F, A), the entropies from skimage's shannon_entropy."""
    joint_fa = F * 256 + A
    joint_fb = F * 256 + B
    expected = sum(shannon_entropy(F, base=2) + shannon_entropy(x, base=2) - shannon_entropy(j, base=2)
                   for x, j in ((A, joint_fa), (B, joint_fb)))
    assert metrics.mi(F, A, B, base=2) == pytest.approx(expected, abs=1e-6)


def test_scd_by_hand():
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    b = np.array([[3.0, 0.0], [1.0, 1.0]])
    # F - B = A and F - A = B: both correlations are 1
    assert metrics.scd(a + b, a, b) == pytest.approx(2.0)


def test_cc_by_hand():
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert metrics.cc(a, a, 10 - a) == pytest.approx(0.0)  # +1 and -1
    assert metrics.cc(2 * a + 5, a, a) == pytest.approx(1.0)


def sigmoid_q(ratio: float, alignment: float) -> float:
    return 0.9994 / (1 + math.exp(-15 * (ratio - 0.5))) * 0.9879 / (1 + math.exp(-22 * (alignment - 0.8)))


def test_qabf_by_hand():
    edge = np.zeros((6, 6))
    edge[:, 3:] = 100
    flat = np.zeros((6, 6))
    # F = A, B without edges: every weighted pixel has G = 1, D = 1
    assert metrics.qabf(edge, edge, flat) == pytest.approx(sigmoid_q(1.0, 1.0))
    # F = A / 2: same orientation, strength ratio 1/2 everywhere
    assert metrics.qabf(edge / 2, edge, flat) == pytest.approx(sigmoid_q(0.5, 1.0))


def test_nabf_of_averaging_is_zero_and_of_added_edges_positive():
    # |Sobel((A + B) / 2)| <= max(|Sobel A|, |Sobel B|): averaging adds no stronger edges
    assert metrics.nabf(F, A, B) == 0.0
    spiky = F.copy()
    spiky[::5, ::5] = 255
    spiky[2::5, 2::5] = 0
    assert metrics.nabf(spiky, A, B) > 0.01


@pytest.mark.parametrize("name,maximum", [
    ("ssim", 1.0), ("fmi", 1.0), ("cc", 1.0), ("fsim", 1.0), ("vif", 2.0), ("qcb", 1.0),
])
def test_identical_images_reach_the_maximum(name, maximum):
    assert metrics.score(name, A, A, A) == pytest.approx(maximum, abs=1e-9)
    assert metrics.score(name, F, A, B) < maximum


def test_identical_images_have_no_error():
    assert metrics.psnr(A, A, A) == math.inf
    assert metrics.qcv(A, A, A) == 0.0
    assert metrics.nabf(A, A, A) == 0.0


@pytest.mark.parametrize("name", [n for n in SOURCE_METRICS if n != "fmi"])
def test_symmetric_in_the_sources(name):
    assert metrics.score(name, F, A, B) == pytest.approx(metrics.score(name, F, B, A), rel=1e-12)


def test_fmi_is_symmetric_when_no_window_is_shared():
    """FMI follows fmi.m, whose identity test for B looks at F as rescaled for A; with no
    window of F equal to a window of A or B the two orders agree."""
    assert metrics.fmi(F, A, B) == pytest.approx(metrics.fmi(F, B, A), rel=1e-12)


def test_ssim_and_psnr_agree_with_skimage_and_the_formula():
    expected = (structural_similarity(A, F, data_range=255, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
                + structural_similarity(B, F, data_range=255, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False)) / 2
    assert metrics.ssim(F, A, B) == pytest.approx(expected, abs=1e-6)
    assert metrics.ssim(F, A, B, reduction="sum") == pytest.approx(2 * expected, abs=1e-6)
    by_hand = np.mean([10 * math.log10(255**2 / np.mean((F - x) ** 2)) for x in (A, B)])
    assert metrics.psnr(F, A, B) == pytest.approx(by_hand, abs=1e-6)


@pytest.mark.parametrize("feature", ["gradient", "dct", "wavelet"])
def test_fmi_feature_options(feature):
    assert metrics.fmi(A, A, A, feature=feature) == pytest.approx(1.0)
    assert 0.0 < metrics.fmi(F, A, B, feature=feature) < 1.0


def test_colour_is_scored_on_luminance():
    colour = RNG.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    y = luminance(colour.astype(float))
    for name in ("en", "sd", "sf"):
        assert metrics.score(name, colour, A, B) == pytest.approx(metrics.score(name, y, A, B))
    assert metrics.qabf(F, colour, B) == pytest.approx(metrics.qabf(F, y, B))
    grey_as_rgb = np.repeat(A[..., None], 3, axis=-1)
    assert metrics.ssim(F, grey_as_rgb, B) == metrics.ssim(F, A, B)


def test_uint16_is_put_on_the_8bit_scale():
    sixteen = (A * 257).astype(np.uint16)
    assert metrics.psnr(F, sixteen, B) == pytest.approx(metrics.psnr(F, A, B))


def test_input_validation():
    with pytest.raises(ValueError, match="differ in size"):
        metrics.ssim(F, A[:-1], B)
    with pytest.raises(ValueError, match="NaN"):
        metrics.sd(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="grey or"):
        metrics.mi(F, np.zeros((40, 48, 4)), B)
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.score("qxyz", F, A, B)
    with pytest.raises(ValueError, match="feature"):
        metrics.fmi(F, A, B, feature="edge")
    with pytest.raises(ValueError, match="reduction"):
        metrics.ssim(F, A, B, reduction="max")
