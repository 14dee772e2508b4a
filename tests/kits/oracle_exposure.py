"""Slow day-by-day oracle of the exposure core: docs/domain.md section 4 read literally.

Python loops over members and days; only for small test data.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict

import polars as pl

ONE = dt.timedelta(days=1)


def birthday_in(birth: dt.date, year: int) -> dt.date:
    """The birthday in ``year``; 29 February falls on 1 March in common years."""
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return dt.date(year, 3, 1)
    return dt.date(year, birth.month, birth.day)


def age_on(birth: dt.date, d: dt.date) -> int:
    """Age last birthday: the number of birthdays after birth up to and including d."""
    a = d.year - birth.year
    if birthday_in(birth, d.year) > d:
        a -= 1
    return a


def month_boundary(join: dt.date, k: int) -> dt.date:
    """The k-th month boundary after join: same day-of-month, or the month's last day."""
    mi = join.year * 12 + join.month - 1 + k
    y, m = divmod(mi, 12)
    m += 1
    return dt.date(y, m, min(join.day, calendar.monthrange(y, m)[1]))


def duration_on(join: dt.date, d: dt.date) -> int:
    """Completed months since join on day d."""
    k = 0
    while month_boundary(join, k + 1) <= d:
        k += 1
    return k


def period_of(d: dt.date, period: str) -> dt.date:
    if period == "month":
        return dt.date(d.year, d.month, 1)
    if period == "quarter":
        return dt.date(d.year, (d.month - 1) // 3 * 3 + 1, 1)
    return dt.date(d.year, 1, 1)


def band_label(dur: int, edges: tuple[int, ...]) -> str:
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        if hi is None:
            return f"{lo}+"
        if dur < hi:
            return f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}"
    raise AssertionError("unreachable")


def oracle(members: pl.DataFrame, claims: pl.DataFrame, *, start, end, period="month", waiting_days=90,
           terminate_on_claim=True, by=("age", "sex"), duration_bands=(0, 3, 6, 12, 24)):
    """Return (cells, reasons) where reasons maps claim_id -> reason or None (used)."""
    by = list(by)
    w = dt.timedelta(days=waiting_days)
    claims_of = defaultdict(list)
    for c in claims.iter_rows(named=True):
        claims_of[c["member_id"]].append(c)
    cells: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0])
    reasons: dict[str, str | None] = {}

    def shares(m, d):
        return m["join_date"] <= d and (m["exit_date"] is None or d < m["exit_date"])

    def key(m, d):
        out = [period_of(d, period)]
        for b in by:
            if b == "age":
                out.append(age_on(m["birth_date"], d))
            elif b == "duration":
                out.append(duration_on(m["join_date"], d))
            elif b == "duration_band":
                out.append(band_label(duration_on(m["join_date"], d), tuple(duration_bands)))
            else:
                out.append(m[b])
        return tuple(out)

    for m in members.iter_rows(named=True):
        first_eligible = None
        for c in sorted(claims_of.get(m["member_id"], []), key=lambda c: c["event_date"]):
            e = c["event_date"]
            if e < m["join_date"]:
                reasons[c["claim_id"]] = "before_join"
            elif e < m["join_date"] + w:
                reasons[c["claim_id"]] = "in_waiting_period"
            elif not shares(m, e):
                reasons[c["claim_id"]] = "after_exit"
            elif terminate_on_claim and first_eligible is not None and first_eligible < e:
                reasons[c["claim_id"]] = "after_first_claim"
            else:
                if first_eligible is None:
                    first_eligible = e
                if start <= e <= end:
                    reasons[c["claim_id"]] = None
                    cell = cells[key(m, e)]
                    cell[2] += 1
                    cell[3] += c["amount"]
                else:
                    reasons[c["claim_id"]] = "outside_study"
        d = start
        while d <= end:
            if shares(m, d):
                cell = cells[key(m, d)]
                cell[1] += 1
                eligible_before = terminate_on_claim and first_eligible is not None and first_eligible < d
                if d >= m["join_date"] + w and not eligible_before:
                    cell[0] += 1
            d += ONE
    rows = [(*k, v[0], v[1], v[2], v[3]) for k, v in cells.items() if v[1] > 0]
    names = ["period", *by, "exposure_days", "sharing_days", "claims", "amount"]
    df = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    return df.sort(["period", *by], nulls_last=True), reasons
