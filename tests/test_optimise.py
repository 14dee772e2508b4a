"""Plan optimiser: exact against brute-force enumeration; constraints hold; consistent with compare_plans."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from engine.plans.compare import compare_plans
from engine.errors import ConfigError, DataError
from engine.plans.optimise import optimise_plans, set_partitions
from engine.plans.planset import plans_from_dict

TEMPLATE = plans_from_dict({"plans": [{
    "name": "t", "eligibility": {"age": [0, 4]}, "fee": 0.1, "sharing_days": [28],
    "benefit": [{"age": [0, 2], "amount": 1000}, {"age": [3, 4], "amount": 500}],
}]}, "t.toml")[0]


def _table(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for age in range(5):
        for tier in (1, 2, 3):
            for sex in ("F", "M"):
                rows.append({"age": age, "city_tier": tier, "sex": sex,
                             "members": float(rng.integers(50, 400)), "rate": float(rng.uniform(0.05, 1.5))})
    return pl.DataFrame(rows)


def _partitions(levels, max_blocks, contiguous):
    """Independent enumeration: canonical block labellings (restricted growth strings)."""
    out = []
    for lab in itertools.product(range(max_blocks), repeat=len(levels)):
        if lab[0] != 0 or any(lab[i] > max(lab[:i]) + 1 for i in range(1, len(lab))):
            continue
        if len(set(lab)) < 2:
            continue
        if contiguous and any(lab[i] < lab[i - 1] for i in range(1, len(lab))):
            continue
        out.append([tuple(v for v, b in zip(levels, lab) if b == k) for k in range(len(set(lab)))])
    return out


def _brute(rows, factors, max_groups, contiguous, min_claims, max_plans, objective="absolute"):
    ages = sorted({r["age"] for r in rows})
    ben = {0: 1000, 1: 1000, 2: 1000, 3: 500, 4: 500}
    opts = [(None, None)]
    for f in factors:
        levels = sorted({r[f] for r in rows})
        numeric = isinstance(levels[0], int)
        opts += [(f, part) for part in _partitions(levels, max_groups, contiguous and numeric)]

    def plan_cost(members):
        n = sum(r["members"] for r in members)
        claims = sum(r["members"] * r["rate"] / 12 for r in members)
        if n <= 0:
            return None
        cs = [1.1 * r["rate"] / 12 * ben[r["age"]] for r in members]
        share = sum(r["members"] * c for r, c in zip(members, cs)) / n
        if objective == "absolute":
            t = 0.5 * sum(r["members"] * abs(share - c) for r, c in zip(members, cs))
        else:
            t = sum(r["members"] * (share - c) ** 2 for r, c in zip(members, cs))
        return t, claims

    best = {}
    for mask in range(2 ** (len(ages) - 1)):
        cuts = [i + 1 for i in range(len(ages) - 1) if mask >> i & 1]
        bounds = [0, *cuts, len(ages)]
        bands = [ages[a:b] for a, b in zip(bounds, bounds[1:])]
        for choice in itertools.product(opts, repeat=len(bands)):
            total, k, ok = 0.0, 0, True
            for band, (f, part) in zip(bands, choice):
                rb = [r for r in rows if r["age"] in band]
                groups = [rb] if f is None else [[r for r in rb if r[f] in blk] for blk in part]
                for g in groups:
                    pc = plan_cost(g)
                    if pc is None or pc[1] < min_claims:
                        ok = False
                        break
                    total += pc[0]
                    k += 1
                if not ok:
                    break
            if ok and k <= max_plans:
                best[k] = min(best.get(k, float("inf")), total)
    return best


@pytest.mark.parametrize(
    "factors,max_groups,contiguous,min_claims,objective",
    [
        ((), 2, True, 0.0, "absolute"),
        (("city_tier",), 2, True, 0.0, "absolute"),
        (("city_tier",), 2, True, 60.0, "absolute"),  # binding: changes K = 3, 4, 5
        (("city_tier",), 2, True, 100.0, "absolute"),  # K = 5 infeasible
        (("sex", "city_tier"), 3, False, 1.0, "absolute"),
        (("city_tier",), 3, True, 0.5, "squared"),
    ],
)
def test_optimiser_is_exact_against_brute_force(factors, max_groups, contiguous, min_claims, objective):
    t = _table()
    max_plans = 5
    res = optimise_plans(t, TEMPLATE, max_plans=max_plans, min_claims_per_period=min_claims, factors=list(factors),
                         max_factor_groups=max_groups, contiguous_levels=contiguous, objective=objective)
    want = _brute(t.to_dicts(), factors, max_groups, contiguous, min_claims, max_plans, objective)
    for row in res.tradeoff.iter_rows(named=True):
        k = row["k"]
        if k in want:
            assert row["feasible"], k
            assert row["cross_subsidy_cny_per_period"] == pytest.approx(want[k], rel=1e-9, abs=1e-9)
        else:
            assert not row["feasible"], k
    assert any(k in want for k in range(2, max_plans + 1))  # the test exercises more than K = 1


def test_constraints_hold_and_solution_is_consistent_with_compare(tmp_path):
    t = _table(3)
    min_claims = 4.0
    res = optimise_plans(t, TEMPLATE, max_plans=4, min_claims_per_period=min_claims, factors=["city_tier", "sex"])
    for k, specs in res.solutions.items():
        assert len(specs) == k
        assert all(s.expected_claims_per_period >= min_claims for s in specs)
        ps = res.planset(k)
        rows = t.with_row_index("rid").with_columns(pl.col("rid").cast(pl.String).alias("group"))
        cmp = compare_plans(rows, ps)
        g = cmp.plans.filter((pl.col("planset") == "vertical") & (pl.col("level") == "group"))
        assert g["plan"].null_count() == 0 and g.height == t.height  # every row in exactly one plan
        total = 0.5 * float((g["members"] * g["cross_subsidy_cny"].abs()).sum())
        assert total == pytest.approx(res.tradeoff.filter(pl.col("k") == k)["cross_subsidy_cny_per_period"][0], rel=1e-9)
        p = cmp.plans.filter((pl.col("planset") == "vertical") & (pl.col("level") == "plan"))
        for s in specs:
            row = p.filter(pl.col("plan") == s.name).row(0, named=True)
            assert row["share_current_mix_cny"] == pytest.approx(s.share_cny)
            assert row["expected_claims_per_period"] == pytest.approx(s.expected_claims_per_period)
    feasible = res.tradeoff.filter(pl.col("feasible"))["cross_subsidy_cny_per_period"].to_list()
    assert feasible[-1] <= feasible[0]
    assert res.plans(1).height == 1
    # the K-plan solution as a TOML file reads back to the same plan set
    from engine.plans.planset import load_plans

    k = max(res.solutions)
    f = tmp_path / "opt.toml"
    f.write_text(res.to_toml(k), encoding="utf-8")
    assert load_plans(f).plans == res.planset(k).plans


def test_set_partitions_counts():
    assert len(set_partitions([1, 2, 3, 4], 2)) == 7  # Stirling S(4, 2)
    assert len(set_partitions([1, 2, 3, 4], 4)) == 14  # Bell(4) - 1
    assert len(set_partitions([1, 2, 3, 4], 3, contiguous=True)) == 3 + 3  # C(3,1) + C(3,2)
    assert set_partitions(["a", "b"], 2) == [[("a",), ("b",)]]


def test_errors():
    t = _table()
    with pytest.raises(ConfigError, match="objective"):
        optimise_plans(t, TEMPLATE, objective="x")
    with pytest.raises(ConfigError, match="max_plans"):
        optimise_plans(t, TEMPLATE, max_plans=0)
    with pytest.raises(DataError, match="factor column 'region'"):
        optimise_plans(t, TEMPLATE, factors=["region"])
    with pytest.raises(DataError, match="outside the template"):
        optimise_plans(t.with_columns(pl.lit(9).alias("age")), TEMPLATE)
    res = optimise_plans(t, TEMPLATE, max_plans=2, min_claims_per_period=1e9)
    assert not res.tradeoff["feasible"].any()
    with pytest.raises(ConfigError, match="no feasible solution"):
        res.planset(1)


def test_bands_cover_ages_between_rows():
    t = pl.DataFrame({"age": [0, 2, 4], "members": [100.0, 100.0, 100.0], "rate": [0.1, 1.0, 3.0]})
    res = optimise_plans(t, TEMPLATE, max_plans=3, min_claims_per_period=0.0)
    specs = res.solutions[3]
    assert [(s.age_min, s.age_max) for s in specs] == [(0, 1), (2, 3), (4, 4)]


def test_max_share_cv_is_a_deprecated_name_of_the_share_cv_target():
    """One share-CV constraint: ``max_share_cv`` (old name) warns and means ``target_share_cv``."""
    t = _table(2)
    with pytest.warns(DeprecationWarning, match="target_share_cv"):
        a = optimise_plans(t, TEMPLATE, max_plans=3, max_share_cv=0.2)
    b = optimise_plans(t, TEMPLATE, max_plans=3, target_share_cv=0.2)
    assert a.tradeoff.equals(b.tradeoff)
    with pytest.raises(ConfigError, match="target_share_cv"), pytest.warns(DeprecationWarning):
        optimise_plans(t, TEMPLATE, max_plans=3, max_share_cv=0.0)
