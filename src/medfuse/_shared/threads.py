"""How many CPU threads the numerical libraries use, set once for a whole command."""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)
"""Read by torch (intra-op), the BLAS libraries and SimpleITK when they start."""


def limit_threads(count: int) -> None:
    """Use at most ``count`` CPU threads in torch, numpy's BLAS and SimpleITK: the environment
    for libraries not started yet, their own settings for those already imported."""
    if count < 1:
        from medfuse._shared.errors import InputError

        raise InputError(f"threads must be at least 1, got {count}")
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    if "SimpleITK" in sys.modules:
        sys.modules["SimpleITK"].ProcessObject.SetGlobalDefaultNumberOfThreads(count)
    from threadpoolctl import threadpool_limits

    threadpool_limits(count)  # BLAS and OpenMP pools already loaded (numpy's)
