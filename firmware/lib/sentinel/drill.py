"""Drills: the rehearsal of the plan, which raises no FSD, wakes nothing and cuts no power.

Owns what a drill finds and its report. The sequencer drives it: `connected()` in the shutdown
half notes which configured hosts are logged in to their tier (and which unknown clients are);
`probe()` in the power-on half polls each host's health check until every one has answered or
the probe time has run out; `report()` turns the findings and the last real sequence's measured
figures into the estimate of what a real outage would take.
"""
from sentinel.coverage import logged_in_addrs
from sentinel.seqstate import CHECKED, REACHABLE, seconds

_LIST_MAX = 16  # unknown addresses kept per tier


class Drill:
    """tiers     the sequencer's seqstate.Tier list (config order)
    nut       NutServer (logged_in(tier))
    health    object with check(tier, host_cfg, now_ms, since_ms) -> True/False/None
    probe_ms  how long a host's health check may take to answer"""

    def __init__(self, tiers, nut, health, probe_ms):
        self.tiers = tiers
        self.nut = nut
        self.health = health
        self.probe_ms = probe_ms
        self.reset()

    def reset(self):
        self.hosts = {}    # host name -> [connected, reachable (None: not known yet)]
        self.unknown = {}  # tier name -> addresses logged in that no host of the tier has

    def connected(self):
        """Note who is logged in to each tier now."""
        for t in self.tiers:
            addrs = logged_in_addrs(self.nut, t.name)
            known = []
            for h in t.hosts:
                self.hosts[h.name] = [h.addr in addrs, None]
                known.append(h.addr)
            self.unknown[t.name] = [a for a in addrs if a not in known][:_LIST_MAX]

    def probe(self, now, since):
        """Poll the health checks started at `since`. True once every host has its answer
        ("unchecked" for health none; False when no answer came within probe_ms)."""
        if not self.hosts:
            self.connected()  # resumed after a reboot: the first half is redone here
        pending = False
        late = now - since >= self.probe_ms
        for t in self.tiers:
            for h in t.hosts:
                d = self.hosts[h.name]
                if d[1] is not None:
                    continue
                if h.kind == "none":
                    d[1] = "unchecked"
                    continue
                r = self.health.check(t.name, h.cfg, now, since)
                if r is not None:
                    d[1] = bool(r)
                elif late:
                    d[1] = False
                else:
                    pending = True
        return not pending

    def report(self, plan_id, m_down, m_boot, boot_ms, load_off, stable_s):
        """The drill report. m_down / m_boot: measured tier logout and host boot times (ms) of
        the last real sequence; boot_ms: the boot timeout used without a measurement;
        load_off: the UPS command's settings (None: no UPS command); stable_s: the wait for
        stable mains before power-on."""
        tiers = []
        problems = []
        down_total = 0
        up_total = 0
        for t in self.tiers:
            hosts = []
            n_con = 0
            boot = 0
            boot_measured = True
            for h in t.hosts:
                con, reach = self.hosts.get(h.name, (None, None))
                hosts.append({"host": h.name, "addr": h.addr, "connected": con,
                              "reachable": reach})
                if con:
                    n_con += 1
                else:
                    problems.append("%s (%s): not logged in to its tier" % (h.name, t.name))
                if reach is False and (con or h.kind != "nut"):  # nut: the same fact twice
                    problems.append("%s (%s): health check %s failed" % (
                        h.name, t.name, h.cfg["health"]))
                if h.kind != "none":
                    b = m_boot.get(h.name)
                    if b is None:
                        b = boot_ms
                        boot_measured = False
                    boot = max(boot, b)
            if n_con:
                w = m_down.get(t.name)
                down_basis = "measured" if w is not None else "max_wait"
                if w is None:
                    w = t.max_wait_ms
            else:
                w = 0
                down_basis = "nobody logged in"
            down = t.delay_ms + w
            up = t.delay_ms + boot
            down_total += down
            up_total += up
            tiers.append({"name": t.name, "hosts": hosts,
                          "unknown": self.unknown.get(t.name, []),
                          "down_s": seconds(down), "down_basis": down_basis,
                          "up_s": seconds(up),
                          "up_basis": "measured" if boot_measured else "boot_timeout"})
        names = [t.name for t in self.tiers]
        return {
            "plan": plan_id,
            "ok": not problems,
            "order_down": names,
            "order_up": list(reversed(names)),
            "tiers": tiers,
            "shutdown_s": seconds(down_total),
            "load_off": load_off,
            "wait_before_power_on_s": stable_s,
            "power_on_s": seconds(up_total),
            "problems": problems,
        }


# The sequencer's two drill halves, here so the sequencer stays one walk (drills are rare:
# this module loads with the first one).
def walk_down(seq, now, sm):
    """The shutdown half of a drill: who is logged in to each tier; no FSD."""
    if seq.complete:
        return
    (seq._drill or seq._new_drill()).connected()
    for i in seq.order:
        seq._sm(sm.tier_progress(now, seq.tiers[i].name, CHECKED, seq.plan_id))
    seq.complete = True
    seq.dirty = True
    seq._sm(sm.sequence_done(now, seq.plan_id))


def walk_up(seq, now, sm):
    """The power-on half: probe each host's health check (no wake), then the report."""
    d = seq._drill or seq._new_drill()
    if seq.complete or not d.probe(now, seq.t_plan):
        return
    for i in seq.order:
        seq._sm(sm.tier_progress(now, seq.tiers[i].name, REACHABLE, seq.plan_id))
    lo = None if seq.ups is None else {"delay_min": seq.delay_min,
                                       "restore_min": seq.restore_min}
    r = seq.report = d.report(seq.plan_id, seq.m_down, seq.m_boot,
                              seq.boot_ms, lo, seq.stable_s)
    seq._log("drill", {"plan": seq.plan_id, "ok": r["ok"], "shutdown_s": r["shutdown_s"],
                       "power_on_s": r["power_on_s"], "problems": r["problems"][:8],
                       "n_problems": len(r["problems"])}, now, True)
    seq.complete = True
    seq.dirty = True
    seq._sm(sm.sequence_done(now, seq.plan_id))
