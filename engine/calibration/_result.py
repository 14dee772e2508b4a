"""The result object of :func:`engine.replay`: parameters, the fit to the published figures, dated shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl


@dataclass
class ReplayResult:
    """Result of :func:`replay`: ``params``, ``fit``, ``periods``, ``years``, ``facts``."""

    params: pl.DataFrame
    fit: pl.DataFrame
    periods: pl.DataFrame
    years: pl.DataFrame
    facts: dict[str, Any] = field(default_factory=dict)
    #: what the fit was given (rules, groups with their base rates, the membership curve), for
    #: :func:`engine.calibration.tempo_from_replay`
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def summary(self) -> pl.DataFrame:
        """Parameter table: estimate, profile-likelihood interval, bootstrap interval."""
        return self.params

    def print_summary(self, years: Sequence[int] | None = None) -> None:
        """Print the parameters, observed against fitted aggregates and the annual shares."""
        from rich.console import Console

        con = Console(width=140)
        con.print(f"[bold]replay[/bold]: log-likelihood {self.facts['loglik']:.3f}, "
                  f"{self.facts['n_aggregates']} aggregates, {self.facts['n_boot']} bootstrap fits")
        con.print(self.params)
        con.print(self.fit.select("label", "kind", "date", "observed", "fitted", "sd", "z"))
        y = self.years if years is None else self.years.filter(pl.col("year").is_in(list(years)))
        con.print(y.select("year", "complete", "annual_share_cny", "annual_share_lower_cny", "annual_share_upper_cny",
                           "sustainable_annual_share_cny", "members_end"))
        con.print({k: v for k, v in self.facts.items() if k in ("sustainable_reached_on", "death_spiral",
                                                                  "death_spiral_on", "leverage_sustainable")})

    def _repr_html_(self) -> str:
        """Compact HTML card: the fit's scalar facts (log-likelihood, aggregates, bootstrap fits) and the tables."""
        from engine._results import frames_card, scalars

        return frames_card(self, {"parameters": self.params.height, **scalars(self.facts)})

    def plot_shares(self, ax: Any = None) -> Any:
        """Expected share per period with its fan (parameters + Poisson) and the sustainable share."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(9, 4))
        p = self.periods
        x = p["notice_date"].to_list()
        ax.fill_between(x, p["share_lower_cny"].to_numpy(), p["share_upper_cny"].to_numpy(), alpha=0.25,
                        label=f"{self.facts['level_ci']:.0%} interval")
        ax.plot(x, p["share_cny"].to_numpy(), label="fitted / projected")
        ax.plot(x, p["sustainable_share_cny"].to_numpy(), "--", color="grey", label="sustainable")
        obs = self.fit.filter(pl.col("kind") == "share_period")
        if obs.height:
            ax.plot(obs["date"].to_list(), obs["observed"].to_numpy(), "o", color="C3", label="published")
        ax.set_ylabel("share per period (CNY)")
        ax.legend()
        return ax

    def plot_fit(self, ax: Any = None) -> Any:
        """Observed / fitted for every aggregate with +/- 2 sd bars; returns the ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        f = self.fit.filter(pl.col("fitted") > 0)
        r = (f["observed"] / f["fitted"]).to_numpy()
        e = 2 * (f["sd"] / f["fitted"]).to_numpy()
        ax.errorbar(np.arange(f.height), r, yerr=e, fmt="o", capsize=3)
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_xticks(np.arange(f.height), f["label"].to_list(), rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("observed / fitted")
        return ax
