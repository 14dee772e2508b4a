"""Death-spiral rule on membership and share paths: the documented test matrix (docs/projection.md)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.projection._spiral import spiral_period

H = 60
T = np.arange(H, dtype=float)


def fast_collapse(h: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """The issue's case: 1M -> 0.17M members and the share 30 -> 109 in 12 periods (geometric)."""
    t = np.arange(h, dtype=float)
    return 1e6 * (0.17 ** (t / (h - 1))), 30.0 * (109.0 / 30.0) ** (t / (h - 1))


def slow_decline() -> tuple[np.ndarray, np.ndarray]:
    """Run-off at a constant 1% a period after growth stopped; the share rises to its sustainable 40, converging."""
    return 1e6 * 0.99 ** T, 40.0 - 10.0 * 0.8 ** T


def growth_then_collapse() -> tuple[np.ndarray, np.ndarray]:
    """24 periods of 5% growth (share diluted, rising to 30), then members -10%/period, share +8%/period."""
    m = np.where(T < 24, 1e5 * 1.05 ** T, 1e5 * 1.05 ** 23 * 0.9 ** (T - 23))
    s = np.where(T < 24, 30.0 - 10.0 * 0.9 ** T, (30.0 - 10.0 * 0.9 ** 23) * 1.08 ** (T - 23))
    return m, s


def stable_pool() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return 1e6 * (1 + 0.002 * rng.standard_normal(H)), 30.0 * (1 + 0.03 * rng.standard_normal(H))


def shrinking_to_core() -> tuple[np.ndarray, np.ndarray]:
    """Members 1M -> core 0.3M (the decline halves every ~3.5 periods); the share 30 -> 60, levelling off."""
    return 3e5 + 7e5 * np.exp(-0.2 * T), 60.0 - 30.0 * np.exp(-0.25 * T)


MATRIX = [  # (name, paths, sustainable, expected first period or None)
    ("fast collapse", fast_collapse(), 30.0, 3),
    ("slow decline", slow_decline(), 40.0, None),
    ("growth then collapse", growth_then_collapse(), 30.0, 26),
    ("stable pool", stable_pool(), 30.0, None),
    ("shrinking to a stable core", shrinking_to_core(), 60.0, None),
]


@pytest.mark.parametrize(("name", "paths", "sus", "expected"), MATRIX, ids=[m[0] for m in MATRIX])
def test_spiral_matrix(name, paths, sus, expected) -> None:
    m, s = paths
    assert spiral_period(m, s, sus, window=12) == expected
    assert spiral_period(m, s, None, window=12) == expected  # no sustainable share needed for these paths


def test_fast_collapse_is_caught_within_the_first_year_and_the_conditions_hold() -> None:
    m, s = fast_collapse()
    t = spiral_period(m, s, 30.0, window=12)
    assert t is not None and t < 12
    # independent check of the four conditions at t (a = 0: the fall started at period 0; c = a + (t - a) // 2)
    a, c = 0, t // 2
    assert m[t] < 0.95 * m[a] and s[t] > 1.05 * s[a]
    assert np.log(m[t] / m[c]) / (t - c) <= 0.9 * np.log(m[c] / m[a]) / (c - a)
    assert np.log(s[t] / s[c]) / (t - c) >= 0.9 * np.log(s[c] / s[a]) / (c - a)
    # causal: the path cut just before t shows no spiral
    assert spiral_period(m[:t], s[:t], 30.0, window=12) is None


def test_growth_then_collapse_is_not_flagged_during_growth() -> None:
    m, s = growth_then_collapse()
    assert spiral_period(m[:24], s[:24], 30.0) is None
    t = spiral_period(m, s, 30.0)
    assert t == 23 + 3  # the fall starts after period 23: three periods of decline are needed


def test_overshoot_counts_only_while_exits_keep_their_pace() -> None:
    """Overshooting the sustainable share counts as not converging, but only while exits keep their pace:
    with slowing exits (a stable core forming) condition 3 fails whatever the share does."""
    m, s = shrinking_to_core()
    assert spiral_period(m, s, 20.0, window=12) is None  # exits slow down: no feedback
    m2 = 1e6 * 0.97 ** T  # exits at a constant pace, share well above a sustainable 20 but converging
    assert spiral_period(m2, s, 20.0) == 3
    assert spiral_period(m2, s, 60.0) is None


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        spiral_period(np.ones(5), np.ones(4))
    with pytest.raises(ConfigError):
        spiral_period(np.ones(5), np.ones(5), persistence=1.5)
