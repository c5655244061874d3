"""Expectations -> verdicts, from what a run recorded (results.RunResult). Pure: no I/O, so the
rules are unit-tested on hand-made results."""
from __future__ import annotations

import re

from .results import POLL_RIG_S, RunResult, Verdict
from .scenario import parse_duration
from .truth import measure

POLL_SLACK_S = 1.5  # wall: upsmon polls every second (POLLFREQALERT 1), the runner every 0.5 s


def judge(res: RunResult):
    out = []
    if res.error:
        out.append(Verdict("run completed", "run", False, res.error))
    for e in res.scenario.expects:
        try:
            ok, detail = RULES[e.kind](res, e.args)
        except Exception as x:  # a rule that cannot decide is a failure, with the reason
            ok, detail = False, "could not evaluate: %s: %s" % (type(x).__name__, x)
        if res.error and ok:
            detail += " (but the run did not complete)"
            ok = False
        out.append(Verdict(e.name, e.kind, bool(ok), detail, tuple(e.needs)))
    return out


def _window(res, a):
    w = a.get("within")
    if w is None:
        return 0.0, float("inf")
    return parse_duration(w[0]), parse_duration(w[1])


def _story(s):
    if s is None:
        return "?"
    if s == float("inf"):
        return "the end"   # an open window
    if abs(s) >= 120:
        return "%dm%02ds" % (int(s // 60), int(s % 60))
    return "%.2fs" % s


def _transitions(res):
    return [(res.story(w), frm, to, cause) for w, frm, to, cause in res.transitions if w >= res.t0]


def r_state(res, a):
    lo, hi = _window(res, a)
    tr = _transitions(res)
    hits = [t for t in tr if t[2] == a["state"] and lo <= t[0] <= hi
            and ("cause" not in a or t[3] == a["cause"])]
    seen = ", ".join("%s %s->%s (%s)" % (_story(t), f, to, c) for t, f, to, c in tr[:12]) or "none"
    if hits:
        return True, "entered %s at %s (%s)" % (a["state"], _story(hits[0][0]), hits[0][3])
    return False, "never entered %s%s in [%s, %s]; transitions: %s" % (
        a["state"], " with cause %s" % a["cause"] if "cause" in a else "", _story(lo), _story(hi), seen)


def r_never(res, a):
    lo, hi = _window(res, a)
    hits = [t for t in _transitions(res) if t[2] == a["state"] and lo <= t[0] <= hi]
    if hits:
        return False, "entered %s at %s (%s)" % (a["state"], _story(hits[0][0]), hits[0][3])
    return True, "never entered %s" % a["state"]


def r_final_state(res, a):
    """The last state seen; of a pair, every board with power must be in it."""
    last = next((s for s in reversed(res.samples) if s.get("state")), {})
    states = {k: v for k, v in (last.get("states") or {}).items() if v is not None}
    if states:
        ok = all(v == a["state"] for v in states.values())
        return ok, "final state " + ", ".join("%s %s" % kv for kv in sorted(states.items()))
    return last.get("state") == a["state"], "final state %s" % last.get("state")


def r_no_shutdown(res, a):
    down = [(h.spec.name, res.story(h.shutdowns[0])) for h in res.hosts if h.shutdowns]
    crashed = [h.spec.name for h in res.hosts if h.crashes]
    if down or crashed:
        return False, "shut down: %s; lost power while running: %s" % (
            ", ".join("%s at %s" % (n, _story(t)) for n, t in down) or "none", ", ".join(crashed) or "none")
    return True, "no host was told to shut down, none lost power"


def _tier_hosts(res, tier, with_upsmon=True, only=None):
    """The tier's hosts (with upsmon unless with_upsmon is false); `only`: of those named
    (an expectation's `hosts`: the servers a lost feed concerns)."""
    return [h for h in res.hosts if h.spec.tier == tier and (h.spec.upsmon or not with_upsmon)
            and (only is None or h.spec.name in only)]


def _state_at(h, wall):
    """The host's state at `wall` (from its history)."""
    st = "up"
    for t, s in h.history:
        if t > wall:
            break
        st = s
    return st


def _was_up(h, lo, hi):
    """The host ran (state "up") at some time in [lo, hi] (wall)."""
    return _state_at(h, lo) == "up" or any(s == "up" and lo <= t <= hi for t, s in h.history)


def r_shutdown_order(res, a):
    """Every host of a tier got SHUTDOWNCMD before any of the next. With `within`, only the
    commands in that window count (a second outage): a host that was not running then (halted,
    booting, off) is skipped; one that ran and got no command fails. With `hosts`, only those
    count (the servers of a lost feed)."""
    order = a["order"]
    win = a.get("within")
    lo, hi = _window(res, a)
    w_lo, w_hi = res.t0 + lo / res.scale, res.t0 + hi / res.scale
    firsts, lasts, detail, skipped = {}, {}, [], []
    for t in order:
        ts, missing = [], []
        for h in _tier_hosts(res, t, only=a.get("hosts")):
            cmds = [x for x in h.shutdowns if win is None or w_lo <= x <= w_hi]
            if cmds:
                ts.append(cmds[0])
            elif win is not None and not _was_up(h, w_lo, w_hi):
                skipped.append(h.spec.name)
            else:
                missing.append(h.spec.name)
        if missing:
            return False, "tier %s: %s %s the shutdown command" % (
                t, ", ".join(missing), "ran but never got" if win is not None else "never got")
        if not ts:
            detail.append("%s: nobody running" % t)
            continue
        firsts[t], lasts[t] = min(ts), max(ts)
        detail.append("%s %s..%s" % (t, _story(res.story(min(ts))), _story(res.story(max(ts)))))
    told = [t for t in order if t in firsts]  # a tier where nobody ran orders nothing
    for a_, b in zip(told, told[1:]):
        if firsts[b] < lasts[a_]:
            return False, "tier %s was told to shut down before tier %s had been: %s" % (
                b, a_, "; ".join(detail))
    if win is not None and not firsts:
        return False, "no shutdown command in [%s, %s]" % (_story(lo), _story(hi))
    return True, "order held: " + "; ".join(detail) + (
        " (not running, skipped: %s)" % ", ".join(skipped) if skipped else "")


def r_tier_wait(res, a):
    """`tier` must wait for `waits_for`: until all its hosts logged out, or, when one of them
    hangs, for exactly waits_for's max_wait, never less. With an explicit `slack` and nobody
    hanging, `tier` must also follow within `slack` (wall) of the last halt: nothing (a host
    that never connected, say) may hold the sequence up."""
    tier, prev = a["tier"], a["waits_for"]
    cfg_t = {t["name"]: t for t in res.config.get("tiers", [])}
    max_wait = cfg_t[prev]["max_wait_s"]  # wall seconds, as configured on the device
    slack = parse_duration(a.get("slack", "5s"))
    ph = _tier_hosts(res, prev)
    th = _tier_hosts(res, tier)
    p_cmd = [h.shutdowns[0] for h in ph if h.shutdowns]
    t_cmd = [h.shutdowns[0] for h in th if h.shutdowns]
    if not p_cmd or not t_cmd:
        return False, "no shutdown seen in %s" % (prev if not p_cmd else tier)
    start, nxt = min(p_cmd), min(t_cmd)
    gap = nxt - start
    hung = [h for h in ph if h.spec.hang_on_shutdown]
    if hung:
        ok = max_wait - POLL_SLACK_S <= gap <= max_wait + slack
        return ok, "%s waited %.1f s (wall) after %s's FSD; %s hangs; max_wait %d s (allowed %.1f..%.1f)" % (
            tier, gap, prev, hung[0].spec.name, max_wait, max_wait - POLL_SLACK_S, max_wait + slack)
    # each host's first halt after its first SHUTDOWNCMD (it halts again, later, when its power
    # returns and it waits for its magic packet)
    halted = []
    for h in ph:
        t_h = None
        if h.shutdowns:
            t_h = next((t for (t, s) in h.history if s == "halted" and t >= h.shutdowns[0]), None)
        if t_h is None:
            return False, "%s (%s) never halted after a shutdown command, yet %s was told at %s" % (
                h.spec.name, prev, tier, _story(res.story(nxt)))
        halted.append(t_h)
    last_down = max(halted) if halted else None
    ok = last_down is not None and nxt >= last_down - POLL_SLACK_S
    late = ""
    if ok and last_down is not None and "slack" in a and nxt > last_down + slack:
        # nobody hung: the tier should have followed at once (upsmon's own poll aside)
        ok = False
        late = "; %.1f s (wall) later, more than the slack %.1f s" % (nxt - last_down, slack)
    return ok, "%s's hosts were down at %s, %s told at %s%s" % (
        prev, _story(res.story(last_down)) if last_down else "never", tier, _story(res.story(nxt)),
        late)


def _truth_for(stim, mains_cfg):
    f = float(mains_cfg.get("nominal_hz", 50))
    rate = float(mains_cfg.get("sample_rate", 4000))
    dur = stim["duration_s"]
    if stim.get("samples_on") is not None and stim.get("samples_off") is not None:
        # whole cycles the rig really played (start and end phases are exact; only the count of
        # cycles depends on when the end command arrived)
        measured = (stim["samples_off"] - stim["samples_on"]) / rate
        k = round((measured - dur) * f)
        if k:
            stim["note"] = "the rig played %+d cycle(s) off the programmed %.3f s" % (k, dur)
        dur = dur + k / f
    stim["played_s"] = dur
    return measure(stim["level"], dur, stim["phase"], mains_cfg)


def r_mains_events(res, a):
    typ = a["type"]
    evs = [e for _, e in res.mains_events if typ == "any" or e.get("type") == typ]
    msgs = []
    ok = True
    if "count" in a and len(evs) != a["count"]:
        ok = False
        msgs.append("%d %s event(s) reported, expected %d" % (len(evs), typ, a["count"]))
    else:
        msgs.append("%d %s event(s) reported" % (len(evs), typ))
    if a.get("match_truth", False):
        mcfg = res.config.get("mains", {})
        half = 0.5 / float(mcfg.get("nominal_hz", 50))
        pool = [e for _, e in res.mains_events]
        for st in res.stimuli:
            if st.get("error"):
                ok = False
                msgs.append("%s at phase %g: %s" % (st["kind"], st["phase"], st["error"]))
                continue
            tr = _truth_for(st, mcfg)
            st["truth"] = tr
            if tr is None:
                msgs.append("%s %.3f s: the host analysis finds no event (none expected)" % (
                    st["kind"], st["duration_s"]))
                continue
            cands = [e for e in pool if e.get("duration_ms") is not None]
            if not cands:
                ok = False
                msgs.append("%s %.3f s @%g deg: no device event (analysis: %s %.4f s)" % (
                    st["kind"], st["duration_s"], st["phase"], tr["type"], tr["duration_s"]))
                continue
            best = min(cands, key=lambda e: abs(e["duration_ms"] / 1000.0 - tr["duration_s"]))
            pool.remove(best)
            err = best["duration_ms"] / 1000.0 - tr["duration_s"]
            st["device"] = best
            good = abs(err) <= half
            ok = ok and good
            msgs.append("%s %.3f s @%g deg: device %s %d ms, analysis %.1f ms, error %+.1f ms %s" % (
                st["kind"], st["duration_s"], st["phase"], best.get("type"), best["duration_ms"],
                tr["duration_s"] * 1000, err * 1000, "ok" if good else "> half cycle"))
    return ok, "; ".join(msgs)


def _ups_commands(res, a):
    """(wall, command) the UPS received: the first UPS's, or with `feed` that feed's UPS's
    (one UPS per feed)."""
    if "feed" in a:
        return [(w, c) for w, f, c in res.feed_ups_commands if f == a["feed"]]
    return res.ups_commands


def _ups_name(a):
    return "UPS %s" % a["feed"] if "feed" in a else "UPS"


def r_ups_command(res, a):
    lo, hi = _window(res, a)
    cmds = _ups_commands(res, a)
    hits = [(w, c) for w, c in cmds if re.search(a["pattern"], c) and lo <= res.story(w) <= hi]
    seen = ", ".join(c for _, c in cmds) or "none"
    if hits:
        return True, "%s got %s at %s" % (_ups_name(a), hits[0][1], _story(res.story(hits[0][0])))
    return False, "no %s command matching /%s/; commands seen: %s" % (_ups_name(a), a["pattern"],
                                                                      seen)


def r_no_ups_command(res, a):
    hits = [c for _, c in _ups_commands(res, a) if re.search(a["pattern"], c)]
    return not hits, ("%s got %s" % (_ups_name(a), ", ".join(hits))) if hits else \
        "no such command sent"


def _boot_starts(h):
    return [t for t, s in h.history if s == "booting"]


def r_restore_order(res, a):
    order = a["order"]
    detail = []
    up_last, boot_first = {}, {}
    for t in order:
        # the hosts the sentinel powers on: those in its plan (with `hosts`: of those)
        hs = [h for h in _tier_hosts(res, t, with_upsmon=False, only=a.get("hosts"))
              if h.spec.in_plan]
        ups = [h.ups_at[-1] for h in hs if h.ups_at]
        boots = [_boot_starts(h)[-1] for h in hs if _boot_starts(h)]
        missing = [h.spec.name for h in hs if not h.ups_at]
        if missing:
            return False, "tier %s: %s never came back up" % (t, ", ".join(missing))
        up_last[t], boot_first[t] = max(ups), min(boots)
        detail.append("%s booted %s, up %s" % (t, _story(res.story(min(boots))), _story(res.story(max(ups)))))
    for x, y in zip(order, order[1:]):
        if boot_first[y] < up_last[x]:
            return False, "tier %s started before tier %s was healthy: %s" % (y, x, "; ".join(detail))
    return True, "; ".join(detail)


def _mains_back(res):
    """Wall time of the last return of mains (rig level back to >= 0.9) after an outage."""
    prev, back = None, None
    for s in res.samples:
        lv = s.get("mains_level")
        if lv is None:
            continue
        if prev is not None and prev < 0.9 <= lv:
            back = s["wall"]
        prev = lv
    return back


def r_all_healthy(res, a):
    lo, hi = _window(res, a)
    expected = [h for h in res.hosts if h.spec.in_plan]
    not_up = [h.spec.name for h in expected if h.state != "up"]
    last_up = max((h.ups_at[-1] for h in expected if h.ups_at), default=None)
    back = _mains_back(res)
    if back is not None and last_up is not None and last_up >= back:
        res.metrics["mains_return_to_all_healthy_wall_s"] = round(last_up - back, 2)
        res.metrics["mains_return_to_all_healthy_story_s"] = round((last_up - back) * res.scale, 1)
    if not_up:
        return False, "not healthy at the end: %s" % ", ".join(not_up)
    if last_up is not None and not (lo <= res.story(last_up) <= hi):
        return False, "all healthy only at %s, outside [%s, %s]" % (
            _story(res.story(last_up)), _story(lo), _story(hi))
    m = res.metrics.get("mains_return_to_all_healthy_story_s")
    return True, "every host healthy%s" % (
        "; mains return -> all healthy: %s story (%.1f s wall)" % (
            _story(m), res.metrics["mains_return_to_all_healthy_wall_s"]) if m is not None else "")


def r_no_restore_before(res, a):
    c = a["condition"]
    tol = float(c.get("frequency_within", 1.0))
    stable = parse_duration(c.get("stable_for", "0s"))
    nominal = float(res.config.get("mains", {}).get("nominal_hz", 50))
    ok_since, ready = None, None
    for s in res.samples:
        good = (s.get("mains_level") or 0) >= 0.9 and s.get("frequency") is not None \
            and abs(s["frequency"] - nominal) <= tol
        if good:
            ok_since = s["wall"] if ok_since is None else ok_since
            if ready is None and res.story(s["wall"]) - res.story(ok_since) >= stable:
                ready = ok_since + stable / res.scale
        else:
            ok_since, ready = None, None
    restores = [w for w, f, to, c_ in res.transitions if to == "RESTORING" and w >= res.t0]
    if not restores:
        return True, "no restore at all"
    early = [w for w in restores if ready is None or w < ready - POLL_SLACK_S]
    if early:
        return False, "RESTORING at %s, before mains was in tolerance and stable (%s)" % (
            _story(res.story(early[0])), "ready at %s" % _story(res.story(ready)) if ready else "never ready")
    return True, "first restore at %s, mains ready at %s" % (
        _story(res.story(restores[0])), _story(res.story(ready)))


def r_restore_when_powered(res, a):
    """Every power-on began with the UPS output on: the first rig reading taken after the
    RESTORING transition (runner polls the rig every POLL_RIG_S) shows the output on."""
    restores = [w for w, f, to, c_ in res.transitions if to == "RESTORING" and w >= res.t0]
    if not restores:
        return False, "no power-on at all"
    for w in restores:
        after = [s for s in res.samples if s["wall"] >= w + POLL_RIG_S + 0.05
                 and s.get("output_on") is not None]
        if after and after[0]["output_on"] is False:
            return False, "RESTORING at %s while the UPS output was off (still off at %s)" % (
                _story(res.story(w)), _story(res.story(after[0]["wall"])))
    return True, "%d power-on(s), each with the UPS output on (first at %s)" % (
        len(restores), _story(res.story(restores[0])))


def r_audit(res, a):
    """The board's status listed the host as missing (or its address as unknown) in the window;
    with flagged = false, it never did (no false alarm)."""
    lo, hi = _window(res, a)
    name = a["host"]
    want = a.get("flagged", True)
    h = next(x for x in res.hosts if x.spec.name == name)
    for w, tier, miss, unk in res.audit:
        if lo <= res.story(w) <= hi and (name in miss or h.addr in unk):
            return want, "flagged at %s in tier %s (%s)" % (
                _story(res.story(w)), tier, "missing" if name in miss else "unknown address %s" % h.addr)
    return not want, "the board's status never listed %s (%s) as missing or unknown in [%s, %s]" % (
        name, h.addr, _story(lo), _story(hi))


def r_host_survived(res, a):
    h = next(x for x in res.hosts if x.spec.name == a["host"])
    if h.crashes:
        return False, "%s lost power while running at %s" % (h.spec.name, _story(res.story(h.crashes[0])))
    return True, "%s never lost power while running" % h.spec.name


def r_stays_down(res, a):
    """Every host of the tier stays down (halted or off) all through the window: it was not
    running at its start, got no magic packet and did not boot during it."""
    lo, hi = _window(res, a)
    w_lo, w_hi = res.t0 + lo / res.scale, res.t0 + min(hi, res.story(res.t_end)) / res.scale
    bad = []
    for h in _tier_hosts(res, a["tier"], with_upsmon=False):
        st = _state_at(h, w_lo)
        if st not in ("halted", "off"):
            bad.append("%s was %s at %s" % (h.spec.name, st, _story(lo)))
            continue
        moved = [(t, s) for t, s in h.history if w_lo < t <= w_hi and s not in ("halted", "off")]
        woken = [t for t in h.wol if w_lo < t <= w_hi]
        if moved:
            bad.append("%s %s at %s" % (h.spec.name, moved[0][1], _story(res.story(moved[0][0]))))
        elif woken:
            bad.append("%s got a magic packet at %s" % (h.spec.name, _story(res.story(woken[0]))))
    if bad:
        return False, "; ".join(bad)
    return True, "tier %s stayed down from %s to %s" % (a["tier"], _story(lo), _story(
        min(hi, res.story(res.t_end))))


def r_board_reboots(res, a):
    """The board restarted exactly `count` times during the story (the stimulus happened, and
    nothing else reset it: no watchdog, no crash)."""
    resets = [(w, c) for w, c in res.resets if w >= res.t0]
    desc = ", ".join("%s at %s" % (c, _story(res.story(w))) for w, c in resets) or "none"
    return len(resets) == a["count"], "%d restart(s): %s" % (len(resets), desc)


def r_load_offs(res, a):
    """At most `max` load-off commands (`pattern`, default: any S.. shutdown) reached the UPS,
    counted over every UPS link (both boards of a pair)."""
    pat = a.get("pattern", r"^S")
    hits = [(w, c) for w, c in _ups_commands(res, a) if re.search(pat, c)]
    desc = ", ".join("%s at %s" % (c, _story(res.story(w))) for w, c in hits) or "none"
    return len(hits) <= a["max"], "%d load-off command(s)%s: %s" % (
        len(hits), " to UPS %s" % a["feed"] if "feed" in a else "", desc)


def r_load_off_after_down(res, a):
    """The first load-off command (`pattern`, default ^S) reached the UPS only once every host
    told to shut down before it had halted: the UPS's own shutdown delay must not be what
    saves a host. A command is stamped when the runner saw it (up to POLL_STATUS_S late), so
    one stamped before a halt certainly went out before it."""
    pat = a.get("pattern", r"^S")
    cmds = [w for w, c in res.ups_commands if re.search(pat, c)]
    if not cmds:
        return False, "no load-off command"
    first = cmds[0]
    early = []
    for h in res.hosts:
        told = [t for t in h.shutdowns if t <= first]
        if not told:
            continue
        halt = next((t for t, st in h.history if st in ("halted", "off") and t >= told[0]), None)
        if halt is None or halt > first:
            early.append("%s (told %s, %s)" % (h.spec.name, _story(res.story(told[0])),
                                               "halted %s" % _story(res.story(halt))
                                               if halt else "never halted"))
    if early:
        return False, "load-off at %s before these were down: %s" % (
            _story(res.story(first)), "; ".join(early))
    return True, "load-off at %s, every host told before it was down" % _story(res.story(first))


def _mains_at(res, wall):
    """The rig's mains level at `wall` (the last sample before it)."""
    lv = None
    for s in res.samples:
        if s["wall"] > wall:
            break
        if s.get("mains_level") is not None:
            lv = s["mains_level"]
    return lv


def r_no_shutdown_on_mains(res, a):
    """No host was told to shut down while mains was on (the rig's level >= 0.9)."""
    bad = []
    for h in res.hosts:
        for t in h.shutdowns:
            lv = _mains_at(res, t)
            if lv is None or lv >= 0.9:
                bad.append("%s at %s (mains %s)" % (h.spec.name, _story(res.story(t)), lv))
    if bad:
        return False, "shut down while mains was on: " + "; ".join(bad)
    n = sum(len(h.shutdowns) for h in res.hosts)
    return True, "%d shutdown command(s), none while mains was on" % n


def r_every_host_down(res, a):
    """Every host running upsmon in the plan got its shutdown command and halted before its
    power went (the battery did not run out under it): no crash."""
    bad = []
    for h in res.hosts:
        if not (h.spec.upsmon and h.spec.in_plan):
            continue
        if h.crashes:
            bad.append("%s lost power while running at %s" % (h.spec.name,
                                                              _story(res.story(h.crashes[0]))))
        elif not h.shutdowns:
            bad.append("%s never got a shutdown command" % h.spec.name)
    if bad:
        return False, "; ".join(bad)
    last = max(h.shutdowns[0] for h in res.hosts if h.spec.upsmon and h.spec.in_plan)
    return True, "every host shut down cleanly (last told at %s)" % _story(res.story(last))


def r_pair_alarm(res, a):
    """Board `board` showed the alarm `text` (regex, default "redundancy lost") in its console
    status and over NUT (ALARM in ups.status, the text in ups.alarm) at one status poll in the
    window. Records the delay from the last kill/partition/sensor action before it."""
    lo, hi = _window(res, a)
    pat = a.get("text", "redundancy lost")
    seen = []
    for w, side, txt, nst, nal in res.alarms:
        if side != a["board"] or not lo <= res.story(w) <= hi:
            continue
        console_ok = re.search(pat, txt or "") is not None
        nut_ok = "ALARM" in (nst or "").split() and re.search(pat, nal or "") is not None
        if console_ok or nut_ok:
            seen.append((w, console_ok, nut_ok))
        if console_ok and nut_ok:
            cause = [x for x in res.pair_actions if x[0] <= w]
            extra = ""
            if cause:
                d = w - cause[-1][0]
                res.metrics["alarm_after_%s_%s_wall_s" % (cause[-1][1], cause[-1][2] or "link")] = \
                    round(d, 2)
                extra = ", %.1f s (wall) after %s %s" % (d, cause[-1][1], cause[-1][2] or "")
            return True, "%s showed /%s/ at %s: console %r, NUT status %r alarm %r%s" % (
                a["board"], pat, _story(res.story(w)), txt, nst, nal, extra)
    half = ", ".join("%s console=%s nut=%s" % (_story(res.story(w)), c, n) for w, c, n in seen[:4])
    win = " in [%s, %s]" % (_story(lo), _story(hi)) if "within" in a else ""
    return False, "%s never showed /%s/ on both its console and NUT%s%s" % (
        a["board"], pat, win, "; partly: " + half if half else "")


def r_one_plan(res, a):
    """A pair ran one plan: at every status poll where both boards answered in SHUTTING_DOWN,
    after the first `slack` (wall, default 2 s: a heartbeat and a poll) of that overlap, both
    showed the same plan id. Fails when the two were never in SHUTTING_DOWN together."""
    slack = parse_duration(a.get("slack", "2s"))
    both = 0
    since = None
    ids = set()
    for s in res.samples:
        st = s.get("states") or {}
        pl = s.get("plans") or {}
        if not (st.get("a") == st.get("b") == "SHUTTING_DOWN"
                and None not in (pl.get("a"), pl.get("b"))):
            since = None
            continue
        if since is None:
            since = s["wall"]
        both += 1
        if pl["a"] != pl["b"] and s["wall"] - since > slack:
            return False, "A on plan %s, B on plan %s at %s, %.1f s (wall) into the overlap" % (
                pl["a"], pl["b"], _story(res.story(s["wall"])), s["wall"] - since)
        if pl["a"] == pl["b"]:
            ids.add(pl["a"])
    if not both:
        return False, "the two boards were never in SHUTTING_DOWN at the same poll"
    return True, "both on plan %s over %d polls in SHUTTING_DOWN together" % (
        "/".join(str(i) for i in sorted(ids)) or "?", both)


def r_stays_up(res, a):
    """Each of `hosts` ran all through the story: never told to shut down, never lost power
    (a dual-corded server when one feed is lost)."""
    bad = []
    for name in a["hosts"]:
        h = next(x for x in res.hosts if x.spec.name == name)
        if h.shutdowns:
            bad.append("%s told to shut down at %s" % (name, _story(res.story(h.shutdowns[0]))))
        if h.crashes:
            bad.append("%s lost power at %s" % (name, _story(res.story(h.crashes[0]))))
        if h.state != "up":
            bad.append("%s %s at the end" % (name, h.state))
    if bad:
        return False, "; ".join(bad)
    return True, "%s up all along" % ", ".join(a["hosts"])


def r_alarm(res, a):
    """The board's NUT server served ALARM in ups.status with `text` (regex, default
    "redundancy lost") in ups.alarm at a status poll in `within`; with `cleared`, a later
    poll in that window served ups.status without ALARM."""
    lo, hi = _window(res, a)
    pat = a.get("text", "redundancy lost")
    polls = [(w, nst, nal) for w, side, _txt, nst, nal in res.alarms if side == "a"
             and nst is not None]
    up = next(((w, nst, nal) for w, nst, nal in polls if lo <= res.story(w) <= hi
               and "ALARM" in nst.split() and re.search(pat, nal or "")), None)
    if up is None:
        seen = sorted({"%r/%r" % (nst, nal) for _w, nst, nal in polls if "ALARM" in nst.split()})
        return False, "NUT never served ALARM with /%s/ in [%s, %s] (%d polls; alarms seen: %s)" % (
            pat, _story(lo), _story(hi), len(polls), ", ".join(seen[:4]) or "none")
    w_up = up[0]
    detail = "raised at %s: ups.status %r, ups.alarm %r" % (_story(res.story(w_up)), up[1], up[2])
    if "cleared" not in a:
        return True, detail
    c_lo, c_hi = parse_duration(a["cleared"][0]), parse_duration(a["cleared"][1])
    down = next((w for w, nst, _nal in polls if w > w_up and c_lo <= res.story(w) <= c_hi
                 and "ALARM" not in nst.split()), None)
    if down is None:
        return False, "%s; not cleared in [%s, %s]" % (detail, _story(c_lo), _story(c_hi))
    return True, "%s; cleared at %s" % (detail, _story(res.story(down)))


def r_ups_restored(res, a):
    """The UPS's output (with `feed`, that feed's UPS's) went off and was on again, back on
    within `within` when given: the load cut and restored."""
    lo, hi = _window(res, a)
    off = on = None
    for s in res.samples:
        v = (s.get("outputs") or {}).get(a["feed"]) if "feed" in a else s.get("output_on")
        if v is False and off is None:
            off = s["wall"]
        elif v is True and off is not None:
            on = s["wall"]
            break
    if off is None:
        return False, "%s never cut its output" % _ups_name(a)
    if on is None:
        return False, "%s cut its output at %s, never restored it" % (_ups_name(a),
                                                                      _story(res.story(off)))
    ok = lo <= res.story(on) <= hi
    return ok, "%s output off at %s, on again at %s%s" % (
        _ups_name(a), _story(res.story(off)), _story(res.story(on)),
        "" if ok else ", outside [%s, %s]" % (_story(lo), _story(hi)))


RULES = {"state": r_state, "never": r_never, "final_state": r_final_state,
         "no_shutdown": r_no_shutdown, "shutdown_order": r_shutdown_order,
         "tier_wait": r_tier_wait, "mains_events": r_mains_events, "ups_command": r_ups_command,
         "no_ups_command": r_no_ups_command, "restore_order": r_restore_order,
         "all_healthy": r_all_healthy, "no_restore_before": r_no_restore_before,
         "restore_when_powered": r_restore_when_powered,
         "audit": r_audit, "host_survived": r_host_survived, "stays_down": r_stays_down,
         "board_reboots": r_board_reboots, "load_offs": r_load_offs,
         "no_shutdown_on_mains": r_no_shutdown_on_mains, "every_host_down": r_every_host_down,
         "pair_alarm": r_pair_alarm, "load_off_after_down": r_load_off_after_down,
         "stays_up": r_stays_up, "alarm": r_alarm, "one_plan": r_one_plan, "ups_restored": r_ups_restored}
