# Mains monitor: Urms(1/2), frequency, a fast "mains lost" trigger and the disturbance numbering
# that captures follow, computed from blocks of int16 ADC samples; it feeds Urms(1/2) to the
# IEC 61000-4-30 style dip/swell/interruption detector (sentinel.mainsevents) and orchestrates.
#
# Time is the sample index (sample / sample_rate), so results are deterministic under test.
# feed() is allocation-free (MicroPython: no float and no integer beyond the 31-bit small-int
# range is ever made in it; tests prove it with micropython.heap_lock()). Floats and dicts are
# only made by the read-side properties and pop_event().
#
# Per sample (the kernel, viper on MicroPython, plain Python otherwise; same arithmetic):
#   - DC offset removal (the offset is a slow running mean updated each half cycle);
#   - square, scaled by >> _SH, summed over the current half-cycle segment;
#   - zero crossings with hysteresis (a crossing counts only after the signal went beyond +-zh
#     on the other side), which noise and harmonics cannot multiply;
#   - the fast loss checks, either of which decides "lost":
#     - samples since |x| last exceeded lv; a sine above lost_pct exceeds lv for at least 60 of
#       every 180 degrees, so 120 degrees (of the nominal cycle) without one means the supply
#       has gone, whatever the onset phase (the quicker check for deep interruptions);
#     - the sum of squares over a sliding window of one nominal half period, compared with
#       lost_pct: the square of a wave made of odd harmonics (mains) repeats every half cycle,
#       so that window gives Urms over exactly the last half cycle whatever the phase and the
#       wave shape. It decides every residual below lost_pct within one half period of the
#       onset; the envelope check alone misses residuals just below lost_pct whose harmonics
#       keep them above lv (they were left to Urms(1/2): up to 19.5 ms at 50 Hz).
# Per half cycle (segment boundaries at accepted zero crossings, or forced when crossings are
# missing): Urms(1/2) over the last two segments, the dip/swell/interruption machines (owned by
# sentinel.mainsevents.EventDetector), frequency from interpolated up-crossings averaged over
# up to 10 cycles.
# The methods on that path are @micropython.native: a bytecode function whose frame exceeds
# 11 words takes it from the heap at every call (a collection each time on a full heap).
#
# Gaps: samples the source lost (skip(n): ADC overruns, a stalled source) or samples that may not
# be contiguous (resync()) restart the half-cycle segmentation, the Urms(1/2) window, the
# frequency average and the fast checks at the next zero crossing. The decisions (lost, good, an
# open event) are held until post-gap samples decide them: a gap is never itself a dip, a
# frequency excursion or a loss. gaps / gap_samples count them.
import math
from array import array

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:
    def const(x):
        return x

import sys

from sentinel.mainsevents import EventDetector

# The native and viper emitters exist on every MicroPython port this firmware targets; their
# decorators are resolved by the compiler (so they cannot be probed with hasattr()). CPython gets
# a stand-in whose native() leaves the function as it is.
_HAVE_VIPER = sys.implementation.name == "micropython"
if _HAVE_VIPER:
    import micropython  # pyright: ignore[reportAssignmentType]
else:
    class micropython:  # noqa: N801
        @staticmethod
        def native(f):
            return f

# Kernel state vector (array 'i') indexes. Signed fields are stored with a bias so that every
# stored value is non-negative: viper's ptr32 loads zero-extend on 64-bit ports.
_BIAS_X = const(1 << 16)     # 65536 in the kernels
_BIAS_S = const(1 << 28)     # 268435456 in the kernels
_DC = const(0)     # DC offset (counts), constant within a kernel call
_XS = const(1)     # current segment: sum of x (for the DC estimate)
_SH = const(2)     # square shift
_FS = const(3)     # clamp of |x|
_SSUM = const(4)   # current segment: sum of (x*x) >> SH
_SN = const(5)     # current segment: samples
_LV = const(6)     # fast-loss level (counts)
_GAP = const(7)    # samples since |x| > LV (clamped at GMAX)
_GMAX = const(8)   # trip when GAP reaches this
_ZH = const(9)     # zero-crossing hysteresis (counts)
_ZST = const(10)   # crossing state: 0 below -ZH, 1 wait > ZH, 2 above ZH, 3 wait < -ZH
_PX = const(11)    # previous x
_FLAG = const(12)  # out: _F_* bits
_XB = const(13)    # out: x before the crossing
_XA = const(14)    # out: x at the crossing
_SMAX = const(15)  # force a segment boundary at this length
_SMIN = const(16)  # a crossing ends a segment only from this length on
_DSUM = const(17)  # out: completed segment sum of squares
_DN = const(18)    # out: completed segment length
_DXS = const(19)   # out: completed segment sum of x
_WS = const(20)    # sliding half-period window: sum of (x*x) >> SH
_WK = const(21)    # window: next slot
_WN = const(22)    # window: length (nominal half period, samples)
_WLO = const(23)   # trip when WS falls below this
_WHI = const(24)   # re-arm when WS is back at or above this
_WST = const(25)   # window state: 0 armed, 1 tripped
_NST = const(26)   # the window's squares follow the state (26 in the kernels)

_F_UP = const(1)
_F_DOWN = const(2)
_F_GAP = const(4)
_F_SEG = const(8)
_F_FORCED = const(16)
_F_LOW = const(32)
_CAP = const((1 << 30) - 1)   # counters saturate here (31-bit small ints)

_SUB = const(1024)          # crossing times in 1/1024 sample
_WRAP = const(1 << 29)      # positions are relative to an epoch of 2**29 samples
_HALF = const(1 << 28)
_MASK = const((1 << 29) - 1)
_NF = const(10)             # cycles averaged for the frequency



def _kern_plain(buf, i, n, st):
    """Process buf[i:n] until a flag is raised; return the index after the last sample done.

    The same arithmetic as the viper kernel below (which is the one used on MicroPython)."""
    dc = st[0] - 65536
    xs = st[1] - 268435456
    sh = st[2]
    fs = st[3]
    ssum = st[4]
    sn = st[5]
    lv = st[6]
    gap = st[7]
    gmax = st[8]
    zh = st[9]
    zst = st[10]
    px = st[11] - 65536
    smax = st[15]
    smin = st[16]
    ws = st[20]
    wk = st[21]
    wn = st[22]
    wlo = st[23]
    whi = st[24]
    wst = st[25]
    flag = 0
    while i < n:
        s = buf[i]
        i += 1
        x = s - dc
        if x > fs:
            x = fs
        elif x < 0 - fs:
            x = 0 - fs
        if x > lv or x < 0 - lv:
            gap = 0
        elif gap < gmax:
            gap += 1
            if gap == gmax:
                flag = 4
        cr = 0
        if zst == 0:
            if x >= 0:
                cr = 1
                zst = 1
        elif zst == 1:
            if x > zh:
                zst = 2
        elif zst == 2:
            if x < 0:
                cr = 2
                zst = 3
        elif x < 0 - zh:
            zst = 0
        if cr:
            flag |= cr
            st[13] = px + 65536
            st[14] = x + 65536
            if sn >= smin:
                st[17] = ssum
                st[18] = sn
                st[19] = xs + 268435456
                ssum = 0
                sn = 0
                xs = 0
                flag |= 8
        q = (x * x) >> sh
        ssum += q
        xs += x
        ws += q - st[26 + wk]
        st[26 + wk] = q
        wk += 1
        if wk == wn:
            wk = 0
        if wst:
            if ws >= whi:
                wst = 0
        elif ws < wlo:
            wst = 1
            flag |= 32
        sn += 1
        if sn >= smax and (flag & 8) == 0:
            st[17] = ssum
            st[18] = sn
            st[19] = xs + 268435456
            ssum = 0
            sn = 0
            xs = 0
            flag |= 24
        px = x
        if flag:
            break
    st[1] = xs + 268435456
    st[4] = ssum
    st[5] = sn
    st[7] = gap
    st[10] = zst
    st[11] = px + 65536
    st[12] = flag
    st[20] = ws
    st[21] = wk
    st[25] = wst
    return i


_kern_fast = None
if _HAVE_VIPER:
    # ptr16 loads are unsigned: sign-extend by comparison (viper int width differs by port).
    @micropython.viper  # pyright: ignore[reportAttributeAccessIssue]
    def _kern_viper(buf, i: int, n: int, stv) -> int:
        b = ptr16(buf)
        st = ptr32(stv)
        dc = st[0] - 65536
        xs = st[1] - 268435456
        sh = st[2]
        fs = st[3]
        ssum = st[4]
        sn = st[5]
        lv = st[6]
        gap = st[7]
        gmax = st[8]
        zh = st[9]
        zst = st[10]
        px = st[11] - 65536
        smax = st[15]
        smin = st[16]
        ws = st[20]
        wk = st[21]
        wn = st[22]
        wlo = st[23]
        whi = st[24]
        wst = st[25]
        flag = 0
        while i < n:
            s = int(b[i])
            if s > 32767:
                s -= 65536
            i += 1
            x = s - dc
            if x > fs:
                x = fs
            elif x < 0 - fs:
                x = 0 - fs
            if x > lv or x < 0 - lv:
                gap = 0
            elif gap < gmax:
                gap += 1
                if gap == gmax:
                    flag = 4
            cr = 0
            if zst == 0:
                if x >= 0:
                    cr = 1
                    zst = 1
            elif zst == 1:
                if x > zh:
                    zst = 2
            elif zst == 2:
                if x < 0:
                    cr = 2
                    zst = 3
            elif x < 0 - zh:
                zst = 0
            if cr:
                flag |= cr
                st[13] = px + 65536
                st[14] = x + 65536
                if sn >= smin:
                    st[17] = ssum
                    st[18] = sn
                    st[19] = xs + 268435456
                    ssum = 0
                    sn = 0
                    xs = 0
                    flag |= 8
            q = (x * x) >> sh
            ssum += q
            xs += x
            ws += q - st[26 + wk]
            st[26 + wk] = q
            wk += 1
            if wk == wn:
                wk = 0
            if wst:
                if ws >= whi:
                    wst = 0
            elif ws < wlo:
                wst = 1
                flag |= 32
            sn += 1
            if sn >= smax and (flag & 8) == 0:
                st[17] = ssum
                st[18] = sn
                st[19] = xs + 268435456
                ssum = 0
                sn = 0
                xs = 0
                flag |= 24
            px = x
            if flag:
                break
        st[1] = xs + 268435456
        st[4] = ssum
        st[5] = sn
        st[7] = gap
        st[10] = zst
        st[11] = px + 65536
        st[12] = flag
        st[20] = ws
        st[21] = wk
        st[25] = wst
        return i

    _kern_fast = _kern_viper


def _cross_frac(xb, xa):
    # where the signal crossed zero between x[q-1] = xb and x[q] = xa, in 1/_SUB sample after q-1
    a = xb if xb >= 0 else -xb
    d = xa - xb
    if d < 0:
        d = -d
    if d == 0:
        return _SUB
    return (a * _SUB) // d


def _mean(s, w):
    # s * _SUB / w without leaving the small-int range (s < 2**29, w < 2**20)
    q = s // w
    return q * _SUB + ((s - q * w) * _SUB) // w


def _wdiff(a, b):
    # a - b for positions that may straddle an epoch change (spans < 2**28 samples)
    return ((a - b + _HALF) & _MASK) - _HALF


class MainsMonitor:
    """Mains analysis for one phase. cfg: the validated "mains" config section (every key of
    schema.MAINS present, as config.validate() makes it).

    fast: None = viper kernel when available; False = plain bytecode kernel; True = require viper.
    """

    def __init__(self, cfg, fast=None):
        self.rate = rate = int(cfg["sample_rate"])
        self.nominal_v = float(cfg["nominal_v"])
        self.nominal_hz = fn = float(cfg["nominal_hz"])
        self.vpc = vpc = float(cfg["volts_per_count"])
        hyst = float(cfg["hysteresis_pct"])
        tol = float(cfg["freq_tolerance_hz"])
        lost_pct = float(cfg["lost_pct"])
        if fast is None:
            kern = _kern_fast or _kern_plain
        elif fast:
            if _kern_fast is None:
                raise ValueError("viper kernel unavailable")
            kern = _kern_fast
        else:
            kern = _kern_plain
        self._kern = kern

        # (integer factors where exact: a float constant is a heap object for the module's life)
        half = rate / (2 * fn)                        # nominal half period, samples
        self._smax_cap = int(half * 7 / 4) + 1          # longest segment ever (1.4x period, 1.25x)
        nom_c = self.nominal_v / vpc                   # nominal rms, counts
        peak = nom_c * 1.41421356
        fs = int(min(32767, peak * 5 / 2))
        sh = 0
        while self._smax_cap * ((fs * fs) >> sh) >= (1 << 28):
            sh += 1
        self._sh = sh

        def thr(pct):
            v = nom_c * pct / 100
            return int(v * v) >> sh

        self._lost_on = thr(lost_pct)
        self._lost_off = thr(lost_pct + hyst)

        wn = int(half + 0.5)                            # the window: nominal half period
        st = self._st = array("i", [0] * (_NST + wn))
        st[_SH] = sh
        st[_FS] = fs
        # 120 nominal degrees without |x| > lv; lv is where a sine of amplitude lost_pct spends
        # exactly 120 degrees of each half cycle below it (sin 60 = 0.866).
        st[_LV] = int(0.866 * lost_pct / 100 * peak)
        st[_GMAX] = int(rate / (3 * fn) + 0.5)
        st[_ZH] = max(1, int(0.05 * peak))
        st[_SMAX] = int(half * 5 / 4)
        st[_SMIN] = int(half / 2)
        # the half-period window (its sum stays below 2**28: wn <= _smax_cap)
        st[_WN] = wn
        st[_WLO] = wn * self._lost_on
        st[_WHI] = wn * self._lost_off

        # frequency: per-period bounds in 1/_SUB samples
        per = rate * _SUB / fn
        self._pmin = int(per * 0.7)
        self._pmax = int(per * 1.4)
        self._f_lo = int(rate * _SUB / (fn + tol))      # shortest period within tolerance
        self._f_hi = int(rate * _SUB / (fn - tol))
        h = tol * 0.1                                   # re-entry hysteresis: 10 % of tolerance
        self._f_lo_in = int(rate * _SUB / (fn + tol - h))
        self._f_hi_in = int(rate * _SUB / (fn - tol + h))
        self._per = array("i", [0] * _NF)

        self.events = EventDetector(cfg, thr, self._volts)
        self.gaps = 0          # gaps in the samples (skip() calls), saturating small ints
        self.gap_samples = 0   # samples they lost in all
        self.epoch = 0
        self.pos = 0
        self.reset()

    # -- state -----------------------------------------------------------------------------
    def reset(self):
        """Forget everything measured (time keeps running)."""
        st = self._st
        st[_DC] = _BIAS_X
        self._dcq = 0          # DC offset, counts * 256
        self._warm_n = 2 * int(self.rate / self.nominal_hz)   # two cycles to seed the DC mean
        self._warm_lo = 32767
        self._warm_hi = -32768
        self._restart()
        self._u = 0            # latest Urms(1/2), mean square units
        self._nu = 0           # Urms(1/2) values computed
        self.lost = False
        self._lost_p = 0       # positions are all relative to the current epoch
        self._lost_e = -1      # lost_at: epoch (-1: never lost) and position at the time
        self._lost_a = 0
        # every attribute exists from here on: adding one later would grow the instance dict,
        # an allocation inside feed()
        self.trig_seq = 0      # disturbances seen (a capture follows each)
        self.trig_pos = 0      # where the newest one started (current epoch)
        self.events.reset()
        self._fcount = 0
        self._fsum = 0
        self._fk = 0
        self._fhold = False    # freq_ok held until the frequency is measured again
        self.freq_ok = False
        self.good = False

    def _restart(self):
        # After a gap in the samples: drop the partial segment and crossing history.
        st = self._st
        st[_SSUM] = 0
        st[_SN] = 0
        st[_XS] = _BIAS_S
        st[_GAP] = 0
        st[_ZST] = 1
        st[_PX] = _BIAS_X
        st[_FLAG] = 0
        # the window restarts full of nominal squares: it can only decide "lost" from samples
        # after the restart, and does so within one half period of them
        ms = self.events.ms_nom
        wn = st[_WN]
        for j in range(wn):
            st[_NST + j] = ms
        st[_WS] = wn * ms
        st[_WK] = 0
        st[_WST] = 0
        self._seg_ok = False       # the first segment after a restart starts mid-cycle
        self._seg_s = self.pos
        self._seg_o = 0
        self._psum = 0
        self._pn = 0
        self._pxs = 0
        self._pcnt = 0
        self._up_ok = False
        self._up_p = 0
        self._up_f = 0

    def skip(self, n):
        """n samples were lost (ADC overrun, a stalled source): count the gap, advance time
        and resynchronise."""
        if n <= 0:
            return
        if self.gaps < _CAP:
            self.gaps += 1
        self.gap_samples = _CAP if n > _CAP - self.gap_samples else self.gap_samples + n
        self.pos += n
        self._rebase()
        self.resync()

    def resync(self):
        """The next sample may not follow the last one: restart the half-cycle segmentation,
        the Urms(1/2) window, the frequency average and the fast checks at the next zero
        crossing. lost, good and an open event keep their state until new samples decide."""
        self._restart()
        self._fcount = 0
        self._fsum = 0
        self._fhold = True

    # -- the hot path ----------------------------------------------------------------------
    @micropython.native
    def feed(self, block):
        """Process one block of int16 samples (array('h') or memoryview). Allocation-free."""
        n = len(block)
        i = 0
        base = self.pos
        if self._warm_n:
            i = self._warm(block, n)
        st = self._st
        kern = self._kern
        while i < n:
            i = kern(block, i, n, st)
            f = st[_FLAG]
            if f:
                self._flags(f, base + i)
        self.pos = base + n
        if self.pos >= _WRAP:
            self._rebase()

    def _warm(self, block, n):
        # seed the DC estimate with the midpoint of the extremes over two nominal cycles
        i = 0
        w = self._warm_n
        lo = self._warm_lo
        hi = self._warm_hi
        while i < n and w:
            v = block[i]
            if v < lo:
                lo = v
            if v > hi:
                hi = v
            i += 1
            w -= 1
        self._warm_lo = lo
        self._warm_hi = hi
        self._warm_n = w
        if not w:
            st = self._st
            self._dcq = ((lo + hi) >> 1) << 8
            st[_DC] = ((lo + hi) >> 1) + _BIAS_X
            self._seg_s = self.pos + i
        return i

    def _rebase(self):
        # Keep every stored position a small int: move them all back by one epoch.
        while self.pos >= _WRAP:
            self._rebase1()

    def _rebase1(self):
        self.pos -= _WRAP
        self.epoch += 1
        self._seg_s -= _WRAP
        self._up_p -= _WRAP
        self.events.rebase()
        self._lost_p = max(-_WRAP, self._lost_p - _WRAP)
        self.trig_pos = max(-_WRAP, self.trig_pos - _WRAP)
        self._up_p = max(-_WRAP, self._up_p)
        self._seg_s = max(-_WRAP, self._seg_s)

    @micropython.native
    def _flags(self, f, t):
        # t: position just after the sample that raised the flag
        st = self._st
        if f & _F_GAP:
            self._trip(t - 1, st[_GMAX], True)
        if f & _F_LOW:
            self._trip(t - 1, st[_WN], False)
        if f & _F_UP:
            self._upcross(t - 1, st[_XB] - _BIAS_X, st[_XA] - _BIAS_X)
        if f & _F_SEG:
            end = t - st[_SN]
            if f & _F_FORCED:
                o = -(_SUB >> 1)          # between two samples
            else:
                xb = st[_XB] - _BIAS_X    # the crossing, -1..0 samples before `end`
                xa = st[_XA] - _BIAS_X
                o = _cross_frac(xb, xa) - _SUB
            self._segment(end, o, st[_DSUM], st[_DN], st[_DXS] - _BIAS_S)

    @micropython.native
    def _upcross(self, q, xb, xa):
        # crossing between samples q-1 (xb < 0) and q (xa >= 0)
        frac = _cross_frac(xb, xa)
        if self._up_ok:
            p = _wdiff(q, self._up_p) * _SUB + frac - self._up_f
            if self._pmin <= p <= self._pmax:
                k = self._fk
                per = self._per
                if self._fcount < _NF:
                    self._fcount += 1
                else:
                    self._fsum -= per[k]
                per[k] = p
                self._fsum += p
                self._fk = (k + 1) % _NF
                self._freq_check()
            else:
                self._fcount = 0
                self._fsum = 0
        self._up_ok = True
        self._up_p = q
        self._up_f = frac

    @micropython.native
    def _freq_check(self):
        c = self._fcount
        if c < 3:
            if not self._fhold:
                self.freq_ok = False
            return
        self._fhold = False
        s = self._fsum
        if self.freq_ok:
            self.freq_ok = c * self._f_lo <= s <= c * self._f_hi
        else:
            self.freq_ok = c * self._f_lo_in <= s <= c * self._f_hi_in
        self._update_good()

    @micropython.native
    def _trip(self, q, span, flat):
        # a fast check fired at sample q, looking back `span` samples; flat: no sample above lv
        # for 120 degrees (the crossings are gone too, so is the frequency); otherwise the
        # half-period window fell below lost_pct (crossings and frequency still hold)
        if flat:
            self._up_ok = False
            self._fcount = 0
            self._fsum = 0
            self.freq_ok = False
        if self._warm_n or self.lost:
            return
        self._disturb(q - span)
        self.lost = True
        self._lost_p = q
        self._lost_e = self.epoch
        self._lost_a = q
        self.good = False

    @micropython.native
    def _disturb(self, anchor):
        # A new disturbance starts unless one is already open: captures follow trig_seq.
        if self.lost or self.events.active:
            return
        self.trig_seq += 1
        self.trig_pos = anchor

    @micropython.native
    def _segment(self, end, o, dsum, dn, dxs):
        # A half-cycle segment [start, end) is complete; its boundaries lie at start + o_start
        # and end + o, in 1/_SUB sample: dividing by that duration rather than by the sample
        # count removes the +-1 sample error of windows synchronised to crossings.
        st = self._st
        start = self._seg_s
        dsub = dn * _SUB + o - self._seg_o
        if dsub < _SUB:
            dsub = _SUB
        self._seg_s = end
        self._seg_o = o
        # A boundary is forced 1.25 half periods on when no crossing came (never earlier: a
        # forced boundary must not pre-empt a slightly late crossing, or it locks out the sync)
        half = st[_WN]                # the nominal half period
        if self._fcount:
            half = (self._fsum // self._fcount + _SUB) // (2 * _SUB)
        smax = half + (half >> 2)
        if smax > self._smax_cap:
            smax = self._smax_cap
        st[_SMAX] = smax
        st[_SMIN] = half >> 1
        # DC: a slow running mean (gain 1/32 per half cycle, ~0.3 s) of the last full cycle,
        # applied between kernel calls so that it adds no ripple inside a cycle
        pxs = self._pxs
        self._pxs = dxs
        if self._pcnt:
            self._dcq += ((dxs + pxs) << 3) // (dn + self._pcnt)
            st[_DC] = ((self._dcq + 128) >> 8) + _BIAS_X
        self._pcnt = dn
        if not self._seg_ok:
            self._seg_ok = True
            return
        ev = self.events
        ev.add(_mean(dsum, dsub), start, dn)
        pn = self._pn
        psum = self._psum
        self._psum = dsum
        self._pn = dsub
        if not pn:
            return
        u = _mean(dsum + psum, dsub + pn)
        self._u = u
        self._nu += 1
        # the event machines first: an event that starts now opens a new disturbance unless
        # "lost" or the other event already has one
        t = ev.update(u, self.lost, self.trig_seq)
        if t != self.trig_seq:
            self.trig_seq = t
            self.trig_pos = ev.onset
        # the slow path and the end of "lost": Urms(1/2) over a window that began after the trip
        if self.lost:
            if (u >= self._lost_off and self._st[_GAP] < self._st[_GMAX]
                    and ev.window > self._lost_p):
                self.lost = False
        elif u < self._lost_on:
            self._disturb(ev.onset)
            self.lost = True
            self._lost_p = self._seg_s
            self._lost_e = self.epoch
            self._lost_a = self._seg_s
        self._update_good()

    def _update_good(self):
        self.good = (not self.lost and not self.events.active and self.freq_ok
                     and self._nu > 0)

    # -- read side (may allocate) ----------------------------------------------------------
    def _volts(self, ms):
        return math.sqrt(ms << self._sh) * self.vpc

    @property
    def urms(self):
        """Latest Urms(1/2) in volts (0.0 until the first full cycle)."""
        return self._volts(self._u) if self._nu else 0.0

    @property
    def freq(self):
        """Frequency in Hz over up to the last 10 cycles, or None while unknown."""
        if not self._fcount:
            return None
        return self.rate * _SUB * self._fcount / self._fsum

    @property
    def dc(self):
        """The DC offset being removed, in ADC counts."""
        return self._dcq / 256

    @property
    def samples(self):
        """Samples fed (and skipped) so far."""
        return self.epoch * _WRAP + self.pos

    @property
    def lost_at(self):
        """Sample index at which "lost" was last decided (None before the first time)."""
        if self._lost_e < 0:
            return None
        return self._lost_e * _WRAP + self._lost_a

    @property
    def fast(self):
        """True when the viper kernel runs."""
        return self._kern is not _kern_plain

    @property
    def events_dropped(self):
        """Finished events lost to a full queue (nobody popped them)."""
        return self.events.dropped

    @property
    def in_event(self):
        return bool(self.events.active)

    def since(self, pos):
        """Samples from position pos (current epoch, e.g. trig_pos) to now."""
        return self.pos - pos

    def pending(self):
        return self.events.pending()

    def pop_event(self):
        """Oldest finished event as a dict, or None.

        kind "dip" | "swell" | "interruption"; start (sample index) and start_ms; samples and
        duration_ms; residual_v (dip, interruption: minimum Urms(1/2)) or peak_v (swell:
        maximum); pct (that value in % of nominal_v); trig (the disturbance / capture id)."""
        return self.events.pop()

    def status(self):
        """A small dict for the console / NUT."""
        f = self.freq
        return {"v": round(self.urms, 1), "hz": None if f is None else round(f, 3),
                "lost": self.lost, "good": self.good, "freq_ok": self.freq_ok,
                "event": self.in_event}
