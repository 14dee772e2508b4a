"""Share stability of plans at their operating membership: the plan-design side of granularity.

A risk group is *credible* when its rate is well estimated from the data (a
segmentation question: ``RiskSegmenter(min_claims=...)``). A plan's share is
*stable* when its expected claims per sharing period are large: that depends on
the membership the plan will operate at, which may be far larger (or smaller)
than the data's. This module answers the second question for the groups of a
segmentation, with a share-CV target the user sets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine._results import warn_renamed
from engine.conventions import TARGET_SHARE_CV
from engine.errors import ConfigError, ModelError
from engine.plans.size import claims_for_share_cv, members_for_cv, share_cv

#: kept for one release: the default share-CV target lives in engine.conventions
DEFAULT_MAX_SHARE_CV = TARGET_SHARE_CV


def plan_stability(seg: Any, operating_members: float | dict[str, float], *, period_months: float = 1.0,
                   target_share_cv: float = TARGET_SHARE_CV, max_share_cv: float | None = None) -> pl.DataFrame:
    """Share CV per group of a segmentation when its plans operate at a given membership.

    Parameters
    ----------
    seg : fitted (or loaded) :class:`engine.RiskSegmenter`.
    operating_members : members of the whole platform (split between the groups as in the
        data: by exposure), or a dict group name -> members of that plan.
    period_months : length of a sharing period (1 = monthly shares).
    target_share_cv : target coefficient of variation of one period's share (default
        :data:`engine.conventions.TARGET_SHARE_CV`, 10%).
    max_share_cv : deprecated name of ``target_share_cv`` (DeprecationWarning).

    Returns
    -------
    One row per group: group, name, rule, rate, operating_members,
    expected_claims_per_period, share_cv, meets_target and members_needed (the
    membership at which the plan reaches the target).

    Notes
    -----
    With Poisson claims and a fixed benefit, one period's share has CV about
    1 / sqrt(n), n = rate x members x period_months / 12 the expected claims per
    period (shared/domain.md, section 3). The target needs n >= 1 / cv^2, i.e.
    members >= 12 / (cv^2 x rate x period_months).
    """
    if not hasattr(seg, "groups_"):
        raise ModelError("plan_stability: the segmentation is not fitted")
    if period_months <= 0:
        raise ConfigError("period_months: must be > 0")
    if max_share_cv is not None:
        warn_renamed("plan_stability", "max_share_cv", "target_share_cv")
        target_share_cv = max_share_cv
    claims_for_share_cv(target_share_cv)  # validates the target
    g = seg.groups_.sort("group")
    names = g["name"].to_list()
    if isinstance(operating_members, dict):
        unknown = sorted(set(operating_members) - set(names))
        if unknown:
            raise ConfigError(f"operating_members: unknown group '{unknown[0]}' (groups: {', '.join(names)})")
        members = np.array([float(operating_members.get(n, np.nan)) for n in names])
    else:
        if operating_members <= 0:
            raise ConfigError("operating_members: must be > 0")
        e = g["exposure_years"].to_numpy()
        members = float(operating_members) * e / e.sum()
    rate = g["rate"].to_numpy()
    n = rate * members * period_months / 12.0
    mu = rate * period_months / 12.0  # claim probability per member and period
    cv = np.array([share_cv(m, [1.0], [u], [1.0]) if u > 0 else np.inf for m, u in zip(members, mu)])
    needed = np.array([members_for_cv(target_share_cv, [1.0], [u], [1.0]) if u > 0 else np.inf for u in mu])
    return pl.DataFrame({
        "group": g["group"], "name": names, "rule": g["rule"], "rate": rate, "operating_members": members,
        "expected_claims_per_period": n, "share_cv": cv, "meets_target": cv <= target_share_cv + 1e-12,
        "members_needed": np.ceil(needed),
    })
