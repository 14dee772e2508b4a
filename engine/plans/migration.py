"""Migration between plans when members can choose: adverse selection across plans.

Members (rows of a risk table, each with ``members`` identical members) start in
a plan and, round after round, move to the cheapest plan they are eligible for,
with inertia: a member moves only when the saving exceeds ``threshold``, and then
only with probability ``move_probability`` per round. Shares change as members
move, so the rounds are iterated to a fixed point (no one left with a saving
above the threshold). The computation is on the rows (cells), never on members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engine._results import ResultMixin, print_frame
from engine.plans.compare import _check_table
from engine.data._coerce import api_input
from engine.plans._risk_table import _check_table
from engine.errors import ConfigError, DataError
from engine.plans.planset import PlanSet, assign_plans
from engine.conventions import DAYS_PER_YEAR

PRICES = ("payment", "per_benefit")


@dataclass
class MigrationResult(ResultMixin):
    """Output of :func:`migrate`.

    Attributes
    ----------
    pools : per plan at the start and at the end: members, expected claims per
        period, share per period, annual payment per member.
    flows : members moved from plan to plan (cumulative over the rounds).
    history : per round and plan: members and share per period.
    rows : the risk table with ``plan`` and ``members`` at the fixed point (long format).
    converged : whether a fixed point was reached within ``max_rounds``.
    rounds : rounds run.
    """

    pools: pl.DataFrame
    flows: pl.DataFrame
    history: pl.DataFrame
    rows: pl.DataFrame
    converged: bool
    rounds: int

    @property
    def summary(self) -> pl.DataFrame:
        """Members and annual payment per plan at the start and at the fixed point."""
        return self.pools.select("plan", "members_start", "members_end", "annual_payment_start_cny", "annual_payment_end_cny")

    def print_summary(self, decimals: int = 4) -> None:
        """Print :attr:`summary` with the convergence status, floats to ``decimals`` significant digits."""
        state = "converged" if self.converged else "NOT converged"
        print_frame(self.summary, f"migration ({state} after {self.rounds} rounds)", decimals)

    def _key_numbers(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plans": self.pools.height, "converged": self.converged, "rounds": self.rounds}
        if {"plan", "members_end"} <= set(self.pools.columns):
            for plan, members in self.pools.select("plan", "members_end").head(10).iter_rows():
                out[f"{plan}: members at the end"] = members
        return out

    def plot_history(self, ax: Any = None) -> Any:
        """Members of each plan by round; returns the ax."""
        from engine._optional import pyplot
        plt = pyplot()

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for (name,), h in self.history.group_by(["plan"], maintain_order=True):
            ax.plot(h["round"].to_numpy(), h["members"].to_numpy(), label=str(name))
        ax.set_xlabel("round")
        ax.set_ylabel("members")
        ax.set_title("migration between plans")
        ax.legend()
        return ax


def _pool_stats(x: np.ndarray, cost: np.ndarray, m: np.ndarray, elig: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = x.sum(axis=0)
    c = (x * cost).sum(axis=0)
    claims = (x * m).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n > 0, c / np.where(n > 0, n, 1.0), np.nan)
    return n, share, claims


@api_input(frames=("risk_table",))
def migrate(
    risk_table: pl.DataFrame,
    options: PlanSet,
    *,
    initial: str | None = None,
    threshold: float = 0.0,
    waiting_cost: bool = False,
    move_probability: float = 0.5,
    price: str = "payment",
    max_rounds: int = 1000,
    tol: float = 1e-9,
    study_years: float = 1.0,
) -> MigrationResult:
    """Project who moves to which plan and what remains in each pool.

    Parameters
    ----------
    risk_table : rows with ``age``, ``rate``, ``members`` and the eligibility attributes.
    options : every plan on offer (e.g. the pooled plan first, then the vertical plans);
        overlapping eligibility is what makes a choice, so it is allowed here.
    initial : column of the risk table naming each row's starting plan; default:
        the first eligible plan in ``options`` order.
    threshold : a member moves only when its saving exceeds this (annual CNY for
        ``price="payment"``, or annual CNY per CNY of benefit for ``"per_benefit"``).
    waiting_cost : a member who switches serves the new plan's waiting period
        without cover; when True the expected benefit lost,
        lambda_i B_{q,i} waiting_days_q / 365.25 (CNY), is added to the threshold of a
        move to plan q (set against one year's saving; payment prices only).
    move_probability : share of the members with such a saving who move in a round.
        It also damps the iteration: with 1.0 every such member moves at once and
        synchronous moves can cycle (then ``converged`` is False; see ``history``).
    price : ``"payment"`` compares annual payments; ``"per_benefit"`` compares
        annual payment / benefit (the inverse of leverage).
    max_rounds, tol : stop when a round moves fewer than ``tol`` x all members.

    Notes
    -----
    Round r, with x[i, p] the members of row i in plan p: plan p's share per
    period is S_p = sum_i x[i,p] c[i,p] / sum_i x[i,p] with
    c[i,p] = (1 + phi_p) lambda_i dt_p B_{p,i} (the own cost of a member of row i); the annual price is A[i,p] = S_p / dt_p under equal
    sharing and c[i,p] / dt_p under the risk-proportional and conditional-mean
    rules; an empty plan is priced at the entrant's own cost. Every member of row i
    in plan p with A[i,p] - min_q A[i,q] > threshold moves to the argmin with
    probability ``move_probability``. Members are conserved row by row.
    """
    _check_migrate_args(price, move_probability, threshold, waiting_cost)
    table = _check_table(risk_table, study_years)
    opts = PlanSet(options.plans, name=options.name, allow_overlap=True, source=options.source)
    mk = _market(table, opts)
    x0 = _initial_allocation(table, initial, mk)
    x, flows, hist, converged, rounds = _move_rounds(
        x0.copy(), mk, price=price, threshold=threshold, waiting_cost=waiting_cost,
        move_probability=move_probability, max_rounds=max_rounds, tol=tol,
    )
    return _migration_result(table, mk, x0, x, flows, hist, converged, rounds)


def _check_migrate_args(price: str, move_probability: float, threshold: float, waiting_cost: bool) -> None:
    """Raise ConfigError on an unknown price, a probability outside (0, 1], a negative threshold or a misplaced waiting cost."""
    if price not in PRICES:
        raise ConfigError(f"price: must be one of {', '.join(PRICES)}")
    if not 0 < move_probability <= 1:
        raise ConfigError("move_probability: must be in (0, 1]")
    if threshold < 0:
        raise ConfigError("threshold: must be >= 0")
    if waiting_cost and price != "payment":
        raise ConfigError("waiting_cost: only with price='payment' (CNY)")


@dataclass(frozen=True)
class _Market:
    """Rows x plans arrays of a migration: eligibility, benefit, expected claims, own cost, benefit lost waiting."""

    names: list[str]
    elig: np.ndarray
    ben: np.ndarray
    ppy: np.ndarray
    equal: np.ndarray
    n_row: np.ndarray
    m: np.ndarray
    cost: np.ndarray
    lost: np.ndarray


def _market(table: pl.DataFrame, opts: PlanSet) -> _Market:
    """The arrays of :class:`_Market` for the risk table and the plans on offer.

    Notes
    -----
    ``m[i,p] = lambda_i / ppy_p``; ``cost[i,p] = (1 + phi_p) m[i,p] B_{p,i}``;
    ``lost[i,q] = lambda_i B_{q,i} waiting_days_q / 365.25``.
    """
    a = assign_plans(table, opts)
    P = len(opts)
    elig = np.column_stack([a[f"eligible_{j}"].to_numpy() for j in range(P)]).astype(bool)
    ben = np.column_stack([a.select(p.benefit_expr()).to_series().fill_null(0.0).to_numpy() for p in opts])
    ppy = np.array([p.periods_per_year for p in opts], dtype=float)
    fee = np.array([p.fee for p in opts])
    equal = np.array([p.rule == "equal" for p in opts])
    n_row = table["members"].to_numpy()
    lam = table["rate"].to_numpy()
    m = lam[:, None] / ppy[None, :]  # expected claims per member and period
    cost = (1 + fee)[None, :] * m * ben  # own cost per member and period
    wait = np.array([p.waiting_days for p in opts], dtype=float)
    lost = lam[:, None] * ben * wait[None, :] / DAYS_PER_YEAR  # expected benefit lost while waiting in plan q
    return _Market(names=opts.names, elig=elig, ben=ben, ppy=ppy, equal=equal, n_row=n_row, m=m, cost=cost, lost=lost)


def _initial_allocation(table: pl.DataFrame, initial: str | None, mk: _Market) -> np.ndarray:
    """Members of each row in each plan at the start: the first eligible plan, or the plan named by ``initial``."""
    names, elig, n_row = mk.names, mk.elig, mk.n_row
    covered = elig.any(axis=1)
    x = np.zeros((len(n_row), len(names)))
    if initial is None:
        first = np.argmax(elig, axis=1)
        x[np.arange(len(n_row))[covered], first[covered]] = n_row[covered]
        return x
    if initial not in table.columns:
        raise DataError(f"risk table: initial-plan column '{initial}' is missing")
    start = table[initial].cast(pl.String).to_list()
    for i, s in enumerate(start):  # one lookup per row (cells, not members)
        if s is None or not covered[i]:
            continue
        if s not in names:
            raise DataError(f"risk table: {initial} '{s}' is not one of the options ({', '.join(names)})")
        j = names.index(s)
        if not elig[i, j]:
            raise DataError(f"risk table: row {i} starts in '{s}' but is not eligible for it")
        x[i, j] = n_row[i]
    return x


def _move_rounds(
    x: np.ndarray,
    mk: _Market,
    *,
    price: str,
    threshold: float,
    waiting_cost: bool,
    move_probability: float,
    max_rounds: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray, np.ndarray]], bool, int]:
    """Move members round by round to their cheapest plan: final allocation, flows, per-round pools, converged, rounds.

    Notes
    -----
    Members of row i in plan p move to ``argmin_q A[i,q]`` with probability
    ``move_probability`` when ``A[i,p] - min_q A[i,q] > threshold`` (plus the
    benefit lost waiting when ``waiting_cost``).
    """
    P = len(mk.names)
    flows = np.zeros((P, P))
    total = float(x.sum())
    hist = []
    converged = False
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        n, share, _ = _pool_stats(x, mk.cost, mk.m, mk.elig)
        pay = np.where(mk.equal[None, :] & (n[None, :] > 0), np.nan_to_num(share)[None, :], mk.cost)
        annual = pay * mk.ppy[None, :]
        if price == "per_benefit":
            annual = np.where(mk.ben > 0, annual / np.where(mk.ben > 0, mk.ben, 1.0), np.inf)
        annual = np.where(mk.elig, annual, np.inf)
        hist.append((rounds - 1, n.copy(), share.copy()))
        best = np.argmin(annual, axis=1)
        best_price = annual[np.arange(len(best)), best]
        with np.errstate(invalid="ignore"):  # uncovered rows: inf - inf
            saving = annual - best_price[:, None]
        need = np.full(len(best), float(threshold))
        if waiting_cost:
            need = need + mk.lost[np.arange(len(best)), best]
        movers = (x > 0) & (saving > need[:, None]) & np.isfinite(saving)
        moved = np.where(movers, x * move_probability, 0.0)
        amount = float(moved.sum())
        if amount <= tol * max(total, 1.0):
            converged = True
            break
        x = x - moved
        np.add.at(x, (np.arange(len(best)), best), moved.sum(axis=1))
        for j in range(P):  # P is the number of plans (small)
            flows[j] += np.bincount(best, weights=moved[:, j], minlength=P)
    return x, flows, hist, converged, rounds


def _migration_result(
    table: pl.DataFrame,
    mk: _Market,
    x0: np.ndarray,
    x: np.ndarray,
    flows: np.ndarray,
    hist: list[tuple[int, np.ndarray, np.ndarray]],
    converged: bool,
    rounds: int,
) -> MigrationResult:
    """Pools at start and end, flows between plans, per-round history and the rows at the fixed point."""
    names, ppy, P = mk.names, mk.ppy, len(mk.names)
    n, share, claims = _pool_stats(x, mk.cost, mk.m, mk.elig)
    n0, share0, claims0 = _pool_stats(x0, mk.cost, mk.m, mk.elig)
    hist.append((rounds, n, share))
    pools = pl.DataFrame({
        "plan": names,
        "members_start": n0,
        "members_end": n,
        "expected_claims_per_period_start": claims0,
        "expected_claims_per_period_end": claims,
        "share_start_cny": share0,
        "share_end_cny": share,
        "annual_payment_start_cny": share0 * ppy,
        "annual_payment_end_cny": share * ppy,
        "periods_per_year": ppy,
    }).with_columns(pl.col(pl.Float64).fill_nan(None))
    f_rows = [(names[a_], names[b_], flows[a_, b_]) for a_ in range(P) for b_ in range(P) if a_ != b_ and flows[a_, b_] > 0]
    flow_df = pl.DataFrame(f_rows, schema={"from_plan": pl.String, "to_plan": pl.String, "members": pl.Float64}, orient="row")
    history = pl.DataFrame({
        "round": np.repeat([h[0] for h in hist], P),
        "plan": names * len(hist),
        "members": np.concatenate([h[1] for h in hist]),
        "share_cny": np.concatenate([h[2] for h in hist]),
    }).with_columns(pl.col("share_cny").fill_nan(None))
    keep = [c for c in table.columns if c != "members"]
    rows = pl.concat([
        table.select(keep).with_columns(pl.lit(names[j]).alias("plan"), pl.Series("members", x[:, j]))
        for j in range(P)
    ]).filter(pl.col("members") > 0)
    return MigrationResult(pools=pools, flows=flow_df, history=history, rows=rows, converged=converged, rounds=rounds)


def remaining(result: MigrationResult, plans: Sequence[str] | None = None) -> pl.DataFrame:
    """Members left in each pool at the fixed point (optionally only ``plans``)."""
    out = result.pools.select("plan", "members_start", "members_end", "share_start_cny", "share_end_cny")
    return out.filter(pl.col("plan").is_in(list(plans))) if plans is not None else out
