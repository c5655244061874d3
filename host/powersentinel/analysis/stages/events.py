"""The event stage: dips, swells and interruptions (IEC 61000-4-30) on Urms(1/2), their timing
refined to the sample where the waveform changed, and their waveform captures."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable

import numpy as np

from ..errors import AnalysisInputError
from ..refine import change_points
from .grid import FLAG_CLIPPED, FLAG_EVENT, Grid
from .halfcycles import HalfCycleRows
from .history import SampleHistory

KINDS = ("dip", "swell", "int")  # event state machines, in the order they are run


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
    f_hint: float = 0.0  # measured frequency before the start, where refinement searches

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



def capture_key(ev: Event) -> tuple:
    """The order in which events get waveform captures: by IEC start, then kind."""
    return (ev.k_start, ev.type)


class EventStage:
    """Dip, swell and interruption detection with hysteresis per channel, combined by the
    polyphase rules (dip and swell: any phase; interruption: all phases).

    feed(rows, x, n0): the step's completed half cycles (HalfCycleRows, or None if it completed
    none) and its raw samples x [n, ch] from global index n0. Returns FLAG_EVENT per row (None
    without rows). Refinement searches the frequency near f_at(n) (FrequencyStage.f_at: the
    measured frequency at sample n), asked at each start about the cycles before it, two
    cycles before the samples fed, so the answer does not depend on the chunking.
    State across steps: each kind's per-channel hysteresis state and combined state, the open
    event of each kind, and a sample history (SampleHistory) from which refinement and
    captures take the waveform around each start and end, also across steps.
    finish(k_open, n_done, warnings): closes the events still open at the end (ongoing:
    their duration is a lower bound; a warning each), serves the waveforms still wanted, and
    returns the result fields events (sorted by start, ids from 0, refined timing settled,
    includes_interruption set) and captures (event id -> {"event" | "start" | "end":
    (t0 s, volts [n, ch])}) for the first max_captures events by IEC start (an event longer
    than `post` gets a start and an end capture, `pre` + `post` samples each)."""

    def __init__(self, grid: Grid, kernels: ModuleType, channels: int, nominal_v: float,
                 volts_per_count: float, thresholds: Thresholds, refine: bool,
                 max_captures: int, pre: int, post: int, f_at: Callable[[int], float]):
        self.grid = grid
        self.k = kernels
        self.nch = channels
        self.u_nom = nominal_v
        self.vpc = volts_per_count
        self.th = thresholds
        self.do_refine = refine
        self.max_captures = max_captures
        self.pre = pre    # capture samples before the start / after the end
        self.post = post  # capture samples after the start / before the end (long events)
        self.state_init = {t: np.zeros(self.nch, np.uint8) for t in KINDS}
        self.on = {t: False for t in KINDS}
        self.prev_states = {t: np.zeros(self.nch, np.uint8) for t in KINDS}
        self.open: dict[str, Event | None] = {t: None for t in KINDS}
        self.events: list[Event] = []
        self.n_started = 0
        self.captures: dict = {}  # uid -> {"event" | "start" | "end": (t0 s, volts)}
        self.kept: dict = {}      # uid -> capture_key() of the events that keep their captures
        self.early: dict = {}     # uid -> the start capture of an open event
        self.f_at = f_at
        # refinement looks up to 3 cycles before a start that Urms(1/2) may see 12 half cycles
        # late; a short event's capture starts `pre` before a start up to `post` back
        self.history = SampleHistory(channels, self.history_length(grid, pre, post))

    @staticmethod
    def history_length(grid: Grid, pre: int, post: int) -> int:
        """Samples before a step that refinement and captures may still ask for."""
        return max(int(grid.cycle * 24), post) + pre + 16

    def feed(self, rows: HalfCycleRows | None, x: np.ndarray, n0: int) -> np.ndarray | None:
        out = None if rows is None else self._detect(rows.u, rows.k, rows.flags)
        self.history.feed(x, n0)
        return out

    def _detect(self, u: np.ndarray, kvals: np.ndarray, flags: np.ndarray) -> np.ndarray:
        th = self.th
        un = self.u_nom
        cfg = {"dip": (th.dip_pct, th.dip_pct + th.hysteresis_pct, True),
               "swell": (th.swell_pct, th.swell_pct - th.hysteresis_pct, False),
               "int": (th.interruption_pct, th.interruption_pct + th.hysteresis_pct, True)}
        m = u.shape[0]
        active = np.zeros(m, bool)
        for typ, (s, e, below) in cfg.items():
            st, fin = self.k.hysteresis(u, s * un / 100.0, e * un / 100.0, below,
                                        self.state_init[typ])
            self.state_init[typ] = fin
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
                               iec_start_s=self.grid.edge(k - 1) / self.grid.fs, k_start=k,
                               ch_start=ch, extreme=-math.inf if typ == "swell" else math.inf,
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
        for typ in KINDS:
            ev = self.open[typ]
            if ev is not None and not ev.start_done and last_k >= ev.k_start + 12:
                self._refine_request(ev, "start")
        out = np.zeros(m, np.uint8)
        out[active] = FLAG_EVENT
        return out

    def _on_start(self, ev: Event) -> None:
        ev.channels = [ev.ch_start]
        # the cycles before the disturbance; asked at least two cycles before the samples fed
        ev.f_hint = self.f_at(self.grid.edge(ev.k_start - 3))
        if not self.do_refine:
            ev.start_done = True
        # the start's waveform is taken now, while the history holds it: a long event may end
        # after it has left the history (an event that cannot make the captures is skipped)
        if self._may_keep(capture_key(ev)):
            rec = self.early[ev.uid] = {}
            s = self.grid.edge(ev.k_start - 1)
            self.history.request(max(s - self.pre, 0), s + self.post, self._keep(rec, "start"))

    def _on_end(self, ev: Event, ongoing_until: int | None = None) -> None:
        """Close ev; ongoing_until: the samples recorded, for an event the recording cut."""
        ongoing = ongoing_until is not None
        ev.ongoing = ongoing
        k_end = ev.k_end if ev.k_end is not None else ev.k_start
        end = self.grid.edge(k_end + 1)
        if ongoing_until is not None:
            end = min(end, ongoing_until)
        ev.iec_duration_s = end / self.grid.fs - ev.iec_start_s
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
        self._capture(ev)

    # -- sub-cycle refinement and waveform captures --------------------------------------------
    def _refine_request(self, ev: Event, mode: str) -> None:
        grid = self.grid
        T = int(round(grid.cycle))
        H = int(round(grid.half))
        k_end = ev.k_end if ev.k_end is not None else ev.k_start
        # [a, lo): undisturbed before; [lo, hi): where the change(s) are; [hi, b): undisturbed
        if mode == "end":
            lo = grid.edge(k_end - 2) - 2 * T
            a = lo
        else:
            ev.start_done = True
            lo = grid.edge(ev.k_start - 3)
            a = lo - 3 * T
        if mode == "start":
            hi = grid.edge(ev.k_start + 1) + 2 * T
            b = hi
        else:
            hi = grid.edge(k_end + 1) + H
            b = hi + 3 * T
        a = max(a, 0)
        lo = max(lo, a)
        ch = ev.ch_start if mode != "end" else ev.ch_end
        f_hint = ev.f_hint

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
                s1, s2 = change_points(y, grid.fs, mask, l, h, mode, f_hint)
            except (ValueError, np.linalg.LinAlgError):
                return  # keep the IEC timing
            # a change point far from where Urms(1/2) saw the event is not trusted
            if s1 is not None and abs(a0 + s1 - grid.edge(ev.k_start)) <= 2 * grid.cycle:
                ev.start_ref = (a0 + s1) / grid.fs
            if s2 is not None and abs(a0 + s2 - grid.edge(k_end)) <= 2 * grid.cycle:
                ev.end_ref = (a0 + s2) / grid.fs
        self.history.request(a, b, done)

    def _may_keep(self, key: tuple) -> bool:
        """Whether an event with this key can still be among the first max_captures."""
        if len(self.kept) < self.max_captures:
            return True
        return bool(self.kept) and key < max(self.kept.values())

    def _capture(self, ev: Event) -> None:
        """Keep the captures of the first max_captures events by capture_key(), whatever order
        they end in (within a step, the kinds end one after the other)."""
        early = self.early.pop(ev.uid, None)
        key = capture_key(ev)
        if not self._may_keep(key):
            return
        if len(self.kept) >= self.max_captures:
            last = max(self.kept, key=lambda uid: self.kept[uid])
            del self.kept[last]
            self.captures.pop(last, None)
        self.kept[ev.uid] = key
        s = self.grid.edge(ev.k_start - 1)
        e = self.grid.edge((ev.k_end if ev.k_end is not None else ev.k_start) + 1)
        if e - s <= self.post:  # one capture from `pre` before to `pre` after
            rec = self.captures[ev.uid] = {}
            self.history.request(max(s - self.pre, 0), e + self.pre, self._keep(rec, "event"))
        else:  # the start one, taken at the start, and one around the end
            rec = self.captures[ev.uid] = early if early is not None else {}
            self.history.request(max(e - self.post, 0), e + self.pre, self._keep(rec, "end"))

    def _keep(self, rec: dict, name: str):
        def cb(a0, data):
            rec[name] = (a0 / self.grid.fs, data.astype(np.float64) * self.vpc)
        return cb

    # -- end -----------------------------------------------------------------------------------
    def finish(self, k_open: int, n_done: int, warnings: list[str]) -> dict:
        for typ in KINDS:
            ev = self.open[typ]
            if ev is not None:  # duration unknown: till the end of the recording
                ev.k_end = k_open
                self._on_end(ev, ongoing_until=n_done)
                warnings.append(f"{ev.type} at {ev.iec_start_s:.3f} s still in progress at "
                                "the end of the recording: its duration is a lower bound")
        self.history.finish(n_done)
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
        captures = {by_uid[k]: v for k, v in sorted(self.captures.items(),
                                                    key=lambda kv: by_uid[kv[0]])}
        return {"events": events, "captures": captures}
