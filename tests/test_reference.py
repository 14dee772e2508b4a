"""engine.data.reference: the shipped CI2020 basis read back against the CSV (plain csv module) and the
published age ratios quoted in docs/reference-data.md."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.data.reference import reference_basis, reference_dir, reference_provenance

CSV = Path(__file__).resolve().parents[1] / "models" / "reference" / "ci2020.csv"


def _csv_rows() -> list[dict[str, str]]:
    with CSV.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("table", ["CI1", "CI2", "CI3", "CI4", "ci4"])
def test_every_table_equals_the_csv_per_mille(table) -> None:
    rows = _csv_rows()
    got = reference_basis("ci2020", table)
    assert got.height == 2 * len(rows) == 212
    assert got.columns == ["age", "sex", "rate"]
    assert got["age"].min() == 0 and got["age"].max() == 105
    d = {(a, s): v for a, s, v in got.iter_rows()}
    t = table.upper()
    for r in rows:
        age = int(r["age"])
        assert d[(age, "M")] == pytest.approx(float(r[f"{t}_male_permille"]) / 1000.0, rel=1e-15)
        assert d[(age, "F")] == pytest.approx(float(r[f"{t}_female_permille"]) / 1000.0, rel=1e-15)


def test_published_age_ratios_of_ci4() -> None:
    """README: CI4 age 60 / age 20 = 39x male, 31x female; age 80 / age 20 = 156x / 124x."""
    d = {(a, s): v for a, s, v in reference_basis("ci2020", "CI4").iter_rows()}
    assert round(d[(60, "M")] / d[(20, "M")]) == 39
    assert round(d[(60, "F")] / d[(20, "F")]) == 31
    assert round(d[(80, "M")] / d[(20, "M")]) == 156
    assert round(d[(80, "F")] / d[(20, "F")]) == 124


def test_errors_and_provenance() -> None:
    with pytest.raises(ConfigError, match="basis 'cl2010' is unknown"):
        reference_basis("cl2010")
    with pytest.raises(ConfigError, match="table 'CI9' is unknown"):
        reference_basis("ci2020", "CI9")
    assert (reference_dir() / "ci2020.csv").exists()
    prov = reference_provenance("ci2020")
    assert {"source", "units", "tables"} <= set(prov)
