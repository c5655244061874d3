"""Synthetic mains waveforms with known disturbances, for tests, benchmarks and the HIL bench.

The signal is a function of the absolute sample index, so it can be generated in consecutive
chunks of any size (``Synth.read(n)``) and the concatenation equals one ``generate`` call
bit for bit: phase, frequency drift, disturbances and noise all continue across chunks.

    s = Synth(10_000, freq=50.0, rms_v=230.0, harmonics={3: 0.05}, noise_v=0.5,
              volts_per_count=0.02, events=[dip(1.0, 0.1, 0.4, onset_deg=90)])
    x = s.generate(3.0)          # int16 counts (volts_per_count given) or float64 volts
    s.truth()                    # the disturbances as applied: type, start_s, duration_s, level
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np


@dataclass(frozen=True)
class Disturbance:
    """Multiply the waveform by `level` (per unit of the undisturbed amplitude) on [start, end).

    If onset_deg is given, the start moves forward from start_s to the first instant at which
    the fundamental's phase (sine, 0 deg = positive-going zero crossing) equals onset_deg."""
    kind: str  # "dip", "swell" or "interruption" (only a label; level decides the waveform)
    start_s: float
    duration_s: float
    level: float
    onset_deg: float | None = None


def dip(start_s: float, duration_s: float, residual_pu: float,
        onset_deg: float | None = None) -> Disturbance:
    return Disturbance("dip", start_s, duration_s, residual_pu, onset_deg)


def swell(start_s: float, duration_s: float, level_pu: float,
          onset_deg: float | None = None) -> Disturbance:
    return Disturbance("swell", start_s, duration_s, level_pu, onset_deg)


def interruption(start_s: float, duration_s: float, residual_pu: float = 0.0,
                 onset_deg: float | None = None) -> Disturbance:
    return Disturbance("interruption", start_s, duration_s, residual_pu, onset_deg)


class Synth:
    """Phase-continuous mains generator.

    sample_rate: samples per second; freq: fundamental at t = 0 (Hz); drift_hz_per_s: linear
    frequency drift; rms_v: rms of the undisturbed fundamental; harmonics: {order: amplitude
    relative to the fundamental} or {order: (relative amplitude, phase in degrees)}; noise_v:
    rms of white Gaussian noise; phase_deg: phase of the fundamental at t = 0; volts_per_count:
    if given, output is int16 counts (rounded, clipped to the int16 range, like a saturating ADC)
    else float64 volts; channels: number of phases, each shifted by -360/channels degrees (a
    disturbance applies to the phases listed in its `phases`, default all — see add()).
    """

    def __init__(self, sample_rate: float, freq: float = 50.0, rms_v: float = 230.0,
                 harmonics: dict | None = None, noise_v: float = 0.0, phase_deg: float = 0.0,
                 drift_hz_per_s: float = 0.0, volts_per_count: float | None = None,
                 events: Iterable[Disturbance] = (), seed: int | None = 0, channels: int = 1,
                 dc_v: float = 0.0):
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if channels < 1:
            raise ValueError("channels must be >= 1")
        self.fs = float(sample_rate)
        self.freq = float(freq)
        self.drift = float(drift_hz_per_s)
        self.amp = float(rms_v) * math.sqrt(2.0)
        self.harmonics: list[tuple[int, float, float]] = []
        for order, spec in (harmonics or {}).items():
            rel, ph = (spec if isinstance(spec, tuple) else (spec, 0.0))
            self.harmonics.append((int(order), float(rel), math.radians(ph)))
        self.noise_v = float(noise_v)
        self.phase0 = float(phase_deg) / 360.0
        self.vpc = volts_per_count
        self.channels = channels
        self.dc_v = float(dc_v)
        self.seed = seed
        self._events: list[tuple[Disturbance, float, float, tuple[int, ...]]] = []
        for ev in events:
            self.add(ev)
        self.reset()

    def reset(self) -> None:
        """Start again at sample 0 (same noise sequence for the same seed)."""
        self.pos = 0
        self._rng = np.random.default_rng(self.seed)

    # -- phase ---------------------------------------------------------------------------------
    def cycles(self, t: np.ndarray | float):
        """Phase of the fundamental in cycles at time t (closed form: no drift accumulates)."""
        return self.phase0 + self.freq * t + 0.5 * self.drift * t * t

    def freq_at(self, t: float) -> float:
        return self.freq + self.drift * t

    def _onset(self, start_s: float, onset_deg: float) -> float:
        target = (onset_deg / 360.0) % 1.0
        c = float(self.cycles(start_s))
        f = self.freq_at(start_s)
        if f <= 0:
            raise ValueError("frequency must stay positive")
        t = start_s + ((target - c) % 1.0) / f
        for _ in range(3):  # Newton on cycles(t) = integer + target, for drift
            err = float(self.cycles(t)) - (math.floor(float(self.cycles(t)) - target + 0.5) + target)
            t -= err / self.freq_at(t)
        return t

    def add(self, ev: Disturbance, phases: Iterable[int] | None = None) -> None:
        """Add a disturbance (before generating the samples it covers)."""
        start = self._onset(ev.start_s, ev.onset_deg) if ev.onset_deg is not None else ev.start_s
        ph = tuple(range(self.channels)) if phases is None else tuple(phases)
        self._events.append((ev, start, start + ev.duration_s, ph))

    def truth(self) -> list[dict]:
        """The disturbances as applied, sorted by start: kind, start_s, duration_s, end_s,
        level (pu), phases."""
        out = [{"type": ev.kind, "start_s": s, "duration_s": e - s, "end_s": e,
                "level": ev.level, "phases": list(ph)} for ev, s, e, ph in self._events]
        return sorted(out, key=lambda d: d["start_s"])

    # -- samples -------------------------------------------------------------------------------
    def _volts(self, n0: int, n: int) -> np.ndarray:
        idx = np.arange(n0, n0 + n, dtype=np.float64)
        t = idx / self.fs
        cyc = self.cycles(t)
        out = np.empty((n, self.channels))
        for ch in range(self.channels):
            c = cyc - ch / self.channels
            frac = c - np.floor(c)  # keep the argument small: precise after a week too
            ph = 2.0 * np.pi * frac
            v = np.sin(ph)
            for order, rel, hph in self.harmonics:
                v += rel * np.sin(order * ph + hph)
            env = np.ones(n)
            for ev, s, e, phs in self._events:
                if ch not in phs:
                    continue
                if e * self.fs < n0 or s * self.fs > n0 + n:
                    continue
                env[(t >= s) & (t < e)] = ev.level
            out[:, ch] = self.amp * env * v + self.dc_v
        if self.noise_v > 0:
            out += self._rng.standard_normal((n, self.channels)) * self.noise_v
        return out

    def read(self, n: int) -> np.ndarray:
        """The next n samples: shape (n,) for one channel, else (n, channels)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        v = self._volts(self.pos, n)
        self.pos += n
        if self.vpc is not None:
            q = np.rint(v / self.vpc)
            np.clip(q, -32768, 32767, out=q)
            v = q.astype(np.int16)
        return v[:, 0] if self.channels == 1 else v

    def chunks(self, total: int, size: int) -> Iterator[np.ndarray]:
        """Yield `total` samples in chunks of at most `size`."""
        left = total
        while left > 0:
            k = min(size, left)
            yield self.read(k)
            left -= k

    def generate(self, duration_s: float) -> np.ndarray:
        """Samples for duration_s seconds from the current position."""
        return self.read(int(round(duration_s * self.fs)))
