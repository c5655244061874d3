# Sampler task tests: a fake AdcSource drives sentinel.sampler.run under asyncio.
# Run: .venv/bin/micropython firmware/tests/mpunit.py test_sampler
import asyncio
from array import array

from mpunit import TestCase
from siggen import Gen, mains_cfg
from sentinel.capture import Capture
from sentinel.mains import MainsMonitor
from sentinel import sampler

RATE = 4000
BL = 16
CFG = mains_cfg(nominal_hz=50, sample_rate=RATE, block_len=BL)


class FakeAdc:
    """Serves n samples of a siggen.Gen in blocks through one reused buffer, as the HAL does,
    with a clock: a block is delivered when its last sample has been made (or later, see late).
    The maps are keyed by the block number (sample index // BL) where the fault starts:
    lose: blocks the "hardware" dropped and counted as overruns; stall: ms during which the
    source made samples it never delivered nor counted (a paused virtual ADC); late: ms by which
    the samples from there on are delayed, then delivered at once (a starved host)."""

    def __init__(self, g, n, lose=None, stall=None, late=None):
        self.g = g
        self.n = n
        self.chunk = None
        self.c0 = 0
        self.buf = array("h", bytes(2 * BL))
        self.mv = memoryview(self.buf)
        self.ring = array("h", bytes(2 * BL * 64))   # only its length matters here
        self.k = 0
        self.overruns = 0
        self.lose = lose or {}
        self.stall = stall or {}
        self.late = late or {}
        self.started = False
        self.rate = RATE
        self.block_len = BL
        self.t_us = 0
        self.hold = 0

    def clock(self):
        return self.t_us // 1000

    def start(self):
        self.started = True

    def _at(self, i):
        # the signal in chunks of 1600 samples (the generator runs forward only)
        while self.chunk is None or i >= self.c0 + len(self.chunk):
            if self.chunk is not None:
                self.c0 += len(self.chunk)
            self.chunk = self.g.make(1600)
        return self.chunk[i - self.c0]

    async def read(self):
        await asyncio.sleep(0)
        blk = self.k // BL
        if blk in self.lose:
            n = self.lose.pop(blk)
            self.overruns += n
            self.k += BL * n
        if blk in self.stall:
            self.k += self.stall.pop(blk) * RATE // 1000
        if blk in self.late:
            self.hold = self.k * 1000000 // RATE + self.late.pop(blk) * 1000
        if self.k + BL > self.n:
            return None
        for j in range(BL):
            self.buf[j] = self._at(self.k + j)
        self.k += BL
        self.t_us = max(self.t_us, self.k * 1000000 // RATE, self.hold)
        return self.mv


def run_faulty(n, **faults):
    """A good supply through FakeAdc with faults; returns (monitor, changes after start-up,
    events, on_gap calls). monitor.resyncs counts its resync() calls."""
    adc = FakeAdc(Gen(f=50.02, noise=0.005, harm=((3, 0.04),)), n, **faults)
    m = MainsMonitor(CFG)
    changes = []
    evs = []
    gaps = []
    m.resyncs = 0
    resync = m.resync

    def counted():
        m.resyncs += 1
        resync()

    m.resync = counted
    asyncio.run(sampler.run(adc, m, on_event=evs.append, on_gap=gaps.append, clock=adc.clock,
                            on_change=lambda mon: changes.append((mon.samples, mon.lost,
                                                                  mon.good))))
    return m, changes[1:], evs, gaps


class TestSampler(TestCase):
    def test_run_feeds_and_reports(self):
        on = 6000
        adc = FakeAdc(Gen(env=((on, 0.0), (on + 800, 1.0))), 16000)
        m = MainsMonitor(CFG)
        cap = Capture(CFG)
        calls = {"progress": 0, "block": 0}
        changes = []
        evs = []
        caps = []

        def progress():
            calls["progress"] += 1

        def on_block(mon):
            calls["block"] += 1

        asyncio.run(sampler.run(adc, m, cap, on_block=on_block, progress=progress, clock=adc.clock,
                                on_change=lambda mon: changes.append((mon.samples, mon.lost, mon.good)),
                                on_event=evs.append,
                                on_capture=lambda meta, data: caps.append((meta, len(data)))))
        self.assertTrue(adc.started)
        self.assertEqual(calls["progress"], 1000)       # every block
        self.assertEqual(calls["block"], 1000)
        self.assertEqual(m.samples, 16000)
        # good at start-up, lost at the onset (within 15 ms), back after
        self.assertTrue(changes[0][2])
        lost = [c for c in changes if c[1]]
        self.assertEqual(len(lost), 1)
        self.assertLessEqual(lost[0][0] - on, 60)
        self.assertTrue(changes[-1][2])
        self.assertEqual([e["kind"] for e in evs], ["interruption"])
        self.assertEqual(len(caps), 1)
        self.assertEqual(caps[0][1], 4000)
        self.assertEqual(caps[0][0]["trig"], evs[0]["trig"])

    def test_overruns_keep_the_clock(self):
        adc = FakeAdc(Gen(noise=0.005), 12000, lose={200: 3})
        m = MainsMonitor(CFG)
        asyncio.run(sampler.run(adc, m, clock=adc.clock))
        self.assertEqual(adc.overruns, 3)
        self.assertEqual(m.samples, 12000)   # fed + skipped
        self.assertTrue(m.good)
        self.assertFalse(m.lost)
        self.assertEqual(m.pending(), 0)

    def test_overruns_are_a_counted_gap(self):
        m, changes, evs, gaps = run_faulty(12000, lose={200: 3, 400: 40})
        self.assertEqual(gaps, [3 * BL, 40 * BL])
        self.assertEqual((m.gaps, m.gap_samples), (2, 43 * BL))
        self.assertEqual(changes, [])          # good throughout, never lost
        self.assertEqual(evs, [])

    def test_silent_stall_is_a_gap_not_an_anomaly(self):
        # the source pauses and resumes at a later phase without counting anything
        for ms in (30, 50, 200, 333, 2000):
            n = ms * RATE // 1000
            m, changes, evs, gaps = run_faulty(20000 + 2 * n, stall={300: ms, 700 + n // BL: ms})
            self.assertEqual(changes, [], "%r ms" % ms)
            self.assertEqual(evs, [])
            self.assertEqual(len(gaps), 2, "%r ms: %r" % (ms, gaps))
            for g in gaps:
                self.assertLessEqual(abs(g - ms * RATE // 1000), 8, "%r ms: %r" % (ms, gaps))
            self.assertEqual(m.gaps, 2)
            # the sample clock stays true: every sample made is fed or skipped
            self.assertLessEqual(abs(m.samples - (20000 + 2 * n)), 16)

    def test_stalls_in_quick_succession_are_each_resynchronised(self):
        # a second pause before the first one was counted (within a second) is still caught
        for ms, apart in ((50, 20), (90, 60), (150, 100), (300, 250)):
            stall = {}
            blk = 300
            for _ in range(4):
                stall[blk] = ms
                blk += ms * RATE // 1000 // BL + apart
            m, changes, evs, gaps = run_faulty(blk * BL + 12000, stall=stall)
            self.assertEqual(changes, [], "%r ms %r blocks apart" % (ms, apart))
            self.assertEqual(evs, [])
            self.assertEqual(sum(gaps), 4 * ms * RATE // 1000, "%r ms: %r" % (ms, gaps))

    def test_late_burst_is_neither_a_gap_nor_an_anomaly(self):
        # samples delayed (a starved host), none lost: no gap, whatever the delay
        for ms in (40, 200, 1500):
            m, changes, evs, gaps = run_faulty(20000, late={300: ms, 2000: ms})
            self.assertEqual(changes, [], "%r ms" % ms)
            self.assertEqual(evs, [])
            self.assertEqual(gaps, [], "%r ms" % ms)
            self.assertEqual(m.samples, 20000)
            if ms < 128:     # a backlog below half the ring: seen waiting, no resync needed
                self.assertEqual(m.resyncs, 0)

    def test_outage_after_a_stall_is_decided(self):
        on = 300 * BL + 4000 + 200          # 50 ms after the source resumes
        adc = FakeAdc(Gen(env=((on, 0.0),)), on + 1000, stall={300: 1000})
        m = MainsMonitor(CFG)
        lost = []
        asyncio.run(sampler.run(adc, m, clock=adc.clock,
                                on_change=lambda mon: lost.append(adc.k) if mon.lost else None))
        self.assertTrue(lost)
        self.assertLessEqual(lost[0] - on, 60)


class TestGapWatch(TestCase):
    def test_drift_is_not_a_gap(self):
        # the ADC 0.1 % slower than the clock for 100 s: the usual lag follows
        w = sampler.GapWatch(RATE, BL, 512)
        t = 0
        for k in range(25000):
            t = k * 4004 // 1000
            self.assertEqual(w.arrived(t, 0), sampler.FINE)
            self.assertEqual(w.settle(t), 0)
        self.assertLess(abs(w.lag), 200)     # kept near 0: no growth with the drift

    def test_long_pause_keeps_small_ints(self):
        w = sampler.GapWatch(20000, 32, 512)
        w.arrived(0, 0)
        self.assertEqual(w.arrived(10 * 3600 * 1000, 0), sampler.JUMP)   # counted as 1 h
        self.assertLessEqual(w.lag, 3600 * 20000)
