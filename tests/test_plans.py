"""Plan TOML schema, validation errors, and the safe eligibility language."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import polars as pl
import pytest

from engine.errors import ConfigError, DataError
from engine.plans.planset import Expression, PlanSet, assign_plans, load_plans, plans_from_dict, tokenize

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "planset": {"name": "t", "allow_overlap": False},
    "plans": [
        {"name": "young", "eligibility": {"age": [0, 39]}, "benefit": 300000, "fee": 0.08, "waiting_days": 90,
         "sharing_days": [14, 28], "caps": {"per_claimant": 0.1, "annual": 188.0}, "rule": "equal"},
        {"name": "old", "eligibility": {"age": [40, 59], "city_tier": [4, 5]},
         "benefit": [{"age": [40, 49], "amount": 100000}, {"age": [50, 59], "amount": 50000}]},
    ],
}


def test_shipped_xianghubao_has_the_published_rules():
    ps = load_plans(ROOT / "configs" / "xianghubao.toml")
    assert len(ps) == 1
    p = ps[0]
    assert p.eligibility.age == (0, 59)
    assert [(b.age_min, b.age_max, b.amount) for b in p.benefits] == [(0, 39, 300000.0), (40, 59, 100000.0)]
    assert p.fee == 0.08 and p.waiting_days == 90 and p.sharing_days == (14, 28) and p.periods_per_year == 24
    assert p.per_claimant_cap == 0.1 and p.annual_cap == 188.0 and p.rule == "equal"


@pytest.mark.parametrize("name", ["vertical", "elderly"])
def test_other_shipped_configs_load(name):
    ps = load_plans(ROOT / "configs" / f"{name}.toml")
    assert len(ps) >= 1
    if name == "elderly":
        assert ps[0].eligibility.age == (60, 70)


def test_vertical_config_is_disjoint_and_covers_0_59():
    ps = load_plans(ROOT / "configs" / "vertical.toml")
    t = pl.DataFrame([{"age": a, "city_tier": c} for a in range(0, 60) for c in range(1, 6)])
    out = assign_plans(t, ps)  # raises if overlapping
    assert out["plan"].null_count() == 0


def _mut(path, value=None, delete=False):
    raw = copy.deepcopy(BASE)
    obj = raw
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return raw


ERRORS = [
    (_mut(["plans", 1, "fee"], 1.0), "plans[1].fee: must be a number in [0, 1)"),
    (_mut(["plans", 1, "fee"], -0.1), "plans[1].fee: must be a number in [0, 1)"),
    (_mut(["plans", 1, "fee"], "8%"), "plans[1].fee: must be a number in [0, 1)"),
    (_mut(["plans", 0, "name"], ""), "plans[0].name: must be a non-empty string"),
    (_mut(["plans", 0, "name"], None, delete=True), "plans[0].name: must be a non-empty string"),
    (_mut(["plans", 1, "name"], "young"), "plans[1].name: duplicate plan name 'young'"),
    (_mut(["plans", 0, "colour"], "red"), "plans[0].colour: unknown key"),
    (_mut(["plans", 0, "waiting_days"], 1.5), "plans[0].waiting_days: must be an integer"),
    (_mut(["plans", 0, "waiting_days"], -1), "plans[0].waiting_days: must be an integer"),
    (_mut(["plans", 0, "sharing_days"], [31]), "plans[0].sharing_days: must be a non-empty list"),
    (_mut(["plans", 0, "sharing_days"], []), "plans[0].sharing_days: must be a non-empty list"),
    (_mut(["plans", 0, "sharing_days"], [28, 14]), "plans[0].sharing_days: days must be distinct and increasing"),
    (_mut(["plans", 0, "caps"], {"per_claimant": 0}), "plans[0].caps.per_claimant: must be a positive number"),
    (_mut(["plans", 0, "caps"], {"annual": "x"}), "plans[0].caps.annual: must be a positive number"),
    (_mut(["plans", 0, "caps"], {"monthly": 3}), "plans[0].caps.monthly: unknown key"),
    (_mut(["plans", 0, "caps"], 5), "plans[0].caps: must be a table"),
    (_mut(["plans", 0, "rule"], "lottery"), "plans[0].rule: must be one of equal, risk_proportional, conditional_mean"),
    (_mut(["plans", 0, "benefit"], None, delete=True), "plans[0].benefit: is required"),
    (_mut(["plans", 0, "benefit"], -5), "plans[0].benefit: must be a positive number"),
    (_mut(["plans", 0, "benefit"], []), "plans[0].benefit: must be a positive number or a non-empty list"),
    (_mut(["plans", 1, "benefit"], [{"age": [40, 49], "amount": 1}]), "plans[1].benefit: no benefit band covers eligible age 50"),
    (_mut(["plans", 1, "benefit"], [{"age": [40, 50], "amount": 1}, {"age": [50, 59], "amount": 2}]),
     "plans[1].benefit: age bands overlap"),
    (_mut(["plans", 1, "benefit"], [{"age": [40, 59]}]), "plans[1].benefit[0]: needs both age and amount"),
    (_mut(["plans", 1, "benefit"], [{"age": [40, 59], "amount": 0}]), "plans[1].benefit[0].amount: must be a positive number"),
    (_mut(["plans", 1, "benefit"], [{"age": [59, 40], "amount": 1}]), "plans[1].benefit[0].age: must be [min, max]"),
    (_mut(["plans", 1, "benefit"], [{"age": [40, 59], "amount": 1, "x": 2}]), "plans[1].benefit[0].x: unknown key"),
    (_mut(["plans", 1, "benefit"], ["x"]), "plans[1].benefit[0]: must be a table"),
    (_mut(["plans", 0, "eligibility"], {"age": [0]}), "plans[0].eligibility.age: must be [min, max]"),
    (_mut(["plans", 0, "eligibility"], {"age": [0.5, 3]}), "plans[0].eligibility.age: must be [min, max]"),
    (_mut(["plans", 0, "eligibility"], {"age": [0, 39], "sex": []}), "plans[0].eligibility.sex: must be a non-empty list"),
    (_mut(["plans", 0, "eligibility"], {"age": [0, 39], "sex": "F"}), "plans[0].eligibility.sex: must be a non-empty list"),
    (_mut(["plans", 0, "eligibility"], {"age": [0, 39], "sex": [True]}), "plans[0].eligibility.sex: must be a non-empty list"),
    (_mut(["plans", 0, "eligibility"], {"age": [0, 39], "bad-name": [1]}), "plans[0].eligibility.bad-name: is not a valid column name"),
    (_mut(["plans", 0, "eligibility"], {"when": ""}), "plans[0].eligibility.when: must be a non-empty expression"),
    (_mut(["plans", 0, "eligibility"], {"when": "age >="}), "plans[0].eligibility.when: invalid expression"),
    (_mut(["plans", 0, "eligibility"], "age < 40"), "plans[0].eligibility: must be a table"),
    (_mut(["plans", 0, "description"], 3), "plans[0].description: must be a string"),
    (_mut(["planset", "allow_overlap"], "yes"), "planset.allow_overlap: must be true or false"),
    (_mut(["planset", "colour"], 1), "planset.colour: unknown key"),
    (_mut(["planset", "name"], 1), "planset.name: must be a string"),
    (_mut(["planset"], 1), "planset: must be a table"),
    (_mut(["plans"], []), "plans: at least one [[plans]] table is required"),
    (_mut(["plans"], None, delete=True), "plans: at least one [[plans]] table is required"),
    (_mut(["plans", 0], 3), "plans[0]: must be a table"),
    ({**copy.deepcopy(BASE), "extra": 1}, "extra: unknown key"),
]


@pytest.mark.parametrize("raw,msg", ERRORS, ids=[m for _, m in ERRORS])
def test_config_errors_name_file_and_key(raw, msg):
    with pytest.raises(ConfigError) as exc:
        plans_from_dict(raw, "configs/x.toml")
    text = str(exc.value)
    assert text.startswith("configs/x.toml: ")
    assert msg in text
    assert "\n" not in text


def test_base_is_valid():
    ps = plans_from_dict(copy.deepcopy(BASE), "x")
    assert ps.names == ["young", "old"]
    assert ps["old"].fee == 0.08  # defaults
    assert ps["old"].sharing_days == (14, 28)


def test_load_plans_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such plan file"):
        load_plans(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[plans]\nname=", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_plans(bad)
    binf = tmp_path / "bin.toml"
    binf.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a UTF-8"):
        load_plans(binf)
    ok = tmp_path / "ok.toml"
    ok.write_text('[[plans]]\nname = "a"\nbenefit = 10\nfee = 2\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ok.toml: plans\[0\].fee: must be a number in \[0, 1\)"):
        load_plans(ok)


# ------------------------------------------------------------------ expression language

EXPRS = [
    "age >= 40 and city_tier in {4, 5}",
    "40 <= age <= 59",
    "not (age < 30 or sex == 'M')",
    "sex != \"F\" and city_tier not in {1, 2}",
    "age > 20 and age < 50 or city_tier == 5",
    "not not age == 3",
    "city_tier in {3} or (age >= 55 and sex in {'F'})",
    "age == 2.0",
    "30 > age",
    "age >= 10 and age <= 12 and city_tier != 4",
]


@pytest.mark.parametrize("text", EXPRS)
def test_expression_matches_python_semantics(text):
    # Oracle: Python's own semantics for these trusted test strings (same precedence and chaining).
    rows = [{"age": a, "sex": s, "city_tier": c} for a, s, c in itertools.product(range(0, 61, 3), "MF", range(1, 6))]
    df = pl.DataFrame(rows)
    got = df.select(Expression.parse(text).to_polars().alias("x"))["x"].to_list()
    want = [bool(eval(text, {"__builtins__": {}}, dict(r))) for r in rows]  # noqa: S307 - test oracle on constants
    assert got == want


@pytest.mark.parametrize(
    "text,msg",
    [
        ("age >=", "expected a value"),
        ("age = 3", "unexpected character '='"),
        ("age in {}", "expected a value"),
        ("(age > 3", "expected ')'"),
        ("age > 3 extra", "unexpected 'extra'"),
        ("3 > 4", "names no column"),
        ("age", "expected a comparison"),
        ("__import__('os').system('true')", "unexpected character '.'"),
        ("age > 3 and", "expected a value"),
        ("3 in {3}", "'in' needs a column name"),
        ("age ; 3", "unexpected character ';'"),
        ("age > `x`", "unexpected character '`'"),
    ],
)
def test_expression_errors(text, msg):
    with pytest.raises(ValueError) as exc:
        Expression.parse(text)
    assert msg in str(exc.value)


def test_tokenizer_kinds():
    toks = tokenize("age>=40 and x in {'a',2.5}")
    assert [t.kind for t in toks] == ["name", "op", "num", "kw", "name", "kw", "punct", "str", "punct", "num", "punct", "end"]
    assert toks[2].value == 40 and isinstance(toks[2].value, int)
    assert toks[9].value == 2.5


def test_expression_columns():
    assert Expression.parse("40 <= age <= 59 and city_tier in {4, 5}").columns == {"age", "city_tier"}


# ------------------------------------------------------------------ assignment


def _table():
    return pl.DataFrame([{"age": a, "city_tier": c} for a in (20, 45, 55) for c in (1, 4)])


def test_assign_plans_benefits_and_uncovered():
    ps = plans_from_dict(copy.deepcopy(BASE), "x")
    out = assign_plans(_table(), ps)
    got = {(r["age"], r["city_tier"]): (r["plan"], r["benefit_cny"]) for r in out.iter_rows(named=True)}
    assert got[(20, 1)] == ("young", 300000.0)
    assert got[(45, 4)] == ("old", 100000.0)
    assert got[(55, 4)] == ("old", 50000.0)
    assert got[(45, 1)] == (None, None)


def test_overlap_is_an_error_unless_allowed():
    raw = copy.deepcopy(BASE)
    raw["plans"][1]["eligibility"] = {"when": "age >= 30 and age <= 59"}
    raw["plans"][1]["benefit"] = [{"age": [30, 59], "amount": 1000}]
    ps = plans_from_dict(raw, "x.toml")
    with pytest.raises(ConfigError, match=r"x.toml: planset.allow_overlap: plans 'young' and 'old' overlap"):
        assign_plans(_table().with_columns(pl.lit(35).alias("age")), ps)
    raw["planset"]["allow_overlap"] = True
    ps = plans_from_dict(raw, "x.toml")
    out = assign_plans(pl.DataFrame({"age": [35, 50]}), ps)
    assert out["plan"].to_list() == ["young", "old"]  # first eligible in file order


def test_missing_column_and_nulls():
    ps = plans_from_dict(copy.deepcopy(BASE), "x.toml")
    with pytest.raises(DataError, match="column 'city_tier' is needed"):
        assign_plans(pl.DataFrame({"age": [45]}), ps)
    out = assign_plans(pl.DataFrame({"age": [45, None], "city_tier": [None, 4]}, schema={"age": pl.Int64, "city_tier": pl.Int64}), ps)
    assert out["plan"].to_list() == [None, None]


def test_expression_band_without_benefit_is_reported():
    raw = {"plans": [{"name": "a", "eligibility": {"when": "age >= 0"}, "benefit": [{"age": [0, 10], "amount": 5}]}]}
    ps = plans_from_dict(raw, "x.toml")
    with pytest.raises(ConfigError, match="plan 'a': benefit: no band covers eligible age 11"):
        assign_plans(pl.DataFrame({"age": [3, 11]}), ps)


def test_planset_lookup():
    ps = plans_from_dict(copy.deepcopy(BASE), "x")
    assert isinstance(ps, PlanSet) and ps["young"].name == "young" and ps[1].name == "old"
    with pytest.raises(KeyError):
        ps["nope"]


@pytest.mark.parametrize("elig,col", [({"when": "city_tier in {'4'}"}, [4]), ({"when": "sex > 3"}, ["M"]), ({"sex": [1]}, ["M"])])
def test_type_mismatch_names_the_plan(elig, col):
    name = "city_tier" if "city_tier" in str(elig) else "sex"
    ps = plans_from_dict({"plans": [{"name": "a", "benefit": 1}, {"name": "b", "benefit": 1, "eligibility": elig}],
                          "planset": {"allow_overlap": True}}, "x.toml")
    with pytest.raises(ConfigError, match=r"x.toml: plans\[1\].eligibility: cannot be evaluated"):
        assign_plans(pl.DataFrame({"age": [1], name: col}), ps)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_atoms = st.one_of(
    st.builds(lambda op, v: f"age {op} {v}", st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), st.integers(-1, 62)),
    st.builds(lambda a, b: f"{a} <= age < {b}", st.integers(0, 60), st.integers(0, 60)),
    st.builds(lambda vs, neg: f"city_tier {'not in' if neg else 'in'} {{{', '.join(map(str, vs))}}}",
              st.lists(st.integers(1, 5), min_size=1, max_size=3), st.booleans()),
    st.builds(lambda s: f"sex == '{s}'", st.sampled_from("MF")),
)
_exprs = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a: f"not {a}", inner),
        st.builds(lambda a: f"({a})", inner),
    ),
    max_leaves=6,
)
_GRID = [{"age": a, "sex": s, "city_tier": c} for a, s, c in itertools.product(range(0, 61, 4), "MF", range(1, 6))]
_GRID_DF = pl.DataFrame(_GRID)


@settings(max_examples=60, deadline=None)
@given(_exprs)
def test_random_expressions_match_python(text):
    got = _GRID_DF.select(Expression.parse(text).to_polars().alias("x"))["x"].to_list()
    want = [bool(eval(text, {"__builtins__": {}}, dict(r))) for r in _GRID]  # noqa: S307 - generated from a fixed grammar
    assert got == want


@pytest.mark.parametrize("name", ["xianghubao", "vertical", "elderly"])
def test_to_toml_round_trip(name, tmp_path):
    from engine.plans.planset import to_toml

    ps = load_plans(ROOT / "configs" / f"{name}.toml")
    f = tmp_path / "rt.toml"
    f.write_text(to_toml(ps), encoding="utf-8")
    back = load_plans(f)
    assert back.plans == ps.plans
    assert (back.name, back.allow_overlap, back.description) == (ps.name, ps.allow_overlap, ps.description)


def test_expression_limits_and_long_chains() -> None:
    """600 'or' terms compile flat (no recursion limit); past the documented limits a clear ValueError."""
    import polars as pl
    import pytest

    from engine.plans.expr import MAX_DEPTH, MAX_TERMS, Expression

    e = Expression.parse(" or ".join(f"age == {i}" for i in range(600)))
    got = pl.DataFrame({"age": [5, 599, 600, None]}).select(e.to_polars().alias("x"))["x"].to_list()
    assert got == [True, True, False, None]
    assert Expression.parse("(" * MAX_DEPTH + "age > 1" + ")" * MAX_DEPTH).columns == {"age"}
    with pytest.raises(ValueError, match="nested too deeply"):
        Expression.parse("(" * (MAX_DEPTH + 1) + "age > 1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="nested too deeply"):
        Expression.parse("not " * 100 + "age > 1")
    with pytest.raises(ValueError, match="too large"):
        Expression.parse(" and ".join(["age > 1"] * (MAX_TERMS + 1)))
