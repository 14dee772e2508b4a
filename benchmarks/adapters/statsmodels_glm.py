"""Peer: statsmodels Poisson GLM on member rows (one row per member, log exposure offset).

Same model as fentan's GLM on cells: sex + city_tier + channel + cubic B-spline of age
(6 df, patsy ``bs``), except that age is the age at the start of each member's at-risk
interval (member rows carry one age; cells carry attained age). Above
``[peers] statsmodels_max_rows`` the fit uses a random sample of that many rows and the
full-size time is extrapolated linearly (``est_full_s``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.adapters.common import warm

FORMULA = "event ~ C(sex) + C(city_tier) + C(channel) + bs(age, df=6)"


def glm(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    rows = pl.read_parquet(data / "member_rows.parquet")
    cap = int(cfg["peers"]["statsmodels_max_rows"])
    full = rows.height
    if full > cap:
        rows = rows.sample(cap, seed=0)
    df = rows.to_pandas()

    def fit(d: Any) -> Any:
        return smf.glm(FORMULA, data=d, family=sm.families.Poisson(), offset=np.log(d["exposure_years"])).fit()

    warm(lambda: fit(df.head(5000)))
    t0 = time.perf_counter()
    model = fit(df)
    wall = time.perf_counter() - t0
    out = {"wall_s": wall, "rows": rows.height, "rows_full": full,
           "coef": {k: float(v) for k, v in model.params.items() if not k.startswith("bs(")}}
    if full > rows.height:
        out.update(sample=True, est_full_s=wall * full / rows.height)
    return out
