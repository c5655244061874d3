"""The sequencer's vocabulary and its saved progress.

Owns the names of the plan modes, tier phases, host states and load-off states (one constant
each; a mode never shares a value with a phase), the progress records of a tier and of a host
(`Tier`, `Host`), the persisted form of a sequencer's progress (`dump()`, `load()`), and how
reports give times (`seconds()`).

Saved format (JSON-ready; every time is an age in ms at the moment of saving, so the clock
restart of a reboot does not matter; None where not reached):
  {"v": 2, "plan_id", "mode", "drill", "complete", "pos", "age_ms", "load_off", "lo_tries",
   "first" (the tier a client FSD forced first, or None; absent from earlier firmware's),
   "m_down": {tier: ms}, "m_boot": {host: ms},
   "tiers": [{"name", "phase", "t_start", "t_act", "t_end",
              "hosts": [{"state", "t0", "t_try", "t1", "tries", "was_on"}]}]}
Version 1 (earlier firmware) held each tier and host as a positional list, in the same order
as the fields above, and the modes "down", "off", "up"; load() still reads it, so a board
upgraded in the middle of a plan resumes it.
"""
from sentinel.coverage import norm_addr

# Plan modes (Sequencer.mode; None: no plan).
MODE_SHUTDOWN = "shutdown"
MODE_LOAD_OFF = "load_off"
MODE_POWER_ON = "power_on"
MODES = (None, MODE_SHUTDOWN, MODE_LOAD_OFF, MODE_POWER_ON)

# Tier phases (Sequencer.phase(tier), served as sentinel.tier.phase).
IDLE = "idle"         # nothing done, or waiting for its delay
FSD = "fsd"           # FSD raised this step
WAITING = "waiting"   # FSD raised, clients still logged in
DONE = "done"         # every client logged out
TIMEOUT = "timeout"   # max_wait_s ran out, or a host did not come up
OFF = "off"           # the UPS load is off
WAKING = "waking"     # FSD cleared, hosts woken, health pending
UP = "up"             # every host passed its health check
# What a drill reports to the state machine per tier (no tier changes phase in a drill).
CHECKED = "checked"
REACHABLE = "reachable"

# Host states (Host.state). Shutdown:
H_IN = "in"           # logged in when FSD was raised (or since)
H_OUT = "out"         # logged out at Host.t1
H_ABSENT = "absent"   # not logged in at FSD
H_LOST = "lost"       # was in when the board rebooted: may reconnect
H_GONE = "gone"       # lost and never came back
H_OFF = "off"         # logged out (or absent), then its tcp check failed at Host.t2 (confirm_off)
# Power-on:
H_WAKING = "waking"
H_UP = "up"           # healthy at Host.t1
H_TIMEOUT = "timeout"
H_FEED = "feed"       # one of its feeds not back yet: left to the feed policy, not woken

# The UPS load-off command of a plan (Sequencer.load_off; None: not yet).
LO_PENDING = "pending"  # an async command is in flight
LO_SENT = "sent"
LO_FAILED = "failed"
LO_NONE = "none"        # no UPS command configured
LO_PEER = "peer"        # pair mode: the peer sent this outage's load-off, or the UPS already
                        # had one (TURN_UPS): none sent here

# Sequencer.turn's answers: whose turn it is to send the load-off
TURN_SEND = "send"
TURN_WAIT = "wait"
TURN_PEER = "peer"
TURN_UPS = "ups"    # the UPS already has a load-off (counting down, or its output cut)

FORMAT = 2
_V1_MODES = {None: None, "down": MODE_SHUTDOWN, "off": MODE_LOAD_OFF, "up": MODE_POWER_ON}


class Host:
    def __init__(self, cfg):
        self.cfg = cfg
        self.name = cfg["name"]
        self.addr = norm_addr(cfg["address"])
        self.mac = cfg["mac"]
        self.kind = cfg["health"].split(":")[0]  # validated: "nut", "none" or "tcp:<port>"
        self.reset()

    def reset(self):
        self.state = None  # type: str | None
        self.t0 = None    # power-on: first wake (or check) time
        self.t_try = None  # power-on: last wake
        self.t1 = None    # logout time / healthy time
        self.t2 = None    # confirm_off: first failed tcp check after the logout (host down)
        self.tries = 0    # wakes sent
        self.was_on = False  # power-on: its upsmon was already back at the tier's start


class Tier:
    def __init__(self, cfg):
        self.name = cfg["name"]
        self.delay_ms = cfg["delay_s"] * 1000
        self.max_wait_ms = cfg["max_wait_s"] * 1000
        self.confirm_off = cfg.get("confirm_off", False)
        self.hosts = [Host(h) for h in cfg["hosts"]]
        self.phase = IDLE
        self.reset()

    def reset(self):
        self.t_start = None  # became the tier in progress (its delay starts)
        self.t_act = None    # FSD raised / FSD cleared and wakes sent
        self.t_end = None
        for h in self.hosts:
            h.reset()


def seconds(ms):
    """ms -> seconds with one decimal, as the console and the drill report give times; None
    stays None."""
    return None if ms is None else round(ms / 1000, 1)


def _age(now, t):
    return None if t is None else now - t


def _at(now, age, elapsed):
    return None if age is None else now - age - elapsed


def summary(seq, now):
    """The progress of Sequencer `seq` for the console: phases, per-host states and timings
    (times in s, None where not reached)."""
    tiers = []
    for i in seq.order or range(len(seq.tiers)):
        t = seq.tiers[i]
        hosts = []
        for h in t.hosts:
            if seq.mode == MODE_POWER_ON:
                took = None if h.t1 is None or h.t0 is None else h.t1 - h.t0
            else:
                took = None if h.t1 is None or t.t_act is None else h.t1 - t.t_act
            e = {"host": h.name, "state": h.state, "took_s": seconds(took), "tries": h.tries}
            if h.t2 is not None:  # confirm_off: logout (or FSD) -> proven off
                e["off_s"] = seconds(h.t2 - (t.t_act if h.t1 is None else h.t1))
            hosts.append(e)
        if t.t_act is None:
            took = None
        else:
            took = (now if t.t_end is None else t.t_end) - t.t_act
        tiers.append({"name": t.name, "phase": t.phase, "took_s": seconds(took),
                      "hosts": hosts})
    elapsed = None if seq.t_plan is None else now - seq.t_plan
    return {"plan": seq.plan_id, "mode": seq.mode, "drill": seq.drill,
            "complete": seq.complete, "elapsed_s": seconds(elapsed),
            "load_off": seq.load_off, "tiers": tiers,
            "measured": {"down_s": {k: seconds(v) for k, v in seq.m_down.items()},
                         "boot_s": {k: seconds(v) for k, v in seq.m_boot.items()}}}


def dump(seq, now):
    """The progress of Sequencer `seq`, JSON-ready, times as ages at `now`."""
    tiers = []
    for t in seq.tiers:
        hs = []
        for h in t.hosts:
            hs.append({"state": h.state, "t0": _age(now, h.t0), "t_try": _age(now, h.t_try),
                       "t1": _age(now, h.t1), "t2": _age(now, h.t2), "tries": h.tries,
                       "was_on": h.was_on})
        tiers.append({"name": t.name, "phase": t.phase, "t_start": _age(now, t.t_start),
                      "t_act": _age(now, t.t_act), "t_end": _age(now, t.t_end), "hosts": hs})
    return {"v": FORMAT, "plan_id": seq.plan_id, "mode": seq.mode, "drill": seq.drill,
            "complete": seq.complete, "pos": seq.pos, "age_ms": _age(now, seq.t_plan),
            # a command in flight when the board went down is not known to have been sent
            "load_off": LO_FAILED if seq.load_off == LO_PENDING else seq.load_off,
            "lo_tries": seq.lo_tries, "first": seq.first, "tiers": tiers,
            "m_down": dict(seq.m_down), "m_boot": dict(seq.m_boot)}


def _from_v1(d):
    """A version 1 record in the version 2 shape."""
    tiers = []
    for x in d["tiers"]:
        hosts = [{"state": y[0], "t0": y[1], "t_try": y[2], "t1": y[3], "tries": y[4],
                  "was_on": y[5]} for y in x[5]]
        tiers.append({"name": x[0], "phase": x[1], "t_start": x[2], "t_act": x[3],
                      "t_end": x[4], "hosts": hosts})
    out = dict(d)
    out["tiers"] = tiers
    out["mode"] = _V1_MODES[d["mode"]]
    return out


def load(seq, d, now, elapsed_ms=0):
    """Put a dump() result (version 1 or 2) back into Sequencer `seq` (elapsed_ms: time the
    board was down, if known). The measured figures are taken even when the plan is not.
    Returns False, with the plan untouched, if `d` is unreadable or does not fit the tiers."""
    try:
        ver = d["v"]
        if ver == 1:
            d = _from_v1(d)
        elif ver != FORMAT:
            return False
        seq.m_down = {k: int(ms) for k, ms in d["m_down"].items()}
        seq.m_boot = {k: int(ms) for k, ms in d["m_boot"].items()}
        saved = d["tiers"]
        if [x["name"] for x in saved] != [t.name for t in seq.tiers]:
            return False  # the tiers changed: the measured figures still hold per name
        mode = d["mode"]
        if mode not in MODES:
            return False
        # read everything before changing anything
        tiers = []
        for t, x in zip(seq.tiers, saved):
            if len(x["hosts"]) != len(t.hosts):
                return False
            # "t2" is absent from progress saved before confirm_off existed
            hosts = [(y["state"], _at(now, y["t0"], elapsed_ms), _at(now, y["t_try"], elapsed_ms),
                      _at(now, y["t1"], elapsed_ms), int(y["tries"]), bool(y["was_on"]),
                      _at(now, y.get("t2"), elapsed_ms))
                     for y in x["hosts"]]
            tiers.append((x["phase"], _at(now, x["t_start"], elapsed_ms),
                          _at(now, x["t_act"], elapsed_ms), _at(now, x["t_end"], elapsed_ms),
                          hosts))
        plan = (d["plan_id"], bool(d["drill"]), bool(d["complete"]), int(d["pos"]),
                _at(now, d["age_ms"], elapsed_ms), d["load_off"], int(d["lo_tries"]))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return False
    for t, x in zip(seq.tiers, tiers):
        t.phase, t.t_start, t.t_act, t.t_end, hosts = x
        for h, y in zip(t.hosts, hosts):
            h.state, h.t0, h.t_try, h.t1, h.tries, h.was_on, h.t2 = y
    seq.mode = mode
    first = d.get("first")
    seq.first = first if isinstance(first, str) else None
    (seq.plan_id, seq.drill, seq.complete, seq.pos, seq.t_plan, seq.load_off,
     seq.lo_tries) = plan
    return True
