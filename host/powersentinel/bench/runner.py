"""Run a scenario against a board: build the device config from the site, start the rig and the
simulated site, play the timeline, watch the board, judge the expectations, write the report.

Clocks: the runner records wall time (time.time()); story time = (wall - t0) x scale. The
timeline's `at` and expectation windows are story time. Mains disturbances (dip, swell,
flicker, chatter) run in real time: their start waits for the onset phase on the rig, their
end is aimed at the same point of a later cycle, and the rig's sample counter tells how many
whole cycles actually elapsed (the truth replay uses that count).
"""
from __future__ import annotations

import collections
import json
import os
import re
import secrets
import shutil
import tempfile
import time

from .. import nutreal
from ..link import Link, LinkError
from ..paths import use_firmware_lib
from . import devconfig
from .contactups import contact_upses
from .judge import judge
from .report import write_report
from .results import POLL_RIG_S, POLL_STATUS_S, RunResult
from .rig import PairRig, RigError, VirtualRig
from .scenario import ScenarioError, parse_duration, ups_feeds
from .site import Site

use_firmware_lib()
from sentinel import console  # noqa: E402  (one definition of the framing)
from sentinel.passwd import hash_password  # noqa: E402

class _StampedEvents(collections.deque):
    """The link's event queue, stamping each event with its arrival (wall) time: events that
    arrive while a status request is in flight are drained only after its reply, up to a second
    later, and transitions must carry the time they happened."""

    def append(self, obj):
        if isinstance(obj, dict):
            obj.setdefault("_rx", time.time())
        super().append(obj)


# ---- device config ---------------------------------------------------------------------------

def device_config(sc, site, scale, user, pw_hash):
    """(device config, notes) for scenario `sc` at `scale` on the simulated `site`: the config
    `config push` of the same site file would install, the device's defaults filled in; notes
    list what was clamped or rounded."""
    full, problems, notes = devconfig.device_config(sc, site.device_hosts, site.wol_port, scale,
                                                    user, pw_hash)
    if problems:
        raise ScenarioError(sc.path, ["generated device config: " + p for p in problems])
    return full, notes


# ---- the run ---------------------------------------------------------------------------------

class Runner:
    def __init__(self, sc, rig=None, scale=None, report_dir=None, workdir=None, progress=None,
                 observer=None):
        self.sc = sc
        self.observer = observer  # fn(story_s, sample dict, device status) at each status poll
        self.scale = float(scale or sc.time_scale)
        # a scratch directory we make is ours to remove; one the caller gives stays
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="hil-%s-" % sc.name)
        if rig is None:
            rig = (PairRig(self.workdir, heap=sc.heap, pair=sc.pair) if sc.pair is not None
                   else VirtualRig(self.workdir, heap=sc.heap))
        self.rig = rig
        self.sides = ("a", "b") if sc.pair is not None else ("a",)
        self.report_dir = report_dir
        self.progress = progress or (lambda msg: None)
        self.res = RunResult(sc, self.scale)
        self.pending = []         # (wall, fn) follow-ups of real-time stimuli
        self.links = {}           # board side ("a", "b" of a pair) -> its console Link
        self.site = None
        self.last_states = {side: None for side in self.sides}
        self.powered = {side: True for side in self.sides}  # a pair's board not killed
        self.last_status = {}     # side -> its last status reply
        self.triggers = []        # steps waiting for the plan ("tier:NAME", "state:STATE")
        self._drift = None        # (wall start, wall end, hz from, hz to)
        self._cmd_lists = {}      # side -> the UPS's recent commands at the last rig read
        self.ups_feeds = ups_feeds(sc.site)  # feeds with a UPS each ([] : one UPS)
        # a feed's UPS read over contacts: played here, its lines set from its status
        self.contact_upses = contact_upses(sc.site, self.scale)
        # NUT's ALARM read at each status poll: a pair's, or a scenario that judges it
        self.watch_alarm = sc.pair is not None or any(e.kind == "alarm" for e in sc.expects)

    @property
    def link(self):
        return self.links.get("a")

    @property
    def last_state(self):
        return self.last_states["a"]

    # -- plumbing ------------------------------------------------------------------------------
    def _status(self, side="a"):
        if not self.powered[side]:
            return None  # a board without power answers nothing: do not wait for it
        try:
            st = self.links[side].request("status", timeout=1.0, retries=0)
        except LinkError:
            st = None
        self._drain_events(side)
        if st:
            self.last_status[side] = st
        return st

    def _read_available(self, side="a"):
        """Take the event frames already waiting on the port without blocking (so transitions are
        stamped within one loop turn of their arrival, not at the next status poll)."""
        link = self.links[side]
        try:
            n = link.ser.in_waiting
            chunk = link.ser.read(n) if n else b""
        except OSError:
            return
        if not chunk:
            return
        link.buf += chunk
        while b"\n" in link.buf:
            line, link.buf = link.buf.split(b"\n", 1)
            obj = console.decode(line)
            if obj is not None and "ev" in obj:
                link.events.append(obj)
        self._drain_events(side)

    def _transition(self, side, now, frm, to, cause):
        self.res.transitions.append((now, frm, to, cause))
        if self.sc.pair is not None:
            self.res.board_transitions.append((now, side, frm, to, cause))
        self.last_states[side] = to

    def _drain_events(self, side="a"):
        link = self.links[side]
        while link.events:
            ev = link.events.popleft()
            now = ev.pop("_rx", None) or time.time()
            kind = ev.get("ev")
            if kind == "state" and ev.get("from") != ev.get("to"):
                self._transition(side, now, ev.get("from"), ev.get("to"), ev.get("cause"))
            elif kind == "event" and side == "a":  # one sensor's events (a pair's are alike)
                self.res.mains_events.append((now, ev))

    def _sample(self, sts, rig):
        """sts: side -> its status reply (None: no answer, or no power)."""
        now = time.time()
        st = sts.get("a")
        s = {"wall": now, "mains_level": rig.get("mains_level") if rig else None,
             "frequency": rig.get("frequency") if rig else None,
             "ups_charge": (rig.get("ups") or {}).get("charge") if rig else None,
             "output_on": (rig.get("ups") or {}).get("output_on") if rig else None,
             "hosts": {h.spec.name: h.state for h in self.site.hosts}}
        for side in self.sides:
            b = sts.get(side)
            name = b.get("state", {}).get("name") if b else None
            last = self.last_states[side]
            if name and last is not None and name != last:
                # a transition whose event we missed (e.g. across a reboot)
                self._transition(side, now, last, name, b["state"].get("cause") or "?")
            if name:
                self.last_states[side] = name
        if st:
            s["dev_v"] = st.get("mains", {}).get("v")
            s["dev_charge"] = st.get("ups", {}).get("charge")
            for t in st.get("tiers", []):
                miss = [m.get("host") for m in t.get("missing", [])]
                unk = t.get("unknown", [])
                if miss or unk:
                    self.res.audit.append((now, t.get("name"), miss, unk))
        s["state"] = self.last_state
        if self.sc.pair is not None:
            # each board's state (None while it has no power); the pair's is A's, else B's
            s["states"] = {side: self.last_states[side] if self.powered[side] else None
                           for side in self.sides}
            # each board's plan id as it answered this poll (one_plan judges them)
            s["plans"] = {side: ((sts.get(side) or {}).get("state") or {}).get("plan_id")
                          for side in self.sides}
            if not self.powered["a"]:
                s["state"] = s["states"]["b"]
        if self.watch_alarm:
            for side in self.sides:
                if sts.get(side):
                    self._alarm_sample(now, side, sts[side])
        if rig:
            self._feed_sample(now, s, rig)
            by_side = rig.get("ups_commands") or {
                "a": list((rig.get("ups") or {}).get("commands", []))}
            for side, cmds in by_side.items():
                for c in _new_tail(self._cmd_lists.get(side, []), cmds):
                    self.res.ups_commands.append((now, c))
                    if self.sc.pair is not None:
                        self.res.ups_links.append((now, side, c))
                self._cmd_lists[side] = cmds
            for r in rig.get("resets") or ():
                r = (r[0], r[1])
                if r not in self.res.resets:
                    self.res.resets.append(r)
        self.res.samples.append(s)

    def _read_rig(self):
        """The rig's reading, with each contact UPS played on it (its snapshot in upses)."""
        state = self.rig.read()
        for c in self.contact_upses:
            c.step(self.rig, state)
        return state

    def _feed_sample(self, now, s, rig):
        """Each mains channel's level, each feed's UPS output, and the commands each feed's
        UPS received since the last read (one UPS per feed)."""
        s["channels"] = rig.get("channels") or {}
        upses = rig.get("upses") or {}
        s["outputs"] = {f: (upses.get(f) or {}).get("output_on") for f in self.ups_feeds}
        for f in self.ups_feeds:
            cmds = list((upses.get(f) or {}).get("commands", []))
            for c in _new_tail(self._cmd_lists.get("feed:" + f, []), cmds):
                self.res.feed_ups_commands.append((now, f, c))
            self._cmd_lists["feed:" + f] = cmds

    def _alarm_sample(self, now, side, st):
        """What the board shows of the alarms: a pair's "redundancy lost" and sensor
        disagreement, a phase's or a feed's, in the console status, and what its NUT server
        serves (ups.status, ups.alarm) on the first tier, as a NUT client reads them."""
        p = st.get("pair") or {}
        console_txt = "; ".join(x for x in (
            "redundancy lost: %s" % p.get("cause") if p.get("state") not in (None, "ALIVE") else "",
            (p.get("sensor") or {}).get("disagree") or "",
            (st.get("mains") or {}).get("alarm") or "",
            (st.get("feeds") or {}).get("alarm") or "") if x)
        nut_status = nut_alarm = None
        host, port = (getattr(self.rig, "nuts", None) or {"a": self.rig.nut})[side]
        tier = self.sc.tiers[0].name
        try:
            with nutreal.NutClient(host, port, timeout=0.5) as c:
                nut_status = _nut_value(c.cmd("GET VAR %s ups.status" % tier))
                nut_alarm = _nut_value(c.cmd("GET VAR %s ups.alarm" % tier))
        except (OSError, EOFError):
            pass
        self.res.alarms.append((now, side, console_txt, nut_status, nut_alarm))

    def _triggered(self):
        """The waiting steps whose moment has come: "state:S" once a board entered S during the
        story, "tier:N" once a board's plan has reached tier N (its FSD went out)."""
        due = []
        for step in self.triggers:
            what, _, name = step.trigger.partition(":")
            if what == "state":
                hit = any(to == name and w >= self.res.t0 for w, _f, to, _c in self.res.transitions)
            else:
                hit = any(t.get("name") == name and t.get("phase") in TIER_REACHED
                          for side, st in self.last_status.items() if self.powered[side]
                          for t in st.get("tiers", []))
            if hit:
                due.append(step)
        for step in due:
            self.triggers.remove(step)
            self.res.notes.append("step %d (%s) triggered by %s at t=%.1f s of story" % (
                step.line, step.action, step.trigger, self.res.story(time.time())))
        return due

    # -- stimuli -------------------------------------------------------------------------------
    def _do(self, step):
        a = step.args
        r = self.rig
        act = step.action
        if act == "mains":
            v = a["value"]
            level = {"on": 1.0, "off": 0.0}.get(v, v)
            r.set_mains(level=float(level), at_phase=a.get("phase"), channel=a.get("channel"))
        elif act in ("dip", "swell", "flicker"):
            level = float(a.get("residual", 0.0) if act != "swell" else a["level"])
            self._disturb(act, level, parse_duration(a["duration"]), a.get("phase"),
                          a.get("channel"))
        elif act == "frequency":
            r.set_mains(frequency=float(a["hz"]), at_phase=a.get("phase"))
            if "to_hz" in a:
                now = time.time()
                self._drift = (now, now + parse_duration(a["over"]) / self.scale,
                               float(a["hz"]), float(a["to_hz"]))
            else:
                self._drift = None
        elif act == "harmonic":
            r.set_distortion(harmonics={a["order"]: a["fraction"]})
        elif act == "noise":
            r.set_distortion(noise=a["rms"])
        elif act == "contact":
            r.set_contact(a["line"], a["value"])
        elif act == "chatter":
            half = parse_duration(a.get("period", "20ms")) / 2
            now = time.time()
            for k in range(2 * int(a.get("count", 10))):
                self.pending.append((now + k * half, lambda v=(k + 1) % 2, ln=a["line"]:
                                     r.set_contact(ln, v)))
        elif act == "ups":
            r.set_ups(status=a.get("status"), charge=a.get("charge"), link=a.get("link"))
        elif act == "reboot":
            r.reset_board(a.get("cause", "hard"))
        elif act == "host":
            self.site.host_action(a["host"], a["set"])
        elif act == "drill":
            # as an operator would from the console: a rehearsal, no FSD, no load-off
            self.links[a.get("board", "a")].request("drill_start", timeout=2.0)
        elif act in ("kill", "revive"):
            side = a["board"]
            (r.kill if act == "kill" else r.revive)(side)
            self.powered[side] = act == "revive"
            self.res.pair_actions.append((time.time(), act, side))
        elif act in ("partition", "heal"):
            (r.partition if act == "partition" else r.heal)()
            self.res.pair_actions.append((time.time(), act, None))
        elif act == "sensor":
            v = a["value"]
            r.sensor(a["board"], float({"on": 1.0, "off": 0.0}.get(v, v)))
            self.res.pair_actions.append((time.time(), act, a["board"]))

    def _disturb(self, kind, level, dur, phase, channel=None):
        """Start a disturbance at its onset phase now (on one channel or feed, or all); schedule
        its end on the same point of the cycle `dur` later."""
        f = self.rig.nominal_hz
        phase = 0.0 if phase is None else float(phase)
        before = self.rig.read()["samples"]
        self.rig.set_mains(level=level, at_phase=phase, channel=channel)
        t_on = self.rig.wait_mains_applied(level, timeout=0.2, channel=channel)
        rec = {"kind": kind, "level": level, "duration_s": dur, "phase": phase,
               "wall": time.time(), "samples_before": before, "channel": channel}
        self.res.stimuli.append(rec)
        if t_on is None:
            rec["error"] = "the rig did not apply the change within 200 ms"
            self.rig.set_mains(level=1.0, channel=channel)
            return
        rec["samples_on"] = self.rig.read()["samples"]
        end_phase = (phase + 360.0 * f * dur) % 360.0
        lead = 0.75 / f  # aim 3/4 cycle early: the end lands on the first crossing after that

        def end():
            self.rig.set_mains(level=1.0, at_phase=end_phase, channel=channel)
            t_off = self.rig.wait_mains_applied(1.0, timeout=0.2, channel=channel)
            rec["samples_off"] = self.rig.read()["samples"] if t_off else None
            rec["wall_end"] = time.time()
        # wall time of the start (monotonic t_on) on the time.time() clock
        t_on_wall = time.time() - (time.monotonic() - t_on)
        self.pending.append((t_on_wall + dur - lead, end))

    def _run_pending(self, now):
        due = [p for p in self.pending if p[0] <= now]
        if due:
            self.pending = [p for p in self.pending if p[0] > now]
            for _, fn in sorted(due, key=lambda p: p[0]):
                fn()

    # -- main ------------------------------------------------------------------------------------
    def run(self):
        sc = self.sc
        res = self.res
        user = "hilmon"
        password = "hil-" + secrets.token_hex(8)
        self.site = Site(sc, None, user, password, self.scale)
        res.hosts = self.site.hosts
        res.notes += self.site.notes
        cfg, notes = device_config(sc, self.site, self.scale, user, hash_password(password))
        res.config = cfg
        res.notes += notes
        cfg_path = os.path.join(self.workdir, "device-config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        u = sc.ups
        try:
            self.progress("starting the %s rig" % self.rig.name)
            self.rig.start(cfg_path, u.runtime_s, self.scale)
            if hasattr(self.rig, "set_ups_load"):
                self.rig.set_ups_load(u.load_pct)
            if u.charge_pct != 100:
                self.rig.set_ups(charge=u.charge_pct)
            ports = getattr(self.rig, "ports", None) or {"a": self.rig.port}
            for side in self.sides:
                link = self.links[side] = Link(ports[side])
                link.events = _StampedEvents(link.events, maxlen=link.events.maxlen)
                link.identify()
            self.site.start([self.rig.nuts[s] for s in self.sides] if self.sc.pair is not None
                            else self.rig.nut)
            self._read_rig()   # a contact UPS's lines set before the board settles
            self.site.wait_logged_in(20)
            self._settle()
            self.progress("playing %s (scale %g: %.0f s of story in %.0f s)"
                          % (sc.name, self.scale, sc.duration_s, sc.duration_s / self.scale))
            self._play()
            self._collect_log()
        except (RigError, TimeoutError, OSError, RuntimeError) as e:
            res.error = "%s: %s" % (type(e).__name__, e)
        except Exception as e:  # a LinkError, VirtualError...: still judged and reported
            res.error = "%s: %s" % (type(e).__name__, e)
        finally:
            res.t_end = time.time()
            for link in self.links.values():
                link.close()
            self.site.close()
            try:
                self.rig.stop()
            except Exception as e:
                res.notes.append("stopping the rig: %s" % e)
        res.verdicts = judge(res)
        if self.report_dir:
            res.report = write_report(res, self.report_dir)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return res

    def _settle(self, timeout=15.0):
        """Until the board says ONLINE with good mains (its monitor needs a few cycles); a
        pair's boards, each, with its peer ALIVE."""
        deadline = time.monotonic() + timeout
        st = None
        settled = set()
        while time.monotonic() < deadline:
            for side in self.sides:
                st = self._status(side)
                if st and st["state"]["name"] == "ONLINE" and st["mains"].get("good") and (
                        self.sc.pair is None or (st.get("pair") or {}).get("state") == "ALIVE"):
                    self.last_states[side] = "ONLINE"
                    settled.add(side)
            if len(settled) == len(self.sides):
                return
            time.sleep(0.2)
        raise TimeoutError("the board did not settle ONLINE with good mains: %s"
                           % json.dumps(st)[:400])

    def _play(self):
        sc = self.sc
        res = self.res
        steps = [s for s in sc.timeline if s.trigger is None]
        self.triggers = [s for s in sc.timeline if s.trigger is not None]
        for link in self.links.values():
            link.events.clear()
        res.t0 = t0 = time.time()
        end = t0 + sc.duration_s / self.scale
        next_status = next_rig = 0.0
        rig = None
        while True:
            now = time.time()
            if now >= end and not self.pending:
                break
            while steps and t0 + steps[0].at_s / self.scale <= now:
                self._do(steps.pop(0))
            for step in self._triggered() if self.triggers else ():
                self._do(step)
            self._run_pending(time.time())
            if self._drift:
                ws, we, fa, fb = self._drift
                x = min(1.0, (now - ws) / max(1e-6, we - ws))
                self.rig.set_mains(frequency=fa + (fb - fa) * x)
                if x >= 1.0:
                    self._drift = None
            if now >= next_rig:
                rig = self._read_rig()
                next_rig = now + POLL_RIG_S
            for side in self.sides:
                if self.powered[side]:
                    self._read_available(side)
            powered = rig is None or (rig.get("ups") or {}).get("output_on", True) is not False
            if rig is not None and self.ups_feeds:   # one UPS per feed: each powers its own
                powered = {f: (rig.get("upses", {}).get(f) or {}).get("output_on", True)
                           is not False for f in self.ups_feeds}
            self.site.step(powered)
            if now >= next_status:
                sts = {side: self._status(side) for side in self.sides}
                st = sts["a"]
                self._sample(sts, rig)
                if self.observer is not None and self.res.samples:
                    self.observer(self.res.story(time.time()), self.res.samples[-1], st)
                next_status = time.time() + POLL_STATUS_S
            # sleep until the next thing to do, at most 50 ms
            nxt = [end, next_rig, next_status] + [p[0] for p in self.pending]
            if steps:
                nxt.append(t0 + steps[0].at_s / self.scale)
            time.sleep(max(0.0, min(0.05, min(nxt) - time.time())))
        self._sample({side: self._status(side) for side in self.sides}, self._read_rig())
        for w, cause in self.res.resets:
            if w >= res.t0:
                res.notes.append("the board restarted (%s) at t=%.1f s of story" % (cause, res.story(w)))

    def _collect_log(self):
        """Mains events the console stream may have missed (across a reboot), from the journal."""
        seen = {(e.get("start_ms"), e.get("duration_ms")) for _, e in self.res.mains_events}
        if not self.powered["a"]:
            return  # board A has no power: its journal cannot be read
        frm = 0
        try:
            for _ in range(64):
                r = self.link.request("log_read", from_seq=frm, max=32, timeout=2.0)
                recs = r.get("records", [])
                for rec in recs:
                    if rec["type"] == "mains_event":
                        d = rec["data"]
                        if (d.get("start_ms"), d.get("duration_ms")) not in seen:
                            self.res.mains_events.append((None, d))
                if not recs:
                    break
                frm = recs[-1]["seq"] + 1
        except LinkError as e:
            self.res.notes.append("journal not read: %s" % e)


# sequencer phases of a tier the plan has reached (its FSD went out): docs/redundancy.md
TIER_REACHED = ("fsd", "waiting", "done", "timeout", "off")


def _nut_value(reply):
    """The value of a NUT `VAR ups var "value"` reply, or None (ERR ...)."""
    r = reply[0] if reply else ""
    return r.split('"')[1] if r.startswith("VAR ") and r.count('"') >= 2 else None


def _new_tail(prev, cur):
    """Commands in `cur` (the UPS's last-N list now) that were not in `prev` (the list at the
    previous read): the same command sent twice (one load-off per outage) counts twice. The
    list is a sliding window, so find the shift that lines the two up."""
    for k in range(len(prev) + 1):
        rest = prev[k:]
        if cur[:len(rest)] == rest:
            return cur[len(rest):]
    return cur


def run_scenario(sc, rig=None, scale=None, report_dir=None, workdir=None, progress=None,
                 observer=None):
    return Runner(sc, rig=rig, scale=scale, report_dir=report_dir, workdir=workdir,
                  progress=progress, observer=observer).run()


def matches(pattern, text):
    return re.search(pattern, text) is not None
