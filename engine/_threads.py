"""Same bytes whatever the BLAS thread count: fentan's linear algebra runs on one BLAS thread.

A multi-threaded BLAS splits a matrix product between threads and may add the partial sums in
another order, so the last bits of a GLM prediction (and of everything built on it: segments,
frontier) would depend on ``OPENBLAS_NUM_THREADS``. The matrices of fentan are small (cells x
coefficients), so :func:`one_blas_thread` limits every loaded BLAS to one thread for a command
or a run. polars sums never depend on its thread count (:mod:`engine.cells.sums`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["one_blas_thread"]


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with every BLAS library (numpy's, scipy's) limited to one thread."""
    import numpy  # noqa: F401  (load the BLAS libraries before limiting them)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
