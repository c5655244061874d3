# The sampler task: ADC blocks -> mains monitor (+ waveform captures), with hooks for the
# rest of the firmware; and GapWatch, which finds samples a source lost without counting them.
# One await per block; everything else is synchronous and bounded.
#
#   adc_source  HAL AdcSource: start(); async read() -> memoryview of block_len int16 samples
#               (valid until the next read); overruns (blocks lost); ring (its buffer: a reader
#               late by more than its length loses blocks). A read() returning None ends the
#               task (replays, tests).
#   monitor     sentinel.mains.MainsMonitor, or sentinel.phases.PhaseSet for several channels
#               (blocks then interleave its nch channels; on_change also fires when a channel's
#               lost or good changed)
#   capture     sentinel.capture.Capture or None
#   on_block(monitor)            after every block (cheap: called 250 times/s at 4 kHz)
#   progress()                   after every block: the supervisor's proof of life
#   on_change(monitor)           when monitor.lost or monitor.good changed in this block
#   on_event(event_dict)         for every finished event (monitor.pop_event())
#   on_capture(meta, data)       for every finished waveform capture: data is a memoryview of
#                                the capture's int16 little-endian bytes, valid only during the
#                                call (no 4 KB copy on the heap); copy it to keep it
#   on_gap(n_samples)            samples were lost (overruns, or a source that stalled): the
#                                monitor has counted them (gaps, gap_samples) and resynchronises
#   clock                        ms ticks (default time.ticks_ms), for GapWatch
#
# Gaps. Lost blocks the source counts (overruns) are skipped in time before the next block is
# fed. A source can also lose samples silently: the virtual board's ADC paused (`virtual set
# adc=stall`) or starved by a loaded host, or a board's timer interrupt held off, resumes at a
# later phase, and that jump would read as a dip, a frequency excursion or a loss. GapWatch
# compares the samples received with a clock. When a block arrives late (the lag up by more
# than 2 blocks + 20 ms on its lowest since the last such jump), either the reader was held up
# and a backlog waits in the ring (the samples are contiguous), or the source paused: the block
# is held and the next one read; if that one was not already waiting, the held block follows a
# pause and the monitor resynchronises before it sees it. A lag up by half the ring or more (a
# loop stall that long is close to losing blocks) resynchronises at once. A lag that stays up
# for two 500 ms windows is a gap: counted and skipped like overruns. A late burst (samples
# delayed, none lost) drains back to the usual lag and is not a gap.
import sys
import time
from array import array

if sys.implementation.name == "micropython":
    import micropython  # pyright: ignore[reportAssignmentType]
else:
    class micropython:  # noqa: N801  (CPython: the decorator changes nothing)
        @staticmethod
        def native(f):
            return f

_WINDOW_MS = 500        # the lag's minimum is taken over windows this long
_MAX_DT_MS = 3600000    # a longer pause counts as this long (keeps the arithmetic small ints)
_BIG = (1 << 30) - 1

FINE = 0                # arrived(): the block follows the previous one
LATE = 1                # late: read the next block, then ask paused()
JUMP = 2                # very late: resynchronise now


class GapWatch:
    """The lag of a sample stream behind a clock (small ints throughout). rate: samples/s;
    block: samples per block; jump: a lag this far above the usual one resynchronises at once;
    overruns: the source's count of blocks it dropped, now."""

    def __init__(self, rate, block, jump, overruns=0):
        self.rate = rate
        self.block = block
        self.dropped = 0       # samples the source dropped before the last block that arrived
        self._over = overruns
        self.tol = 2 * block + rate // 50     # the lag's jitter: not a gap
        self.jump = jump if jump > self.tol else self.tol
        # samples due by the clock minus samples received (or skipped), from the usual lag:
        # each quiet window's lowest lag becomes 0, which follows clock drift and keeps it small
        self.lag = 0
        self._ref = 0          # the lowest lag since the last jump: the next one is from here
        self._t = None
        self._acc = 0          # ms * rate remainder
        self._w0 = 0
        self._lo = _BIG        # minimum lag in this window
        self._prev = 0         # minimum lag in the previous window
        self._dt = 0

    @micropython.native  # per block: a bytecode frame this big would come from the heap
    def arrived(self, now, overruns):
        """A block arrived at `now` (ms ticks); overruns: the source's count of dropped blocks
        (their samples are in `dropped`). FINE, LATE or JUMP."""
        d = overruns - self._over if overruns > self._over else 0
        self._over = overruns
        skipped = self.dropped = d * self.block
        n = self.block
        if self._t is None:            # the first block sets the usual lag: 0
            self._t = self._w0 = now
            return FINE
        dt = time.ticks_diff(now, self._t)
        self._t = now
        if dt < 0:
            dt = 0
        elif dt > _MAX_DT_MS:
            dt = _MAX_DT_MS
        self._dt = dt
        a = self._acc + (dt % 1000) * self.rate
        self.lag += (dt // 1000) * self.rate + a // 1000 - n - skipped
        self._acc = a % 1000
        if self.lag < self._lo:
            self._lo = self.lag
        if self.lag < self._ref:
            self._ref = self.lag
        up = self.lag - self._ref
        if up <= self.tol:
            return FINE
        self._ref = self.lag
        return JUMP if up > self.jump else LATE

    def paused(self):
        """After LATE and the next arrived(): True when that block was not already waiting (it
        took half a block period or more), so the late one followed a pause of the source."""
        dt = self._dt if self._dt < 1000 else 1000
        return 2 * dt * self.rate >= self.block * 1000

    @micropython.native  # per block: a bytecode frame this big would come from the heap
    def settle(self, now):
        """Call after arrived(): at the end of each window, the samples lost without being
        counted (0 if none)."""
        if time.ticks_diff(now, self._w0) < _WINDOW_MS:
            return 0
        self._w0 = now
        m = self._lo
        self._lo = _BIG
        p = self._prev
        self._prev = m
        if m <= self.tol:
            self.lag -= m
            self._ref = self._ref - m if self._ref > m else 0
            self._prev = 0
            return 0
        if p <= self.tol:
            return 0               # up for one window only: maybe a slow burst
        g = m if m < p else p
        self.lag -= g
        self._ref -= g
        self._prev = m - g
        return g


async def run(adc_source, monitor, capture=None, on_block=None, progress=None, on_change=None,
              on_event=None, on_capture=None, on_gap=None, clock=None):
    adc_source.start()
    clock = clock or time.ticks_ms
    lost = monitor.lost
    good = monitor.good
    nxt = await adc_source.read()    # a block already read: the first, or the one after a late one
    if nxt is None:
        return
    # several channels (sentinel.phases.PhaseSet): blocks interleave its nch samples per tick,
    # and the capture keeps them all. (As few new locals as possible: each is a word in this
    # coroutine's frame on a single-channel site too.)
    bl = len(nxt) // getattr(monitor, "nch", 1)   # ticks per block
    multi = bl != len(nxt)
    mask = 0    # several channels: lost_mask | good_mask << 4 at the last on_change
    watch = GapWatch(monitor.rate, bl, len(adc_source.ring) * bl // (2 * len(nxt)),
                     adc_source.overruns)
    held = array("h", bytes(2 * len(nxt)))
    nnow = clock()
    watch.arrived(nnow, adc_source.overruns)
    nd = 0
    while True:
        # everything inline: a call per block would take a heap frame on the bytecode VM
        if nxt is not None:
            block = nxt
            nxt = None
            d = nd
            now = nnow
            late = FINE
        else:
            block = await adc_source.read()
            if block is None:
                return
            now = clock()
            late = watch.arrived(now, adc_source.overruns)
            d = watch.dropped
        end = False
        if late == JUMP:
            monitor.resync()
        elif late == LATE:
            # a backlog or a pause? hold this block (its view dies at the next read) and see
            # whether the next one was already waiting
            for j in range(len(held)):
                held[j] = block[j]
            block = held
            nxt = await adc_source.read()
            if nxt is None:
                end = True
            else:
                nnow = clock()
                watch.arrived(nnow, adc_source.overruns)
                nd = watch.dropped
                if watch.paused():
                    monitor.resync()
        # samples dropped before this block (overruns, or a gap found late): skipped in time
        g = d + watch.settle(now)
        if g:
            monitor.skip(g)
            if on_gap is not None:
                on_gap(g)
        monitor.feed(block)
        if capture is not None:
            capture.feed(block, monitor)
        if monitor.lost != lost or monitor.good != good or (
                multi and monitor.lost_mask | monitor.good_mask << 4 != mask):
            lost = monitor.lost
            good = monitor.good
            if multi:
                mask = monitor.lost_mask | monitor.good_mask << 4
            if on_change is not None:
                on_change(monitor)
        if on_block is not None:
            on_block(monitor)
        if progress is not None:
            progress()
        if monitor.pending():
            ev = monitor.pop_event()
            if on_event is not None:
                on_event(ev)
        if capture is not None and capture.pending():
            c = capture.peek()
            try:
                if on_capture is not None:
                    on_capture(c[0], c[1])
            finally:
                capture.release()
        if end:
            return
