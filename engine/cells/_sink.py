"""Sum of the cells of many member batches in one dense (static key, age, duration, period) array.

Each batch has its own key space (:class:`engine.cells._accumulate.Space`: its own static
key ids and age / duration ranges). The sink maps a batch's static ids to global
ids through their decoded values, places the batch's dense day arrays at its age
and duration offsets, and adds them (integers: exact, in any order). Only the
final cells are turned into a DataFrame, once. When the dense array would be too
large (many static key combinations), the sink keeps per-batch frames instead and
:func:`engine.cells._exposure._combine` sums them with a group-by.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.cells.calendar import Calendar, KeySpec
from engine.cells._accumulate import Space

#: largest dense sink (cells x sums); beyond it batch frames are summed by polars
MAX_DENSE = 40_000_000
INT_SUMS = ("exposure_days", "sharing_days", "claims")


class _Block:
    """The key space of another sink's dense array, as :meth:`CellSink.add` reads a batch's."""

    def __init__(self, amin: int, na: int, dmin: int, nd: int, n_ids: int) -> None:
        self.amin, self.na, self.dmin, self.nd = amin, na, dmin, nd
        self.n_keys = max(n_ids, 1) * na * nd


class CellSink:
    """Accumulates batch cells; :meth:`frames` returns them as DataFrames for ``_combine``."""

    def __init__(self, cal: Calendar, spec: KeySpec, static: list[str]) -> None:
        self.cal, self.spec, self.static = cal, spec, static
        self.ids: dict[tuple, int] = {}  # decoded static values -> global id
        self.values: list[pl.DataFrame] = []  # one row per global id, in id order
        self.a0 = self.d0 = 0
        self.na = self.nd = 0
        self.arr: dict[str, np.ndarray] | None = None
        self.frames_: list[pl.DataFrame] = []
        self.dense = True

    def _global_ids(self, decode: Any, n_sid: int) -> np.ndarray:
        vals = decode(np.arange(n_sid, dtype=np.int64))
        if not self.static:
            vals = pl.DataFrame({"__none": [0] * n_sid})
        out = np.empty(n_sid, dtype=np.int64)
        for i, row in enumerate(vals.iter_rows()):
            gid = self.ids.get(row)
            if gid is None:
                gid = self.ids[row] = len(self.ids)
                self.values.append(vals.slice(i, 1))
            out[i] = gid
        return out

    def _grow(self, n_g: int, a0: int, a1: int, d0: int, d1: int) -> None:
        """Make the dense arrays cover global ids < n_g, ages a0..a1 and durations d0..d1."""
        P = self.cal.n_periods
        if self.arr is None:
            na, nd, A0, D0, G = a1 - a0 + 1, d1 - d0 + 1, a0, d0, max(n_g, 8)
        else:
            A0, D0 = min(self.a0, a0), min(self.d0, d0)
            na = max(self.a0 + self.na, a1 + 1) - A0
            nd = max(self.d0 + self.nd, d1 + 1) - D0
            G = self.arr["sharing_days"].shape[0]
            if n_g <= G and (A0, D0, na, nd) == (self.a0, self.d0, self.na, self.nd):
                return
            G = max(G, n_g) if n_g <= G else max(2 * G, n_g)
        if G * na * nd * P * 4 > MAX_DENSE:
            self._to_frames()
            return
        new = {k: np.zeros((G, na, nd, P), dtype=np.float64 if k == "amount" else np.int64) for k in (*INT_SUMS, "amount")}
        if self.arr is not None:
            g, a, d = self.arr["sharing_days"].shape[:3]
            ao, do = self.a0 - A0, self.d0 - D0
            for k, v in self.arr.items():
                new[k][:g, ao:ao + a, do:do + d] = v
        self.arr, self.a0, self.d0, self.na, self.nd = new, A0, D0, na, nd

    def add(self, space: Space, decode: Any, sums: dict[str, np.ndarray], frame: Any) -> None:
        """Add the dense (keys, periods) arrays ``sums`` of a batch; ``frame()`` builds its DataFrame (fallback)."""
        if self.dense:
            n_sid = space.n_keys // (space.na * space.nd)
            gids = self._global_ids(decode, n_sid) if n_sid * space.na * space.nd * self.cal.n_periods <= MAX_DENSE else None
            if gids is not None:
                self._grow(int(gids.max(initial=-1)) + 1, space.amin, space.amin + space.na - 1,
                           space.dmin, space.dmin + space.nd - 1)
            else:
                self._to_frames()
        if not self.dense:
            self.frames_.append(frame())
            return
        ao, do = space.amin - self.a0, space.dmin - self.d0
        unique = np.unique(gids).size == gids.size
        for k, v in sums.items():
            blk = v.reshape(n_sid, space.na, space.nd, -1)
            target = self.arr[k][:, ao:ao + space.na, do:do + space.nd]
            if unique:
                target[gids] += blk
            else:  # pragma: no cover - decoded values are unique per batch
                np.add.at(target, gids, blk)

    def _to_frames(self) -> None:
        if self.dense and self.arr is not None:
            self.frames_.append(self._dense_frame())
        self.dense, self.arr = False, None

    def _dense_frame(self) -> pl.DataFrame:
        arr = self.arr
        g, a, d, p = np.nonzero((arr["sharing_days"] != 0) | (arr["exposure_days"] != 0) | (arr["claims"] != 0))
        spec, cal = self.spec, self.cal
        cols = [pl.Series("period", cal.first[p].astype(np.int32)).cast(pl.Date)]
        if spec.age:
            cols.append(pl.Series("age", (a + self.a0).astype(np.int32)))
        if spec.dim:
            cols.append(pl.Series("duration" if spec.dim == "duration" else "band", (d + self.d0).astype(np.int32)))
        out = pl.DataFrame(cols)
        if self.static:
            vals = pl.concat(self.values, how="vertical_relaxed")
            out = pl.concat([out, vals[g]], how="horizontal")
        sums = pl.DataFrame({k: arr[k][g, a, d, p] for k in (*INT_SUMS, "amount")})
        return pl.concat([out, sums], how="horizontal")

    def final(self, keys: list[str], by: list[str], labels: list[str]) -> pl.DataFrame | None:
        """The dense cells as the final frame: keys (band labels), sums, sorted by ``keys`` (nulls last).

        None when the sink fell back to batch frames or a static value repeats (e.g. NaN).
        """
        if not self.dense or self.arr is None:
            return None
        arr = self.arr
        g, a, d, p = np.nonzero((arr["sharing_days"] != 0) | (arr["exposure_days"] != 0) | (arr["claims"] != 0))
        vals = pl.concat(self.values, how="vertical_relaxed") if self.static else None
        if vals is not None and vals.is_duplicated().any():
            return None
        spec, cal = self.spec, self.cal
        dur = d + self.d0
        band = None
        if "duration_band" in by:
            band = (np.searchsorted(spec.edges, dur, side="right") - 1) if spec.dim == "duration" else dur
        order: list[np.ndarray] = []
        cols: dict[str, pl.Series] = {}
        for key in keys:
            if key == "period":
                order.append(p)
                cols[key] = pl.Series(key, cal.first[p].astype(np.int32)).cast(pl.Date)
            elif key == "age":
                order.append(a)
                cols[key] = pl.Series(key, (a + self.a0).astype(np.int32))
            elif key == "duration":
                order.append(d)
                cols[key] = pl.Series(key, dur.astype(np.int32))
            elif key == "duration_band":
                lab = pl.Series(key, labels, dtype=pl.String)
                order.append(lab.rank("dense").cast(pl.Int64).to_numpy()[band])
                cols[key] = lab.gather(pl.Series(band.astype(np.int64)))
            else:
                s = vals.get_column(key)
                rank = s.rank("dense").cast(pl.Int64).fill_null(s.len() + 1).to_numpy()
                order.append(rank[g])
                cols[key] = s.gather(pl.Series(g.astype(np.int64)))
        perm = np.lexsort(order[::-1]) if order else np.arange(g.size)
        out = pl.DataFrame([s for s in cols.values()])
        sums = pl.DataFrame({k: arr[k][g, a, d, p] for k in (*INT_SUMS, "amount")})
        return pl.concat([out, sums], how="horizontal")[perm]

    def export(self) -> dict[str, Any]:
        """The sink's cells in a picklable form, for :meth:`absorb` in another process (executor seam)."""
        if not self.dense or self.arr is None:
            return {"frames": self.frames()}
        n = len(self.values)  # ids in use; arrays that are all zero (claims, amount of member batches) stay home
        arr = {k: v[:n] for k, v in self.arr.items() if k in ("exposure_days", "sharing_days") or v[:n].any()}
        return {"arr": arr, "values": self.values,
                "a0": self.a0, "d0": self.d0, "na": self.na, "nd": self.nd}

    def absorb(self, state: dict[str, Any]) -> None:
        """Add the cells of another sink (:meth:`export`): static ids mapped through their values,
        day arrays placed at their age and duration offsets; integer sums, exact in any order."""
        if "frames" in state:
            if state["frames"]:
                self._to_frames()
                self.frames_.extend(state["frames"])
            return
        values = state["values"]
        vals = pl.concat(values, how="vertical_relaxed") if self.static else pl.DataFrame()
        space = _Block(state["a0"], state["na"], state["d0"], state["nd"], len(values))
        arr = state["arr"]

        def frame() -> pl.DataFrame:
            other = CellSink(self.cal, self.spec, self.static)
            shape = arr["sharing_days"].shape
            other.values = values
            other.arr = {k: arr[k] if k in arr else np.zeros(shape, dtype=np.float64 if k == "amount" else np.int64)
                         for k in (*INT_SUMS, "amount")}
            other.a0, other.d0, other.na, other.nd = state["a0"], state["d0"], state["na"], state["nd"]
            return other._dense_frame()

        self.add(space, lambda ids: vals[ids] if self.static else pl.DataFrame(), arr, frame)

    def frames(self) -> list[pl.DataFrame]:
        """The accumulated cells (one frame when dense)."""
        if self.dense and self.arr is not None:
            return [self._dense_frame()]
        return self.frames_
