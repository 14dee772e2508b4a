"""classify_claims: hand-checked reasons, first-claim rule, input order, errors."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from engine.errors import ConfigError, DataError
from engine.cells._exposure import classify_claims

D = dt.date


def _members() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "member_id": ["a", "b", "c"],
            "birth_date": [D(1980, 2, 29), D(1990, 1, 1), D(1970, 6, 30)],
            "sex": ["M", "F", "M"],
            "join_date": [D(2020, 1, 1), D(2020, 3, 1), D(2019, 1, 1)],
            "exit_date": [None, D(2020, 7, 1), None],
        },
        schema_overrides={"exit_date": pl.Date},
    )


def _claims() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "claim_id": [f"k{i}" for i in range(9)],
            "member_id": ["a", "a", "a", "a", "b", "b", "c", "c", "a"],
            "event_date": [
                D(2019, 12, 31),  # before join
                D(2020, 3, 30),  # join + 89: waiting period (w=90)
                D(2020, 3, 31),  # join + 90: first eligible
                D(2020, 4, 1),  # after first claim
                D(2020, 7, 1),  # exit day: after exit
                D(2020, 4, 30),  # join+60: waiting
                D(2019, 4, 1),  # eligible (before any study start)
                D(2019, 4, 1),  # same day as first: eligible too
                D(2020, 3, 31),  # same day as a's first: eligible
            ],
            "amount": [1.0] * 9,
        }
    )


def test_reasons_by_hand():
    out = classify_claims(_members(), _claims(), waiting_days=90)
    assert out.columns == [*_claims().columns, "eligible", "reason"]
    assert out["claim_id"].to_list() == _claims()["claim_id"].to_list()
    assert out["reason"].to_list() == [
        "before_join", "in_waiting_period", None, "after_first_claim", "after_exit",
        "in_waiting_period", None, None, None,
    ]
    assert out["eligible"].to_list() == [r is None for r in out["reason"].to_list()]


def test_no_termination_and_zero_wait():
    out = classify_claims(_members(), _claims(), waiting_days=0, terminate_on_claim=False)
    assert out["reason"].to_list() == ["before_join", None, None, None, "after_exit", None, None, None, None]


def test_ineligible_claim_does_not_end_cover():
    m = _members()
    c = pl.DataFrame({"claim_id": ["x", "y"], "member_id": ["a", "a"],
                      "event_date": [D(2020, 1, 5), D(2020, 6, 1)], "amount": [1.0, 2.0]})
    out = classify_claims(m.lazy(), c.lazy(), waiting_days=90)
    assert out["reason"].to_list() == ["in_waiting_period", None]


def test_unknown_member_and_errors():
    c = pl.DataFrame({"claim_id": ["x"], "member_id": ["zz"], "event_date": [D(2020, 1, 5)], "amount": [1.0]})
    assert classify_claims(_members(), c)["reason"].to_list() == ["unknown_member"]
    with pytest.raises(ConfigError, match="waiting_days"):
        classify_claims(_members(), c, waiting_days=-1)
    with pytest.raises(DataError, match="member_id 'a'"):
        classify_claims(pl.concat([_members(), _members()]), _claims())
    c2 = pl.DataFrame({"claim_id": ["x"], "member_id": ["b"], "event_date": [D(2020, 7, 1)], "amount": [1.0]})
    # inside the waiting period and on the exit day: the first rule (waiting) wins
    assert classify_claims(_members().with_columns(pl.lit(D(2020, 7, 1)).alias("exit_date")), c2,
                           waiting_days=200)["reason"].to_list() == ["in_waiting_period"]
    with pytest.raises(DataError, match="event_date"):
        classify_claims(_members(), c.drop("event_date"))


def test_existing_flags_are_recomputed_and_numpy_ints_accepted():
    import numpy as np

    c = _claims().with_columns(pl.lit(True).alias("eligible"), pl.lit("x").alias("reason"))
    out = classify_claims(_members(), c, waiting_days=np.int64(90))
    assert out.equals(classify_claims(_members(), _claims(), waiting_days=90))


def test_missing_member_column_named_and_given_eligibility_recomputed() -> None:
    """Found by mutation testing of the @api_input entry points (classify_claims, exposure)."""
    import engine

    with pytest.raises(DataError, match="^members: missing required column\\(s\\) 'exit_date'$"):
        classify_claims(_members().drop("exit_date"), _claims())
    kw = dict(start=dt.date(2019, 1, 1), end=dt.date(2021, 12, 31), by=["sex"])
    want = engine.exposure(_members(), _claims(), **kw)
    stale = _claims().with_columns(pl.lit(False).alias("eligible"), pl.lit("stale").alias("reason"))
    assert engine.exposure(_members(), stale, **kw).equals(want)
