"""A feed's UPS read over dry contacts on the bench (`[[ups.feeds]]` with link = "contacts"):
the virtual board has no simulator for it (its supervisor simulates Q1 UPSes only), so the
runner plays it here. A UpsSim holds its battery and output, its input the feed's mains
channels as the rig reads them; its OB and LB statuses drive the contact lines its rules read,
and the board's shutdown_output pulse on its output line cuts its load after the site's
ups.shutdown_delay_min, restored when its feed returns (what a UPS's remote-shutdown input
does). The pulse is listed as the command "pulse", so the judge's ups_command, load_offs and
ups_restored read it as they read a Q1 UPS's.
"""
from __future__ import annotations

import re
import time

from ..virtual.upssim import UpsSim

# the rules the bench can play: each status one line, maybe inverted (the docs' examples)
_RULE = re.compile(r"^\s*(OB|OL|LB)\s*=\s*(\^?)\s*(\d+)\s*$")


def rule_lines(rules):
    """{status: (line, inverted)} of a contact UPS's rules ("OB=3;LB=^4;"); ValueError names a
    rule the bench cannot play (an expression of several lines)."""
    out = {}
    for r in rules.split(";"):
        if not r.strip():
            continue
        m = _RULE.match(r)
        if m is None:
            raise ValueError("the bench plays contact rules of one line per OB, OL or LB "
                             "(e.g. \"OB=3;LB=4;\"), got %r" % r.strip())
        out[m.group(1)] = (int(m.group(3)), m.group(2) == "^")
    return out


def contact_upses(site, scale):
    """A BenchContactUps for each [[ups.feeds]] entry read over contacts."""
    u = site.get("ups") or {}
    chans = (site.get("mains") or {}).get("channels") or []
    out = []
    for e in u.get("feeds") or ():
        if isinstance(e, dict) and e.get("link") == "contacts":
            names = [c["name"] for c in chans if (c.get("feed") or c["name"]) == e["feed"]]
            out.append(BenchContactUps(
                e["feed"], rule_lines(e.get("contacts") or ""), e.get("shutdown_output"),
                names, u.get("battery_runtime_s", 1200.0), u.get("shutdown_delay_min", 1),
                scale))
    return out


class BenchContactUps:
    def __init__(self, feed, lines, output, channels, runtime_s, delay_min, scale):
        self.feed = feed
        self.lines = lines            # {status: (line, inverted)}
        self.output = output          # the board's output line cutting its load, or None
        self.channels = channels      # the mains channels of its feed
        self.delay_min = delay_min
        self.sim = UpsSim(runtime_full_s=runtime_s, time_scale=scale)
        self.driven = {}              # line -> the level last set
        self.out_level = 0

    def step(self, rig, state):
        """One rig reading (`state`, VirtualRig.read()): the UPS's input from its feed's
        channels, a rising edge of its output line taken as the shutdown pulse, its contact
        lines set to its statuses; its snapshot added to state["upses"]."""
        levels = [state.get("channels", {}).get(c, 1.0) for c in self.channels] or [1.0]
        sim = self.sim
        sim.mains_ok = max(levels) >= 0.8
        sim.tick()
        if self.output is not None:
            outs = state.get("outputs") or ()
            lvl = outs[self.output] if self.output < len(outs) else 0
            if lvl and not self.out_level:
                # S<n> without R: back on when its feed returns
                sim.handle(b"S%02d" % max(1, min(10, int(self.delay_min))), record=False)
                sim.commands.append((time.time(), "pulse"))
                sim.received += 1
                sim.load_offs += 1
                sim.load_off_at = time.time()
            self.out_level = lvl
        toks = sim.status_tokens()
        for status, (line, inv) in self.lines.items():
            level = int((status in toks) != inv)
            if self.driven.get(line) != level:
                rig.set_contact(line, level)
                self.driven[line] = level
        state.setdefault("upses", {})[self.feed] = sim.snapshot()
