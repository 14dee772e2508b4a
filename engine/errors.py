"""The one error hierarchy of fentan.

Every user-facing failure raises a subclass of :class:`EngineError`. The
subclasses also inherit :class:`ValueError` (or :class:`OSError` for I/O), so
callers that catch the standard exceptions keep working. The CLI turns any
``EngineError`` into one clear line on stderr and exit code 2.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error fentan raises on purpose."""

    exit_code: int = 2


class DataError(EngineError, ValueError):
    """Input data breaks the data contract (file, column and rule named)."""


class SchemaError(DataError):
    """A required column is missing or has a type that cannot be normalised."""


class InputFileError(EngineError, ValueError):
    """An input path is missing, empty, unreadable or not Parquet."""


class ConfigError(EngineError, ValueError):
    """A configuration (TOML or argument) is invalid; the key is named."""


class ModelError(EngineError, ValueError):
    """A model is used before fitting, or a saved model cannot be loaded."""


class OutputError(EngineError, ValueError):
    """An output location is not writable or already exists without --force."""


class ResourceError(EngineError, ValueError):
    """A run would exceed a documented resource bound (e.g. memory)."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message (its type's name when it has none), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
