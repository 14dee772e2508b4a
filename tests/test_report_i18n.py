"""The report in Chinese: the catalogue, every text of the report through it, the language option.

``[output] language = "zh"`` or ``--lang zh`` switches every heading, label, caption and table header;
names the user wrote (plans, factors) and the Parquet column names stay unchanged.
"""

from __future__ import annotations

import ast
import json
import re
import string
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.report.i18n import ZH_DIR, missing_keys, t, use_language, zh_catalogue

ROOT = Path(__file__).resolve().parents[1]
CJK = re.compile(r"[\u4e00-\u9fff]")


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_catalogue_files_are_consistent() -> None:
    """Each key once across the files; every translation non-empty, Chinese, with the same placeholders."""
    seen: dict[str, str] = {}
    for f in sorted(ZH_DIR.glob("*.toml")):
        for k, v in tomllib.loads(f.read_text(encoding="utf-8")).items():
            assert k not in seen, f"{k!r} in {seen.get(k)} and {f.name}"
            seen[k] = f.name
            assert isinstance(v, str) and v.strip(), (f.name, k)
            assert _fields(k) == _fields(v), (f.name, k, v)
            assert CJK.search(v) or v == k or not re.search(r"[a-z]{3,}", k), (f.name, k, v)
    assert len(zh_catalogue()) == len(seen)


def _literal_keys() -> set[tuple[str, str]]:
    """(file, text) of every t("literal") call in engine/report (the report's own strings, all branches)."""
    out = set()
    for f in sorted((ROOT / "engine" / "report").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                out.add((f.name, node.args[0].value))
    return out


def test_every_literal_text_of_the_report_is_translated() -> None:
    keys = _literal_keys()
    assert len(keys) > 100  # the scan sees the report's texts
    missing = sorted(f"{f}: {k}" for f, k in keys if k not in zh_catalogue())
    assert missing == []


def test_t_translates_formats_and_records_what_is_missing() -> None:
    missing_keys(clear=True)
    assert t("Row account") == "Row account"
    with use_language("zh"):
        assert t("Row account") == "数据行核对"
        assert t("recommended K = {k}", k=3) == "推荐 K = 3"
        assert t("no such text, {x}", x=1) == "no such text, 1"
    assert missing_keys(clear=True) == ["no such text, {x}"]


class _Texts(HTMLParser):
    """Headings, chart titles, captions, KPI labels, table headers (shown text and data-col) of a report."""

    KINDS = {"h2": "heading", "figcaption": "caption", "th": "header", "nav": "nav"}
    VOID = {"wbr", "br", "meta", "input", "img", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, list[str]]] = []
        self.found: list[tuple[str, str]] = []
        self.cols: list[str] = []
        self.plots: list[dict] = []
        self.lang = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang", "")
        if tag in self.VOID:
            return
        if tag == "th":
            self.cols.append(a.get("data-col", ""))
        cls = a.get("class") or ""
        kind = self.KINDS.get(tag) or {"ct": "chart title", "l": "card label"}.get(cls)
        if tag == "script" and a.get("type") == "application/json":
            kind = "json"
        self.stack.append((kind or "", []))

    def handle_endtag(self, tag):
        if tag in self.VOID or not self.stack:
            return
        kind, parts = self.stack.pop()
        text = "".join(parts).strip()
        if kind == "json":
            self.plots.append(json.loads(text))
        elif kind and text:
            self.found.append((kind, text))

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][1].append(data)


def _labels(fig: dict) -> list[str]:
    lay = fig["layout"]
    out = [lay[ax]["title"]["text"] for ax in ("xaxis", "yaxis", "yaxis2") if ax in lay]
    return out + [tr["name"] for tr in fig["data"] if tr.get("name")]


def test_zh_report_has_no_english_heading_or_label(small_demo, small_demo_zh) -> None:
    """Built in Chinese: no t() text missing from the catalogue; every heading, label, caption and table header is
    Chinese except the names the user wrote (plans, factors); the Parquet column names stay in data-col."""
    assert small_demo_zh.missing == []
    summary = json.loads((small_demo.out / "run" / "summary.json").read_text())["plans"]
    from engine.pipeline.config import load_config

    cfg = load_config(small_demo.out / "demo.toml")
    user = set(summary) | set(cfg.study.factors)  # plan labels and factors, as written
    zh, en = _Texts(), _Texts()
    zh.feed((small_demo_zh.out / "report.html").read_text(encoding="utf-8"))
    en.feed((small_demo.out / "run" / "report.html").read_text(encoding="utf-8"))
    assert zh.lang == "zh-CN" and en.lang == "en"
    assert len(zh.found) == len(en.found) > 50 and zh.cols == en.cols  # same page, other words
    assert {"plan", "members", "rows"} <= set(zh.cols)
    texts = zh.found + [("plot label", s) for fig in zh.plots for s in _labels(fig)]
    english = [(kind, s) for kind, s in texts
               if not CJK.search(s) and s not in user and s.split(" - ")[0] not in user
               and re.search(r"[A-Za-z]{3,}", s)]
    assert english == []
    # the English report shows the English text: the check above is not vacuous
    assert any(s == "Headline answers" for _, s in en.found) and not any(CJK.search(s) for _, s in en.found)


def test_language_is_validated_with_the_configuration(small_demo, tmp_path: Path, capsys) -> None:
    """A bad [output] language or --lang stops before any data is read, naming the key and the choices."""
    from engine.cli.main import main
    from engine.errors import ConfigError
    from engine.pipeline.config import load_config, with_output

    text = (small_demo.out / "demo.toml").read_text()
    bad = tmp_path / "bad.toml"
    assert 'language = "en"' in text  # the resolved configuration records the report's language
    bad.write_text(text.replace('language = "en"', 'language = "fr"', 1))
    assert main(["run", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "output.language" in err and "'en' or 'zh'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    cfg = load_config(small_demo.out / "demo.toml")
    assert with_output(cfg, language="zh", static=True).output.language == "zh"
    with pytest.raises(ConfigError, match=r"output\.language"):
        with_output(cfg, language="fr")
    with pytest.raises(SystemExit):  # argparse: --lang accepts en and zh only
        main(["run", str(small_demo.out / "demo.toml"), "--lang", "fr"])


def _notes(path: Path) -> list[str]:
    """The text of every ``<p class="note">`` paragraph of a report, unescaped."""
    import html as _html

    return [_html.unescape(m) for m in re.findall(r'<p class="note">(.*?)</p>', path.read_text(encoding="utf-8"), re.S)]


def test_engine_messages_keep_their_english_behind_a_translated_lead_in(small_demo, small_demo_zh) -> None:
    """The engine's warnings and its reason for a choice are English in both reports; the Chinese one says so
    (引擎消息（英文原文）) right before each, the English one shows them unchanged."""
    from engine.report.i18n import engine_message

    assert engine_message("x = 1") == "x = 1"
    with use_language("zh"):
        assert engine_message("x = 1") == "引擎消息（英文原文）：x = 1"
    facts = json.loads((small_demo.out / "run" / "summary.json").read_text())["facts"]
    messages = [*facts.get("warnings", []), facts.get("segmentation_choice")]
    messages = [m for m in messages if m]
    assert messages  # the small demo warns (sparse GLM levels, the groups' floor): the check is not vacuous
    zh, en = _notes(small_demo_zh.out / "report.html"), _notes(small_demo.out / "run" / "report.html")
    for m in messages:
        assert [n for n in zh if m in n] and all(f"引擎消息（英文原文）：{m}" in n for n in zh if m in n), m
        assert [n for n in en if m in n] and not any("引擎消息" in n for n in en if m in n), m


def test_engine_notes_in_a_table_get_the_lead_in_in_chinese_only() -> None:
    import polars as pl

    from engine.report.build import engine_notes

    df = pl.DataFrame({"group": [1, 2, 3], "note": ["rates of groups 1 and 2 overlap", None, ""]})
    assert engine_notes(df).equals(df)
    with use_language("zh"):
        got = engine_notes(df)["note"].to_list()
    assert got == ["引擎消息（英文原文）：rates of groups 1 and 2 overlap", None, ""]
    assert engine_notes(df.drop("note")).equals(df.drop("note"))
