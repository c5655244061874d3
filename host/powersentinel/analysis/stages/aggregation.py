"""The aggregation stage: 10/12-cycle, 150/180-cycle and 10-minute values (IEC 61000-4-30)."""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .grid import Grid


@dataclass
class Series:
    """Time series arrays (time of the interval start in seconds from the first sample)."""
    t: np.ndarray
    rms: np.ndarray      # [n, channels] volts
    min: np.ndarray      # [n, channels] min of Urms(1/2), volts
    max: np.ndarray      # [n, channels] max of Urms(1/2), volts
    flags: np.ndarray    # [n] FLAG_EVENT | FLAG_CLIPPED
    duration: np.ndarray  # [n] seconds of signal in the interval


class AggregationStage:
    """Aggregates of the half-cycle rows: 10/12 cycles (G half cycles, exact sums of squares),
    150/180 cycles (15 of those), 10 minutes aligned to the clock (a 10/12-cycle value belongs
    to the interval it starts in). Each holds the rms, the min and max of Urms(1/2) and the
    flags (OR) of its half cycles.

    feed(k, S, cnt, u, flags): the step's half-cycle rows (indices, sums of squares, counts,
    Urms(1/2), flags including FLAG_EVENT). Returns the 10/12-cycle groups it completed as
    (group index, flags) pairs: what the harmonic windows of those groups are flagged with.
    State across steps: the half cycles not yet in a whole group (rows), and the unfinished
    150/180-cycle and 10-min aggregates as one running row each: reducing [running row,
    rows...] in order gives the same numbers as reducing all the rows at once.
    finish() -> the result fields agg10 (None unless keep_10cycle; capped at series_cap rows),
    agg150 and agg10min, the last partial ones included."""

    def __init__(self, grid: Grid, kernels: ModuleType, channels: int, volts_per_count: float,
                 keep_10cycle: bool, series_cap: int):
        self.grid = grid
        self.k = kernels
        self.nch = channels
        self.vpc = volts_per_count
        self.keep10 = keep_10cycle
        self.cap = series_cap
        self.rows: dict | None = None    # half cycles not yet in a full 10-cycle group
        self.p150: dict | None = None    # partial 150/180-cycle aggregate
        self.p10min: dict | None = None  # partial 10-min aggregate
        self.out10: list = []
        self.out150: list = []
        self.out10min: list = []
        self.n10_total = 0

    def feed(self, k: np.ndarray, S: np.ndarray, cnt: np.ndarray, u: np.ndarray,
             flags: np.ndarray) -> list[tuple[int, int]]:
        new = {"S": S, "c": cnt, "mn": u, "mx": u, "f": flags, "k": k}
        if self.rows is None or self.rows["k"].shape[0] == 0:
            rows = new
        else:
            rows = {key: np.concatenate((self.rows[key], new[key])) for key in new}
        G = self.grid.G
        # rows start at half cycle rows["k"][0]; groups are aligned to multiples of G
        k_first = int(rows["k"][0])
        skip = (-k_first) % G  # only at the very start if misaligned (never: k starts at 0)
        nfull = (rows["k"].shape[0] - skip) // G
        if nfull <= 0:
            self.rows = rows
            return []
        starts = np.arange(skip, skip + (nfull + 1) * G, G, dtype=np.int64)
        gs, gc, gmn, gmx, gf = self._reduce(rows, starts)
        t = self.grid.edges(rows["k"][starts[:-1]]) / self.grid.fs
        done = list(zip((rows["k"][starts[:-1]] // G).tolist(), gf.tolist()))
        self._add10(t, gs, gc, gmn, gmx, gf)
        cut = skip + nfull * G
        self.rows = {key: v[cut:].copy() for key, v in rows.items()} \
            if cut < rows["k"].shape[0] else None
        return done

    def _reduce(self, rows: dict, starts: np.ndarray) -> tuple:
        return self.k.group_reduce(
            np.ascontiguousarray(rows["S"]), np.ascontiguousarray(rows["c"]),
            np.ascontiguousarray(rows["mn"]), np.ascontiguousarray(rows["mx"]),
            np.ascontiguousarray(rows["f"]), starts)

    def _series_row(self, t, gs, gc, gmn, gmx, gf):
        rms = np.sqrt(gs.astype(np.float64) / gc[:, None]) * self.vpc
        return (t, rms, gmn, gmx, gf, gc / self.grid.fs)

    def _add10(self, t, gs, gc, gmn, gmx, gf) -> None:
        if self.keep10 and self.n10_total < self.cap:
            take = min(len(t), self.cap - self.n10_total)
            self.out10.append(tuple(a[:take] for a in self._series_row(t, gs, gc, gmn, gmx, gf)))
        g10 = np.arange(self.n10_total, self.n10_total + len(t))
        self.n10_total += len(t)
        new = {"t": t, "S": gs, "c": gc, "mn": gmn, "mx": gmx, "f": gf}
        # 150/180 cycles: 15 ten-cycle rows; 10 minutes: rows starting in the same clock interval
        self._level("p150", new, g10 // 15, self.out150, full=15)
        ids = np.floor((self.grid.clock0 + t) / 600.0 + 1e-9).astype(np.int64)
        self._level("p10min", new, ids, self.out10min, full=None)

    def _level(self, name: str, new: dict, ids: np.ndarray, out: list, full: int | None) -> None:
        """Group consecutive rows by id. The unfinished last group is carried as one partial
        row (its running sums): reducing [partial, rows...] in order gives the same numbers as
        reducing all its rows at once, so chunking does not change the result."""
        part = getattr(self, name)
        if part is not None:
            rows = {k: np.concatenate((part["row"][k], new[k])) for k in new}
            ids = np.concatenate(([part["id"]], ids))
            members = np.concatenate(([part["n"]], np.ones(len(new["t"]), np.int64)))
        else:
            rows, members = new, np.ones(len(new["t"]), np.int64)
        starts = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1, [ids.shape[0]]))
        starts = starts.astype(np.int64)
        gs, gc, gmn, gmx, gf = self._reduce(rows, starts)
        nmem = np.add.reduceat(members, starts[:-1])
        t0 = rows["t"][starts[:-1]]
        done = len(t0) - 1
        if full is not None and nmem[-1] >= full:
            done = len(t0)
        if done > 0:
            out.append(self._series_row(t0[:done], gs[:done], gc[:done], gmn[:done], gmx[:done],
                                        gf[:done]))
        if done < len(t0):
            setattr(self, name, {"row": {"t": t0[-1:], "S": gs[-1:], "c": gc[-1:],
                                         "mn": gmn[-1:], "mx": gmx[-1:], "f": gf[-1:]},
                                 "id": int(ids[starts[-2]]), "n": int(nmem[-1])})
        else:
            setattr(self, name, None)

    def finish(self) -> dict:
        if self.rows is not None and self.rows["k"].shape[0]:
            rows = self.rows
            self.rows = None
            gs, gc, gmn, gmx, gf = self._reduce(rows, np.array([0, rows["k"].shape[0]], np.int64))
            self._add10(self.grid.edges(rows["k"][:1]) / self.grid.fs, gs, gc, gmn, gmx, gf)
        for name, out in (("p150", self.out150), ("p10min", self.out10min)):
            p = getattr(self, name)
            if p is not None:
                r = p["row"]
                out.append(self._series_row(r["t"], r["S"], r["c"], r["mn"], r["mx"], r["f"]))
                setattr(self, name, None)
        return {"agg10": _series(self.out10, self.nch) if self.keep10 else None,
                "agg150": _series(self.out150, self.nch),
                "agg10min": _series(self.out10min, self.nch)}


def _series(parts, nch) -> Series:
    if not parts:
        z = np.empty((0, nch))
        return Series(np.empty(0), z, z.copy(), z.copy(), np.empty(0, np.uint8), np.empty(0))
    cols = list(zip(*parts))
    return Series(*(np.concatenate(c) for c in cols))
