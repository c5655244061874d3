"""Scenario files: the model, the TOML loader and its validation (docs/bench.md is the manual).

A scenario is a story told in *story time*: the site (UPS, policy, tiers and hosts), a timeline
of stimuli and the expectations that must hold. `time_scale` story seconds pass per wall second
for the timeline, the UPS simulator (battery, S<n>R<m> minutes) and the device's policy timings;
the mains waveform itself (dips, swells, flickers: their `duration`) is never scaled, so the
sub-cycle physics of mains detection stays real.

The device's settings (`[ups]`, `[policy]`, `[mains]`, a tier's `max_wait_s`/`delay_s`) are
written with the site file's keys and values, in story time; runner.device_config scales them in
one pass and converts them with the site file's own converter (siteconfig.convert). Only the
simulation has keys of its own: the UPS's `load_pct`/`charge_pct`, the hosts' behaviour.

Every problem in a file is reported at once, one line each, as `FILE: path: what is wrong`.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field

from ..errors import PowerSentinelError
from ..paths import use_firmware_lib
from . import devconfig
from .contactups import rule_lines

use_firmware_lib()
from sentinel import schema  # noqa: E402  (the site file's keys: one vocabulary)

_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class ScenarioError(PowerSentinelError):
    """A scenario file that cannot be used; `errors` lists every problem found."""

    def __init__(self, path, errors):
        self.path = path
        self.errors = list(errors)
        super().__init__("%s: %d problem%s:\n  %s" % (path, len(self.errors),
                         "" if len(self.errors) == 1 else "s", "\n  ".join(self.errors)))


def parse_duration(v) -> float:
    """Seconds from 90, 1.5, "200ms", "2s", "20m", "3h", "1h30m". ValueError otherwise."""
    if isinstance(v, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError("durations are >= 0")
        return float(v)
    if not isinstance(v, str):
        raise ValueError("a duration such as \"200ms\", \"2s\", \"20m\" or \"1h30m\"")
    s = v.replace(" ", "")
    pos, total = 0, 0.0
    mult = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for m in _DUR.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * mult[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError("%r is not a duration (examples: \"200ms\", \"2s\", \"20m\", \"1h30m\")" % v)
    return total


# ---- the model -----------------------------------------------------------------------------

@dataclass
class Host:
    name: str
    tier: str
    upsmon: bool = True            # false: a host that never connected (no upsmon running)
    in_plan: bool = True           # false: runs upsmon but is missing from the device's plan
    hang_on_shutdown: bool = False  # SHUTDOWNCMD never completes: stays logged in
    shutdown_s: float = 10.0       # story time from SHUTDOWNCMD to halted (logged out)
    boot_s: float = 60.0           # story time from power/WOL to answering its health check
    wake: str = "wol"              # "wol" (needs a magic packet) or "power" (boots on outlet power)
    health: str = "tcp"            # "tcp" (simulated port) or "nut" (upsmon logged in again)
    feeds: tuple = ()              # the feeds powering it (site file's hosts[].feeds); (): all


@dataclass
class Tier:
    name: str
    max_wait_s: float = 120.0
    delay_s: float = 0.0
    hosts: list = field(default_factory=list)


@dataclass
class Ups:
    """The simulated UPS (the device's view of it is in Scenario.site["ups"])."""
    link: str = "q1"               # q1 | contacts | none
    runtime_s: float = 1200.0      # full-charge runtime at `load_pct` (story seconds)
    load_pct: float = 30.0
    charge_pct: float = 100.0


@dataclass
class Step:
    """One timeline entry: at story time `at_s`, do `action` with `args`; or, with a
    `trigger` ("tier:NAME", "state:STATE"), when the plan gets there (at_s is then 0)."""
    at_s: float
    action: str
    args: dict
    line: int = 0                  # index in the file's [[timeline]] array (for messages)
    trigger: str | None = None


@dataclass
class Pair:
    """A redundant pair of sentinels (docs/redundancy.md): both get the same device config and
    a `pair` section (virtual/pair.py); heartbeat and dead times are the link's real time,
    never scaled. ups: "a" (A alone reads the UPS) or "both"."""
    heartbeat_ms: int = 500
    dead_ms: int = 3000
    ups: str = "a"


@dataclass
class Expect:
    kind: str
    args: dict
    needs: tuple = ()              # features the verdict depends on ("sequencer")
    name: str = ""
    index: int = 0


@dataclass
class Scenario:
    name: str
    path: str
    description: str
    time_scale: float
    ci_time_scale: float
    duration_s: float
    ups: Ups
    site: dict                     # site-file sections "ups", "policy", "mains" (story time)
    tiers: list
    timeline: list
    expects: list
    heap: str = "128wK"
    needs: tuple = ()
    pair: Pair | None = None       # None: one board
    variants: tuple = ()           # the file's [[variant]]s: ((name, ci), ...)
    variant: str | None = None     # the one this is, or None (the base story)

    @property
    def policy(self):
        return self.site["policy"]

    @property
    def mains(self):
        return self.site["mains"]

    def hosts(self):
        return [h for t in self.tiers for h in t.hosts]

    def tier(self, name):
        return next((t for t in self.tiers if t.name == name), None)

    def wall(self, story_s, scale=None):
        return story_s / (scale or self.time_scale)


# ---- validation ----------------------------------------------------------------------------

ACTIONS = {
    # action: (required args, optional args)
    "mains": ({"value"}, {"phase", "channel"}),
    "dip": ({"residual", "duration"}, {"phase", "channel"}),
    "swell": ({"level", "duration"}, {"phase", "channel"}),
    "flicker": ({"duration"}, {"phase", "residual", "channel"}),
    "frequency": ({"hz"}, {"to_hz", "over", "phase"}),
    "harmonic": ({"order", "fraction"}, set()),
    "noise": ({"rms"}, set()),
    "contact": ({"line", "value"}, set()),
    "chatter": ({"line"}, {"period", "count"}),
    "ups": (set(), {"status", "charge", "link"}),
    "reboot": (set(), {"cause"}),
    "host": ({"host", "set"}, set()),
    "drill": (set(), {"board"}),
    # a pair's (docs/bench.md): a board's power cut and return, the peer link cut and healed,
    # one board's own mains sensor set apart from the real mains
    "kill": ({"board"}, set()),
    "revive": ({"board"}, set()),
    "partition": (set(), set()),
    "heal": (set(), set()),
    "sensor": ({"board", "value"}, set()),
}
PAIR_ACTIONS = ("kill", "revive", "partition", "heal", "sensor")

EXPECTS = {
    "state": ({"state"}, {"within", "cause"}),
    "never": ({"state"}, {"within"}),
    "final_state": ({"state"}, set()),
    "no_shutdown": (set(), set()),
    "shutdown_order": ({"order"}, {"within", "hosts"}),
    "tier_wait": ({"tier", "waits_for"}, {"slack"}),
    "mains_events": ({"type"}, {"count", "match_truth"}),
    "ups_command": ({"pattern"}, {"within", "feed"}),
    "no_ups_command": ({"pattern"}, {"feed"}),
    "restore_order": ({"order"}, {"hosts"}),
    "all_healthy": (set(), {"within"}),
    "no_restore_before": ({"condition"}, set()),
    "restore_when_powered": (set(), set()),
    "audit": ({"host"}, {"within", "flagged"}),
    "host_survived": ({"host"}, set()),
    "stays_down": ({"tier"}, {"within"}),
    "board_reboots": ({"count"}, set()),
    "load_offs": ({"max"}, {"pattern", "feed"}),
    "pair_alarm": ({"board"}, {"text", "within"}),
    "one_plan": (set(), {"slack"}),
    "every_host_down": (set(), set()),
    "no_shutdown_on_mains": (set(), set()),
    "load_off_after_down": (set(), {"pattern"}),
    # two feeds, three phases (docs/feeds.md, docs/mains-sensing.md)
    "stays_up": ({"hosts"}, set()),
    "alarm": (set(), {"text", "within", "cleared"}),
    "ups_restored": (set(), {"feed", "within"}),
}

# firmware features an expectation may depend on; hil_tests marks those not yet wired as xfail
FEATURES = ("sequencer", "coverage", "lb_tier_order", "pair_load_off_handover",
            "pair_partition_load_off", "pair_rejoin")
STATES = ("ONLINE", "ON_BATTERY", "SHUTTING_DOWN", "LOAD_OFF", "WAIT_MAINS", "RESTORING")
UPS_SIM_KEYS = {"load_pct", "charge_pct"}  # the simulated UPS's; every other [ups] key is the site file's
HOST_KEYS = {"name", "upsmon", "in_plan", "hang_on_shutdown", "shutdown", "boot", "wake", "health",
             "feeds"}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class _V:
    def __init__(self):
        self.errors = []

    def err(self, where, msg):
        self.errors.append("%s: %s" % (where, msg))

    def keys(self, where, d, allowed, required=()):
        if not isinstance(d, dict):
            self.err(where, "must be a table")
            return False
        for k in d:
            if k not in allowed and k not in required:
                self.err("%s.%s" % (where, k), "unknown key; allowed: %s"
                         % ", ".join(sorted(set(allowed) | set(required))))
        for k in required:
            if k not in d:
                self.err(where, "missing required key %r" % k)
        return True

    def dur(self, where, v, default=None):
        if v is None:
            return default
        try:
            return parse_duration(v)
        except ValueError as e:
            self.err(where, str(e))
            return default

    def num(self, where, v, lo=None, hi=None, default=None, integer=False):
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            self.err(where, "must be %s, got %r" % ("an integer" if integer else "a number", v))
            return default
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.err(where, "%r is out of range %s..%s" % (v, lo, hi))
            return default
        return v

    def choice(self, where, v, choices, default=None):
        if v is None:
            return default
        if v not in choices:
            self.err(where, "%r is not one of %s" % (v, ", ".join(map(str, choices))))
            return default
        return v

    def boolean(self, where, v, default):
        if v is None:
            return default
        if not isinstance(v, bool):
            self.err(where, "must be true or false, got %r" % (v,))
            return default
        return v

    def window(self, where, v):
        if v is None:
            return None
        if not (isinstance(v, list) and len(v) == 2):
            self.err(where, "must be [from, to], e.g. [\"0s\", \"2m\"]")
            return None
        a, b = self.dur(where + "[0]", v[0], 0.0), self.dur(where + "[1]", v[1], 0.0)
        if a > b:
            self.err(where, "from (%s) is after to (%s)" % (v[0], v[1]))
        return (a, b)


def _site_section(v, raw, section, own=()):
    """The scenario's [section] as site-file keys (its values are checked by the converter when
    the device config is made); keys the site file does not have are reported here."""
    d = raw.get(section, {})
    if not isinstance(d, dict):
        v.err(section, "must be a table of the site file's %s keys" % section)
        return {}
    out = {}
    for k, x in d.items():
        if k in own:
            continue
        if schema.field("%s.%s" % (section, k)) is None:
            allowed = [f["k"] for f in schema.field(section)["f"]] + sorted(own)
            v.err("%s.%s" % (section, k), "unknown key; allowed keys (the site file's): %s"
                  % ", ".join(allowed))
        else:
            out[k] = x
    return out


def load_scenario(path, variant=None) -> Scenario:
    """The scenario in `path`; with `variant`, the base story plus that [[variant]]'s steps
    and expectations."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ScenarioError(path, ["cannot read: %s" % e.strerror])
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(path, ["not valid TOML: %s" % e])
    return from_dict(raw, path, variant)


def _variants(v, raw):
    """[[variant]]: one story told several ways (a board killed at each instant) without a
    file per way: each adds `timeline` steps and `expect`ations to the base, under the name
    BASE-NAME; ci = false ones run only in the nightly selection."""
    out = []
    vs = raw.get("variant", [])
    if not isinstance(vs, list):
        v.err("variant", "must be an array of tables [[variant]]")
        return out
    for i, x in enumerate(vs):
        w = "variant[%d]" % i
        if not v.keys(w, x, {"name", "description", "ci", "timeline", "expect", "needs"},
                      required=("name",)):
            continue
        n = x.get("name")
        if not isinstance(n, str) or not _NAME.match(n):
            v.err(w + ".name", "letters, digits, - and _ only, got %r" % (n,))
        elif any(n == o[0] for o in out):
            v.err(w + ".name", "variant %r is defined twice" % n)
        for k in ("timeline", "expect"):
            if not isinstance(x.get(k, []), list):
                v.err("%s.%s" % (w, k), "must be an array of tables [[variant.%s]]" % k)
        named = {e.get("name") for e in raw.get("expect", []) if isinstance(e, dict)}
        needs = x.get("needs", {})
        if not isinstance(needs, dict):
            v.err(w + ".needs", "a table {\"expectation name\" = \"feature\"}")
            needs = {}
        for en, feats in needs.items():
            if en not in named:
                v.err("%s.needs.%s" % (w, en), "no base expectation named %r" % en)
            for f in (feats,) if isinstance(feats, str) else feats:
                if f not in FEATURES:
                    v.err("%s.needs.%s" % (w, en), "unknown feature %r (known: %s)"
                          % (f, ", ".join(FEATURES)))
        out.append((n, v.boolean(w + ".ci", x.get("ci"), False)))
    return out


def _with_variant(raw, name, path):
    """raw with variant `name` folded in (its steps and expectations after the base's)."""
    x = next((x for x in raw.get("variant", []) if isinstance(x, dict) and x.get("name") == name),
             None)
    if x is None:
        raise ScenarioError(path, ["no variant %r (variants: %s)" % (name, ", ".join(
            str(y.get("name")) for y in raw.get("variant", []) if isinstance(y, dict)) or "none")])
    out = dict(raw)
    out["scenario"] = dict(raw.get("scenario", {}))
    base = out["scenario"].get("name", "")
    out["scenario"]["name"] = "%s-%s" % (base, name)
    if x.get("description"):
        out["scenario"]["description"] = "%s: %s" % (out["scenario"].get("description", base),
                                                     x["description"])
    out["timeline"] = list(raw.get("timeline", [])) + list(x.get("timeline", []))
    # `needs`: in this telling, a base expectation depends on a feature not yet built
    needs = x.get("needs") if isinstance(x.get("needs"), dict) else {}
    base = []
    for e in raw.get("expect", []):
        if isinstance(e, dict) and e.get("name") in needs:
            f = needs[e["name"]]
            had = e.get("needs", ())
            e = dict(e, needs=((had,) if isinstance(had, str) else tuple(had))
                     + ((f,) if isinstance(f, str) else tuple(f)))
        base.append(e)
    out["expect"] = base + list(x.get("expect", []))
    return out


def from_dict(raw, path="<scenario>", variant=None) -> Scenario:
    if variant is not None:
        raw = _with_variant(raw, variant, path)
    v = _V()
    v.keys("(top)", raw, {"scenario", "board", "pair", "ups", "policy", "mains", "tiers",
                          "timeline", "expect", "variant"}, required=("scenario",))
    variants = _variants(v, raw)
    sc = raw.get("scenario", {})
    v.keys("scenario", sc, {"name", "description", "time_scale", "ci_time_scale", "duration",
                            "needs"}, required=("name", "duration"))
    name = sc.get("name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        v.err("scenario.name", "letters, digits, - and _ only (1..32), got %r" % (name,))
    scale = v.num("scenario.time_scale", sc.get("time_scale"), 1, 3600, 1.0)
    ci_scale = v.num("scenario.ci_time_scale", sc.get("ci_time_scale"), 1, 3600, scale)
    duration = v.dur("scenario.duration", sc.get("duration"), 0.0)
    if duration <= 0 and "duration" in sc:
        v.err("scenario.duration", "must be > 0")
    needs = tuple(sc.get("needs", ()))

    board = raw.get("board", {})
    v.keys("board", board, {"heap"})
    heap = board.get("heap", "128wK")
    if not (isinstance(heap, str) and re.match(r"^\d+[wk]?K?$", heap)):
        v.err("board.heap", "a MicroPython heap size such as \"128wK\", got %r" % (heap,))

    pair = _pair_section(v, raw.get("pair"))
    site = {sec: _site_section(v, raw, sec, UPS_SIM_KEYS if sec == "ups" else ())
            for sec in ("ups", "policy", "mains")}
    u = raw.get("ups", {}) if isinstance(raw.get("ups", {}), dict) else {}
    site["ups"].setdefault("link", "q1")  # the bench always has a UPS to simulate
    if site["ups"]["link"] == "contacts":
        site["ups"].setdefault("contacts", "OB=1;LB=2;")
    for i, e in enumerate(site["ups"].get("feeds") or ()):
        if isinstance(e, dict) and e.get("link") == "contacts":
            try:   # the bench plays this UPS: its rules must be ones it can play
                rule_lines(str(e.get("contacts") or ""))
            except ValueError as err:
                v.err("ups.feeds[%d].contacts" % i, str(err))
    runtime = site["ups"].get("battery_runtime_s", schema.field("ups.battery_runtime_s")["d"])
    ups = Ups(link=site["ups"]["link"],
              runtime_s=v.num("ups.battery_runtime_s", runtime, 1, None, 1200.0),
              load_pct=v.num("ups.load_pct", u.get("load_pct"), 1, 100, 30.0),
              charge_pct=v.num("ups.charge_pct", u.get("charge_pct"), 0, 100, 100.0))

    tiers = []
    seen_hosts = set()
    traw = raw.get("tiers", [])
    if not isinstance(traw, list):
        v.err("tiers", "must be an array of tables [[tiers]]")
        traw = []
    for ti, t in enumerate(traw):
        w = "tiers[%d]" % ti
        if not v.keys(w, t, {"name", "max_wait_s", "delay_s", "hosts"}, required=("name",)):
            continue
        tn = t.get("name", "")
        if not isinstance(tn, str) or not _NAME.match(tn):
            v.err(w + ".name", "letters, digits, - and _ only, got %r" % (tn,))
        if any(x.name == tn for x in tiers):
            v.err(w + ".name", "tier %r is defined twice" % tn)
        tier = Tier(tn, v.num(w + ".max_wait_s", t.get("max_wait_s"), 0, None,
                              schema.field("tiers.max_wait_s")["d"]),
                    v.num(w + ".delay_s", t.get("delay_s"), 0, None,
                          schema.field("tiers.delay_s")["d"]))
        for hi, h in enumerate(t.get("hosts", [])):
            hw = "%s.hosts[%d]" % (w, hi)
            if not v.keys(hw, h, HOST_KEYS, required=("name",)):
                continue
            hn = h.get("name", "")
            if not isinstance(hn, str) or not _NAME.match(hn):
                v.err(hw + ".name", "letters, digits, - and _ only, got %r" % (hn,))
            if hn in seen_hosts:
                v.err(hw + ".name", "host %r appears twice (host names are unique over all tiers)" % hn)
            seen_hosts.add(hn)
            tier.hosts.append(Host(
                name=hn, tier=tn, upsmon=v.boolean(hw + ".upsmon", h.get("upsmon"), True),
                in_plan=v.boolean(hw + ".in_plan", h.get("in_plan"), True),
                hang_on_shutdown=v.boolean(hw + ".hang_on_shutdown", h.get("hang_on_shutdown"), False),
                shutdown_s=v.dur(hw + ".shutdown", h.get("shutdown"), 10.0),
                boot_s=v.dur(hw + ".boot", h.get("boot"), 60.0),
                wake=v.choice(hw + ".wake", h.get("wake"), ("wol", "power"), "wol"),
                health=v.choice(hw + ".health", h.get("health"), ("tcp", "nut"), "tcp"),
                feeds=_host_feeds(v, hw + ".feeds", h.get("feeds"))))
        tiers.append(tier)
    if len(tiers) > 8:
        v.err("tiers", "at most 8 tiers (the device's limit), got %d" % len(tiers))
    tier_names = [t.name for t in tiers]
    host_names = {h.name for t in tiers for h in t.hosts}
    chans = channel_names(site)

    timeline = []
    for i, s in enumerate(raw.get("timeline", [])):
        w = "timeline[%d]" % i
        if not isinstance(s, dict):
            v.err(w, "must be a table")
            continue
        act = s.get("do")
        if act not in ACTIONS:
            v.err(w + ".do", "%r is not a stimulus; one of: %s" % (act, ", ".join(sorted(ACTIONS))))
            continue
        req, opt = ACTIONS[act]
        args = {k: x for k, x in s.items() if k not in ("at", "do")}
        v.keys(w, args, req | opt, required=tuple(req))
        if "at" not in s:
            v.err(w, "missing required key 'at' (story time, e.g. \"10s\")")
        trigger = _trigger(v, w + ".at", s.get("at"), tier_names)
        at = 0.0 if trigger else v.dur(w + ".at", s.get("at"), 0.0)
        if at > duration:
            v.err(w + ".at", "%s is after the end of the scenario (%s)" % (s.get("at"), sc.get("duration")))
        _check_step(v, w, act, args, host_names)
        _check_channel(v, w, args, chans)
        if act in PAIR_ACTIONS and pair is None:
            v.err(w + ".do", "%r acts on a pair: add a [pair] section" % act)
        if act == "drill" and args.get("board") == "b" and pair is None:
            v.err(w + ".board", "board \"b\" is a pair's second board: add a [pair] section")
        timeline.append(Step(at, act, args, i, trigger))
    timeline.sort(key=lambda s: (s.at_s, s.line))

    expects = []
    for i, e in enumerate(raw.get("expect", [])):
        w = "expect[%d]" % i
        if not isinstance(e, dict):
            v.err(w, "must be a table")
            continue
        kind = e.get("kind")
        if kind not in EXPECTS:
            v.err(w + ".kind", "%r is not an expectation; one of: %s" % (kind, ", ".join(sorted(EXPECTS))))
            continue
        req, opt = EXPECTS[kind]
        args = {k: x for k, x in e.items() if k not in ("kind", "needs", "name")}
        v.keys(w, args, req | opt, required=tuple(req))
        _check_expect(v, w, kind, args, tier_names, host_names, duration)
        _check_feed_expect(v, w, args, host_names, site)
        if kind in ("pair_alarm", "one_plan") and pair is None:
            v.err(w + ".kind", "%s judges a pair: add a [pair] section" % kind)
        en = e.get("needs", ())
        en = (en,) if isinstance(en, str) else tuple(en)
        for n in en:
            if n not in FEATURES:
                v.err(w + ".needs", "unknown feature %r (known: %s)" % (n, ", ".join(FEATURES)))
        expects.append(Expect(kind, args, en, e.get("name") or _default_name(kind, args), i))
    if not expects:
        v.err("expect", "a scenario needs at least one [[expect]]: what would it test?")

    scenario = Scenario(name=name, path=os.path.abspath(path) if path != "<scenario>" else path,
                    description=sc.get("description", ""), time_scale=float(scale),
                    ci_time_scale=float(ci_scale), duration_s=duration, ups=ups, site=site,
                    tiers=tiers, timeline=timeline, expects=expects, heap=heap,
                    needs=needs, pair=pair, variants=tuple(variants), variant=variant)
    # the device settings, checked by the site file's converter; a key already reported above
    # is not reported twice
    said = {e.split(": ", 1)[0] for e in v.errors}
    errors = v.errors + [p for p in devconfig.check(scenario)
                         if not any(p.split(": ", 1)[0].startswith(w) for w in said)]
    if errors:
        raise ScenarioError(path, errors)
    return scenario


def _pair_section(v, p):
    """[pair] -> Pair, or None without it or with enabled = false."""
    if p is None:
        return None
    if not v.keys("pair", p, {"enabled", "heartbeat_ms", "dead_ms", "ups"}):
        return None
    if not v.boolean("pair.enabled", p.get("enabled"), True):
        return None
    hb = v.num("pair.heartbeat_ms", p.get("heartbeat_ms"), 100, 10000, 500, integer=True)
    dead = v.num("pair.dead_ms", p.get("dead_ms"), 300, 60000, 3000, integer=True)
    if dead < 2 * hb:
        v.err("pair.dead_ms", "at least two heartbeats (%d ms), got %d" % (2 * hb, dead))
    return Pair(hb, dead, v.choice("pair.ups", p.get("ups"), ("a", "both"), "a"))


def _trigger(v, where, at, tiers):
    """"tier:NAME" (the plan reaches the tier: its FSD) or "state:STATE" (a board enters the
    state) -> the trigger string; a story time -> None."""
    if not isinstance(at, str) or ":" not in at:
        return None
    what, _, name = at.partition(":")
    if what == "tier" and name in tiers:
        return at
    if what == "state" and name in STATES:
        return at
    v.err(where, "%r: a story time, \"tier:NAME\" (one of %s) or \"state:STATE\" (one of %s)"
          % (at, ", ".join(tiers), ", ".join(STATES)))
    return None


def _default_name(kind, a):
    name = _kind_name(kind, a)
    return "%s on UPS %s" % (name, a["feed"]) if "feed" in a else name


def _kind_name(kind, a):
    if kind in ("state", "never", "final_state"):
        return "%s %s" % (kind, a.get("state"))
    if kind in ("shutdown_order", "restore_order"):
        return "%s %s" % (kind, "->".join(a.get("order", [])))
    if kind == "mains_events":
        return "mains_events %s" % a.get("type")
    if kind in ("audit", "host_survived"):
        return "%s %s" % (kind, a.get("host"))
    if kind == "tier_wait":
        return "tier_wait %s after %s" % (a.get("tier"), a.get("waits_for"))
    if kind == "stays_down":
        return "stays_down %s" % a.get("tier")
    if kind == "board_reboots":
        return "board_reboots %s" % a.get("count")
    if kind == "load_offs":
        return "load_offs <= %s" % a.get("max")
    if kind == "pair_alarm":
        return "pair_alarm on %s" % a.get("board")
    if kind == "stays_up":
        return "stays_up %s" % ",".join(map(str, a.get("hosts") or []))
    if kind == "alarm":
        return "alarm %s" % a.get("text", "raised")
    return kind


def _check_step(v, w, act, a, hosts):
    if act == "mains":
        val = a.get("value")
        if not (val in ("on", "off") or (isinstance(val, (int, float)) and not isinstance(val, bool)
                                          and 0 <= val <= 2)):
            v.err(w + ".value", "\"on\", \"off\" or a fraction of nominal 0..2, got %r" % (val,))
    if "phase" in a:
        v.num(w + ".phase", a["phase"], 0, 360)
    if act in ("dip", "swell", "flicker"):
        d = v.dur(w + ".duration", a.get("duration"), 0.0)
        if not 0.005 <= d <= 10.0:
            v.err(w + ".duration", "mains disturbances last 5 ms..10 s of REAL time (never scaled), got %s"
                  % a.get("duration"))
    if act == "dip":
        v.num(w + ".residual", a.get("residual"), 0, 0.99)
    if act == "flicker":
        v.num(w + ".residual", a.get("residual"), 0, 0.99)
    if act == "swell":
        v.num(w + ".level", a.get("level"), 1.01, 2.0)
    if act == "frequency":
        v.num(w + ".hz", a.get("hz"), 20, 100)
        if "to_hz" in a:
            v.num(w + ".to_hz", a["to_hz"], 20, 100)
            if "over" not in a:
                v.err(w, "a drift (to_hz) needs 'over' (story time)")
        if "over" in a:
            v.dur(w + ".over", a["over"])
    if act == "harmonic":
        v.num(w + ".order", a.get("order"), 2, 50, integer=True)
        v.num(w + ".fraction", a.get("fraction"), 0, 0.5)
    if act == "noise":
        v.num(w + ".rms", a.get("rms"), 0, 0.5)
    if act in ("contact", "chatter"):
        v.num(w + ".line", a.get("line"), 0, 7, integer=True)
    if act == "contact":
        v.choice(w + ".value", a.get("value"), (0, 1))
    if act == "chatter":
        p = v.dur(w + ".period", a.get("period", "20ms"), 0.02)
        if not 0.002 <= p <= 5:
            v.err(w + ".period", "2 ms..5 s of real time")
        v.num(w + ".count", a.get("count", 10), 1, 500, integer=True)
    if act == "ups":
        if not a:
            v.err(w, "say what changes: status, charge and/or link")
        if "status" in a:
            toks = str(a["status"]).split()
            if a["status"] != "auto" and not (toks and all(t in ("OL", "OB", "LB") for t in toks)):
                v.err(w + ".status", "\"OL\", \"OB\", \"OB LB\" or \"auto\", got %r" % a["status"])
        if "charge" in a:
            v.num(w + ".charge", a["charge"], 0, 100)
        if "link" in a:
            v.choice(w + ".link", a["link"], ("ok", "lost", "garbage"))
    if act == "reboot":
        v.choice(w + ".cause", a.get("cause", "hard"), ("hard", "power_on", "wdt"))
    if act in ("kill", "revive", "sensor") or (act == "drill" and "board" in a):
        v.choice(w + ".board", a.get("board"), ("a", "b"))
    if act == "sensor":
        val = a.get("value")
        if not (val in ("on", "off") or (isinstance(val, (int, float)) and not isinstance(val, bool)
                                          and 0 <= val <= 2)):
            v.err(w + ".value", "\"on\", \"off\" or a fraction of nominal 0..2, got %r" % (val,))
    if act == "host":
        if a.get("host") not in hosts:
            v.err(w + ".host", "no host %r in the site" % (a.get("host"),))
        v.choice(w + ".set", a.get("set"), ("hang_on_shutdown", "power_off", "crash"))


def _check_expect(v, w, kind, a, tiers, hosts, duration):
    if "state" in a:
        v.choice(w + ".state", a["state"], STATES)
    if "within" in a:
        win = v.window(w + ".within", a["within"])
        if win and win[0] > duration:
            v.err(w + ".within", "starts after the end of the scenario")
    for k in ("order",):
        if k in a:
            if not isinstance(a[k], list) or not a[k]:
                v.err(w + "." + k, "a list of tier names")
            else:
                for t in a[k]:
                    if t not in tiers:
                        v.err(w + "." + k, "no tier %r (tiers: %s)" % (t, ", ".join(tiers)))
    for k in ("tier", "waits_for"):
        if k in a and a[k] not in tiers:
            v.err(w + "." + k, "no tier %r (tiers: %s)" % (a[k], ", ".join(tiers)))
    if "slack" in a:
        v.dur(w + ".slack", a["slack"])
    if "host" in a and a["host"] not in hosts:
        v.err(w + ".host", "no host %r in the site" % (a["host"],))
    if kind == "mains_events":
        v.choice(w + ".type", a.get("type"), ("dip", "swell", "interruption", "any"))
        if "count" in a:
            v.num(w + ".count", a["count"], 0, 1000, integer=True)
        if "match_truth" in a:
            v.boolean(w + ".match_truth", a["match_truth"], True)
    if "pattern" in a:
        try:
            re.compile(a["pattern"])
        except (re.error, TypeError) as e:
            v.err(w + ".pattern", "not a regular expression: %s" % e)
    if kind == "audit" and "flagged" in a:
        v.boolean(w + ".flagged", a["flagged"], True)
    if kind == "board_reboots":
        v.num(w + ".count", a.get("count"), 0, 100, integer=True)
    if kind == "load_offs":
        v.num(w + ".max", a.get("max"), 0, 100, integer=True)
    if kind == "pair_alarm":
        v.choice(w + ".board", a.get("board"), ("a", "b"))  # its `text`: _check_feed_expect
    if kind == "no_restore_before":
        c = a.get("condition")
        if not (isinstance(c, dict) and set(c) <= {"frequency_within", "stable_for"}):
            v.err(w + ".condition", "a table {frequency_within = 0.5, stable_for = \"1m\"} (Hz of "
                  "nominal, story time)")


# ---- several mains channels: phases, feeds (docs/feeds.md) ------------------------------------

PHASES = ("L1", "L2", "L3")


def channel_names(site):
    """(channel names, feed names) of the site's [[mains.channels]]; a channel senses its
    `feed`, else the feed of its name unless it is a phase L1..L3 (as the device reads them)."""
    chs = site.get("mains", {}).get("channels")
    names, feeds = [], []
    for ch in chs if isinstance(chs, list) else ():
        if isinstance(ch, dict) and isinstance(ch.get("name"), str):
            names.append(ch["name"])
            f = ch.get("feed") or ("" if ch["name"] in PHASES else ch["name"])
            if f and f not in feeds:
                feeds.append(f)
    return names, feeds


def ups_feeds(site):
    """The feeds with a UPS of their own ([ups] feed + [[ups.feeds]]), in order; [] for the
    single UPS of a site without them."""
    u = site.get("ups", {})
    first = u.get("feed")
    more = [x.get("feed") for x in u.get("feeds", ()) if isinstance(x, dict)] \
        if isinstance(u.get("feeds"), list) else []
    return [f for f in [first] + more if isinstance(f, str)] if first else []


def _host_feeds(v, where, x):
    """A host's `feeds`: a list of feed names (their existence is the site converter's check,
    with the site file's message)."""
    if x is None:
        return ()
    if not (isinstance(x, list) and all(isinstance(f, str) for f in x)):
        v.err(where, "a list of feed names, e.g. [\"A\", \"B\"], got %r" % (x,))
        return ()
    return tuple(x)


def _check_channel(v, w, a, chans):
    """A stimulus's `channel`: one mains channel (`mains.channels[].name`) or every channel of
    a feed."""
    if "channel" not in a:
        return
    names, feeds = chans
    c = a["channel"]
    if not names:
        v.err(w + ".channel", "the site has one mains input: add [[mains.channels]] to name "
              "channels (docs/mains-sensing.md)")
    elif c not in names and c not in feeds:
        v.err(w + ".channel", "no mains channel or feed %r (channels: %s%s)" % (
            c, ", ".join(names), "; feeds: %s" % ", ".join(feeds) if feeds else ""))


def _check_feed_expect(v, w, a, hosts, site):
    if "hosts" in a:
        hs = a["hosts"]
        if not (isinstance(hs, list) and hs and all(isinstance(h, str) for h in hs)):
            v.err(w + ".hosts", "a list of host names")
        else:
            for h in hs:
                if h not in hosts:
                    v.err(w + ".hosts", "no host %r in the site" % h)
    if "feed" in a:
        have = ups_feeds(site)
        if not have:
            v.err(w + ".feed", "the site has one UPS: give each feed its UPS ([ups] feed, "
                  "[[ups.feeds]]) to judge one feed's")
        elif a["feed"] not in have:
            v.err(w + ".feed", "no UPS on feed %r (UPSes on: %s)" % (a["feed"], ", ".join(have)))
    if "cleared" in a:
        v.window(w + ".cleared", a["cleared"])
    if "text" in a:
        try:
            re.compile(a["text"])
        except (re.error, TypeError) as e:
            v.err(w + ".text", "not a regular expression: %s" % e)
