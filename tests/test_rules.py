import numpy as np
import pytest
import torch

from medfuse.rules import get_rule, list_rules, nuclear_norms, register_rule, sfnn_weights


def random_pair(seed: int, shape=(2, 5, 6, 7)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64),
            torch.randn(shape, generator=generator, dtype=torch.float64))


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


def slow_rule(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Direct, obvious definitions of every rule, sample by sample and element by element."""
    out = np.zeros_like(a)
    for i in range(a.shape[0]):
        if name == "sfnn":
            m_a, m_b = slow_nuclear_norms(a[i:i + 1]).max(), slow_nuclear_norms(b[i:i + 1]).max()
            w = m_a**2 / (m_a**2 + m_b**2)
            out[i] = w * a[i] + (1 - w) * b[i]
        elif name == "sfnn-channel":
            n_a, n_b = slow_nuclear_norms(a[i:i + 1])[0], slow_nuclear_norms(b[i:i + 1])[0]
            for k in range(a.shape[1]):
                w = n_a[k] ** 2 / (n_a[k] ** 2 + n_b[k] ** 2)
                out[i, k] = w * a[i, k] + (1 - w) * b[i, k]
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


@pytest.mark.parametrize("name", ["sfnn", "sfnn-channel", "average", "addition", "max", "fer", "l1"])
def test_rule_matches_direct_definition(name):
    a, b = random_pair(seed=len(name))
    expected = slow_rule(name, a.numpy(), b.numpy())
    np.testing.assert_allclose(get_rule(name)(a, b).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_every_rule_is_registered():
    assert list_rules() == sorted(["sfnn", "sfnn-channel", "average", "addition", "max", "fer", "l1"])


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
    from medfuse.rules import _ratio

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
