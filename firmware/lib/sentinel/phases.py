"""Several mains channels sensed together (three phases, feeds A and B, or both): one
MainsMonitor per channel, and the polyphase rules of IEC 61000-4-30 on their events.

Loaded only when mains.channels lists more than one channel (device heap: boards without ROMFS
hold every imported module's bytecode in RAM); a single-channel site runs MainsMonitor alone.

PhaseSet presents the interface of one MainsMonitor to the sampler, the capture ring and the
rest of the firmware, as the aggregate of its channels:
  lost   every channel is lost (the fast loss trigger of each has fired);
  good   at least one channel is good (one healthy feed or phase keeps the servers powered:
         the site model decides about redundancy, not this class);
  urms   the highest channel's Urms(1/2); freq: the first good channel's (else the first known);
  events dips and swells start when any channel's starts and end when every channel's has
         ended (the union of overlapping channel events); a dip is an interruption only when
         every channel was below interruption_pct at the same time (as
         host/powersentinel/analysis/stages/events.py does);
  trig_seq / trig_pos   a disturbance on any channel (captures keep every channel).
Per channel: mons[i] (the MainsMonitor), names[i], feeds[i]; lost_mask / good_mask (bit i).

feed(block) takes one block of interleaved samples (ch0, ch1, ... ch0, ch1, ...), splits it into
one preallocated buffer per channel and feeds each monitor: allocation-free, as
MainsMonitor.feed. pending() merges the channels' finished events (making dicts only when an
event finished).
"""
import sys
from array import array

from sentinel.mains import MainsMonitor

_CAP = (1 << 30) - 1
_EQ = 8                  # finished polyphase events kept until popped
_PHASES = ("L1", "L2", "L3")

if sys.implementation.name == "micropython":
    import micropython  # pyright: ignore[reportAssignmentType]
else:
    class micropython:  # noqa: N801  (CPython: the decorator changes nothing)
        @staticmethod
        def native(f):
            return f


def _split_plain(src, dst, ch, nch, n):
    j = ch
    for i in range(n):
        dst[i] = src[j]
        j += nch


_split = _split_plain
if sys.implementation.name == "micropython":
    # one channel out of an interleaved block: 16-bit copies, so no sign handling is needed
    @micropython.viper  # pyright: ignore[reportAttributeAccessIssue]
    def _split_viper(src, dst, ch: int, nch: int, n: int):
        s = ptr16(src)  # noqa: F821  (viper built-in)
        d = ptr16(dst)  # noqa: F821
        j = ch
        i = 0
        while i < n:
            d[i] = s[j]
            j += nch
            i += 1

    _split = _split_viper


def channel_cfg(cfg, ch):
    """The mains section as one channel `ch` (an item of cfg["channels"]) sees it: its own
    calibration when it has one. cfg itself when there is nothing to change."""
    vpc = ch.get("volts_per_count")
    if vpc is None:
        return cfg
    out = dict(cfg)
    out["volts_per_count"] = vpc
    return out


def is_phase(name):
    return name in _PHASES


class PhaseSet:
    """cfg: the validated "mains" section with two or more channels; fast: as MainsMonitor."""

    def __init__(self, cfg, fast=None):
        chans = cfg["channels"]
        self.nch = n = len(chans)
        self.names = [c["name"] for c in chans]
        self.feeds = [c.get("feed") or ("" if is_phase(c["name"]) else c["name"]) for c in chans]
        self.rate = int(cfg["sample_rate"])
        self.nominal_v = float(cfg["nominal_v"])
        self.mons = [MainsMonitor(channel_cfg(cfg, c), fast) for c in chans]
        bl = int(cfg["block_len"])
        self.bufs = [array("h", bytes(2 * bl)) for _ in range(n)]
        self._mvs = [memoryview(b) for b in self.bufs]
        # each channel's interruption state, with the hysteresis the host's event stage uses
        # (thresholds in that channel's mean-square units)
        self._ion = array("i", [m.events._int_on for m in self.mons])
        hyst = float(cfg["hysteresis_pct"])
        ip = float(cfg["interruption_pct"])
        self._ioff = array("i", [int(m.events._int_on * ((ip + hyst) / ip) ** 2)
                                 for m in self.mons])
        self._ibits = 0
        self._iall = (1 << n) - 1
        self._int_seen = False     # every channel below interruption_pct during the open dip
        self._tch = array("i", [0] * n)   # each channel's trig_seq last seen
        self._tmap = array("i", [0] * n)  # ... and the set's trig_seq it was given
        self.lost = False
        self.good = False
        self.lost_mask = 0
        self.good_mask = 0
        self.trig_seq = 0
        self.trig_pos = 0
        self._lo = None            # the open polyphase dip: [start, end, min_v, trig, bits]
        self._hi = None            # the open polyphase swell: [start, end, max_v, trig, bits]
        self._q = []
        self.dropped = 0

    # -- the hot path ----------------------------------------------------------------------
    @micropython.native
    def feed(self, block):
        """One block of interleaved int16 samples, nch per sampling tick. Allocation-free when
        the block holds block_len ticks."""
        nch = self.nch
        n = len(block) // nch
        lost = True
        good = False
        lm = 0
        gm = 0
        ib = self._ibits
        for c in range(nch):
            buf = self.bufs[c]
            _split(block, buf, c, nch, n)
            m = self.mons[c]
            m.feed(buf if n == len(buf) else self._mvs[c][:n])
            bit = 1 << c
            if m.lost:
                lm |= bit
            else:
                lost = False
            if m.good:
                gm |= bit
                good = True
            t = m.trig_seq
            if t != self._tch[c]:
                self._tch[c] = t
                s = self.trig_seq
                s = s + 1 if s < _CAP else 0
                self.trig_seq = s
                self._tmap[c] = s
                self.trig_pos = m.trig_pos
            if m._nu:
                u = m._u
                if u < self._ion[c]:
                    ib |= bit
                elif u >= self._ioff[c]:
                    ib &= ~bit
        self._ibits = ib
        if ib == self._iall:
            self._int_seen = True
        self.lost = lost
        self.good = good
        self.lost_mask = lm
        self.good_mask = gm

    def skip(self, n):
        for m in self.mons:
            m.skip(n)

    def resync(self):
        for m in self.mons:
            m.resync()

    # -- the first channel's clock (every channel is fed the same samples) -----------------
    @property
    def pos(self):
        return self.mons[0].pos

    @property
    def epoch(self):
        return self.mons[0].epoch

    @property
    def samples(self):
        return self.mons[0].samples

    @property
    def gaps(self):
        return self.mons[0].gaps

    @property
    def gap_samples(self):
        return self.mons[0].gap_samples

    def since(self, pos):
        return self.mons[0].since(pos)

    # -- aggregate readings ----------------------------------------------------------------
    @property
    def urms(self):
        v = 0.0
        for m in self.mons:
            u = m.urms
            if u > v:
                v = u
        return v

    @property
    def freq(self):
        f0 = None
        for m in self.mons:
            f = m.freq
            if f is not None:
                if m.good:
                    return f
                if f0 is None:
                    f0 = f
        return f0

    @property
    def in_event(self):
        return self._lo is not None or self._hi is not None or any(m.in_event for m in self.mons)

    @property
    def events_dropped(self):
        return self.dropped + sum(m.events_dropped for m in self.mons)

    # -- polyphase events ------------------------------------------------------------------
    @micropython.native
    def pending(self):
        """Finished polyphase events waiting. Merges the channels' finished events: called
        after every block, it allocates only when a channel event finished."""
        lo = False
        hi = False
        for c in range(self.nch):
            m = self.mons[c]
            if m.events.pending():
                self._merge(c)
            e = m.events
            if e._lo:
                lo = True
            if e._hi:
                hi = True
        if self._lo is not None and not lo:
            self._close(self._lo, "interruption" if self._int_seen else "dip")
            self._lo = None
            self._int_seen = False
        elif self._lo is None and not lo:
            self._int_seen = False     # only while a dip is open
        if self._hi is not None and not hi:
            self._close(self._hi, "swell")
            self._hi = None
        return len(self._q)

    def _merge(self, c):
        m = self.mons[c]
        while m.events.pending():
            ev = m.pop_event()
            swell = ev["kind"] == "swell"
            v = ev["peak_v"] if swell else ev["residual_v"]
            start = ev["start"]
            end = start + ev["samples"]
            t = ev["trig"]
            trig = self._tmap[c] if t == self._tch[c] else self.trig_seq
            acc = self._hi if swell else self._lo
            if acc is None:
                acc = [start, end, v, trig, 1 << c]
                if swell:
                    self._hi = acc
                else:
                    self._lo = acc
                continue
            if start < acc[0]:
                acc[0] = start
                acc[3] = trig
            if end > acc[1]:
                acc[1] = end
            if (v > acc[2]) if swell else (v < acc[2]):
                acc[2] = v
            acc[4] |= 1 << c

    def _close(self, acc, kind):
        start, end, v, trig, bits = acc
        n = max(1, end - start)
        ev = {"kind": kind, "trig": trig, "start": start,
              "start_ms": start * 1000 // self.rate, "samples": n,
              "duration_ms": n * 1000.0 / self.rate,
              "pct": round(100.0 * v / self.nominal_v, 2),
              "phases": [self.names[c] for c in range(self.nch) if bits >> c & 1]}
        ev["peak_v" if kind == "swell" else "residual_v"] = v
        if len(self._q) >= _EQ:
            self._q.pop(0)
            self.dropped = self.dropped + 1 if self.dropped < _CAP else _CAP
        self._q.append(ev)

    def pop_event(self):
        """Oldest finished polyphase event (as MainsMonitor.pop_event(), plus "phases": the
        channels that took part), or None."""
        return self._q.pop(0) if self._q else None

    # -- read side -------------------------------------------------------------------------
    def alarm(self):
        """"redundancy lost: phase L2 lost, phase L3 out of tolerance" while a phase channel
        (one sensing no feed: the feeds are the site model's) is not good and the mains is not
        lost as a whole (that is an outage, shown as such); "" otherwise."""
        if self.lost:
            return ""
        out = []
        for c in range(self.nch):
            if not self.feeds[c] and not self.good_mask >> c & 1:
                out.append("phase %s %s" % (self.names[c], "lost" if self.lost_mask >> c & 1
                                            else "out of tolerance"))
        return "redundancy lost: " + ", ".join(out) if out else ""

    def channels(self):
        """Per channel, for the console: name, feed, v, hz, lost, good, event."""
        out = []
        for c in range(self.nch):
            m = self.mons[c]
            f = m.freq
            out.append({"name": self.names[c], "feed": self.feeds[c], "v": round(m.urms, 1),
                        "hz": None if f is None else round(f, 3), "lost": m.lost,
                        "good": m.good, "event": m.in_event})
        return out

    def nut_vars(self):
        """NUT variables per channel with NUT's names: input.phases and input.Lx-N.voltage for
        phase channels (L1..L3); input.N.voltage (N = 1, 2, ... in the order the feed channels
        are listed, as NUT's ATS drivers number their sources) for feed channels."""
        out = []
        nph = 0
        nf = 0
        for c in range(self.nch):
            name = self.names[c]
            v = round(self.mons[c].urms, 1)
            if is_phase(name):
                nph += 1
                out.append(("input.%s-N.voltage" % name, v))
            else:
                nf += 1
                out.append(("input.%d.voltage" % nf, v))
        if nph:
            out.append(("input.phases", nph))
        return out

    def status(self):
        f = self.freq
        return {"v": round(self.urms, 1), "hz": None if f is None else round(f, 3),
                "lost": self.lost, "good": self.good, "event": self.in_event,
                "channels": self.channels()}
