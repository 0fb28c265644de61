import numpy as np
import pytest
import torch

import medfuse
from medfuse.dran.nuclear import (
    POLAR_FLOOR,
    POLAR_MARGIN,
    matrix_nuclear_norms,
    nuclear_norms_by_eigenvalues,
    nuclear_norms_by_polar_iteration,
    polar_coefficients,
    polar_iteration_everywhere,
)
from medfuse.io.images import load_image

METHODS = (nuclear_norms_by_eigenvalues, nuclear_norms_by_polar_iteration)


def float64_svd_norms(matrices: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(matrices.double()).sum(dim=-1)


@pytest.fixture(scope="module")
def softmax_maps(samples) -> torch.Tensor:
    """The 64 channel-softmax maps of the shipped encoder on a bundled CT slice (2 x 64 x 96 x 80
    crops of the CT and the MRI: flat skull and background give a long tail of tiny singular values)."""
    model = medfuse.load_model()
    images = [
        load_image(samples / "CT-MRI" / modality / "41010.png")[80:176, 90:170] / 255.0 for modality in ("CT", "MRI")
    ]
    batch = torch.from_numpy(np.stack(images)).float()[:, None]
    return torch.softmax(model.encode(batch), dim=1)


@pytest.mark.parametrize("method", METHODS)
def test_norms_of_real_softmax_maps_match_float64_svd(method, softmax_maps):
    reference = float64_svd_norms(softmax_maps)
    norms = method(softmax_maps)
    assert norms.dtype == softmax_maps.dtype and norms.shape == (2, 64)
    assert ((norms.double() - reference).abs() / reference).max() < 1e-4


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(3, 7, 5), (2, 2, 4, 9), (1, 1, 1), (6, 1)])
def test_norms_of_any_shape_match_float64_svd(method, shape):
    matrices = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(method(matrices), float64_svd_norms(matrices), rtol=1e-6, atol=0)


def test_polar_iteration_errs_low_by_at_most_the_singular_values_below_its_floor():
    u, _ = torch.linalg.qr(torch.randn(4, 40, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    singular = torch.logspace(0, -9, 40, dtype=torch.float64)
    matrices = u @ torch.diag(singular) @ u.mT.flip(-1)
    norms = nuclear_norms_by_polar_iteration(matrices)
    frobenius = torch.linalg.vector_norm(singular)
    below = singular[singular < POLAR_FLOOR * POLAR_MARGIN * frobenius].sum()
    assert (norms <= singular.sum() + 1e-12).all()
    assert (singular.sum() - norms <= below).all()
    assert ((singular.sum() - norms) / singular.sum()).max() < 1e-5


def test_zero_matrices_have_norm_zero():
    for method in METHODS:
        assert method(torch.zeros(2, 5, 5)).abs().max() == 0


def test_eigenvalue_method_splits_work_over_threads(monkeypatch, softmax_maps):
    single = nuclear_norms_by_eigenvalues(softmax_maps)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    torch.testing.assert_close(nuclear_norms_by_eigenvalues(softmax_maps), single, rtol=0, atol=0)


def test_matrix_nuclear_norms_takes_eigenvalues_on_the_cpu(softmax_maps):
    torch.testing.assert_close(matrix_nuclear_norms(softmax_maps), nuclear_norms_by_eigenvalues(softmax_maps))


def test_within_polar_iteration_everywhere_the_cpu_takes_the_polar_iteration(softmax_maps):
    with polar_iteration_everywhere():
        polar = matrix_nuclear_norms(softmax_maps)
    torch.testing.assert_close(polar, nuclear_norms_by_polar_iteration(softmax_maps), rtol=0, atol=0)
    assert not torch.equal(polar, nuclear_norms_by_eigenvalues(softmax_maps))  # two methods: the test can tell
    torch.testing.assert_close(
        matrix_nuclear_norms(softmax_maps), nuclear_norms_by_eigenvalues(softmax_maps), rtol=0, atol=0
    )  # and after it, the CPU's own method again


def test_polar_coefficients_bring_the_floor_to_one():
    low = POLAR_FLOOR
    for alpha in polar_coefficients():
        assert 1 < alpha <= 3**0.5
        low = alpha * low * (3 - (alpha * low) ** 2) / 2
    assert 1 - 1e-6 < low <= 1


@pytest.mark.parametrize("bad", [torch.zeros(5), torch.zeros(2, 0, 3), torch.zeros(3, 3, dtype=torch.int64)])
def test_bad_input_is_refused(bad):
    for method in METHODS:
        with pytest.raises(ValueError, match="matrices"):
            method(bad)
    with pytest.raises(ValueError, match="iterations"):
        nuclear_norms_by_polar_iteration(torch.ones(2, 2), iterations=0)


def test_polar_iteration_keeps_the_sign_of_a_nearly_constant_float32_matrix():
    """Its largest singular value is the Frobenius norm to float32 precision: started at 1, the
    first step sent it below 0 and the result to about -1 times the norm."""
    noise = torch.rand(4, 256, 256, generator=torch.Generator().manual_seed(0)) * 9e-5
    matrices = torch.full((4, 256, 256), 0.9) + noise
    singular = torch.linalg.svdvals(matrices.double())
    frobenius = torch.linalg.vector_norm(singular, dim=-1, keepdim=True)
    below = torch.where(singular < POLAR_FLOOR * POLAR_MARGIN * frobenius, singular, 0).sum(dim=-1)
    shortfall = singular.sum(dim=-1) - nuclear_norms_by_polar_iteration(matrices).double()
    assert (shortfall > -1e-5 * singular.sum(dim=-1)).all() and (shortfall < below).all()
