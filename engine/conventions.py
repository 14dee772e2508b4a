"""Platform rules, calendar constants and defaults: the one home of every default of the engine.

Light on purpose (standard library only): the CLI imports it to print its defaults.

Every module imports its defaults from here; none writes them again. The platform defaults
are Xianghubao's published main-plan rules (shared/domain.md, reference/README.md).

Notes
-----
* Days per year: exposure-years = days / 365.25 (domain.md section 3).
* Sharing calendar: a plan shares on fixed days of the month, so it has
  ``periods_per_year = 12 x len(sharing_days)`` periods a year; a duration in days is
  converted to whole sharing periods by :func:`days_to_periods` (nearest whole period).
* Full credibility (limited fluctuation): n_F = (z_{(1+p)/2} / k)^2 (1 + CV_B^2) claims
  for the observed claims to lie within +-k of their mean with probability p;
  p = 90 %, k = 5 %, CV_B = 0 give (1.644854 / 0.05)^2 = 1,082.2.
* Fee: one default, :data:`FEE` (0.08), for every function that loads a share with the
  management fee (history, decomposition, segmentation, sharing rules, plans,
  projection). Pass ``fee=0`` explicitly for a pure risk cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# ----------------------------------------------------------------------------- calendar
#: days in a year of exposure (Julian year): exposure_years = exposure_days / DAYS_PER_YEAR
DAYS_PER_YEAR = 365.25
#: months in a year (a monthly sharing calendar has 12 periods a year)
MONTHS_PER_YEAR = 12

# ----------------------------------------------------------------------------- platform rules
#: management fee as a fraction of the claims shared (Xianghubao: 8 %)
FEE = 0.08
#: waiting period after joining, in days, before a member can claim
WAITING_DAYS = 90
#: days from a claim's event to its approval when the approval date is missing
REPORTING_LAG_DAYS = 30
#: days of the month on which shares are announced (Xianghubao: the 14th and the 28th)
SHARING_DAYS: tuple[int, ...] = (14, 28)
#: cap on one member's share of one claim (CNY)
PER_CLAIMANT_CAP_CNY = 0.1
#: members of the platform the per-claimant cap was designed for (Xianghubao: about 10^8); the cap
#: limits what the members pay for one claim to cap x members, so it depends on the platform's size
PER_CLAIMANT_CAP_DESIGN_MEMBERS = 100_000_000
#: cap on one member's shares in a year (CNY)
ANNUAL_CAP_CNY = 188.0
#: ages eligible to join the main plan (inclusive)
ELIGIBLE_AGES: tuple[int, int] = (0, 59)
#: benefit bands of the main plan: (first age, last age, benefit in CNY), ages inclusive
BENEFIT_BANDS: tuple[tuple[int, int, float], ...] = ((0, 39, 300_000.0), (40, 59, 100_000.0))
#: the benefit bands as an age schedule ``(last age, benefit)``, the last band open-ended
BENEFIT_SCHEDULE: tuple[tuple[int, float], ...] = tuple(
    (hi if i < len(BENEFIT_BANDS) - 1 else 10**6, b) for i, (_, hi, b) in enumerate(BENEFIT_BANDS)
)

# ----------------------------------------------------------------------------- execution
#: the engines the exposure tasks can run on (``--engine`` / ``[run] engine``); the first is the default
ENGINES = ("local", "threads", "processes", "dask")

# ----------------------------------------------------------------------------- plan design
#: target coefficient of variation of one sharing period's share (10 %: about 100 expected claims a
#: period with one benefit, CV ~ 1 / sqrt(expected claims)); plan design, not credibility
TARGET_SHARE_CV = 0.10

# ----------------------------------------------------------------------------- credibility
#: probability p of the limited-fluctuation full-credibility standard
CREDIBILITY_PROBABILITY = 0.90
#: tolerance k (relative) of the limited-fluctuation full-credibility standard
CREDIBILITY_TOLERANCE = 0.05


def full_credibility_standard(p: float = CREDIBILITY_PROBABILITY, k: float = CREDIBILITY_TOLERANCE,
                              cv: float = 0.0) -> float:
    """Claims needed for full credibility (limited fluctuation).

    Parameters
    ----------
    p : float
        Probability that the observed claims lie within ``k`` of their mean.
    k : float
        Relative tolerance.
    cv : float
        Coefficient of variation of the claim size (0 for a fixed benefit).

    Returns
    -------
    float

    Notes
    -----
    n_F = (z / k)^2 (1 + cv^2) with z = Phi^{-1}((1 + p) / 2).
    With p = 0.90 and k = 0.05: (1.644854 / 0.05)^2 = 1,082.2.
    """
    from statistics import NormalDist  # here: statistics (and fractions) are not loaded at start-up

    z = NormalDist().inv_cdf((1.0 + p) / 2.0)
    return (z / k) ** 2 * (1.0 + cv * cv)


#: the default full-credibility standard, (z_0.95 / 0.05)^2 = 1,082.2 claims
FULL_CREDIBILITY_CLAIMS: float = full_credibility_standard()


# ----------------------------------------------------------------------------- conversions
def periods_per_year(sharing_days: Sequence[int] = SHARING_DAYS) -> int:
    """Sharing periods per year of a calendar sharing on ``sharing_days`` of every month.

    Notes
    -----
    periods_per_year = 12 x len(sharing_days).
    """
    return MONTHS_PER_YEAR * len(sharing_days)


def days_to_periods(days: float, periods_per_year: float) -> int:
    """A duration in days as a whole number of sharing periods (nearest; halves round to even).

    Parameters
    ----------
    days : float
        Duration in days (waiting period, reporting lag).
    periods_per_year : float
        Sharing periods per year (see :func:`periods_per_year`).

    Returns
    -------
    int

    Notes
    -----
    periods = round(days x periods_per_year / 365.25). The 90-day waiting period is
    3 monthly periods or 6 half-monthly ones; the 30-day lag 1 or 2.
    """
    return int(round(float(days) * float(periods_per_year) / DAYS_PER_YEAR))


def per_month(per_period: Any, periods_per_year: Any) -> Any:
    """An amount per sharing period as an amount per month: x x periods_per_year / 12.

    Works on numbers, numpy arrays and polars expressions alike.

    Notes
    -----
    x_month = x_period x periods_per_year / 12 (a half-monthly calendar: twice the period's share).
    """
    return per_period * periods_per_year / MONTHS_PER_YEAR


def per_year(per_period: Any, periods_per_year: Any) -> Any:
    """An amount per sharing period as an amount per year: x x periods_per_year.

    Notes
    -----
    x_year = x_period x periods_per_year (what a member present all year pays at a constant share).
    """
    return per_period * periods_per_year


def per_claimant_cap_scale(members: float, design_members: float = PER_CLAIMANT_CAP_DESIGN_MEMBERS) -> float:
    """Factor that carries a per-claimant cap designed for ``design_members`` to a platform of ``members``.

    Parameters
    ----------
    members : float
        Members of the platform the rule is applied to (e.g. a demo's peak membership).
    design_members : float
        Members of the platform the cap was designed for (default 10^8, Xianghubao).

    Returns
    -------
    float

    Notes
    -----
    The cap c limits the members' payment for one claim to c x N; keeping that payment the same
    on a platform of N' members needs c' = c x N / N', so the factor is N / N' (0.1 CNY at 10^8
    members is 10 CNY at 10^6).
    """
    if not members > 0:
        raise ValueError(f"members: must be positive, got {members!r}")
    return float(design_members) / float(members)


def days_to_years(days: float) -> float:
    """Years of ``days`` days: days / 365.25."""
    return float(days) / DAYS_PER_YEAR


__all__ = [
    "ANNUAL_CAP_CNY", "BENEFIT_BANDS", "BENEFIT_SCHEDULE", "CREDIBILITY_PROBABILITY", "CREDIBILITY_TOLERANCE",
    "DAYS_PER_YEAR", "ELIGIBLE_AGES", "FEE", "FULL_CREDIBILITY_CLAIMS", "MONTHS_PER_YEAR", "PER_CLAIMANT_CAP_CNY",
    "PER_CLAIMANT_CAP_DESIGN_MEMBERS", "REPORTING_LAG_DAYS", "SHARING_DAYS", "TARGET_SHARE_CV", "WAITING_DAYS",
    "days_to_periods", "days_to_years", "full_credibility_standard", "per_claimant_cap_scale", "per_month", "per_year",
    "periods_per_year",
]
