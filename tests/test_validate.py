"""Validation rules, one hand-made frame each, and the row account (also on generated dirty data)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from engine.data.validation import validate

D = dt.date
AS_OF = D(2022, 6, 30)

MEMBER_SCHEMA = {
    "member_id": pl.String,
    "birth_date": pl.Date,
    "sex": pl.String,
    "join_date": pl.Date,
    "exit_date": pl.Date,
    "city_tier": pl.Int64,
}
CLAIM_SCHEMA = {
    "claim_id": pl.String,
    "member_id": pl.String,
    "event_date": pl.Date,
    "amount": pl.Float64,
    "approved_date": pl.Date,
    "cause": pl.String,
}


def good_member(mid: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "member_id": mid,
        "birth_date": D(1990, 5, 1),
        "sex": "F",
        "join_date": D(2019, 1, 10),
        "exit_date": None,
        "city_tier": 2,
    }
    row.update(kw)
    return row


def good_claim(cid: str, mid: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "claim_id": cid,
        "member_id": mid,
        "event_date": D(2020, 3, 1),
        "amount": 300_000.0,
        "approved_date": D(2020, 4, 1),
        "cause": "cancer",
    }
    row.update(kw)
    return row


def members_df(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=MEMBER_SCHEMA)


def claims_df(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CLAIM_SCHEMA)


def reasons(df: pl.DataFrame, key: str) -> dict[object, str]:
    return dict(zip(df[key].to_list(), df["reason"].to_list(), strict=True))


def check_account(res, n_members: int, n_claims: int) -> None:  # type: ignore[no-untyped-def]
    for what, n, rejected, clean in (
        ("members", n_members, res.rejected_members, res.members.collect()),
        ("claims", n_claims, res.rejected_claims, res.claims.collect()),
    ):
        acc = res.account[what]
        assert acc["read"] == n
        assert acc["used"] == clean.height
        assert sum(acc["set_aside"].values()) == rejected.height
        assert acc["read"] == acc["used"] + rejected.height
        # per reason counts agree with the rejected frame
        counts = {r: int(k) for r, k in rejected.group_by("reason").len().iter_rows()} if rejected.height else {}
        assert counts == acc["set_aside"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (good_member("x", member_id=None), "null_member_id"),
        (good_member("x", birth_date=None), "null_birth_date"),
        (good_member("x", sex=None), "null_sex"),
        (good_member("x", join_date=None), "null_join_date"),
        (good_member("x", birth_date=D(1850, 1, 1)), "date_out_of_range"),
        (good_member("x", exit_date=D(2150, 1, 1)), "date_out_of_range"),
        (good_member("x", sex="U"), "unknown_sex"),
        (good_member("x", sex="male"), "unknown_sex"),
        (good_member("x", birth_date=D(2023, 1, 1), join_date=D(2023, 2, 1)), "birth_in_future"),
        (good_member("x", birth_date=D(2019, 2, 1)), "birth_after_join"),
        (good_member("x", exit_date=D(2019, 1, 9)), "exit_before_join"),
    ],
)
def test_each_member_rule(row: dict[str, object], reason: str) -> None:
    ok = [good_member("a"), good_member("b", sex="M", exit_date=D(2019, 1, 10))]  # exit == join is allowed
    res = validate(members_df([*ok, row]), claims_df([]), as_of=AS_OF)
    assert res.rejected_members.height == 1
    assert res.rejected_members["reason"].to_list() == [reason]
    assert sorted(res.members.collect()["member_id"].to_list()) == ["a", "b"]
    check_account(res, 3, 0)


def test_first_matching_member_rule_wins() -> None:
    # null sex and exit before join: the null rule comes first
    row = good_member("x", sex=None, exit_date=D(2018, 1, 1))
    res = validate(members_df([good_member("a"), row]), claims_df([]), as_of=AS_OF)
    assert res.rejected_members["reason"].to_list() == ["null_sex"]


def test_duplicate_member_id_sets_aside_every_row_and_its_claims() -> None:
    rows = [good_member("a"), good_member("d"), good_member("d", sex="M"), good_member("d", sex="M"), good_member("e")]
    claims = [good_claim("c1", "d"), good_claim("c2", "a"), good_claim("c3", "e")]
    res = validate(members_df(rows), claims_df(claims), as_of=AS_OF)
    assert res.rejected_members["member_id"].to_list() == ["d", "d", "d"]
    assert set(res.rejected_members["reason"]) == {"duplicate_member_id"}
    assert reasons(res.rejected_claims, "claim_id") == {"c1": "member_set_aside"}
    assert sorted(res.claims.collect()["claim_id"].to_list()) == ["c2", "c3"]
    check_account(res, 5, 3)


def test_duplicate_of_an_invalid_row_keeps_first_reason() -> None:
    rows = [good_member("a"), good_member("d"), good_member("d", sex="X")]
    res = validate(members_df(rows), claims_df([]), as_of=AS_OF)
    got = sorted(zip(res.rejected_members["sex"].to_list(), res.rejected_members["reason"].to_list(), strict=True))
    assert got == [("F", "duplicate_member_id"), ("X", "unknown_sex")]


def test_null_member_ids_are_not_duplicates_of_each_other() -> None:
    rows = [good_member("a"), good_member("x", member_id=None), good_member("y", member_id=None)]
    res = validate(members_df(rows), claims_df([]), as_of=AS_OF)
    assert res.rejected_members["reason"].to_list() == ["null_member_id", "null_member_id"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (good_claim(None, "a"), "null_claim_id"),
        (good_claim("c", None), "null_member_id"),
        (good_claim("c", "a", event_date=None), "null_event_date"),
        (good_claim("c", "a", amount=None), "null_amount"),
        (good_claim("c", "a", amount=float("nan")), "nonfinite_amount"),
        (good_claim("c", "a", amount=float("inf")), "nonfinite_amount"),
        (good_claim("c", "a", amount=0.0), "nonpositive_amount"),
        (good_claim("c", "a", amount=-5.0), "nonpositive_amount"),
        (good_claim("c", "a", event_date=D(1800, 1, 1)), "date_out_of_range"),
        (good_claim("c", "a", approved_date=D(2200, 1, 1)), "date_out_of_range"),
        (good_claim("c", "zzz"), "unknown_member"),
        (good_claim("c", "bad"), "member_set_aside"),
    ],
)
def test_each_claim_rule(row: dict[str, object], reason: str) -> None:
    members = members_df([good_member("a"), good_member("bad", sex="?")])
    claims = claims_df([good_claim("ok", "a"), row])
    res = validate(members, claims, as_of=AS_OF)
    assert res.rejected_claims["reason"].to_list() == [reason]
    assert res.claims.collect()["claim_id"].to_list() == ["ok"]
    check_account(res, 2, 2)


def test_nullable_claim_columns_are_fine() -> None:
    res = validate(members_df([good_member("a")]), claims_df([good_claim("c", "a", approved_date=None, cause=None)]), as_of=AS_OF)
    assert res.rejected_claims.height == 0
    assert res.claims.collect().height == 1


def test_exact_duplicate_claim_rows_keep_the_first() -> None:
    claims = [good_claim("c1", "a"), good_claim("c1", "a"), good_claim("c1", "a"), good_claim("c2", "a")]
    res = validate(members_df([good_member("a")]), claims_df(claims), as_of=AS_OF)
    assert res.rejected_claims["reason"].to_list() == ["duplicate_claim_row", "duplicate_claim_row"]
    assert res.claims.collect()["claim_id"].to_list() == ["c1", "c2"]
    check_account(res, 1, 4)


def test_conflicting_claim_ids_set_aside_every_row() -> None:
    claims = [good_claim("c1", "a"), good_claim("c1", "a", amount=100_000.0), good_claim("c2", "a")]
    res = validate(members_df([good_member("a")]), claims_df(claims), as_of=AS_OF)
    assert res.rejected_claims["reason"].to_list() == ["duplicate_claim_id", "duplicate_claim_id"]
    assert res.claims.collect()["claim_id"].to_list() == ["c2"]


def test_exact_copy_plus_conflict() -> None:
    # two identical rows and one disagreeing row of the same id: the copy is a duplicate row,
    # the remaining two disagree, so both are duplicate_claim_id
    claims = [good_claim("c1", "a"), good_claim("c1", "a"), good_claim("c1", "a", amount=1.0)]
    res = validate(members_df([good_member("a")]), claims_df(claims), as_of=AS_OF)
    assert sorted(res.rejected_claims["reason"].to_list()) == ["duplicate_claim_id", "duplicate_claim_id", "duplicate_claim_row"]
    assert res.claims.collect().height == 0
    check_account(res, 1, 3)


def test_well_formed_ineligible_claims_pass_validation() -> None:
    # before joining, in the waiting period, after exit, second claim: decided later by exposure
    members = members_df([good_member("a", exit_date=D(2020, 1, 1))])
    claims = claims_df(
        [
            good_claim("before", "a", event_date=D(2018, 1, 1)),
            good_claim("waiting", "a", event_date=D(2019, 2, 1)),
            good_claim("first", "a", event_date=D(2019, 6, 1)),
            good_claim("second", "a", event_date=D(2019, 7, 1)),
            good_claim("after_exit", "a", event_date=D(2021, 1, 1)),
        ]
    )
    res = validate(members, claims, as_of=AS_OF)
    assert res.rejected_claims.height == 0
    assert res.claims.collect().height == 5


def test_rating_factors_pass_through_and_usable_flag() -> None:
    res = validate(members_df([good_member("a", city_tier=5)]), claims_df([]), as_of=AS_OF)
    assert res.members.collect()["city_tier"].to_list() == [5]
    assert res.usable
    res = validate(members_df([good_member("a", sex="?")]), claims_df([]), as_of=AS_OF)
    assert not res.usable


def test_account_on_generated_dirty_data_matches_every_injected_kind() -> None:
    from engine.synth import generate
    from engine.synth.dirty import CLAIM_KINDS, MEMBER_KINDS

    plat = generate(200_000, seed=11, dirty=0.02, level=3.0)
    res = validate(plat.members, plat.claims)
    expected = plat.params["dirty_expected"]
    check_account(res, plat.members.height, plat.claims.height)
    assert res.account["members"]["set_aside"] == expected["members"]
    assert res.account["claims"]["set_aside"] == expected["claims"]
    assert set(MEMBER_KINDS) <= set(res.account["members"]["set_aside"])
    assert set(CLAIM_KINDS) | {"member_set_aside"} <= set(res.account["claims"]["set_aside"])
    # what is left is exactly the clean generated data minus the corrupted members
    clean_ids = set(res.members.collect()["member_id"].to_list())
    assert res.account["members"]["used"] == len(clean_ids)
    assert clean_ids <= set(plat.truth["member_id"].to_list())


def test_validation_keeps_input_row_order() -> None:
    """Clean and set-aside rows come out in input order (deterministic outputs)."""
    from engine.synth import generate

    plat = generate(300_000, seed=3, dirty=0.01)
    res = validate(plat.members, plat.claims)
    m = plat.members.with_row_index("_i")
    clean = res.members.collect()["member_id"]
    expected = m.filter(pl.col("member_id").is_in(clean.implode()) & pl.col("member_id").is_not_null())
    assert clean.equals(expected["member_id"])
    rej = res.rejected_members.drop("reason")
    assert rej.equals(plat.members.filter(~pl.col("member_id").is_in(clean.implode()) | pl.col("member_id").is_null()))
