# FeedPolicy with a fake clock, a fake NUT server (who is logged in, who is told FSD) and fake
# health checks: a two-feed site, channels A (bit 0) and B (bit 1).
from mpunit import TestCase
from sentinel import config
from sentinel.feeds import FeedPolicy
from sentinel.sequencer import Sequencer

A = 1
B = 2
BOTH = 3
STEP = 100


class FakeNut:
    def __init__(self):
        self.logged = {}      # tier -> [addr]
        self.fsd_hosts = {}   # tier -> tuple of addrs
        self.pushes = 0

    def logged_in(self, tier):
        return [(a, "mon") for a in self.logged.get(tier, ())]

    def set_fsd_hosts(self, tier, addrs):
        self.pushes += 1
        if addrs:
            self.fsd_hosts[tier] = tuple(addrs)
        else:
            self.fsd_hosts.pop(tier, None)

    def logout(self, tier, addr):
        self.logged[tier].remove(addr)

    def set_fsd(self, tier, on):   # the sequencer's whole-tier FSD
        pass


class FakeChecks:
    def __init__(self, nut):
        self.nut = nut

    def check(self, tier, host, now, since):
        return host["address"] in self.nut.logged.get(tier, ())


def site(chans=("A", "B"), tiers=None, **pol):
    tiers = tiers or [
        {"name": "apps", "max_wait_s": 10, "hosts": [
            {"name": "a1", "address": "10.0.0.1", "feeds": ["A", "B"]},
            {"name": "b1", "address": "10.0.0.2", "feeds": ["B"], "mac": "02:00:00:00:00:02"}]},
        {"name": "dbs", "max_wait_s": 10, "hosts": [
            {"name": "b2", "address": "10.0.0.3", "feeds": ["B"], "mac": "02:00:00:00:00:03"},
            {"name": "any", "address": "10.0.0.4"}]},
    ]
    p = {"grace_s": 5, "stable_mains_s": 3}
    p.update(pol)
    cfg, errs = config.validate({"mains": {"channels": [{"name": c} for c in chans]},
                                 "policy": p, "tiers": tiers,
                                 "recovery": {"boot_timeout_s": 10, "wake_retries": 1}})
    assert not errs, errs
    return cfg


class FakeSm:
    """The state machine as the sequencer's power-on sees it: RESTORING, then done."""
    state = "RESTORING"
    plan_id = 7
    drill = False
    forced_tier = None

    def tier_progress(self, *a):
        return ()

    def sequence_done(self, *a):
        self.state = "ONLINE"
        return ()


class Rig:
    def __init__(self, chans=("A", "B"), tiers=None, **pol):
        self.nut = FakeNut()
        self.nut.logged = {"apps": ["10.0.0.1", "10.0.0.2"], "dbs": ["10.0.0.3", "10.0.0.4"]}
        self.recs = []
        self.wakes = []
        self.now = 0
        checks = FakeChecks(self.nut)
        self.cfg = cfg = site(chans, tiers, **pol)
        self.log = lambda t, d, critical=False: self.recs.append((self.now, t, d))
        self.p = FeedPolicy(cfg, list(chans), self.nut, self.log,
                            wake=lambda mac, addr: self.wakes.append((self.now, mac)),
                            checks=lambda: checks)
        self.checks = checks

    def sequencer(self):
        """A Sequencer on the same site, fake NUT and checks, handing hosts to the policy."""
        seq = Sequencer(self.cfg, self.nut, None,
                        lambda t, d, now, critical=False: self.log(t, d),
                        wake=lambda mac, addr: self.wakes.append((self.now, mac)),
                        health=self.checks)
        seq.feeds = self.p
        return seq

    def run(self, ms, good=BOTH, online=True, until=None, low=0):
        end = self.now + ms
        while self.now < end:
            self.p.step(self.now, good, True, online, low)
            if until is not None and until():
                return True
            self.now += STEP
        return False

    def kinds(self, kind):
        return [(t, d) for t, k, d in self.recs if k == kind]

    def b_down_then_back(self):
        """Feed B lost past grace, b1 then b2 log out in tier order, B back for the stable
        time: the policy is about to wake b2."""
        self.run(1000)
        self.run(5200, good=A)
        self.nut.logout("apps", "10.0.0.2")
        self.run(200, good=A)
        self.nut.logout("dbs", "10.0.0.3")
        self.run(200, good=A)
        self.run(3100)


class TestFeedPolicy(TestCase):
    def test_states_and_alarm(self):
        r = Rig()
        r.run(1000)
        self.assertEqual(r.p.alarm, "")
        r.run(200, good=A)
        st = r.p.status()
        self.assertEqual(st["feeds"], {"A": "ok", "B": "lost"})
        by = {h["host"]: h["state"] for h in st["hosts"]}
        self.assertEqual(by, {"a1": "degraded", "b1": "lost", "b2": "lost", "any": "degraded"})
        self.assertEqual(r.p.alarm, "redundancy lost: feed B lost")
        self.assertEqual([d for _, d in r.kinds("feed_lost")], [{"feed": "B"}])

    def test_flicker_shorter_than_grace_tells_nobody(self):
        r = Rig()
        r.run(1000)
        r.run(4000, good=A)
        r.run(20000)
        self.assertEqual(r.kinds("feed_fsd"), [])
        self.assertEqual(r.nut.fsd_hosts, {})
        self.assertEqual(r.p.alarm, "")
        self.assertEqual(len(r.kinds("feed_back")), 1)

    def test_short_returns_do_not_restart_the_grace(self):
        r = Rig()   # return_stable_ms: 2000 by default
        r.run(1000)
        t0 = r.now
        r.run(3000, good=A)
        r.run(1000)              # back for 1 s: too short to count
        r.run(1500, good=A)
        fsd = r.kinds("feed_fsd")
        self.assertEqual([d["host"] for _, d in fsd], ["b1"])
        self.assertTrue(5000 <= fsd[0][0] - t0 < 5600, fsd[0][0] - t0)
        r2 = Rig()
        r2.run(1000)
        r2.run(3000, good=A)
        r2.run(2500)             # back long enough: the next loss starts a new grace
        r2.run(4000, good=A)
        self.assertEqual(r2.kinds("feed_fsd"), [])

    def test_a_low_battery_on_the_lost_feed_s_ups_ends_the_grace(self):
        # feed B lost, then B's UPS says LB (bit 1) 1 s into the grace: b1 is told at once,
        # in tier order still (b2 after b1 logged out); a1 (A and B) is never told
        r = Rig()
        r.run(1000)
        r.run(1000, good=A)
        self.assertEqual(r.nut.fsd_hosts, {})
        r.run(200, good=A, low=0b10)
        self.assertEqual(r.nut.fsd_hosts, {"apps": ("10.0.0.2",)})
        self.assertEqual([d for _, d in r.kinds("feed_fsd")],
                         [{"host": "b1", "tier": "apps", "cause": "ups_low_battery"}])
        r.nut.logout("apps", "10.0.0.2")
        r.run(200, good=A, low=0b10)
        self.assertEqual(r.nut.fsd_hosts, {"apps": ("10.0.0.2",), "dbs": ("10.0.0.3",)})

    def test_a_low_battery_on_a_feed_still_up_tells_nobody(self):
        r = Rig()
        r.run(1000)
        r.run(2000, good=A, low=0b01)   # A's UPS low, A is fine: B's servers keep their grace
        self.assertEqual(r.nut.fsd_hosts, {})

    def test_lost_hosts_go_in_tier_order_and_come_back(self):
        r = Rig()
        r.run(1000)
        t_lost = r.now
        # grace: nobody told
        r.run(4900, good=A)
        self.assertEqual(r.nut.fsd_hosts, {})
        # after grace: only b1 (apps) is told; b2 (dbs) waits for it to log out
        r.run(200, good=A)
        self.assertEqual(r.nut.fsd_hosts, {"apps": ("10.0.0.2",)})
        fsd = r.kinds("feed_fsd")
        self.assertEqual([d for _, d in fsd], [{"host": "b1", "tier": "apps",
                                                "cause": "grace_expired"}])
        self.assertTrue(fsd[0][0] - t_lost >= 5000)
        r.run(3000, good=A)
        self.assertEqual(len(r.kinds("feed_fsd")), 1)
        r.nut.logout("apps", "10.0.0.2")
        r.run(200, good=A)
        self.assertEqual(r.nut.fsd_hosts, {"apps": ("10.0.0.2",), "dbs": ("10.0.0.3",)})
        r.nut.logout("dbs", "10.0.0.3")
        r.run(2000, good=A)
        # a1 and "any" (every feed) were never told
        self.assertEqual(sorted(d["host"] for _, d in r.kinds("feed_fsd")), ["b1", "b2"])
        # B back: FSD kept until it is stable for 3 s, then cleared, dbs woken first
        back = r.now
        r.run(2900)
        self.assertEqual(len(r.nut.fsd_hosts), 2)
        r.run(200)
        self.assertEqual(r.nut.fsd_hosts, {})
        self.assertEqual([m for _, m in r.wakes], ["02:00:00:00:00:03"])
        self.assertTrue(r.wakes[0][0] - back >= 3000)
        r.run(1000)
        self.assertEqual(len(r.wakes), 1)   # apps waits for dbs to be up
        r.nut.logged["dbs"].append("10.0.0.3")
        r.run(200)
        self.assertEqual([m for _, m in r.wakes][-1], "02:00:00:00:00:02")
        r.nut.logged["apps"].append("10.0.0.2")
        r.run(200)
        done = [d for _, d in r.kinds("feed_power_on")]
        self.assertEqual([(d["host"], d["ok"]) for d in done], [("b2", True), ("b1", True)])
        st = {h["host"]: h["action"] for h in r.p.status()["hosts"]}
        self.assertEqual(st, {"a1": "", "b1": "", "b2": "", "any": ""})

    def test_max_wait_lets_the_next_tier_go(self):
        r = Rig()
        r.run(1000)
        r.run(5200, good=A)
        self.assertEqual(list(r.nut.fsd_hosts), ["apps"])
        r.run(9800, good=A)   # b1 never logs out
        self.assertEqual(list(r.nut.fsd_hosts), ["apps"])
        r.run(300, good=A)
        self.assertEqual(sorted(r.nut.fsd_hosts), ["apps", "dbs"])

    def test_wake_retried_then_given_up(self):
        r = Rig()
        r.b_down_then_back()
        self.assertEqual(len(r.wakes), 1)
        r.run(10000)
        self.assertEqual(len(r.wakes), 2)   # again after boot_timeout_s
        r.run(10000)
        done = r.kinds("feed_power_on")
        self.assertEqual([(d["host"], d["ok"], d["tries"]) for _, d in done], [("b2", False, 2)])

    def test_lost_again_while_powering_on_stops_the_wakes(self):
        r = Rig()
        r.b_down_then_back()
        self.assertEqual(len(r.wakes), 1)              # b2 woken
        r.run(200, good=A)                             # B lost again before b2 is up
        st = {h["host"]: h["action"] for h in r.p.status()["hosts"]}
        self.assertEqual((st["b1"], st["b2"]), ("", ""))
        r.run(20000, good=A)
        self.assertEqual(len(r.wakes), 1)              # never woken again while B is lost
        self.assertEqual(r.kinds("feed_power_on"), [])
        self.assertEqual(sorted(d["host"] for _, d in r.kinds("feed_fsd")), ["b1", "b1", "b2",
                                                                             "b2"])

    def test_site_outage_hands_over_to_the_sequencer(self):
        r = Rig()
        r.run(1000)
        r.run(5200, good=A)
        self.assertEqual(list(r.nut.fsd_hosts), ["apps"])
        r.run(200, good=0, online=False)
        self.assertEqual(r.nut.fsd_hosts, {})
        self.assertEqual(r.p.alarm, "redundancy lost: feeds A, B lost")
        self.assertEqual(r.kinds("feed_fsd")[-1][1]["host"], "b1")

    def test_power_on_waits_for_every_feed_a_server_lists(self):
        # three feeds: ab on A+B is lost while C is up; A back alone does not wake it
        tiers = [{"name": "apps", "max_wait_s": 10, "hosts": [
            {"name": "ab", "address": "10.0.0.1", "feeds": ["A", "B"],
             "mac": "02:00:00:00:00:01"}]}]
        r = Rig(chans=("A", "B", "C"), tiers=tiers)
        r.nut.logged = {"apps": ["10.0.0.1"]}
        r.run(1000, good=7)
        r.run(5200, good=4)                      # A and B lost: ab told after grace
        self.assertEqual(r.nut.fsd_hosts, {"apps": ("10.0.0.1",)})
        r.nut.logout("apps", "10.0.0.1")
        r.run(20000, good=4 | A)                 # A back and stable, B still out
        self.assertEqual(r.wakes, [])
        self.assertEqual(r.nut.fsd_hosts, {"apps": ("10.0.0.1",)})
        r.run(2900, good=7)                      # B back, not yet stable
        self.assertEqual(r.wakes, [])
        r.run(200, good=7)
        self.assertEqual([m for _, m in r.wakes], ["02:00:00:00:00:01"])
        self.assertEqual(r.nut.fsd_hosts, {})

    def test_site_power_on_leaves_servers_on_a_missing_feed_to_the_policy(self):
        r = Rig()
        seq = r.sequencer()
        sm = FakeSm()
        r.run(1000)
        r.run(1000, good=0, online=False)        # site outage: the sequencer's shutdown ran
        r.nut.logged = {"apps": [], "dbs": []}
        # A back (the site is powered: the state machine restores); B still out
        for _ in range(5):
            seq.step(r.now, sm)
            r.run(100, good=A, online=False)
        self.assertEqual(sm.state, "ONLINE")     # the walk finished without waiting for B
        self.assertEqual(r.wakes, [])            # nobody woken: every server here needs B
        waits = sorted(d["host"] for _, d in r.kinds("power_on_wait"))
        self.assertEqual(waits, ["a1", "any", "b1", "b2"])
        st = {h["host"]: h["action"] for h in r.p.status()["hosts"]}
        self.assertEqual(st, {"a1": "wait", "b1": "wait", "b2": "wait", "any": "wait"})
        r.run(30000, good=A)                     # ONLINE on A alone: still nobody
        self.assertEqual(r.wakes, [])
        self.assertEqual(r.nut.fsd_hosts, {})    # waiting servers are not told FSD
        r.run(2900)                              # B back, stable after 3 s
        self.assertEqual(r.wakes, [])
        r.run(300)
        self.assertEqual([m for _, m in r.wakes], ["02:00:00:00:00:03"])   # dbs first

    def test_site_power_on_wakes_at_once_when_every_feed_is_back(self):
        r = Rig()
        seq = r.sequencer()
        sm = FakeSm()
        r.run(1000)
        r.run(1000, good=0, online=False)
        r.nut.logged = {"apps": [], "dbs": []}
        r.run(3100, good=BOTH, online=False)
        seq.step(r.now, sm)
        self.assertEqual(r.kinds("power_on_wait"), [])
        self.assertEqual([m for _, m in r.wakes], ["02:00:00:00:00:03"])

    def test_no_reading_yet_changes_nothing(self):
        r = Rig()
        r.p.step(0, 0, False, True)
        self.assertEqual(r.p.alarm, "")
        self.assertEqual(r.recs, [])

    def test_quiet_steps_push_nothing(self):
        r = Rig()
        r.run(3000)
        self.assertEqual(r.nut.pushes, 0)


def reboot(r, down_ms=0, logged=None, tiers=None):
    """A new board (a new policy, a fresh fake NUT, the clock from 0) resuming what `r` saved,
    through JSON as state.json holds it."""
    import json
    d = json.loads(json.dumps(r.p.to_dict(r.now)))
    r2 = Rig(tiers=tiers)
    r2.nut.logged = logged if logged is not None else {"apps": [], "dbs": []}
    ok = r2.p.restore(d, r2.now, elapsed_ms=down_ms)
    return r2, ok


class TestFeedStateAcrossReboot(TestCase):
    def test_round_trip(self):
        r = Rig()
        r.run(1000)
        r.run(5200, good=A)            # b1 told
        r2, ok = reboot(r)
        self.assertTrue(ok)
        self.assertEqual(r2.p.status(), r.p.status())
        self.assertEqual(r2.p.alarm, "redundancy lost: feed B lost")
        self.assertEqual(r2.p.to_dict(0), r.p.to_dict(r.now))

    def test_reboot_mid_grace_keeps_the_grace_start(self):
        r = Rig()
        r.run(1000)
        r.run(3000, good=A)            # 3 s into the 5 s grace
        r2, ok = reboot(r, down_ms=1000, logged={"apps": ["10.0.0.1", "10.0.0.2"],
                                                 "dbs": ["10.0.0.3", "10.0.0.4"]})
        self.assertTrue(ok)
        self.assertEqual(r2.kinds("feed_lost"), [])   # not lost anew
        r2.run(900, good=A)            # 4.9 s of grace counted (1 s was the reboot)
        self.assertEqual(r2.nut.fsd_hosts, {})
        r2.run(200, good=A)
        self.assertEqual(r2.nut.fsd_hosts, {"apps": ("10.0.0.2",)})
        self.assertEqual([d["host"] for _, d in r2.kinds("feed_fsd")], ["b1"])

    def test_reboot_after_fsd_tells_it_again_at_once(self):
        r = Rig()
        r.run(1000)
        r.run(5200, good=A)
        self.assertEqual(r.nut.fsd_hosts, {"apps": ("10.0.0.2",)})
        r2, ok = reboot(r)
        self.assertTrue(ok)
        # before any step: the NUT server already holds b1's FSD, for b1 alone
        self.assertEqual(r2.nut.fsd_hosts, {"apps": ("10.0.0.2",)})
        res = [d for _, d in r2.kinds("feed_resume")]
        self.assertEqual(res, [{"ok": True, "lost": ["B"], "told": ["b1"]}])
        r2.nut.logged["apps"] = ["10.0.0.1", "10.0.0.2"]   # b1's upsmon logs in again
        r2.run(3000, good=A)
        self.assertEqual(r2.nut.fsd_hosts, {"apps": ("10.0.0.2",)})   # nothing else changes
        self.assertEqual(r2.kinds("feed_fsd"), [])                    # no second grace/record
        r2.nut.logout("apps", "10.0.0.2")
        r2.run(200, good=A)            # b1 gone: now the next tier's b2
        self.assertEqual(r2.nut.fsd_hosts, {"apps": ("10.0.0.2",), "dbs": ("10.0.0.3",)})

    def test_told_server_may_reconnect_after_the_reboot(self):
        # not logged in right after the reboot: the next tier still waits (resume grace)
        tiers = [{"name": "apps", "max_wait_s": 60, "hosts": [
            {"name": "a1", "address": "10.0.0.1", "feeds": ["A", "B"]},
            {"name": "b1", "address": "10.0.0.2", "feeds": ["B"]}]},
            {"name": "dbs", "max_wait_s": 60, "hosts": [
                {"name": "b2", "address": "10.0.0.3", "feeds": ["B"]},
                {"name": "any", "address": "10.0.0.4"}]}]
        r = Rig(tiers=tiers)
        r.run(1000)
        r.run(5200, good=A)
        r2, _ = reboot(r, tiers=tiers)
        r2.run(19000, good=A)
        self.assertEqual(list(r2.nut.fsd_hosts), ["apps"])
        self.assertEqual(r2.kinds("feed_fsd"), [])
        r2.run(1200, good=A)           # b1 never came back: off, b2 told
        self.assertEqual(sorted(r2.nut.fsd_hosts), ["apps", "dbs"])

    def test_server_already_off_is_not_told_or_woken_twice(self):
        r = Rig()
        r.run(1000)
        r.run(5200, good=A)
        r.nut.logout("apps", "10.0.0.2")
        r.run(200, good=A)
        r.nut.logout("dbs", "10.0.0.3")
        r.run(200, good=A)
        self.assertEqual(sorted(r.nut.fsd_hosts), ["apps", "dbs"])
        r2, _ = reboot(r)
        self.assertEqual(sorted(r2.nut.fsd_hosts), ["apps", "dbs"])
        r2.run(25000, good=A)
        self.assertEqual(r2.kinds("feed_fsd"), [])
        r2.run(3100)                   # B back and stable: b2 woken once, first
        self.assertEqual([m for _, m in r2.wakes], ["02:00:00:00:00:03"])
        self.assertEqual(r2.nut.fsd_hosts, {})

    def test_waiting_power_on_resumes(self):
        r = Rig()
        seq = r.sequencer()
        sm = FakeSm()
        r.run(1000)
        r.run(1000, good=0, online=False)
        r.nut.logged = {"apps": [], "dbs": []}
        for _ in range(5):
            seq.step(r.now, sm)
            r.run(100, good=A, online=False)
        r.run(1000, good=A)
        r2, ok = reboot(r)
        self.assertTrue(ok)
        st = {h["host"]: h["action"] for h in r2.p.status()["hosts"]}
        self.assertEqual(st, {"a1": "wait", "b1": "wait", "b2": "wait", "any": "wait"})
        r2.run(10000, good=A)
        self.assertEqual(r2.wakes, [])
        r2.run(3200)                   # B back and stable: dbs first
        self.assertEqual([m for _, m in r2.wakes], ["02:00:00:00:00:03"])

    def test_garbage_or_other_site_is_ignored(self):
        r = Rig()
        r.run(1000)
        r.run(5200, good=A)
        good = r.p.to_dict(r.now)
        other = Rig(tiers=[{"name": "apps", "max_wait_s": 10, "hosts": [
            {"name": "x", "address": "10.0.0.9", "feeds": ["B"]}]}])
        other.run(1000)
        bad = [None, "garbage", [], {}, {"v": 1}, dict(good, v=99), dict(good, feeds=["A", "C"]),
               dict(good, hosts=good["hosts"][:1]), dict(good, back=["x", None]),
               dict(good, hosts=[["a1", "ok", None, "nonsense", 0, 0, 0, 0]] * 4),
               other.p.to_dict(other.now)]
        for d in bad:
            r2 = Rig()
            self.assertFalse(r2.p.restore(d, 0), d)
            self.assertEqual([x["ok"] for _, x in r2.kinds("feed_resume")], [False])
            self.assertEqual(r2.nut.fsd_hosts, {})
            r2.run(1000)               # a fresh policy that still works
            self.assertEqual(r2.p.alarm, "")

    def test_saved_only_on_transitions(self):
        r = Rig()
        r.run(3000)
        self.assertFalse(r.p.dirty)    # quiet steps: nothing to save
        r.run(200, good=A)
        self.assertTrue(r.p.dirty)     # B lost
        r.p.to_dict(r.now)
        r.run(3000, good=A)
        self.assertFalse(r.p.dirty)    # mid-grace: nothing new
        r.run(2200, good=A)
        self.assertTrue(r.p.dirty)     # b1 told
