"""What the analysis stages share: the half-cycle grid of the recording and the row flags."""
from __future__ import annotations

import math

import numpy as np

FLAG_EVENT = 1    # an event touched the half cycle / aggregate
FLAG_CLIPPED = 2  # the ADC clipped in it (int16 samples at -32768 or 32767)


class Grid:
    """Fixed half-cycle windows at the declared nominal frequency (IEC 61000-4-30 Class S):
    edge k at round(k * fs / (2 f_nom)), as a global sample index from the first sample.

    fs, f_nom: sample rate and nominal frequency; half / cycle: samples per nominal half cycle
    and cycle; cycles_agg: cycles per aggregation window (10 at 50 Hz, 12 at 60 Hz), G the
    half cycles in one; clock0: the clock time of the first sample (0 when unknown), which the
    10 s and 10 min windows are aligned to."""
    __slots__ = ("fs", "f_nom", "half", "cycle", "cycles_agg", "G", "clock0")

    def __init__(self, sample_rate: float, nominal_hz: float, start_time: float | None):
        self.fs = float(sample_rate)
        self.f_nom = float(nominal_hz)
        self.half = self.fs / (2.0 * self.f_nom)
        self.cycle = self.fs / self.f_nom
        self.cycles_agg = int(round(self.f_nom / 5.0))
        self.G = 2 * self.cycles_agg
        self.clock0 = (start_time or 0.0) + 0.0

    def edge(self, k: int) -> int:
        """Global sample index of half-cycle edge k."""
        return int(math.floor(float(k) * self.half + 0.5))

    def edges(self, k) -> np.ndarray:
        """edge() of an array of k (same arithmetic, so the same values)."""
        return np.floor(np.asarray(k, np.float64) * self.half + 0.5).astype(np.int64)


def cat(parts: list, empty_shape: tuple = (0,)) -> np.ndarray:
    """The concatenation of a series kept in parts (an empty array of empty_shape if none)."""
    return np.concatenate(parts) if parts else np.empty(empty_shape)
