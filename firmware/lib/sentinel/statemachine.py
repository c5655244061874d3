"""The power state machine: when to shut servers down, when to power them back on.

Pure logic, and every power rule. The control loop feeds it `update(now_ms, inputs)` a few
times a second; the sequencer reads `state`, `plan_id`, `drill` and `ponr`, drives the tiers, and
reports back with `tier_progress()`, `pass_point_of_no_return()` and `sequence_done()`. The end
of LOAD_OFF is decided here too, from the inputs alone: the UPS (a Q1 link or an OFF contact,
alike) says its output is off, or the board has just powered up from the cut it asked for.
Every call returns the records it produced (see below) so the caller can log them; the last
`history_len` are also kept in `history()`.

States (the normal cycle runs top to bottom, then back to ONLINE):
  ONLINE         mains (or the UPS's line input) feeds the load
  ON_BATTERY     an outage is being timed (grace); nothing has been done to servers yet
  SHUTTING_DOWN  the sequencer stops tier after tier. Before the point of no return a stable
                 mains return cancels it (back to ONLINE or RESTORING: tiers resume); after it
                 the sequence always completes
  LOAD_OFF       the UPS has been told to cut its load and restore it when mains returns, so
                 servers always come back (a server whose OS halted needs its outlet cycled)
  WAIT_MAINS     waiting for mains good for stable_mains_s, the battery at restart_charge_pct
                 and the UPS output back on (its restore_min delay), so that the first wake-up
                 packets reach powered servers
  RESTORING      the sequencer powers tiers on (WOL, health checks); done -> ONLINE. An outage
                 here is timed like any other and may start a new shutdown

Times: `now_ms` is a monotonic millisecond count that does not wrap (the caller accumulates
`ticks_diff`); the machine never reads a clock.

A record is a tuple (t_ms, from_state, to_state, cause, detail); from_state == to_state for an
event that is not a transition. `detail` is an int (a duration in ms, a charge in %) or None.
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


ONLINE = "ONLINE"
ON_BATTERY = "ON_BATTERY"
SHUTTING_DOWN = "SHUTTING_DOWN"
LOAD_OFF = "LOAD_OFF"
WAIT_MAINS = "WAIT_MAINS"
RESTORING = "RESTORING"
STATES = (ONLINE, ON_BATTERY, SHUTTING_DOWN, LOAD_OFF, WAIT_MAINS, RESTORING)

# Causes of transitions (those only this module names are private consts: no module-dict
# entry each on the device)
_MAINS_LOST = const("mains_lost")                  # the fast trigger (interruption)
_UPS_ON_BATTERY = const("ups_on_battery")          # the UPS says OB
# no UPS data: our own sensor says V or f out of range
_MAINS_BAD = const("mains_out_of_tolerance")
# pair: the peer's sensor and the UPS say lost, ours not
_MAINS_OUTVOTED = const("mains_outvoted")
_PEER_PLAN = const("peer_plan")    # pair: on battery here, the peer already shutting down
_PLAN_JOINED = const("plan_joined")  # pair: this plan takes the peer's (newer) plan id
# stable return: an outage or a cancellable shutdown ends
_MAINS_RESTORED = const("mains_restored")
_GRACE_EXPIRED = const("grace_expired")
_CHARGE_FLOOR = const("charge_floor")
_RUNTIME_FLOOR = const("runtime_floor")
_LOW_BATTERY = const("ups_low_battery")
_LINK_LOST = const("ups_link_lost")                # also an event when lost while on line
_MANUAL = const("manual")
CLIENT_FSD = "client_fsd"                  # a NUT client (a primary upsmon) sent FSD on a tier
DRILL = "drill"
SEQUENCE_DONE = "sequence_done"
_LOAD_OFF_DONE = const("load_off_done")
_LOAD_OFF_ELAPSED = const("load_off_elapsed")
_MAINS_STABLE = const("mains_stable")
_RESTORE_DONE = const("restore_done")
DRILL_DONE = "drill_done"
_DRILL_ABORTED = const("drill_aborted")
_ABORTED = const("aborted")
# Causes of events only
_LB_FLASH = const("lb_flash")                      # LB on line shorter than lb_filter_ms: ignored
# LB on line for lb_filter_ms: an outage now is critical
_LB_ON_LINE = const("low_battery_on_line")
_LINK_RESTORED = const("ups_link_restored")
PONR = "point_of_no_return"
MAINS_BACK_AFTER_PONR = "mains_restored_after_ponr"
_WAITING_FOR_CHARGE = const("waiting_for_charge")
# mains stable, the UPS has not restored its output
_WAITING_FOR_OUTPUT = const("waiting_for_ups_output")
# ... for restore_min + margin: restore anyway
_OUTPUT_WAIT_EXPIRED = const("ups_output_wait_expired")
REJECTED = "command_rejected"
_RESUMED = const("resumed")
_RESUME_INVALID = const("resume_invalid")

# After the load-off command the UPS cuts its output within shutdown_delay_min; this margin
# covers the command's own round trip before WAIT_MAINS is assumed.
LOAD_OFF_MARGIN_MS = 30000
# The UPS restores its output restore_min after mains returns; past that plus this margin the
# output is reported off for some other reason (a stuck flag, a UPS that will not restore):
# restoring then goes ahead, since a server wakes as soon as it has power anyway.
_OUTPUT_WAIT_MARGIN_MS = const(120000)

_FORMAT = 1  # to_dict() layout version


class Inputs:
    """What the state machine is told at each update. The control loop keeps one and
    refreshes it.

    mains_lost        the mains monitor's fast loss trigger (a level: true while interrupted)
    mains_good        mains voltage and frequency within tolerance
    mains_present     the mains sensor is working (False: its two flags above mean nothing)
    ups_on_battery    UPS says OB          ups_low_battery   UPS says LB
    ups_charge        battery %, or None   ups_runtime       seconds, or None
    ups_link_ok       the UPS link answers (the link module applies link_lost_s)
    ups_link_known    the link has given a verdict, ok or lost (False while a link that just
                      started has not yet answered nor timed out: that is not a lost link)
    ups_link_configured  a UPS link exists (ups.link is not "none")
    ups_output_off    the UPS says its output is off (Q1 or an OFF contact)
    commands          console and NUT commands, consumed by update(): "drill", "drill_stop",
                      "shutdown", "abort", and ("fsd", tier) for a NUT client's FSD on a tier
    powered_up        the board has just started from a power-on reset; consumed by update()
                      (a board resuming LOAD_OFF was powered by the load it asked to cut)
    mains_unconfirmed pair mode (pair/arbiter.py): the sensor's loss or out-of-tolerance reading
                      is not corroborated while the UPS or the peer says mains is fine, so it
                      does not count: mains_lost and mains_good are then not acted on. Always
                      False for a single sentinel
    mains_outvoted    pair mode: the sensor reads mains fine but an alive peer's sensor and the
                      UPS (its OB, read here or carried by the peer) say lost: counts as a loss
    peer_output_off   pair mode: an alive peer's UPS link shows the UPS output off; stands in
                      for ups_output_off in LOAD_OFF when this sentinel has no UPS link
    peer_plan_id      pair mode: an alive peer's plan id while it runs a real shutdown plan,
                      else 0. On battery here it ends the grace (the pair runs one plan), and
                      a plan here takes that id when it is the newer (one plan id per outage)
    """

    def __init__(self, mains_lost=False, mains_good=True, mains_present=True, ups_on_battery=False,
                 ups_low_battery=False, ups_charge=None, ups_runtime=None, ups_link_ok=True,
                 ups_link_configured=True, ups_output_off=False, commands=None,
                 powered_up=False, ups_link_known=True, mains_unconfirmed=False,
                 mains_outvoted=False, peer_output_off=False, peer_plan_id=0):
        self.mains_lost = mains_lost
        self.mains_good = mains_good
        self.mains_present = mains_present
        self.ups_on_battery = ups_on_battery
        self.ups_low_battery = ups_low_battery
        self.ups_charge = ups_charge
        self.ups_runtime = ups_runtime
        self.ups_link_ok = ups_link_ok
        self.ups_link_known = ups_link_known
        self.ups_link_configured = ups_link_configured
        self.ups_output_off = ups_output_off
        self.commands = [] if commands is None else commands
        self.powered_up = powered_up
        self.mains_unconfirmed = mains_unconfirmed
        self.mains_outvoted = mains_outvoted
        self.peer_output_off = peer_output_off
        self.peer_plan_id = peer_plan_id


class StateMachine:
    def __init__(self, cfg, now_ms=0, history_len=16):
        p = cfg["policy"]
        self.grace_ms = p["grace_s"] * 1000
        self.charge_floor = p["charge_floor_pct"]
        self.runtime_floor = p["runtime_floor_s"]
        self.link_lost_shutdown = p["shutdown_on_link_lost"]
        self.stable_ms = p["stable_mains_s"] * 1000
        self.restart_charge = p["restart_charge_pct"]
        self.return_ms = p["return_stable_ms"]
        self.lb_filter_ms = p["lb_filter_ms"]
        self.load_off_ms = cfg["ups"]["shutdown_delay_min"] * 60000 + LOAD_OFF_MARGIN_MS
        self.output_wait_ms = cfg["ups"]["restore_min"] * 60000 + _OUTPUT_WAIT_MARGIN_MS
        self._hist = [None] * history_len
        self._hn = 0
        self._new = []
        # the decision, persisted by to_dict()
        self.state = ONLINE
        self.since = now_ms            # when the current state was entered
        self.drill = False             # the current plan is a rehearsal: no FSD, no load-off
        self.ponr = False              # past the point of no return (real shutdown only)
        self.cancellable = False       # a stable mains return may cancel this shutdown
        self.shutdown_cause = None
        self.plan = {}                 # tier name -> phase reported by the sequencer
        self.plan_id = 0               # +1 for every new shutdown or restore plan
        self.forced_tier = None        # a client FSD's tier: the plan starts there
        self.joined = None             # pair: (own plan id, the peer's) when the last join took it
        self.resume_to = ONLINE        # where a cancelled outage returns (ONLINE or RESTORING)
        self.outage_start = None       # when the outage being handled began
        # observations, not persisted (a reboot observes afresh)
        self.on_battery = False
        self._back_since = None        # power back (not on battery) continuously since
        self._good_since = None        # ... and mains within tolerance since
        self._lb_since = None
        self._lb_reported = False
        self._link_ok = True
        self._back_reported = False
        self._charge_reported = False
        self._output_reported = False

    # ---- records --------------------------------------------------------------------------

    def _record(self, rec):
        self._hist[self._hn % len(self._hist)] = rec
        self._hn += 1
        self._new.append(rec)

    def _go(self, now, to, cause, detail=None):
        self._record((now, self.state, to, cause, detail))
        self.state = to
        self.since = now

    def _event(self, now, cause, detail=None):
        self._record((now, self.state, self.state, cause, detail))

    def _begin(self):
        new = self._new
        if new:
            new.clear()  # `del new[:]` would allocate a slice: update() must not allocate
        return new

    def history(self):
        """The kept records, oldest first."""
        n = len(self._hist)
        if self._hn <= n:
            return self._hist[:self._hn]
        i = self._hn % n
        return self._hist[i:] + self._hist[:i]

    # ---- plans ----------------------------------------------------------------------------

    def _outage(self, now, i, ups_known, resume_to):
        self.outage_start = now
        self.resume_to = resume_to
        if i.mains_lost and not i.mains_unconfirmed:
            cause = _MAINS_LOST
        elif ups_known and i.ups_on_battery:
            cause = _UPS_ON_BATTERY
        elif i.mains_outvoted:
            cause = _MAINS_OUTVOTED
        else:
            cause = _MAINS_BAD
        self._go(now, ON_BATTERY, cause)

    def _new_plan(self, drill):
        self.plan_id += 1
        self.plan = {}
        self.forced_tier = None
        self.drill = drill
        self.ponr = False
        self._back_reported = False

    def _shutdown(self, now, cause, cancellable, drill=False):
        self._new_plan(drill)
        self.cancellable = cancellable
        self.shutdown_cause = cause
        self._go(now, SHUTTING_DOWN, cause)

    def _back_to(self, now, to, cause, detail=None):
        """End an outage or a shutdown plan without going through the power cycle."""
        self.outage_start = None
        self.shutdown_cause = None
        self.cancellable = False
        if to == RESTORING:
            self._new_plan(False)  # the sequencer walks the power-on again (health checks)
        else:
            self.plan = {}
            self.drill = False
            self.ponr = False
        self.resume_to = ONLINE
        self._go(now, to, cause, detail)

    def _outage_len(self, now):
        """From the outage's start to the start of the return that ended it."""
        start = self.outage_start
        end = self._back_since
        if start is None:
            return None
        return (now if end is None else end) - start

    def _trigger(self, now, i, ups_known, low, link_lost):
        if low:
            return _LOW_BATTERY
        if link_lost and self.link_lost_shutdown:
            return _LINK_LOST
        if ups_known:
            if i.ups_runtime is not None and i.ups_runtime < self.runtime_floor:
                return _RUNTIME_FLOOR
            if i.ups_charge is not None and i.ups_charge < self.charge_floor:
                return _CHARGE_FLOOR
        start = self.outage_start
        if start is not None and now - start >= self.grace_ms:
            return _GRACE_EXPIRED
        if i.peer_plan_id and self.on_battery:
            return _PEER_PLAN  # the loss is corroborated here: the pair's grace is the peer's
        return None

    def _join(self, now, peer_id):
        """Take the peer's plan id when it is newer: both sentinels then log one id per
        outage (the sequencer follows the rename without restarting its walk)."""
        if peer_id > self.plan_id:
            self.joined = (self.plan_id, peer_id)
            self.plan_id = peer_id
            self._event(now, _PLAN_JOINED, peer_id)

    # ---- the main entry -------------------------------------------------------------------

    def update(self, now, i):
        """Advance to `now` with the latest inputs. Returns this call's records (a list reused
        by the next call: copy it to keep it)."""
        self._begin()
        ups_known = i.ups_link_configured and i.ups_link_ok
        # a pair's sensor reading that the UPS or the peer contradicts does not count
        sensed = i.mains_present and not i.mains_unconfirmed
        lost = (i.mains_lost and not i.mains_unconfirmed) or i.mains_outvoted
        if ups_known:
            ob = lost or i.ups_on_battery
        elif i.mains_outvoted:
            ob = True
        elif sensed:
            ob = lost or not i.mains_good
        elif i.mains_present:
            ob = False  # unconfirmed: the UPS or the peer says mains is fine
        else:
            ob = self.on_battery  # nothing to go by: keep the last belief
        self.on_battery = ob
        back = not ob
        good = back and (i.mains_good or not sensed)
        if back:
            if self._back_since is None:
                self._back_since = now
        else:
            self._back_since = None
        if good:
            if self._good_since is None:
                self._good_since = now
        else:
            self._good_since = None
        mains_back = back and now - self._back_since >= self.return_ms

        # UPS low battery: on battery it counts at once (like upsmon's OB+LB); on line only once
        # it has lasted lb_filter_ms, so a flash during a self-test or a relay bounce is ignored.
        lb = ups_known and i.ups_low_battery
        lb_long = False
        if lb:
            if self._lb_since is None:
                self._lb_since = now
            lb_long = now - self._lb_since >= self.lb_filter_ms
            if lb_long and back and not self._lb_reported:
                self._lb_reported = True
                self._event(now, _LB_ON_LINE, i.ups_charge)
        else:
            if self._lb_since is not None and back and now - self._lb_since < self.lb_filter_ms:
                self._event(now, _LB_FLASH, now - self._lb_since)
            self._lb_since = None
            self._lb_reported = False
        low = lb and (ob or lb_long)

        # A link still waiting for its first reply after boot is not lost: a sentinel that
        # resumes ON_BATTERY must not shut the site down before the UPS had time to answer.
        link_lost = i.ups_link_configured and i.ups_link_known and not i.ups_link_ok
        if i.ups_link_configured and i.ups_link_known and i.ups_link_ok != self._link_ok:
            self._link_ok = i.ups_link_ok
            self._event(now, _LINK_RESTORED if i.ups_link_ok else _LINK_LOST)

        powered_up = i.powered_up
        i.powered_up = False
        cmds = i.commands
        if cmds:
            for c in cmds:
                self._command(now, c)
            cmds.clear()

        st = self.state
        if ob and (st == ONLINE or st == RESTORING or (self.drill and st == SHUTTING_DOWN)):
            resume = ONLINE
            if self.drill:
                # a real outage ends the rehearsal; the outage is then handled for real
                self.drill = False
                self.plan = {}
                self.shutdown_cause = None
                self._event(now, _DRILL_ABORTED)
            elif st == RESTORING:
                resume = RESTORING
            self._outage(now, i, ups_known, resume)

        st = self.state
        if st == ON_BATTERY:
            if mains_back:
                self._back_to(now, self.resume_to, _MAINS_RESTORED, self._outage_len(now))
            else:
                cause = self._trigger(now, i, ups_known, low, link_lost)
                if cause:
                    self._shutdown(now, cause, True)
        elif st == SHUTTING_DOWN:
            if self.drill:
                pass
            elif not self.ponr:
                if self.cancellable and mains_back:
                    self._back_to(now, self.resume_to, _MAINS_RESTORED, self._outage_len(now))
            elif mains_back and not self._back_reported:
                self._back_reported = True  # logged only: the sequence completes regardless
                self._event(now, MAINS_BACK_AFTER_PONR)
        elif st == LOAD_OFF:
            if powered_up or (i.ups_output_off if ups_known else i.peer_output_off):
                # the UPS cut its output: seen on its link or contacts, by the board it powers,
                # or (no UPS link here) by an alive peer's
                self._load_off_done(now)
            elif now - self.since >= self.load_off_ms:
                self._go(now, WAIT_MAINS, _LOAD_OFF_ELAPSED)
                self._charge_reported = False
                self._output_reported = False
        elif st == WAIT_MAINS:
            # counted from entry too: the UPS needs its restore delay after cutting the load
            good_for = now - max(self._good_since, self.since) if self._good_since is not None else -1
            if good_for >= self.stable_ms:
                short = lb or (ups_known and i.ups_charge is not None and i.ups_charge < self.restart_charge)
                dark = ups_known and i.ups_output_off
                if short:
                    if not self._charge_reported:
                        self._charge_reported = True
                        self._event(now, _WAITING_FOR_CHARGE, i.ups_charge)
                elif dark and good_for < self.output_wait_ms:
                    if not self._output_reported:
                        self._output_reported = True
                        self._event(now, _WAITING_FOR_OUTPUT)
                else:
                    if dark:
                        self._event(now, _OUTPUT_WAIT_EXPIRED, good_for)
                    self.outage_start = None
                    self.resume_to = ONLINE
                    self._new_plan(False)
                    self._go(now, RESTORING, _MAINS_STABLE)
        if self.state == SHUTTING_DOWN and not self.drill and i.peer_plan_id > self.plan_id:
            self._join(now, i.peer_plan_id)
        return self._new

    def allowed(self, c):
        """Whether command `c` (see Inputs.commands) would be obeyed now."""
        st = self.state
        if c == "drill":
            return st == ONLINE
        if c == "drill_stop":
            return self.drill
        if c == "shutdown":
            return not self.drill and st in (ONLINE, ON_BATTERY, RESTORING)
        if c == "abort":
            return self.drill or (st == SHUTTING_DOWN and not self.ponr and not self.on_battery
                                  and self.shutdown_cause == _MANUAL)
        return False

    def _command(self, now, c):
        st = self.state
        if isinstance(c, tuple):
            self._client_fsd(now, c[1])
        elif not self.allowed(c):
            self._event(now, REJECTED)
        elif c == "drill":
            self.resume_to = ONLINE
            self._shutdown(now, DRILL, False, True)
        elif c == "shutdown":
            if st != ON_BATTERY:
                self.resume_to = st
            self._shutdown(now, _MANUAL, False)
        elif self.drill:  # "drill_stop", "abort"
            self._back_to(now, ONLINE, _DRILL_ABORTED)
        else:
            self._back_to(now, self.resume_to, _ABORTED)

    def _client_fsd(self, now, tier):
        """A NUT client's FSD on `tier` (the NUT server has already raised it there): an
        operator-forced shutdown of every tier, starting with that one, then the UPS power
        cycle and the power-on, as a console shutdown. It cannot be aborted: the tier's servers
        are already going down. A running real shutdown goes on (no longer cancelled by mains);
        while the load is off the flag waits for the tier's power-on, which clears it."""
        st = self.state
        if self.drill:
            self._back_to(now, ONLINE, _DRILL_ABORTED)  # a rehearsal gives way to the real thing
            st = ONLINE
        if st in (ONLINE, ON_BATTERY, RESTORING):
            if st != ON_BATTERY:
                self.resume_to = st
            self._shutdown(now, CLIENT_FSD, False)
            self.forced_tier = tier
        else:
            self.cancellable = False
            self._event(now, CLIENT_FSD)

    # ---- notifications from the sequencer and the app -------------------------------------

    def _current(self, plan_id):
        return plan_id is None or plan_id == self.plan_id

    def pass_point_of_no_return(self, now, plan_id=None):
        """The sequencer calls this just before its first irreversible act (the first FSD):
        from here a mains return no longer cancels the shutdown."""
        new = self._begin()
        if self.state == SHUTTING_DOWN and not self.drill and not self.ponr and self._current(plan_id):
            self.ponr = True
            self.cancellable = False
            self._event(now, PONR)
        return new

    def tier_progress(self, now, tier, phase, plan_id=None):
        """Record a tier's phase in the persisted plan ("fsd", "down", "timeout", "woken",
        "up"...). A real "fsd" passes the point of no return. Reports for an older plan are
        ignored."""
        new = self._begin()
        if self.state in (SHUTTING_DOWN, RESTORING) and self._current(plan_id):
            self.plan[tier] = phase
            if phase == "fsd" and self.state == SHUTTING_DOWN and not self.drill and not self.ponr:
                self.ponr = True
                self.cancellable = False
                self._event(now, PONR)
        return new

    def sequence_done(self, now, plan_id=None):
        """The sequencer finished the current plan (all tiers down, or all up)."""
        new = self._begin()
        if not self._current(plan_id):
            return new
        if self.state == SHUTTING_DOWN:
            if self.drill:
                self._new_plan(True)
                self._go(now, RESTORING, SEQUENCE_DONE)
            else:
                if not self.ponr:
                    self.ponr = True
                    self.cancellable = False
                    self._event(now, PONR)
                self._go(now, LOAD_OFF, SEQUENCE_DONE)
        elif self.state == RESTORING:
            cause = DRILL_DONE if self.drill else _RESTORE_DONE
            self._back_to(now, ONLINE, cause)
        return new

    def load_off_done(self, now):
        """The UPS has cut its output (or the board rebooted from the power cycle it caused).
        update() decides this itself from its inputs; this entry is for tests and tools."""
        new = self._begin()
        if self.state == LOAD_OFF:
            self._load_off_done(now)
        return new

    def _load_off_done(self, now):
        self._charge_reported = False
        self._output_reported = False
        self._go(now, WAIT_MAINS, _LOAD_OFF_DONE)

    # ---- persistence ----------------------------------------------------------------------

    def to_dict(self, now):
        """The decision and plan progress, JSON-ready; times stored as ages at `now`."""
        return {
            "v": _FORMAT,
            "state": self.state,
            "age_ms": now - self.since,
            "drill": self.drill,
            "ponr": self.ponr,
            "cancellable": self.cancellable,
            "cause": self.shutdown_cause,
            "plan": dict(self.plan),
            "plan_id": self.plan_id,
            "forced_tier": self.forced_tier,
            "resume_to": self.resume_to,
            "outage_age_ms": None if self.outage_start is None else now - self.outage_start,
        }

    @classmethod
    def from_dict(cls, cfg, d, now, elapsed_ms=0, history_len=16):
        """A machine resuming a persisted one at `now` after a reboot. `elapsed_ms` is the time
        the board was down, if the caller knows it (RTC); timers then count it. An unreadable dict
        gives a fresh ONLINE machine with a _RESUME_INVALID event (its next update() sees the
        real power situation within return_stable_ms)."""
        sm = cls(cfg, now, history_len)
        p = _parse(d)
        if p is None:
            sm._event(now, _RESUME_INVALID)
            return sm
        st, resume, plan, oa = p
        sm.state = st
        sm.since = now - d["age_ms"] - elapsed_ms
        sm.drill = bool(d["drill"])
        sm.ponr = bool(d["ponr"])
        sm.cancellable = bool(d["cancellable"])
        sm.shutdown_cause = d["cause"]
        sm.plan = dict(plan)
        sm.plan_id = d["plan_id"]
        ft = d.get("forced_tier")  # absent in what earlier firmware saved
        sm.forced_tier = ft if isinstance(ft, str) else None
        sm.resume_to = resume
        sm.outage_start = None if oa is None else now - oa - elapsed_ms
        sm.on_battery = st == ON_BATTERY
        sm._event(now, _RESUMED, d["age_ms"])
        return sm


def _parse(d):
    """(state, resume_to, plan, outage_age_ms) from a to_dict() result, or None if it is not
    one (a journal from another version, a damaged record)."""
    try:
        st = d["state"]
        resume = d["resume_to"]
        plan = d["plan"]
        oa = d["outage_age_ms"]
        ok = (d["v"] == _FORMAT and st in STATES and resume in (ONLINE, RESTORING)
              and isinstance(plan, dict) and isinstance(d["plan_id"], int)
              and isinstance(d["age_ms"], int) and (oa is None or isinstance(oa, int)))
        if st == ON_BATTERY or (st == SHUTTING_DOWN and d["cancellable"]):
            ok = ok and oa is not None  # timing the outage needs its start
    except (KeyError, TypeError):
        return None
    return (st, resume, plan, oa) if ok else None
