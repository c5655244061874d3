"""The site model for two feeds (or more): which servers lose power when one feed is lost.

Loaded only when the mains channels sense two or more feeds, or a server lists a phase as its
feed (tiers[].hosts[].feeds; device heap: a single-feed site never imports this module).

Per feed: ok, or lost when none of its channels is good (each channel's mains-good verdict).
Per server (its `feeds`; empty: every feed): ok, degraded (one of its feeds lost, one left) or
lost (every feed it lists is lost).

While the site is otherwise ONLINE (the state machine sees no outage: a feed is still up):
- a server lost for policy.grace_s (a return shorter than return_stable_ms does not restart
  it) is told FSD on its tier, for its own connections only
  (NutServer.set_fsd_hosts); the servers that stay powered never see FSD. Tier order holds
  among the servers that must go: a tier's are told only once no server of an earlier tier is
  lost and still running (not yet told, or told and still logged in within the tier's
  max_wait_s);
- once every feed it lists has been back for policy.stable_mains_s, its FSD is cleared and it
  is powered on, the last tier first: Wake-on-LAN (unless its upsmon is still logged in) and
  its health check, woken again every boot_timeout_s up to wake_retries times.
When the site leaves ONLINE (every feed lost, or the UPS says so) the sequencer owns every
server: this policy clears its FSDs and forgets what it had told. The sequencer's power-on
hands back (defer) each server one of whose feeds is not yet back and stable: this policy
powers it on, as above, once every feed it lists is (power-on waits for every feed a server
needs; a dual-corded server is not woken on one feed).

Records (log(type, data, critical=)): feed_lost, feed_back, feed_fsd (host, tier),
feed_power_on (host, tier, ok, took_ms, tries). `alarm`: "redundancy lost: feed B lost" while a
feed is lost, else "".

Saved across a reboot (to_dict / restore, in state.json beside the plan, written by the control
loop only when `dirty`: on a transition, never every step): each feed lost or since when it is
back, each server's power state and action with their times (ages at saving, plus the time the
board was down when the RTC can tell, as the sequencer's plan). A board that reboots mid-grace
keeps the grace's start; a server told FSD is told again at once (no new grace, no second
feed_fsd), one already off is not told or woken twice, a waiting power-on resumes. A saved state
of another site (other feeds or servers) or damaged is ignored with a feed_resume record.

Pure logic: step(now, good_mask, present, online) takes the clock and the readings as arguments.
"""
from sentinel.coverage import logged_in_addrs
from sentinel.sequencer import RESUME_GRACE_MS

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:

    def const(x):
        return x

OK = "ok"
DEGRADED = "degraded"
LOST = "lost"
# what the policy has done to a server
A_NONE = ""
A_FSD = "fsd"          # told FSD, still logged in
A_OFF = "off"          # told FSD and logged out (or its max_wait ran out)
A_BACK = "back"        # its feed is back: FSD cleared, powered on in its tier's turn
A_WAKING = "waking"    # powering on
A_WAIT = "wait"        # handed back by the sequencer's power-on: off until its feeds are back
_ACTS = (A_NONE, A_FSD, A_OFF, A_BACK, A_WAKING, A_WAIT)
_POWERS = (OK, DEGRADED, LOST)
FORMAT = 1   # the saved state's version


# A server is a list, not an object (device heap: a list of 9 costs a fifth of an instance
# with as many attributes): its config dict, tier index, feed bits (bit i: feed i powers it),
# power state, ms it became lost, action, ms of the FSD then of the last wake, ms the power-on
# started, magic packets sent, address (lower case), ms it was last no longer lost.
# (const with a leading underscore: compile-time numbers, not module globals on the device)
_CFG = const(0)
_TI = const(1)
_MASK = const(2)
_POWER = const(3)
_T_LOST = const(4)
_ACT = const(5)
_T_ACT = const(6)
_T0 = const(7)
_TRIES = const(8)
_ADDR = const(9)
_T_BACK = const(10)


class FeedPolicy:
    """cfg: the validated config; chan_feeds: each mains channel's feed (PhaseSet.feeds, "" for
    a phase); nut: the NutServer (set_fsd_hosts, logged_in); log(type, data, critical=False);
    wake(mac, addr): magic packets (an awaitable it returns is handed to spawn; None: no
    wakes); checks() -> the sequencer's health checks (check(tier, host_cfg, now, since_ms));
    spawn: starts a coroutine in the background (asyncio.create_task)."""

    # Rarely changed state as class defaults, written only when it changes: an instance holds
    # what was written (each attribute an entry in its table, device heap)
    wake = None
    checks = None
    spawn = None
    alarm = ""
    low = 0               # feeds whose UPS says low battery (step's low_mask)
    _online = True
    _dirty = False        # who is told FSD changed: push it (not every step: no garbage)
    dirty = False         # something a reboot must not forget changed: save it
    _resumed = None       # ms restore() ran: told servers may reconnect (resume grace)
    _back_in = None       # addresses logged in again since restore(), during that grace

    def __init__(self, cfg, chan_feeds, nut, log, wake=None, checks=None, spawn=None):
        self.nut = nut
        self.log = log
        if wake is not None:
            self.wake = wake
        if checks is not None:
            self.checks = checks
        if spawn is not None:
            self.spawn = spawn
        pol = cfg["policy"]
        self.grace_ms = pol["grace_s"] * 1000
        self.return_ms = pol["return_stable_ms"]
        self.stable_ms = pol["stable_mains_s"] * 1000
        rec = cfg["recovery"]
        self.boot_ms = rec["boot_timeout_s"] * 1000
        self.retries = rec["wake_retries"]
        self.names = []
        self.cmask = []          # per feed: its channels' bits
        for c, f in enumerate(chan_feeds):
            if not f:
                continue
            if f not in self.names:
                self.names.append(f)
                self.cmask.append(0)
            i = self.names.index(f)
            self.cmask[i] |= 1 << c
        n = len(self.names)
        self.lost = [False] * n
        self.t_back = [None] * n   # ms each feed was last seen coming back (None: never lost)
        self.tiers = [t["name"] for t in cfg["tiers"]]
        self.max_wait = [t["max_wait_s"] * 1000 for t in cfg["tiers"]]
        self.hosts = []
        for ti, t in enumerate(cfg["tiers"]):
            for h in t["hosts"]:
                m = 0
                for f in h.get("feeds") or self.names:
                    if f in self.names:
                        m |= 1 << self.names.index(f)
                a = h["address"]
                if a.lower() != a:
                    a = a.lower()   # else the config's string, not a copy (device heap)
                self.hosts.append([h, ti, m, OK, None, A_NONE, 0, 0, 0, a, 0])
        self._told = [()] * len(self.tiers)   # addresses told FSD per tier, as last pushed

    # ---- readings -------------------------------------------------------------------------

    def _feeds(self, now, good_mask):
        changed = False
        for i in range(len(self.names)):
            lost = not good_mask & self.cmask[i]
            if lost != self.lost[i]:
                self.lost[i] = lost
                changed = True
                if lost:
                    self.log("feed_lost", {"feed": self.names[i]}, critical=True)
                else:
                    self.t_back[i] = now
                    self.log("feed_back", {"feed": self.names[i]})
        if changed:
            self.dirty = True
            self._set_alarm()
            for h in self.hosts:
                n = 0
                out = 0
                for i in range(len(self.names)):
                    if h[_MASK] >> i & 1:
                        n += 1
                        if self.lost[i]:
                            out += 1
                p = LOST if n and out == n else (DEGRADED if out else OK)
                if p != h[_POWER]:
                    if p == LOST:
                        # a return shorter than return_stable_ms does not restart the grace
                        # (as the state machine's): a flickering feed still gets its servers down
                        if h[_T_LOST] is None or now - h[_T_BACK] >= self.return_ms:
                            h[_T_LOST] = now
                    elif h[_POWER] == LOST:
                        h[_T_BACK] = now
                    h[_POWER] = p

    def _set_alarm(self):
        # a phase taken as a feed (a server lists it) has the phase alarm already (phases.py)
        gone = [self.names[i] for i in range(len(self.names))
                if self.lost[i] and self.names[i] not in ("L1", "L2", "L3")]
        if not gone:
            self.alarm = ""
        elif len(gone) == 1:
            self.alarm = "redundancy lost: feed %s lost" % gone[0]
        else:
            self.alarm = "redundancy lost: feeds %s lost" % ", ".join(gone)

    def _missing(self, now, mask):
        """The feeds of `mask` not up for stable_mains_s yet (a list, empty when none)."""
        out = []
        for i in range(len(self.names)):
            if mask >> i & 1:
                t = self.t_back[i]
                if self.lost[i] or (t is not None and now - t < self.stable_ms):
                    out.append(self.names[i])
        return out

    def _stable(self, now, h):
        """Every feed the host lists is up and has been for stable_mains_s."""
        return not self._missing(now, h[_MASK])

    def defer(self, host_cfg, tier, now):
        """The sequencer's power-on asks before waking a server: True when a feed it lists is
        not back and stable yet. The server is then this policy's to power on once they all
        are (A_WAIT, a power_on_wait record), after the sequencer's walk."""
        for h in self.hosts:
            if h[_CFG] is host_cfg or h[_CFG]["name"] == host_cfg["name"]:
                miss = self._missing(now, h[_MASK])
                if miss:
                    h[_ACT] = A_WAIT
                    self.dirty = True
                    self.log("power_on_wait", {"host": h[_CFG]["name"], "tier": tier,
                                               "feeds": miss})
                return bool(miss)
        return False

    # ---- the step -------------------------------------------------------------------------

    def step(self, now, good_mask, present=True, online=True, low_mask=0):
        """good_mask: bit c set when mains channel c is good; present: the readings mean
        something (not during the monitor's first cycles); online: the state machine is
        ONLINE (no site outage); low_mask: bit i set when feed i's UPS says low battery (one
        UPS per feed): a lost server on such a feed is told at once, without its grace."""
        if low_mask != self.low:
            self.low = low_mask
        if present:
            self._feeds(now, good_mask)
        if not online:
            if self._online:
                self._release()   # once, as the site outage starts: A_WAIT set since stays
                self._online = False
                self.dirty = True
            return
        if not self._online:
            self._online = True
            self.dirty = True
        self._down(now)
        self._up(now)
        self._push()

    def _release(self):
        for h in self.hosts:
            if h[_ACT] != A_NONE:
                h[_ACT] = A_NONE
                self._dirty = True
                self.dirty = True
        self._push()

    def _down(self, now):
        blocked = False
        for ti in range(len(self.tiers)):
            addrs = None
            running = False
            for h in self.hosts:
                if h[_TI] != ti:
                    continue
                if h[_POWER] != LOST:
                    continue
                if h[_ACT] == A_BACK or h[_ACT] == A_WAKING:
                    h[_ACT] = A_NONE   # lost again while powering on: no more wakes; its grace
                    self.dirty = True
                if h[_ACT] == A_NONE:
                    low = h[_MASK] & self.low
                    if blocked or (now - h[_T_LOST] < self.grace_ms and not low):
                        running = True
                        continue
                    h[_ACT] = A_FSD
                    h[_T_ACT] = now
                    self._dirty = True
                    self.dirty = True
                    self.log("feed_fsd", {"host": h[_CFG]["name"], "tier": self.tiers[ti],
                                          "cause": "ups_low_battery" if low
                                          else "grace_expired"}, critical=True)
                if h[_ACT] == A_FSD:
                    if addrs is None:
                        addrs = logged_in_addrs(self.nut, self.tiers[ti])
                    # after a reboot its upsmon needs a moment to log in again: not yet off
                    # unless it did and has logged out since
                    a = h[_ADDR]
                    if a in addrs:
                        off = False
                        if self._back_in is not None:
                            self._back_in.add(a)
                    else:
                        off = self._settled(now) or a in self._back_in
                    if off or now - h[_T_ACT] >= self.max_wait[ti]:
                        h[_ACT] = A_OFF
                        self.dirty = True
                    else:
                        running = True
            if running:
                blocked = True

    def _up(self, now):
        # every server whose feed is back loses its FSD at once (one that boots by itself when
        # its outlet returns must not read FSD again); the wakes go tier by tier
        for h in self.hosts:
            a = h[_ACT]
            if (a == A_FSD or a == A_OFF or a == A_WAIT) and self._stable(now, h):
                h[_ACT] = A_BACK
                self._dirty = True
                self.dirty = True
        for ti in range(len(self.tiers) - 1, -1, -1):
            busy = False
            addrs = None
            for h in self.hosts:
                if h[_TI] != ti:
                    continue
                if h[_ACT] == A_BACK:
                    if addrs is None:
                        addrs = logged_in_addrs(self.nut, self.tiers[ti])
                    h[_ACT] = A_WAKING
                    self.dirty = True
                    h[_T0] = now
                    h[_T_ACT] = now
                    h[_TRIES] = 0
                    if h[_ADDR] not in addrs:   # still logged in: running, no wake needed
                        self._wake(h)
                if h[_ACT] != A_WAKING:
                    continue
                ok = self.checks is None or self.checks().check(self.tiers[ti], h[_CFG], now,
                                                                h[_T0]) is True
                if ok:
                    self._done(now, h, True)
                elif now - h[_T_ACT] >= self.boot_ms:
                    if h[_CFG]["mac"] and h[_TRIES] < 1 + self.retries:
                        h[_T_ACT] = now
                        self._wake(h)
                        busy = True
                    else:
                        self._done(now, h, False)
                else:
                    busy = True
            if busy:
                return   # an earlier tier waits for this one, as the sequencer's power-on

    def _wake(self, h):
        mac = h[_CFG]["mac"]
        if not mac or self.wake is None:
            return
        h[_TRIES] += 1
        self.dirty = True
        self.log("wol", {"tier": self.tiers[h[_TI]], "host": h[_CFG]["name"], "mac": mac,
                         "try": h[_TRIES]})
        try:
            r = self.wake(mac, h[_ADDR])
            if self.spawn is not None and r is not None and (
                    hasattr(r, "send") or hasattr(r, "__await__")):
                self.spawn(r)
        except Exception as e:
            self.log("error", {"where": "feed_wake", "error": str(e)})

    def _done(self, now, h, ok):
        h[_ACT] = A_NONE
        self.dirty = True
        self.log("feed_power_on", {"host": h[_CFG]["name"], "tier": self.tiers[h[_TI]],
                                   "ok": ok, "took_ms": now - h[_T0], "tries": h[_TRIES]},
                 critical=not ok)

    def _push(self):
        """The NUT server's per-connection FSD, changed only when a tier's set changes."""
        if not self._dirty:
            return
        self._dirty = False
        for ti in range(len(self.tiers)):
            told = tuple(h[_ADDR] for h in self.hosts
                         if h[_TI] == ti and (h[_ACT] == A_FSD or h[_ACT] == A_OFF))
            if told != self._told[ti]:
                self._told[ti] = told
                try:
                    self.nut.set_fsd_hosts(self.tiers[ti], told)
                except ValueError:
                    pass   # a tier the NUT server does not serve

    def _settled(self, now):
        if self._resumed is not None and now - self._resumed >= RESUME_GRACE_MS:
            self._resumed = self._back_in = None
        return self._resumed is None

    # ---- saved state ----------------------------------------------------------------------

    def to_dict(self, now):
        """What a reboot must not forget, JSON-ready; every time an age in ms at `now` (the
        clock restarts at boot). Clears `dirty`. Hosts: [name, power, lost age (None: never
        lost), action, action age, power-on age, wakes sent, back age]."""
        self.dirty = False
        hosts = []
        for h in self.hosts:
            t = h[_T_LOST]
            hosts.append([h[_CFG]["name"], h[_POWER], None if t is None else now - t, h[_ACT],
                          now - h[_T_ACT], now - h[_T0], h[_TRIES], now - h[_T_BACK]])
        return {"v": FORMAT, "feeds": self.names, "lost": self.lost,
                "back": [None if t is None else now - t for t in self.t_back],
                "online": self._online, "hosts": hosts}

    def restore(self, d, now, elapsed_ms=0):
        """Resume a to_dict() result after a reboot (elapsed_ms: the time the board was down,
        if known: timers count it). Servers told FSD are told again at once. Returns False, with
        a feed_resume record, and keeps a fresh state when `d` is not this site's or damaged."""
        try:
            p = self._parse(d, now, elapsed_ms)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            p = None
        if p is None:
            self.log("feed_resume", {"ok": False, "why": "saved feed state does not fit "
                                     "this site or is damaged: ignored"})
            return False
        self.lost, self.t_back, hosts = p
        self._online = bool(d["online"])
        for h, v in zip(self.hosts, hosts):
            h[_POWER], h[_T_LOST], h[_ACT], h[_T_ACT], h[_T0], h[_TRIES], h[_T_BACK] = v
        self._set_alarm()
        self._resumed = now
        self._back_in = set()
        self._dirty = True
        self._push()
        self.log("feed_resume", {"ok": True, "lost": [f for i, f in enumerate(self.names)
                                                      if self.lost[i]],
                                 "told": [h[_CFG]["name"] for h in self.hosts
                                          if h[_ACT] == A_FSD or h[_ACT] == A_OFF]})
        return True

    def _parse(self, d, now, el):
        """(lost, t_back, each host's fields) restored, or None when `d` is not a saved state
        of this site."""
        n = len(self.names)
        if (d.get("v") != FORMAT or d["feeds"] != self.names or len(d["lost"]) != n
                or len(d["back"]) != n or len(d["hosts"]) != len(self.hosts)):
            return None
        lost = [bool(x) for x in d["lost"]]
        back = [None if a is None else now - int(a) - el for a in d["back"]]
        out = []
        for h, s in zip(self.hosts, d["hosts"]):
            name, power, t_lost, act, t_act, t0, tries, t_back = s
            if name != h[_CFG]["name"] or power not in _POWERS or act not in _ACTS:
                return None
            out.append((power, None if t_lost is None else now - int(t_lost) - el, act,
                        now - int(t_act) - el, now - int(t0) - el, int(tries),
                        now - int(t_back) - el))
        return lost, back, out

    # ---- read side ------------------------------------------------------------------------

    def status(self):
        """The console's feeds block (built every second by the status reporter: each server's
        tier and feeds are in the coverage audit's block, not repeated here)."""
        feeds = {}
        for i, f in enumerate(self.names):
            feeds[f] = LOST if self.lost[i] else OK
        hosts = []
        for h in self.hosts:
            hosts.append({"host": h[_CFG]["name"], "state": h[_POWER], "action": h[_ACT]})
        return {"feeds": feeds, "hosts": hosts, "alarm": self.alarm}
