"""The synthetic platform: reproducibility, contract, plausible totals, and incidence vs the planted truth.

The incidence oracle here is independent of engine.synth: dates via polars, exposure by a
weekly calendar grid (each grid day stands for 7 days), the hazard re-derived from the
documented formula lambda = level * q_CI4(age, sex) * m * sel * anti.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.cli.main import main
from engine.errors import ConfigError
from engine.data.reference import reference_basis
from engine.synth import generate
from engine.data.validation import validate
from tests.kits.cli_error import error_line

START, END = dt.date(2018, 10, 16), dt.date(2021, 12, 31)
CHANNELS = ["organic", "subsidy", "referral", "employer"]


def age_expr(birth: str, day: pl.Expr) -> pl.Expr:
    """Attained age (age last birthday; 29 Feb -> 1 Mar) by polars date parts."""
    b = pl.col(birth)
    def md(x: pl.Expr) -> pl.Expr:  # month and day parts are Int8: widen before multiplying
        return x.dt.month().cast(pl.Int32) * 100 + x.dt.day().cast(pl.Int32)

    before = md(day) < md(b)
    return (day.dt.year().cast(pl.Int32) - b.dt.year().cast(pl.Int32) - before.cast(pl.Int32)).cast(pl.Int32)


@pytest.fixture(scope="module")
def plat():  # type: ignore[no-untyped-def]
    """The default platform at 10^6 members."""
    return generate(1_000_000, seed=2024)


@pytest.fixture(scope="module")
def plat_hi():  # type: ignore[no-untyped-def]
    """10^6 members with 4x the default level (more claims, tighter checks) and the
    lapse slope divided by 4 so that membership dynamics stay as in the default."""
    return generate(1_000_000, seed=77, level=2.0, lapse_share_slope=0.0005)


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    a = generate(30_000, seed=5, dirty=0.01, level=5.0).write(tmp_path / "a")
    b = generate(30_000, seed=5, dirty=0.01, level=5.0).write(tmp_path / "b")
    c = generate(30_000, seed=6, dirty=0.01, level=5.0).write(tmp_path / "c")
    for key in ("members", "claims", "truth", "params"):
        assert a[key].read_bytes() == b[key].read_bytes(), key
    assert a["members"].read_bytes() != c["members"].read_bytes()
    assert a["claims"].read_bytes() != c["claims"].read_bytes()


def test_dirt_does_not_change_the_clean_platform() -> None:
    clean = generate(20_000, seed=9, level=5.0)
    dirty = generate(20_000, seed=9, level=5.0, dirty=0.02)
    assert clean.truth.equals(dirty.truth)
    ids = set(validate(dirty.members, dirty.claims).members.collect()["member_id"].to_list())
    kept = clean.members.filter(pl.col("member_id").is_in(list(ids)))
    assert kept.height == len(ids) > 0.9 * clean.members.height


def test_bad_parameters_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="n_members"):
        generate(0, seed=1)
    with pytest.raises(ConfigError, match="dirty"):
        generate(10, seed=1, dirty=0.9)
    with pytest.raises(ConfigError, match="no_such_knob"):
        generate(10, seed=1, no_such_knob=3)
    with pytest.raises(ConfigError, match="end"):
        generate(10, seed=1, start=dt.date(2020, 1, 1), end=dt.date(2019, 1, 1))


# ----------------------------------------------------------------------------- contract and totals
def test_contract_dtypes_and_clean_validation(plat) -> None:  # type: ignore[no-untyped-def]
    m, c, t = plat.members, plat.claims, plat.truth
    assert m.schema == pl.Schema(
        {
            "member_id": pl.String,
            "birth_date": pl.Date,
            "sex": pl.String,
            "join_date": pl.Date,
            "exit_date": pl.Date,
            "plan_id": pl.String,
            "city_tier": pl.Int64,
            "channel": pl.String,
        }
    )
    assert c.schema == pl.Schema(
        {
            "claim_id": pl.String,
            "member_id": pl.String,
            "event_date": pl.Date,
            "amount": pl.Float64,
            "approved_date": pl.Date,
            "cause": pl.String,
        }
    )
    assert t.columns == ["member_id", "risk_multiplier", "risk_group", "risk_group_name"]
    assert t.schema["risk_group"] == pl.Int64
    res = validate(m, c)
    assert res.account["members"] == {"read": m.height, "used": m.height, "set_aside": {}}
    assert res.account["claims"] == {"read": c.height, "used": c.height, "set_aside": {}}


def test_members_plausible(plat) -> None:  # type: ignore[no-untyped-def]
    m = plat.members.with_columns(
        age_expr("birth_date", pl.col("join_date")).alias("age_join"),
        (pl.col("join_date") - pl.col("birth_date")).dt.total_days().alias("days_join"),
    )
    assert m.height == 1_000_000
    assert m["join_date"].min() == START and m["join_date"].max() <= END
    assert m["days_join"].min() >= 30 and m["age_join"].max() == 59
    children = (m["age_join"] < 18).mean()
    assert 0.10 < children < 0.25
    adults = m.filter(pl.col("age_join") >= 18)
    assert adults["age_join"].is_between(25, 45).mean() > 0.55
    assert m.filter((pl.col("birth_date").dt.month() == 2) & (pl.col("birth_date").dt.day() == 29)).height > 100
    assert 0.45 < (m["sex"] == "M").mean() < 0.6
    assert set(m["city_tier"].unique().to_list()) == {1, 2, 3, 4, 5}
    assert set(m["channel"].unique().to_list()) == set(CHANNELS)
    ex = m.filter(pl.col("exit_date").is_not_null())
    assert (ex["exit_date"] > ex["join_date"]).all()
    assert ex["exit_date"].max() <= END
    # nobody shares at 60 or older (exit on the 60th birthday)
    last_day = pl.coalesce(pl.col("exit_date") - pl.duration(days=1), pl.lit(END))
    assert m.select(age_expr("birth_date", last_day).max()).item() == 59
    # lapses are common, but many are still members at the cut-off
    assert 0.3 < ex.height / m.height < 0.85


def test_growth_curve_xianghubao_like(plat) -> None:  # type: ignore[no-untyped-def]
    p = plat.params
    monthly = pl.DataFrame(p["monthly"])
    assert monthly.height == 39
    active = monthly["members_at_month_end"].to_numpy()
    # tens of millions within three months at full scale (100 million at the peak)
    assert active[2] * p["full_scale_factor"] > 30e6
    assert 97e6 < active.max() * p["full_scale_factor"] <= 100e6 + 1  # month ends vs the daily peak
    assert "2019-06-01" <= p["peak_date"] <= "2020-12-31"
    assert active[-1] < 0.8 * active.max()  # decline after the peak
    share = monthly["expected_share_cny"].to_numpy()
    assert share[0] == 0.0 and share[-1] > share[12] > share[4] > 0  # the share rises
    # members counted independently from the frame agree with the monthly counts
    eoy = dt.date(2019, 12, 31)
    n = plat.members.filter((pl.col("join_date") <= eoy) & (pl.col("exit_date").is_null() | (pl.col("exit_date") > eoy))).height
    assert n == int(monthly.filter(pl.col("month") == "2019-12-01")["members_at_month_end"].item())


def test_truth_groups_follow_the_planted_rule(plat) -> None:  # type: ignore[no-untyped-def]
    df = plat.members.join(plat.truth, on="member_id")
    expected = (
        pl.when(pl.col("channel") == "employer")
        .then(1)
        .when(pl.col("city_tier") <= 3)
        .then(2)
        .when(pl.col("channel") == "subsidy")
        .then(4)
        .otherwise(3)
    )
    assert (df["risk_group"] == df.select(expected).to_series()).all()
    mult = df.group_by("risk_group").agg(pl.col("risk_multiplier").unique()).sort("risk_group")
    values = [v[0] for v in mult["risk_multiplier"].to_list()]
    assert all(len(v) == 1 for v in mult["risk_multiplier"].to_list())
    assert all(b / a >= 1.6 for a, b in zip(sorted(values), sorted(values)[1:], strict=False))
    shares = df["risk_group"].value_counts(normalize=True)["proportion"]
    assert shares.min() > 0.05


def test_claims_plausible(plat) -> None:  # type: ignore[no-untyped-def]
    c = plat.claims.join(plat.members, on="member_id", how="left")
    assert c["join_date"].null_count() == 0
    assert (c["event_date"] >= c["join_date"]).all()
    assert (c["exit_date"].is_null() | (c["event_date"] < c["exit_date"])).all()
    assert c["event_date"].max() <= END
    lag = (c["approved_date"] - c["event_date"]).dt.total_days()
    assert lag.min() >= 20 and lag.max() <= 90
    assert (c["approved_date"] > END).sum() > 0  # approved after the cut-off (IBNR at the cut-off)
    age = c.select(age_expr("birth_date", pl.col("event_date"))).to_series()
    assert ((age < 40) == (c["amount"] == 300_000.0)).all()
    assert ((age >= 40) == (c["amount"] == 100_000.0)).all()
    waiting = (c["event_date"] - c["join_date"]).dt.total_days() < 90
    assert 0 < waiting.sum() < 0.2 * c.height
    assert c["member_id"].is_duplicated().sum() > 0  # several claims for some members
    assert c["claim_id"].n_unique() == c.height
    assert set(c["cause"].unique().to_list()) >= {"cancer", "heart", "stroke"}


# ----------------------------------------------------------------------------- incidence oracle
BANDS = ["0-17", "18-29", "30-39", "40-49", "50-59"]
BAND_EDGES = np.array([18, 30, 40, 50])


def _oracle(plat, step: int = 7) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Observed eligible claims and expected claims (true hazard x at-risk time).

    At risk: join + waiting <= d < min(exit, end + 1, first eligible event + 1). The
    expected count integrates the documented true hazard over a calendar grid of every
    ``step``-th day (each grid day stands for ``step`` days; member dates are random
    relative to the grid, so the sum is unbiased). Returns observed claims per member
    (with age band and select flag), expected per member, and per age band the expected
    claims and exposure years.
    """
    cfg = plat.params["config"]
    w = int(cfg["waiting_days"])
    sel_days = round(cfg["select_months"] * 30.4375)
    m = plat.members.join(plat.truth, on="member_id")
    end_excl = END + dt.timedelta(days=1)
    first = (
        plat.claims.join(m.select("member_id", "join_date", "exit_date"), on="member_id")
        .filter(
            ((pl.col("event_date") - pl.col("join_date")).dt.total_days() >= w)
            & (pl.col("exit_date").is_null() | (pl.col("event_date") < pl.col("exit_date")))
        )
        .group_by("member_id")
        .agg(pl.col("event_date").min().alias("first_event"))
    )
    m = m.join(first, on="member_id", how="left").with_columns(
        (pl.col("join_date") + pl.duration(days=w)).alias("risk_start"),
        pl.min_horizontal(
            pl.col("exit_date").fill_null(end_excl),
            pl.lit(end_excl),
            (pl.col("first_event") + pl.duration(days=1)).fill_null(end_excl),
        ).alias("risk_end"),
    ).filter(pl.col("risk_start") < pl.col("risk_end"))
    epoch = dt.date(1970, 1, 1)

    def days(col: str) -> np.ndarray:
        return m[col].cast(pl.Int32).to_numpy().astype(np.int64)

    rs, re_, join = days("risk_start"), days("risk_end"), days("join_date")
    by = m["birth_date"].dt.year().cast(pl.Int32).to_numpy()
    bmd = (m["birth_date"].dt.month().cast(pl.Int32) * 100 + m["birth_date"].dt.day().cast(pl.Int32)).to_numpy()
    sex = (m["sex"] == "M").to_numpy().astype(int)
    ref = reference_basis("ci2020", cfg["reference_table"])
    q = np.zeros((2, 106))
    for s, code in ((0, "F"), (1, "M")):
        part = ref.filter(pl.col("sex") == code)
        q[s, part["age"].to_numpy()] = part["rate"].to_numpy()
    base = cfg["level"] * m["risk_multiplier"].to_numpy()
    anti_member = (m["channel"] == cfg["antiselection_channel"]).to_numpy()
    expected = np.zeros(m.height)
    expected_select = np.zeros(m.height)
    e_band, x_band = np.zeros(5), np.zeros(5)
    for d in range((START - epoch).days + step // 2, (END - epoch).days + 1, step):
        day = epoch + dt.timedelta(days=d)
        at = (rs <= d) & (d < re_)
        age = day.year - by - ((day.month * 100 + day.day) < bmd)
        s = d - join
        in_select = s < w + sel_days
        lam = base * q[sex, np.clip(age, 0, 105)] * np.where(in_select, cfg["select_factor"], 1.0)
        anti = anti_member & (s >= w) & (s < w + cfg["antiselection_days"])
        lam = lam * np.where(anti, cfg["antiselection_factor"], 1.0)
        inc = np.where(at, lam * step / 365.25, 0.0)
        expected += inc
        expected_select += np.where(in_select, inc, 0.0)
        band = np.searchsorted(BAND_EDGES, age, side="right")
        e_band += np.bincount(band[at], weights=inc[at], minlength=5)
        x_band += np.bincount(band[at], minlength=5) * step / 365.25
    exp_df = m.select("member_id", "risk_group").with_columns(
        pl.Series("expected", expected), pl.Series("expected_select", expected_select)
    )
    obs = m.filter(pl.col("first_event").is_not_null() & (pl.col("first_event") < pl.col("risk_end"))).select(
        "member_id",
        "risk_group",
        age_expr("birth_date", pl.col("first_event")).alias("age"),
        ((pl.col("first_event") - pl.col("join_date")).dt.total_days() < w + sel_days).alias("select"),
    )
    return {"obs": obs, "expected": exp_df, "e_band": e_band, "x_band": x_band}


@pytest.fixture(scope="module")
def oracle_hi(plat_hi):  # type: ignore[no-untyped-def]
    return _oracle(plat_hi)


def _check(o: float, e: float, what: str) -> None:
    """Observed first eligible claims within 4 sd of the expected: O - e is a counting process minus its
    compensator (the hazard integrated over the at-risk time), so its variance is e. The weekly grid adds
    an unbiased integration error well under one claim at 10^6 members. Measured (seed 77): |z| <= 2.1
    over the 11 checks, overall 0.09%."""
    assert e > 30, what
    tol = 4.0 * np.sqrt(e)
    assert abs(o - e) <= tol, f"{what}: observed {o} vs expected {e:.1f} (tolerance {tol:.1f})"


@pytest.mark.slow
def test_incidence_matches_planted_truth_by_group_and_select_phase(oracle_hi) -> None:  # type: ignore[no-untyped-def]
    obs, exp_df = oracle_hi["obs"], oracle_hi["expected"]
    assert obs.height > 3000
    total_e = float(exp_df["expected"].sum())
    _check(obs.height, total_e, "all members")
    by_group = exp_df.group_by("risk_group").agg(pl.col("expected").sum()).sort("risk_group")
    o_group = obs.group_by("risk_group").len()
    assert by_group.height == 4
    for g, e in by_group.iter_rows():
        o = o_group.filter(pl.col("risk_group") == g)["len"].sum()
        _check(o, e, f"risk group {g}")
    e_sel = float(exp_df["expected_select"].sum())
    _check(int(obs["select"].sum()), e_sel, "select period")
    _check(int((~obs["select"]).sum()), total_e - e_sel, "after the select period")


@pytest.mark.slow
def test_crude_incidence_by_age_band(oracle_hi) -> None:  # type: ignore[no-untyped-def]
    """Crude incidence (claims / exposure) per attained-age band vs the exposure-weighted true rate."""
    obs, e_band, x_band = oracle_hi["obs"], oracle_hi["e_band"], oracle_hi["x_band"]
    band = obs.select(pl.Series(np.searchsorted(BAND_EDGES, obs["age"].to_numpy(), side="right")).alias("b"))
    o_band = np.bincount(band["b"].to_numpy(), minlength=5)
    for i, name in enumerate(BANDS):
        _check(float(o_band[i]), float(e_band[i]), f"age band {name}")
        crude, true = o_band[i] / x_band[i], e_band[i] / x_band[i]
        assert abs(crude / true - 1) < 4 / np.sqrt(e_band[i])  # sd of crude / true = 1 / sqrt(expected claims)
    # the age shape is there: 50-59 claim at several times the rate of 18-29
    assert (o_band[4] / x_band[4]) / (o_band[1] / x_band[1]) > 5


# ----------------------------------------------------------------------------- CLI
def test_cli_synth_and_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    assert main(["synth", "--n-members", "5000", "--seed", "3", "--out", str(out), "--dirty", "0.01", "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"members.parquet", "claims.parquet", "truth.parquet", "synth_params.json", ".fentan-output"}
    assert pl.read_parquet(out / "truth.parquet").height == 5000
    # refuses a non-empty directory without --force
    assert main(["synth", "--n-members", "100", "--seed", "3", "--out", str(out), "--quiet"]) == 2
    error_line(capsys, "synth", str(out), "output directory exists", "--force")
    assert main(["synth", "--n-members", "100", "--seed", "3", "--out", str(out), "--quiet", "--force"]) == 0
    assert main(["synth", "--n-members", "100", "--seed", "3", "--out", str(tmp_path / "x"), "--dirty", "2"]) == 2
    error_line(capsys, "synth", "dirty", "must be in [0, 0.5)", "2.0")



def test_cli_demo_prints_its_tables(small_demo) -> None:
    text, demo = small_demo.printed, small_demo.out
    assert "row account" in text and "members (rows)" in text
    assert (demo / "data" / "members.parquet").exists()
    assert (demo / "validation" / "account.json").exists()


def test_run_demo_returns_a_balanced_account(small_demo) -> None:
    res = small_demo.result
    for what in ("members", "claims"):
        acc = res["account"][what]
        assert acc["read"] == acc["used"] + sum(acc["set_aside"].values())
    assert res["account"]["members"]["set_aside"] == res["params"]["dirty_expected"]["members"]


# ----------------------------------------------------------------------------- building blocks vs slow oracles
def test_calendar_helpers_against_python_dates() -> None:
    from engine.synth.population import attained_age, birthday_at, days_from_civil, ymd

    rng = np.random.default_rng(0)
    days = np.r_[rng.integers(-30_000, 40_000, size=3000), [(dt.date(2000, 2, 29) - dt.date(1970, 1, 1)).days]]
    y, m, d = ymd(days)
    for k, n in enumerate(days):
        ref = dt.date(1970, 1, 1) + dt.timedelta(days=int(n))
        assert (y[k], m[k], d[k]) == (ref.year, ref.month, ref.day)
    assert (days_from_civil(y, m, d) == days).all()

    def age_loop(b: dt.date, on: dt.date) -> int:  # count the birthdays up to ``on`` (29 Feb -> 1 Mar)
        age = 0
        while True:
            try:
                nxt = b.replace(year=b.year + age + 1)
            except ValueError:
                nxt = dt.date(b.year + age + 1, 3, 1)
            if nxt > on:
                return age
            age += 1

    births = [dt.date(1960, 2, 29), dt.date(1999, 12, 31), dt.date(2000, 3, 1), dt.date(1980, 6, 15)]
    ons = [dt.date(2019, 2, 28), dt.date(2019, 3, 1), dt.date(2020, 2, 28), dt.date(2020, 2, 29), dt.date(2021, 6, 14), dt.date(2021, 6, 15)]
    e = dt.date(1970, 1, 1)
    for b in births:
        for on in ons:
            got = attained_age(np.array([(b - e).days]), np.array([(on - e).days]))[0]
            assert got == age_loop(b, on), (b, on)
    b60 = birthday_at(np.array([(dt.date(1960, 2, 29) - e).days, (dt.date(1961, 7, 4) - e).days]), 60)
    assert [e + dt.timedelta(days=int(x)) for x in b60] == [dt.date(2020, 2, 29), dt.date(2021, 7, 4)]
    b61 = birthday_at(np.array([(dt.date(1960, 2, 29) - e).days]), 61)
    assert e + dt.timedelta(days=int(b61[0])) == dt.date(2021, 3, 1)


def _closed_pool(**kw: object):  # type: ignore[no-untyped-def]
    """Everyone joins on the launch day; no waiting, select or anti-selection; no ageing out."""
    base = dict(
        join_burst_share=1.0,
        join_burst_tau_days=1e-3,
        join_wave_share=0.0,
        join_floor_share=0.0,
        waiting_days=0,
        select_factor=1.0,
        antiselection_factor=1.0,
        exit_at_60=False,
        exit_on_claim=False,
    )
    base.update(kw)
    return generate(100_000, seed=12, **base)  # type: ignore[arg-type]


def test_lapse_survival_matches_closed_form() -> None:
    """Constant base hazard b_channel * 2%/month: survival to the cut-off = exp(-b H)."""
    plat = _closed_pool(lapse_base_monthly=0.02, lapse_share_slope=0.0)
    assert (plat.members["join_date"] == START).all()
    months = 38 + 16 / 31  # 16-31 October 2018, then November 2018 .. December 2021
    got = plat.members.group_by("channel").agg(pl.col("exit_date").is_null().mean().alias("s"), pl.len())
    for channel, b in zip(CHANNELS, (1.0, 2.0, 1.0, 0.5), strict=True):
        row = got.filter(pl.col("channel") == channel)
        s, n = row["s"].item(), row["len"].item()
        expected = np.exp(-b * 0.02 * months)
        assert abs(s - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 1e-3, channel


def test_expected_share_path_closed_form() -> None:
    """Closed pool without lapse: share_m = (1 + fee) * mean annual cost at joining / 12."""
    plat = _closed_pool(lapse_base_monthly=0.0, lapse_share_slope=0.0, fee=0.08)
    m = plat.members.join(plat.truth, on="member_id").with_columns(age_expr("birth_date", pl.col("join_date")).alias("age"))
    ref = reference_basis("ci2020", "CI4")
    m = m.join(ref, on=["age", "sex"], how="left")
    cost = (0.5 * pl.col("rate") * pl.col("risk_multiplier") * pl.when(pl.col("age") < 40).then(300_000.0).otherwise(100_000.0)).mean()
    expected = 1.08 * m.select(cost).item() / 12
    shares = [r["expected_share_cny"] for r in plat.params["monthly"]]
    assert shares == pytest.approx([expected] * len(shares), rel=1e-9)
    assert plat.members["exit_date"].null_count() == plat.members.height


# ----------------------------------------------------------------------------- consistency with engine.exposure
def test_ineligible_kinds_reach_exposure_with_their_reasons() -> None:
    from engine.cells._exposure import classify_claims

    plat = generate(200_000, seed=11, dirty=0.02, level=3.0)
    res = validate(plat.members, plat.claims)
    cls = classify_claims(res.members, res.claims, waiting_days=90)
    got = {r: n for r, n in cls.group_by("reason").len().iter_rows() if r is not None}
    expected = plat.params["dirty_expected"]["ineligible"]
    assert set(expected) == {"before_join", "after_exit", "after_first_claim"}
    for reason, n in expected.items():
        assert got.get(reason, 0) == n, reason
    assert got["in_waiting_period"] > 0


@pytest.mark.slow
def test_eligible_claims_agree_with_exposure_classification(plat_hi, oracle_hi) -> None:  # type: ignore[no-untyped-def]
    from engine.cells._exposure import classify_claims

    cls = classify_claims(plat_hi.members, plat_hi.claims, waiting_days=90)
    eligible = cls.filter(pl.col("eligible"))
    assert eligible.height == oracle_hi["obs"].height
    assert set(eligible["member_id"].to_list()) == set(oracle_hi["obs"]["member_id"].to_list())
