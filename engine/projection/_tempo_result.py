"""Result objects of :func:`engine.tempo`: the acceptance criteria and the frontier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import ConfigError

__all__ = ["TempoCriteria", "TempoResult"]


class TempoCriteria(BaseModel):
    """What a tempo must meet to be acceptable (each None switches a criterion off).

    ``max_surprise_p95``: the P95 (over scenarios) of the peak ratio share / expected
    share may exceed 1 by at most this (0.5: "never more than 50% above expectations").
    ``max_spiral_prob``: the probability of a death spiral must stay below this.
    ``min_retained_1y``: optional floor on the 1-year retention of joiners.
    ``max_peak_lapse_annual``: optional ceiling on the peak (annualised) lapse rate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_surprise_p95: float | None = Field(0.5, ge=0.0)
    max_spiral_prob: float | None = Field(0.05, gt=0.0, le=1.0)
    min_retained_1y: float | None = Field(None, ge=0.0, le=1.0)
    max_peak_lapse_annual: float | None = Field(None, gt=0.0, le=1.0)

    def failures(self, row: Mapping[str, Any]) -> list[str]:
        """Names of the criteria a tempo row fails."""
        out = []
        if self.max_surprise_p95 is not None and not row["peak_surprise_p95"] <= 1.0 + self.max_surprise_p95:
            out.append("max_surprise_p95")
        if self.max_spiral_prob is not None and not row["spiral_prob"] < self.max_spiral_prob:
            out.append("max_spiral_prob")
        r1 = row.get("retained_1y")
        if self.min_retained_1y is not None and (r1 is None or r1 < self.min_retained_1y):
            out.append("min_retained_1y")
        if self.max_peak_lapse_annual is not None and not row["peak_lapse_annual"] <= self.max_peak_lapse_annual:
            out.append("max_peak_lapse_annual")
        return out


@dataclass
class TempoResult:
    """Output of :func:`tempo`.

    Attributes
    ----------
    table : polars.DataFrame
        One row per tempo (slowest first): ``tempo``, ``speed``, ``growth_per_period``,
        ``periods_to_target``, ``peak_surprise_mean``/``_p95`` (peak over the horizon of
        share / expected share, mean and P95 over scenarios), ``det_peak_surprise``
        (expected-value path), ``peak_lapse_per_period``/``peak_lapse_annual`` (mean over
        scenarios of the peak), ``retained_1y``/``_3y``/``_5y``, ``spiral_prob``,
        ``periods_to_sustainable`` (deterministic path settles within ``settle_tol`` of the
        sustainable share), ``members_end``, ``meets_criteria``, ``fails``.
    paths : polars.DataFrame
        One row per (tempo, period): deterministic members, share and expected share,
        Monte Carlo mean members and share, and the P95 of share / expected.
    recommended : str or None
        The fastest tempo meeting the criteria.
    binding : str
        Which criterion stops a faster tempo (or why there is no recommendation).
    criteria : TempoCriteria
    sustainable_share_cny : float
    assumptions : dict
        The projection assumptions and sweep settings used (seed included).
    """

    table: pl.DataFrame
    paths: pl.DataFrame
    recommended: str | None
    binding: str
    criteria: TempoCriteria
    sustainable_share_cny: float
    assumptions: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> pl.DataFrame:
        """The per-tempo table."""
        return self.table

    def _repr_html_(self) -> str:
        """Compact HTML card: the recommended tempo, what binds, the sustainable share."""
        from engine._results import frames_card

        return frames_card(self, {"tempos": self.table.height, "recommended": str(self.recommended),
                                  "binding": self.binding, "sustainable share (CNY per sharing period)": self.sustainable_share_cny,
                                  "seed": self.assumptions.get("seed")}, "Operating tempo frontier")

    def print_summary(self) -> None:
        """Print the frontier and the recommendation."""
        from engine._display import print_table

        cols = ["tempo", "peak_surprise_mean", "peak_surprise_p95", "peak_lapse_annual", "retained_1y", "retained_3y",
                "retained_5y", "spiral_prob", "periods_to_sustainable", "meets_criteria"]
        print_table(f"operating tempo (seed {self.assumptions.get('seed')}); recommended: {self.recommended} "
                    f"({self.binding})", self.table.select(cols).to_dicts())

    def plot_frontier(self, ax: Any = None) -> Any:
        """Peak surprise (mean, P95) and spiral probability against the tempo's speed; returns the ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        t = self.table
        x = t["speed"].to_numpy()
        ax.plot(x, t["peak_surprise_mean"].to_numpy(), "o-", label="peak share / expected (mean)")
        ax.plot(x, t["peak_surprise_p95"].to_numpy(), "s--", label="peak share / expected (P95)")
        if self.criteria.max_surprise_p95 is not None:
            ax.axhline(1.0 + self.criteria.max_surprise_p95, color="tab:red", linestyle=":", label="criterion")
        if self.recommended is not None:
            xr = float(t.filter(pl.col("tempo") == self.recommended)["speed"][0])
            ax.axvline(xr, color="k", linestyle="--", label=f"recommended {self.recommended}")
        ax.set_xlabel("tempo (growth per period, or multiple of the base schedule)")
        ax.set_ylabel("share / members' expected share")
        ax2 = ax.twinx()
        ax2.plot(x, t["spiral_prob"].to_numpy(), "^-", color="tab:gray", label="P(death spiral)")
        ax2.set_ylabel("P(death spiral)")
        ax2.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title("operating tempo frontier")
        return ax

    def plot_paths(self, ax: Any = None) -> Any:
        """Deterministic share / expected share path of each tempo; returns the ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        for name in self.table["tempo"].to_list():
            d = self.paths.filter(pl.col("tempo") == name)
            ax.plot(d["period"].to_numpy(), (d["det_share_cny"] / d["det_expected_share_cny"]).to_numpy(), label=name)
        ax.axhline(1.0, color="k", linewidth=0.5)
        ax.set_xlabel("period")
        ax.set_ylabel("share / expected share (expected path)")
        ax.legend(fontsize=7)
        return ax

    def html_section(self, figure: str | None = None) -> str:
        """A small HTML report section: the recommendation, the criteria and the table."""
        import html

        c = self.criteria
        crit = [f"P95 peak share / expected &le; {1 + c.max_surprise_p95:.2f}" if c.max_surprise_p95 is not None else "",
                f"P(death spiral) &lt; {c.max_spiral_prob:.0%}" if c.max_spiral_prob is not None else "",
                f"1-year retention &ge; {c.min_retained_1y:.0%}" if c.min_retained_1y is not None else "",
                f"peak annual lapse &le; {c.max_peak_lapse_annual:.0%}" if c.max_peak_lapse_annual is not None else ""]
        rec = html.escape(self.recommended) if self.recommended else "none"
        img = f'<img src="{html.escape(figure)}" alt="tempo frontier" style="max-width:100%">' if figure else ""
        return (f"<section id=\"tempo\"><h2>Operating tempo</h2><p>Recommended tempo: <b>{rec}</b> "
                f"({html.escape(self.binding)}). Criteria: {'; '.join(x for x in crit if x)}. "
                f"Sustainable share {self.sustainable_share_cny:.4g} CNY per period. "
                f"Elasticity and education speed are assumptions: see docs/tempo.md.</p>{img}"
                f"{self.table.drop('fails')._repr_html_()}</section>")

    def write(self, out_dir: Any) -> Any:
        """Write tempo.parquet, tempo_paths.parquet, tempo.png, tempo.html (self-contained) and recommendation.json."""
        from pathlib import Path

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from engine.data.io import write_json, write_parquet

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_parquet(self.table, out / "tempo.parquet")
        write_parquet(self.paths, out / "tempo_paths.parquet")
        fig, axes = plt.subplots(1, 2, figsize=(13, 4))
        self.plot_frontier(axes[0])
        self.plot_paths(axes[1])
        fig.tight_layout()
        fig.savefig(out / "tempo.png", dpi=110)
        plt.close(fig)
        import base64

        png = base64.b64encode((out / "tempo.png").read_bytes()).decode("ascii")
        (out / "tempo.html").write_text("<!doctype html><meta charset=\"utf-8\"><title>tempo</title>"  # self-contained
                                        + self.html_section(f"data:image/png;base64,{png}"), encoding="utf-8")
        write_json({"recommended": self.recommended, "binding": self.binding,
                    "criteria": self.criteria.model_dump(), "assumptions": self.assumptions},
                   out / "recommendation.json")
        return out


def _criteria(c: TempoCriteria | Mapping[str, Any] | None) -> TempoCriteria:
    if isinstance(c, TempoCriteria):
        return c
    try:
        return TempoCriteria.model_validate(dict(c or {}))
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e.get("loc", ()))
        raise ConfigError(f"criteria.{loc}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}") from None
