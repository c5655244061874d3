"""What the NUT server shows: the provider object NutServer calls (tier_names, ups_names,
status, vars), answering from the Snapshot the control step publishes.

The view never reads the monitor, the UPS link or the battery model itself: NUT clients see
one coherent reading per control step, and a connection task never touches sensing state.
Data is stale (every per-UPS query answers DATA-STALE, so upsmon fails safe) when the sampler
has not made progress for nut.stale_s, or when the control step has not published for as long.
"""
from sentinel.version import VERSION


class Snapshot:
    """One control step's reading, replaced field by field in place (no allocation per step
    beyond the floats themselves).

    at          ms the control step last published (None: never)
    sampler_at  ms of the sampler's last progress (None: no block yet)
    seen        the mains monitor has read its first block
    ob / lb     on battery (the UPS or our own sensor) / the UPS says LB
    charge, runtime, v, hz, load   battery %, seconds; Urms, Hz; UPS load % or None
    state, plan_id                 the state machine's decision
    phases      tier -> the sequencer's phase for it
    coverage    tier -> [(var, value), ...]  sentinel.coverage.* (refreshed with the audit)
    """

    def __init__(self, names):
        self.at = None
        self.sampler_at = None
        self.seen = False
        self.ob = False
        self.lb = False
        self.charge = 0
        self.runtime = 0
        self.v = 0.0
        self.hz = 0.0
        self.load = None
        self.state = "ONLINE"
        self.plan_id = 0
        self.phases = {}
        self.coverage = {}
        for t in names:
            self.phases[t] = None
            self.coverage[t] = []

    def tokens(self):
        """ups.status tokens for the console: OB/OL, and LB when the UPS says so."""
        return ("OB" if self.ob else "OL") + (" LB" if self.lb else "")


def ups_list(cfg):
    """The UPS names served: one per tier, or "sentinel" when no tier is configured."""
    return [t["name"] for t in cfg["tiers"]] or ["sentinel"]


class NutView:
    """board_name: device.model; names: ups_list(cfg); snap: the Snapshot; now: the ms clock;
    stale_ms: nut.stale_s in ms."""

    def __init__(self, board_name, names, snap, now, stale_ms):
        self.board_name = board_name
        self.names = names
        self.snap = snap
        self.now = now
        self.stale_ms = stale_ms

    def tier_names(self):
        return self.names

    def ups_names(self):
        return [(n, "Power Sentinel tier %s" % n) for n in self.names]

    def stale(self):
        s = self.snap
        now = self.now()
        return (s.at is None or s.sampler_at is None or now - s.sampler_at > self.stale_ms
                or now - s.at > self.stale_ms)

    def status(self, ups):
        # OB/OL only: a stock upsmon that sees OB+LB shuts its server down by itself, which
        # would break tier order; the sentinel acts on LB and tells each tier when with FSD
        if not self.snap.seen:
            return None
        return "OB" if self.snap.ob else "OL"

    def vars(self, ups):
        if self.stale():
            return None
        s = self.snap
        name = self.board_name
        out = [("battery.charge", s.charge), ("battery.runtime", s.runtime),
               ("input.voltage", s.v), ("input.frequency", s.hz),
               ("device.mfr", "Power Sentinel"), ("device.model", name),
               ("device.type", "ups"), ("driver.name", "powersentinel"),
               ("driver.version", VERSION), ("ups.mfr", "Power Sentinel"),
               ("ups.model", "sentinel %s" % name),
               ("sentinel.state", s.state), ("sentinel.tier", ups),
               ("sentinel.tier.phase", s.phases.get(ups)),
               ("sentinel.plan", s.plan_id)]
        out.extend(s.coverage.get(ups, ()))
        if s.load is not None:
            out.append(("ups.load", s.load))
        return out
