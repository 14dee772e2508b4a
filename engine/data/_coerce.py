"""Python API input: pandas frames and ISO text dates accepted wherever a frame or a date is taken.

Every public function or method that takes frames accepts a polars ``DataFrame`` / ``LazyFrame``
or a pandas ``DataFrame`` (converted with :func:`polars.from_pandas`; a list of frames, e.g.
member partitions, element by element; pandas members and claims are also normalised to the
data contract, so their datetime64 columns become dates; in other pandas frames, e.g. cells, a
datetime64 column whose values are all at midnight becomes a date column). Every date argument accepts a :class:`datetime.date`,
ISO text (``"2019-01-01"``), a :class:`datetime.datetime` or pandas ``Timestamp`` (its calendar
date) or a ``numpy.datetime64``. Anything else raises :class:`engine.errors.DataError` (a frame)
or :class:`engine.errors.ConfigError` (a date), both :class:`EngineError` and ``ValueError``,
naming the function and the argument.

Use :func:`api_input` as a decorator; :func:`as_frame` and :func:`as_date` convert one value.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import polars as pl

from engine.errors import ConfigError, DataError

__all__ = ["api_input", "as_frame", "as_date"]

F = TypeVar("F", bound=Callable[..., Any])


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas" and type(obj).__name__ == "DataFrame"


def as_frame(obj: Any, name: str, contract: str | None = None) -> Any:
    """``obj`` as a polars frame (polars kept as is, pandas converted); lists element by element.

    ``contract`` (``"members"`` or ``"claims"``): a converted pandas frame is also normalised to
    the data contract (:mod:`engine.data.schema`: pandas' datetime64 columns become dates, ids text),
    as :func:`engine.read_members` does for files.

    Raises
    ------
    DataError
        Naming ``name`` when ``obj`` is neither.
    """
    if isinstance(obj, (pl.DataFrame, pl.LazyFrame)):
        return obj
    if _is_pandas(obj):
        try:
            df = pl.from_pandas(obj)
        except Exception as exc:  # an object column pyarrow cannot type
            msg = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"{name}: the pandas DataFrame cannot be converted to polars ({msg})") from None
        if contract is None:
            return _midnights_as_dates(df)
        from engine.data.schema import normalise_claims, normalise_members

        norm = normalise_members if contract == "members" else normalise_claims
        return norm(df.lazy(), df.schema, name).collect()
    if isinstance(obj, (list, tuple)) and obj and all(
            isinstance(o, (pl.DataFrame, pl.LazyFrame)) or _is_pandas(o) for o in obj):
        return type(obj)(as_frame(o, f"{name}[{i}]", contract) for i, o in enumerate(obj))
    raise DataError(f"{name}: expected a polars DataFrame or LazyFrame, or a pandas DataFrame, "
                    f"got {type(obj).__name__}")


def _midnights_as_dates(df: pl.DataFrame) -> pl.DataFrame:
    """pandas has no date type: a datetime column whose values are all at midnight is a date column."""
    cols = [c for c, t in df.schema.items() if isinstance(t, pl.Datetime)]
    fix = [c for c in cols
           if df.select((pl.col(c).dt.replace_time_zone(None).cast(pl.Date).cast(pl.Datetime(df.schema[c].time_unit))
                         == pl.col(c).dt.replace_time_zone(None)).all()).item() is not False]
    return df.with_columns([pl.col(c).dt.replace_time_zone(None).cast(pl.Date) for c in fix]) if fix else df


def as_date(obj: Any, name: str) -> dt.date:
    """``obj`` as a calendar date (see the module notes), or a ConfigError naming ``name``."""
    if isinstance(obj, dt.datetime):  # also a pandas Timestamp
        return obj.date()
    if isinstance(obj, dt.date):
        return obj
    if isinstance(obj, str):
        try:
            return dt.date.fromisoformat(obj.strip())
        except ValueError:
            raise ConfigError(f"{name}: '{obj}' is not a date (YYYY-MM-DD)") from None
    if type(obj).__name__ == "datetime64":
        import numpy as np

        if not np.isnat(obj):
            return dt.date.fromisoformat(str(obj.astype("datetime64[D]")))
    raise ConfigError(f"{name}: expected a date (datetime.date or 'YYYY-MM-DD'), got {type(obj).__name__} {obj!r:.40}")


def api_input(*, frames: tuple[str, ...] = (), dates: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator: convert the arguments named in ``frames`` and ``dates`` before the call.

    ``None`` is passed through for an argument whose default is None; errors name
    ``function: argument``.
    """

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)
        label = fn.__qualname__
        optional = {k for k, prm in sig.parameters.items() if prm.default is None}  # None allowed there

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind_partial(*args, **kwargs)
            for key in frames:
                if key in bound.arguments and not (bound.arguments[key] is None and key in optional):
                    contract = key if key in ("members", "claims") else None
                    bound.arguments[key] = as_frame(bound.arguments[key], f"{label}: {key}", contract)
            for key in dates:
                if key in bound.arguments and not (bound.arguments[key] is None and key in optional):
                    bound.arguments[key] = as_date(bound.arguments[key], f"{label}: {key}")
            return fn(*bound.args, **bound.kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
