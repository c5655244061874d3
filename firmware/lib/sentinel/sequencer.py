"""The sequencer: ordered shutdown by tiers, the UPS load-off, ordered power-on, and drills.

It follows the power state machine (statemachine.py) and acts on the NUT server, the UPS and the
network; it never decides *whether* to shut down, only *how*. Pure logic: main calls

    records = seq.step(now_ms, sm)

right after every sm.update() (a few times a second). step() never blocks: it reads
nut.logged_in(), raises or clears FSD, asks `health.check()` (which answers at once, or None
while a background probe runs), calls `wake(mac, addr)` and `ups_actions.shutdown_restore()`; an
awaitable returned by those two is handed to `spawn` (asyncio.create_task by default). It
returns the state machine records its reports produced (tier_progress, sequence_done), for main
to log; `seq.dirty` says the plan progress changed and to_dict() should be persisted.

Per state of the machine:
  SHUTTING_DOWN  real: tiers in config order (a NUT client's FSD on a tier, sm.forced_tier: that
                 tier first, without its delay_s, then the others in config order). Tier k: wait its delay_s, raise FSD (the first FSD
                 passes the point of no return), wait until nobody is logged in to it (every
                 upsmon logged out or its connection closed) or max_wait_s has passed (the hosts
                 still logged in are journalled by address), then tier k+1. After the last tier:
                 sm.sequence_done().
                 drill: no FSD: note who is logged in to each tier, then sequence_done().
  LOAD_OFF       once per plan: ups_actions.shutdown_restore(shutdown_delay_min, restore_min)
                 (Q1 S<n>R<m>, or a contact pulse adapter): the UPS cuts its load and restores
                 it when mains returns, so servers come back even if mains returned mid-sequence.
  WAIT_MAINS     FSD cleared on every tier (the load is off: a server that boots from here on
                 must not be told to shut down again); tiers are "off".
  RESTORING      real: tiers in reverse order. Tier k: wait its delay_s, clear its FSD, send a
                 Wake-on-LAN to each host with a MAC (unless its upsmon is already back), poll
                 its health check until healthy; a host not healthy boot_timeout_s after a wake
                 is woken again, up to wake_retries times, then given up on; then tier k-1.
                 Two feeds (self.feeds, the feed policy): a host one of whose feeds is not
                 back and stable is not woken; it is handed to the policy (feeds.defer), which
                 powers it on once every feed it lists is, and does not hold its tier.
                 After the first tier: sequence_done().
                 drill: probe each host's health check (no wake), write the drill report,
                 sequence_done().
  ON_BATTERY     a running power-on pauses (no new wakes). A grace expiry then starts a new
                 shutdown plan from the first tier; a mains return, a new power-on walk.
  ONLINE         a shutdown plan that had not finished was cancelled (mains back before the
                 point of no return, or an abort): FSD is cleared on every tier.

The plan modes, tier phases (phase(tier), for the NUT provider and the console), host states
and the saved form of the progress are in seqstate.py; what a drill finds and its report, in
drill.py. A drill changes no phase.
"""
import asyncio

from sentinel import statemachine as S
# seqstate's names as SQ.X: each name imported from it would be a module-dict entry (heap)
from sentinel import seqstate as SQ
from sentinel.coverage import logged_in_addrs
from sentinel.nutview import ups_list

# After a reboot mid-shutdown every upsmon connection is gone: give the clients that were still
# logged in this long to reconnect (upsmon retries every POLLFREQ, 5 s) before an empty tier
# counts as down. They see FSD again when they log back in.
RESUME_GRACE_MS = 20000
DRILL_PROBE_MS = 10000   # a drill waits this long for each tcp health answer
LOAD_OFF_RETRY_MS = 10000
# confirm_off: a server that has logged out is probed this often until its tcp check fails, so
# the logout-to-off time is known to about a second
OFF_PROBE_MS = 1000
LOAD_OFF_TRIES = 3
_LIST_MAX = 16  # names/addresses per journal record (a record holds at most 1 KiB)


def _my_turn(now, plan_id) -> str:
    return SQ.TURN_SEND


def _awaitable(r):
    return r is not None and (hasattr(r, "send") or hasattr(r, "__await__"))


class ContactLoadOff:
    """ups_actions for a contact-closure UPS: shutdown_restore() pulses the wired output
    (pulse_fn(), e.g. the board's relay held for the UPS's minimum pulse). Such UPSes restore
    their load by themselves when mains returns; the minutes cannot be passed on."""

    def __init__(self, pulse_fn):
        self.pulse = pulse_fn

    def shutdown_restore(self, delay_min, restore_min):
        r = self.pulse()
        return True if r is None else r


class Sequencer:
    """cfg          the validated config (tiers, recovery, ups, policy)
    nut          NutServer (set_fsd(tier, on), logged_in(tier))
    ups_actions  object with shutdown_restore(delay_min, restore_min) -> bool or awaitable bool
                 (UpsLink, ContactLoadOff), or None when the UPS cannot be commanded
    journal_fn   journal_fn(type, data, now_ms, critical=bool) (Journal.append fits), or None
    now_ms_fn    monotonic ms clock, to time-stamp async completions
    wake         wake(mac, addr) -> anything (an awaitable is spawned), e.g. wol.Sender.send;
                 None: no magic packets (hosts must power on with their outlet)
    health       object with check(tier, host_cfg, now_ms, since_ms) -> True/False/None;
                 None: a health.Health built at the first power-on or drill (device heap)
    net_state    () -> "up" | "down" | "absent" for that Health (Board.network_state)
    spawn        starts a coroutine in the background; default asyncio.create_task
    """
    feeds = None   # two feeds: the FeedPolicy (attach_feeds); a class default (device heap)
    # pair mode's plan agreement (pair/agree.py): (seq, now, sm) before each shutdown step
    agree = None

    def __init__(self, cfg, nut, ups_actions, journal_fn, now_ms_fn=None, wake=None,
                 health=None, spawn=None, resume_grace_ms=RESUME_GRACE_MS, net_state=None,
                 drill_probe_ms=DRILL_PROBE_MS):
        self.nut = nut
        self.ups = ups_actions
        self.journal = journal_fn
        self.now_ms = now_ms_fn
        self.wake = wake
        self.spawn = spawn or asyncio.create_task
        self.health = health
        self.net_state = net_state
        self.resume_grace_ms = resume_grace_ms
        rec = cfg["recovery"]
        self.boot_ms = rec["boot_timeout_s"] * 1000
        self.retries = rec["wake_retries"]
        self.delay_min = cfg["ups"]["shutdown_delay_min"]
        self.restore_min = cfg["ups"]["restore_min"]
        self.stable_s = cfg["policy"]["stable_mains_s"]
        self.tiers = [SQ.Tier(t) for t in cfg["tiers"]]
        self.ups_names = ups_list(cfg)  # every UPS the NUT server serves (FSD is cleared on all)
        # the plan being followed (persisted by to_dict)
        self.plan_id = None
        self.mode = None        # None or a seqstate MODE_*
        self.drill = False
        self.complete = False   # this plan's walk finished (sequence_done sent)
        self.order = []         # tier indexes in walk order
        self.first = None       # the tier a client FSD forced: walked first
        self.pos = 0            # index into order of the tier in progress
        self.t_plan = None
        self.load_off = None    # None (not yet) or a seqstate LO_*
        # pair mode (set by the app): (now, plan_id) -> a seqstate TURN_*, asked before each
        # try so that one load-off goes out per outage; alone, always this sentinel's turn
        self.turn = _my_turn
        self.lo_tries = 0
        self._lo_last = None
        self.resumed_at = None  # set by restore(): reconnect grace for the clients of every tier
        # measured figures of the last real sequences (persisted: drills estimate from them)
        self.m_down = {}        # tier -> ms from FSD until its last client left (or max_wait)
        self.m_boot = {}        # host -> ms from first wake until healthy
        self.report = None      # last drill report
        self._drill_probe_ms = drill_probe_ms
        self._drill = None      # a drill's findings, made when a drill starts
        self.dirty = False
        self.errors = 0
        self._recs = []

    # ---- small helpers ------------------------------------------------------------------------

    def attach_agree(self, agree):
        """Pair mode's plan agreement (pair/agree.agreement): (seq, now, sm) before each step
        of a real shutdown."""
        self.agree = agree

    def attach_feeds(self, policy):
        self.feeds = policy

    def _log(self, t, data, now, critical=False):
        if self.journal is not None:
            try:
                self.journal(t, data, now, critical=critical)
            except Exception:
                self.errors += 1

    def _sm(self, recs):
        if recs:
            self._recs.extend(recs)  # copies: the machine reuses its list

    def _run(self, r):
        if _awaitable(r):
            self.spawn(r)

    def _fsd(self, tier, on):
        try:
            self.nut.set_fsd(tier, on)
        except Exception:
            self.errors += 1  # a tier the NUT provider does not serve: nothing to tell anyone

    def _clear_all_fsd(self):
        for name in self.ups_names:
            self._fsd(name, False)

    def _tier(self, name):
        for t in self.tiers:
            if t.name == name:
                return t
        return None

    def phase(self, tier):
        t = self._tier(tier)
        return None if t is None else t.phase

    def phases(self):
        return {t.name: t.phase for t in self.tiers}

    def _set_phase(self, t, ph):
        if t.phase != ph:
            t.phase = ph
            self.dirty = True

    # ---- the main entry -------------------------------------------------------------------

    def step(self, now, sm):
        """Advance to `now` following the state machine `sm`. Returns the machine records its
        reports produced (a list reused by the next call)."""
        recs = self._recs
        if recs:
            recs.clear()
        st = sm.state
        if st == S.SHUTTING_DOWN:
            j = sm.joined
            if j is not None and self.mode == SQ.MODE_SHUTDOWN and self.plan_id == j[0]:
                self.plan_id = sm.plan_id  # the pair's plan id: the same walk goes on
                self.dirty = True
            if self.mode != SQ.MODE_SHUTDOWN or self.plan_id != sm.plan_id:
                self._start(now, SQ.MODE_SHUTDOWN, sm.plan_id, sm.drill, sm.forced_tier)
            if self.drill:
                from sentinel.drill import walk_down
                walk_down(self, now, sm)
            else:
                self._down(now, sm)
                if self.agree is not None:
                    self.agree(self, now, sm)  # after its own walk: it moves on first
        elif st == S.RESTORING:
            if self.mode != SQ.MODE_POWER_ON or self.plan_id != sm.plan_id:
                self._start(now, SQ.MODE_POWER_ON, sm.plan_id, sm.drill)
            if self.drill:
                from sentinel.drill import walk_up
                walk_up(self, now, sm)
            else:
                self._up(now, sm)
        elif st == S.LOAD_OFF:
            if self.mode != SQ.MODE_SHUTDOWN or self.plan_id != sm.plan_id:
                # resumed straight into LOAD_OFF without our plan: the tiers are done
                self.mode = SQ.MODE_SHUTDOWN
                self.plan_id = sm.plan_id
                self.drill = False
                self.complete = True
                self.load_off = None
                self.t_plan = now   # not None: an async command's result would raise
                self.dirty = True
            self._load_off(now)
        elif st == S.WAIT_MAINS:
            if self.mode != SQ.MODE_LOAD_OFF:
                self.mode = SQ.MODE_LOAD_OFF
                self._clear_all_fsd()
                for t in self.tiers:
                    self._set_phase(t, SQ.OFF)
                self.dirty = True
        elif st == S.ON_BATTERY:
            if self.drill and self.mode is not None:
                self._abandon(now, "drill_aborted")  # a real outage ended the rehearsal
            # a power-on in progress pauses here: nothing is woken on battery
        elif st == S.ONLINE:
            if (self.mode == SQ.MODE_SHUTDOWN or self.mode == SQ.MODE_POWER_ON) and not self.complete:
                if self.drill:
                    self._abandon(now, "drill_aborted")
                elif self.mode == SQ.MODE_SHUTDOWN:
                    self._abandon(now, "shutdown_cancelled")
                else:
                    self._abandon(now, "power_on_abandoned")
        return recs

    # ---- plans ----------------------------------------------------------------------------

    def _walk(self, mode):
        """Tier indexes in walk order: config order to shut down (the forced tier first),
        reverse order to power on."""
        n = len(self.tiers)
        if mode == SQ.MODE_POWER_ON:
            return list(range(n - 1, -1, -1))
        order = list(range(n))
        for i in order:
            if self.tiers[i].name == self.first:
                order.remove(i)
                order.insert(0, i)
                break
        return order

    def _start(self, now, mode, plan_id, drill, first=None):
        if self.mode == SQ.MODE_SHUTDOWN and not self.complete and not self.drill:
            # the shutdown ended before its end (mains back before the point of no return):
            # nothing more may shut down
            self._clear_all_fsd()
            self._log("shutdown_cancelled", {"plan": self.plan_id}, now, True)
        keep_drill = (drill and self.drill and self.mode == SQ.MODE_SHUTDOWN
                      and mode == SQ.MODE_POWER_ON)
        self.mode = mode
        self.plan_id = plan_id
        self.drill = drill
        self.complete = False
        self.pos = 0
        self.t_plan = now
        self.load_off = None
        self.lo_tries = 0
        self._lo_last = None
        # resumed_at kept: a plan started just after a boot gives the reconnect grace too
        self.first = first if mode == SQ.MODE_SHUTDOWN else None
        self.order = self._walk(mode)
        for t in self.tiers:
            t.reset()
        if drill:
            if not keep_drill:
                self._new_drill()
        elif mode == SQ.MODE_SHUTDOWN:
            self._log("shutdown_start", {"plan": plan_id,
                                         "tiers": [self.tiers[i].name for i in self.order]},
                      now, True)
        self.dirty = True

    def _abandon(self, now, why):
        if not self.drill:
            self._clear_all_fsd()
            for t in self.tiers:
                self._set_phase(t, SQ.IDLE)
        self._log(why, {"plan": self.plan_id}, now, True)
        self.mode = None
        self.complete = False
        self.dirty = True

    # ---- shutdown -------------------------------------------------------------------------

    def _down(self, now, sm):
        while self.pos < len(self.order):
            if not self._tier_down(now, sm, self.tiers[self.order[self.pos]]):
                return
            self.pos += 1
            self.dirty = True
        if not self.complete:
            self.complete = True
            self.dirty = True
            self._sm(sm.sequence_done(now, self.plan_id))
        if sm.state == S.LOAD_OFF:
            self._load_off(now)

    def _tier_down(self, now, sm, t):
        """One step of tier t's shutdown; True when it is finished (done or timed out)."""
        pid = self.plan_id
        if t.t_start is None:
            t.t_start = now
            self.dirty = True
        if t.t_act is None:
            if now - t.t_start < t.delay_ms and t.name != self.first:
                return False
            # report first: the first real FSD passes the point of no return
            self._sm(sm.tier_progress(now, t.name, SQ.FSD, pid))
            if sm.state != S.SHUTTING_DOWN or sm.plan_id != pid:
                return False
            self._fsd(t.name, True)
            t.t_act = now
            addrs = logged_in_addrs(self.nut, t.name)
            absent = []
            # soon after this board rebooted, a client missing now may only not have reconnected
            # yet: it gets the reconnect grace, as the clients of the tier in progress do
            missing = SQ.H_ABSENT if self._grace_over(now) else SQ.H_LOST
            for h in t.hosts:
                if h.addr in addrs:
                    h.state = SQ.H_IN
                else:
                    h.state = missing
                    absent.append(h.name)
            self._set_phase(t, SQ.FSD)
            self._log("tier_fsd", {"plan": pid, "tier": t.name, "clients": len(addrs),
                                   "absent": absent[:_LIST_MAX]}, now, True)
            if addrs or missing == SQ.H_LOST:
                return False  # "fsd" for this step; nobody can have left yet
        addrs = logged_in_addrs(self.nut, t.name)
        lost = False
        grace_over = self._grace_over(now)
        for h in t.hosts:
            s = h.state
            if s == SQ.H_IN or s == SQ.H_ABSENT:
                if h.addr not in addrs:
                    if s == SQ.H_IN:
                        h.state = SQ.H_OUT
                        h.t1 = now
                        self.dirty = True
                else:
                    h.state = SQ.H_IN  # absent at FSD, logged in since (it sees FSD)
            elif s == SQ.H_LOST:
                if h.addr in addrs:
                    h.state = SQ.H_IN
                elif grace_over:
                    h.state = SQ.H_GONE
                    self.dirty = True
                else:
                    lost = True
        waited = now - t.t_act
        running = self._confirm_off(now, t) if t.confirm_off else ()
        if not addrs and not lost and not running:
            t.t_end = now
            self.m_down[t.name] = waited
            self._set_phase(t, SQ.DONE)
            hosts = {}
            for h in t.hosts[:_LIST_MAX]:
                hosts[h.name] = None if h.t1 is None else h.t1 - t.t_act
            rec = {"plan": pid, "tier": t.name, "took_ms": waited, "hosts": hosts}
            if t.confirm_off:
                off = {}
                for h in t.hosts[:_LIST_MAX]:
                    # logout (absent at FSD: the FSD) -> tcp check failed
                    off[h.name] = h.t2 - (t.t_act if h.t1 is None else h.t1)
                rec["off"] = off
            self._log("tier_done", rec, now, True)
            self._sm(sm.tier_progress(now, t.name, SQ.DONE, pid))
            return True
        if waited >= t.max_wait_ms:
            t.t_end = now
            self.m_down[t.name] = waited
            self._set_phase(t, SQ.TIMEOUT)
            pending = []
            for a in addrs:
                if a not in pending:
                    pending.append(a)
            names = [h.name for h in t.hosts if h.addr in addrs or h.state == SQ.H_LOST]
            rec = {"plan": pid, "tier": t.name, "waited_ms": waited,
                   "pending": pending[:_LIST_MAX], "hosts": names[:_LIST_MAX]}
            if t.confirm_off:
                rec["running"] = running[:_LIST_MAX]  # left NUT but still answering
            self._log("tier_timeout", rec, now, True)
            self._sm(sm.tier_progress(now, t.name, SQ.TIMEOUT, pid))
            return True
        if t.phase == SQ.FSD:
            self._set_phase(t, SQ.WAITING)
            self._sm(sm.tier_progress(now, t.name, SQ.WAITING, pid))
        return False

    def _confirm_off(self, now, t):
        """confirm_off: probe each server of tier t that has left NUT (logged out, or absent at
        FSD) until its tcp check fails; the names of those not yet proven off. A check that could
        not run for want of a network proves nothing."""
        up = []
        for h in t.hosts:
            s = h.state
            if s == SQ.H_OFF:
                continue
            if s == SQ.H_OUT or s == SQ.H_ABSENT or s == SQ.H_GONE:
                since = h.t1 if s == SQ.H_OUT else t.t_act
                hc = self.checks()
                if (hc.check(t.name, h.cfg, now, since, OFF_PROBE_MS) is False
                        and hc.why(h.name) is None):
                    h.state = SQ.H_OFF
                    h.t2 = now
                    self.dirty = True
                    self._log("host_off", {"plan": self.plan_id, "tier": t.name, "host": h.name,
                                           "after_logout_ms": now - since}, now)
                    continue
            up.append(h.name)
        return up

    def _load_off(self, now):
        lo = self.load_off
        if self.drill or lo == SQ.LO_SENT or lo == SQ.LO_NONE or lo == SQ.LO_PEER:
            return
        if lo == SQ.LO_PENDING:
            return  # an async command is in flight
        if lo == SQ.LO_FAILED:
            if self.lo_tries >= LOAD_OFF_TRIES or now - self._lo_last < LOAD_OFF_RETRY_MS:
                return
        turn = self.turn(now, self.plan_id)
        if turn == SQ.TURN_WAIT:
            return
        if turn == SQ.TURN_PEER or turn == SQ.TURN_UPS:
            self.load_off = SQ.LO_PEER
            self.dirty = True
            self._log("ups_off", {"plan": self.plan_id, "ok": True, "by": turn,
                                  "took_ms": now - self.t_plan}, now, True)
            return
        ups = self.ups
        if ups is None:
            self.load_off = SQ.LO_NONE
            self.dirty = True
            self._log("ups_off", {"plan": self.plan_id, "ok": False,
                                  "why": "no UPS command configured"}, now, True)
            return
        self.lo_tries += 1
        self._lo_last = now
        self.load_off = SQ.LO_PENDING
        self.dirty = True
        try:
            r = ups.shutdown_restore(self.delay_min, self.restore_min)
        except Exception:
            r = False
        if _awaitable(r):
            self.spawn(self._await_load_off(r, self.plan_id))
        else:
            self._load_off_result(now, bool(r), self.plan_id)

    async def _await_load_off(self, coro, pid):
        try:
            ok = bool(await coro)
        except Exception:
            ok = False
        self._load_off_result(self.now_ms() if self.now_ms else self._lo_last, ok, pid)

    def _load_off_result(self, now, ok, pid):
        if pid != self.plan_id:
            return
        self.load_off = SQ.LO_SENT if ok else SQ.LO_FAILED
        self.dirty = True
        self._log("ups_off", {"plan": pid, "ok": ok, "delay_min": self.delay_min,
                              "restore_min": self.restore_min, "try": self.lo_tries,
                              "took_ms": now - self.t_plan}, now, True)

    # ---- power-on -------------------------------------------------------------------------

    def _up(self, now, sm):
        while self.pos < len(self.order):
            if not self._tier_up(now, sm, self.tiers[self.order[self.pos]]):
                return
            self.pos += 1
            self.dirty = True
        if not self.complete:
            self.complete = True
            self.dirty = True
            self._clear_all_fsd()
            tiers = {}
            failed = []
            for i in self.order:
                t = self.tiers[i]
                tiers[t.name] = None if t.t_end is None else t.t_end - t.t_start
                for h in t.hosts:
                    if h.state == SQ.H_TIMEOUT:
                        failed.append(h.name)
            self._log("power_on", {"plan": self.plan_id, "done": True,
                                   "took_ms": now - self.t_plan, "tiers": tiers,
                                   "failed": failed[:_LIST_MAX]}, now, True)
            self._sm(sm.sequence_done(now, self.plan_id))

    def _wake(self, now, t, h):
        h.state = SQ.H_WAKING
        h.t_try = now
        self.dirty = True
        if not h.mac:
            return
        h.tries += 1
        self._log("wol", {"tier": t.name, "host": h.name, "mac": h.mac, "try": h.tries}, now)
        if self.wake is not None:
            try:
                self._run(self.wake(h.mac, h.addr))
            except Exception:
                self.errors += 1

    def _tier_up(self, now, sm, t):
        """One step of tier t's power-on; True when every host is up or given up on."""
        pid = self.plan_id
        if t.t_start is None:
            t.t_start = now
            self.dirty = True
        if t.t_act is None:
            if now - t.t_start < t.delay_ms:
                return False
            self._fsd(t.name, False)  # FSD is not a latch: the tier must read OL as it boots
            t.t_act = now
            self._set_phase(t, SQ.WAKING)
            self._sm(sm.tier_progress(now, t.name, SQ.WAKING, pid))
            addrs = logged_in_addrs(self.nut, t.name)
            for h in t.hosts:
                h.t0 = now
                if h.addr in addrs:
                    # its upsmon is back: the host is on (its health check still decides "up")
                    h.was_on = True
                    h.state = SQ.H_WAKING
                    h.t_try = now
                elif self.feeds is not None and self.feeds.defer(h.cfg, t.name, now):
                    h.state = SQ.H_FEED   # a feed it needs is not back: the policy's to wake
                else:
                    self._wake(now, t, h)
        finished = True
        for h in t.hosts:
            if h.state == SQ.H_UP or h.state == SQ.H_TIMEOUT or h.state == SQ.H_FEED:
                continue
            if self.checks().check(t.name, h.cfg, now, h.t0) is True:
                h.state = SQ.H_UP
                h.t1 = now
                took = now - h.t0
                if h.kind != "none" and not h.was_on:  # a boot we waited for: a measurement
                    self.m_boot[h.name] = took
                self.dirty = True
                self._log("host_up", {"tier": t.name, "host": h.name, "took_ms": took,
                                      "tries": h.tries}, now)
                continue
            if now - h.t_try >= self.boot_ms:
                if h.mac and h.tries < 1 + self.retries:
                    self._wake(now, t, h)
                else:
                    h.state = SQ.H_TIMEOUT
                    self.dirty = True
                    self._log("host_timeout", {"tier": t.name, "host": h.name,
                                               "waited_ms": now - h.t0, "tries": h.tries},
                              now, True)
                    continue
            finished = False
        if not finished:
            return False
        t.t_end = now
        failed = [h.name for h in t.hosts if h.state == SQ.H_TIMEOUT]
        self._set_phase(t, SQ.TIMEOUT if failed else SQ.UP)
        up = sum(1 for h in t.hosts if h.state == SQ.H_UP)   # H_FEED hosts are neither
        self._log("power_on", {"plan": pid, "tier": t.name, "took_ms": now - t.t_act,
                               "up": up, "failed": failed[:_LIST_MAX]}, now, True)
        self._sm(sm.tier_progress(now, t.name, t.phase, pid))
        return True

    def checks(self):
        """The health checks (also the feed policy's power-on)."""
        # loaded with the first power-on or drill, not at boot (device heap)
        if self.health is None:
            from sentinel.health import Health
            self.health = Health(self.nut, spawn=self.spawn, net_state=self.net_state)
        return self.health

    def booted(self, now):
        """Just booted (pair mode): missing servers get the reconnect grace (docs/redundancy.md)."""
        if self.resumed_at is None:
            self.resumed_at = now

    def _grace_over(self, now):
        """True unless booted() or restore() ran less than resume_grace_ms ago."""
        return self.resumed_at is None or now - self.resumed_at >= self.resume_grace_ms

    # ---- drill ----------------------------------------------------------------------------

    def _new_drill(self):
        # imported when a drill starts, not at boot: drills are rare (device heap)
        from sentinel.drill import Drill
        d = self._drill = Drill(self.tiers, self.nut, self.checks(), self._drill_probe_ms)
        return d

    # ---- status ---------------------------------------------------------------------------

    def summary(self, now):
        """Plan progress and timings for the console (seqstate.summary)."""
        return SQ.summary(self, now)

    # ---- persistence ----------------------------------------------------------------------

    def to_dict(self, now):
        """Plan progress, JSON-ready (seqstate.dump). Clears `dirty`."""
        self.dirty = False
        return SQ.dump(self, now)

    def restore(self, d, now, elapsed_ms=0):
        """Resume a to_dict() result (also earlier firmware's) after a reboot (elapsed_ms: down
        time, if known). Re-raises FSD on the tiers reached; for resume_grace_ms missing clients
        may reconnect before a tier counts as down. False (a fresh plan) if `d` does not fit."""
        if not SQ.load(self, d, now, elapsed_ms):
            return False
        mode = self.mode
        self._lo_last = None if self.load_off is None else now - LOAD_OFF_RETRY_MS
        n = len(self.tiers)
        self.order = self._walk(mode)
        self.resumed_at = now
        if self.drill:
            # a rehearsal is cheap to redo; its first half is redone if it was lost
            self._new_drill()
            if mode == SQ.MODE_SHUTDOWN:
                self.complete = False
        elif mode == SQ.MODE_SHUTDOWN:
            for k in range(min(self.pos + 1, n)):
                t = self.tiers[self.order[k]]
                if t.t_act is not None:
                    self._fsd(t.name, True)  # the NUT server's FSD lived in RAM
                if k == self.pos and t.t_end is None:
                    for h in t.hosts:
                        if h.state == SQ.H_IN:
                            h.state = SQ.H_LOST
            if self.complete:
                self.pos = n
        self.dirty = False
        return True
