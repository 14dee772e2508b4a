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

from engine.errors import ConfigError, ModelError

DEFAULT_MAX_SHARE_CV = 0.10


def claims_for_share_cv(max_share_cv: float) -> float:
    """Expected claims per period that keep the share CV at or below ``max_share_cv``: n = 1 / cv^2."""
    if not max_share_cv or max_share_cv <= 0:
        raise ConfigError(f"max_share_cv: must be > 0, got {max_share_cv!r}")
    return 1.0 / max_share_cv**2


def plan_stability(seg: Any, operating_members: float | dict[str, float], *, period_months: float = 1.0,
                   max_share_cv: float = DEFAULT_MAX_SHARE_CV) -> pl.DataFrame:
    """Share CV per group of a segmentation when its plans operate at a given membership.

    Parameters
    ----------
    seg : fitted (or loaded) :class:`engine.RiskSegmenter`.
    operating_members : members of the whole platform (split between the groups as in the
        data: by exposure), or a dict group name -> members of that plan.
    period_months : length of a sharing period (1 = monthly shares).
    max_share_cv : target coefficient of variation of one period's share (default 10%).

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
    n_target = claims_for_share_cv(max_share_cv)
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
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(n > 0, 1.0 / np.sqrt(n), np.inf)
        needed = np.where(rate > 0, 12.0 * n_target / (rate * period_months), np.inf)
    return pl.DataFrame({
        "group": g["group"], "name": names, "rule": g["rule"], "rate": rate, "operating_members": members,
        "expected_claims_per_period": n, "share_cv": cv, "meets_target": cv <= max_share_cv + 1e-12,
        "members_needed": np.ceil(needed),
    })
