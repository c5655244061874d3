# Per-sample cost of multi-channel mains sensing on the virtual board's interpreter (the
# MicroPython unix port), as ratios against one channel in the same run.
# Run from the repo root:
#   .venv/bin/micropython benchmarks/fw_phases_bench.py [SECONDS] [--lib DIR]
# --lib: the firmware lib to measure (default firmware/lib); point it at an older tree's
# firmware/lib to compare the single-channel path before and after.
# For 1 channel (MainsMonitor, as a site without mains.channels runs) and for 2 and 3 channels
# (PhaseSet), SECONDS (default 5) of noisy 50 Hz mains at 4 kHz per channel, blocks of 16 ticks,
# with a dip, a swell and an interruption every second on the first channel:
#   - isr: the ADC hard IRQ per tick (hal._mcu AdcSource._isr, or hal.adcpins' MultiAdcSource._isr, with a stand-in
#     ADC whose read_u16 returns a constant), called directly;
#   - feed: the monitor per tick (PhaseSet: the split of the interleaved block, every channel's
#     monitor, the aggregate, and pending() with its event merge);
#   - sampler: sentinel.sampler.run over a source that hands out the blocks at once (the whole
#     per-block path the firmware runs: gap watch, feed, capture, hooks).
# Prints us per tick, us per channel-sample, and the ratio (per tick) to 1 channel. Best of 3
# per figure.
import gc
import sys
import time

LIB = "firmware/lib"
_args = sys.argv[1:]
if "--lib" in _args:
    LIB = _args[_args.index("--lib") + 1]
    del _args[_args.index("--lib"):_args.index("--lib") + 2]
SECONDS = int(_args[0]) if _args else 5
sys.path.insert(0, LIB)
sys.path.insert(0, "firmware/tests")
sys.path.insert(0, "host/powersentinel/virtual/rom")

import asyncio  # noqa: E402
from array import array  # noqa: E402

from siggen import Gen, mains_cfg  # noqa: E402

from sentinel import sampler  # noqa: E402
from sentinel.capture import Capture  # noqa: E402
from sentinel.mains import MainsMonitor  # noqa: E402

RATE = 4000
BL = 16
NOISY = {"noise": 0.01, "harm": ((3, 0.05), (5, 0.05), (7, 0.03))}
NAMES = ("L1", "L2", "L3")


def cfg(n):
    c = mains_cfg(nominal_hz=50, sample_rate=RATE, block_len=BL)
    if n > 1 and "channels" in c:
        c["channels"] = [{"name": NAMES[i], "pin": None, "volts_per_count": None, "feed": None}
                         for i in range(n)]
    return c


def second(n):
    """One second (200 whole cycles: repeating it is phase-continuous), interleaved."""
    env = ((1000, 0.6), (1400, 1.0), (2000, 1.2), (2300, 1.0), (3000, 0.0), (3200, 1.0))
    parts = [Gen(f=50.0, phase0_deg=-120.0 * c, env=env if c == 0 else (), **NOISY).make(RATE)
             for c in range(n)]
    if n == 1:
        return parts[0]
    out = array("h", bytes(2 * RATE * n))
    for c in range(n):
        p = parts[c]
        j = c
        for i in range(RATE):
            out[j] = p[i]
            j += n
    return out


def blocks_of(a, n):
    mv = memoryview(a)
    k = BL * n
    return [mv[i:i + k] for i in range(0, len(a), k)]


def monitor(n):
    if n == 1:
        return MainsMonitor(cfg(1))
    from sentinel.phases import PhaseSet
    return PhaseSet(cfg(n))


def best(fn, reps=3):
    t = None
    for _ in range(reps):
        gc.collect()
        us = fn()
        if t is None or us < t:
            t = us
    return t


def time_feed(n, bl):
    def run():
        m = monitor(n)
        for b in bl:             # a warm-up second
            m.feed(b)
            m.pending()
        feed = m.feed
        pend = m.pending
        t0 = time.ticks_us()
        for _ in range(SECONDS):
            for b in bl:
                feed(b)
                if pend():
                    m.pop_event()
        return time.ticks_diff(time.ticks_us(), t0)
    return best(run) / (SECONDS * RATE)


class _Adc:
    def read_u16(self):
        return 33000


def time_isr(n):
    import _vboard
    _vboard.PROFILE = "rp2"
    import _vmachine
    _vmachine.configure("rp2")
    sys.modules["machine"] = _vmachine
    from hal import _mcu
    if n == 1:
        a = _mcu.AdcSource(_Adc(), RATE, BL)
    else:
        from hal.adcpins import multi_source
        a = multi_source(_mcu.AdcSource)([_Adc() for _ in range(n)], RATE, BL)
    isr = a._isr_ref

    def run():
        t0 = time.ticks_us()
        for _ in range(SECONDS * RATE):
            isr(None)
        return time.ticks_diff(time.ticks_us(), t0)
    return best(run) / (SECONDS * RATE)


class _Source:
    def __init__(self, bl, n):
        self.bl = bl
        self.ring = array("h", bytes(2 * BL * n * 64))
        self.overruns = 0
        self.nch = n
        self.k = 0
        self.total = len(bl) * (SECONDS + 1)
        self.t = 0

    def start(self):
        pass

    def clock(self):
        return self.k * BL * 1000 // RATE   # blocks arrive on time: no gap, no backlog

    async def read(self):
        if self.k >= self.total:
            return None
        b = self.bl[self.k % len(self.bl)]
        self.k += 1
        return b


def time_sampler(n, bl):
    def run():
        m = monitor(n)
        src = _Source(bl, n)
        # several channels: the capture keeps them all, interleaved as the blocks are
        cap = Capture(cfg(n)) if n == 1 else Capture(cfg(n), channels=m.names,
                                                     vpcs=[x.vpc for x in m.mons])
        t0 = time.ticks_us()
        asyncio.run(sampler.run(src, m, cap, on_block=lambda m: None, progress=lambda: None,
                                on_change=lambda m: None, on_event=lambda e: None,
                                on_capture=lambda a, b: None, on_gap=lambda g: None,
                                clock=src.clock))
        return time.ticks_diff(time.ticks_us(), t0)
    return best(run) / ((SECONDS + 1) * RATE)


def main():
    multi = "channels" in mains_cfg()
    rows = []
    for n in ((1, 2, 3) if multi else (1,)):
        bl = blocks_of(second(n), n)
        rows.append((n, time_isr(n), time_feed(n, bl), time_sampler(n, bl)))
    print("lib %s, %d s per figure, 4 kHz per channel, blocks of %d ticks" % (LIB, SECONDS, BL))
    print("| channels | isr us/tick | isr us/ch-sample | feed us/tick | feed us/ch-sample | "
          "sampler us/tick | sampler us/ch-sample | isr ratio | feed ratio | sampler ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = rows[0]
    for n, isr, feed, smp in rows:
        print("| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | x%.2f | x%.2f | x%.2f |" % (
            n, isr, isr / n, feed, feed / n, smp, smp / n, isr / base[1], feed / base[2],
            smp / base[3]))
    # the CPU share at 4 kHz per channel on this machine
    for n, isr, feed, smp in rows:
        print("%d channel(s): ISR %.2f %% + sampler task %.2f %% of a core at 4 kHz" % (
            n, isr * RATE / 1e4, smp * RATE / 1e4))


main()
