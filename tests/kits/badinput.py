"""Shared kit of the bad-input matrix (tests/test_bad_inputs*.py): a clean base platform,
the Ctx that writes corrupted inputs and builds CLI argv, and the one-error-line checks."""


from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.cli.main import main

D = dt.date
AS_OF = "2022-06-30"  # after the last approval of the generated platforms


# --------------------------------------------------------------------------- base data
@pytest.fixture(scope="module")
def base() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A small clean synthetic platform (members, claims)."""
    from engine.synth import generate

    plat = generate(3000, seed=11, level=4.0)
    return plat.members, plat.claims


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A platform large enough for the whole ``fentan run`` pipeline (written once)."""
    from engine.synth import generate

    d = tmp_path_factory.mktemp("big")
    plat = generate(20000, seed=1, level=3.0)
    plat.members.write_parquet(d / "members.parquet")
    plat.claims.write_parquet(d / "claims.parquet")
    return d / "members.parquet", d / "claims.parquet"


@dataclass
class Case:
    """What a kind runs and what it expects."""

    argv: list[str]
    error: tuple[str, ...] = ()  # needles of the one stderr line (an error kind)
    aside: dict[str, dict[str, int]] | None = None  # expected set-aside counts (a working kind)
    check: Callable[[Path], None] | None = None  # extra checks on the outputs of a working kind
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table (for the account)


class Ctx:
    """Builds the inputs of one kind inside ``tmp``."""

    def __init__(self, tmp: Path, members: pl.DataFrame, claims: pl.DataFrame, big: Any = None) -> None:
        self.tmp, self.m, self.c, self._big = tmp, members, claims, big
        self.rows: dict[str, int] = {}

    # ---- files
    def write(self, df: pl.DataFrame, name: str, role: str | None = None) -> str:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(p)
        if role:
            self.rows[role] = self.rows.get(role, 0) + df.height
        return str(p)

    def write_csv(self, df: pl.DataFrame, name: str, role: str | None = None,
                  edit: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> str:
        """Write ``df`` as CSV (ISO dates); ``edit`` changes its text columns first (a bad value)."""
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        text = df.with_columns(pl.all().cast(pl.String))
        (edit(text) if edit else text).write_csv(p)
        if role:
            self.rows[role] = self.rows.get(role, 0) + df.height
        return str(p)

    @staticmethod
    def text_at(col: str, row: int, value: str | None) -> Callable[[pl.DataFrame], pl.DataFrame]:
        """An ``edit`` for :meth:`write_csv`: the text of ``col`` at 0-based ``row`` becomes ``value``."""
        return lambda df: df.with_columns(
            pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, dtype=pl.String)).otherwise(pl.col(col)).alias(col))

    def parts(self, dfs: list[pl.DataFrame], name: str, role: str, key: str = "part") -> str:
        for i, df in enumerate(dfs):
            self.write(df, f"{name}/{key}={i + 1}/data.parquet", role)
        return str(self.tmp / name)

    # ---- rows
    def free_rows(self, k: int) -> list[int]:
        """Indices of ``k`` members without claims (corrupting them leaves every claim valid)."""
        claimants = self.c["member_id"].implode()
        idx = self.m.with_row_index("_i").filter(~pl.col("member_id").is_in(claimants))["_i"]
        return idx.head(k).to_list()

    def claimant_row(self) -> int:
        """Index of a member with exactly one claim."""
        one = self.c.group_by("member_id").len().filter(pl.col("len") == 1)["member_id"].sort()[0]
        return int(self.m.with_row_index("_i").filter(pl.col("member_id") == one)["_i"][0])

    @staticmethod
    def set_rows(df: pl.DataFrame, rows: list[int], **values: Any) -> pl.DataFrame:
        hit = pl.int_range(pl.len()).is_in(rows)
        return df.with_columns(
            [pl.when(hit).then(pl.lit(v, dtype=df.schema[c])).otherwise(pl.col(c)).alias(c) for c, v in values.items()]
        )

    def add_claims(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        full = []
        for i, r in enumerate(rows):
            row = {"claim_id": f"X{i:04d}", "member_id": self.m["member_id"][self.free_rows(1)[0]],
                   "event_date": D(2020, 6, 1), "amount": 100_000.0, "approved_date": D(2020, 8, 1), "cause": "cancer"}
            row.update(r)
            full.append(row)
        return pl.concat([self.c, pl.DataFrame(full, schema=self.c.schema)])

    # ---- commands
    def validate(self, members: pl.DataFrame | str | None = None, claims: pl.DataFrame | str | None = None,
                 *extra: str) -> list[str]:
        mp = members if isinstance(members, str) else self.write(self.m if members is None else members, "members.parquet", "members")
        cp = claims if isinstance(claims, str) else self.write(self.c if claims is None else claims, "claims.parquet", "claims")
        return ["validate", "--members", mp, "--claims", cp, "--out", str(self.tmp / "out"), "--quiet",
                "--as-of", AS_OF, *extra]

    def exposure(self, members: pl.DataFrame | str | None = None, claims: pl.DataFrame | str | None = None,
                 *extra: str, start: str = "2019-01-01", end: str = "2021-12-31") -> list[str]:
        mp = members if isinstance(members, str) else self.write(self.m if members is None else members, "members.parquet", "members")
        cp = claims if isinstance(claims, str) else self.write(self.c if claims is None else claims, "claims.parquet", "claims")
        return ["exposure", "--members", mp, "--claims", cp, "--start", start, "--end", end,
                "--out", str(self.tmp / "cells.parquet"), "--quiet", "--as-of", AS_OF, *extra]

    def config(self, text: str = "", members: str | None = None, claims: str | None = None, big: bool = False) -> str:
        if big:
            members, claims = (str(p) for p in self._big)
        members = members or self.write(self.m, "members.parquet", "members")
        claims = claims or self.write(self.c, "claims.parquet", "claims")
        body = f'[data]\nmembers = "{members}"\nclaims = "{claims}"\nas_of = {AS_OF}\n{text}'
        if "[projection]" not in text:
            body += "\n[projection]\nscenarios = 20\nhorizon = 12\n"
        if "[output]" not in text:
            body += "\n[output]\nreport = false\nmodels = false\n"
        if "[segmentation]" not in text:
            body += "\n[segmentation]\nmin_claims = 50.0\n"
        p = self.tmp / "run.toml"
        p.write_text(body, encoding="utf-8")
        return str(p)

    def run(self, config: str, *extra: str) -> list[str]:
        return ["run", config, "--out", str(self.tmp / "run-out"), "--quiet", *extra]




# --------------------------------------------------------------------------- the matrix
def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str, cmd: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got:\n{err}"
    line = lines[0]
    assert line.startswith(f"fentan {cmd}: error: "), line
    assert "internal error" not in line and "Traceback" not in line
    return line
