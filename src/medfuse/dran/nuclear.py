"""Nuclear norms of batches of matrices, fast on the CPU and on a GPU.

The nuclear norm of an h x w matrix M is the sum of its singular values,
``||M||_* = sum_i sigma_i(M) = tr(sqrt(M^T M))``. ``torch.linalg.svdvals`` gives it, but slowly
for the thousands of 256 x 256 matrices a volume brings, and on a GPU its batched solvers are
slower still. Two exact methods, one for each kind of device, chosen by :func:`matrix_nuclear_norms`:

- :func:`nuclear_norms_by_eigenvalues` (the CPU): the eigenvalues of the Gram matrix in float64.
- :func:`nuclear_norms_by_polar_iteration` (GPUs): matrix products only; also on the CPU within
  :func:`polar_iteration_everywhere` (what an exported graph such as ONNX can hold).

Both agree with float64 ``svdvals`` within 1e-4 (relative) on DRAN's softmax maps, whose
singular values reach down to 1e-5 of the largest with a long tail that holds a few percent of
the norm (``benchmarks/nuclear_norms.py`` measures both, on real features).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import numpy as np

from medfuse._shared.lazy import lazy_module

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")
threadpoolctl = lazy_module("threadpoolctl")

POLAR_FLOOR = 1e-5
"""Smallest singular value, relative to the Frobenius norm, that the polar iteration brings to 1."""
POLAR_ITERATIONS = 16
"""Scaled Newton-Schulz steps: enough to bring [POLAR_FLOOR, 1] to 1 within 1e-6, plus one."""
POLAR_MARGIN = 1.01
"""The iteration starts from ``M / (POLAR_MARGIN ||M||_F)``: no singular value sits at 1, which
the first, steepest step sends to 0, and which float32 rounding could carry below 0 (the
iteration then takes it to -1: seen on a nearly rank-one softmax map)."""
_POLAR_EVERYWHERE: ContextVar[bool] = ContextVar("polar_everywhere", default=False)


def _check_matrices(matrices: torch.Tensor) -> None:
    if matrices.ndim < 2 or min(matrices.shape[-2:]) < 1:
        raise ValueError(f"expected a batch of matrices (..., h, w), got shape {tuple(matrices.shape)}")
    if not matrices.is_floating_point():
        raise ValueError(f"expected floating-point matrices, got {matrices.dtype}")


def _short_side_last(matrices: torch.Tensor) -> torch.Tensor:
    """The matrices, transposed where needed so that w <= h: the Gram matrix is then w x w."""
    return matrices.mT if matrices.shape[-1] > matrices.shape[-2] else matrices


def _symmetric_eigenvalues(gram: np.ndarray, workers: int) -> np.ndarray:
    """``numpy.linalg.eigvalsh`` of a stack of symmetric matrices (B, n, n), split over
    ``workers`` threads, each with a single-threaded BLAS: LAPACK's tridiagonal reduction of
    one small matrix gains little from threads of its own, the stack gains their number."""
    if workers == 1 or len(gram) == 1:
        return np.linalg.eigvalsh(gram)
    chunks = np.array_split(gram, min(workers, len(gram)))
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(len(chunks)) as pool:
        return np.concatenate(list(pool.map(np.linalg.eigvalsh, chunks)))


def nuclear_norms_by_eigenvalues(matrices: torch.Tensor) -> torch.Tensor:
    """``||M||_* = sum_i sqrt(lambda_i(M^T M))`` for every matrix, (..., h, w) -> (...), on the CPU.

    The Gram matrix (of the shorter side) and its eigenvalues are computed in float64: in
    float32 the Gram matrix loses every singular value below about ``2.4e-4`` of the largest
    (its square falls under float32's precision), which on DRAN's softmax maps is an error of
    1e-3. The eigenvalue problems run in ``torch.get_num_threads()`` threads. Half the
    arithmetic of an SVD; exact to about 1e-8. Returns the input's dtype; no gradient.
    """
    _check_matrices(matrices)
    wide = _short_side_last(matrices).detach().to("cpu", torch.float64)
    gram = wide.mT @ wide
    stacked = gram.reshape(-1, *gram.shape[-2:]).numpy()
    eigenvalues = torch.from_numpy(_symmetric_eigenvalues(stacked, torch.get_num_threads()))
    norms = eigenvalues.clamp_min(0).sqrt().sum(dim=-1).reshape(gram.shape[:-2])
    return norms.to(matrices.device, matrices.dtype)


def polar_coefficients(iterations: int = POLAR_ITERATIONS, floor: float = POLAR_FLOOR) -> list[float]:
    """The scaling ``alpha_k`` of each step of :func:`nuclear_norms_by_polar_iteration`.

    Step k maps a singular value x to ``f(alpha_k x)`` with ``f(y) = (3y - y^3) / 2``, which
    sends the interval [l_k, 1] onto [l_{k+1}, 1]; ``alpha_k^2 = 3 / (1 + l_k + l_k^2)`` makes
    ``f(alpha_k l_k) = f(alpha_k)``, the largest gain for the smallest values (Chen and Chow,
    "A stable scaling of Newton-Schulz for improving the sign function computation of a
    Hermitian matrix", 2014), and ``l_{k+1} = f(alpha_k l_k)``, starting from ``l_0 = floor``.
    """
    coefficients, low = [], floor
    for _ in range(iterations):
        alpha = math.sqrt(3 / (1 + low + low * low))
        coefficients.append(alpha)
        low = alpha * low * (3 - (alpha * low) ** 2) / 2
    return coefficients


def nuclear_norms_by_polar_iteration(
    matrices: torch.Tensor, iterations: int = POLAR_ITERATIONS, floor: float = POLAR_FLOOR
) -> torch.Tensor:
    """``||M||_* = tr(Q^T M)`` with Q the orthogonal polar factor of M, for every matrix,
    (..., h, w) -> (...), by matrix products only.

    With ``M = U S V^T``, ``Q = U V^T`` and ``tr(Q^T M) = sum_i sigma_i``. Q comes from the
    scaled Newton-Schulz iteration ``X <- 1.5 a X - 0.5 a^3 X (X^T X)`` started at
    ``X = M / (1.01 ||M||_F)`` (``POLAR_MARGIN``), with the scalings ``a`` of :func:`polar_coefficients`: it keeps the
    singular vectors and moves every singular value in [floor, 1] to 1. A singular value
    below ``floor * POLAR_MARGIN * ||M||_F`` is left short of 1, so the result can only err low, by at most
    the sum of those values. Two batched products (``bmm``) per step, in the input's
    precision (float32 needs ``torch.backends.cuda.matmul.allow_tf32`` off, torch's default).
    """
    _check_matrices(matrices)
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    tall = _short_side_last(matrices)
    batch_shape, (height, width) = tall.shape[:-2], tall.shape[-2:]
    tall = tall.reshape(-1, height, width)
    frobenius = torch.linalg.vector_norm(tall, dim=(-2, -1), keepdim=True)
    x = tall / (POLAR_MARGIN * frobenius).clamp_min(torch.finfo(tall.dtype).tiny)
    for alpha in polar_coefficients(iterations, floor):
        x = torch.baddbmm(x, x, x.mT @ x, beta=1.5 * alpha, alpha=-0.5 * alpha**3)
    return (x * tall).sum(dim=(-2, -1)).reshape(batch_shape)


@contextmanager
def polar_iteration_everywhere() -> Iterator[None]:
    """Within it (in this thread or task), :func:`matrix_nuclear_norms` takes the polar iteration on
    every device, the CPU too: matrix products only, which a traced graph (an ONNX export) can
    record, where the eigenvalue method leaves torch for LAPACK."""
    token = _POLAR_EVERYWHERE.set(True)
    try:
        yield
    finally:
        _POLAR_EVERYWHERE.reset(token)


def matrix_nuclear_norms(matrices: torch.Tensor) -> torch.Tensor:
    """Nuclear norm of every matrix, (..., h, w) -> (...), by the method that is fast where the
    matrices are: :func:`nuclear_norms_by_eigenvalues` on the CPU (LAPACK), else
    :func:`nuclear_norms_by_polar_iteration` (matrix products, which GPUs do best; their
    batched eigen and SVD solvers are slow for matrices of this size), and on every device
    within :func:`polar_iteration_everywhere`."""
    if matrices.device.type == "cpu" and not _POLAR_EVERYWHERE.get():
        return nuclear_norms_by_eigenvalues(matrices)
    return nuclear_norms_by_polar_iteration(matrices)
