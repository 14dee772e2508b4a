"""Dirty rows of every kind that :func:`engine.validate` must catch, with the expected account.

Notes
-----
With share ``dirty`` the generator corrupts k_m = max(1, round(dirty * n_members / 10))
member rows per member kind and k_c = max(1, round(dirty * n_claims / 10)) claim
rows per claim kind, on distinct rows, and reports the reasons the validator
must give (``params["dirty_expected"]``). In-place member kinds: null member_id /
birth_date / sex / join_date, birth in 1850 (date_out_of_range), unknown sex,
birth in 2090 (birth_in_future), birth after join, exit before join. Appended:
a second row for k_m ids with another sex (all 2 k_m rows: duplicate_member_id).
Claims of corrupted members become ``member_set_aside`` (``unknown_member`` when
the member's id was nulled). In-place claim kinds, on claims of clean members:
null claim_id / member_id / event_date / amount, NaN or inf amount, zero or
negative amount, event in 1850. Appended: exact copies (duplicate_claim_row),
copies with another amount (duplicate_claim_id, both rows), claims of ids no
member has (unknown_member). Finally k_c well-formed but *ineligible* claims of each
kind that validation passes and exposure sets aside: 5 days before joining
(``before_join``), 10 days after exit (``after_exit``) and 5 days after a first
eligible claim (``after_first_claim``), on clean members
(``params["dirty_expected"]["ineligible"]``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import polars as pl

from engine.conventions import WAITING_DAYS

MEMBER_KINDS = (
    "null_member_id",
    "null_birth_date",
    "null_sex",
    "null_join_date",
    "date_out_of_range",
    "unknown_sex",
    "birth_in_future",
    "birth_after_join",
    "exit_before_join",
    "duplicate_member_id",
)
CLAIM_KINDS = (
    "null_claim_id",
    "null_member_id",
    "null_event_date",
    "null_amount",
    "nonfinite_amount",
    "nonpositive_amount",
    "date_out_of_range",
    "duplicate_claim_row",
    "duplicate_claim_id",
    "unknown_member",
)
OLD = dt.date(1850, 1, 1)
FUTURE = dt.date(2090, 1, 1)


def _in(rows: np.ndarray) -> pl.Expr:
    return pl.col("_row").is_in(pl.Series(rows, dtype=pl.UInt32).implode())


def _corrupt_members(m: pl.DataFrame, picks: dict[str, np.ndarray]) -> pl.DataFrame:
    p = picks
    return m.with_columns(
        pl.when(_in(p["null_member_id"])).then(None).otherwise(pl.col("member_id")).alias("member_id"),
        pl.when(_in(p["null_birth_date"]))
        .then(None)
        .when(_in(p["date_out_of_range"]))
        .then(pl.lit(OLD))
        .when(_in(p["birth_in_future"]))
        .then(pl.lit(FUTURE))
        .when(_in(p["birth_after_join"]))
        .then(pl.col("join_date") + pl.duration(days=10))
        .otherwise(pl.col("birth_date"))
        .alias("birth_date"),
        pl.when(_in(p["null_sex"]))
        .then(None)
        .when(_in(p["unknown_sex"]))
        .then(pl.lit("U"))
        .otherwise(pl.col("sex"))
        .alias("sex"),
        pl.when(_in(p["null_join_date"])).then(None).otherwise(pl.col("join_date")).alias("join_date"),
        pl.when(_in(p["exit_before_join"]))
        .then(pl.col("join_date") - pl.duration(days=1))
        .otherwise(pl.col("exit_date"))
        .alias("exit_date"),
    )


def _corrupt_claims(c: pl.DataFrame, picks: dict[str, np.ndarray]) -> pl.DataFrame:
    p = picks
    nonfinite = p["nonfinite_amount"]
    nonpos = p["nonpositive_amount"]
    return c.with_columns(
        pl.when(_in(p["null_claim_id"])).then(None).otherwise(pl.col("claim_id")).alias("claim_id"),
        pl.when(_in(p["null_member_id"])).then(None).otherwise(pl.col("member_id")).alias("member_id"),
        pl.when(_in(p["null_event_date"]))
        .then(None)
        .when(_in(p["date_out_of_range"]))
        .then(pl.lit(OLD))
        .otherwise(pl.col("event_date"))
        .alias("event_date"),
        pl.when(_in(p["null_amount"]))
        .then(None)
        .when(_in(nonfinite[::2]))
        .then(float("nan"))
        .when(_in(nonfinite[1::2]))
        .then(float("inf"))
        .when(_in(nonpos[::2]))
        .then(0.0)
        .when(_in(nonpos[1::2]))
        .then(-pl.col("amount"))
        .otherwise(pl.col("amount"))
        .alias("amount"),
    )


def make_dirty(
    members: pl.DataFrame, claims: pl.DataFrame, dirty: float, rng: np.random.Generator, waiting_days: int = WAITING_DAYS
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, dict[str, int]]]:
    """Corrupt and append rows; return (members, claims, expected set-aside counts by reason)."""
    n_m = members.height
    k_m = min(max(1, round(dirty * n_m / len(MEMBER_KINDS))), n_m // len(MEMBER_KINDS))
    rows = rng.choice(n_m, size=k_m * len(MEMBER_KINDS), replace=False).astype(np.uint32)
    mp = {kind: rows[i * k_m : (i + 1) * k_m] for i, kind in enumerate(MEMBER_KINDS)}
    m = members.with_row_index("_row")
    bad_rows = rows
    nulled_ids = m["member_id"].gather(mp["null_member_id"].astype(np.int64))
    bad_ids = m["member_id"].gather(np.sort(bad_rows).astype(np.int64))
    dup = m.filter(_in(mp["duplicate_member_id"])).with_columns(
        pl.when(pl.col("sex") == "M").then(pl.lit("F")).otherwise(pl.lit("M")).alias("sex")
    )
    m_clean = m.filter(~_in(rows)).drop("_row")
    m = pl.concat([_corrupt_members(m, mp), dup]).drop("_row")
    expected_m = {kind: k_m for kind in MEMBER_KINDS if k_m}
    if k_m:
        expected_m["duplicate_member_id"] = 2 * k_m

    c = claims.with_row_index("_row")
    of_bad = c["member_id"].is_in(bad_ids.implode())
    of_nulled = c["member_id"].is_in(nulled_ids.implode())
    natural = Counter({"unknown_member": int(of_nulled.sum()), "member_set_aside": int((of_bad & ~of_nulled).sum())})
    clean_rows = c.filter(~of_bad)["_row"].to_numpy()
    k_c = min(max(1, round(dirty * claims.height / len(CLAIM_KINDS))), clean_rows.size // len(CLAIM_KINDS))
    crow = rng.choice(clean_rows, size=k_c * len(CLAIM_KINDS), replace=False).astype(np.uint32)
    cp = {kind: crow[i * k_c : (i + 1) * k_c] for i, kind in enumerate(CLAIM_KINDS)}
    exact = c.filter(_in(cp["duplicate_claim_row"]))
    conflict = c.filter(_in(cp["duplicate_claim_id"])).with_columns((pl.col("amount") * 0.5).alias("amount"))
    unknown = c.filter(_in(cp["unknown_member"])).with_columns(
        (pl.lit("X") + pl.col("claim_id")).alias("claim_id"),
        (pl.lit("X") + pl.col("member_id")).alias("member_id"),
    )
    ineligible = _ineligible_claims(m_clean, claims.filter(~of_bad), k_c, rng, waiting_days)
    c = pl.concat([_corrupt_claims(c, cp), exact, conflict, unknown]).drop("_row")
    c = pl.concat([c, ineligible], how="diagonal_relaxed")
    expected_c = Counter({kind: k_c for kind in CLAIM_KINDS if k_c})
    if k_c:
        expected_c["duplicate_claim_id"] = 2 * k_c
    expected_c.update(natural)
    expected = {"members": expected_m, "claims": {k: v for k, v in sorted(expected_c.items()) if v}}
    counts = ineligible.group_by("_kind").len()
    expected["ineligible"] = {kind: int(n) for kind, n in counts.sort("_kind").iter_rows()}
    c = c.drop("_kind")
    return m, c, expected


def _ineligible_claims(
    m_clean: pl.DataFrame, c_clean: pl.DataFrame, k: int, rng: np.random.Generator, waiting_days: int
) -> pl.DataFrame:
    """Well-formed claims that pass validation but are ineligible, on clean members:
    ``k`` dated 5 days before joining (``before_join``), ``k`` dated 10 days after exit
    (``after_exit``) and ``k`` dated 5 days after a first eligible claim (``after_first_claim``)."""

    def pick(df: pl.DataFrame) -> pl.DataFrame:
        n = min(k, df.height)
        return df.gather(np.sort(rng.choice(df.height, size=n, replace=False))) if n else df.head(0)

    first = (
        c_clean.join(m_clean.select("member_id", "join_date", "exit_date"), on="member_id", maintain_order="left")
        .filter(
            (pl.col("event_date") >= pl.col("join_date") + pl.duration(days=waiting_days))
            & (pl.col("exit_date").is_null() | (pl.col("event_date") < pl.col("exit_date")))
        )
        .group_by("member_id", maintain_order=True)
        .agg(pl.col("event_date").min())
        .sort("member_id")
    )
    parts = [
        pick(m_clean).select("member_id", (pl.col("join_date") - pl.duration(days=5)).alias("event_date"), pl.lit("before_join").alias("_kind")),
        pick(m_clean.filter(pl.col("exit_date").is_not_null())).select(
            "member_id", (pl.col("exit_date") + pl.duration(days=10)).alias("event_date"), pl.lit("after_exit").alias("_kind")
        ),
        pick(first).select("member_id", (pl.col("event_date") + pl.duration(days=5)).alias("event_date"), pl.lit("after_first_claim").alias("_kind")),
    ]
    out = pl.concat(parts).with_row_index("_i")
    return out.select(
        (pl.lit("Y") + pl.col("_i").cast(pl.String).str.zfill(9)).alias("claim_id"),
        "member_id",
        "event_date",
        pl.lit(100_000.0).alias("amount"),
        (pl.col("event_date") + pl.duration(days=30)).alias("approved_date"),
        pl.lit("other").alias("cause"),
        "_kind",
    )
