"""medfuse.evaluation.metrics: cases whose answers are known without the code."""

import math

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.measure import shannon_entropy
from skimage.metrics import structural_similarity

from medfuse import metrics
from medfuse.evaluation.metrics.gradient import sobel_edges
from medfuse.image.colour import luminance

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
    expected = sum(
        shannon_entropy(F, base=2) + shannon_entropy(x, base=2) - shannon_entropy(j, base=2)
        for x, j in ((A, joint_fa), (B, joint_fb))
    )
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


def test_sobel_orientation_is_the_gradient_angle_with_y_up():
    """A ramp rising to the right and upwards (rows count down): at an inside pixel
    Sx = Sy = 2 * (1 + 2 + 1) = 8, so g = 8 sqrt(2) and alpha = +pi/4 (VIFB's convention)."""
    rows, cols = np.mgrid[0:5, 0:5]
    strength, orientation = sobel_edges((cols - rows).astype(float))
    assert strength[2, 2] == pytest.approx(8 * math.sqrt(2))
    assert orientation[2, 2] == pytest.approx(math.pi / 4)


def test_nabf_of_averaging_is_zero_and_of_added_edges_positive():
    # |Sobel((A + B) / 2)| <= max(|Sobel A|, |Sobel B|): averaging adds no stronger edges
    assert metrics.nabf((A + B) / 2, A, B) == 0.0
    spiky = F.copy()
    spiky[::5, ::5] = 255
    spiky[2::5, 2::5] = 0
    assert metrics.nabf(spiky, A, B) > 0.01


def kumar_q(ratio: float, alignment: float) -> float:
    return math.sqrt(0.9999 / (1 + math.exp(-19 * (ratio - 0.5))) * 0.9995 / (1 + math.exp(-22 * (alignment - 0.5))))


def step(height: float) -> np.ndarray:
    """8 x 8: columns 0-3 at 0, 4-7 at ``height``. Kumar's Sobel (kernels / 8, the image
    mirrored at its border) gives gv = (x[c+1] - x[c-1]) / 2, so g = height / 2 on columns
    3 and 4 (vertical orientation, pi/2) and 0 elsewhere, the border included."""
    image = np.zeros((8, 8))
    image[:, 4:] = height
    return image


def test_nabf_by_hand_new_edge_on_flat_sources():
    """A = B = 0: all weights 0.001, G = 0, D = ||0 - pi/2| - pi/2| / (pi/2) = 0; the 16
    edge pixels of F (of 64) are artifacts, so Nabf = (1 - Q(0, 0)) * 16 / 64."""
    flat = np.zeros((8, 8))
    assert metrics.nabf(step(100), flat, flat) == pytest.approx((1 - kumar_q(0, 0)) / 4, rel=1e-12)


@pytest.mark.parametrize("height,edge_weight", [(8.0, 4.0**1.5), (2.0, 0.001)])
def test_nabf_by_hand_edge_made_stronger(height, edge_weight):
    """A a step, B flat, F = 2 A: on the 16 edge pixels g_A = height / 2, g_F = 2 g_A, so
    G = 1/2, D = 1 for A and Q(0, 0) for B. w_A = g_A^1.5 where g_A >= 2 (height 8), else
    0.001 (height 2), 0.001 off the edge; w_B = 0.001 everywhere."""
    a, flat = step(height), np.zeros((8, 8))
    numerator = 16 * ((1 - kumar_q(0.5, 1.0)) * edge_weight + (1 - kumar_q(0, 0)) * 0.001)
    denominator = 16 * edge_weight + 48 * 0.001 + 64 * 0.001
    assert metrics.nabf(2 * a, a, flat) == pytest.approx(numerator / denominator, rel=1e-12)


@pytest.mark.parametrize(
    "name,maximum",
    [
        ("ssim", 1.0),
        ("fmi", 1.0),
        ("cc", 1.0),
        ("fsim", 1.0),
        ("vif", 2.0),
        ("qcb", 1.0),
    ],
)
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
    expected = (
        structural_similarity(A, F, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        + structural_similarity(B, F, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ) / 2
    assert metrics.ssim(F, A, B) == pytest.approx(expected, abs=1e-6)
    assert metrics.ssim(F, A, B, reduction="sum") == pytest.approx(2 * expected, abs=1e-6)
    by_hand = np.mean([10 * math.log10(255**2 / np.mean((F - x) ** 2)) for x in (A, B)])
    assert metrics.psnr(F, A, B) == pytest.approx(by_hand, abs=1e-6)


@pytest.mark.parametrize("feature", ["gradient", "dct", "wavelet"])
def test_fmi_feature_options(feature):
    assert metrics.fmi(A, A, A, feature=feature) == pytest.approx(1.0)
    assert 0.0 < metrics.fmi(F, A, B, feature=feature) < 1.0


def test_fmi_wavelet_features_are_rescaled_to_0_1_as_in_fmi_m():
    """dwt2(2 X) = 2 dwt2(X) exactly, and fmi.m rescales the tiled coefficients to [0, 1]:
    then every window of F = 2 X equals X's and FMI is exactly 1."""
    step_image = np.full((96, 96), 25.0)
    step_image[:, 48:] = 75
    assert metrics.fmi(2 * step_image, step_image, step_image, feature="wavelet") == 1.0


def test_fmi_counts_two_flat_windows_as_fully_informative():
    """A flat source window against a flat fused window at another value: both are the
    uniform PDF once scaled, FMI 1 (as fmi.m gives)."""
    flat_a, flat_b, flat_f = (np.full((12, 12), value) for value in (10.0, 200.0, 90.0))
    assert metrics.fmi(flat_f, flat_a, flat_b) == 1.0
    step_image = np.full((96, 96), 25.0)
    step_image[:, 48:] = 75
    assert metrics.fmi(2 * step_image, step_image, step_image) == pytest.approx(1.0, abs=1e-12)


def test_fmi_of_one_flat_window_against_a_textured_one_is_not_one():
    textured = np.random.default_rng(3).integers(0, 256, (12, 12)).astype(float)
    flat = np.full((12, 12), 40.0)
    assert metrics.fmi(textured, flat, flat) < 0.9
    assert metrics.fmi(flat, textured, textured) < 0.9


def test_fmi_even_window_grows_by_one_as_in_fmi_m():
    assert metrics.fmi(F, A, B, window=4) == metrics.fmi(F, A, B, window=5)
    with pytest.raises(ValueError, match="smaller than the 5 x 5 window"):
        metrics.fmi(F[:4, :4], A[:4, :4], B[:4, :4], window=4)


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


FULL_A, FULL_B = A.copy(), B.copy()
FULL_A[0, 0], FULL_A[0, 1], FULL_B[0, 0], FULL_B[0, 1] = 0, 255, 255, 0  # each spans 0..255


@pytest.mark.parametrize("name", ["qcb", "qcv"])
def test_qcb_and_qcv_stretch_each_image_to_0_255_first(name):
    """VIFB's normalize1 maps every image's minimum..maximum onto 0..255, so an affine
    change of a source spanning 0..255 changes nothing."""
    expected = metrics.score(name, F, FULL_A, FULL_B)
    assert metrics.score(name, F, FULL_A / 2 + 50, FULL_B * 0.25 + 3) == pytest.approx(expected, rel=1e-12)


def test_qcb_is_reproducible_over_black_backgrounds(samples):
    """The PET slice is 86% black. There Chen-Blum's contrast is a ratio of FFT rounding
    errors (it moved by 3e-3 when the images were transposed); taken as 0, the value no
    longer depends on the order of the floating-point operations."""
    a = np.asarray(Image.open(samples / "PET-MRI/PET/25015.png").convert("L")).astype(np.float64)
    b = np.asarray(Image.open(samples / "PET-MRI/MRI/25015.png").convert("L")).astype(np.float64)
    f = np.round((a + b) / 2)
    expected = metrics.qcb(f, a, b)
    assert metrics.qcb(f.T, a.T, b.T) == pytest.approx(expected, abs=1e-6)
    assert metrics.qcb(f[::-1], a[::-1], b[::-1]) == pytest.approx(expected, abs=1e-6)


def test_qcv_of_one_block_by_parseval():
    """With one window over the whole 32 x 32 image, Q_CV = (l_A D_A + l_B D_B) / (l_A + l_B):
    l_X = sum of g_X^5 (Sobel magnitude by scipy.ndimage, zero padding) and D_X the mean
    square of the CSF-filtered difference, here from its spectrum (Parseval)."""
    rng = np.random.default_rng(3)
    a, b, f = (rng.integers(0, 256, (32, 32)).astype(np.float64) for _ in range(3))
    for image in (a, b, f):
        image[0, :2] = 0, 255
    u = (np.arange(32) - 16) / 16 * 32 / 8
    csf_radius = np.hypot(*np.meshgrid(u, u))
    csf = np.fft.ifftshift(2.6 * (0.0192 + 0.144 * csf_radius) * np.exp(-((0.144 * csf_radius) ** 1.1)))

    def saliency(x):
        return np.sum(np.hypot(ndimage.sobel(x, 0, mode="constant"), ndimage.sobel(x, 1, mode="constant")) ** 5)

    def distortion(x):
        return np.sum(np.abs(csf * np.fft.fft2(x - f)) ** 2) / 32**4

    expected = (saliency(a) * distortion(a) + saliency(b) * distortion(b)) / (saliency(a) + saliency(b))
    assert metrics.qcv(f, a, b, window=32) == pytest.approx(expected, rel=1e-9)


def test_metrics_do_not_import_torch():
    """Metrics are numpy-only: importing them must not pull in torch or the network."""
    import subprocess
    import sys

    code = "import sys, medfuse.evaluation.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_values_off_the_8bit_scale_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        metrics.sd(A * 20)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        metrics.sd(A - 300)
    with pytest.raises(ValueError, match="unit scale"):
        metrics.ssim(F / 255, A, B)


@pytest.mark.parametrize(
    "form",
    [
        "import medfuse.metrics as m",
        "from medfuse import metrics as m",
        "import medfuse.metrics; import medfuse; m = medfuse.metrics",
        "from medfuse.metrics import ssim; from medfuse import metrics as m",
    ],
)
def test_both_import_forms_give_the_one_metrics_module(form):
    import subprocess
    import sys

    check = (
        "import medfuse.evaluation.metrics as home, sys; "
        "assert m is home and m.ssim is home.ssim and 'qabf' in m.METRICS; "
        "assert 'torch' not in sys.modules, 'the metrics never import torch'"
    )
    finished = subprocess.run([sys.executable, "-c", f"{form}\n{check}"], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr[-2000:]
