"""Share-history rules found untested by mutation testing (docs/testing.md): the refusal message of
negative settings, the annual cumulation over three calendar years, the summary's row order, members
given as partitions read in small batches, and the counts of no members."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from engine.errors import ConfigError
from engine.shares._stream import member_counts
from engine.shares.history import history_summary, share_history
from tests.test_history import _claims, _members, _random_platform

D = dt.date
KW = dict(fee=0.08, waiting_days=45, reporting_lag_days=20, per_claimant_cap=0.15, annual_cap=0.6)


@pytest.mark.parametrize("bad", [dict(fee=-0.01), dict(waiting_days=-1), dict(reporting_lag_days=-1)])
def test_negative_settings_refused_with_the_rule(bad) -> None:
    with pytest.raises(ConfigError, match=r"^fee, waiting_days and reporting_lag_days must be >= 0$"):
        share_history(_members(), _claims(), start=D(2020, 1, 1), end=D(2020, 3, 31), **bad)


@pytest.fixture(scope="module")
def three_years() -> pl.DataFrame:
    members, claims = _random_platform(1)
    return share_history(members, claims, start=D(2020, 1, 1), end=D(2022, 12, 31), **KW)


def test_cumulative_paid_restarts_every_calendar_year(three_years) -> None:
    h = three_years.with_columns(year=pl.col("notice_date").dt.year())
    assert h.get_column("year").unique().sort().to_list() == [2020, 2021, 2022]
    want = h.select(pl.col("share_paid_cny").cum_sum().over("plan_id", "year", order_by="notice_date"))
    assert h.get_column("cumulative_paid_cny").to_list() == pytest.approx(want.to_series().to_list(), abs=1e-12)
    assert h.filter(pl.col("share_paid_cny") > 0).height > 0


def test_summary_rows_sorted_by_pool_then_year(three_years) -> None:
    s = history_summary(three_years)
    assert s.select("plan_id", "year").rows() == [(p, y) for p in ("A", "B") for y in (2020, 2021, 2022)]


def test_partitions_in_small_batches_equal_one_frame() -> None:
    members, claims = _random_platform(2)
    one = share_history(members, claims, start=D(2020, 1, 1), end=D(2021, 6, 30), **KW)
    k = members.height // 3
    parts = [members.slice(0, k), members.slice(k, 0), members.slice(k)]
    assert share_history(parts, claims, start=D(2020, 1, 1), end=D(2021, 6, 30), batch_size=7, **KW).equals(one)


def test_member_counts_of_no_members_keep_the_columns() -> None:
    out = member_counts(_members().head(0), ["sex"])
    assert out.columns == ["sex", "join_date", "exit_date", "_n"] and out.height == 0
    full = member_counts(_members(), ["sex"]).sort("join_date")
    assert full.columns == ["sex", "join_date", "exit_date", "_n"]
    assert full.get_column("_n").to_list() == [1, 1, 1, 1]


def test_sharing_counts_one_pool_by_default() -> None:
    import numpy as np

    from engine.shares._counts import sharing_counts

    join, exit_, T = np.array([0, 5, 10]), np.array([20, 10**6, 12]), np.array([5, 10, 15, 25])
    np.testing.assert_array_equal(sharing_counts(join, exit_, T), [[2.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(sharing_counts(join, exit_, T, delay_days=5), [[1.0, 2.0, 2.0, 1.0]])
