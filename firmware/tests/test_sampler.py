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
    """Serves n samples of a siggen.Gen in blocks through one reused buffer, as the HAL does;
    `lose` maps a block number to how many blocks the "hardware" dropped before it."""

    def __init__(self, g, n, lose=None):
        self.g = g
        self.n = n
        self.chunk = None
        self.c0 = 0
        self.buf = array("h", bytes(2 * BL))
        self.mv = memoryview(self.buf)
        self.k = 0
        self.overruns = 0
        self.lose = lose or {}
        self.started = False
        self.rate = RATE
        self.block_len = BL

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
        if self.k + BL > self.n:
            return None
        for j in range(BL):
            self.buf[j] = self._at(self.k + j)
        self.k += BL
        return self.mv


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

        asyncio.run(sampler.run(adc, m, cap, on_block=on_block, progress=progress,
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
        asyncio.run(sampler.run(adc, m))
        self.assertEqual(adc.overruns, 3)
        self.assertEqual(m.samples, 12000)   # fed + skipped
        self.assertTrue(m.good)
        self.assertFalse(m.lost)
        self.assertEqual(m.pending(), 0)
