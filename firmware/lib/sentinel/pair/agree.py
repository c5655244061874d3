"""Plan agreement in a pair: the two sentinels run one plan per outage, whichever acts.

Each heartbeat carries the sender's plan id, how many tiers of its walk are finished, and in
its flags whether it runs a real shutdown plan (REAL_PLAN) and has raised FSD on its next tier
(NEXT_FSD). The control step hands the peer's plan id to the state machine
(Inputs.peer_plan_id): a sentinel on battery joins a peer already shutting down at once, and a
plan takes the newer of the two ids. Then, before each shutdown step of a plan with the peer's
id, this sentinel's walk catches up with the peer's:

- a tier the peer has finished counts as done here (`tier_done` with `by` "peer"), its FSD
  raised, unless one of its servers is still logged in here: that tier is waited for as this
  sentinel's own walk does (up to max_wait_s), so a server that reaches only this sentinel
  still sees tier order;
- the tier the peer has raised FSD on gets it here at once, without waiting its delay_s again.

A walk only ever moves forward: nothing the peer did is replayed here, and nothing done here is
undone. A sentinel back from a reboot mid-plan resumes its saved plan (the same id once joined)
and catches up from the peer's first frame.
"""
from sentinel.coverage import logged_in_addrs
from sentinel.pair.peer import ALIVE
from sentinel.seqstate import DONE, FSD, MODE_SHUTDOWN

REAL_PLAN = 4        # frame flags bit 2: the sender runs a real (not drill) shutdown plan
NEXT_FSD = 8         # frame flags bit 3: ... and has raised FSD on the tier after its done ones
_SHUTTING_DOWN = 2   # frame.STATES code


def peer_plan(link):
    """The alive peer's last Message while it runs a real shutdown plan, else None."""
    p = link.peer
    if p.state != ALIVE:
        return None
    m = p.msg
    if m is not None and m.state == _SHUTTING_DOWN and m.flags & REAL_PLAN:
        return m
    return None


def plan_flags(sm, seq):
    """This sentinel's REAL_PLAN and NEXT_FSD bits for its frames."""
    if sm.state != "SHUTTING_DOWN" or sm.drill:
        return 0
    f = REAL_PLAN
    if seq.mode == MODE_SHUTDOWN and seq.pos < len(seq.order):
        if seq.tiers[seq.order[seq.pos]].t_act is not None:
            f |= NEXT_FSD
    return f


def agreement(link):
    """Sequencer.agree for a pair: (seq, now, sm), called before each real shutdown step."""
    def agree(seq, now, sm):
        m = peer_plan(link)
        if m is not None and m.plan_id == seq.plan_id and seq.mode == MODE_SHUTDOWN:
            catch_up(seq, now, sm, m.tiers_done, bool(m.flags & NEXT_FSD))
    return agree


def catch_up(seq, now, sm, done, next_fsd):
    """Move seq's walk forward to the peer's: `done` tiers of the walk finished there, and with
    next_fsd the FSD raised on the one after. Records go through seq's list (seq.step returns
    them)."""
    order = seq.order
    n = len(order)
    pid = seq.plan_id
    while seq.pos < n and seq.pos < done:
        t = seq.tiers[order[seq.pos]]
        if logged_in_addrs(seq.nut, t.name):
            return  # its servers are still logged in here: wait for them
        if t.t_act is None:
            # report first, as the walk does: the first FSD passes the point of no return
            seq._sm(sm.tier_progress(now, t.name, FSD, pid))
            if sm.state != "SHUTTING_DOWN" or sm.plan_id != pid:
                return
            seq._fsd(t.name, True)
            t.t_act = now
            if t.t_start is None:
                t.t_start = now
        t.t_end = now
        seq._set_phase(t, DONE)
        seq._log("tier_done", {"plan": pid, "tier": t.name, "by": "peer",
                               "took_ms": now - t.t_act}, now, True)
        seq._sm(sm.tier_progress(now, t.name, DONE, pid))
        seq.pos += 1
        seq.dirty = True
    if next_fsd and seq.pos == done and seq.pos < n:
        t = seq.tiers[order[seq.pos]]
        if t.t_act is None and (t.t_start is None or now - t.t_start < t.delay_ms):
            # its delay_s ran at the peer: the walk raises its FSD at this step
            t.t_start = now - t.delay_ms
            seq.dirty = True
            seq._log("pair_follow", {"plan": pid, "tier": t.name}, now)
