"""The exposure fast path (what ``engine.exposure`` runs) vs the tests' day-by-day oracle.

Random platforms of a few hundred members over a 2.7-year window with a 90-day waiting
period, every key combination and period: cells, claims and amounts must equal those of
tests/oracle_exposure.py (domain.md section 4 read literally), not another engine path.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

import engine
from tests.kits.oracle_exposure import oracle

KW = dict(start=dt.date(2018, 3, 15), end=dt.date(2020, 11, 20), waiting_days=90)


def _platform(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    join = np.datetime64("2017-01-01") + rng.integers(0, 1600, n).astype("timedelta64[D]")
    birth = join - rng.integers(365 * 18, 365 * 70, n).astype("timedelta64[D]")
    birth[: n // 10] = np.datetime64("1996-02-29")  # 29 February births
    exit_ = np.where(rng.random(n) < 0.5, join + rng.integers(0, 1200, n).astype("timedelta64[D]"),
                     np.datetime64("NaT"))
    channel = rng.choice(["organic", "subsidy", "referral", "employer", None], n)
    m = pl.DataFrame({"member_id": [f"m{i}" for i in range(n)], "birth_date": birth, "sex": rng.choice(["M", "F"], n),
                      "join_date": join, "exit_date": exit_, "tier": rng.integers(1, 4, n), "channel": channel})
    m = m.with_columns(pl.col("birth_date", "join_date", "exit_date").cast(pl.Date))
    k = n // 2
    who = rng.integers(0, n, k)
    ev = join[who] + rng.integers(-30, 900, k).astype("timedelta64[D]")
    c = pl.DataFrame({"claim_id": [f"c{i}" for i in range(k)], "member_id": [f"m{i}" for i in who],
                      "event_date": ev, "amount": rng.integers(1, 30, k) * 1e4})
    return m, c.with_columns(pl.col("event_date").cast(pl.Date))


@pytest.mark.parametrize("by, period", [(("age", "sex"), "month"), (("tier",), "year"), ((), "quarter"),
                                        (("channel", "age"), "year"), (("age", "duration_band", "sex"), "month"),
                                        (("duration", "age"), "quarter")])
def test_fast_path_equals_day_by_day_oracle(by, period) -> None:
    m, c = _platform(80, 7)
    got, rejected = engine.exposure(m, c, by=by, period=period, return_rejected=True, **KW)
    want, reasons = oracle(m, c, by=by, period=period, **KW)
    assert got["claims"].sum() > 10 and got["exposure_days"].sum() > 10_000  # the platform is not empty
    cols = ["period", *by, "exposure_days", "sharing_days", "claims", "amount"]
    assert got.select(cols).equals(want.cast(dict(got.select(cols).schema)))
    assert dict(zip(rejected["claim_id"], rejected["reason"])) == {k: v for k, v in reasons.items() if v}


@pytest.mark.parametrize("by, period", [(("channel", "tier", "sex"), "month"), (("age", "duration", "channel"), "quarter"),
                                        (("duration_band", "tier"), "year")])
def test_fallback_paths_equal_day_by_day_oracle(by, period, monkeypatch) -> None:
    """Found by mutation testing: the paths large platforms take, forced on a small one, against the oracle.

    Static keys encoded column by column (taken when a key has more than 32 values or a wide integer
    range), their ids compressed to the combinations present (more than 200,000 combinations), and
    duration anniversaries computed rather than tabled (more than 4,000,000 (value, join day) pairs).
    """
    from engine.cells import _accumulate, calendar

    monkeypatch.setattr(calendar, "_encode_one_pass", lambda mb, cols: None)
    monkeypatch.setattr(calendar, "STATIC_IDS_DENSE_MAX", 0)
    monkeypatch.setattr(_accumulate, "ANNIVERSARY_TABLE_MAX", 0)
    m, c = _platform(120, 11)
    m = m.with_columns(pl.Series("channel", m["channel"].to_list(), dtype=pl.String))
    got, rejected = engine.exposure(m, c, by=by, period=period, return_rejected=True, **KW)
    want, reasons = oracle(m, c, by=by, period=period, **KW)
    assert got["claims"].sum() > 10 and got["exposure_days"].sum() > 10_000
    cols = ["period", *by, "exposure_days", "sharing_days", "claims", "amount"]
    assert got.select(cols).equals(want.cast(dict(got.select(cols).schema)))
    assert dict(zip(rejected["claim_id"], rejected["reason"])) == {k: v for k, v in reasons.items() if v}


def test_encode_column_values_beyond_the_sampled_head() -> None:
    """Found by mutation testing: a value first met after the 50,000 sampled rows still gets its own code."""
    from engine.cells.calendar import encode_column

    s = pl.Series("channel", ["b"] * 30_000 + [None] * 20_000 + ["a", "c", "b", None])
    codes, vals = encode_column(s)
    assert vals.to_list() == ["a", "b", "c", None]  # sorted values, null last
    want = {"a": 0, "b": 1, "c": 2, None: 3}
    assert codes.tolist() == [want[v] for v in s.to_list()]


def test_wide_integer_keys_equal_day_by_day_oracle() -> None:
    """Found by mutation testing: four integer keys spanning 100,000 values each (ranges multiplying past
    2**63) once overflowed the static key id and gave wrong cells."""
    m, c = _platform(120, 11)
    rng = np.random.default_rng(1)
    m = m.with_columns(*[pl.Series(f"k{i}", rng.choice([0, 100_000], m.height)) for i in range(4)])
    by = ("k0", "k1", "k2", "k3")
    got = engine.exposure(m, c, by=by, period="year", **KW)
    want, _ = oracle(m, c, by=by, period="year", **KW)
    cols = ["period", *by, "exposure_days", "sharing_days", "claims", "amount"]
    assert got.select(cols).equals(want.cast(dict(got.select(cols).schema)))
