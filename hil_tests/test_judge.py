"""Judge rules on hand-made run results (no board, no upsmon): the rules the resilience
scenarios rely on must say no when they should."""
from types import SimpleNamespace

from powersentinel.bench.judge import RULES
from powersentinel.bench.results import RunResult
from powersentinel.bench.runner import _new_tail
from powersentinel.bench.scenario import Host

T0 = 1000.0  # wall time of story 0; scale 1 keeps story == wall - T0


def _host(name, tier, history, shutdowns=(), wol=(), upsmon=True, in_plan=True, hang=False):
    spec = Host(name=name, tier=tier, upsmon=upsmon, in_plan=in_plan, hang_on_shutdown=hang)
    h = SimpleNamespace(spec=spec, addr="127.0.0.%d" % (20 + len(name)), state=history[-1][1],
                        history=[(T0 + t, s) for t, s in history],
                        shutdowns=[T0 + t for t in shutdowns], wol=[T0 + t for t in wol],
                        ups_at=[T0 + t for t, s in history if s == "up" and t > 0], crashes=[])
    return h


def _res(hosts, **kw):
    r = RunResult(scenario=None, scale=1.0)
    r.t0, r.t_end = T0, T0 + 100
    r.hosts = hosts
    r.config = {"tiers": [{"name": "apps", "max_wait_s": 10}, {"name": "db", "max_wait_s": 10},
                          {"name": "storage", "max_wait_s": 10}]}
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def _rule(kind, res, **args):
    return RULES[kind](res, args)


def test_shutdown_order_within_a_window_counts_only_that_outage():
    apps = _host("web1", "apps", [(0, "up"), (10, "stopping"), (12, "halted"), (40, "booting")],
                 shutdowns=[10])  # never up again in the second outage
    db = _host("db1", "db", [(0, "up"), (14, "stopping"), (16, "halted"), (30, "booting"),
                             (35, "up"), (61, "stopping"), (63, "halted")], shutdowns=[14, 60])
    st = _host("nas1", "storage", [(0, "up"), (18, "stopping"), (20, "halted"), (25, "booting"),
                                   (28, "up"), (66, "stopping"), (68, "halted")],
               shutdowns=[18, 65])
    res = _res([apps, db, st])
    ok, why = _rule("shutdown_order", res, order=["apps", "db", "storage"])
    assert ok, why
    ok, why = _rule("shutdown_order", res, order=["apps", "db", "storage"], within=["50s", "90s"])
    assert ok and "skipped: web1" in why, why
    # storage told before the databases in the second outage
    st.shutdowns[1] = T0 + 59
    ok, why = _rule("shutdown_order", res, order=["apps", "db", "storage"], within=["50s", "90s"])
    assert not ok and "before tier db" in why, why
    # a host running in the window and never told is a failure, not a skip
    st.shutdowns[1:] = []
    ok, why = _rule("shutdown_order", res, order=["apps", "db", "storage"], within=["50s", "90s"])
    assert not ok and "nas1 ran but never got" in why, why


def test_shutdown_order_checks_across_a_skipped_tier():
    apps = _host("web1", "apps", [(0, "up"), (55, "stopping")], shutdowns=[55])
    db = _host("db1", "db", [(0, "halted")])
    st = _host("nas1", "storage", [(0, "up"), (52, "stopping")], shutdowns=[52])
    ok, why = _rule("shutdown_order", _res([apps, db, st]), order=["apps", "db", "storage"],
                    within=["50s", "90s"])
    assert not ok and "storage was told" in why, why


def test_tier_wait_uses_the_halt_after_the_shutdown_not_a_later_one():
    apps = _host("web1", "apps", [(0, "up"), (10, "stopping"), (12, "halted"), (30, "off"),
                                  (50, "halted")], shutdowns=[10])
    db = _host("db1", "db", [(0, "up"), (13, "stopping")], shutdowns=[13])
    ok, why = _rule("tier_wait", _res([apps, db]), tier="db", waits_for="apps")
    assert ok, why
    db.shutdowns = [T0 + 5]  # told while the apps were still running
    ok, why = _rule("tier_wait", _res([apps, db]), tier="db", waits_for="apps")
    assert not ok, why


def test_tier_wait_slack_catches_a_sequence_held_up():
    apps = _host("web1", "apps", [(0, "up"), (10, "stopping"), (12, "halted")], shutdowns=[10])
    db = _host("db1", "db", [(0, "up"), (21, "stopping")], shutdowns=[20])
    ok, why = _rule("tier_wait", _res([apps, db]), tier="db", waits_for="apps")
    assert ok, why                        # without slack: late is allowed
    ok, why = _rule("tier_wait", _res([apps, db]), tier="db", waits_for="apps", slack="2s")
    assert not ok and "more than the slack" in why, why


def test_stays_down():
    web = _host("web1", "apps", [(0, "up"), (10, "stopping"), (12, "halted"), (30, "off"),
                                 (60, "halted"), (80, "booting")], wol=[80])
    res = _res([web])
    ok, why = _rule("stays_down", res, tier="apps", within=["20s", "70s"])
    assert ok, why
    ok, why = _rule("stays_down", res, tier="apps", within=["20s", "90s"])
    assert not ok and "booting" in why, why
    ok, why = _rule("stays_down", res, tier="apps", within=["5s", "70s"])
    assert not ok and "was up" in why, why
    web.wol.append(T0 + 65)  # a magic packet alone (say it missed) is a failure too
    ok, why = _rule("stays_down", res, tier="apps", within=["20s", "70s"])
    assert not ok and "magic packet" in why, why


def test_board_reboots_counts_only_the_story():
    res = _res([], resets=[(T0 - 5, "power_on"), (T0 + 30, "hard")])
    assert _rule("board_reboots", res, count=1)[0]
    res.resets.append((T0 + 40, "wdt"))
    ok, why = _rule("board_reboots", res, count=1)
    assert not ok and "wdt" in why, why


def test_audit_flagged_and_no_false_alarm():
    ghost = _host("ghost1", "apps", [(0, "up")], upsmon=False)
    web = _host("web1", "apps", [(0, "up")])
    res = _res([ghost, web], audit=[(T0 + 1, "apps", ["ghost1", "web1"], []),
                                   (T0 + 5, "apps", ["ghost1"], [])])
    assert _rule("audit", res, host="ghost1", within=["0s", "10s"])[0]
    assert _rule("audit", res, host="web1", within=["3s", "10s"], flagged=False)[0]
    ok, why = _rule("audit", res, host="web1", within=["0s", "10s"], flagged=False)
    assert not ok and "missing" in why, why


def test_repeated_ups_commands_are_counted_each_time():
    assert _new_tail([], ["S01R0001"]) == ["S01R0001"]
    assert _new_tail(["S01R0001"], ["S01R0001"]) == []
    assert _new_tail(["S01R0001"], ["S01R0001", "S01R0001"]) == ["S01R0001"]
    # the simulator keeps the last 10: the window slides
    prev = ["C"] + ["S01R0001"] * 9
    assert _new_tail(prev, ["S01R0001"] * 9 + ["C"]) == ["C"]


def test_restore_when_powered_says_no_to_a_power_on_in_the_dark():
    samples = [{"wall": T0 + t / 4, "output_on": t / 4 >= 50} for t in range(0, 400)]
    res = _res([], samples=samples, transitions=[(T0 + 51, "WAIT_MAINS", "RESTORING", "mains_stable")])
    ok, why = _rule("restore_when_powered", res)
    assert ok, why
    res.transitions = [(T0 + 40, "WAIT_MAINS", "RESTORING", "mains_stable")]
    ok, why = _rule("restore_when_powered", res)
    assert not ok and "output was off" in why, why
    res.transitions = []
    ok, why = _rule("restore_when_powered", res)
    assert not ok and "no power-on" in why, why


# ---- a pair's rules -------------------------------------------------------------------------

def test_load_offs_counts_every_link_and_says_no_above_max():
    res = _res([], ups_commands=[(T0 + 5, "S01R0001"), (T0 + 5.2, "Q1"), (T0 + 6, "S01R0001")])
    ok, why = _rule("load_offs", res, max=1)
    assert not ok and "2 load-off" in why, why
    res.ups_commands = res.ups_commands[:2]
    ok, why = _rule("load_offs", res, max=1)
    assert ok and "1 load-off" in why, why


def test_no_shutdown_on_mains_looks_at_the_mains_level_then():
    web = _host("web1", "apps", [(0, "up"), (30, "stopping")], shutdowns=[30])
    samples = [{"wall": T0 + t, "mains_level": lv} for t, lv in ((0, 1.0), (20, 0.0), (50, 1.0))]
    res = _res([web], samples=samples)
    ok, why = _rule("no_shutdown_on_mains", res)
    assert ok, why
    web.shutdowns = [T0 + 10]  # mains still on
    ok, why = _rule("no_shutdown_on_mains", res)
    assert not ok and "web1 at 10.00s" in why, why


def test_every_host_down_needs_a_command_and_no_crash():
    a = _host("web1", "apps", [(0, "up"), (10, "stopping"), (12, "halted")], shutdowns=[10])
    b = _host("web2", "apps", [(0, "up"), (30, "off")])
    res = _res([a, b])
    ok, why = _rule("every_host_down", res)
    assert not ok and "web2 never got" in why, why
    b.shutdowns, b.crashes = [T0 + 11], [T0 + 30]
    ok, why = _rule("every_host_down", res)
    assert not ok and "web2 lost power" in why, why
    b.crashes = []
    assert _rule("every_host_down", res)[0]


def test_pair_alarm_needs_console_and_nut_on_that_board():
    alarms = [(T0 + 5, "a", "redundancy lost: no heartbeat", "OL", ""),   # NUT not yet
              (T0 + 6, "b", "redundancy lost: no heartbeat", "ALARM OL", "redundancy lost: x"),
              (T0 + 7, "a", "", "ALARM OL", "redundancy lost: no heartbeat")]  # console not
    res = _res([], alarms=alarms, pair_actions=[(T0 + 4, "kill", "b")])
    ok, why = _rule("pair_alarm", res, board="a")
    assert not ok and "partly" in why, why
    res.alarms.append((T0 + 8, "a", "redundancy lost: no heartbeat", "ALARM OL",
                       "redundancy lost: no heartbeat"))
    ok, why = _rule("pair_alarm", res, board="a")
    assert ok and "4.0 s (wall) after kill b" in why, why
    assert res.metrics["alarm_after_kill_b_wall_s"] == 4.0
    ok, why = _rule("pair_alarm", res, board="a", text="sensor disagrees")
    assert not ok, why
    ok, why = _rule("pair_alarm", res, board="a", within=["0s", "7s"])
    assert not ok, why


def test_final_state_of_a_pair_is_every_powered_boards():
    res = _res([], samples=[{"wall": T0 + 1, "state": "ONLINE",
                             "states": {"a": "ONLINE", "b": "LOAD_OFF"}}])
    ok, why = _rule("final_state", res, state="ONLINE")
    assert not ok and "b LOAD_OFF" in why, why
    res.samples[0]["states"]["b"] = None  # killed: no power, no state
    assert _rule("final_state", res, state="ONLINE")[0]


def test_load_off_after_down_says_no_to_a_load_off_before_a_halt():
    a = _host("web1", "apps", [(0, "up"), (10, "stopping"), (12, "halted"), (40, "off")],
              shutdowns=[10])
    b = _host("db1", "db", [(0, "up"), (20, "stopping"), (30, "halted"), (40, "off")],
              shutdowns=[20])
    res = _res([a, b], ups_commands=[(T0 + 25, "S01R0001")])
    ok, why = _rule("load_off_after_down", res)
    assert not ok and "db1 (told 20.00s, halted 30.00s)" in why, why
    res.ups_commands = [(T0 + 31, "S01R0001")]
    ok, why = _rule("load_off_after_down", res)
    assert ok, why
    res.ups_commands = []
    assert not _rule("load_off_after_down", res)[0]


def test_shutdown_and_restore_order_of_named_hosts_only():
    # feed B lost: a1 (A+B) stays up, b1 then b2 (B alone) shut down and come back b2 first
    a1 = _host("a1", "apps", [(0, "up")])
    b1 = _host("b1", "apps", [(0, "up"), (10, "stopping"), (11, "halted"), (50, "booting"),
                              (52, "up")], shutdowns=[10])
    b2 = _host("b2", "db", [(0, "up"), (14, "stopping"), (15, "halted"), (40, "booting"),
                            (42, "up")], shutdowns=[14])
    res = _res([a1, b1, b2])
    ok, why = _rule("shutdown_order", res, order=["apps", "db"])
    assert not ok and "a1 never got" in why, why   # without `hosts` every server counts
    ok, why = _rule("shutdown_order", res, order=["apps", "db"], hosts=["b1", "b2"])
    assert ok, why
    b2.shutdowns = [T0 + 9]   # the database told before the app
    ok, why = _rule("shutdown_order", res, order=["apps", "db"], hosts=["b1", "b2"])
    assert not ok and "before tier apps" in why, why
    ok, why = _rule("restore_order", res, order=["db", "apps"], hosts=["b1", "b2"])
    assert ok, why
    b1.history[3] = (T0 + 41, "booting")   # b1 booting before b2 was up
    ok, why = _rule("restore_order", res, order=["db", "apps"], hosts=["b1", "b2"])
    assert not ok and "before tier db" in why, why


def test_stays_up_says_no_to_a_shutdown_a_crash_or_a_host_down_at_the_end():
    a1 = _host("a1", "apps", [(0, "up")])
    res = _res([a1])
    assert _rule("stays_up", res, hosts=["a1"])[0]
    a1.shutdowns = [T0 + 20]
    ok, why = _rule("stays_up", res, hosts=["a1"])
    assert not ok and "a1 told to shut down at 20.00s" in why, why
    a1.shutdowns, a1.crashes = [], [T0 + 30]
    ok, why = _rule("stays_up", res, hosts=["a1"])
    assert not ok and "lost power" in why, why
    a1.crashes, a1.state = [], "halted"
    ok, why = _rule("stays_up", res, hosts=["a1"])
    assert not ok and "halted at the end" in why, why


def test_alarm_needs_alarm_and_its_text_on_nut_then_a_poll_without_it():
    lost = "redundancy lost: feed B lost"
    alarms = [(T0 + 5, "a", "", "OL", ""),
              (T0 + 6, "a", lost, "OL", lost),            # text without ALARM: not raised
              (T0 + 7, "a", lost, "ALARM OL", lost),
              (T0 + 20, "a", lost, "ALARM OL", lost),
              (T0 + 30, "a", "", "OL", "")]
    res = _res([], alarms=alarms)
    ok, why = _rule("alarm", res, text="feed B lost", within=["0s", "10s"])
    assert ok and "raised at 7.00s" in why, why
    ok, why = _rule("alarm", res, text="feed A lost")
    assert not ok and "feed B lost" in why, why   # says what it saw instead
    ok, why = _rule("alarm", res, within=["0s", "6.5s"])
    assert not ok, why
    ok, why = _rule("alarm", res, cleared=["10s", "40s"])
    assert ok and "cleared at 30.00s" in why, why
    ok, why = _rule("alarm", res, cleared=["10s", "25s"])
    assert not ok and "not cleared" in why, why
    res.alarms = [(T0 + 7, "a", lost, None, None)]   # NUT did not answer: nothing seen
    assert not _rule("alarm", res)[0]


def test_ups_commands_and_restore_of_one_feeds_ups():
    res = _res([], ups_commands=[(T0 + 30, "S01R0004")],
               feed_ups_commands=[(T0 + 30, "A", "S01R0004"), (T0 + 31, "B", "S01R0004"),
                                  (T0 + 32, "B", "S01R0004")],
               samples=[{"wall": T0 + 1, "outputs": {"A": True, "B": True}},
                        {"wall": T0 + 40, "outputs": {"A": False, "B": False}},
                        {"wall": T0 + 60, "outputs": {"A": True, "B": False}}])
    assert _rule("ups_command", res, pattern="^S", feed="B")[0]
    ok, why = _rule("no_ups_command", res, pattern="^S", feed="B")
    assert not ok and "UPS B got" in why, why
    assert _rule("load_offs", res, max=1, feed="A")[0]
    ok, why = _rule("load_offs", res, max=1, feed="B")
    assert not ok and "2 load-off command(s) to UPS B" in why, why
    ok, why = _rule("ups_restored", res, feed="A", within=["50s", "70s"])
    assert ok and "on again at 60.00s" in why, why
    assert not _rule("ups_restored", res, feed="A", within=["0s", "50s"])[0]
    ok, why = _rule("ups_restored", res, feed="B")
    assert not ok and "never restored" in why, why
    res.samples = res.samples[:1]
    ok, why = _rule("ups_restored", res, feed="A")
    assert not ok and "never cut" in why, why


def test_one_plan_allows_a_heartbeat_of_skew_then_needs_one_id():
    def smp(t, sa, sb, pa, pb):
        return {"wall": T0 + t, "states": {"a": sa, "b": sb}, "plans": {"a": pa, "b": pb}}
    SD = "SHUTTING_DOWN"
    ok_run = [smp(0, "ON_BATTERY", "ON_BATTERY", 3, 1), smp(1, SD, SD, 4, 2),
              smp(1.5, SD, SD, 4, 4), smp(3.5, SD, SD, 4, 4), smp(4, "LOAD_OFF", SD, 4, 4)]
    ok, why = _rule("one_plan", _res([], samples=ok_run))
    assert ok and "plan 4 over 3 polls" in why, why
    # still apart past the slack
    bad = ok_run[:2] + [smp(2, SD, SD, 4, 2), smp(3.5, SD, SD, 4, 2)]
    ok, why = _rule("one_plan", _res([], samples=bad))
    assert not ok and "A on plan 4, B on plan 2" in why, why
    ok, why = _rule("one_plan", _res([], samples=bad), slack="5s")
    assert ok, why
    # a board with no power (None) is no overlap; never together is a failure
    alone = [smp(1, SD, None, 4, None), smp(2, SD, "ONLINE", 4, 2)]
    ok, why = _rule("one_plan", _res([], samples=alone))
    assert not ok and "never in SHUTTING_DOWN" in why, why
