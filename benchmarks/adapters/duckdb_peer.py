"""DuckDB as a peer of ``fentan exposure``: one SQL query, written as well as we can.

The query computes the same cells as fentan (monthly periods x attained age x sex x the
static factors; exposure and sharing days, claims, amount) from clean members and claims:

* each member's sharing interval ``[s0, s1]`` and at-risk interval ``[r0, e1]`` (after the
  waiting period, up to the first eligible claim);
* **events** with a +1/-1 count at the start and the day after the end of each interval, and
  at each birthday inside it (-1 at the old age, +1 at the new), plus zero events at every
  month start (so no segment crosses a month) and the day after the study;
* a **window sum** of the events per key in day order gives the members sharing and at risk
  on each segment between two events; ``count x segment length`` summed per month and key
  are the day counts;
* eligible first claims counted in the cell of their event day.

Two ways of writing the events, both measured: ``union`` (one SELECT per kind of event, each
streaming over the files; the age at an event is the age at ``s0`` plus the birthdays passed,
so it is computed once per member) and ``lists`` (one list of events per member, unnested in a
single pass).

Attained age: age last birthday, a 29 February birthday on 1 March in common years (the
fentan convention). Run as a whole process (what a user does)::

    python -m benchmarks.adapters.duckdb_peer MEMBERS_DIR CLAIMS.parquet START END WAITING_DAYS OUT.parquet \\
        DAYS_PER_YEAR [FACTOR,...] [union|lists]

``duckdb`` is in the ``bench`` extra; the engine never imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

MACROS = """
CREATE OR REPLACE MACRO common(y) AS NOT ((y % 4 = 0 AND y % 100 <> 0) OR y % 400 = 0);
CREATE OR REPLACE MACRO bday(b, y) AS CASE
    WHEN month(b) = 2 AND day(b) = 29 AND common(y) THEN make_date(y, 3, 1) ELSE make_date(y, month(b), day(b)) END;
CREATE OR REPLACE MACRO age_on(b, d) AS year(d) - year(b) - CASE WHEN month(d) * 100 + day(d) <
    CASE WHEN month(b) = 2 AND day(b) = 29 AND common(year(d)) THEN 301 ELSE month(b) * 100 + day(b) END
    THEN 1 ELSE 0 END;
"""

#: the events, variant "union": one SELECT per kind of event (each streams over the files). Ages are
#: not recomputed per event: the age at s0 plus the birthdays n1, n2, ... after s0 passed by then
EV_UNION = """
bi AS NOT MATERIALIZED (
    SELECT *, {later} FROM (
        SELECT *, age_on(b, s0) AS a0,
               CASE WHEN bday(b, year(s0)) > s0 THEN bday(b, year(s0)) ELSE bday(b, year(s0) + 1) END AS n1
        FROM iv)
),
ev AS (  -- events: +1/-1 at interval starts and the day after their ends, -1/+1 at birthdays
    SELECT s0 AS d, a0 AS age, sex, {factors} 1 AS dsh, 0 AS dex FROM bi
    UNION ALL SELECT s1 + 1, a0 + {passed_s1}, sex, {factors} -1, 0 FROM bi
    UNION ALL SELECT r0, a0 + {passed_r0}, sex, {factors} 0, 1 FROM bi WHERE r0 <= e1
    UNION ALL SELECT e1 + 1, a0 + {passed_e1}, sex, {factors} 0, -1 FROM bi WHERE r0 <= e1
{birthdays}
),
"""

#: the events, variant "lists": one pass over the files, each member's events as a list, unnested
EV_LISTS = """
ev AS (  -- one pass over the members: each member's events as a list, unnested
    SELECT e.d AS d, e.a AS age, sex, {factors} e.sh AS dsh, e.ex AS dex FROM (
        SELECT sex, {factors} unnest(list_concat(
            [{{'d': s0, 'a': age_on(b, s0), 'sh': 1, 'ex': 0}}, {{'d': s1 + 1, 'a': age_on(b, s1), 'sh': -1, 'ex': 0}}],
            CASE WHEN r0 <= e1 THEN [{{'d': r0, 'a': age_on(b, r0), 'sh': 0, 'ex': 1}},
                                     {{'d': e1 + 1, 'a': age_on(b, e1), 'sh': 0, 'ex': -1}}] END,
            flatten(list_transform(  -- birthdays strictly after s0, up to s1: -1 at the old age, +1 at the new
                list_filter(list_transform(range(year(s0), year(s1) + 1), lambda y: bday(b, y)),
                            lambda d: d > s0 AND d <= s1),
                lambda d: [{{'d': d, 'a': age_on(b, d) - 1, 'sh': -1, 'ex': CASE WHEN d > r0 AND d <= e1 THEN -1 ELSE 0 END}},
                           {{'d': d, 'a': age_on(b, d), 'sh': 1, 'ex': CASE WHEN d > r0 AND d <= e1 THEN 1 ELSE 0 END}}]))
        )) AS e
        FROM iv
    )
),
"""

QUERY = """
WITH m AS NOT MATERIALIZED (
    SELECT member_id, birth_date AS b, sex, {factors_sel} join_date AS j, exit_date AS x
    FROM read_parquet('{members}')
),
c AS (  -- eligible claims (few), with their member's keys
    SELECT cl.member_id, cl.event_date AS ev, cl.amount, m.b, m.sex, {mfactors} 1 AS one
    FROM read_parquet('{claims}') cl JOIN m USING (member_id)
    WHERE cl.event_date >= m.j + {w} AND (m.x IS NULL OR cl.event_date < m.x)
),
first AS (SELECT member_id, min(ev) AS fc FROM c GROUP BY member_id),
iv AS NOT MATERIALIZED (
    SELECT m.*, greatest(j, DATE '{start}') AS s0,
           least(coalesce(x - 1, DATE '{end}'), DATE '{end}') AS s1,
           greatest(j + {w}, j, DATE '{start}') AS r0,
           least(coalesce(x - 1, DATE '{end}'), DATE '{end}', coalesce(first.fc, DATE '{end}')) AS e1
    FROM m LEFT JOIN first USING (member_id)
    WHERE greatest(j, DATE '{start}') <= least(coalesce(x - 1, DATE '{end}'), DATE '{end}')
),
{ev}agg AS (SELECT d, age, sex, {factors} sum(dsh) AS dsh, sum(dex) AS dex FROM ev GROUP BY ALL),
keys AS (SELECT DISTINCT {keys} FROM agg),
ticks AS (  -- month starts and the day after the study: no segment crosses a month
    SELECT unnest(range(DATE '{start_month}', DATE '{end}' + 1, INTERVAL 1 MONTH))::DATE AS d
    UNION ALL SELECT DATE '{end}' + 1
),
allev AS (
    SELECT * FROM agg
    UNION ALL SELECT greatest(t.d, DATE '{start}'), k.age, k.sex, {kfactors} 0, 0 FROM keys k, ticks t
),
seg AS (
    SELECT d, age, sex, {factors}
           sum(dsh) OVER w AS n_sh, sum(dex) OVER w AS n_ex,
           lead(d) OVER (PARTITION BY {keys} ORDER BY d) - d AS len
    FROM (SELECT d, age, sex, {factors} sum(dsh) AS dsh, sum(dex) AS dex FROM allev GROUP BY ALL)
    WINDOW w AS (PARTITION BY {keys} ORDER BY d ROWS UNBOUNDED PRECEDING)
),
days AS (
    SELECT date_trunc('month', d)::DATE AS period, age, sex, {factors}
           sum(n_ex * len)::BIGINT AS exposure_days, sum(n_sh * len)::BIGINT AS sharing_days
    FROM seg WHERE d <= DATE '{end}' GROUP BY ALL
),
cc AS (  -- first eligible claims in the study, in the cell of their event day
    SELECT date_trunc('month', c.ev)::DATE AS period, age_on(c.b, c.ev) AS age, c.sex, {cfactors}
           count(*)::BIGINT AS claims, sum(c.amount) AS amount
    FROM c JOIN first USING (member_id)
    WHERE c.ev = first.fc AND c.ev BETWEEN DATE '{start}' AND DATE '{end}'
    GROUP BY ALL
)
SELECT days.period, days.age, days.sex, {dfactors} exposure_days, exposure_days / {dpy} AS exposure_years,
       sharing_days, sharing_days / {dpy} AS sharing_years,
       coalesce(cc.claims, 0) AS claims, coalesce(cc.amount, 0.0) AS amount
FROM days LEFT JOIN cc USING (period, {keys})
WHERE sharing_days > 0
ORDER BY ALL
"""


BIRTHDAY = """    UNION ALL SELECT n{k}, a0 + {age}, sex, {factors} {step}, CASE WHEN n{k} > r0 AND n{k} <= e1 THEN {step} ELSE 0 END
        FROM bi WHERE n{k} <= s1"""


def exposure_sql(members: str, claims: str, start: str, end: str, waiting_days: int, factors: list[str],
                 days_per_year: float, variant: str = "union") -> str:
    """The query for members under ``members`` (a glob), claims ``claims``, keys age, sex and ``factors``.

    A member has at most one birthday per calendar year of the study, so the birthdays are
    ``year(s0) + k`` for k = 0 .. (years in the study - 1): one pair of branches each.
    """
    f = "".join(f"{x}, " for x in factors)
    years = int(end[:4]) - int(start[:4]) + 1
    if variant == "union":  # birthday k (k = 1 .. years) after s0: -1 at age a0 + k - 1, +1 at a0 + k
        birthdays = "\n".join(BIRTHDAY.format(k=k, age=k - 1 + up, step=step, factors=f)
                               for k in range(1, years + 1) for up, step in ((0, -1), (1, 1)))
        later = ", ".join(f"bday(b, year(n1) + {k - 1}) AS n{k}" for k in range(2, years + 1)) or "n1 AS n1_"
        passed = {x: " + ".join(f"(n{k} <= {x})::INT" for k in range(1, years + 1)) for x in ("s1", "r0", "e1")}
        ev = EV_UNION.replace("{birthdays}", birthdays).replace("{later}", later)
        for x, txt in passed.items():
            ev = ev.replace("{passed_" + x + "}", "(" + txt + ")")
    else:
        ev = EV_LISTS
    return QUERY.replace("{ev}", ev).format(
        members=members, claims=claims, dpy=repr(float(days_per_year)), start=start, end=end, w=int(waiting_days), start_month=start[:8] + "01",
        factors=f, factors_sel=f, keys=", ".join(["age", "sex", *factors]),
        kfactors="".join(f"k.{x}, " for x in factors), cfactors="".join(f"c.{x}, " for x in factors), mfactors="".join(f"m.{x}, " for x in factors),
        dfactors="".join(f"days.{x}, " for x in factors),
    )


def run(members_dir: str, claims: str, start: str, end: str, waiting_days: int, out: str, days_per_year: float,
        factors: tuple[str, ...] = (), threads: int = 2, variant: str = "union") -> None:
    """Compute the cells with DuckDB and write them to ``out`` (Parquet)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute(MACROS)
    sql = exposure_sql(str(Path(members_dir) / "*.parquet"), claims, start, end, waiting_days, list(factors), days_per_year, variant)
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")


if __name__ == "__main__":
    a = sys.argv[1:]
    run(a[0], a[1], a[2], a[3], int(a[4]), a[5], float(a[6]), tuple(a[7].split(",")) if len(a) > 7 and a[7] else (),
        variant=a[8] if len(a) > 8 else "union")
