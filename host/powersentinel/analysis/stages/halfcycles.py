"""The half-cycle stage: exact per-half-cycle sums of squares, min/max and Urms(1/2)."""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ..errors import AnalysisInputError
from .grid import FLAG_CLIPPED, Grid, cat


class HalfCycleRows:
    """The half cycles one step completed, one row each (m rows, ch channels).

    k: [m] half-cycle indices; S: [m, ch] sums of squares (int64 for int16 input, else
    float64); cnt: [m] samples in each; u: [m, ch] Urms(1/2) in volts of the window ending at
    the half cycle's end; flags: [m] FLAG_CLIPPED where an int16 sample hit the ADC's range."""
    __slots__ = ("k", "S", "cnt", "u", "flags")

    def __init__(self, k, S, cnt, u, flags):
        self.k, self.S, self.cnt, self.u, self.flags = k, S, cnt, u, flags


class HalfCycleStage:
    """Urms(1/2) on the half-cycle grid: value k = rms over half cycles k-1 and k (one cycle,
    refreshed every half cycle; the first value covers just its own half cycle).

    feed(chans, n0): the step's samples, one contiguous 1-D array per channel (int16, float32 or
    float64, the same dtype in every step), the first at global index n0. Returns the
    HalfCycleRows the step completed, or None if it completed none. Raises AnalysisInputError
    for NaN or infinite samples.
    State across steps: each channel's samples of the open half cycle (raw, so the sums do not
    depend on where steps end) and the sum of squares and count of the last completed one.
    finish(warnings) -> the result fields urms_half (capped at series_cap values),
    urms_half_complete and clipped_halfcycles; appends the clipping warning."""

    def __init__(self, grid: Grid, kernels: ModuleType, channels: int, volts_per_count: float,
                 series_cap: int):
        self.grid = grid
        self.k = kernels
        self.nch = channels
        self.vpc = volts_per_count
        self.cap = series_cap
        self.k_open = 0                 # index of the half cycle being filled
        self.left: list[np.ndarray] | None = None  # its samples so far, per channel
        self.prev_sum = None            # sum of squares / count of the last completed half cycle
        self.prev_cnt = 0
        self.clipped = 0
        self.uh_t: list = []
        self.uh_v: list = []
        self.uh_n = 0
        self.uh_complete = True

    def feed(self, chans: list[np.ndarray], n0: int) -> HalfCycleRows | None:
        grid = self.grid
        dtype = chans[0].dtype
        if self.left is None:  # typed by the first step, so that carrying never converts
            self.left = [np.empty(0, dtype) for _ in range(self.nch)]
        n1 = n0 + chans[0].shape[0]
        k0 = self.k_open
        kmax = int((n1 + 1) / grid.half) + 2
        ks = np.arange(k0 + 1, kmax + 1)
        e = grid.edges(ks)
        e = e[e <= n1]
        m = e.shape[0]  # completed half cycles in this step
        if m == 0:
            for c in range(self.nch):
                self.left[c] = np.concatenate((self.left[c], chans[c]))
            return None
        int16 = dtype == np.int16
        start = grid.edge(k0)
        local = np.concatenate(([start - n0], e - n0)).astype(np.int64)
        sdt = np.int64 if int16 else np.float64
        if self.prev_sum is None:
            self.prev_sum = np.zeros(self.nch, sdt)
        S = np.empty((m, self.nch), sdt)
        mn = np.empty((m, self.nch), dtype)
        mx = np.empty((m, self.nch), dtype)
        # the kernel computes Urms(1/2) in the same pass as the sums
        u = np.empty((m, self.nch), np.float64)
        for c in range(self.nch):
            xc = chans[c]
            first = np.concatenate((self.left[c], xc[:local[1]]))
            s0, a0, b0, u0 = self.k.segment_urms(first, np.array([0, first.shape[0]], np.int64),
                                                 self.prev_sum[c], self.prev_cnt, self.vpc)
            s1, a1, b1, u1 = self.k.segment_urms(xc, np.ascontiguousarray(local[1:]), s0[0],
                                                 first.shape[0], self.vpc)
            S[0, c], mn[0, c], mx[0, c], u[0, c] = s0[0], a0[0], b0[0], u0[0]
            S[1:, c], mn[1:, c], mx[1:, c], u[1:, c] = s1, a1, b1, u1
            self.left[c] = xc[local[-1]:].copy()
        self.k_open = k0 + m
        cnt = np.diff(np.concatenate(([start], e))).astype(np.int64)
        if not int16 and not np.all(np.isfinite(S)):
            bad = int(np.argmax(~np.all(np.isfinite(S), axis=1)))
            raise AnalysisInputError(
                f"NaN or infinite samples near t={grid.edge(k0 + bad) / grid.fs:.3f} s")
        flags = np.zeros(m, np.uint8)
        if int16:
            clip = np.any((mn <= -32768) | (mx >= 32767), axis=1)
            if clip.any():
                flags[clip] |= FLAG_CLIPPED
                self.clipped += int(clip.sum())
        self.prev_sum = S[-1].copy()
        self.prev_cnt = int(cnt[-1])
        if self.uh_n < self.cap:
            take = min(m, self.cap - self.uh_n)
            self.uh_t.append(e[:take] / grid.fs)  # each value's window end
            self.uh_v.append(u[:take].copy())
            self.uh_n += take
            if take < m:
                self.uh_complete = False
        else:
            self.uh_complete = False
        return HalfCycleRows(np.arange(k0, k0 + m), S, cnt, u, flags)

    def finish(self, warnings: list[str]) -> dict:
        if self.clipped:
            warnings.append(
                f"ADC clipped in {self.clipped} half cycles "
                f"({100.0 * self.clipped / max(self.k_open, 1):.2f} % of the recording): "
                "magnitudes there are underestimated (flagged)")
        return {"urms_half": (cat(self.uh_t), cat(self.uh_v, (0, self.nch))),
                "urms_half_complete": self.uh_complete, "clipped_halfcycles": self.clipped}
