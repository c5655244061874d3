"""The frequency stage: per-cycle and 10 s mains frequency from zero crossings."""
from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from ..errors import AnalysisInputError
from .events import Event
from .grid import FLAG_EVENT, Grid, cat


class FrequencyStage:
    """Mains frequency of the first channel (IEC 61000-4-30 method, 10 s values).

    Boxcar decimation to ~10 samples per cycle (nulls at multiples of the decimated rate), a
    Hann FIR about 2/3 of a cycle long (first null near the 3rd harmonic) so that harmonics and
    noise add no crossings, positive-going zero crossings with hysteresis (5 % of the nominal
    peak), each instant interpolated as a sine of the nominal frequency through the two samples
    around it. A cycle is the time between two crossings; outside [f/1.5, 1.5 f] it is a gap.
    10 s values, aligned to the clock: the cycles that start and end in the window / their
    total duration.

    feed(xc): the step's samples of the first channel (contiguous, 1-D). Raises
    AnalysisInputError once 50 cycles show that the sample rate or the nominal frequency is
    wrong (measured frequency off by 20 % or more).
    f_at(n): the frequency of the last valid cycle that ended at or before sample n (the
    nominal one before any), for n from `keep` samples before the last step on. A crossing is
    known about 2/3 of a cycle after it, so for n that far before the samples fed the answer
    does not depend on where steps end.
    State across steps: the partial decimation block (raw samples), the FIR history, the
    hysteresis state, the last crossing, the recent cycles (for f_at) and the open 10 s window
    (durations summed in fixed point, 2**-20 sample, which is exact: no rounding depends on
    where steps end).
    finish(events, urms_half, warnings) -> the result fields freq_cycles (capped at series_cap
    values), freq_cycles_complete, freq_cycles_flags and freq10s (flagged where an event
    touched them). Without any cycle: AnalysisInputError if urms_half shows voltage (the sample
    rate must be wrong), else a warning."""

    def __init__(self, grid: Grid, kernels: ModuleType, nominal_v: float,
                 volts_per_count: float, series_cap: int, keep: int):
        self.grid = grid
        self.k = kernels
        self.u_nom = nominal_v
        self.cap = series_cap
        f_nom = grid.f_nom
        self.D = max(1, int(round(grid.fs / (10.0 * f_nom))))
        fs_dec = grid.fs / self.D
        ntap = max(3, int(round(fs_dec * 2.0 / (3.0 * f_nom))) - 1)
        w = np.hanning(ntap + 2)[1:-1]
        self.taps = np.ascontiguousarray(w / w.sum())
        jw = np.exp(-2j * np.pi * f_nom / fs_dec * np.arange(ntap))
        gain = abs(np.dot(self.taps, jw))
        peak_counts = math.sqrt(2.0) * nominal_v / volts_per_count
        self.hyst = 0.05 * peak_counts * self.D * gain
        self.w_dec = 2.0 * math.pi * f_nom / fs_dec  # radians per decimated sample
        self.dec_left = np.empty(0)
        self.fir_hist = np.zeros(0)
        self.out_count = 0     # FIR outputs produced so far
        self.armed = False
        self.prev_y = 0.0
        self.last_cross: float | None = None
        self.fc_t: list = []
        self.fc_f: list = []
        self.fc_n = 0
        self.fc_complete = True
        self.keep = keep
        self.n_fed = 0
        self.recent: list = []  # (ends in samples, frequencies) of recent valid cycles, per step
        self.raw_periods: list = []   # first cycle lengths, for the sample-rate sanity check
        self.rate_checked = False
        self.w10: int | None = None
        self.w10_sum = 0
        self.w10_cnt = 0
        self.f10: list = []

    def f_at(self, n: int) -> float:
        for t, f in reversed(self.recent):
            if t[0] <= n:
                return float(f[int(np.searchsorted(t, n, side="right")) - 1])
        return self.grid.f_nom

    def feed(self, xc: np.ndarray) -> None:
        # forget the cycles f_at() can no longer be asked about, but the last of them
        while len(self.recent) > 1 and self.recent[1][0][0] <= self.n_fed - self.keep:
            del self.recent[0]
        self.n_fed += xc.shape[0]
        D = self.D
        parts = []
        off = 0
        if self.dec_left.shape[0]:
            need = D - self.dec_left.shape[0]
            head = np.concatenate((self.dec_left, xc[:need]))
            if head.shape[0] < D:
                self.dec_left = head
                return
            parts.append(self.k.block_sum(head, D))
            off = need
        nb = (xc.shape[0] - off) // D
        body = xc[off:off + nb * D]
        if nb:
            parts.append(self.k.block_sum(np.ascontiguousarray(body), D))
        self.dec_left = xc[off + nb * D:].copy()
        if not parts:
            return
        dz = np.concatenate(parts) if len(parts) > 1 else parts[0]
        K = self.taps.shape[0]
        z = np.concatenate((self.fir_hist, dz))
        if z.shape[0] < K:
            self.fir_hist = z
            return
        j, y0, y1, self.armed, self.prev_y = self.k.fir_crossings(
            np.ascontiguousarray(z), self.taps, self.hyst, self.armed, self.prev_y)
        # crossing between outputs j-1 and j, interpolated as a sine of the nominal frequency
        # (exact for a pure sine there; linear interpolation at ~20 samples per cycle would
        # be off by up to ~1e-4 cycle, i.e. several mHz per cycle)
        w = self.w_dec
        frac = np.arctan(-y0 * math.sin(w) / (y1 - y0 * math.cos(w))) / w
        jg = (self.out_count + j - 1).astype(np.float64)  # global index: exact, chunk-independent
        nout = z.shape[0] - K + 1
        self.fir_hist = z[-(K - 1):].copy() if K > 1 else np.zeros(0)
        tc = ((jg + frac + (K - 1) / 2.0) * D + (D - 1) / 2.0)  # in samples
        self.out_count += nout
        self._cycles(tc)

    def _cycles(self, tc: np.ndarray) -> None:
        if tc.size == 0:
            return
        fs = self.grid.fs
        allc = tc if self.last_cross is None else np.concatenate(([self.last_cross], tc))
        self.last_cross = float(allc[-1])
        if allc.size < 2:
            return
        d = np.diff(allc)
        if not self.rate_checked:
            self.raw_periods.extend(d[:200 - len(self.raw_periods)].tolist())
            if len(self.raw_periods) >= 50:
                self._check_rate()
                self.rate_checked = True
        T = self.grid.cycle
        ok = (d > T / 1.5) & (d < T * 1.5)
        tend = allc[1:] / fs
        f = fs / d
        if ok.any():
            self.recent.append((allc[1:][ok], f[ok]))
        if self.fc_n < self.cap:
            take = min(int(ok.sum()), self.cap - self.fc_n)
            self.fc_t.append(tend[ok][:take])
            self.fc_f.append(f[ok][:take])
            self.fc_n += take
            if take < int(ok.sum()):
                self.fc_complete = False
        else:
            self.fc_complete = False
        # 10 s windows aligned to the clock; a cycle counts if it starts and ends in the window
        t0 = self.grid.clock0
        wa = np.floor((t0 + allc[:-1] / fs) / 10.0).astype(np.int64)
        wb = np.floor((t0 + tend) / 10.0).astype(np.int64)
        sel = ok & (wa == wb)
        ids = wa[sel]
        # durations summed in fixed point (2**-20 sample): exact, so chunking cannot change them
        dd = np.rint(d[sel] * 1048576.0).astype(np.int64)
        if ids.size:
            # ids are non-decreasing: sum the durations per window, in order
            first = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1))
            sums = np.add.reduceat(dd, first)
            cnts = np.diff(np.concatenate((first, [ids.size])))
            for w, s, c in zip(ids[first].tolist(), sums.tolist(), cnts.tolist()):
                if self.w10 is not None and w != self.w10:
                    self._close10()
                self.w10 = w
                self.w10_sum += int(s)
                self.w10_cnt += c
        if self.w10 is not None and wb[-1] > self.w10:
            self._close10()
            self.w10 = None

    def _close10(self) -> None:
        if self.w10 is not None and self.w10_cnt > 0:
            self.f10.append((self.w10 * 10.0 - self.grid.clock0,
                             self.grid.fs * self.w10_cnt * 1048576.0 / self.w10_sum,
                             self.w10_cnt))
        self.w10_sum, self.w10_cnt = 0, 0

    def _check_rate(self) -> None:
        """Refuse a measured frequency that shows the sample rate or nominal frequency wrong."""
        f = self.grid.fs / float(np.median(self.raw_periods))
        f_nom = self.grid.f_nom
        if not (0.8 * f_nom < f < 1.2 * f_nom):
            raise AnalysisInputError(
                f"measured mains frequency {f:.2f} Hz is far from the nominal {f_nom:g} Hz: "
                f"wrong sample rate ({self.grid.fs:g} Hz) or nominal frequency?")

    def finish(self, events: list[Event], urms_half: np.ndarray, warnings: list[str]) -> dict:
        self._close10()
        f10 = np.array(self.f10) if self.f10 else np.empty((0, 3))
        f10flag = np.zeros(f10.shape[0], np.uint8)
        if f10.shape[0]:
            for e in events:  # flag every 10 s value whose window overlaps an event
                a = np.searchsorted(f10[:, 0] + 10.0, e.iec_start_s, side="right")
                b = np.searchsorted(f10[:, 0], e.iec_start_s + (e.iec_duration_s or 0.0),
                                    side="left")
                f10flag[a:b] = FLAG_EVENT
        fct, fcf = cat(self.fc_t), cat(self.fc_f)
        fcflag = np.zeros(fct.shape[0], np.uint8)
        for e in events:  # a cycle ending at t spans about [t - 1/f, t]
            a = np.searchsorted(fct, e.iec_start_s, side="right")
            b = np.searchsorted(fct - 1.5 / self.grid.f_nom,
                                e.iec_start_s + (e.iec_duration_s or 0.0), side="left")
            fcflag[a:b] = FLAG_EVENT
        if not self.f10 and not fct.size:
            if urms_half.size and np.median(urms_half) > 0.5 * self.u_nom:
                raise AnalysisInputError(
                    f"voltage present but no {self.grid.f_nom:g} Hz cycles found: wrong sample "
                    f"rate ({self.grid.fs:g} Hz) or nominal frequency?")
            warnings.append("no mains cycles found: frequency not measured")
        elif not self.rate_checked and len(self.raw_periods) >= 3:
            self._check_rate()
        return {"freq_cycles": (fct, fcf), "freq_cycles_complete": self.fc_complete,
                "freq_cycles_flags": fcflag,
                "freq10s": (f10[:, 0], f10[:, 1], f10[:, 2].astype(np.int64), f10flag)}
