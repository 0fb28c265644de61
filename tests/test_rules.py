import numpy as np
import pytest
import torch

from medfuse.dran import DEFAULT_RULE
from medfuse.dran.pyramid import binomial_blur, collapse_pyramid, gaussian_pyramid, laplacian_pyramid
from medfuse.dran.rules import (
    BASE_GAIN,
    PYRAMID_LEVELS,
    SourceFusion,
    SourceWeighting,
    get_rule,
    list_rules,
    nuclear_activity,
    nuclear_norms,
    register_rule,
    sfnn_spatial_weights,
    sfnn_weights,
)


def random_pair(seed: int, shape=(2, 5, 6, 7)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(shape, generator=generator, dtype=torch.float64),
        torch.randn(shape, generator=generator, dtype=torch.float64),
    )


def slow_nuclear_norms(features: np.ndarray) -> np.ndarray:
    """Softmax over channels and one SVD per channel, by loops."""
    n, c, _, _ = features.shape
    norms = np.zeros((n, c))
    for i in range(n):
        exp = np.exp(features[i] - features[i].max(axis=0))
        softmax = exp / exp.sum(axis=0)
        for k in range(c):
            norms[i, k] = np.linalg.svd(softmax[k], compute_uv=False).sum()
    return norms


def slow_activity(features: np.ndarray) -> np.ndarray:
    """Nuclear-norm-weighted absolute activity of one sample (1, C, H, W), mean over the 3 x 3
    window of every pixel with the border replicated, by loops."""
    shares = slow_nuclear_norms(features)[0]
    shares = shares / shares.sum()
    raw = np.abs(features[0] * shares[:, None, None]).sum(axis=0)
    height, width = raw.shape
    activity = np.zeros_like(raw)
    for y in range(height):
        for x in range(width):
            window = [
                raw[min(max(y + dy, 0), height - 1), min(max(x + dx, 0), width - 1)]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ]
            activity[y, x] = np.mean(window)
    return activity


def slow_rule(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Direct, obvious definitions of every rule, sample by sample and element by element."""
    out = np.zeros_like(a)
    for i in range(a.shape[0]):
        if name == "sfnn":
            m_a, m_b = slow_nuclear_norms(a[i : i + 1]).max(), slow_nuclear_norms(b[i : i + 1]).max()
            w = m_a**2 / (m_a**2 + m_b**2)
            out[i] = w * a[i] + (1 - w) * b[i]
        elif name == "sfnn-channel":
            n_a, n_b = slow_nuclear_norms(a[i : i + 1])[0], slow_nuclear_norms(b[i : i + 1])[0]
            for k in range(a.shape[1]):
                w = n_a[k] ** 2 / (n_a[k] ** 2 + n_b[k] ** 2)
                out[i, k] = w * a[i, k] + (1 - w) * b[i, k]
        elif name in ("sfnn-spatial", "sfnn-pixel"):
            activities = [slow_activity(x[i : i + 1]) for x in (a, b)]
            global_terms = [slow_nuclear_norms(x[i : i + 1]).max() ** 2 for x in (a, b)]
            if name == "sfnn-pixel":
                global_terms = [1.0, 1.0]
            for y, x in np.ndindex(a.shape[2:]):
                e_a, e_b = (g * act[y, x] ** 2 for g, act in zip(global_terms, activities))
                w = 0.5 if e_a + e_b == 0 else e_a / (e_a + e_b)
                out[i, :, y, x] = w * a[i, :, y, x] + (1 - w) * b[i, :, y, x]
        elif name == "l1":
            w = np.abs(a[i]).sum() / (np.abs(a[i]).sum() + np.abs(b[i]).sum())
            out[i] = w * a[i] + (1 - w) * b[i]
        else:
            for index in np.ndindex(a.shape[1:]):
                x, y = a[i][index], b[i][index]
                if name == "average":
                    v = (x + y) / 2
                elif name == "addition":
                    v = x + y
                elif name == "max":
                    v = x if x >= y else y
                elif name == "fer":
                    k = 0.5 if x == 0 and y == 0 else x * x / (x * x + y * y)
                    v = k * x + (1 - k) * y
                out[i][index] = v
    return out


FEATURE_RULES = ["sfnn", "sfnn-channel", "sfnn-spatial", "sfnn-pixel", "average", "addition", "max", "fer", "l1"]


@pytest.mark.parametrize("name", FEATURE_RULES)
def test_rule_matches_direct_definition(name):
    a, b = random_pair(seed=len(name))
    expected = slow_rule(name, a.numpy(), b.numpy())
    np.testing.assert_allclose(get_rule(name)(a, b).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_every_rule_is_registered():
    assert list_rules() == sorted(
        FEATURE_RULES + ["pyramid-energy", "sfnn-map", "sfnn-map-e4", "sfnn-pyramid", "trained-pyramid"]
    )
    assert DEFAULT_RULE in list_rules()


def test_sfnn_map_weights_are_sfnn_spatial_weights():
    """sfnn-map blends the sources with the weights by which sfnn-spatial blends the features."""
    rule = get_rule("sfnn-map")
    assert isinstance(rule, SourceWeighting)
    a, b = random_pair(seed=5)
    w_a = rule.weights(a, b)
    assert w_a.shape == (2, 1, 6, 7) and 0 <= w_a.min() and w_a.max() <= 1
    torch.testing.assert_close(get_rule("sfnn-spatial")(a, b), w_a * a + (1 - w_a) * b)


def test_sfnn_map_e4_weights_follow_their_formula():
    """w_A = m_A^4 a_A^2 / (m_A^4 a_A^2 + m_B^4 a_B^2), from the nuclear norms and activity."""
    a, b = random_pair(seed=11)
    a = a * 2
    w_a = get_rule("sfnn-map-e4").weights(a, b)
    evidence = [nuclear_norms(f).amax(dim=1).view(-1, 1, 1, 1) ** 4 * nuclear_activity(f) ** 2 for f in (a, b)]
    torch.testing.assert_close(w_a, evidence[0] / (evidence[0] + evidence[1]))


def test_sharper_evidence_multiplies_the_odds_by_the_image_ratio():
    """sfnn-map-e4 differs from sfnn-map by the per-image term alone: at every pixel its odds
    w / (1 - w) are sfnn-map's times (m_A / m_B)^2, so it leans further towards the image with
    the larger nuclear norm, by the same factor everywhere."""
    a, b = random_pair(seed=13)
    a = a * 3
    m_a, m_b = (nuclear_norms(f).amax(dim=1).view(-1, 1, 1, 1) for f in (a, b))
    share = get_rule("sfnn-map").weights(a, b).double()
    sharp = get_rule("sfnn-map-e4").weights(a, b).double()
    odds_ratio = (sharp / (1 - sharp)) / (share / (1 - share))
    torch.testing.assert_close(odds_ratio, ((m_a / m_b) ** 2).double().expand_as(odds_ratio), rtol=1e-4, atol=0)
    assert ((m_a / m_b) ** 2 - 1).abs().min() > 0.01  # the two rules differ by more than the tolerance


def test_nuclear_norms_match_loop():
    a, _ = random_pair(seed=3, shape=(3, 4, 9, 5))
    np.testing.assert_allclose(nuclear_norms(a).numpy(), slow_nuclear_norms(a.numpy()), rtol=1e-10)


def test_sfnn_weights_sum_to_one_and_swap():
    a, b = random_pair(seed=7)
    a = a * 3  # make the two clearly different
    w_a, w_b = sfnn_weights(a, b)
    torch.testing.assert_close(w_a + w_b, torch.ones_like(w_a))
    assert not torch.allclose(w_a, w_b)
    swapped_a, swapped_b = sfnn_weights(b, a)
    torch.testing.assert_close(swapped_a, w_b)
    torch.testing.assert_close(swapped_b, w_a)


def test_sfnn_of_equal_inputs_is_the_input():
    a, _ = random_pair(seed=11)
    torch.testing.assert_close(get_rule("sfnn")(a, a), a)


def test_ratio_takes_zero_over_zero_as_one_half():
    from medfuse.dran.rules import _ratio

    ratio = _ratio(torch.tensor([0.0, 3.0, 0.0]), torch.tensor([0.0, 1.0, 2.0]))
    torch.testing.assert_close(ratio, torch.tensor([0.5, 0.75, 0.0]))


def test_zero_over_zero_is_one_half():
    zeros = torch.zeros(1, 2, 3, 3)
    for name in ("fer", "l1"):
        torch.testing.assert_close(get_rule(name)(zeros, zeros), zeros)
    a = torch.zeros(1, 1, 1, 2)
    b = torch.tensor([[[[0.0, 2.0]]]])
    # fer at the first element: 0/0 -> weights 1/2 each (both zero, result 0); second: all weight on b
    torch.testing.assert_close(get_rule("fer")(a, b), b)


def test_unknown_rule_and_duplicate_registration():
    with pytest.raises(ValueError, match="unknown fusion rule 'nope'"):
        get_rule("nope")
    with pytest.raises(ValueError, match="exists already"):
        register_rule("sfnn")(lambda a, b: a)


def test_rules_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        get_rule("average")(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))


def test_sfnn_spatial_is_sfnn_where_activities_agree_and_follows_the_active_source():
    a, b = random_pair(seed=11, shape=(1, 4, 8, 8))
    # identical sources: equal evidence everywhere, so 1/2 (sfnn's weight for equal inputs)
    assert torch.allclose(sfnn_spatial_weights(a, a), torch.full((1, 1, 8, 8), 0.5, dtype=a.dtype))
    # A silent (zero) on the left half, B silent on the right half: each side follows the active one
    left_silent, right_silent = a.clone(), b.clone()
    left_silent[..., :3] = 0
    right_silent[..., 5:] = 0
    weights = sfnn_spatial_weights(left_silent, right_silent)[0, 0]
    assert (weights[:, :2] < 0.05).all() and (weights[:, 6:] > 0.95).all()


def test_activity_window_and_power_are_parameters():
    """radius r averages the unsmoothed activity over (2r + 1)^2 pixels; power p raises it."""
    a, b = random_pair(seed=13, shape=(1, 4, 9, 9))
    norms = nuclear_norms(a)
    pointwise = ((norms / norms.sum(dim=1, keepdim=True))[..., None, None] * a.abs()).sum(dim=1, keepdim=True)
    torch.testing.assert_close(nuclear_activity(a, radius=0), pointwise)
    torch.testing.assert_close(nuclear_activity(a, radius=2)[0, 0, 4, 4], pointwise[0, 0, 2:7, 2:7].mean())
    torch.testing.assert_close(nuclear_activity(a), nuclear_activity(a, radius=1))
    torch.testing.assert_close(sfnn_spatial_weights(a, b), sfnn_spatial_weights(a, b, power=2, radius=1))
    m_a, m_b = nuclear_norms(a).amax(), nuclear_norms(b).amax()
    evidence_a = m_a**2 * nuclear_activity(a, radius=0) ** 3
    evidence_b = m_b**2 * nuclear_activity(b, radius=0) ** 3
    torch.testing.assert_close(sfnn_spatial_weights(a, b, power=3, radius=0), evidence_a / (evidence_a + evidence_b))


def pyramid_case(seed: int, shape=(2, 1, 48, 40)):
    generator = torch.Generator().manual_seed(seed)
    images = [0.2 + 0.5 * torch.rand(shape, generator=generator, dtype=torch.float64) for _ in range(2)]
    features = [torch.randn((shape[0], 5, *shape[2:]), generator=generator, dtype=torch.float64) for _ in range(2)]
    return images, features


def test_sfnn_pyramid_fuses_level_by_level_as_documented():
    """Finest level shared by blurred magnitudes^4, middle levels added, base blended by the
    activity weights (no per-image term) reduced to its size and scaled by BASE_GAIN."""
    (a, b), (f_a, f_b) = pyramid_case(seed=3)
    rule = get_rule("sfnn-pyramid")
    assert isinstance(rule, SourceFusion)
    pyramid_a, pyramid_b = laplacian_pyramid(a, PYRAMID_LEVELS), laplacian_pyramid(b, PYRAMID_LEVELS)
    energy_a, energy_b = (binomial_blur(p[0].abs()) ** 4 for p in (pyramid_a, pyramid_b))
    w_finest = energy_a / (energy_a + energy_b)
    activity_a, activity_b = (nuclear_activity(f) ** 2 for f in (f_a, f_b))
    w_base = gaussian_pyramid(activity_a / (activity_a + activity_b), PYRAMID_LEVELS)[-1]
    expected = [w_finest * pyramid_a[0] + (1 - w_finest) * pyramid_b[0]]
    expected += [x + y for x, y in zip(pyramid_a[1:-1], pyramid_b[1:-1])]
    expected.append(BASE_GAIN * (w_base * pyramid_a[-1] + (1 - w_base) * pyramid_b[-1]))
    torch.testing.assert_close(rule.blend(a, b, rule.weights(f_a, f_b)), collapse_pyramid(expected).clamp(0, 1))


def test_sfnn_pyramid_keeps_a_middle_scale_detail_of_either_source_whole():
    """With the features fixed, a detail that lies in the middle levels (a difference of two
    Gaussian blurs) added to either of two smooth sources appears in the fusion at its full
    strength, to 5 % (the base, scaled by BASE_GAIN, holds a little of it)."""
    _, (f_a, f_b) = pyramid_case(seed=4, shape=(1, 1, 64, 64))
    rows, columns = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    a = (0.4 + 0.1 * torch.sin(rows / 7) * torch.cos(columns / 9)).double()[None, None]
    b = (0.45 + 0.1 * torch.cos(rows / 11)).double()[None, None]
    squared = ((rows - 30) ** 2 + (columns - 34) ** 2).double()
    blob = 0.1 * (torch.exp(-squared / (2 * 3.0**2)) - torch.exp(-squared / (2 * 6.0**2)) / 4)[None, None]
    rule = get_rule("sfnn-pyramid")
    w_a = rule.weights(f_a, f_b)
    clean = rule.blend(a, b, w_a)
    for change, with_detail in ((blob, rule.blend(a + blob, b, w_a)), (-blob, rule.blend(a, b - blob, w_a))):
        kept = ((with_detail - clean) * change).sum() / (change * change).sum()
        assert kept.item() == pytest.approx(1.0, abs=0.05)


def test_sfnn_pyramid_takes_any_image_size():
    (a, b), (f_a, f_b) = pyramid_case(seed=5, shape=(1, 1, 7, 3))
    rule = get_rule("sfnn-pyramid")
    fused = rule.blend(a, b, rule.weights(f_a, f_b))
    assert fused.shape == a.shape and 0 <= fused.min() and fused.max() <= 1
