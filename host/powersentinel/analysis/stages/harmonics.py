"""The harmonics stage: IEC 61000-4-7 harmonic subgroups and THD of every 10/12-cycle window."""
from __future__ import annotations

import numpy as np

from .grid import Grid

BATCH = 128  # windows per batched FFT


class HarmonicsStage:
    """Harmonic subgroups (bins h*C-1 .. h*C+1 of a C-cycle window, C = 10 at 50 Hz, 12 at 60
    Hz) up to h40 (fewer if the sample rate does not reach it), THD = sqrt(sum h2..h40) / h1,
    by a batched FFT over the 10/12-cycle windows of the aggregation grid. Windows of a group
    the aggregation flagged (event, clipping) stay out of the statistics, as IEC 61000-4-30
    flagging requires (their THD reads NaN).

    feed(x, n1, groups): the step's samples [n, ch] ending at global index n1, and the flags
    of the 10/12-cycle groups the aggregation completed in the step ((group, flags) pairs).
    State across steps: the samples of the windows not yet complete (raw), and the computed
    windows whose group's flags are not known yet.
    finish() -> the result field harmonics: None without any unflagged window, else
    {"orders", "mean_v" [ch, h] (rms over the windows), "windows", "t10min", "v10min"
    [n, ch, h], "thd10min_pct" [n, ch], "thd_t", "thd_pct" [n, ch] (capped at series_cap)};
    the windows of a group never completed count as unflagged."""

    def __init__(self, grid: Grid, channels: int, volts_per_count: float, series_cap: int):
        self.grid = grid
        self.nch = channels
        self.vpc = volts_per_count
        self.cap = series_cap
        self.Nh = int(round(grid.cycles_agg * grid.fs / grid.f_nom))
        self.hmax = min(40, int((self.Nh // 2 - 2) // grid.cycles_agg))
        self.harm_buf = np.empty((0, channels))
        self.harm_g = 0                 # next harmonic window (10-cycle group index)
        self.h_sum = np.zeros((channels, self.hmax + 1))
        self.h_n = 0
        self.h_min: dict = {}           # 10-min interval -> [sum G^2 (ch, h), count, thd^2 sum]
        self.h_thd_t: list = []
        self.h_thd: list = []
        self.h_thd_n = 0
        self.g10_flags: dict[int, int] = {}   # flags of recent 10-cycle groups
        self.h_pending: list = []             # harmonic windows waiting for their group's flag

    def feed(self, x: np.ndarray, n1: int, groups: list[tuple[int, int]]) -> None:
        for g, f in groups:
            self.g10_flags[g] = f
        grid = self.grid
        buf = np.concatenate((self.harm_buf, x)) if self.harm_buf.shape[0] else x
        b0 = n1 - buf.shape[0]
        N = self.Nh
        gs = []
        g = self.harm_g
        while True:
            s = grid.edge(g * grid.G)
            if s + N > n1:
                break
            gs.append(g)
            g += 1
        if gs:
            starts = grid.edges(np.array(gs) * grid.G) - b0
            self._windows(buf, starts, np.array(gs))
            self.harm_g = g
        keep_from = grid.edge(self.harm_g * grid.G) - b0
        self.harm_buf = buf[max(keep_from, 0):].copy() if keep_from < buf.shape[0] else buf[:0].copy()

    def _windows(self, buf, starts, gidx) -> None:
        N = self.Nh
        bins = np.arange(1, self.hmax + 1) * self.grid.cycles_agg
        t = self.grid.edges(gidx * self.grid.G) / self.grid.fs
        ids = np.floor((self.grid.clock0 + t) / 600.0 + 1e-9).astype(np.int64)
        for b in range(0, len(starts), BATCH):
            st = starts[b:b + BATCH]
            idx = st[:, None] + np.arange(N)[None, :]
            win = buf[idx].astype(np.float64)  # [w, N, ch]
            X = np.fft.rfft(win, axis=1)
            P = np.abs(X) ** 2
            grp = P[:, bins - 1, :] + P[:, bins, :] + P[:, bins + 1, :]  # [w, h, ch]
            G2 = grp * (2.0 / (N * N)) * self.vpc ** 2       # squared rms volts
            G2 = np.transpose(G2, (0, 2, 1))                  # [w, ch, h]
            self.h_pending.append((gidx[b:b + BATCH], t[b:b + BATCH], ids[b:b + BATCH], G2))
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Accumulate the windows whose group flags are known (final: all of them)."""
        keep = []
        for gi, tw, ids, G2 in self.h_pending:
            known = np.array([g in self.g10_flags for g in gi.tolist()])
            if not final and not known.all():
                cut = int(np.argmin(known))
                if cut == 0:
                    keep.append((gi, tw, ids, G2))
                    continue
                keep.append((gi[cut:], tw[cut:], ids[cut:], G2[cut:]))
                gi, tw, ids, G2 = gi[:cut], tw[:cut], ids[:cut], G2[:cut]
            flag = np.array([self.g10_flags.get(g, 0) for g in gi.tolist()], np.uint8)
            good = flag == 0
            # h2..h40 summed strictly in order: a plain sum's order follows the batch's memory
            # layout and size, which would make the THD depend on the chunking
            h_sum = np.add.accumulate(G2[:, :, 1:], axis=2)[:, :, -1]
            with np.errstate(divide="ignore", invalid="ignore"):
                thd2 = np.where(G2[:, :, 0] > 0, h_sum / G2[:, :, 0], np.nan)
            if self.h_thd_n < self.cap:
                take = min(len(tw), self.cap - self.h_thd_n)
                self.h_thd_t.append(tw[:take])
                self.h_thd.append(np.where(good[:take, None], np.sqrt(thd2[:take]) * 100.0, np.nan))
                self.h_thd_n += take
            if good.any():
                self.h_sum[:, 1:] = _serial_add(self.h_sum[:, 1:], G2[good])
                self.h_n += int(good.sum())
                for w_id in np.unique(ids[good]).tolist():
                    sel = good & (ids == w_id)
                    acc = self.h_min.setdefault(w_id, [np.zeros((self.nch, self.hmax + 1)), 0,
                                                       np.zeros(self.nch)])
                    acc[0][:, 1:] = _serial_add(acc[0][:, 1:], G2[sel])
                    acc[1] += int(sel.sum())
                    acc[2] = _serial_add(acc[2], np.nan_to_num(thd2[sel]))
        self.h_pending = keep
        if self.g10_flags and not keep:
            lo = self.harm_g - 4
            for g in [g for g in self.g10_flags if g < lo]:
                del self.g10_flags[g]

    def finish(self) -> dict:
        self._flush(final=True)
        if not self.h_n:
            return {"harmonics": None}
        mins = sorted(self.h_min)
        t0 = self.grid.clock0
        return {"harmonics": {
            "orders": np.arange(self.hmax + 1),
            "mean_v": np.sqrt(self.h_sum / self.h_n),            # [ch, h] rms over windows
            "windows": self.h_n,
            "t10min": np.array([m * 600.0 - t0 for m in mins]),
            "v10min": np.array([np.sqrt(self.h_min[m][0] / self.h_min[m][1]) for m in mins]),
            "thd10min_pct": np.array([100.0 * np.sqrt(self.h_min[m][2] / self.h_min[m][1])
                                      for m in mins]),
            "thd_t": np.concatenate(self.h_thd_t) if self.h_thd_t else np.empty(0),
            "thd_pct": np.concatenate(self.h_thd) if self.h_thd else np.empty((0, self.nch)),
        }}


def _serial_add(acc: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """acc + rows[0] + rows[1] + ... strictly in that order, so that how the rows were batched
    (chunking) cannot change the rounding."""
    return np.add.accumulate(np.concatenate((acc[None], rows)), axis=0)[-1]
