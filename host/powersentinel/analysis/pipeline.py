"""Streaming power-quality analysis: Urms(1/2), events, frequency, aggregation, harmonics.

    an = Analyzer(sample_rate=10_000, nominal_v=230, nominal_hz=50, volts_per_count=0.02)
    for chunk in chunks:          # any sizes; int16, float32 or float64; (n,) or (n, channels)
        an.feed(chunk)
    result = an.finish()          # AnalysisResult

Everything that crosses a chunk boundary is carried as raw samples (never partial sums), so the
results do not depend on how the recording is cut: feeding it whole or in chunks of any size
gives the same numbers (bit for bit; tests check it). Memory stays bounded: per-half-cycle and
per-cycle series are kept only up to `series_cap` values, aggregates are small.

Method (IEC 61000-4-30 terms; see docs/analysis.md):
- Half-cycle grid at the declared nominal frequency: edge k at round(k * fs / (2 f_nom)).
  Urms(1/2) value k = rms over half cycles k-1 and k (one cycle, refreshed each half cycle).
- Events: dip / swell / interruption state with thresholds and hysteresis on Urms(1/2), per
  channel, combined with the polyphase rules (dip and swell: any phase; interruption: all).
- Frequency: boxcar decimation to ~10 samples per cycle, Hann FIR low-pass (null at the 3rd
  harmonic), positive-going zero crossings with hysteresis, linear interpolation; 10 s values =
  whole cycles in the clock-aligned window / their total duration.
- Aggregation: 10/12 cycles (20/24 half cycles, exact sums of squares), 150/180 cycles (15 of
  those), 10 min aligned to the clock; rms, min and max of Urms(1/2), flag if an event touched.
- Harmonics: batched FFT per 10/12-cycle window, IEC 61000-4-7 harmonic subgroups, THD to h40.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import kernels as _kmod
from .errors import AnalysisInputError
from .refine import change_points

FLAG_EVENT = 1
FLAG_CLIPPED = 2

SUBCHUNK = 1 << 20  # samples processed per inner step: keeps the passes in cache


@dataclass
class Thresholds:
    """Event thresholds in percent of the declared voltage (Udin)."""
    dip_pct: float = 90.0
    swell_pct: float = 110.0
    interruption_pct: float = 10.0
    hysteresis_pct: float = 2.0

    def check(self) -> None:
        if not (0 < self.interruption_pct < self.dip_pct < 100 < self.swell_pct):
            raise AnalysisInputError("thresholds must satisfy 0 < interruption < dip < 100 < swell")
        if not (0 <= self.hysteresis_pct < min(self.dip_pct - self.interruption_pct,
                                               self.swell_pct - 100, 100 - self.dip_pct + 1e9)):
            raise AnalysisInputError("hysteresis too large for the thresholds")


@dataclass
class Event:
    """A dip, swell or interruption. Times in seconds from the first sample.

    start_s / duration_s: refined to the sample where the waveform changed (see refine.py) when
    that succeeded (refined=True), else the IEC values. iec_start_s / iec_duration_s: IEC
    61000-4-30 timing (start of the first Urms(1/2) window beyond the threshold, end of the
    window that ended the event). residual_v: minimum Urms(1/2) (dips, interruptions);
    peak_v: maximum Urms(1/2) (swells)."""
    type: str
    iec_start_s: float
    iec_duration_s: float | None = None
    start_s: float = 0.0
    duration_s: float | None = None
    residual_v: float | None = None
    peak_v: float | None = None
    channels: list[int] = field(default_factory=list)
    refined: bool = False
    clipped: bool = False
    includes_interruption: bool = False
    ongoing: bool = False  # still in progress when the recording ended
    id: int = 0
    # internal bookkeeping
    uid: int = 0
    k_start: int = 0
    k_end: int | None = None
    ch_start: int = 0
    ch_end: int = 0
    extreme: float = math.nan
    start_done: bool = False
    start_ref: float | None = None
    end_ref: float | None = None

    def settle(self) -> None:
        """Combine the IEC timing with the refined start/end where available."""
        iec_end = None if self.iec_duration_s is None else self.iec_start_s + self.iec_duration_s
        self.start_s = self.iec_start_s if self.start_ref is None else self.start_ref
        end = iec_end if (self.end_ref is None or self.ongoing) else self.end_ref
        self.duration_s = None if end is None else end - self.start_s
        self.refined = self.start_ref is not None and (self.end_ref is not None or self.ongoing)

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.start_s + self.duration_s

    def to_dict(self, nominal_v: float) -> dict:
        def pu(v):
            return None if v is None else round(v / nominal_v, 6)

        def r(v, nd=6):
            return None if v is None else round(float(v), nd)
        return {"id": self.id, "type": self.type, "start_s": r(self.start_s),
                "duration_s": r(self.duration_s), "end_s": r(self.end_s),
                "residual_v": r(self.residual_v, 4), "residual_pu": pu(self.residual_v),
                "peak_v": r(self.peak_v, 4), "peak_pu": pu(self.peak_v),
                "channels": list(self.channels), "refined": self.refined,
                "iec_start_s": r(self.iec_start_s), "iec_duration_s": r(self.iec_duration_s),
                "includes_interruption": self.includes_interruption, "clipped": self.clipped,
                "ongoing": self.ongoing,
                "ieee1159": ieee1159(self, nominal_v)}


def ieee1159(ev: Event, nominal_v: float) -> str | None:
    """IEEE 1159 category name of an event, from its duration and magnitude."""
    if ev.duration_s is None:
        return None
    d = ev.duration_s
    cyc = d * 50.0  # the standard's cycle counts, taken at 50 Hz
    span = ("instantaneous" if cyc <= 30 else "momentary" if d <= 3 else "temporary" if d <= 60
            else "sustained")
    if ev.type == "swell":
        return "overvoltage" if span == "sustained" else f"{span} swell"
    mag = (ev.residual_v or 0.0) / nominal_v
    if ev.type == "interruption" or mag < 0.1:
        return "sustained interruption" if span == "sustained" else (
            "momentary interruption" if span == "instantaneous" else f"{span} interruption")
    return "undervoltage" if span == "sustained" else f"{span} sag"


@dataclass
class Series:
    """Time series arrays (time of the interval start in seconds from the first sample)."""
    t: np.ndarray
    rms: np.ndarray      # [n, channels] volts
    min: np.ndarray      # [n, channels] min of Urms(1/2), volts
    max: np.ndarray      # [n, channels] max of Urms(1/2), volts
    flags: np.ndarray    # [n] FLAG_EVENT | FLAG_CLIPPED
    duration: np.ndarray  # [n] seconds of signal in the interval


@dataclass
class AnalysisResult:
    sample_rate: float
    channels: int
    samples: int
    nominal_v: float
    nominal_hz: float
    volts_per_count: float
    thresholds: Thresholds
    start_time: float | None
    backend: str
    events: list[Event]
    urms_half: tuple[np.ndarray, np.ndarray]     # (t window end, [n, ch] volts), capped
    urms_half_complete: bool
    agg10: Series | None                         # 10/12-cycle values (None if not kept)
    agg150: Series
    agg10min: Series
    freq_cycles: tuple[np.ndarray, np.ndarray]   # (t of cycle end, Hz), capped
    freq_cycles_complete: bool
    freq_cycles_flags: np.ndarray                # FLAG_EVENT where the cycle touches an event
    freq10s: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # t start, Hz, n cycles, flag
    harmonics: dict | None
    captures: dict
    warnings: list[str]
    clipped_halfcycles: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


class _Request:
    __slots__ = ("a", "b", "parts", "have", "cb")

    def __init__(self, a: int, b: int, cb: Callable[[int, np.ndarray], None]):
        self.a, self.b, self.cb = a, b, cb
        self.parts: list[np.ndarray] = []
        self.have = a  # next global index wanted


class Analyzer:
    """Streaming analysis of one recording; see the module docstring."""

    def __init__(self, sample_rate: float, nominal_v: float = 230.0, nominal_hz: float = 50.0,
                 volts_per_count: float = 1.0, channels: int = 1,
                 thresholds: Thresholds | None = None, start_time: float | None = None,
                 harmonics: bool = True, keep_10cycle: bool = False, series_cap: int = 200_000,
                 max_captures: int = 50, capture_pre_s: float = 0.1, capture_post_s: float = 0.4,
                 refine: bool = True, backend: str | None = None):
        if not (sample_rate > 0 and math.isfinite(sample_rate)):
            raise AnalysisInputError(f"invalid sample rate {sample_rate!r}")
        if nominal_hz <= 0 or nominal_v <= 0 or not volts_per_count > 0:
            raise AnalysisInputError("nominal voltage, frequency and volts per count must be > 0")
        self.fs = float(sample_rate)
        self.f_nom = float(nominal_hz)
        self.half = self.fs / (2.0 * self.f_nom)
        if self.half < 8:
            raise AnalysisInputError(
                f"sample rate {self.fs:g} Hz is too low for {self.f_nom:g} Hz mains "
                f"(need at least {16 * self.f_nom:g} Hz)")
        self.u_nom = float(nominal_v)
        self.vpc = float(volts_per_count)
        self.nch = int(channels)
        if self.nch < 1:
            raise AnalysisInputError("channels must be >= 1")
        self.th = thresholds or Thresholds()
        self.th.check()
        self.start_time = start_time
        self.k = _kmod.get(backend)
        self.backend = _kmod.backend_name(self.k)
        self.do_harm = harmonics
        self.keep10 = keep_10cycle
        self.cap = series_cap
        self.max_captures = max_captures
        self.do_refine = refine
        self.T = self.fs / self.f_nom  # samples per nominal cycle
        self.pre = int(round(capture_pre_s * self.fs))
        self.post = int(round(capture_post_s * self.fs))
        self.cycles_agg = int(round(self.f_nom / 5.0))  # 10 at 50 Hz, 12 at 60 Hz
        self.G = 2 * self.cycles_agg
        self.int16 = None  # decided by the first chunk's dtype
        self.dtype = None
        self.n_done = 0
        # half-cycle grid
        self.k_open = 0                  # index of the half cycle being filled
        self.left: list[np.ndarray] = [np.empty(0)] * self.nch  # its samples so far, per channel
        self.prev_sum = None            # sum of squares / count of the last completed half cycle
        self.prev_cnt = 0
        # event state
        self.state_init = {t: np.zeros(self.nch, np.uint8) for t in ("dip", "swell", "int")}
        self.on = {"dip": False, "swell": False, "int": False}
        self.prev_states = {t: np.zeros(self.nch, np.uint8) for t in ("dip", "swell", "int")}
        self.open: dict[str, Event | None] = {"dip": None, "swell": None, "int": None}
        self.events: list[Event] = []
        # aggregation carry (rows of completed half cycles not yet in a full 10-cycle group)
        self.rows: dict | None = None
        self.p150: dict | None = None        # partial 150/180-cycle aggregate
        self.p10min: dict | None = None      # partial 10-min aggregate
        self.out10: list = []
        self.out150: list = []
        self.out10min: list = []
        self.n10_total = 0
        # series
        self.uh_t: list = []
        self.uh_v: list = []
        self.uh_n = 0
        self.uh_complete = True
        # frequency
        # decimate to ~10 samples per cycle (a boxcar: nulls at multiples of fs_dec), then a
        # Hann FIR about 2/3 of a cycle long (first null near the 3rd harmonic)
        self.D = max(1, int(round(self.fs / (10.0 * self.f_nom))))
        fs_dec = self.fs / self.D
        ntap = max(3, int(round(fs_dec * 2.0 / (3.0 * self.f_nom))) - 1)
        w = np.hanning(ntap + 2)[1:-1]
        self.taps = np.ascontiguousarray(w / w.sum())
        jw = np.exp(-2j * np.pi * self.f_nom / fs_dec * np.arange(ntap))
        gain = abs(np.dot(self.taps, jw))
        peak_counts = math.sqrt(2.0) * self.u_nom / self.vpc
        self.hyst = 0.05 * peak_counts * self.D * gain
        self.w_dec = 2.0 * math.pi * self.f_nom / fs_dec  # radians per decimated sample
        self.dec_left = np.empty(0)
        self.fir_hist = np.zeros(0)
        self.dec_count = 0     # decimated samples produced so far
        self.out_count = 0     # FIR outputs produced so far
        self.armed = False
        self.prev_y = 0.0
        self.last_cross: float | None = None
        self.fc_t: list = []
        self.fc_f: list = []
        self.fc_n = 0
        self.fc_complete = True
        self.f_recent = self.f_nom
        self.raw_periods: list = []   # first cycle lengths, for the sample-rate sanity check
        self.w10: int | None = None
        self.w10_sum = 0
        self.w10_cnt = 0
        self.f10: list = []
        # harmonics
        self.Nh = int(round(self.cycles_agg * self.fs / self.f_nom))
        self.hmax = min(40, int((self.Nh // 2 - 2) // self.cycles_agg))
        self.harm_buf = np.empty((0, self.nch))
        self.harm_g = 0                 # next harmonic window (10-cycle group index)
        self.h_sum = np.zeros((self.nch, self.hmax + 1))
        self.h_n = 0
        self.h_min: dict = {}           # 10-min interval -> [sum G^2 (ch, h), count, thd^2 sum]
        self.h_thd_t: list = []
        self.h_thd: list = []
        self.h_thd_n = 0
        self.g10_flags: dict[int, int] = {}   # flags of recent 10-cycle groups
        self.h_pending: list = []             # harmonic windows waiting for their group's flag
        # waveform history and sample requests (refinement, captures)
        self.L = int(self.T * 24) + self.pre + 16
        self.tail = np.empty((0, self.nch))
        self.requests: list[_Request] = []
        self.captures: dict = {}
        self.warnings: list[str] = []
        self.n_started = 0
        self.n_captured = 0
        self.rate_checked = False
        self.clipped = 0
        self.finished = False

    # -- grid helpers ------------------------------------------------------------------------
    def edge(self, k: int) -> int:
        """Global sample index of half-cycle edge k."""
        return int(math.floor(float(k) * self.half + 0.5))

    def edges(self, k) -> np.ndarray:
        """edge() of an array of k (same arithmetic, so the same values)."""
        return np.floor(np.asarray(k, np.float64) * self.half + 0.5).astype(np.int64)

    def _abs(self, t: float) -> float:
        return (self.start_time or 0.0) + t

    # -- input ---------------------------------------------------------------------------------
    def feed(self, x) -> None:
        """Process the next samples: (n,) for one channel or (n, channels)."""
        if self.finished:
            raise RuntimeError("finish() was already called")
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.nch:
            raise AnalysisInputError(
                f"expected samples shaped (n,) or (n, {self.nch}), got {x.shape}")
        if x.dtype not in (np.int16, np.float32, np.float64):
            if np.issubdtype(x.dtype, np.integer) and x.size and (x.min() < -32768 or x.max() > 32767):
                raise AnalysisInputError(f"integer samples outside the int16 range ({x.dtype})")
            x = x.astype(np.int16 if np.issubdtype(x.dtype, np.integer) else np.float64)
        if self.dtype is None:
            self.dtype = x.dtype
            self.int16 = x.dtype == np.int16
            for c in range(self.nch):
                self.left[c] = np.empty(0, x.dtype)
            self.dec_left = np.empty(0, x.dtype)
            self.harm_buf = np.empty((0, self.nch), x.dtype)
            self.tail = np.empty((0, self.nch), x.dtype)
        elif x.dtype != self.dtype:
            x = x.astype(self.dtype)
        # inner steps end on 10/12-cycle group edges where possible: then no partial half cycle
        # or group has to be carried between them (fewer copies); results do not depend on it
        s = 0
        n = x.shape[0]
        while s < n:
            want = self.n_done + min(SUBCHUNK, n - s)
            if want < self.n_done + (n - s):
                g = int(want / (self.half * self.G))
                e = self.edge(g * self.G)
                if e > self.n_done + SUBCHUNK // 4:
                    want = e
            step = want - self.n_done
            self._step(x[s:s + step])
            s += step

    def _step(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if n == 0:
            return
        n0 = self.n_done
        n1 = n0 + n
        chans = [x[:, 0] if self.nch == 1 else np.ascontiguousarray(x[:, c])
                 for c in range(self.nch)]
        if self.nch == 1 and not chans[0].flags.c_contiguous:
            chans[0] = np.ascontiguousarray(chans[0])
        self._halfcycles(chans, n0, n1)
        self._frequency(chans[0], n0, n1)
        if self.do_harm:
            self._harmonics(x, n0, n1)
        self.n_done = n1
        self._serve_requests(x, n0, n1)

    # -- Urms(1/2), events, aggregation --------------------------------------------------------
    def _halfcycles(self, chans, n0: int, n1: int) -> None:
        k0 = self.k_open
        kmax = int((n1 + 1) / self.half) + 2
        ks = np.arange(k0 + 1, kmax + 1)
        e = self.edges(ks)
        e = e[e <= n1]
        m = e.shape[0]  # completed half cycles in this step
        if m == 0:
            for c in range(self.nch):
                self.left[c] = np.concatenate((self.left[c], chans[c]))
            return
        start = self.edge(k0)
        local = np.concatenate(([start - n0], e - n0)).astype(np.int64)
        sdt = np.int64 if self.int16 else np.float64
        if self.prev_sum is None:
            self.prev_sum = np.zeros(self.nch, sdt)
        S = np.empty((m, self.nch), sdt)
        mn = np.empty((m, self.nch), self.dtype)
        mx = np.empty((m, self.nch), self.dtype)
        # Urms(1/2): value k covers half cycles k-1 and k (the first one: just its own); the
        # kernel computes it in the same pass as the sums
        u = np.empty((m, self.nch), np.float64)
        for c in range(self.nch):
            xc = chans[c]
            first = np.concatenate((self.left[c], xc[:local[1]]))
            s0, a0, b0, u0 = self.k.segment_urms(first, np.array([0, first.shape[0]], np.int64),
                                                 self.prev_sum[c], self.prev_cnt, self.vpc)
            s1, a1, b1, u1 = self.k.segment_urms(xc, np.ascontiguousarray(local[1:]), s0[0],
                                                 first.shape[0], self.vpc)
            S[0, c], mn[0, c], mx[0, c], u[0, c] = s0[0], a0[0], b0[0], u0[0]
            S[1:, c], mn[1:, c], mx[1:, c], u[1:, c] = s1, a1, b1, u1
            self.left[c] = xc[local[-1]:].copy()
        self.k_open = k0 + m
        cnt = np.diff(np.concatenate(([start], e))).astype(np.int64)
        if not self.int16 and not np.all(np.isfinite(S)):
            bad = int(np.argmax(~np.all(np.isfinite(S), axis=1)))
            raise AnalysisInputError(
                f"NaN or infinite samples near t={self.edge(k0 + bad) / self.fs:.3f} s")
        flags = np.zeros(m, np.uint8)
        if self.int16:
            clip = np.any((mn <= -32768) | (mx >= 32767), axis=1)
            if clip.any():
                flags[clip] |= FLAG_CLIPPED
                self.clipped += int(clip.sum())
        self.prev_sum = S[-1].copy()
        self.prev_cnt = int(cnt[-1])
        kvals = np.arange(k0, k0 + m)
        t_end = e / self.fs  # each value's window end
        if self.uh_n < self.cap:
            take = min(m, self.cap - self.uh_n)
            self.uh_t.append(t_end[:take])
            self.uh_v.append(u[:take].copy())
            self.uh_n += take
            if take < m:
                self.uh_complete = False
        else:
            self.uh_complete = False
        uc = np.ascontiguousarray(u)
        evflag = self._events(uc, kvals, flags)
        flags |= evflag
        self._aggregate(S, cnt, u, flags, kvals)


    def _events(self, u: np.ndarray, kvals: np.ndarray, flags: np.ndarray) -> np.ndarray:
        th = self.th
        un = self.u_nom
        cfg = {"dip": (th.dip_pct, th.dip_pct + th.hysteresis_pct, True),
               "swell": (th.swell_pct, th.swell_pct - th.hysteresis_pct, False),
               "int": (th.interruption_pct, th.interruption_pct + th.hysteresis_pct, True)}
        m = u.shape[0]
        active = np.zeros(m, bool)
        per = {}
        for typ, (s, e, below) in cfg.items():
            st, fin = self.k.hysteresis(u, s * un / 100.0, e * un / 100.0, below,
                                        self.state_init[typ])
            self.state_init[typ] = fin
            per[typ] = st
            comb = st.all(axis=1) if typ == "int" else st.any(axis=1)
            active |= comb
            prev = np.concatenate(([self.on[typ]], comb[:-1]))
            changes = np.flatnonzero(comb != prev)
            prevst = np.concatenate((self.prev_states[typ][None, :], st[:-1]))
            seg_lo = 0
            for i in list(changes) + [m]:
                ev = self.open[typ]
                if ev is not None and i > seg_lo:
                    # extend the open event over rows [seg_lo, i)
                    part = u[seg_lo:i]
                    if typ == "swell":
                        ev.extreme = max(ev.extreme, float(part.max()))
                    else:
                        ev.extreme = min(ev.extreme, float(part.min()))
                    ev.clipped |= bool(np.any(flags[seg_lo:i] & FLAG_CLIPPED))
                    inv = np.flatnonzero(st[seg_lo:i].any(axis=0)).tolist()
                    ev.channels = sorted(set(ev.channels) | set(inv))
                if i == m:
                    break
                k = int(kvals[i])
                flipped = np.flatnonzero(st[i] != prevst[i])
                ch = int(flipped[0]) if flipped.size else 0
                if comb[i]:
                    ev = Event(type="interruption" if typ == "int" else typ,
                               iec_start_s=self.edge(k - 1) / self.fs, k_start=k, ch_start=ch,
                               extreme=-math.inf if typ == "swell" else math.inf,
                               uid=self.n_started)
                    self.n_started += 1
                    ev.start_s = ev.iec_start_s
                    self.open[typ] = ev
                    self._on_start(ev)
                else:
                    ev = self.open[typ]
                    self.open[typ] = None
                    if ev is not None:
                        ev.k_end = k
                        ev.ch_end = ch
                        self._on_end(ev)
                seg_lo = i
            self.on[typ] = bool(comb[-1]) if m else self.on[typ]
            self.prev_states[typ] = st[-1].copy() if m else self.prev_states[typ]
        # start-only refinement for events still open 12 half cycles after their start
        last_k = int(kvals[-1]) if m else -1
        for typ in ("dip", "swell", "int"):
            ev = self.open[typ]
            if ev is not None and not ev.start_done and last_k >= ev.k_start + 12:
                self._refine_request(ev, "start")
        out = np.zeros(m, np.uint8)
        out[active] = FLAG_EVENT
        return out

    def _on_start(self, ev: Event) -> None:
        ev.channels = [ev.ch_start]
        if not self.do_refine:
            ev.start_done = True

    def _on_end(self, ev: Event, ongoing: bool = False) -> None:
        ev.ongoing = ongoing
        k_end = ev.k_end if ev.k_end is not None else ev.k_start
        end = self.edge(k_end + 1)
        if ongoing:
            end = min(end, self.n_done)
        ev.iec_duration_s = end / self.fs - ev.iec_start_s
        if ev.type == "swell":
            ev.peak_v = ev.extreme if math.isfinite(ev.extreme) else None
        else:
            ev.residual_v = ev.extreme if math.isfinite(ev.extreme) else None
        self.events.append(ev)
        if self.do_refine:
            if not ev.start_done and k_end - ev.k_start <= 12 and not ongoing:
                self._refine_request(ev, "both")
            else:
                if not ev.start_done:
                    self._refine_request(ev, "start")
                if not ongoing:
                    self._refine_request(ev, "end")
        if self.n_captured < self.max_captures:
            self.n_captured += 1
            self._capture_request(ev)

    # -- sub-cycle refinement and waveform captures --------------------------------------------
    def _refine_request(self, ev: Event, mode: str) -> None:
        T = int(round(self.T))
        H = int(round(self.half))
        k_end = ev.k_end if ev.k_end is not None else ev.k_start
        # [a, lo): undisturbed before; [lo, hi): where the change(s) are; [hi, b): undisturbed
        if mode == "end":
            lo = self.edge(k_end - 2) - 2 * T
            a = lo
        else:
            ev.start_done = True
            lo = self.edge(ev.k_start - 3)
            a = lo - 3 * T
        if mode == "start":
            hi = self.edge(ev.k_start + 1) + 2 * T
            b = hi
        else:
            hi = self.edge(k_end + 1) + H
            b = hi + 3 * T
        a = max(a, 0)
        lo = max(lo, a)
        ch = ev.ch_start if mode != "end" else ev.ch_end
        f_hint = self.f_recent

        def done(a0: int, data: np.ndarray, lo=lo, hi=hi, mode=mode, ch=ch):
            y = data[:, ch].astype(np.float64)
            n = y.shape[0]
            l, h = lo - a0, min(hi - a0, n)
            mask = np.zeros(n, bool)
            if mode in ("start", "both"):
                mask[:max(l, 0)] = True
            if mode in ("end", "both"):
                mask[h:] = True
            try:
                if l < 0 or h - l < 4:
                    raise ValueError("no samples")
                s1, s2 = change_points(y, self.fs, mask, l, h, mode, f_hint)
            except (ValueError, np.linalg.LinAlgError):
                return  # keep the IEC timing
            # a change point far from where Urms(1/2) saw the event is not trusted
            if s1 is not None and abs(a0 + s1 - self.edge(ev.k_start)) <= 2 * self.T:
                ev.start_ref = (a0 + s1) / self.fs
            if s2 is not None and abs(a0 + s2 - self.edge(k_end)) <= 2 * self.T:
                ev.end_ref = (a0 + s2) / self.fs
        self._add_request(a, b, done)

    def _capture_request(self, ev: Event) -> None:
        rec = self.captures.setdefault(ev.uid, {})
        s = self.edge(ev.k_start - 1)
        e = self.edge((ev.k_end if ev.k_end is not None else ev.k_start) + 1)

        def keep(name):
            def cb(a0, data):
                rec[name] = (a0 / self.fs, data.astype(np.float64) * self.vpc)
            return cb
        if e - s <= self.post:
            self._add_request(max(s - self.pre, 0), e + self.pre, keep("event"))
        else:
            self._add_request(max(s - self.pre, 0), s + self.post, keep("start"))
            self._add_request(max(e - self.post, 0), e + self.pre, keep("end"))

    def _add_request(self, a: int, b: int, cb) -> None:
        self.requests.append(_Request(a, b, cb))

    def _serve_requests(self, x: np.ndarray, n0: int, n1: int) -> None:
        """Give each pending request the samples it wants from the tail history and this step;
        complete ones call back. New requests may start before n0 (up to self.L back)."""
        if self.requests:
            t0 = n0 - self.tail.shape[0]
            still = []
            for r in self.requests:
                if r.have < n0:  # fill from the tail (requests made during this step)
                    lo = max(r.have, t0)
                    hi = min(r.b, n0)
                    if hi > lo:
                        r.parts.append(self.tail[lo - t0:hi - t0])
                    r.have = max(r.have, hi) if hi > lo else max(r.have, lo)
                    if lo > r.a and not r.parts:
                        r.a = lo  # history no longer holds the start: keep what exists
                lo = max(r.have, n0)
                hi = min(r.b, n1)
                if hi > lo:
                    r.parts.append(x[lo - n0:hi - n0].copy())
                    r.have = hi
                if r.have >= r.b:
                    r.cb(r.a, np.concatenate(r.parts) if r.parts else np.empty((0, self.nch)))
                else:
                    still.append(r)
            self.requests = still
        # keep the last L samples as history
        if x.shape[0] >= self.L:
            self.tail = x[-self.L:].copy()
        else:
            self.tail = np.concatenate((self.tail, x))[-self.L:]

    # -- aggregation ---------------------------------------------------------------------------
    def _aggregate(self, S, cnt, u, flags, kvals) -> None:
        new = {"S": S, "c": cnt, "mn": u, "mx": u, "f": flags, "k": kvals}
        if self.rows is None or self.rows["k"].shape[0] == 0:
            rows = new
        else:
            rows = {key: np.concatenate((self.rows[key], new[key])) for key in new}
        G = self.G
        # rows start at half cycle rows["k"][0]; groups are aligned to multiples of G
        k_first = int(rows["k"][0])
        skip = (-k_first) % G  # only at the very start if misaligned (never: k starts at 0)
        nfull = (rows["k"].shape[0] - skip) // G
        if nfull > 0:
            starts = np.arange(skip, skip + (nfull + 1) * G, G, dtype=np.int64)
            gs, gc, gmn, gmx, gf = self.k.group_reduce(
                np.ascontiguousarray(rows["S"]), np.ascontiguousarray(rows["c"]),
                np.ascontiguousarray(rows["mn"]), np.ascontiguousarray(rows["mx"]),
                np.ascontiguousarray(rows["f"]), starts)
            t = self.edges(rows["k"][starts[:-1]]) / self.fs
            for g, f in zip((rows["k"][starts[:-1]] // G).tolist(), gf.tolist()):
                self.g10_flags[g] = f
            self._add10(t, gs, gc, gmn, gmx, gf)
            cut = skip + nfull * G
            self.rows = {key: v[cut:].copy() for key, v in rows.items()} \
                if cut < rows["k"].shape[0] else None
        else:
            self.rows = rows

    def _series_row(self, t, gs, gc, gmn, gmx, gf):
        rms = np.sqrt(gs.astype(np.float64) / gc[:, None]) * self.vpc
        return (t, rms, gmn, gmx, gf, gc / self.fs)

    def _add10(self, t, gs, gc, gmn, gmx, gf) -> None:
        if self.keep10 and self.n10_total < self.cap:
            take = min(len(t), self.cap - self.n10_total)
            self.out10.append(tuple(a[:take] for a in self._series_row(t, gs, gc, gmn, gmx, gf)))
        g10 = np.arange(self.n10_total, self.n10_total + len(t))
        self.n10_total += len(t)
        new = {"t": t, "S": gs, "c": gc, "mn": gmn, "mx": gmx, "f": gf}
        # 150/180 cycles: 15 ten-cycle rows; 10 minutes: rows starting in the same clock interval
        self._level("p150", new, g10 // 15, self.out150, full=15)
        ids = np.floor((self._abs(0.0) + t) / 600.0 + 1e-9).astype(np.int64)
        self._level("p10min", new, ids, self.out10min, full=None)

    def _level(self, name: str, new: dict, ids: np.ndarray, out: list, full: int | None) -> None:
        """Group consecutive rows by id. The unfinished last group is carried as one partial
        row (its running sums): reducing [partial, rows...] in order gives the same numbers as
        reducing all its rows at once, so chunking does not change the result."""
        part = getattr(self, name)
        if part is not None:
            rows = {k: np.concatenate((part["row"][k], new[k])) for k in new}
            ids = np.concatenate(([part["id"]], ids))
            members = np.concatenate(([part["n"]], np.ones(len(new["t"]), np.int64)))
        else:
            rows, members = new, np.ones(len(new["t"]), np.int64)
        starts = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1, [ids.shape[0]]))
        starts = starts.astype(np.int64)
        gs, gc, gmn, gmx, gf = self.k.group_reduce(
            np.ascontiguousarray(rows["S"]), np.ascontiguousarray(rows["c"]),
            np.ascontiguousarray(rows["mn"]), np.ascontiguousarray(rows["mx"]),
            np.ascontiguousarray(rows["f"]), starts)
        nmem = np.add.reduceat(members, starts[:-1])
        t0 = rows["t"][starts[:-1]]
        done = len(t0) - 1
        if full is not None and nmem[-1] >= full:
            done = len(t0)
        if done > 0:
            out.append(self._series_row(t0[:done], gs[:done], gc[:done], gmn[:done], gmx[:done],
                                        gf[:done]))
        if done < len(t0):
            setattr(self, name, {"row": {"t": t0[-1:], "S": gs[-1:], "c": gc[-1:],
                                         "mn": gmn[-1:], "mx": gmx[-1:], "f": gf[-1:]},
                                 "id": int(ids[starts[-2]]), "n": int(nmem[-1])})
        else:
            setattr(self, name, None)

    # -- frequency -----------------------------------------------------------------------------
    def _frequency(self, xc: np.ndarray, n0: int, n1: int) -> None:
        D = self.D
        parts = []
        off = 0
        if self.dec_left.shape[0]:
            need = D - self.dec_left.shape[0]
            head = np.concatenate((self.dec_left, xc[:need]))
            if head.shape[0] < D:
                self.dec_left = head
                return
            parts.append(self.k.block_sum(head, D))
            off = need
        nb = (xc.shape[0] - off) // D
        body = xc[off:off + nb * D]
        if nb:
            parts.append(self.k.block_sum(np.ascontiguousarray(body), D))
        self.dec_left = xc[off + nb * D:].copy()
        if not parts:
            return
        dz = np.concatenate(parts) if len(parts) > 1 else parts[0]
        K = self.taps.shape[0]
        z = np.concatenate((self.fir_hist, dz))
        self.dec_count += dz.shape[0]
        if z.shape[0] < K:
            self.fir_hist = z
            return
        j, y0, y1, self.armed, self.prev_y = self.k.fir_crossings(
            np.ascontiguousarray(z), self.taps, self.hyst, self.armed, self.prev_y)
        # crossing between outputs j-1 and j, interpolated as a sine of the nominal frequency
        # (exact for a pure sine there; linear interpolation at ~20 samples per cycle would
        # be off by up to ~1e-4 cycle, i.e. several mHz per cycle)
        w = self.w_dec
        frac = np.arctan(-y0 * math.sin(w) / (y1 - y0 * math.cos(w))) / w
        jg = (self.out_count + j - 1).astype(np.float64)  # global index: exact, chunk-independent
        nout = z.shape[0] - K + 1
        self.fir_hist = z[-(K - 1):].copy() if K > 1 else np.zeros(0)
        tc = ((jg + frac + (K - 1) / 2.0) * D + (D - 1) / 2.0)  # in samples
        self.out_count += nout
        self._cycles(tc)

    def _cycles(self, tc: np.ndarray) -> None:
        if tc.size == 0:
            return
        allc = tc if self.last_cross is None else np.concatenate(([self.last_cross], tc))
        self.last_cross = float(allc[-1])
        if allc.size < 2:
            return
        d = np.diff(allc)
        if not self.rate_checked:
            self.raw_periods.extend(d[:200 - len(self.raw_periods)].tolist())
            self._check_rate()
        ok = (d > self.T / 1.5) & (d < self.T * 1.5)
        tend = allc[1:] / self.fs
        f = self.fs / d
        if ok.any():
            self.f_recent = float(f[ok][-1])
        if self.fc_n < self.cap:
            take = min(int(ok.sum()), self.cap - self.fc_n)
            self.fc_t.append(tend[ok][:take])
            self.fc_f.append(f[ok][:take])
            self.fc_n += take
            if take < int(ok.sum()):
                self.fc_complete = False
        else:
            self.fc_complete = False
        # 10 s windows aligned to the clock; a cycle counts if it starts and ends in the window
        t0 = self._abs(0.0)
        wa = np.floor((t0 + allc[:-1] / self.fs) / 10.0).astype(np.int64)
        wb = np.floor((t0 + tend) / 10.0).astype(np.int64)
        sel = ok & (wa == wb)
        ids = wa[sel]
        # durations summed in fixed point (2**-20 sample): exact, so chunking cannot change them
        dd = np.rint(d[sel] * 1048576.0).astype(np.int64)
        if ids.size:
            # ids are non-decreasing: sum the durations per window, in order
            first = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1))
            sums = np.add.reduceat(dd, first)
            cnts = np.diff(np.concatenate((first, [ids.size])))
            for w, s, c in zip(ids[first].tolist(), sums.tolist(), cnts.tolist()):
                if self.w10 is not None and w != self.w10:
                    self._close10()
                self.w10 = w
                self.w10_sum += int(s)
                self.w10_cnt += c
        if self.w10 is not None and wb[-1] > self.w10:
            self._close10()
            self.w10 = None

    def _close10(self) -> None:
        if self.w10 is not None and self.w10_cnt > 0:
            self.f10.append((self.w10 * 10.0 - self._abs(0.0),
                             self.fs * self.w10_cnt * 1048576.0 / self.w10_sum,
                             self.w10_cnt))
        self.w10_sum, self.w10_cnt = 0, 0

    def _check_rate(self) -> None:
        if len(self.raw_periods) < 50:
            return
        med = float(np.median(self.raw_periods))
        f = self.fs / med
        if not (0.8 * self.f_nom < f < 1.2 * self.f_nom):
            raise AnalysisInputError(
                f"measured mains frequency {f:.2f} Hz is far from the nominal {self.f_nom:g} Hz: "
                f"wrong sample rate ({self.fs:g} Hz) or nominal frequency?")
        self.rate_checked = True

    # -- harmonics -----------------------------------------------------------------------------
    def _harmonics(self, x: np.ndarray, n0: int, n1: int) -> None:
        buf = np.concatenate((self.harm_buf, x)) if self.harm_buf.shape[0] else x
        b0 = n1 - buf.shape[0]
        N = self.Nh
        gs = []
        g = self.harm_g
        while True:
            s = self.edge(g * self.G)
            if s + N > n1:
                break
            gs.append(g)
            g += 1
        if gs:
            starts = self.edges(np.array(gs) * self.G) - b0
            self._harm_windows(buf, starts, np.array(gs))
            self.harm_g = g
        keep_from = self.edge(self.harm_g * self.G) - b0
        self.harm_buf = buf[max(keep_from, 0):].copy() if keep_from < buf.shape[0] else buf[:0].copy()

    def _harm_windows(self, buf, starts, gidx) -> None:
        N = self.Nh
        C = self.cycles_agg
        bins = np.arange(1, self.hmax + 1) * C
        t = self.edges(gidx * self.G) / self.fs
        ids = np.floor((self._abs(0.0) + t) / 600.0 + 1e-9).astype(np.int64)
        for b in range(0, len(starts), 128):
            st = starts[b:b + 128]
            idx = st[:, None] + np.arange(N)[None, :]
            win = buf[idx].astype(np.float64)  # [w, N, ch]
            X = np.fft.rfft(win, axis=1)
            P = np.abs(X) ** 2
            grp = P[:, bins - 1, :] + P[:, bins, :] + P[:, bins + 1, :]  # [w, h, ch]
            G2 = grp * (2.0 / (N * N)) * self.vpc ** 2       # squared rms volts
            G2 = np.transpose(G2, (0, 2, 1))                  # [w, ch, h]
            self.h_pending.append((gidx[b:b + 128], t[b:b + 128], ids[b:b + 128], G2))
        self._harm_flush(final=False)

    def _harm_flush(self, final: bool) -> None:
        """Accumulate harmonic windows whose 10-cycle group flag is known: flagged windows
        (event, clipping) stay out of the statistics, as IEC 61000-4-30 flagging requires."""
        keep = []
        for gi, tw, ids, G2 in self.h_pending:
            known = np.array([g in self.g10_flags for g in gi.tolist()])
            if not final and not known.all():
                cut = int(np.argmin(known))
                if cut == 0:
                    keep.append((gi, tw, ids, G2))
                    continue
                keep.append((gi[cut:], tw[cut:], ids[cut:], G2[cut:]))
                gi, tw, ids, G2 = gi[:cut], tw[:cut], ids[:cut], G2[:cut]
            flag = np.array([self.g10_flags.get(g, 0) for g in gi.tolist()], np.uint8)
            good = flag == 0
            with np.errstate(divide="ignore", invalid="ignore"):
                thd2 = np.where(G2[:, :, 0] > 0, G2[:, :, 1:].sum(axis=2) / G2[:, :, 0], np.nan)
            if self.h_thd_n < self.cap:
                take = min(len(tw), self.cap - self.h_thd_n)
                self.h_thd_t.append(tw[:take])
                self.h_thd.append(np.where(good[:take, None], np.sqrt(thd2[:take]) * 100.0, np.nan))
                self.h_thd_n += take
            if good.any():
                self.h_sum[:, 1:] = _serial_add(self.h_sum[:, 1:], G2[good])
                self.h_n += int(good.sum())
                for w_id in np.unique(ids[good]).tolist():
                    sel = good & (ids == w_id)
                    acc = self.h_min.setdefault(w_id, [np.zeros((self.nch, self.hmax + 1)), 0,
                                                       np.zeros(self.nch)])
                    acc[0][:, 1:] = _serial_add(acc[0][:, 1:], G2[sel])
                    acc[1] += int(sel.sum())
                    acc[2] = _serial_add(acc[2], np.nan_to_num(thd2[sel]))
        self.h_pending = keep
        if self.g10_flags and not keep:
            lo = self.harm_g - 4
            for g in [g for g in self.g10_flags if g < lo]:
                del self.g10_flags[g]

    # -- end -----------------------------------------------------------------------------------
    def finish(self) -> AnalysisResult:
        if self.finished:
            raise RuntimeError("finish() was already called")
        self.finished = True
        if self.n_done == 0:
            raise AnalysisInputError("no samples")
        if self.n_done < 2 * self.T:
            raise AnalysisInputError(
                f"recording too short: {self.n_done} samples, need at least two cycles "
                f"({int(2 * self.T)} samples)")
        # close open events at the end of the recording (duration unknown: till the end)
        for typ in ("dip", "swell", "int"):
            ev = self.open[typ]
            if ev is not None:
                ev.k_end = self.k_open
                self._on_end(ev, ongoing=True)
                self.warnings.append(f"{ev.type} at {ev.iec_start_s:.3f} s still in progress at "
                                     "the end of the recording: its duration is a lower bound")
        # serve requests made just now from the history, then flush the rest with what exists
        self._serve_requests(self.tail[:0], self.n_done, self.n_done)
        for r in self.requests:
            if r.parts:
                r.cb(r.a, np.concatenate(r.parts))
        self.requests = []
        # partial aggregates
        if self.rows is not None and self.rows["k"].shape[0]:
            rows = self.rows
            starts = np.array([0, rows["k"].shape[0]], np.int64)
            gs, gc, gmn, gmx, gf = self.k.group_reduce(
                np.ascontiguousarray(rows["S"]), rows["c"], np.ascontiguousarray(rows["mn"]),
                np.ascontiguousarray(rows["mx"]), rows["f"], starts)
            self.rows = None
            self._add10(self.edges(rows["k"][:1]) / self.fs, gs, gc, gmn, gmx, gf)
        if self.do_harm:
            self._harm_flush(final=True)
        for name, out in (("p150", self.out150), ("p10min", self.out10min)):
            p = getattr(self, name)
            if p is not None:
                r = p["row"]
                out.append(self._series_row(r["t"], r["S"], r["c"], r["mn"], r["mx"], r["f"]))
                setattr(self, name, None)
        self._close10()
        for e in self.events:
            e.settle()
        events = sorted(self.events, key=lambda e: (e.start_s, e.type))
        # dips that contain an interruption
        ints = [e for e in events if e.type == "interruption"]
        for e in events:
            if e.type == "dip":
                e.includes_interruption = any(
                    i.iec_start_s >= e.iec_start_s and i.iec_start_s < e.iec_start_s + (e.iec_duration_s or 0)
                    for i in ints)
        for i, e in enumerate(events):
            e.id = i
        by_uid = {e.uid: e.id for e in events}
        captures = {by_uid[k]: v for k, v in self.captures.items() if k in by_uid}
        f10 = np.array(self.f10) if self.f10 else np.empty((0, 3))
        f10flag = np.zeros(f10.shape[0], np.uint8)
        if f10.shape[0]:
            for e in events:  # flag every 10 s value whose window overlaps an event
                a = np.searchsorted(f10[:, 0] + 10.0, e.iec_start_s, side="right")
                b = np.searchsorted(f10[:, 0], e.iec_start_s + (e.iec_duration_s or 0.0),
                                    side="left")
                f10flag[a:b] = FLAG_EVENT
        fct, fcf = _cat(self.fc_t), _cat(self.fc_f)
        fcflag = np.zeros(fct.shape[0], np.uint8)
        for e in events:  # a cycle ending at t spans about [t - 1/f, t]
            a = np.searchsorted(fct, e.iec_start_s, side="right")
            b = np.searchsorted(fct - 1.5 / self.f_nom, e.iec_start_s + (e.iec_duration_s or 0.0),
                                side="left")
            fcflag[a:b] = FLAG_EVENT
        harm = None
        if self.do_harm and self.h_n:
            mins = sorted(self.h_min)
            harm = {
                "orders": np.arange(self.hmax + 1),
                "mean_v": np.sqrt(self.h_sum / self.h_n),            # [ch, h] rms over windows
                "windows": self.h_n,
                "t10min": np.array([m * 600.0 - self._abs(0.0) for m in mins]),
                "v10min": np.array([np.sqrt(self.h_min[m][0] / self.h_min[m][1]) for m in mins]),
                "thd10min_pct": np.array([100.0 * np.sqrt(self.h_min[m][2] / self.h_min[m][1])
                                          for m in mins]),
                "thd_t": np.concatenate(self.h_thd_t) if self.h_thd_t else np.empty(0),
                "thd_pct": np.concatenate(self.h_thd) if self.h_thd else np.empty((0, self.nch)),
            }
        if self.clipped:
            self.warnings.append(
                f"ADC clipped in {self.clipped} half cycles "
                f"({100.0 * self.clipped / max(self.k_open, 1):.2f} % of the recording): "
                "magnitudes there are underestimated (flagged)")
        if not self.f10 and not any(len(a) for a in self.fc_t):
            uh = _cat(self.uh_v, (0, self.nch))
            if uh.size and np.median(uh) > 0.5 * self.u_nom:
                raise AnalysisInputError(
                    f"voltage present but no {self.f_nom:g} Hz cycles found: wrong sample rate "
                    f"({self.fs:g} Hz) or nominal frequency?")
            self.warnings.append("no mains cycles found: frequency not measured")
        elif not self.rate_checked and len(self.raw_periods) >= 3:
            med = float(np.median(self.raw_periods))
            if not (0.8 * self.f_nom < self.fs / med < 1.2 * self.f_nom):
                raise AnalysisInputError(
                    f"measured mains frequency {self.fs / med:.2f} Hz is far from the nominal "
                    f"{self.f_nom:g} Hz: wrong sample rate ({self.fs:g} Hz) or nominal frequency?")
        return AnalysisResult(
            sample_rate=self.fs, channels=self.nch, samples=self.n_done, nominal_v=self.u_nom,
            nominal_hz=self.f_nom, volts_per_count=self.vpc, thresholds=self.th,
            start_time=self.start_time, backend=self.backend, events=events,
            urms_half=(_cat(self.uh_t), _cat(self.uh_v, (0, self.nch))),
            urms_half_complete=self.uh_complete,
            agg10=_series(self.out10, self.nch) if self.keep10 else None,
            agg150=_series(self.out150, self.nch), agg10min=_series(self.out10min, self.nch),
            freq_cycles=(fct, fcf), freq_cycles_complete=self.fc_complete,
            freq_cycles_flags=fcflag,
            freq10s=(f10[:, 0], f10[:, 1], f10[:, 2].astype(np.int64), f10flag),
            harmonics=harm, captures=captures, warnings=self.warnings,
            clipped_halfcycles=self.clipped)


def _serial_add(acc: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """acc + rows[0] + rows[1] + ... strictly in that order, so that how the rows were batched
    (chunking) cannot change the rounding."""
    return np.add.accumulate(np.concatenate((acc[None], rows)), axis=0)[-1]


def _cat(parts, empty_shape=(0,)):
    return np.concatenate(parts) if parts else np.empty(empty_shape)


def _series(parts, nch) -> Series:
    if not parts:
        z = np.empty((0, nch))
        return Series(np.empty(0), z, z.copy(), z.copy(), np.empty(0, np.uint8), np.empty(0))
    cols = list(zip(*parts))
    return Series(*(np.concatenate(c) for c in cols))


def analyze_array(x, sample_rate: float, chunk: int | None = None, **kw) -> AnalysisResult:
    """Analyse an array at once (or in chunks of `chunk` samples)."""
    x = np.asarray(x)
    an = Analyzer(sample_rate, channels=1 if x.ndim == 1 else x.shape[1], **kw)
    if chunk is None:
        an.feed(x)
    else:
        for s in range(0, x.shape[0], chunk):
            an.feed(x[s:s + chunk])
    return an.finish()
