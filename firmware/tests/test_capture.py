# Waveform capture tests. Run: .venv/bin/micropython firmware/tests/mpunit.py test_capture
from array import array

from mpunit import TestCase
from siggen import Gen, blocks, mains_cfg
from sentinel.capture import Capture
from sentinel.mains import MainsMonitor

RATE = 4000
BL = 16


def cfg(**kw):
    return mains_cfg(sample_rate=RATE, block_len=BL, capture_pre_ms=100, capture_post_ms=400, **kw)


def run(a, c=None, slots=2, pop=False):
    c = c or cfg()
    m = MainsMonitor(c)
    cap = Capture(c, slots=slots)
    got = []
    for b in blocks(a, BL):
        m.feed(b)
        cap.feed(b, m)
        if pop and cap.pending():
            got.append(cap.pop())
    while cap.pending():
        got.append(cap.pop())
    return m, cap, got


class TestCapture(TestCase):
    def test_interruption_waveform_around_onset(self):
        on = 8000 + 5
        g = Gen(phase0_deg=40, phase_at=on, env=((on, 0.0), (on + 400, 1.0)), noise=0.002)
        a = g.make(on + 4000)
        m, cap, got = run(a)
        self.assertEqual(len(got), 1)
        meta, data = got[0]
        self.assertEqual(meta["n"], 2000)                  # 100 + 400 ms at 4 kHz
        self.assertEqual(len(data), 4000)
        self.assertEqual(meta["rate"], RATE)
        self.assertEqual(meta["fmt"], "int16le")
        self.assertEqual(meta["gap"], 0)
        ev = m.pop_event()
        self.assertEqual(meta["trig"], ev["trig"])
        # the anchor (disturbance start as first seen) is close to the onset, pre before it
        self.assertLessEqual(abs(meta["anchor"] - on), 50)
        self.assertEqual(meta["anchor"] - meta["t0"], 400)
        # the bytes are exactly the samples fed, from t0 on
        w = array("h", data)
        t0 = meta["t0"]
        for k in range(0, 2000, 7):
            self.assertEqual(w[k], a[t0 + k])
        # before the onset a full sine, then nothing, then the sine again
        pre = max(abs(w[k]) for k in range(0, on - t0))
        during = max(abs(w[k]) for k in range(on - t0 + 2, on - t0 + 398))
        after = max(abs(w[k]) for k in range(on + 400 - t0 + 2, 2000))
        self.assertGreater(pre, 15000)
        self.assertLess(during, 300)
        self.assertGreater(after, 15000)

    def test_slots_bounded_and_drops_counted(self):
        env = []
        for k in range(4):
            start = 4000 + k * 1000          # four dips 250 ms apart: each capture lasts 500 ms
            env.append((start, 0.5))
            env.append((start + 200, 1.0))
        a = Gen(env=tuple(env)).make(12000)
        m, cap, got = run(a)
        self.assertEqual(len(got), 2)
        self.assertEqual(cap.dropped, 2)
        self.assertEqual(cap.captured, 2)
        self.assertEqual([g[0]["trig"] for g in got], [1, 2])
        self.assertEqual(m.trig_seq, 4)
        # popping as they complete frees the slots: nothing lost
        m, cap, got = run(a, pop=True)
        self.assertEqual(cap.dropped, 0)
        self.assertEqual([g[0]["trig"] for g in got], [1, 2, 3, 4])

    def test_feed_is_allocation_free(self):
        try:
            import micropython
        except ImportError:
            micropython = None
        if not hasattr(micropython, "heap_lock"):
            self.skipTest("no heap_lock")
        a = Gen(env=((3000, 0.0), (3300, 1.0), (6000, 1.3), (6500, 1.0))).make(10000)
        bl = blocks(a, BL)
        c = cfg()
        m = MainsMonitor(c)
        cap = Capture(c)
        micropython.heap_lock()
        try:
            for b in bl:
                m.feed(b)
                cap.feed(b, m)
        finally:
            micropython.heap_unlock()
        self.assertEqual(cap.pending(), 2)
        self.assertEqual(cap.busy(), 0)

    def test_lazy_spare_slot_only_while_a_capture_is_in_flight(self):
        import gc

        # four dips 250 ms apart, captures 500 ms long: tend() (the control step, every 100 ms
        # here every 25 blocks) gives the second slot its memory once the first capture starts
        # and takes it back when none is in flight; feed() stays allocation-free throughout
        try:
            import micropython
            lock = micropython.heap_lock
            unlock = micropython.heap_unlock
        except (ImportError, AttributeError):
            lock = unlock = lambda: None
        env = []
        for k in range(4):
            env.append((4000 + k * 1000, 0.5))
            env.append((4000 + k * 1000 + 200, 1.0))
        a = Gen(env=tuple(env)).make(16000)
        c = cfg()
        m = MainsMonitor(c)
        cap = Capture(c, lazy=True)
        self.assertEqual(len(cap._bufs[1]), 0)
        spare_seen = False
        got = []
        for j, b in enumerate(blocks(a, BL)):
            lock()
            try:
                m.feed(b)
                cap.feed(b, m)
            finally:
                unlock()
            if j % 25 == 0:
                cap.tend()
                spare_seen = spare_seen or len(cap._bufs[1]) > 0
            if cap.pending() and (j // 25) % 2:   # the journal keeps up only every other step
                got.append(cap.pop())
        while cap.pending():
            got.append(cap.pop())
        cap.tend()
        self.assertTrue(spare_seen)
        self.assertEqual(len(cap._bufs[1]), 0, "the spare is let go once no capture is in flight")
        self.assertEqual(cap.short, 0)
        self.assertEqual([g[0]["trig"] for g in got], [1, 2, 3, 4])
        self.assertEqual(cap.dropped, 0)
        # the let-go spare is garbage: the heap is back where one slot leaves it
        if hasattr(gc, "mem_alloc"):
            gc.collect()
            a0 = gc.mem_alloc()
            cap.tend()
            gc.collect()
            self.assertLess(abs(gc.mem_alloc() - a0), 64)

    def test_tend_allocates_nothing_when_nothing_changes(self):
        # the control step calls it every 100 ms: no garbage while idle or while the spare is
        # already there
        try:
            import micropython
            micropython.heap_lock
        except (ImportError, AttributeError):
            self.skipTest("no heap_lock")
        a = Gen(env=((4000, 0.5), (4200, 1.0))).make(6000)
        c = cfg()
        m = MainsMonitor(c)
        cap = Capture(c, lazy=True)
        bl = blocks(a, BL)
        micropython.heap_lock()
        try:
            cap.tend()                       # idle, spare absent
        finally:
            micropython.heap_unlock()
        for b in bl:
            m.feed(b)
            cap.feed(b, m)
            if cap.busy():
                break
        cap.tend()                           # the spare's allocation
        self.assertEqual(len(cap._bufs[1]), 2 * cap.n)
        micropython.heap_lock()
        try:
            cap.tend()                       # in flight, spare there
        finally:
            micropython.heap_unlock()
        self.assertEqual(cap.short, 0)

    def test_lazy_spare_falls_back_to_one_slot_when_the_heap_cannot_give_it(self):
        try:
            import micropython
            micropython.heap_lock
        except (ImportError, AttributeError):
            self.skipTest("no heap_lock")
        env = ((4000, 0.5), (4200, 1.0), (5000, 0.5), (5200, 1.0))
        a = Gen(env=env).make(9000)
        c = cfg()
        m = MainsMonitor(c)
        cap = Capture(c, lazy=True)
        for b in blocks(a, BL):
            m.feed(b)
            cap.feed(b, m)
            if cap.busy():
                micropython.heap_lock()     # no heap: the spare's allocation fails
                try:
                    cap.tend()
                finally:
                    micropython.heap_unlock()
        self.assertGreater(cap.short, 0)
        self.assertEqual(len(cap._bufs[1]), 0)
        # one slot: the first capture kept, the second disturbance (while it waited) dropped
        self.assertEqual(cap.captured, 1)
        self.assertEqual(cap.dropped, 1)
        self.assertEqual(cap.pop()[0]["trig"], 1)

    def test_overrun_zero_fills(self):
        on = 4000
        a = Gen(env=((on, 0.0), (on + 200, 1.0))).make(8000)
        c = cfg()
        m = MainsMonitor(c)
        cap = Capture(c)
        bl = blocks(a, BL)
        for j, b in enumerate(bl):
            if 300 <= j < 304:           # 4 blocks lost after the onset
                if j == 300:
                    m.skip(4 * BL)
                continue
            m.feed(b)
            cap.feed(b, m)
        meta, data = cap.pop()
        self.assertEqual(meta["gap"], 4 * BL)
        self.assertEqual(meta["n"], 2000)
        w = array("h", data)
        k0 = 300 * BL - meta["t0"]
        self.assertEqual([w[k] for k in range(k0, k0 + 4 * BL)], [0] * (4 * BL))
        self.assertEqual(w[k0 + 4 * BL + 3], a[300 * BL + 4 * BL + 3])

    def test_memory_is_fixed(self):
        import gc

        if not hasattr(gc, "mem_alloc"):
            self.skipTest("MicroPython heap only")
        gc.collect()
        a0 = gc.mem_alloc()
        cap = Capture(cfg())
        gc.collect()
        used = gc.mem_alloc() - a0
        # 2 slots x 4000 B + ring (100 + 100 ms + block) x 2 B, plus small objects
        self.assertLess(used, 8000 + 1632 + 1500, "capture uses %d bytes" % used)
        self.assertEqual(cap.ring_n, 816)


class TestChannels(TestCase):
    def test_every_channel_interleaved_and_the_window_divided(self):
        from sentinel.phases import PhaseSet
        c = cfg()
        c["channels"] = [{"name": n, "pin": None, "volts_per_count": v, "feed": None}
                         for n, v in (("L1", None), ("L2", 0.025), ("L3", None))]
        ps = PhaseSet(c)
        names = ["L1", "L2", "L3"]
        cap = Capture(c, channels=names, vpcs=[m.vpc for m in ps.mons])
        on = 8000 + 5
        # L2 interrupted for 100 ms: each channel has its own phase and level
        gs = [Gen(phase0_deg=40 - 120 * k, phase_at=on, noise=0.002, vpc=ps.mons[k].vpc,
                  env=((on, 0.0), (on + 400, 1.0)) if k == 1 else ()) for k in range(3)]
        parts = [g.make(on + 4000) for g in gs]
        n = len(parts[0])
        a = array("h", bytes(6 * n))
        for k in range(3):
            for i in range(n):
                a[3 * i + k] = parts[k][i]
        mv = memoryview(a)
        views = [mv[3 * i:3 * (i + BL)] for i in range(0, n - n % BL, BL)]
        got = []
        try:
            import micropython
            lock = micropython.heap_lock
            unlock = micropython.heap_unlock
        except (ImportError, AttributeError):
            lock = unlock = lambda: None
        for b in views:
            lock()   # interleaved feeding is allocation-free too
            try:
                ps.feed(b)
                cap.feed(b, ps)
            finally:
                unlock()
            while cap.pending():
                got.append(cap.pop())
        self.assertEqual(len(got), 1, [g[0] for g in got])
        meta, data = got[0]
        self.assertEqual(meta["n"], 666)               # (100 + 400 ms) / 3 channels at 4 kHz
        self.assertEqual(len(data), 2 * 3 * 666)       # the memory of one channel's window
        self.assertEqual(meta["channels"], names)
        self.assertEqual(meta["channel_vpc"], [0.02, 0.025, 0.02])
        self.assertEqual(meta["anchor"] - meta["t0"], 133)   # pre: 100 ms / 3
        self.assertLessEqual(abs(meta["anchor"] - on), 50)
        w = array("h", data)
        t0 = meta["t0"]
        for i in range(0, 666, 5):                     # each channel's own samples, in order
            for k in range(3):
                self.assertEqual(w[3 * i + k], parts[k][t0 + i])
        self.assertEqual(cap.ring_n, 133 + 400 + BL)
        self.assertEqual(len(cap._ring), 3 * cap.ring_n)
