"""What the NUT server shows: the provider object NutServer calls (tier_names, ups_names,
status, vars), answering from the Snapshot the control step publishes.

The view never reads the monitor, the UPS link or the battery model itself: NUT clients see
one coherent reading per control step, and a connection task never touches sensing state.
Data is stale (every per-UPS query answers DATA-STALE, so upsmon fails safe) when the sampler
has not made progress for nut.stale_s, or when the control step has not published for as long.

ups.status: OL or OB is the sentinel's own decision and LB is never served (a stock upsmon
seeing OB LB shuts its server down by itself, out of tier order); the UPS's other statuses
(_PASS, from the link's Q1 bits or the contacts) and ALARM with ups.alarm are served as the
UPS reports them, the same on every tier (only FSD, the server's, differs per tier). Never CAL:
upsmon 2.8.0 keeps a CAL it has seen until it restarts, and then never counts OB LB as
critical, not even a sentinel lost while on battery (docs/nut-clients.md).

Pair mode (pair.enabled, docs/redundancy.md): a tier the plan has not reached is served OL even
on battery, and OB only from its turn (its FSD), so a sentinel that dies mid-outage was last
seen OL by the tiers still up and their upsmon never counts it critical (2.8.0 promotes a lost
OB supply to OB LB after DEADTIME; newer ones count a lost OB, BYPASS or OFF supply critical at
once, so those two are not shown to an unreached tier either). While the peer is
lost, ALARM is served with "redundancy lost: <cause>" in ups.alarm, after the UPS's own alarm.
Two feeds (feeds.FeedPolicy): while a feed is lost, ALARM too, with "redundancy lost: feed B
lost" in ups.alarm, on every tier. Phases (phases.PhaseSet.alarm): while a phase is missing or
out of tolerance, "redundancy lost: phase L2 lost" (or "... out of tolerance") the same way.
"""
from sentinel.version import VERSION

# UPS statuses passed through: upsmon 2.8.0 ignores them or only notifies
_PASS = ("RB", "BYPASS", "OFF", "OVER", "TRIM", "BOOST")
# statuses a tier the pair's plan has not reached is not shown (Snapshot.status)
_MASKED = ("BYPASS", "OFF")
# the sequencer phases (seqstate) of a tier the shutdown has reached
_REACHED = ("fsd", "waiting", "done", "timeout", "off")
# a list variable with no item (an empty value is dropped by dummy-ups and its repeater)
_NONE = "none"


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
    ups_toks    the UPS's statuses in _PASS, as it reports them (take_ups)
    alarm       ups.alarm text, "" when the UPS reports no alarm
    pair_alarm  "redundancy lost: <cause>" while the pair's peer is lost, else "" (pair.link)
    feed_alarm  "redundancy lost: feed B lost" while a feed is lost, else "" (feeds.FeedPolicy)
    phase_alarm "redundancy lost: phase L2 lost" while a phase is not good (phases.PhaseSet)
    inputs      [(var, value), ...] per mains channel (several channels only): input.phases,
                input.L1-N.voltage ... for phases, input.1.voltage ... for feeds
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
        self.ups_toks = ()
        self.alarm = ""
        self.inputs = ()  # the empty tuple is shared: nothing allocated on one channel
        self.pair_alarm = ""
        self.feed_alarm = ""
        self.phase_alarm = ""
        self._src = None  # the Q1 reply or contact bits ups_toks and alarm come from
        for t in names:
            self.phases[t] = None
            self.coverage[t] = []

    def tokens(self):
        """ups.status tokens for the console: as NUT serves them, and LB when the UPS says so."""
        return self.status() + (" LB" if self.lb else "")

    def status(self, masked=False):
        """ups.status as NUT serves it (without FSD, which the server adds per tier). masked:
        pair mode's view for a tier the plan has not reached: OL, and neither BYPASS nor OFF
        (a newer upsmon counts a supply it lost while last seen OB, BYPASS or OFF as critical
        at once)."""
        st = ("ALARM " if self.alarm or self.pair_alarm or self.feed_alarm or self.phase_alarm
              else "") + (
            "OB" if self.ob and not masked else "OL")
        for t in self.ups_toks:
            if not (masked and t in _MASKED):
                st += " " + t
        return st

    def alarms(self):
        """ups.alarm: the UPS's own alarm, then the pair's, the feeds', the phases' ("" when
        none)."""
        if not self.pair_alarm and not self.feed_alarm and not self.phase_alarm:
            return self.alarm
        return " ".join(a for a in (self.alarm, self.pair_alarm, self.feed_alarm,
                                    self.phase_alarm) if a)

    def take_ups(self, link, contacts):
        """Keep what the UPS reports beyond OL/OB/LB: from the link's last Q1 reply while the
        link is OK, else from the contacts. Recomputed only when its source changes, so the
        control step allocates nothing between replies."""
        if link is not None:
            q = link.q1 if link.link_ok else None
            if q is self._src:
                return
            self._src = q
            toks = link.status if q is not None else ()
            # the alarm texts of NUT's Q1 drivers (blazer, nutdrv_qx), which clients may match
            alarm = ""
            if q is not None and q.failed:
                alarm = "UPS selftest failed!"
            if q is not None and q.shutdown_active:
                alarm = (alarm + " Shutdown imminent!").lstrip()
        elif contacts is not None:
            b = contacts.status
            if b == self._src:
                return
            self._src = b
            toks = contacts.statuses()
            alarm = ""
        else:
            return
        self.ups_toks = tuple(t for t in toks if t in _PASS)
        self.alarm = alarm


def ups_list(cfg):
    """The UPS names served: one per tier, or "sentinel" when no tier is configured."""
    return [t["name"] for t in cfg["tiers"]] or ["sentinel"]


class NutView:
    """board_name: device.model; names: ups_list(cfg); snap: the Snapshot; now: the ms clock;
    stale_ms: nut.stale_s in ms; nominal: (mains.nominal_v, mains.nominal_hz), or None;
    pair: pair.enabled (unreached tiers see OL); fsd(ups) -> bool: the server's FSD flag, set
    by the app (a tier with FSD raised is reached whatever its phase)."""

    def __init__(self, board_name, names, snap, now, stale_ms, nominal=None, pair=False):
        self.board_name = board_name
        self.pair = pair
        self.fsd = None
        self.names = names
        self.snap = snap
        self.now = now
        self.stale_ms = stale_ms
        self.nominal = ()
        if nominal is not None:
            v, hz = nominal
            # "230" as NUT's drivers print a whole rating, not "230.0"
            self.nominal = (("input.voltage.nominal", int(v) if v == int(v) else v),
                            ("input.frequency.nominal", hz))

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
        # never LB: the sentinel acts on LB and tells each tier when, with FSD
        s = self.snap
        if not s.seen:
            return None
        return s.status(self.pair and not self.reached(ups))

    def use_fsd(self, fsd):
        """fsd(ups) -> bool: the NUT server's FSD flag per tier (the app wires it)."""
        self.fsd = fsd

    def reached(self, ups):
        """Pair mode: the plan has reached this tier (its FSD raised, by the plan or a client),
        so it may see OB."""
        if self.fsd is not None and self.fsd(ups):
            return True
        return self.snap.phases.get(ups) in _REACHED

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
        out.extend(self.nominal)
        out.extend(s.inputs)   # set by control on multi-channel sites
        for k, x in s.coverage.get(ups, ()):
            out.append((k, _NONE if x == "" else x))
        if s.load is not None:
            out.append(("ups.load", s.load))
        a = s.alarms()
        if a:
            out.append(("ups.alarm", a))
        return out
