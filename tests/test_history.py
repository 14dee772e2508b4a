"""Realised share history: a hand-computed platform, loop oracles on random data, identities."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from engine.errors import ConfigError
from engine.shares.history import notice_dates, share_history, sharing_calendar
from tests.kits.cli_error import error_line

D = dt.date


def _members() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "member_id": ["a", "b", "c", "d"],
            "birth_date": [D(1990, 1, 1)] * 4,
            "sex": ["M", "F", "M", "F"],
            "join_date": [D(2020, 1, 1), D(2020, 1, 10), D(2020, 1, 20), D(2020, 2, 1)],
            "exit_date": [None, D(2020, 2, 14), None, None],
        },
        schema_overrides={"exit_date": pl.Date},
    )


def _claims() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "claim_id": ["x", "y", "z", "q", "r"],
            "member_id": ["a", "c", "a", "d", "b"],
            "event_date": [D(2020, 1, 5), D(2020, 1, 25), D(2020, 2, 20), D(2020, 3, 10), D(2020, 2, 1)],
            "amount": [1.0, 2.0, 0.5, 3.0, 100.0],
            "approved_date": [D(2020, 1, 14), None, D(2020, 2, 28), D(2020, 3, 15), D(2020, 3, 1)],
            "eligible": [True, True, True, True, False],
        },
        schema_overrides={"approved_date": pl.Date},
    )


def _hand(**kw) -> pl.DataFrame:
    args = dict(start=D(2020, 1, 1), end=D(2020, 3, 31), fee=0.08, waiting_days=30, reporting_lag_days=30,
                per_claimant_cap=0.5, annual_cap=1.2)
    args.update(kw)
    return share_history(_members(), _claims(), **args)


def test_hand_computed_platform():
    h = _hand()
    # Notice dates 14th and 28th; period t = (previous notice, notice].
    assert h["notice_date"].to_list() == [D(2020, 1, 14), D(2020, 1, 28), D(2020, 2, 14), D(2020, 2, 28),
                                          D(2020, 3, 14), D(2020, 3, 28)]
    assert h["period_start"][0] == D(2019, 12, 29)
    assert h["period_days"].to_list() == [17, 14, 17, 14, 15, 14]
    # Sharing (join <= d < exit): 01-14 a,b; 01-28 a,b,c; 02-14 a,c,d (b exits that day); then a,c,d.
    assert h["sharing_members"].to_list() == [2, 3, 3, 3, 3, 3]
    # Eligible from join+30: a 01-31, b 02-09, c 02-19, d 03-02.
    assert h["eligible_members"].to_list() == [0, 0, 1, 2, 3, 3]
    # x approved 01-14 -> p1; y event 01-25 + 30 = 02-24 -> p4; z approved 02-28 -> p4 (boundary);
    # q approved 03-15 -> p6; r is not eligible.
    assert h["claims_approved"].to_list() == [1, 0, 0, 2, 0, 1]
    assert h["amount_approved_cny"].to_list() == pytest.approx([1.0, 0, 0, 2.5, 0, 3.0])
    assert h["fee_cny"].to_list() == pytest.approx([0.08, 0, 0, 0.2, 0, 0.24])
    # p1: 1.08 / 2 = 0.54; p4: 2.7 / 3 = 0.9; p6: 3.24 / 3 = 1.08
    assert h["share_cny"].to_list() == pytest.approx([0.54, 0, 0, 0.9, 0, 1.08])
    # per-claimant cap 0.5: p1 min(.54,.5)=.5; p4 min(.72,.5)+min(.18,.5)=.68; p6 min(1.08,.5)=.5
    assert h["share_capped_cny"].to_list() == pytest.approx([0.5, 0, 0, 0.68, 0, 0.5])
    # platform: p1 1.08-0.5*2=0.08; p4 2.16-1.5=0.66 (z below cap); p6 3.24-1.5=1.74
    assert h["platform_paid_per_claimant_cap_cny"].to_list() == pytest.approx([0.08, 0, 0, 0.66, 0, 1.74])
    assert h["platform_paid_per_claimant_cap_per_member_cny"].to_list() == pytest.approx([0.04, 0, 0, 0.22, 0, 0.58])
    # full-year member (a): cumulative .5, .5, .5, 1.18, 1.18, 1.68; annual cap 1.2 -> pays .02 in p6
    assert h["cumulative_share_cny"].to_list() == pytest.approx([0.5, 0.5, 0.5, 1.18, 1.18, 1.68])
    assert h["share_paid_cny"].to_list() == pytest.approx([0.5, 0, 0, 0.68, 0, 0.02])
    assert h["cumulative_paid_cny"].to_list() == pytest.approx([0.5, 0.5, 0.5, 1.18, 1.18, 1.2])
    assert h["platform_paid_annual_cap_per_member_cny"].to_list() == pytest.approx([0, 0, 0, 0, 0, 0.48])
    # p6 sharers: a (cumulative 1.18 -> pays .02), c (from 01-28: .68 -> pays .5), d (from 02-14: .68 -> .5)
    assert h["platform_paid_annual_cap_cny"].to_list() == pytest.approx([0, 0, 0, 0, 0, 0.48])
    assert h["members_paid_cny"].to_list() == pytest.approx([1.0, 0, 0, 2.04, 0, 1.02])
    assert h["share_paid_mean_cny"][5] == pytest.approx(1.02 / 3)


def test_start_mid_year_keeps_cumulation_from_january():
    full = _hand()
    part = _hand(start=D(2020, 2, 1))
    assert part.height == 4
    assert part.drop("plan_id").to_dicts() == full.drop("plan_id").tail(4).to_dicts()


def test_no_caps_share_paid_equals_share():
    h = _hand(per_claimant_cap=None, annual_cap=None)
    assert h["share_paid_cny"].to_list() == pytest.approx(h["share_cny"].to_list())
    assert h["platform_paid_annual_cap_cny"].sum() == 0
    assert h["platform_paid_per_claimant_cap_cny"].sum() == 0


def test_monthly_and_single_day_calendars():
    assert notice_dates(D(2020, 1, 1), D(2020, 4, 30), "monthly") == [D(2020, 1, 31), D(2020, 2, 29), D(2020, 3, 31), D(2020, 4, 30)]
    assert notice_dates(D(2021, 1, 1), D(2021, 3, 31), 30) == [D(2021, 1, 30), D(2021, 2, 28), D(2021, 3, 30)]
    cal = sharing_calendar(D(2020, 3, 1), D(2020, 4, 30), "monthly")
    assert cal.to_dicts() == [{"period_start": D(2020, 3, 1), "notice_date": D(2020, 3, 31)},
                              {"period_start": D(2020, 4, 1), "notice_date": D(2020, 4, 30)}]
    h = _hand(sharing_days="monthly")
    # month ends: 01-31 a,b,c; 02-29 a,c,d; 03-31 a,c,d
    assert h["sharing_members"].to_list() == [3, 3, 3]
    assert h["claims_approved"].to_list() == [1, 2, 1]


def test_bad_configuration_names_the_key():
    with pytest.raises(ConfigError, match="sharing_days"):
        _hand(sharing_days=(0, 14))
    with pytest.raises(ConfigError, match="end"):
        _hand(end=D(2019, 1, 1))
    with pytest.raises(ConfigError, match="plan_col"):
        _hand(plan_col="tier")


# --------------------------------------------------------------------------- random data vs loop oracles
def _random_platform(seed: int, n: int = 60, n_claims: int = 40):
    rng = np.random.default_rng(seed)
    base = D(2019, 11, 1)
    join = [base + dt.timedelta(days=int(x)) for x in rng.integers(0, 400, n)]
    exit_ = [j + dt.timedelta(days=int(x)) if rng.random() < 0.4 else None for j, x in zip(join, rng.integers(0, 200, n), strict=True)]
    members = pl.DataFrame(
        {
            "member_id": [f"m{i}" for i in range(n)],
            "birth_date": [D(1980, 1, 1)] * n,
            "sex": ["M"] * n,
            "join_date": join,
            "exit_date": exit_,
            "plan_id": rng.choice(["A", "B"], n).tolist(),
        },
        schema_overrides={"exit_date": pl.Date},
    )
    who = rng.integers(0, n, n_claims)
    ev = [join[w] + dt.timedelta(days=int(x)) for w, x in zip(who, rng.integers(0, 150, n_claims), strict=True)]
    appr = [e + dt.timedelta(days=int(x)) if rng.random() < 0.7 else None for e, x in zip(ev, rng.integers(0, 60, n_claims), strict=True)]
    claims = pl.DataFrame(
        {
            "claim_id": [f"c{i}" for i in range(n_claims)],
            "member_id": [f"m{w}" for w in who],
            "event_date": ev,
            "amount": rng.choice([1.0, 3.0, 10.0], n_claims).tolist(),
            "approved_date": appr,
            "eligible": (rng.random(n_claims) < 0.8).tolist(),
        },
        schema_overrides={"approved_date": pl.Date},
    )
    return members, claims


def _oracle(members, claims, notices, prev, *, fee, waiting, lag, cap_c, cap_a):
    """Plain loops over periods, members and claims."""
    mem = members.to_dicts()
    rows = {}
    cum: dict[tuple[str, int], float] = {}
    for plan in ("A", "B"):
        lo = prev
        for d in notices:
            share_m = [m for m in mem if m["plan_id"] == plan and m["join_date"] <= d and (m["exit_date"] is None or d < m["exit_date"])]
            N = len(share_m)
            NE = sum(1 for m in share_m if d >= m["join_date"] + dt.timedelta(days=waiting))
            paid_c = []
            for c in claims.to_dicts():
                if not c["eligible"]:
                    continue
                if next(m for m in mem if m["member_id"] == c["member_id"])["plan_id"] != plan:
                    continue
                a = c["approved_date"] or c["event_date"] + dt.timedelta(days=lag)
                if lo < a <= d:
                    paid_c.append(c["amount"])
            amount = sum(paid_c)
            s_capped = sum(min((1 + fee) * b / N, cap_c) for b in paid_c) if N else 0.0
            plat_c = sum(max(0.0, (1 + fee) * b - cap_c * N) for b in paid_c) if N else 0.0
            plat_a = 0.0
            for m in share_m:
                key = (m["member_id"], d.year)
                before = cum.get(key, 0.0)
                pay = min(s_capped, max(0.0, cap_a - before))
                cum[key] = before + pay
                plat_a += s_capped - pay
            rows[(plan, d)] = (N, NE, len(paid_c), amount, s_capped, plat_c, plat_a)
            lo = d
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("days", [(14, 28), "monthly"])
def test_random_platform_matches_loop_oracle(seed, days):
    members, claims = _random_platform(seed)
    kw = dict(fee=0.08, waiting_days=45, reporting_lag_days=20, per_claimant_cap=0.15, annual_cap=0.6)
    h = share_history(members, claims, start=D(2020, 1, 1), end=D(2021, 6, 30), sharing_days=days, **kw)
    cal = sharing_calendar(D(2020, 1, 1), D(2021, 6, 30), days)
    notices = cal["notice_date"].to_list()
    prev = cal["period_start"][0] - dt.timedelta(days=1)
    orc = _oracle(members, claims, notices, prev, fee=0.08, waiting=45, lag=20, cap_c=0.15, cap_a=0.6)
    for r in h.iter_rows(named=True):
        N, NE, k, amount, s_capped, plat_c, plat_a = orc[(r["plan_id"], r["notice_date"])]
        assert (r["sharing_members"], r["eligible_members"], r["claims_approved"]) == (N, NE, k)
        assert r["amount_approved_cny"] == pytest.approx(amount)
        if N:
            assert r["share_capped_cny"] == pytest.approx(s_capped, abs=1e-12)
        assert r["platform_paid_per_claimant_cap_cny"] == pytest.approx(plat_c, abs=1e-9)
        assert r["platform_paid_annual_cap_cny"] == pytest.approx(plat_a, abs=1e-9)
    assert h.height == 2 * len(notices)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_identities(seed):
    members, claims = _random_platform(seed, n=80, n_claims=60)
    h = share_history(members, claims, start=D(2020, 1, 1), end=D(2021, 3, 31), per_claimant_cap=0.2, annual_cap=0.5)
    ok = h.filter(pl.col("sharing_members") > 0)
    # share x sharing members = cost with fee
    np.testing.assert_allclose((ok["share_cny"] * ok["sharing_members"]).to_numpy(), ok["cost_with_fee_cny"].to_numpy(), rtol=1e-12)
    # every CNY of cost is paid by members or by the platform under one of the caps
    np.testing.assert_allclose(
        (ok["members_paid_cny"] + ok["platform_paid_per_claimant_cap_cny"] + ok["platform_paid_annual_cap_cny"]).to_numpy(),
        ok["cost_with_fee_cny"].to_numpy(), rtol=1e-9, atol=1e-12)
    assert (ok["share_capped_cny"] <= ok["share_cny"] + 1e-15).all()
    assert (ok["cumulative_paid_cny"] <= 0.5 + 1e-12).all()
    assert (h["eligible_members"] <= h["sharing_members"]).all()


def test_one_pool_equals_sum_of_plans_sharing_base():
    members, claims = _random_platform(11)
    kw = dict(start=D(2020, 1, 1), end=D(2020, 6, 30))
    per_plan = share_history(members, claims, **kw)
    pooled = share_history(members, claims, plan_col=None, **kw)
    sums = per_plan.group_by("notice_date").agg(pl.col("sharing_members", "claims_approved", "amount_approved_cny").sum()).sort("notice_date")
    assert sums["sharing_members"].to_list() == pooled["sharing_members"].to_list()
    assert sums["claims_approved"].to_list() == pooled["claims_approved"].to_list()
    assert "pool" in pooled.columns


# --------------------------------------------------------------------------- classification and CLI
def test_unclassified_claims_are_classified_with_exposure_rules():
    # Without an 'eligible' column: r (event 02-01, b joined 01-10, waiting 30 -> in waiting period) is
    # set aside, like the hand-flagged version; the others are past their waiting period.
    claims = _claims().drop("eligible")
    got = share_history(_members(), claims, start=D(2020, 1, 1), end=D(2020, 3, 31), waiting_days=4,
                        per_claimant_cap=0.5, annual_cap=1.2)
    # waiting 4 days: x (a, 01-05 = join + 4) eligible; y (c, 01-25) eligible; z second claim of a -> after_first_claim
    # q (d, 03-10) eligible; r (b, 02-01) eligible -> approved 03-01 in (02-28, 03-14]
    assert got["claims_approved"].to_list() == [1, 0, 0, 1, 1, 1]
    assert got["amount_approved_cny"].to_list() == pytest.approx([1.0, 0, 0, 2.0, 100.0, 3.0])


def test_cli_history_writes_the_table(tmp_path, capsys):
    from engine.cli.main import main

    members = _members().with_columns(pl.lit("P1").alias("plan_id"))
    claims = _claims().drop("eligible")
    members.write_parquet(tmp_path / "m.parquet")
    claims.write_parquet(tmp_path / "c.parquet")
    out = tmp_path / "h.parquet"
    rej = tmp_path / "rej.parquet"
    code = main(["history", "--members", str(tmp_path / "m.parquet"), "--claims", str(tmp_path / "c.parquet"),
                 "--start", "2020-01-01", "--end", "2020-03-31", "--waiting-days", "30", "--per-claimant-cap", "0.5",
                 "--annual-cap", "1.2", "--as-of", "2024-01-01", "--out", str(out), "--rejected-claims", str(rej), "--quiet"])
    assert code == 0
    got = pl.read_parquet(out)
    want = share_history(members, claims, start=D(2020, 1, 1), end=D(2020, 3, 31), waiting_days=30,
                         per_claimant_cap=0.5, annual_cap=1.2)
    assert got.select(want.columns).equals(want)
    # each share also per month and per year, right after its per-period column (half-monthly: x 2 and x 24)
    for c in ("share_cny", "share_capped_cny", "share_paid_cny", "share_paid_mean_cny"):
        i = got.columns.index(c)
        assert got.columns[i + 1:i + 3] == [f"{c}_per_month", f"{c}_per_year"]
        assert got[f"{c}_per_month"].to_list() == pytest.approx([None if v is None else 2 * v for v in want[c]])
        assert got[f"{c}_per_year"].to_list() == pytest.approx([None if v is None else 24 * v for v in want[c]])
    # waiting 30: x (a, 01-05 < 01-31), y (c, 01-25 < 02-19), r (b, 02-01 < 02-09) are in the waiting period;
    # z (a, 02-20) is then a's first eligible claim and q (d, 03-10 >= 03-02) is eligible
    assert sorted(pl.read_parquet(rej).select("claim_id", "reason").rows()) == [
        ("r", "in_waiting_period"), ("x", "in_waiting_period"), ("y", "in_waiting_period")]
    assert got["claims_approved"].to_list() == [0, 0, 0, 1, 0, 1]
    assert main(["history", "--members", str(tmp_path / "m.parquet"), "--claims", str(tmp_path / "c.parquet"),
                 "--start", "2020-01-01", "--end", "2020-03-31", "--sharing-days", "0", "--out", str(out)]) == 2
    error_line(capsys, "history", "sharing_days", "'0'", "must be days of the month in 1..31")


@pytest.mark.parametrize(("days", "month", "year"), [((14, 28), 2.0, 24.0), ("monthly", 1.0, 12.0), (15, 1.0, 12.0),
                                                    ((5, 15, 25), 3.0, 36.0)])
def test_shares_per_month_and_year_follow_the_calendar(days, month, year):
    """A period's share per month is x (periods a month) and per year x (periods a year): 12 x notice days a month."""
    from engine.shares.history import with_shares_per_month_year

    h = _hand(sharing_days=days)
    got = with_shares_per_month_year(h, days)
    assert got.height == h.height and got.select(h.columns).equals(h)
    assert len(got.columns) == len(h.columns) + 8
    for c in ("share_cny", "share_capped_cny", "share_paid_cny", "share_paid_mean_cny"):
        assert got[f"{c}_per_month"].to_list() == pytest.approx([None if v is None else month * v for v in h[c]])
        assert got[f"{c}_per_year"].to_list() == pytest.approx([None if v is None else year * v for v in h[c]])


def test_member_counts_packed_equals_group_by():
    """The packed-integer count of members by (pool keys, join, exit) equals a plain group-by."""
    import numpy as np

    from engine.shares._stream import member_counts as _member_counts

    rng = np.random.default_rng(5)
    n = 5000
    join = pl.Series(rng.integers(17000, 18500, n)).cast(pl.Int32).cast(pl.Date)
    ex = pl.Series(rng.integers(17000, 19500, n)).cast(pl.Int32).cast(pl.Date)
    m = pl.DataFrame({"plan_id": rng.choice(["a", "b", None], n), "tier": rng.integers(1, 4, n),
                      "join_date": join, "exit_date": ex}).with_columns(
        pl.when(pl.Series(rng.random(n) < 0.4)).then(None).otherwise(pl.col("exit_date")).alias("exit_date"))
    keys = ["plan_id", "tier"]
    cols = [*keys, "join_date", "exit_date"]
    got = _member_counts(m, keys).sort(cols, nulls_last=True)
    want = m.group_by(cols).agg(pl.len().alias("_n")).sort(cols, nulls_last=True)
    assert got.select(*cols, "_n").equals(want)
