"""medfuse.dran.pyramid: Gaussian and Laplacian pyramids in torch."""

import pytest
import torch

from medfuse.dran.pyramid import (
    binomial_blur,
    collapse_pyramid,
    gaussian_pyramid,
    laplacian_pyramid,
    pyramid_depth,
    reduce_level,
)


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 3, 37, 50), (1, 1, 5, 3)])
def test_collapse_inverts_the_laplacian_pyramid_for_any_size(shape):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pyramid = laplacian_pyramid(image, 6)
    torch.testing.assert_close(collapse_pyramid(pyramid), image, rtol=0, atol=1e-12)


def test_levels_halve_the_sides_and_stop_at_small_sizes():
    sizes = [tuple(level.shape[-2:]) for level in gaussian_pyramid(torch.zeros(1, 1, 37, 50), 6)]
    assert sizes == [(37, 50), (19, 25), (10, 13), (5, 7), (3, 4), (2, 2)]
    assert pyramid_depth(256, 256, 5) == 5 and pyramid_depth(2, 100, 5) == 0
    assert len(laplacian_pyramid(torch.zeros(1, 1, 2, 9), 5)) == 1  # too small: the base alone


def test_blur_keeps_constants_and_its_kernel_sums_to_one():
    constant = torch.full((1, 2, 9, 11), 0.3, dtype=torch.float64)
    torch.testing.assert_close(binomial_blur(constant), constant)
    impulse = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    impulse[0, 0, 4, 4] = 1
    blurred = binomial_blur(impulse)
    assert blurred.sum().item() == pytest.approx(1.0)
    assert blurred[0, 0, 4, 2:7].tolist() == pytest.approx([v * 6 / 256 for v in (1, 4, 6, 4, 1)])


def test_a_constant_image_has_no_detail():
    pyramid = laplacian_pyramid(torch.full((1, 1, 32, 32), 0.4), 4)
    assert all(level.abs().max() < 1e-6 for level in pyramid[:-1])
    torch.testing.assert_close(pyramid[-1], torch.full_like(pyramid[-1], 0.4))
    assert reduce_level(torch.zeros(1, 1, 7, 7)).shape[-2:] == (4, 4)
