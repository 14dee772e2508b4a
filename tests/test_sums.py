"""engine.cells.sums by hand: canonical-order group sums, the row positions of group_index, fsum."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from engine.cells.sums import exact_sum, group_index, group_sums


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "k": ["b", "a", None, "b", "a", "b", None],
        "j": [1, 1, 2, 1, 2, 1, 2],
        "x": [0.1, 1e16, 3.0, 0.2, None, 1.0, -1.0],
        "y": [1, 2, 3, 4, 5, 6, None],
    })


def test_group_index_sorted_nulls_last_and_each_rows_position() -> None:
    uniq, idx = group_index(_frame(), ["k", "j"])
    assert uniq.to_dict(as_series=False) == {"k": ["a", "a", "b", None], "j": [1, 2, 1, 2]}
    assert idx.dtype == np.int64
    assert idx.tolist() == [2, 0, 3, 2, 1, 2, 3]


def test_group_sums_by_hand_nulls_count_as_zero() -> None:
    out = group_sums(_frame(), ["k"], ["x", "y"])
    assert out.columns == ["k", "x", "y"]
    assert out.get_column("k").to_list() == ["a", "b", None]
    assert out.get_column("y").dtype == pl.Float64
    assert out.get_column("y").to_list() == [7.0, 11.0, 3.0]
    # each group is summed in ascending value order: (0.1 + 0.2) + 1.0 for "b"
    assert out.get_column("x").to_list() == [1e16, (0.1 + 0.2) + 1.0, 2.0]


def test_group_sums_same_bits_whatever_the_row_order() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    f = pl.DataFrame({"g": rng.integers(0, 7, n), "v": rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)})
    ref = group_sums(f, ["g"], ["v"])
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(n)
        assert group_sums(f[perm], ["g"], ["v"]).equals(ref)
    # the canonical order: each group's values sorted ascending, then numpy's sum of that run
    for g, s in ref.iter_rows():
        assert s == np.add.reduceat(np.sort(f.filter(pl.col("g") == g).get_column("v").to_numpy()), [0])[0]


def test_group_sums_without_keys_and_on_no_rows() -> None:
    f = _frame()
    none = group_sums(f, [], ["x", "y"])
    assert none.to_dict(as_series=False) == {"x": [math.fsum([0.1, 1e16, 3.0, 0.2, 1.0, -1.0])], "y": [21.0]}
    empty = group_sums(f.head(0), ["k"], ["x", "y"])
    assert empty.columns == ["k", "x", "y"] and empty.height == 0
    assert empty.schema["x"] == pl.Float64 and empty.schema["y"] == pl.Float64
    # groups whose position is not the first: sums land on their own row
    out = group_sums(pl.DataFrame({"g": [3, 1, 2, 3], "v": [1.0, 2.0, 4.0, 8.0]}), ["g"], ["v"])
    assert out.get_column("v").to_list() == [2.0, 4.0, 9.0]


def test_exact_sum_is_order_free_and_skips_nulls() -> None:
    vals = [1e16, 1.0, -1e16, 1.0]
    assert exact_sum(vals) == 2.0
    assert exact_sum(np.array(vals[::-1])) == 2.0
    assert exact_sum(pl.Series([1e16, None, 1.0, -1e16, 1])) == 2.0
    assert exact_sum([]) == 0.0


def _lexsort_sums(v: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """The reference: each group's values sorted by (group, value) with lexsort, added by reduceat."""
    order = np.lexsort((v, idx))
    vs, gs = v[order], idx[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    out = np.zeros(n)
    out[gs[starts]] = np.add.reduceat(vs, starts)
    return out


def test_group_sums_same_bits_as_the_lexsort_order() -> None:
    rng = np.random.default_rng(7)
    for trial in range(60):
        m, k = int(rng.integers(1, 2000)), int(rng.integers(1, 40))
        g = rng.integers(0, k, m)
        v = [rng.normal(size=m), rng.exponential(size=m) * 1e12, np.round(rng.normal(size=m), 1),
             rng.choice([0.0, -0.0, 1e-300, 1e300, -1e300, 3.0], m)][trial % 4]
        ints = rng.integers(-10**6, 10**6, m)
        df = pl.DataFrame({"g": g, "v": v, "i": ints})
        out = group_sums(df, ["g"], ["v", "i"])
        uniq, idx = group_index(df, ["g"])
        for c, x in (("v", v), ("i", ints.astype(float))):
            ref = _lexsort_sums(x, idx, uniq.height)
            assert out[c].to_numpy().view(np.uint64).tolist() == ref.view(np.uint64).tolist()
