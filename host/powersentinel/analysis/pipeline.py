"""Streaming power-quality analysis: the Analyzer, which wires the stages, and its result.

    an = Analyzer(sample_rate=10_000, nominal_v=230, nominal_hz=50, volts_per_count=0.02)
    for chunk in chunks:          # any sizes; int16, float32 or float64; (n,) or (n, channels)
        an.feed(chunk)
    result = an.finish()          # AnalysisResult

The Analyzer checks and normalises the input, cuts it into steps and passes each step through
the five stages of `stages/` (see its docstring for the wiring; docs/analysis.md for the
method, IEC 61000-4-30 terms):
- HalfCycleStage: Urms(1/2) on the half-cycle grid at the declared nominal frequency;
- EventStage: dip / swell / interruption state with thresholds and hysteresis per channel,
  the polyphase rules, refined timing and waveform captures;
- FrequencyStage: zero crossings of a decimated, low-passed first channel; per-cycle and 10 s
  values;
- AggregationStage: 10/12-cycle, 150/180-cycle and 10-min values, flagged where an event
  touched;
- HarmonicsStage: batched FFT per 10/12-cycle window, IEC 61000-4-7 subgroups, THD to h40.

Everything that crosses a chunk boundary is carried as raw samples or exact sums (never
rounded partial sums), so the results do not depend on how the recording is cut: feeding it
whole or in chunks of any size gives the same numbers (bit for bit; tests check it). Memory
stays bounded: per-half-cycle and per-cycle series are kept only up to `series_cap` values,
aggregates are small.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import kernels as _kmod
from .errors import AnalysisInputError
from .stages.aggregation import AggregationStage, Series
from .stages.events import Event, EventStage, Thresholds
from .stages.frequency import FrequencyStage
from .stages.grid import FLAG_CLIPPED, FLAG_EVENT, Grid
from .stages.halfcycles import HalfCycleStage
from .stages.harmonics import HarmonicsStage

__all__ = ["FLAG_CLIPPED", "FLAG_EVENT", "AnalysisResult", "Analyzer", "Event", "Series",
           "Thresholds", "analyze_array"]

SUBCHUNK = 1 << 20  # samples processed per inner step: keeps the passes in cache


@dataclass
class AnalysisResult:
    sample_rate: float
    channels: int
    samples: int
    nominal_v: float
    nominal_hz: float
    volts_per_count: float
    thresholds: Thresholds
    start_time: float | None
    backend: str
    events: list[Event]
    urms_half: tuple[np.ndarray, np.ndarray]     # (t window end, [n, ch] volts), capped
    urms_half_complete: bool
    agg10: Series | None                         # 10/12-cycle values (None if not kept)
    agg150: Series
    agg10min: Series
    freq_cycles: tuple[np.ndarray, np.ndarray]   # (t of cycle end, Hz), capped
    freq_cycles_complete: bool
    freq_cycles_flags: np.ndarray                # FLAG_EVENT where the cycle touches an event
    freq10s: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # t start, Hz, n cycles, flag
    harmonics: dict | None
    captures: dict
    warnings: list[str]
    clipped_halfcycles: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate



class Analyzer:
    """Streaming analysis of one recording; see the module docstring."""

    def __init__(self, sample_rate: float, nominal_v: float = 230.0, nominal_hz: float = 50.0,
                 volts_per_count: float = 1.0, channels: int = 1,
                 thresholds: Thresholds | None = None, start_time: float | None = None,
                 harmonics: bool = True, keep_10cycle: bool = False, series_cap: int = 200_000,
                 max_captures: int = 50, capture_pre_s: float = 0.1, capture_post_s: float = 0.4,
                 refine: bool = True, backend: str | None = None):
        if not (sample_rate > 0 and math.isfinite(sample_rate)):
            raise AnalysisInputError(f"invalid sample rate {sample_rate!r}")
        if nominal_hz <= 0 or nominal_v <= 0 or not volts_per_count > 0:
            raise AnalysisInputError("nominal voltage, frequency and volts per count must be > 0")
        self.fs = float(sample_rate)
        self.f_nom = float(nominal_hz)
        self.grid = Grid(self.fs, self.f_nom, start_time)
        if self.grid.half < 8:
            raise AnalysisInputError(
                f"sample rate {self.fs:g} Hz is too low for {self.f_nom:g} Hz mains "
                f"(need at least {16 * self.f_nom:g} Hz)")
        self.u_nom = float(nominal_v)
        self.vpc = float(volts_per_count)
        self.nch = int(channels)
        if self.nch < 1:
            raise AnalysisInputError("channels must be >= 1")
        self.th = thresholds or Thresholds()
        self.th.check()
        self.start_time = start_time
        k = _kmod.get(backend)
        self.backend = _kmod.backend_name(k)
        self.dtype = None  # decided by the first chunk's dtype
        self.n_done = 0
        self.warnings: list[str] = []
        self.finished = False
        g, ch, vpc, cap = self.grid, self.nch, self.vpc, series_cap
        pre, post = int(round(capture_pre_s * self.fs)), int(round(capture_post_s * self.fs))
        self.halfcycles = HalfCycleStage(g, k, ch, vpc, cap)
        self.frequency = FrequencyStage(g, k, self.u_nom, vpc, cap,
                                        keep=EventStage.history_length(g, pre, post))
        self.events = EventStage(g, k, ch, self.u_nom, vpc, self.th, refine, max_captures,
                                 pre, post, f_at=self.frequency.f_at)
        self.aggregation = AggregationStage(g, k, ch, vpc, keep_10cycle, cap)
        self.harmonics = HarmonicsStage(g, ch, vpc, cap) if harmonics else None

    # -- input ---------------------------------------------------------------------------------
    def feed(self, x) -> None:
        """Process the next samples: (n,) for one channel or (n, channels)."""
        if self.finished:
            raise RuntimeError("finish() was already called")
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.nch:
            raise AnalysisInputError(
                f"expected samples shaped (n,) or (n, {self.nch}), got {x.shape}")
        if x.dtype not in (np.int16, np.float32, np.float64):
            if np.issubdtype(x.dtype, np.integer) and x.size and (x.min() < -32768 or x.max() > 32767):
                raise AnalysisInputError(f"integer samples outside the int16 range ({x.dtype})")
            x = x.astype(np.int16 if np.issubdtype(x.dtype, np.integer) else np.float64)
        if self.dtype is None:
            self.dtype = x.dtype
        elif x.dtype != self.dtype:
            x = x.astype(self.dtype)
        # inner steps end on 10/12-cycle group edges where possible: then no partial half cycle
        # or group has to be carried between them (fewer copies); results do not depend on it
        grid = self.grid
        s = 0
        n = x.shape[0]
        while s < n:
            want = self.n_done + min(SUBCHUNK, n - s)
            if want < self.n_done + (n - s):
                g = int(want / (grid.half * grid.G))
                e = grid.edge(g * grid.G)
                if e > self.n_done + SUBCHUNK // 4:
                    want = e
            step = want - self.n_done
            self._step(x[s:s + step])
            s += step

    def _step(self, x: np.ndarray) -> None:
        """One step through the stages (the wiring drawn in stages/__init__.py)."""
        if x.shape[0] == 0:
            return
        n0 = self.n_done
        chans = [x[:, 0] if self.nch == 1 else np.ascontiguousarray(x[:, c])
                 for c in range(self.nch)]
        if self.nch == 1 and not chans[0].flags.c_contiguous:
            chans[0] = np.ascontiguousarray(chans[0])
        self.frequency.feed(chans[0])  # first: refinement asks it about this step's cycles
        rows = self.halfcycles.feed(chans, n0)
        evflags = self.events.feed(rows, x, n0)
        groups = [] if rows is None else self.aggregation.feed(
            rows.k, rows.S, rows.cnt, rows.u, rows.flags | evflags)
        if self.harmonics is not None:
            self.harmonics.feed(x, n0 + x.shape[0], groups)
        self.n_done = n0 + x.shape[0]

    # -- end -----------------------------------------------------------------------------------
    def finish(self) -> AnalysisResult:
        if self.finished:
            raise RuntimeError("finish() was already called")
        self.finished = True
        if self.n_done == 0:
            raise AnalysisInputError("no samples")
        if self.n_done < 2 * self.grid.cycle:
            raise AnalysisInputError(
                f"recording too short: {self.n_done} samples, need at least two cycles "
                f"({int(2 * self.grid.cycle)} samples)")
        warnings = self.warnings
        ev = self.events.finish(self.halfcycles.k_open, self.n_done, warnings)
        agg = self.aggregation.finish()
        harm = self.harmonics.finish() if self.harmonics is not None else {"harmonics": None}
        hc = self.halfcycles.finish(warnings)
        freq = self.frequency.finish(ev["events"], hc["urms_half"][1], warnings)
        return AnalysisResult(
            sample_rate=self.fs, channels=self.nch, samples=self.n_done, nominal_v=self.u_nom,
            nominal_hz=self.f_nom, volts_per_count=self.vpc, thresholds=self.th,
            start_time=self.start_time, backend=self.backend, warnings=warnings,
            **ev, **agg, **harm, **hc, **freq)


def analyze_array(x, sample_rate: float, chunk: int | None = None, **kw) -> AnalysisResult:
    """Analyse an array at once (or in chunks of `chunk` samples)."""
    x = np.asarray(x)
    an = Analyzer(sample_rate, channels=1 if x.ndim == 1 else x.shape[1], **kw)
    if chunk is None:
        an.feed(x)
    else:
        for s in range(0, x.shape[0], chunk):
            an.feed(x[s:s + chunk])
    return an.finish()
