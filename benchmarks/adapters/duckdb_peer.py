"""DuckDB as a peer of ``fentan exposure``: one SQL query over the Parquet files, written as well as we can.

The query computes the same cells as ``fentan exposure --by age,sex`` (monthly periods x attained
age x sex; exposure and sharing days, claims, amount) from clean members and claims, without
expanding members into days or months:

* each member's sharing interval ``[lo, hi]`` = ``[max(join, start), min(exit - 1, end)]`` and
  the day cover starts, ``ex_from = max(join + waiting, start)``; cover ending with the first
  eligible claim is a **negative at-risk interval** ``[max(first claim + 1, ex_from), hi]`` for the
  few claimants (so the member scan needs no join);
* **events**: +1 at ``lo`` (at the age on ``lo``), +1 at-risk at ``ex_from``, -1 the day after
  ``hi`` (at the age on ``hi``), and at each birthday inside ``(lo, hi]`` one "move" row (members
  passing from age a - 1 to a; at risk too when the birthday is after ``ex_from``). A member has at
  most one birthday per calendar year, so the birthdays are tried in the years of ``lo`` .. end;
* events are summed per (day, age, sex), the moves unfolded into -1 at a - 1 and +1 at a, zero
  events added at each month start; a **window sum** per (age, sex) in day order gives the members
  sharing and at risk on each segment, and ``count x segment length`` summed per month are the day
  counts;
* the first eligible claims (several on the first day all count) are counted in the cell of their
  event day.

Attained age: age last birthday, a 29 February birthday on 1 March in common years (the fentan
convention). Two ways of writing the member events, both measured: ``union`` (one SELECT per kind
of event, each streaming over the files) and ``lists`` (one list of events per member, unnested in
a single pass); and, instead of events, the closed form ``overlap``: each member's overlap with
each month (a range join to the months), split at the birthday inside the month. DuckDB runs with 2 threads and a memory limit (``MEMORY_LIMIT``). Run as a whole
process (what a user does)::

    python -m benchmarks.adapters.duckdb_peer MEMBERS_DIR CLAIMS.parquet START END WAITING_DAYS OUT.parquet \\
        DAYS_PER_YEAR [union|lists|overlap]

``duckdb`` is in the ``bench`` extra; the engine never imports it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

#: DuckDB's memory limit for the peer (it streams; the limit only caps its buffer pool)
MEMORY_LIMIT = "2GB"

MACROS = """
CREATE OR REPLACE MACRO common(y) AS NOT ((y % 4 = 0 AND y % 100 <> 0) OR y % 400 = 0);
CREATE OR REPLACE MACRO bmd(b, y) AS CASE WHEN month(b) = 2 AND day(b) = 29 AND common(y) THEN 301 ELSE month(b) * 100 + day(b) END;
CREATE OR REPLACE MACRO bday(b, y) AS CASE
    WHEN month(b) = 2 AND day(b) = 29 AND common(y) THEN make_date(y, 3, 1) ELSE make_date(y, month(b), day(b)) END;
CREATE OR REPLACE MACRO age_on(b, d) AS year(d) - year(b) - CASE WHEN month(d) * 100 + day(d) < bmd(b, year(d)) THEN 1 ELSE 0 END;
"""

QUERY = """
WITH m AS NOT MATERIALIZED (
    SELECT member_id, birth_date AS b, sex, join_date AS j, exit_date AS x FROM read_parquet('{members}')
),
c AS MATERIALIZED (  -- eligible claims (few), with their member's dates
    SELECT cl.member_id, cl.event_date AS ev, cl.amount, m.b, m.sex, m.j, m.x
    FROM read_parquet('{claims}') cl JOIN m USING (member_id)
    WHERE cl.event_date >= m.j + {w} AND (m.x IS NULL OR cl.event_date < m.x)
),
first AS MATERIALIZED (
    SELECT member_id, any_value(b) AS b, any_value(sex) AS sex, any_value(j) AS j, any_value(x) AS x, min(ev) AS fc
    FROM c GROUP BY member_id
),
iv AS NOT MATERIALIZED (  -- sharing [lo, hi], at risk from ex_from; wsh, wex: +1/-1 weights
    SELECT b, sex, greatest(j, DATE '{start}') AS lo, least(coalesce(x - 1, DATE '{end}'), DATE '{end}') AS hi,
           greatest(j + {w}, DATE '{start}') AS ex_from, 1 AS wsh, 1 AS wex FROM m
    UNION ALL  -- claimants: no cover from the day after the first eligible claim
    SELECT b, sex, greatest(fc + 1, j + {w}, DATE '{start}'), least(coalesce(x - 1, DATE '{end}'), DATE '{end}'),
           greatest(fc + 1, j + {w}, DATE '{start}'), 0, -1 FROM first
),
ev AS (__EV__),
agg AS (SELECT d, age, sex, sum(dsh) AS dsh, sum(dex) AS dex, sum(msh) AS msh, sum(mex) AS mex FROM ev GROUP BY ALL),
keys AS (SELECT DISTINCT age, sex FROM agg UNION SELECT DISTINCT age - 1, sex FROM agg WHERE msh <> 0 OR mex <> 0),
ticks AS (  -- month starts and the day after the study: no segment crosses a month
    SELECT unnest(range(DATE '{start_month}', DATE '{end}' + 1, INTERVAL 1 MONTH))::DATE AS d UNION ALL SELECT DATE '{end}' + 1
),
allev AS (  -- moves unfolded: +1 at the new age, -1 at the old one
    SELECT d, age, sex, dsh + msh AS dsh, dex + mex AS dex FROM agg
    UNION ALL SELECT d, age - 1, sex, -msh, -mex FROM agg WHERE msh <> 0 OR mex <> 0
    UNION ALL SELECT greatest(t.d, DATE '{start}'), k.age, k.sex, 0, 0 FROM keys k, ticks t
),
seg AS (
    SELECT d, age, sex, sum(dsh) OVER w AS n_sh, sum(dex) OVER w AS n_ex,
           lead(d) OVER (PARTITION BY age, sex ORDER BY d) - d AS len
    FROM (SELECT d, age, sex, sum(dsh) AS dsh, sum(dex) AS dex FROM allev GROUP BY ALL)
    WINDOW w AS (PARTITION BY age, sex ORDER BY d ROWS UNBOUNDED PRECEDING)
),
days AS (
    SELECT date_trunc('month', d)::DATE AS period, age, sex,
           sum(n_ex * len)::BIGINT AS exposure_days, sum(n_sh * len)::BIGINT AS sharing_days
    FROM seg WHERE d <= DATE '{end}' GROUP BY ALL
),
cc AS (  -- first eligible claims in the study, in the cell of their event day
    SELECT date_trunc('month', c.ev)::DATE AS period, age_on(c.b, c.ev) AS age, c.sex,
           count(*)::BIGINT AS claims, sum(c.amount) AS amount
    FROM c JOIN first f ON c.member_id = f.member_id AND c.ev = f.fc
    WHERE c.ev BETWEEN DATE '{start}' AND DATE '{end}' GROUP BY ALL
)
SELECT days.period, days.age, days.sex, exposure_days, exposure_days / {dpy} AS exposure_years,
       sharing_days, sharing_days / {dpy} AS sharing_years,
       coalesce(cc.claims, 0) AS claims, coalesce(cc.amount, 0.0) AS amount
FROM days LEFT JOIN cc USING (period, age, sex)
WHERE sharing_days > 0
ORDER BY ALL
"""

#: member events, variant "union": one SELECT per kind of event (each streams over the files)
EV_UNION = """
    SELECT lo AS d, age_on(b, lo) AS age, sex, wsh AS dsh, CASE WHEN ex_from = lo THEN wex ELSE 0 END AS dex,
           0 AS msh, 0 AS mex FROM iv WHERE lo <= hi
    UNION ALL SELECT ex_from, age_on(b, ex_from), sex, 0, wex, 0, 0 FROM iv WHERE ex_from > lo AND ex_from <= hi
    UNION ALL SELECT hi + 1, age_on(b, hi), sex, -wsh, CASE WHEN ex_from <= hi THEN -wex ELSE 0 END, 0, 0
        FROM iv WHERE lo <= hi
__BIRTHDAYS__"""

#: the birthday in calendar year year(lo) + k, if inside (lo, hi]: members move up one age
BIRTHDAY_UNION = """    UNION ALL SELECT n, y - year(b), sex, 0, 0, wsh, CASE WHEN n > ex_from THEN wex ELSE 0 END
        FROM (SELECT *, year(lo) + __K__ AS y, bday(b, year(lo) + __K__) AS n FROM iv WHERE lo <= hi) WHERE n > lo AND n <= hi"""

#: member events, variant "lists": one pass over the files, each member's events as a list, unnested
EV_LISTS = """
    SELECT e.d AS d, e.a AS age, sex, e.sh AS dsh, e.ex AS dex, e.msh AS msh, e.mex AS mex FROM (
      SELECT sex, unnest(list_filter([
        {'d': lo, 'a': age_on(b, lo), 'sh': wsh, 'ex': CASE WHEN ex_from = lo THEN wex ELSE 0 END, 'msh': 0, 'mex': 0},
        CASE WHEN ex_from > lo AND ex_from <= hi THEN {'d': ex_from, 'a': age_on(b, ex_from), 'sh': 0, 'ex': wex, 'msh': 0, 'mex': 0} END,
        {'d': hi + 1, 'a': age_on(b, hi), 'sh': -wsh, 'ex': CASE WHEN ex_from <= hi THEN -wex ELSE 0 END, 'msh': 0, 'mex': 0},
        __BIRTHDAYS__], lambda e: e IS NOT NULL)) AS e
      FROM iv WHERE lo <= hi)
"""

BIRTHDAY_LISTS = """CASE WHEN bday(b, year(lo) + __K__) > lo AND bday(b, year(lo) + __K__) <= hi THEN {'d': bday(b, year(lo) + __K__),
          'a': year(lo) + __K__ - year(b), 'sh': 0, 'ex': 0, 'msh': wsh, 'mex': CASE WHEN bday(b, year(lo) + __K__) > ex_from THEN wex ELSE 0 END} END"""

#: the closed form instead of events, variant "overlap": each member's overlap with each month of the
#: study (a range join), split at the birthday inside the month
OVERLAP = """mo AS (SELECT ms::DATE AS ms, (ms + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE AS me
        FROM (SELECT unnest(range(DATE '{start_month}', DATE '{end}' + 1, INTERVAL 1 MONTH)) AS ms)),
ov AS (  -- days a .. z of the month in [lo, hi]; at risk from a2; bd: the birthday in the month's year
    SELECT ms AS period, sex, wsh, wex, a, z, greatest(ex_from, a) AS a2, age_on(b, a) AS age0, bday(b, year(ms)) AS bd
    FROM (SELECT iv.*, mo.ms, greatest(lo, mo.ms) AS a, least(hi, mo.me) AS z
          FROM iv JOIN mo ON mo.ms <= iv.hi AND mo.me >= iv.lo WHERE lo <= hi)
),
parts AS (  -- the days before the birthday (or all), at age0; the days from it, at age0 + 1
    SELECT period, sex, age0 AS age, wsh * ((CASE WHEN bd > a AND bd <= z THEN bd - 1 ELSE z END) - a + 1) AS sh,
           wex * greatest(0, (CASE WHEN bd > a AND bd <= z THEN bd - 1 ELSE z END) - a2 + 1) AS ex FROM ov
    UNION ALL
    SELECT period, sex, age0 + 1, wsh * (z - bd + 1), wex * greatest(0, z - greatest(bd, a2) + 1)
    FROM ov WHERE bd > a AND bd <= z
),
days AS (SELECT period, age, sex, sum(ex)::BIGINT AS exposure_days, sum(sh)::BIGINT AS sharing_days FROM parts GROUP BY ALL),
"""

VARIANTS = ("union", "lists", "overlap")


def exposure_sql(members: str, claims: str, start: str, end: str, waiting_days: int, days_per_year: float,
                 variant: str = "union") -> str:
    """The query for members under ``members`` (a glob) and claims ``claims``; keys period, age, sex."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: must be one of {', '.join(VARIANTS)}, got {variant!r}")
    query = QUERY
    if variant == "overlap":  # no events: the closed-form day counts replace everything up to the claims
        query = QUERY[:QUERY.index("ev AS (__EV__)")] + OVERLAP + QUERY[QUERY.index("cc AS ("):]
    years = int(end[:4]) - int(start[:4]) + 1  # calendar years a birthday can fall in
    one, sep = (BIRTHDAY_UNION, "\n") if variant == "union" else (BIRTHDAY_LISTS, ",\n        ")
    birthdays = sep.join(one.replace("__K__", str(k)) for k in range(years))
    ev = (EV_UNION if variant == "union" else EV_LISTS).replace("__BIRTHDAYS__", birthdays)
    return query.format(members=members, claims=claims, dpy=repr(float(days_per_year)), start=start, end=end,
                        w=int(waiting_days), start_month=start[:8] + "01").replace("__EV__", ev)


def _connect(threads: int) -> Any:
    """A DuckDB connection with ``threads`` threads, :data:`MEMORY_LIMIT` and the query's macros."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute(MACROS)
    return con


def run(members_dir: str, claims: str, start: str, end: str, waiting_days: int, out: str, days_per_year: float,
        threads: int = 2, variant: str = "union") -> None:
    """Compute the cells with DuckDB and write them to ``out`` (Parquet)."""
    con = _connect(threads)
    sql = exposure_sql(str(Path(members_dir) / "*.parquet"), claims, start, end, waiting_days, days_per_year, variant)
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")


def exposure(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Peer of ``python -m benchmarks.run``: the ``union`` query on the suite's clean members and claims, in this
    process (2 threads, :data:`MEMORY_LIMIT`), keys period, age and sex (the query's).

    Checked untimed against fentan's cells of the same data (``cells.parquet``, by the suite's keys)
    summed to period, age and sex (cells are additive): keys, day counts and claims exact, amounts to
    1e-12 relative.
    """
    import polars as pl

    from benchmarks.adapters.common import study
    from benchmarks.bench_cli_exposure import compare_cells
    from engine.conventions import DAYS_PER_YEAR

    kw = study(cfg)
    if kw["period"] != "month":
        raise ValueError(f"the DuckDB query sums months, the suite's period is {kw['period']!r}")
    con = _connect(2)
    sql = exposure_sql(str(data / "members_clean.parquet"), str(data / "claims_clean.parquet"), str(kw["start"]),
                       str(kw["end"]), int(kw["waiting_days"]), DAYS_PER_YEAR)
    t0 = time.perf_counter()
    cells = con.sql(sql).pl()  # a relation executed into polars (DuckDB 1.1 and later)
    wall = time.perf_counter() - t0
    keys = ["period", "age", "sex"]
    ref = (pl.read_parquet(data / "cells.parquet").group_by(keys)
           .agg(pl.col("exposure_days", "sharing_days", "claims").cast(pl.Int64).sum(), pl.col("amount").sum()))
    same = compare_cells(ref, cells, keys)
    return {"wall_s": wall, "cells": cells.height, "exposure_days": int(cells["exposure_days"].sum()),
            "claims": int(cells["claims"].sum()), "keys": ", ".join(keys), "variant": "union", "identical": True,
            "max_rel_amount_diff": same["max_rel_amount_diff"]}


if __name__ == "__main__":
    a = sys.argv[1:]
    run(a[0], a[1], a[2], a[3], int(a[4]), a[5], float(a[6]), variant=a[7] if len(a) > 7 else "union")
