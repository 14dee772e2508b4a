"""Memory guard of ``fentan run``: refuse early, from Parquet metadata, only what cannot stream.

What a run holds whole, and what it streams:

* **streamed**: every pass over the members after validation (exposure cells, share history,
  decomposition windows, members sharing at the end) reads them in batches of
  :data:`engine.shares._stream.DEFAULT_BATCH` rows and keeps only additive counts, so its memory
  does not grow with the members: at most two batches (:data:`STREAM_BATCHES`) are held at once;
* **streamed validation**: validation reads one file at a time and finds duplicate member ids
  across files by a hash-bucket pass on disk (:mod:`engine.data._validation_stream`); the clean
  members stay in their files, read again by each pass (:data:`MEMBERS_HELD` = False);
* **held whole**: the claims (always: they are the limit, named in the refusal), and the member
  rows only on the in-memory path (``[run] stream = false``, ``held=True`` below). Cells, models
  and the projection are bounded by the key grid, not by the rows (in :data:`BASE_BYTES`).

Before any data is read, the guard reads each input file's footer (row counts, column types and
sizes; no data page), estimates the peak memory of the run and compares it with the limit:
``--memory-limit``, else ``[run] memory_limit`` in the configuration, else
:data:`DEFAULT_FRACTION` of the memory available now (``MemAvailable`` of ``/proc/meminfo``,
capped by a cgroup limit). Above the limit it raises :class:`engine.errors.ResourceError` (exit 2)
with a one-line message naming what is held whole, the need, the limit and how to raise it.

Notes
-----
Estimate (bytes), calibrated on measured peak RSS of whole runs (docs/batch.md):

    need = BASE_BYTES + PER_ROW_FACTOR * (H * R_m * w_m + R_c * w_c) + STREAM_BATCHES * min(R_m, B) * w_m

R_m, R_c = member and claim rows (footer row counts); H = 1 when the run holds the members
(``[run] stream = false``), else 0 (:data:`MEMBERS_HELD`, the streaming default); B = the batch size; w = the in-memory width of one row from the
file schema: 4 bytes per date / int32, 8 per int64 / float64, 1 per bool, and for strings 16 bytes
(polars string view) plus the column's mean uncompressed length (footer sizes). Synthetic members
are w = 99 bytes. Runs of 10^6 and 10^7 members peaked at 0.96 and 3.06 GB when the run also
sorted a copy of the members (a slope of 2.35 w above about 0.72 GB); without that copy the
slope is lower (docs/batch.md has the measurements). The guard keeps BASE_BYTES = 0.8 GB and
PER_ROW_FACTOR = 3.0, an upper bound of every measured peak.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, ResourceError

__all__ = ["parse_size", "format_size", "available_memory", "default_limit", "estimate_inputs", "check_memory",
           "MemoryCheck", "DEFAULT_FRACTION", "BASE_BYTES", "PER_ROW_FACTOR", "MEMBERS_HELD", "STREAM_BATCHES"]

#: default limit = this fraction of the memory available when the run starts
DEFAULT_FRACTION = 0.8
#: interpreter, libraries, cells, models, projection and report (measured ~0.72 GB at 10^6, rounded up)
BASE_BYTES = 800_000_000
#: peak bytes per byte of raw row width held whole (measured 2.35 between 10^6 and 10^7 members; margin to 3.0)
PER_ROW_FACTOR = 3.0
#: a default run holds no member row whole (validation streams file by file); ``[run] stream = false`` does
MEMBERS_HELD = False
#: member batches in memory at once in a streamed pass (the one counted and the one read ahead)
STREAM_BATCHES = 2

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str | int | float, where: str = "memory limit") -> int:
    """Bytes of a size such as ``'8GB'``, ``'512 MiB'``, ``'1.5G'`` or ``2000000000`` (decimal units: 1 GB = 10^9)."""
    if isinstance(text, bool):
        raise ConfigError(f"{where}: {text!r} is not a size such as '8GB'")
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise ConfigError(f"{where}: {text!r} is not a size such as '8GB', '512MB' or '1.5GiB'")
        value, unit = float(m.group(1)), m.group(2).lower()
    n = int(value * _UNITS[unit])
    if n <= 0:
        raise ConfigError(f"{where}: {text!r} must be positive")
    return n


def format_size(n: float) -> str:
    """``14.2 GB`` style (decimal units)."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def _read_int(path: str) -> int | None:
    try:
        v = Path(path).read_text().strip()
    except OSError:
        return None
    return int(v) if v.isdigit() else None


def available_memory() -> int | None:
    """Bytes available to this process now: MemAvailable, capped by the cgroup's limit minus its usage."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        lim, use = _read_int(limit_f), _read_int(usage_f)
        if lim is not None and lim < 2**60:
            room = max(lim - (use or 0), 0)
            avail = room if avail is None else min(avail, room)
    return avail


def default_limit() -> tuple[int | None, str]:
    """(bytes, description) of the default limit: DEFAULT_FRACTION of the available memory."""
    avail = available_memory()
    if avail is None:
        return None, "no limit (available memory unknown)"
    return int(avail * DEFAULT_FRACTION), f"{DEFAULT_FRACTION:.0%} of the {format_size(avail)} available"


_WIDTH = {"date32": 4, "int32": 4, "uint32": 4, "float": 4, "int64": 8, "uint64": 8, "double": 8,
          "timestamp": 8, "date64": 8, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1, "halffloat": 2}


def _csv_stats(file: Path) -> tuple[int, float]:
    """(rows, bytes per row) of one CSV file: its rows counted, its text size per row (a gzip file's
    size times 5) as the in-memory width (text dates and numbers are wider than their values: an
    overestimate, on the safe side)."""
    import polars as pl

    from engine.data._csv import scan_csv_file

    rows = int(scan_csv_file(file, {}).select(pl.len()).collect().item())  # a one-line error for a bad file
    size = file.stat().st_size * (5 if str(file).lower().endswith(".gz") else 1)
    return rows, (size / rows if rows else 0.0)


def _file_stats(file: Path | str, storage_options: dict[str, Any] | None = None) -> tuple[int, float]:
    """(rows, in-memory bytes per row) of one Parquet file from its footer only (CSV: :func:`_csv_stats`).

    A remote file (``s3://...``) is read with ``storage_options`` (:mod:`engine.data.remote`).
    """
    from engine.data._csv import is_csv
    from engine.data.io import file_schema
    from engine.data.remote import is_remote, parquet_metadata

    if not is_remote(file) and is_csv(file):
        return _csv_stats(Path(file))

    file_schema(file, storage_options)  # a one-line error for a missing, empty or corrupt file
    md = parquet_metadata(file, storage_options)
    rows = md.num_rows
    if rows == 0:
        return 0, 0.0
    schema = md.schema.to_arrow_schema()
    sizes = [0] * md.num_columns
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        for j in range(rg.num_columns):
            sizes[j] += rg.column(j).total_uncompressed_size
    width = 0.0
    for j, field in enumerate(schema):
        t = str(field.type)
        base = t.split("[")[0]
        if base in _WIDTH:
            width += _WIDTH[base] + 0.125  # + validity bit
        elif "string" in t or "binary" in t:
            width += 16 + (sizes[j] / rows if j < len(sizes) else 16)
        else:  # nested / decimal / others: their uncompressed size, at least 8 bytes
            width += max(8.0, sizes[j] / rows if j < len(sizes) else 8.0)
    return rows, width


@dataclass(frozen=True)
class MemoryCheck:
    """What the guard decided (also recorded in run.json)."""

    member_rows: int
    claim_rows: int
    member_row_bytes: float
    claim_row_bytes: float
    need_bytes: int
    limit_bytes: int | None
    limit_source: str
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_inputs(members: Any, claims: Any, held: bool | None = None,
                    storage_options: dict[str, Any] | None = None) -> tuple[int, float, int, float, int]:
    """(member rows, member row bytes, claim rows, claim row bytes, estimated peak bytes) from footers only.

    ``held``: the run holds every member row (the in-memory path); None = :data:`MEMBERS_HELD`.
    ``storage_options``: of remote paths (``[data] storage_options``).
    """
    from engine.data.io import resolve_paths

    out = []
    for path in (members, claims):
        rows, wsum = 0, 0.0
        for f in resolve_paths(path, storage_options):
            r, w = _file_stats(f, storage_options)
            rows += r
            wsum += r * w
        out.append((rows, wsum / rows if rows else 0.0))
    (rm, wm), (rc, wc) = out
    held = MEMBERS_HELD if held is None else held
    return rm, wm, rc, wc, int(BASE_BYTES + _held(rm, wm, rc, wc, held) + _streamed(rm, wm))


def _held(rm: int, wm: float, rc: int, wc: float, held: bool) -> float:
    """Bytes of the rows held whole: the claims, and the members when the run holds them."""
    return PER_ROW_FACTOR * ((rm * wm if held else 0.0) + rc * wc)


def _streamed(rm: int, wm: float) -> float:
    """Bytes of the streamed member passes: STREAM_BATCHES batches (not growing with the members)."""
    from engine.shares._stream import DEFAULT_BATCH

    return STREAM_BATCHES * min(rm, DEFAULT_BATCH) * wm


def check_memory(members: Any, claims: Any, limit: str | int | None = None, *, source: str | None = None,
                 held: bool | None = None, storage_options: dict[str, Any] | None = None) -> MemoryCheck:
    """Estimate the run's peak memory from the Parquet footers and refuse it above the limit.

    Parameters
    ----------
    members, claims : input paths (file, glob, directory or list), as in ``[data]``.
    limit : bytes or a size text (``'8GB'``); None = the default (DEFAULT_FRACTION of available memory).
    source : how the limit was given (for the message), e.g. ``'--memory-limit'``.
    held : the run holds every member row (``[run] stream = false``); None = :data:`MEMBERS_HELD`.
    storage_options : of remote paths (``s3://...``; ``[data] storage_options``), as in :func:`engine.read_members`.

    Raises
    ------
    ResourceError : the estimate exceeds the limit (nothing has been read but file footers).
    """
    held = MEMBERS_HELD if held is None else held
    rm, wm, rc, wc, need = estimate_inputs(members, claims, held, storage_options)
    if limit is None:
        lim, src = default_limit()
    else:
        lim, src = parse_size(limit, source or "memory limit"), source or "given"
    ok = lim is None or need <= lim
    chk = MemoryCheck(rm, rc, round(wm, 1), round(wc, 1), need, lim, src, ok)
    if not ok:
        what = (f"{rm:,} member rows (held whole: [run] stream = false) + {rc:,} claim rows (held whole)" if held
                else f"{rc:,} claim rows (held whole, the limit of a streamed run; the {rm:,} member rows stream "
                     "file by file)")
        raise ResourceError(
            f"{members if held else claims}: {what} need about {format_size(need)}, above the memory "
            f"limit of {format_size(lim)} ({src}); raise it with --memory-limit or [run] memory_limit in the "
            "configuration" + (", or drop [run] stream = false so the members stream" if held else
                               " (claims cannot stream: a run holds them whole)"))
    return chk
