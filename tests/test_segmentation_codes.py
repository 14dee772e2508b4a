"""Group labels counted, not sorted (engine.segmentation.metrics._unique_codes): the same arrays as ``np.unique``."""

from __future__ import annotations

import numpy as np
import pytest

from engine.segmentation.metrics import _unique_codes

_RNG = np.random.default_rng(7)
CASES = {
    "labels": _RNG.integers(1, 9, 20_000),
    "with zero": _RNG.integers(0, 9, 5_000).astype(np.int32),
    "units": _RNG.integers(0, 3_000, 20_000),
    "gaps": np.array([7, 3, 3, 900, 7]),
    "one": np.array([5]),
    "empty": np.array([], np.int64),
    "negative": _RNG.integers(-3, 4, 50),
    "too sparse": _RNG.integers(0, 10**9, 100),
    "uint8": _RNG.integers(0, 7, 1_000).astype(np.uint8),
    "uint64": _RNG.integers(0, 7, 1_000).astype(np.uint64),
    "floats": _RNG.random(100),
    "text": np.array(["b", "a", "b"]),
    "2-d": _RNG.integers(0, 9, (3, 4)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_values_positions_and_dtypes_as_np_unique(name: str) -> None:
    x = CASES[name]
    got, want = _unique_codes(x), np.unique(x, return_inverse=True)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)
