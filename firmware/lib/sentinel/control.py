"""The control loop: every CONTROL_MS, gather the inputs (mains monitor, UPS link or contacts),
update the battery model, run StateMachine.update and the sequencer's step, refresh the coverage
audit, persist the plan when it changed, let the journal flush its batch, and publish the
Snapshot the NUT view answers from.

Every power rule lives in the state machine: this loop only translates sensors, and NUT
clients' requests (a client's FSD, instant commands, through nut/rwvars.NutActions), into Inputs,
and the machine's records into journal records and console events.
"""
import asyncio
import json

from sentinel.nut.rwvars import NutActions
from sentinel.runtime import write_atomic
from sentinel.statemachine import Inputs

CONTROL_MS = 100
COVERAGE_MS = 2000  # the coverage audit walks every tier's logins: not every step


def _no_gate(now):
    """A single sentinel: its sensor's readings count as they are."""


class Control:
    """rt: the Runtime; sensing: the Sensing (monitor, contacts, first-block flag); link: the
    UpsLink or None; battery, sm, seq, cov: the logic modules; snap: the Snapshot to publish."""

    def __init__(self, rt, sensing, link, battery, sm, seq, cov, snap):
        self.rt = rt
        self.sensing = sensing
        self.monitor = sensing.monitor
        self.contacts = sensing.contacts
        self.link = link
        self.battery = battery
        self.sm = sm
        self.seq = seq
        self.cov = cov
        self.snap = snap
        self.inputs = Inputs()
        # pair mode's sensor arbitration (pair.link.gate), set by the app: (now) -> None
        self.gate = _no_gate
        # two feeds: the feeds.FeedPolicy, set by the app when two feeds are sensed
        self.feeds = None
        # one UPS per feed: the feedups.FeedUps, set by the app (the site's UPS reading)
        self.feed_ups = None
        self._cov_at = -10 ** 9
        nut = seq.nut
        nut.on_fsd = self.client_fsd
        nut.actions = NutActions(rt.cfg, seq.ups, sm, self.inputs.commands, rt.log,
                                 asyncio.create_task)

    def attach_feed_ups(self, feed_ups):
        """The feedups.FeedUps (one UPS per feed): the site's UPS reading comes from it."""
        self.feed_ups = feed_ups

    def attach_feeds(self, policy):
        """The feeds.FeedPolicy (a two-feed site): stepped after the sequencer, its alarm
        published."""
        self.feeds = policy

    def client_fsd(self, ups, client):
        """A NUT client sent FSD on a tier (the server raised it there): journalled with who,
        and handed to the state machine, which decides what it starts."""
        self.rt.log("client_fsd", {"ups": ups, "addr": client[0], "user": client[1]},
                    critical=True)
        self.inputs.commands.append(("fsd", ups))

    def _gather(self):
        i = self.inputs
        rt = self.rt
        mon = self.monitor
        i.mains_lost = mon.lost
        i.mains_good = mon.good
        # during the monitor's first cycles its flags mean nothing yet: not "out of tolerance"
        i.mains_present = not rt.stale() and (mon.good or mon.lost or rt.uptime() > 2000)
        link = self.link
        con = self.contacts
        if link is not None:
            ok = bool(link.link_ok)
            toks = link.status
            i.ups_link_configured = True
            i.ups_link_ok = ok
            i.ups_link_known = bool(link.link_known)
            i.ups_on_battery = ok and ("OB" in toks)
            i.ups_low_battery = ok and ("LB" in toks)
            i.ups_charge = link.charge if ok else None
            i.ups_runtime = None
            i.ups_output_off = ok and ("OFF" in toks)
        elif con is not None:
            i.ups_link_configured = True
            i.ups_link_ok = bool(con.ready)
            i.ups_link_known = bool(con.ready)  # still debouncing its first reading
            i.ups_on_battery = bool(con.has("OB"))
            i.ups_low_battery = bool(con.has("LB"))
            i.ups_output_off = bool(con.has("OFF"))
        else:
            i.ups_link_configured = False
        if self.feed_ups is not None:
            self.feed_ups.site(i, self.monitor.good_mask)
        return i

    def step(self):
        now = self.rt.now()
        sm = self.sm
        i = self._gather()
        self.gate(now)
        self.battery.update(now, i.ups_on_battery or sm.on_battery, i.ups_charge)
        i.ups_charge = self.battery.charge_pct
        i.ups_runtime = self.battery.runtime_s
        before = (sm.state, sm.plan_id)
        self.records(sm.update(now, i))
        self.records(self.seq.step(now, sm))
        self.sensing.phase_step(now)
        cap = self.sensing.capture
        if cap is not None:
            cap.tend()   # a spare capture slot while one is in flight (allocates: not in feed)
        fp = self.feeds
        if fp is not None:
            fu = self.feed_ups
            mask = self.monitor.good_mask
            fp.step(now, mask, i.mains_present, sm.state == "ONLINE",
                    0 if fu is None else fu.low_mask(fp.names))
        if now - self._cov_at >= COVERAGE_MS:
            self._cov_at = now
            self.cov.update(now, quiet=sm.state != "ONLINE")
            cov = self.snap.coverage
            for name in cov:
                cov[name] = self.cov.nut_vars(name)
        if (sm.state, sm.plan_id) != before or self.seq.dirty or (fp is not None and fp.dirty):
            self.persist()
        self.rt.journal.poll(now)
        self.publish(now)

    def publish(self, now):
        s = self.snap
        i = self.inputs
        mon = self.monitor
        b = self.battery
        s.sampler_at = self.rt.alive.get("sampler")
        s.seen = self.sensing.seen
        s.ob = bool(i.ups_on_battery or self.sm.on_battery)
        s.lb = bool(i.ups_link_configured and i.ups_low_battery)
        s.charge = int(b.charge_pct)
        s.runtime = int(b.runtime_s)
        s.v = round(mon.urms, 1)
        s.hz = round(mon.freq or 0.0, 2)
        ni = getattr(mon, "nut_vars", None)   # several mains channels: input.L1-N.voltage ...
        if ni is not None:
            s.inputs = ni()
        link = self.link
        s.load = link.load if link is not None and link.link_ok else None
        s.take_ups(link, self.contacts)
        s.state = self.sm.state
        s.plan_id = self.sm.plan_id
        if self.feeds is not None:
            s.feed_alarm = self.feeds.alarm
        s.phase_alarm = self.sensing.phase_alarm
        ph = s.phases
        for name in ph:
            ph[name] = self.seq.phase(name)
        s.at = now

    def records(self, recs):
        """State machine records into the journal (transitions also as console events)."""
        for rec in recs or ():
            t, frm, to, cause, detail = rec
            data = {"from": frm, "to": to, "cause": cause, "detail": detail}
            self.rt.log("state" if frm != to else "policy", data, critical=frm != to)
            if frm != to:
                self.rt.console.event("state", **data)

    def persist(self):
        """The plan's progress (and a two-feed site's feed policy), so a reboot mid-sequence
        resumes where it was."""
        rt = self.rt
        try:
            now = rt.now()
            d = {"sm": self.sm.to_dict(now), "seq": self.seq.to_dict(now),
                 "at": rt.board.time()}
            if self.feeds is not None:
                d["feeds"] = self.feeds.to_dict(now)
            write_atomic(rt.files["state"], json.dumps(d))
        except OSError as e:
            rt.error("persist", e)

    async def run(self):
        # A failing iteration is reported and does not count as progress: if it keeps failing,
        # the supervisor stops feeding the watchdog and the board restarts (then safe mode).
        rt = self.rt
        while True:
            try:
                self.step()
                rt.progress("control")
            except Exception as e:
                rt.error("control", e)
            await asyncio.sleep_ms(CONTROL_MS)
