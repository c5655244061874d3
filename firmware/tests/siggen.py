# Deterministic synthetic mains for the firmware tests and benchmarks (MicroPython and CPython).
# A sine (plus optional harmonics, noise and DC offset) whose amplitude follows a piecewise
# envelope, written as int16 ADC counts; and the validated "mains" config the monitor is built from.
import math
from array import array

from sentinel import config

_MAINS = config.defaults()["mains"]


def mains_cfg(**kw):
    """The "mains" config section as config.validate() makes it (every schema default), with kw
    overriding: what the firmware hands to MainsMonitor and Capture."""
    c = dict(_MAINS)
    c.update(kw)
    return c


class Gen:
    """rate: samples/s; f: Hz; vrms: volts at envelope 1.0; vpc: volts per count.
    phase0_deg: phase at sample `phase_at`. harm: ((order, fraction of fundamental), ...).
    noise: standard deviation as a fraction of the nominal peak (approximately Gaussian).
    env: ((sample index, factor), ...) sorted; the factor holds from that index on."""

    def __init__(self, rate=4000, f=50.0, vrms=230.0, vpc=0.02, phase0_deg=0.0, phase_at=0,
                 harm=(), noise=0.0, dc=0, env=(), seed=12345):
        self.rate = rate
        self.f = f
        self.peak = vrms * math.sqrt(2) / vpc
        self.phase0 = math.radians(phase0_deg)
        self.phase_at = phase_at
        self.harm = harm
        self.noise = noise
        self.dc = dc
        self.env = env
        self.seed = seed
        self.i = 0
        self.fsched = ()  # ((sample index, frequency), ...): phase-continuous frequency steps
        self._w = None

    def _rand(self):
        # 31-bit LCG, deterministic on every port (masks keep the ints small on MicroPython)
        self.seed = (self.seed * 1103515245 + 12345) & 0x7FFFFFFF
        return self.seed / 2147483648.0

    def factor(self, i):
        k = 1.0
        for at, v in self.env:
            if i >= at:
                k = v
            else:
                break
        return k

    def _phase(self, i):
        if not self.fsched:
            return 2 * math.pi * self.f * (i - self.phase_at) / self.rate + self.phase0
        # accumulate (samples must then be made in order)
        f = self.f
        for at, v in self.fsched:
            if i >= at:
                f = v
        w = self.phase0 if self._w is None else (self._w + 2 * math.pi * f / self.rate) % (2 * math.pi)
        self._w = w
        return w

    def sample(self, i):
        w = self._phase(i)
        v = math.sin(w)
        for order, frac in self.harm:
            v += frac * math.sin(order * w)
        v *= self.factor(i) * self.peak
        if self.noise:
            g = (self._rand() + self._rand() + self._rand() + self._rand() - 2.0) * 1.7320508
            v += g * self.noise * self.peak
        v = int(round(v)) + self.dc
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        return v

    def make(self, n):
        """The next n samples as array('h')."""
        a = array("h", bytes(2 * n))
        if self.fsched or len(self.harm) > 3 or any(h[0] not in (3, 5, 7) for h in self.harm):
            for k in range(n):
                a[k] = self.sample(self.i)
                self.i += 1
            return a
        # the fast path (same values as sample()): harmonics 3/5/7 as polynomials of sin w,
        # the envelope walked with a pointer, everything in locals
        h3 = h5 = h7 = 0.0
        for order, frac in self.harm:
            if order == 3:
                h3 = frac
            elif order == 5:
                h5 = frac
            else:
                h7 = frac
        i0 = self.i
        dw = 2 * math.pi * self.f / self.rate
        w0 = self.phase0 - dw * self.phase_at
        peak = self.peak
        nz = self.noise * peak * 1.7320508
        dc = self.dc
        env = self.env
        ne = len(env)
        e = 0
        k_env = 1.0
        while e < ne and env[e][0] <= i0:
            k_env = env[e][1]
            e += 1
        seed = self.seed
        sin = math.sin
        for k in range(n):
            i = i0 + k
            while e < ne and env[e][0] <= i:
                k_env = env[e][1]
                e += 1
            x = sin(dw * i + w0)
            v = x
            if h3 or h5 or h7:
                x2 = x * x
                v += h3 * x * (3.0 - 4.0 * x2)
                v += h5 * x * (5.0 - x2 * (20.0 - 16.0 * x2))
                v += h7 * x * (7.0 - x2 * (56.0 - x2 * (112.0 - 64.0 * x2)))
            v *= k_env * peak
            if nz:
                g = 0.0
                for _ in range(4):
                    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
                    g += seed / 2147483648.0
                v += (g - 2.0) * nz
            v = int(round(v)) + dc
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            a[k] = v
        self.seed = seed
        self.i = i0 + n
        return a


def blocks(a, block_len):
    """memoryview blocks over a (made up front so feeding them allocates nothing)."""
    mv = memoryview(a)
    return [mv[k:k + block_len] for k in range(0, len(a) - block_len + 1, block_len)]
