"""The mains waveform fed to the virtual board's ADC: phase-continuous across every change.

Amplitude and frequency changes take effect at the next sample; phase is integrated, so a
frequency step never jumps the waveform. An optional `at_phase` makes a change wait for the next
time the fundamental reaches that phase (degrees), so dips can start at a chosen onset phase.
"""
import math
import random
from array import array


class Waveform:
    def __init__(self, rate: int = 4000, nominal_v: float = 230.0, frequency: float = 50.0,
                 volts_per_count: float = 0.02, seed: int = 1):
        self.rate = rate
        self.nominal_v = nominal_v
        self.volts_per_count = volts_per_count
        self.level = 1.0          # fraction of nominal rms
        self.frequency = frequency
        self.noise = 0.0          # noise rms as a fraction of nominal
        self.harmonics = {}       # order -> fraction of the fundamental
        self.phase = 0.0          # radians, of the fundamental
        self.n = 0                # samples generated so far
        self._pending = None      # (phase_deg, changes) waiting for an onset phase
        self._rng = random.Random(seed)

    def set(self, at_phase=None, **changes):
        for k in changes:
            if k not in ("level", "frequency", "noise", "harmonics"):
                raise ValueError("unknown waveform setting %r" % k)
        if at_phase is None:
            self._apply(changes)
        else:
            self._pending = (float(at_phase) % 360.0, changes)

    def _apply(self, changes):
        for k, v in changes.items():
            setattr(self, k, v)

    def generate(self, count: int) -> array:
        out = array("h", bytes(2 * count))
        two_pi = 2.0 * math.pi
        peak_counts = self.nominal_v * math.sqrt(2.0) / self.volts_per_count
        for i in range(count):
            if self._pending is not None:
                want = math.radians(self._pending[0])
                step = two_pi * self.frequency / self.rate
                # apply when this sample is the first at or past the wanted phase
                if (self.phase - want) % two_pi < step:
                    self._apply(self._pending[1])
                    self._pending = None
            amp = self.level * peak_counts
            v = math.sin(self.phase)
            for order, frac in self.harmonics.items():
                v += frac * math.sin(order * self.phase)
            v *= amp
            if self.noise:
                v += self._rng.gauss(0.0, self.noise * peak_counts / math.sqrt(2.0))
            out[i] = max(-32768, min(32767, int(round(v))))
            self.phase = (self.phase + two_pi * self.frequency / self.rate) % two_pi
        self.n += count
        return out
