"""IEC 61000-4-30 style dip / swell / interruption events on Urms(1/2), for the mains monitor.

Owns the two event state machines (low: a dip, reported as an interruption when its residual
went below interruption_pct; high: a swell) with their hysteresis, the history of half-cycle
segments that places each event's start and end inside the half cycle where the voltage
changed, and the queue of finished events until pop(). sentinel.mains.MainsMonitor owns the
samples, Urms(1/2), "lost" and the disturbance numbering; it calls add() for every half-cycle
segment and update() with every Urms(1/2).

Levels are mean squares in the monitor's units; positions are sample indexes in the monitor's
current epoch. add(), update() and rebase() run inside MainsMonitor.feed() and never allocate
(every attribute exists from __init__ on); pop() makes the dict.
"""
import math
import sys
from array import array

if sys.implementation.name == "micropython":
    from micropython import const  # pyright: ignore[reportAssignmentType]
else:
    # CPython: const and the decorator change nothing (MicroPython's compiler resolves
    # @micropython.native itself: no import needed there)
    def const(x):
        return x

    class micropython:  # noqa: N801
        @staticmethod
        def native(f):
            return f

_WRAP = const(1 << 29)      # the monitor's epoch length (sentinel.mains._WRAP)
_HALF = const(1 << 28)
_HN = const(8)              # half-cycle segments kept for event edge timing
_NC = const(5)              # start-edge candidate segments per event
_EQ = const(8)              # finished events kept until popped
_EF = const(13)             # ints per event record

_DIP = const(1)
_SWELL = const(2)
_INTERRUPTION = const(3)
_KINDS = (None, "dip", "swell", "interruption")


def _span_frac(e):
    # Fraction of a half cycle (from one of its ends) that holds energy fraction e of a sine:
    # solves (p - sin(p)cos(p)) / pi = e for p / pi by bisection (monotonic, 2**-20 precise).
    if e <= 0:
        return 0.0
    if e >= 1:
        return 1.0
    lo = 0.0
    hi = 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        p = mid * math.pi
        if (p - math.sin(p) * math.cos(p)) / math.pi < e:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _clear(ch):
    for j in range(_NC):
        ch[j] = -1


def _shift(a):
    # (positions older than one epoch only matter to events longer than 37 h at 4 kHz)
    for k in range(len(a)):
        v = a[k] - _WRAP
        a[k] = v if v > -_WRAP else -_WRAP


class EventDetector:
    """Dips, swells and interruptions of one phase. cfg: the validated "mains" section;
    thr(pct): the mean square of pct % of nominal_v; volts(ms): a mean square in volts."""

    def __init__(self, cfg, thr, volts):
        self.rate = int(cfg["sample_rate"])
        self.nominal_v = float(cfg["nominal_v"])
        self._volts = volts
        hyst = float(cfg["hysteresis_pct"])
        dip = float(cfg["dip_pct"])
        swell = float(cfg["swell_pct"])
        self.ms_nom = thr(100.0)   # the mean square of nominal_v
        self._dip_on = thr(dip)
        self._dip_off = thr(dip + hyst)
        self._sw_on = thr(swell)
        self._sw_off = thr(swell - hyst)
        self._int_on = thr(float(cfg["interruption_pct"]))
        # segment history (for event edges): mean square, start position, length
        self._hh = array("i", [0] * _HN)
        self._hs = array("i", [0] * _HN)
        self._hl = array("i", [0] * _HN)
        # start-edge candidates of the low (dip) and high (swell) machines
        self._lc_h = array("i", [0] * _NC)
        self._lc_s = array("i", [0] * _NC)
        self._lc_l = array("i", [0] * _NC)
        self._hc_h = array("i", [0] * _NC)
        self._hc_s = array("i", [0] * _NC)
        self._hc_l = array("i", [0] * _NC)
        self._evq = array("i", [0] * (_EQ * _EF))
        self.dropped = 0       # finished events lost to a full queue
        self._epoch = 0        # the monitor's (time keeps running through reset())
        self.reset()

    def reset(self):
        """Forget the history, any open event and the queue."""
        self._hk = 0
        self._hcount = 0
        self.onset = 0         # set by add(), read before the next rebase(): where a change the
        self.window = 0        # next Urms(1/2) shows can start, and where that window starts
        self._lo = 0           # low event: 0 idle, else active
        self._hi = 0
        self.active = 0        # either is active
        self._lo_trig = 0
        self._hi_trig = 0
        self._lo_u = self._lo_p = self._lo_m = 0
        self._hi_u = self._hi_p = self._hi_m = 0
        _clear(self._lc_h)
        _clear(self._hc_h)
        self._qh = 0
        self._qn = 0
        self._seq = 0

    def rebase(self):
        """The monitor moved its positions back by one epoch."""
        self._epoch += 1
        _shift(self._hs)
        _shift(self._lc_s)
        _shift(self._hc_s)

    def add(self, h, start, n):
        """A half-cycle segment [start, start + n) of mean square h is complete. (Bytecode:
        its frame is small enough for the VM's stack, and native code is 5x larger.)"""
        k = (self._hk + 1) % _HN
        self._hk = k
        self._hh[k] = h
        self._hs[k] = start
        self._hl[k] = n
        if self._hcount < _HN:
            self._hcount += 1
        self.onset = self._hs[(k - 2) % _HN]
        self.window = self._hs[(k - 1) % _HN]

    @micropython.native
    def update(self, u, lost, trig):
        """Step both machines with a new Urms(1/2) u over the two newest segments. lost: the
        monitor's "lost"; trig: its disturbance count. Returns trig, plus one when an event
        starts while nothing is open (neither "lost" nor the other event): a new disturbance,
        starting at onset."""
        k = self._hk
        h = self._hh[k]
        # low (dip / interruption) machine
        if self._lo:
            self._track(self._lc_h, self._lc_s, self._lc_l, h)
            if h < self._lo_m:
                self._lo_m = h
            if u < self._lo_u:
                self._lo_u = u
            if u >= self._dip_off:
                kind = _INTERRUPTION if self._lo_u < self._int_on else _DIP
                self._finish(kind, self._lo_trig, self._lc_h, self._lc_s, self._lc_l, self._lo_p, self._lo_m,
                             self._lo_u, k, False)
                self._lo = 0
        elif u < self._dip_on:
            if not (lost or self._hi):
                trig += 1
            self._lo = 1
            self._lo_trig = trig
            self._lo_u = u
            self._lo_p = self._pre(k)
            self._lo_m = self._seed(self._lc_h, self._lc_s, self._lc_l, k, False)
        # high (swell) machine
        if self._hi:
            self._track(self._hc_h, self._hc_s, self._hc_l, h)
            if h > self._hi_m:
                self._hi_m = h
            if u > self._hi_u:
                self._hi_u = u
            if u <= self._sw_off:
                self._finish(_SWELL, self._hi_trig, self._hc_h, self._hc_s, self._hc_l, self._hi_p,
                             self._hi_m, self._hi_u, k, True)
                self._hi = 0
        elif u > self._sw_on:
            if not (lost or self._lo):
                trig += 1
            self._hi = 1
            self._hi_trig = trig
            self._hi_u = u
            self._hi_p = self._pre(k)
            self._hi_m = self._seed(self._hc_h, self._hc_s, self._hc_l, k, True)
        self.active = self._lo or self._hi
        return trig

    def _pre(self, k):
        # the level before the event: the segment before the earliest possible onset
        if self._hcount >= 4:
            return self._hh[(k - 3) % _HN]
        return self.ms_nom

    @micropython.native
    def _seed(self, ch, cs, cl, k, high):
        # the three newest segments may hold the onset; up to two more are added later
        m = self._hh[k]
        for j in range(3):
            kk = (k - 2 + j) % _HN
            if j < 3 - self._hcount:      # not measured yet (just after start-up)
                ch[j] = 0 if high else _HALF
                cs[j] = self._hs[k]
                cl[j] = 0
                continue
            v = self._hh[kk]
            ch[j] = v
            cs[j] = self._hs[kk]
            cl[j] = self._hl[kk]
            if (v > m) if high else (v < m):
                m = v
        for j in range(3, _NC):
            ch[j] = -1
        return m

    @micropython.native
    def _track(self, ch, cs, cl, h):
        # collect the start candidates that follow the detection
        for j in range(_NC):
            if ch[j] < 0:
                ch[j] = h
                cs[j] = self._hs[self._hk]
                cl[j] = self._hl[self._hk]
                return

    def _cand_count(self, ch):
        # candidates are filled in order; unfilled ones hold -1
        for j in range(_NC):
            if ch[j] < 0:
                return j
        return _NC

    @micropython.native
    def _finish(self, kind, trig, ch, cs, cl, pre, ext_h, ext_u, k, high):
        # Edges: the transition half cycle is the one around the level midway between the
        # pre-event level and the extreme; pop() places the edge inside it from its level.
        span = ext_h - pre if high else pre - ext_h
        if span < 1:
            span = 1
        cnt = self._cand_count(ch)
        js = cnt - 1
        for j in range(cnt):
            a = ch[j] - pre if high else pre - ch[j]
            if 2 * a >= span:
                js = j
                break
        # onset in js, or in the half cycle before it if that one is the more mixed
        if js > 0:
            a1 = ch[js - 1] - pre if high else pre - ch[js - 1]
            a0 = ch[js] - pre if high else pre - ch[js]
            if a1 > span - a0:
                js -= 1
        hh = self._hh
        je = k
        for j in range(self._hcount):
            kk = (k - j) % _HN
            a = hh[kk] - pre if high else pre - hh[kk]
            if 2 * a >= span:
                je = kk
                break
        # recovery in je, or in the half cycle after it if that one is the more mixed
        if je != k:
            kn = (je + 1) % _HN
            a0 = hh[je] - pre if high else pre - hh[je]
            a1 = hh[kn] - pre if high else pre - hh[kn]
            if a1 > span - a0:
                je = kn
        if self._qn >= _EQ:
            self.dropped += 1
            _clear(ch)
            return
        q = self._evq
        b = ((self._qh + self._qn) % _EQ) * _EF
        self._qn += 1
        self._seq += 1
        q[b] = kind
        q[b + 1] = self._seq
        q[b + 2] = trig
        q[b + 3] = self._epoch
        q[b + 4] = cs[js]
        q[b + 5] = cl[js]
        q[b + 6] = ch[js]
        q[b + 7] = self._hs[je]
        q[b + 8] = self._hl[je]
        q[b + 9] = hh[je]
        q[b + 10] = pre
        q[b + 11] = ext_h
        q[b + 12] = ext_u
        _clear(ch)

    # -- read side (may allocate) ----------------------------------------------------------
    def pending(self):
        return self._qn

    def pop(self):
        """Oldest finished event as a dict, or None (see MainsMonitor.pop_event())."""
        if not self._qn:
            return None
        q = self._evq
        b = self._qh * _EF
        self._qh = (self._qh + 1) % _EQ
        self._qn -= 1
        kind = q[b]
        pre = q[b + 10]
        span = abs(q[b + 11] - pre) or 1
        base = q[b + 3] * _WRAP
        # the disturbed part of each transition half cycle, from its level
        d = min(1.0, abs(q[b + 6] - pre) / span)
        start = q[b + 4] + q[b + 5] * (1.0 - _span_frac(d))
        d = min(1.0, abs(q[b + 9] - pre) / span)
        end = q[b + 7] + q[b + 8] * _span_frac(d)
        n = max(1, int(end - start + 0.5))
        start = base + int(start + 0.5)
        v = self._volts(q[b + 12])
        ev = {"kind": _KINDS[kind], "seq": q[b + 1], "trig": q[b + 2], "start": start,
              "start_ms": start * 1000 // self.rate, "samples": n,
              "duration_ms": n * 1000 / self.rate,
              "pct": round(100 * v / self.nominal_v, 2)}
        ev["peak_v" if kind == _SWELL else "residual_v"] = round(v, 2)
        return ev
