"""Report language: English (default) or Chinese, one catalogue.

Every heading, label, caption and table header of the report goes through :func:`t`.
The English text is the key; :func:`zh_catalogue` maps it to Chinese. Names the user wrote
(plans, factors, levels) are never passed through :func:`t`.

Use ``with use_language("zh"): ...`` around the building of a report.

The catalogue is data: every ``engine/report/locale/zh/*.toml`` file maps English text to
Chinese (one file per area of the report); a key defined in two files is an error.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import tomllib
from collections.abc import Iterator
from pathlib import Path

from engine.errors import ConfigError

LANGUAGES: tuple[str, ...] = ("en", "zh")

_LANG: contextvars.ContextVar[str] = contextvars.ContextVar("fentan_report_language", default="en")

#: English text passed to t() in Chinese with no entry in the catalogue (see :func:`missing_keys`)
_MISSING: set[str] = set()

#: the directory of the Chinese catalogue files
ZH_DIR = Path(__file__).parent / "locale" / "zh"


@functools.cache
def zh_catalogue() -> dict[str, str]:
    """English -> Chinese, merged from every ``locale/zh/*.toml`` file (a duplicate key raises)."""
    out: dict[str, str] = {}
    for f in sorted(ZH_DIR.glob("*.toml")):
        for k, v in tomllib.loads(f.read_text(encoding="utf-8")).items():
            if k in out and out[k] != v:
                raise ValueError(f"{f.name}: {k!r} is translated twice, differently")
            out[k] = str(v)
    return out


def check_language(lang: str) -> str:
    """Validate a language code (``"en"`` or ``"zh"``)."""
    if lang not in LANGUAGES:
        raise ConfigError(f"language: {lang!r} is not one of {', '.join(LANGUAGES)}")
    return lang


def current_language() -> str:
    """The language the report is being built in."""
    return _LANG.get()


@contextlib.contextmanager
def use_language(lang: str) -> Iterator[None]:
    """Build everything inside the block in ``lang``."""
    token = _LANG.set(check_language(lang))
    try:
        yield
    finally:
        _LANG.reset(token)


def t(text: str, **fmt: object) -> str:
    """Translate ``text`` into the current language, then ``str.format(**fmt)``.

    Untranslated text falls back to English (a test lists every key missing from the catalogue).
    """
    if _LANG.get() == "zh":
        out = zh_catalogue().get(text)
        if out is None:
            if text not in _zh_values():  # already translated (a header built with t() and shown by a table)
                _MISSING.add(text)
            out = text
    else:
        out = text
    return out.format(**fmt) if fmt else out


@functools.cache
def _zh_values() -> frozenset[str]:
    return frozenset(zh_catalogue().values())


@functools.cache
def _english_by_zh() -> dict[str, str]:
    out: dict[str, str] = {}
    for en, zh in sorted(zh_catalogue().items()):
        out.setdefault(zh, en)
    return out


def english_of(text: str) -> str:
    """The English key of ``text`` when it is a translation in the catalogue (else ``text``).

    A table whose header was built with :func:`t` keeps the English name as its column id
    (``data-col``, the CSV download), the same in every language.
    """
    return _english_by_zh().get(text, text) if _LANG.get() == "zh" else text


def missing_keys(clear: bool = False) -> list[str]:
    """The texts passed to :func:`t` in Chinese that the catalogue lacks (sorted); ``clear`` empties the record."""
    out = sorted(_MISSING)
    if clear:
        _MISSING.clear()
    return out


def engine_message(text: str) -> str:
    """A message the engine wrote (a warning, the reason a step was not computed), shown as written.

    The engine's messages are English in every language (they name keys, columns and options); in Chinese the
    page says so with a translated lead-in, ``引擎消息（英文）：<message>``, instead of leaving English text
    unexplained. Unchanged in English.
    """
    return t("engine message (English): {message}", message=text) if _LANG.get() == "zh" else text


def t_user(text: str) -> str:
    """Text the user may have written (e.g. a report title): translated only when the catalogue has it
    (a default of ours), else kept as written and never recorded as missing."""
    return zh_catalogue().get(text, text) if _LANG.get() == "zh" else text
