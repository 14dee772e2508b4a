"""The screen that skips the exact binomial test in the group notes never skips a pair the test would keep."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from engine.segmentation._select import _surely_distinguishable


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_screen_only_skips_small_p_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    skipped = 0
    for _ in range(400):
        n = int(rng.integers(1, 5000))
        p = float(rng.uniform(0.001, 0.999))
        k = int(rng.binomial(n, min(max(p * rng.uniform(0.5, 1.5), 0.0), 1.0)))
        if _surely_distinguishable(k, n, p):
            skipped += 1
            assert binomtest(k, n, p).pvalue < 0.01
    assert skipped > 50  # the screen does skip pairs with clearly different rates


def test_screen_keeps_close_rates_and_edges() -> None:
    assert not _surely_distinguishable(50, 100, 0.5)
    assert not _surely_distinguishable(0, 0, 0.5)
    assert not _surely_distinguishable(3, 10, 0.0)
    assert _surely_distinguishable(0, 2000, 0.5)
    assert _surely_distinguishable(2000, 2000, 0.5)
