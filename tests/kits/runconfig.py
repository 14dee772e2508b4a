"""A small `fentan run` configuration for the batch tests (tiny projection, low claims floor)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def small_run_config(members: str | Path = "data/members.parquet", claims: str | Path = "data/claims.parquet", *,
                     max_groups: int = 3, horizon: int = 12, scenarios: int = 16, seed: int | None = None,
                     plans: bool = True, extra: str = "") -> str:
    """TOML text of a run over ``members`` and ``claims`` (paths relative to the config file or absolute).

    ``extra`` is inserted after ``[data]`` (e.g. a ``[run]`` table); ``plans`` adds the shipped
    Xianghubao pooled plan and the vertical plan set.
    """
    text = f'[data]\nmembers = "{members}"\nclaims = "{claims}"\n{extra}\n'
    text += f"[segmentation]\nmin_claims = 20.0\nmax_groups = {max_groups}\n\n"
    text += f"[projection]\nhorizon = {horizon}\nscenarios = {scenarios}\n"
    if seed is not None:
        text += f"seed = {seed}\n"
    if plans:
        text += f'\n[plans]\npooled = "{REPO}/configs/xianghubao.toml"\nfiles = ["{REPO}/configs/vertical.toml"]\n'
    return text
