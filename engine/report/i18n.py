"""Report language: English (default) or Chinese, one catalogue.

Every heading, label, caption and table header of the report goes through :func:`t`.
The English text is the key; :data:`ZH` maps it to Chinese. Names the user wrote
(plans, factors, levels) are never passed through :func:`t`.

Use ``with use_language("zh"): ...`` around the building of a report.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from engine.errors import ConfigError

LANGUAGES: tuple[str, ...] = ("en", "zh")

_LANG: contextvars.ContextVar[str] = contextvars.ContextVar("fentan_report_language", default="en")

#: English -> Chinese. Add an entry for every user-visible English string passed to ``t``.
ZH: dict[str, str] = {}


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

    Untranslated text falls back to English (a test lists every key missing from ``ZH``).
    """
    out = ZH.get(text, text) if _LANG.get() == "zh" else text
    return out.format(**fmt) if fmt else out
