"""A few rows kept from a large frame, holding their own string bytes (:func:`compact`)."""

from __future__ import annotations

import polars as pl

__all__ = ["compact"]


def compact(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its String and Binary columns copied into buffers of their own (the same values).

    Parameters
    ----------
    df : a few rows filtered from a large frame (a file of members, a batch), kept after it is dropped.

    Returns
    -------
    DataFrame
        The same rows, columns and dtypes.

    Notes
    -----
    A filtered polars string column (string views) shares the byte buffers of the column it was
    filtered from: a string longer than 12 bytes (the 14-byte member ids of 10^8 members) is not
    inline in its view, so a handful of rows keeps every row's bytes alive. Kept for each of 100 files
    of 10^6 members, that was 17-19 MB a file, most of the peak memory of validation and exposure.
    """
    cols = [c for c, t in df.schema.items() if t in (pl.String, pl.Binary)]
    if not cols:
        return df
    if not df.height:
        return df.clear()
    # a string concatenation writes new views and buffers (of the kept rows' bytes only) and needs no
    # pyarrow (whose compute module alone costs about 0.2 s of CPU to import); Binary columns go through Arrow
    copies = [pl.concat_str([pl.col(c), pl.lit("")]).alias(c) for c in cols if df.schema[c] == pl.String]
    out = df.with_columns(copies) if copies else df
    binary = [c for c in cols if df.schema[c] == pl.Binary]
    if not binary:
        return out
    old = pl.CompatLevel.oldest()  # offsets and bytes: a copy of the kept values only
    return out.with_columns([pl.Series(c, df.get_column(c).to_arrow(compat_level=old), dtype=pl.Binary) for c in binary])
