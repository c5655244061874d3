# Waveform captures around mains disturbances.
#
# A preallocated ring keeps the most recent samples; when the mains monitor opens a disturbance
# (monitor.trig_seq changes), the ring's tail from capture_pre_ms before the disturbance's
# start is copied into a free slot, and the slot then fills from the following blocks until it
# holds capture_pre_ms + capture_post_ms of samples. Finished captures are handed out as
# (meta dict, int16 little-endian sample bytes) for the journal / host: by peek() + release()
# without a copy, or by pop() as a bytes copy.
#
# Several mains channels (sentinel.phases.PhaseSet): a capture keeps every channel, interleaved
# as the ADC delivers them (ch0, ch1, ... per sampling tick), and the window is divided among
# the channels, so the capture memory is that of one channel whatever their number (device
# heap: three full windows would cost 16 KB more). Positions (t0, anchor, n) count ticks.
#
# Memory: ring (pre + 100 ms + one block) and `slots` slot buffers (pre + post each: 4000 bytes
# at 4 kHz with the default 100 + 400 ms), allocated at construction; with lazy=True only the
# first slot is, and tend() (called outside feed(), by the control step) gives the others their
# memory while a capture is in flight and lets it go once none is, so the board keeps one slot
# between disturbances (4 KB of heap). A heap that cannot give a spare leaves one slot
# (counted in `short`). A disturbance that finds no free slot is counted in `dropped`, its
# event is still reported by the monitor.
# feed() is allocation-free (the copies go through a viper kernel on MicroPython).
import sys
from array import array

_WRAP = 1 << 29  # the monitor's epoch length (sentinel.mains._WRAP)
_NONE = -(1 << 30) + 1  # no position yet


def _copy_plain(dst, src, p):
    # dst[p[0]:p[0]+p[2]] = src[p[1]:p[1]+p[2]] (int16 items) without making slice objects
    d = p[0]
    s = p[1]
    if isinstance(dst, bytearray):       # a slot: int16 little-endian in bytes
        for k in range(p[2]):
            v = src[s + k]
            j = 2 * (d + k)
            dst[j] = v & 0xFF
            dst[j + 1] = (v >> 8) & 0xFF
        return
    for k in range(p[2]):
        dst[d + k] = src[s + k]


_copy = _copy_plain
if sys.implementation.name == "micropython":
    import micropython  # pyright: ignore[reportAssignmentType]

    # viper: the copy loop; native (below): the per-block methods, whose frames are too big
    # for the bytecode VM's stack-frame limit (it would take them from the heap at every call)
    @micropython.viper  # pyright: ignore[reportAttributeAccessIssue]
    def _copy_viper(dst, src, pv):
        d = ptr16(dst)
        s = ptr16(src)
        p = ptr32(pv)
        do = p[0]
        so = p[1]
        n = p[2]
        k = 0
        while k < n:
            d[do + k] = s[so + k]
            k += 1

    _copy = _copy_viper
else:
    class micropython:  # noqa: N801  (CPython: the decorator changes nothing)
        @staticmethod
        def native(f):
            return f

_FREE = 0
_FILLING = 1
_DONE = 2
_ABSENT = 3   # a lazy slot without its memory (feed() never picks it)
_NOBUF = bytearray()   # an absent slot's buffer (one shared empty object, not None: typed)


class Capture:
    """cfg: the validated "mains" section; slots: captures kept at once (filling or
    pending); channels: the names of the mains channels sensed together (blocks interleave
    them) and vpcs each one's volts per count, None for one channel; lazy: the slots after
    the first get their memory from tend() while a capture is in flight."""

    short = 0   # tend() found no memory for a spare slot (class default: counted when it happens)

    def __init__(self, cfg, slots=2, channels=None, vpcs=None, lazy=False):
        rate = int(cfg["sample_rate"])
        self.rate = rate
        self.vpc = float(cfg["volts_per_count"])
        self.channels = channels
        self.vpcs = vpcs
        k = self.nch = len(channels) if channels else 1
        self.pre = int(cfg["capture_pre_ms"]) * rate // 1000 // k
        self.post = int(cfg["capture_post_ms"]) * rate // 1000 // k
        self.n = max(1, self.pre + self.post)
        # the monitor opens a disturbance up to ~1.5 cycles after its start: 100 ms of margin
        self.ring_n = self.pre + rate // 10 + int(cfg["block_len"])
        self._ring = array("h", bytes(2 * k * self.ring_n))
        self._w = 0       # next ring index (ticks)
        self._fill = 0    # valid ticks in the ring (<= ring_n)
        # slots are bytearrays (int16 little-endian) so they can be handed out as bytes views
        self._bufs = [bytearray(2 * k * self.n) if s == 0 or not lazy else _NOBUF
                      for s in range(slots)]
        self._state = array("i", [_FREE if b is not _NOBUF else _ABSENT for b in self._bufs])
        self._got = array("i", [0] * slots)
        self._trig = array("i", [0] * slots)
        self._t0e = array("i", [0] * slots)   # first sample: (monitor epoch, position)
        self._t0p = array("i", [0] * slots)
        self._anc = array("i", [0] * slots)   # disturbance start, samples after the first one
        self._gap = array("i", [0] * slots)   # samples lost in gaps (zero-filled)
        self._p = array("i", [0, 0, 0])
        self._lazy = lazy
        self._seen = 0
        self._nfill = 0   # slots filling (skips the slot loop when none)
        self._ep = 0
        self._exp = _NONE  # monitor position expected for the next block's first sample
        self.dropped = 0
        self.captured = 0

    @micropython.native
    def _put(self, dst, doff, src, soff, n):
        # offsets and count in ticks: nch int16 samples each
        k = self.nch
        p = self._p
        p[0] = doff * k
        p[1] = soff * k
        p[2] = n * k
        _copy(dst, src, p)

    @micropython.native
    def feed(self, block, mon):
        """Call after mon.feed(block): keeps the block and starts/extends captures. block:
        nch interleaved samples per tick."""
        n = len(block) // self.nch
        pos = mon.pos
        if mon.epoch != self._ep:
            self._exp -= (mon.epoch - self._ep) * _WRAP
            self._ep = mon.epoch
        if pos - n != self._exp and self._exp != _NONE:
            self._lost(pos - n - self._exp)
        self._exp = pos
        # ring
        rn = self.ring_n
        w = self._w
        k = n if n <= rn else rn
        a = rn - w
        if a >= k:
            self._put(self._ring, w, block, n - k, k)
            w += k
            self._w = w if w < rn else 0
        else:
            self._put(self._ring, w, block, n - k, a)
            self._put(self._ring, 0, block, n - k + a, k - a)
            self._w = k - a
        f = self._fill + k
        self._fill = f if f < rn else rn
        # slots already filling take this block
        for s in range(len(self._bufs) if self._nfill else 0):
            if self._state[s] == _FILLING:
                got = self._got[s]
                m = self.n - got
                if m > n:
                    m = n
                self._put(self._bufs[s], got, block, 0, m)
                got += m
                self._got[s] = got
                if got >= self.n:
                    self._state[s] = _DONE
                    self._nfill -= 1
        if mon.trig_seq != self._seen:
            self._seen = mon.trig_seq
            self._start(mon)

    @micropython.native
    def _lost(self, missing):
        # a gap (monitor.skip): the ring is no longer contiguous; filling slots get zeros for
        # the hole.
        self._fill = 0
        if missing <= 0:
            return
        for s in range(len(self._bufs)):
            if self._state[s] == _FILLING:
                buf = self._bufs[s]
                got = self._got[s]
                m = self.n - got
                if m > missing:
                    m = missing
                k = self.nch
                for j in range(2 * k * got, 2 * k * (got + m)):
                    buf[j] = 0
                self._got[s] = got + m
                self._gap[s] += m
                if got + m >= self.n:
                    self._state[s] = _DONE
                    self._nfill -= 1

    @micropython.native
    def _start(self, mon):
        slot = -1
        for s in range(len(self._bufs)):
            if self._state[s] == _FREE:
                slot = s
                break
        if slot < 0:
            self.dropped += 1
            return
        back = mon.since(mon.trig_pos) + self.pre   # samples before now to keep
        if back > self._fill:
            back = self._fill
        if back > self.n:
            back = self.n
        ring = self._ring
        rn = self.ring_n
        buf = self._bufs[slot]
        r = (self._w - back) % rn
        a = rn - r
        if a >= back:
            self._put(buf, 0, ring, r, back)
        else:
            self._put(buf, 0, ring, r, a)
            self._put(buf, a, ring, 0, back - a)
        self._got[slot] = back
        self._trig[slot] = mon.trig_seq
        self._t0e[slot] = mon.epoch
        self._t0p[slot] = mon.pos - back
        self._anc[slot] = mon.trig_pos - (mon.pos - back)
        self._gap[slot] = 0
        if back >= self.n:
            self._state[slot] = _DONE
        else:
            self._state[slot] = _FILLING
            self._nfill += 1
        self.captured += 1

    def pending(self):
        """Finished captures waiting for pop()."""
        c = 0
        for s in self._state:
            if s == _DONE:
                c += 1
        return c

    def busy(self):
        """Captures still filling."""
        c = 0
        for s in self._state:
            if s == _FILLING:
                c += 1
        return c

    def tend(self):
        """Lazy slots: while a capture fills or waits, the absent slots get their memory (the
        next disturbance finds a free one); once none is in use, the spares are let go. Allocates:
        never from feed() or an interrupt."""
        st = self._state
        used = self.busy() + self.pending()
        for s in range(1, len(st)):
            if used and st[s] == _ABSENT:
                try:
                    self._bufs[s] = bytearray(2 * self.nch * self.n)
                except MemoryError:
                    self.short += 1   # one slot until the heap can give another
                    return
                st[s] = _FREE
            elif not used and st[s] == _FREE and self._lazy:
                self._bufs[s] = _NOBUF
                st[s] = _ABSENT

    def _oldest(self):
        slot = -1
        for s in range(len(self._bufs)):
            if self._state[s] == _DONE and (slot < 0 or self._trig[s] < self._trig[slot]):
                slot = s
        return slot

    def peek(self):
        """Oldest finished capture as (meta, memoryview of its bytes) without copying, or None.
        The view stays valid until release()."""
        slot = self._oldest()
        if slot < 0:
            return None
        t0 = self._t0e[slot] * _WRAP + self._t0p[slot]
        meta = {"trig": self._trig[slot], "t0": t0, "anchor": t0 + self._anc[slot],
                "rate": self.rate, "n": self._got[slot], "fmt": "int16le",
                "volts_per_count": self.vpc, "gap": self._gap[slot]}
        if self.channels:   # interleaved, n ticks of nch samples
            meta["channels"] = self.channels
            meta["channel_vpc"] = self.vpcs
        # every target (ESP32, RP2040, x86) is little-endian: the slot bytes are the format
        return meta, memoryview(self._bufs[slot])[:2 * self.nch * self._got[slot]]

    def release(self):
        """Free the capture peek() returned."""
        slot = self._oldest()
        if slot >= 0:
            self._state[slot] = _FREE

    def pop(self):
        """Oldest finished capture as (meta, bytes), or None. Copies n * 2 bytes: on a busy
        heap prefer peek() + release()."""
        c = self.peek()
        if c is None:
            return None
        data = bytes(c[1])
        self.release()
        return c[0], data
