# The sequencer driven by the real state machine, a fake NUT server, a simulated fleet of
# servers (upsmon clients that log out after FSD and log in again after a wake) and a fake clock.
import asyncio
import json
import sys

from mpunit import TestCase
from sentinel import config, q1
from sentinel import statemachine as S
from sentinel import sequencer as Q
from sentinel import seqstate
from sentinel.health import Health
from sentinel.statemachine import Inputs, StateMachine

STEP = 100  # ms between ticks, as main's policy task would run


PARKED = []


def sleep_ms(ms):
    f = getattr(asyncio, "sleep_ms", None)  # MicroPython; CPython has only sleep()
    return f(ms) if f is not None else asyncio.sleep(ms / 1000)


def run_now(coro):
    """spawn() for tests: run a coroutine up to its first real wait. One that does not wait
    (the fakes here) finishes at once; one that does is parked, never resumed."""
    try:
        coro.send(None)
    except StopIteration:
        return
    PARKED.append(coro)


class FakeNut:
    def __init__(self, rig, tiers):
        self.rig = rig
        self.clients = {}
        for t in tiers:
            self.clients[t] = []
        self.on = {}  # tier -> time FSD was raised

    def set_fsd(self, ups, on):
        self.rig.log.append(("fsd", ups, on, self.rig.now))
        if on:
            if ups not in self.on:
                self.on[ups] = self.rig.now
        elif ups in self.on:
            del self.on[ups]

    def logged_in(self, ups):
        return [(a, "upsmon") for a in self.clients[ups]]


class Host:
    def __init__(self, tier, name, addr, mac, logout_ms, boot_ms, up=True, tcp_ms=None):
        self.tier = tier
        self.name = name
        self.addr = addr
        self.mac = mac
        self.logout_ms = logout_ms  # after seeing FSD; None: never logs out
        self.boot_ms = boot_ms      # after a wake; None: never boots
        self.tcp_ms = tcp_ms        # its tcp service answers this long after boot (None: with it)
        self.state = "up" if up else "off"
        self.t = None               # when the pending change happens
        self.t_up = None
        self.login_t = 0
        self.connected = up         # upsmon connected to the sentinel
        self.halt_ms = None         # its services still answer this long after its logout
        self.halt_at = None


class Fleet:
    """The servers: upsmon secondaries logged in to their tier, obeying FSD; WOL boots them."""

    def __init__(self, rig, hosts):
        self.rig = rig
        self.hosts = hosts
        self.by_mac = {}
        for h in hosts:
            if h.mac:
                self.by_mac[h.mac] = h

    def attach(self, nut):
        self.nut = nut
        for h in self.hosts:
            if h.state == "up" and h.connected and h.addr not in nut.clients[h.tier]:
                nut.clients[h.tier].append(h.addr)

    def tick(self, now):
        nut = self.nut
        for h in self.hosts:
            if h.state == "up" and h.connected and h.tier in nut.on:
                # upsmon secondary sees FSD: shuts down and drops its connection
                h.state = "stopping"
                h.t = None if h.logout_ms is None else max(nut.on[h.tier], h.login_t) + h.logout_ms
            if h.state == "stopping" and h.t is not None and now >= h.t:
                h.state = "off"
                h.connected = False
                if h.halt_ms is not None:
                    h.halt_at = now + h.halt_ms
                if h.addr in nut.clients[h.tier]:
                    nut.clients[h.tier].remove(h.addr)
            if h.state == "booting" and now >= h.t:
                h.state = "up"
                h.t_up = now
                h.login_t = now
                h.connected = True
                nut.clients[h.tier].append(h.addr)

    def wake(self, mac, now):
        h = self.by_mac.get(mac)
        if h is not None and h.state == "off" and h.boot_ms is not None:
            h.state = "booting"
            h.t = now + h.boot_ms

    def tcp_ok(self, addr, now):
        for h in self.hosts:
            if h.addr == addr:
                if h.state == "off" and h.halt_at is not None and now < h.halt_at:
                    return True  # logged out, still halting
                if h.state != "up":
                    return False
                if h.tcp_ms is None:
                    return True
                return h.t_up is not None and now >= h.t_up + h.tcp_ms
        return False


class FakeUps:
    def __init__(self, rig, ok=True, use_async=False):
        self.rig = rig
        self.ok = ok
        self.use_async = use_async
        self.sent = []

    def shutdown_restore(self, delay_min, restore_min):
        self.sent.append(q1.format_shutdown_restore(delay_min, restore_min))
        self.rig.log.append(("ups", delay_min, restore_min, self.rig.now))
        if self.use_async:
            return self._reply()
        return self.ok

    async def _reply(self):
        return self.ok


def tier(name, hosts, max_wait_s=120, delay_s=0, confirm_off=False):
    return {"name": name, "max_wait_s": max_wait_s, "delay_s": delay_s, "hosts": hosts,
            "confirm_off": confirm_off}


def hcfg(name, addr, mac=None, health="nut"):
    return {"name": name, "address": addr, "mac": mac, "health": health}


MAC = {"web1": "02:00:00:00:00:01", "web2": "02:00:00:00:00:02",
       "db1": "02:00:00:00:00:11", "nas1": "02:00:00:00:00:21"}
ADDR = {"web1": "10.0.0.5", "web2": "10.0.0.6", "db1": "10.0.1.5", "nas1": "10.0.2.5"}


def std_tiers(apps_wait=120, db_wait=120, db_delay=10, web1_health="tcp:80"):
    return [
        tier("apps", [hcfg("web1", ADDR["web1"], MAC["web1"], web1_health),
                      hcfg("web2", ADDR["web2"], MAC["web2"])], apps_wait, 0),
        tier("databases", [hcfg("db1", ADDR["db1"], MAC["db1"])], db_wait, db_delay),
        tier("storage", [hcfg("nas1", ADDR["nas1"], MAC["nas1"])], 120, 0),
    ]


def std_hosts(**over):
    spec = {"web1": ("apps", 3000, 15000), "web2": ("apps", 5000, 10000),
            "db1": ("databases", 8000, 30000), "nas1": ("storage", 4000, 20000)}
    out = []
    for name in ("web1", "web2", "db1", "nas1"):
        t, lo, bt = spec[name]
        kw = over.get(name, {})
        out.append(Host(t, name, ADDR[name], MAC[name], kw.get("logout", lo), kw.get("boot", bt),
                        kw.get("up", True)))
    return out


class Rig:
    def __init__(self, tiers=None, hosts=None, policy=None, recovery=None, ups=None,
                 seq_kw=None, now=1000):
        obj = {"tiers": tiers if tiers is not None else std_tiers(),
               "policy": {"grace_s": 0, "stable_mains_s": 60, "return_stable_ms": 2000}}
        if policy:
            obj["policy"].update(policy)
        if recovery:
            obj["recovery"] = recovery
        cfg, errs = config.validate(obj)
        assert not errs, errs
        self.cfg = cfg
        self.now = now
        self.log = []   # ("fsd", tier, on, t) ("wol", host, t) ("ups", d, r, t)
        self.jr = []    # journal records (type, data, t, critical)
        self.recs = []  # state machine records
        self.tcp_calls = 0
        self.i = Inputs(ups_charge=100, ups_runtime=1200)
        self.sm = StateMachine(cfg, now)
        self.fleet = Fleet(self, hosts if hosts is not None else std_hosts())
        self.ups = ups if ups is not None else FakeUps(self)
        self.new_board(seq_kw or {})

    def new_board(self, seq_kw, saved=None, down_ms=0):
        """(Re)build the board side: NUT server (empty after a reboot), health, sequencer."""
        self.nut = FakeNut(self, [t["name"] for t in self.cfg["tiers"]])
        self.fleet.attach(self.nut)
        self.health = Health(self.nut, tcp_fn=self.tcp, spawn=run_now)
        self.seq = Q.Sequencer(self.cfg, self.nut, self.ups, self.journal, lambda: self.now,
                               wake=self.wake, health=self.health, spawn=run_now, **seq_kw)
        if saved is not None:
            sm_d, seq_d = json.loads(saved)
            self.sm = StateMachine.from_dict(self.cfg, sm_d, self.now, down_ms)
            assert self.seq.restore(seq_d, self.now, down_ms)

    def reboot(self, down_ms=0, drop_clients=True, seq_kw=None, seq_saved=None):
        """seq_saved: what the sequencer saved (default: its to_dict() now)."""
        if seq_saved is None:
            seq_saved = self.seq.to_dict(self.now)
        saved = json.dumps([self.sm.to_dict(self.now), seq_saved])
        self.now += down_ms
        if drop_clients:
            for h in self.fleet.hosts:
                h.connected = False  # every TCP connection died with the board
        self.new_board(seq_kw or {}, saved, down_ms)

    def journal(self, t, data, now, critical=False):
        json.dumps(data)  # must be JSON-ready
        self.jr.append((t, data, now, critical))

    def wake(self, mac, addr):
        name = [n for n in MAC if MAC[n] == mac][0]
        self.log.append(("wol", name, self.now))
        self.fleet.wake(mac, self.now)

    async def tcp(self, addr, port, timeout_ms):
        self.tcp_calls += 1
        return self.fleet.tcp_ok(addr, self.now)

    def tick(self):
        self.now += STEP
        self.fleet.tick(self.now)
        self.recs.extend(self.sm.update(self.now, self.i))
        self.recs.extend(self.seq.step(self.now, self.sm))

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.tick()

    def run_until(self, pred, max_ms=3600000):
        end = self.now + max_ms
        while not pred():
            if self.now >= end:
                raise AssertionError("timed out at %d in %s, phases %r" % (
                    self.now, self.sm.state, self.seq.phases()))
            self.tick()

    def outage(self):
        self.i.mains_lost = True
        self.i.mains_good = False
        self.i.ups_on_battery = True

    def mains_back(self):
        self.i.mains_lost = False
        self.i.mains_good = True
        self.i.ups_on_battery = False

    def fsd_times(self, on=True):
        return [(e[1], e[3]) for e in self.log if e[0] == "fsd" and e[2] == on]

    def wols(self):
        return [(e[1], e[2]) for e in self.log if e[0] == "wol"]

    def types(self):
        return [j[0] for j in self.jr]

    def records(self, t):
        return [j for j in self.jr if j[0] == t]

    def state(self, st):
        return lambda: self.sm.state == st

    def full_shutdown(self):
        """Outage until the load-off command; returns the time the shutdown began."""
        self.outage()
        self.run_until(self.state(S.SHUTTING_DOWN))
        t0 = self.now
        self.run_until(self.state(S.LOAD_OFF))
        return t0

    def power_cycle(self):
        """From LOAD_OFF: the UPS cuts the load (every server loses power), mains returns."""
        for h in self.fleet.hosts:
            h.state = "off"
            h.connected = False
        for t in self.nut.clients:
            self.nut.clients[t] = []
        self.recs.extend(self.sm.load_off_done(self.now))
        self.mains_back()
        self.tick()


class ShutdownOrder(TestCase):
    def test_tiers_in_order_each_waits_for_its_logouts(self):
        r = Rig()
        t0 = r.full_shutdown()
        fsd = r.fsd_times()
        # apps at once; web2 is its slower host (5 s); databases waits its 10 s delay after
        # that, db1 takes 8 s; storage follows at once (delay 0)
        self.assertEqual(fsd, [("apps", t0), ("databases", t0 + 5000 + 10000),
                               ("storage", t0 + 5000 + 10000 + 8000)])
        done = r.records("tier_done")
        self.assertEqual([d[1]["tier"] for d in done], ["apps", "databases", "storage"])
        self.assertEqual(done[0][1]["took_ms"], 5000)
        self.assertEqual(done[0][1]["hosts"], {"web1": 3000, "web2": 5000})
        self.assertEqual(done[2][1]["took_ms"], 4000)
        self.assertTrue(all(d[3] for d in done))  # critical: flushed at once
        self.assertEqual(r.seq.phases(), {"apps": "done", "databases": "done", "storage": "done"})
        self.assertEqual(r.sm.plan, {"apps": "done", "databases": "done", "storage": "done"})
        # the load-off follows the last tier in the same step, as S01R0001
        self.assertEqual(r.ups.sent, [b"S01R0001\r"])
        self.assertEqual(r.log[-1], ("ups", 1, 1, t0 + 27000))
        self.assertEqual(r.seq.m_down, {"apps": 5000, "databases": 8000, "storage": 4000})
        r.run(30000)
        self.assertEqual(len(r.ups.sent), 1)  # once per plan

    def test_intermediate_phases_and_tiers_not_reached(self):
        r = Rig()
        r.outage()
        r.run_until(r.state(S.SHUTTING_DOWN))
        self.assertEqual(r.seq.phase("apps"), "fsd")
        self.assertEqual(r.seq.phase("databases"), "idle")
        r.tick()
        self.assertEqual(r.seq.phase("apps"), "waiting")
        self.assertTrue(r.sm.ponr)  # the first FSD passed the point of no return
        r.run_until(lambda: r.seq.phase("apps") == "done")
        r.run(5000)  # inside databases' 10 s delay: not raised yet
        self.assertEqual(r.seq.phase("databases"), "idle")
        self.assertNotIn("databases", r.nut.on)

    def test_host_that_never_logs_out_delays_next_tier_by_exactly_max_wait(self):
        r = Rig(tiers=std_tiers(db_wait=30, db_delay=0), hosts=std_hosts(db1={"logout": None}))
        r.full_shutdown()
        fsd = dict(r.fsd_times())
        self.assertEqual(fsd["storage"] - fsd["databases"], 30000)
        # and not one step earlier: storage was not raised at max_wait - STEP
        self.assertEqual([e for e in r.log if e[0] == "fsd" and e[1] == "storage"
                          and e[3] < fsd["databases"] + 30000], [])
        to = r.records("tier_timeout")
        self.assertEqual(len(to), 1)
        self.assertEqual(to[0][1]["tier"], "databases")
        self.assertEqual(to[0][1]["pending"], ["10.0.1.5"])
        self.assertEqual(to[0][1]["hosts"], ["db1"])
        self.assertEqual(to[0][1]["waited_ms"], 30000)
        self.assertEqual(r.seq.phase("databases"), "timeout")
        self.assertEqual(r.seq.phase("storage"), "done")

    def test_unknown_client_also_holds_the_tier(self):
        r = Rig(tiers=std_tiers(apps_wait=20))
        r.nut.clients["apps"].append("10.9.9.9")  # a client not in the config never leaves
        r.full_shutdown()
        to = r.records("tier_timeout")
        self.assertEqual(to[0][1]["pending"], ["10.9.9.9"])
        self.assertEqual(to[0][1]["hosts"], [])

    def test_empty_tier_is_done_at_once(self):
        r = Rig(hosts=std_hosts(db1={"up": False}))
        r.nut.clients["databases"] = []
        t0 = r.full_shutdown()
        fsd = dict(r.fsd_times())
        self.assertEqual(fsd["storage"], fsd["databases"])
        self.assertEqual(fsd["databases"], t0 + 5000 + 10000)
        self.assertEqual(r.records("tier_fsd")[1][1]["absent"], ["db1"])

    def test_async_load_off_and_failure_retry(self):
        r = Rig()
        r.ups = FakeUps(r, ok=False, use_async=True)
        r.seq.ups = r.ups
        r.full_shutdown()
        self.assertEqual(r.seq.load_off, "failed")
        r.run(Q.LOAD_OFF_RETRY_MS * 5)
        self.assertEqual(len(r.ups.sent), Q.LOAD_OFF_TRIES)  # bounded retries
        offs = r.records("ups_off")
        self.assertEqual([o[1]["ok"] for o in offs], [False] * Q.LOAD_OFF_TRIES)

    def test_no_ups_command_is_journalled(self):
        r = Rig()
        r.seq.ups = None
        r.full_shutdown()
        r.tick()
        self.assertEqual(r.seq.load_off, "none")
        self.assertEqual(r.records("ups_off")[0][1]["ok"], False)


class Booted(TestCase):
    """Sequencer.booted (pair mode): right after a boot, a missing server may only not have
    reconnected yet (or its peer already shut it down): waited for, not taken as gone."""

    def _absent_first_tier(self, r):
        t0 = r.cfg["tiers"][0]["name"]
        for h in r.fleet.hosts:
            if h.tier == t0:
                h.connected = False
                if h.addr in r.nut.clients[t0]:
                    r.nut.clients[t0].remove(h.addr)
        return t0

    def _to_fsd(self, r):
        r.outage()
        r.run_until(r.state(S.SHUTTING_DOWN))
        r.run(2 * STEP)

    def test_a_missing_server_right_after_boot_holds_its_tier_for_the_grace(self):
        r = Rig()
        r.seq.booted(r.now)
        t0 = self._absent_first_tier(r)
        self._to_fsd(r)
        self.assertIn(r.seq.phase(t0), ("fsd", "waiting"))   # not done: they may reconnect
        # one reconnects within the grace: it is told FSD and goes down in order
        h = [h for h in r.fleet.hosts if h.tier == t0][0]
        h.connected = True
        r.nut.clients[t0].append(h.addr)
        r.run(2000)
        self.assertEqual(h.state, "stopping")
        r.run_until(lambda: r.seq.phase(t0) == "done", Q.RESUME_GRACE_MS + 60000)

    def test_long_after_boot_an_empty_tier_is_done_at_once(self):
        for booted in (False, True):
            r = Rig()
            if booted:
                r.seq.booted(r.now)
                r.run(Q.RESUME_GRACE_MS)
            t0 = self._absent_first_tier(r)
            self._to_fsd(r)
            self.assertEqual(r.seq.phase(t0), "done")


class PairTurn(TestCase):
    """Sequencer.turn (pair mode): the load-off is sent only on this sentinel's turn."""

    def test_waiting_sends_nothing_and_the_peer_s_load_off_is_recorded_not_repeated(self):
        r = Rig()
        answers = ["wait"]
        asked = []

        def turn(now, plan_id):
            asked.append(plan_id)
            return answers[-1]

        r.seq.turn = turn
        r.full_shutdown()
        r.run(5000)
        self.assertEqual(r.ups.sent, [])
        self.assertTrue(len(asked) > 1 and asked[0] == r.seq.plan_id)
        answers.append("peer")
        r.tick()
        self.assertEqual(r.seq.load_off, "peer")
        off = r.records("ups_off")
        self.assertEqual(len(off), 1)
        self.assertEqual((off[0][1]["ok"], off[0][1]["by"]), (True, "peer"))
        n = len(asked)
        r.run(Q.LOAD_OFF_RETRY_MS * 5)
        self.assertEqual(r.ups.sent, [])  # never sent here, and not asked again
        self.assertEqual(len(asked), n)
        self.assertEqual(r.seq.to_dict(r.now)["load_off"], "peer")

    def test_a_load_off_already_at_the_ups_is_recorded_as_the_ups_s_not_sent(self):
        r = Rig()
        r.seq.turn = lambda now, plan_id: "ups"
        r.full_shutdown()
        self.assertEqual(r.ups.sent, [])
        self.assertEqual(r.seq.load_off, "peer")
        off = r.records("ups_off")
        self.assertEqual([(o[1]["ok"], o[1]["by"]) for o in off], [(True, "ups")])

    def test_a_failed_try_asks_again_before_retrying(self):
        r = Rig()
        r.ups = FakeUps(r, ok=False)
        r.seq.ups = r.ups
        answers = ["send"]
        r.seq.turn = lambda now, plan_id: answers[-1]
        r.full_shutdown()
        self.assertEqual((r.seq.load_off, len(r.ups.sent)), ("failed", 1))
        answers.append("peer")  # meanwhile the peer's own try went through
        r.run(Q.LOAD_OFF_RETRY_MS * 5)
        self.assertEqual(len(r.ups.sent), 1)
        self.assertEqual(r.seq.load_off, "peer")


class Cancel(TestCase):
    def test_mains_back_before_ponr_clears_fsd_and_nothing_shuts_down(self):
        tiers = std_tiers()
        tiers[0]["delay_s"] = 10  # apps waits 10 s before its FSD
        r = Rig(tiers=tiers)
        r.outage()
        r.run_until(r.state(S.SHUTTING_DOWN))
        r.run(3000)
        r.mains_back()
        r.run_until(r.state(S.ONLINE), 5000)
        self.assertEqual(r.fsd_times(True), [])  # no FSD ever raised
        cleared = [e[1] for e in r.log if e[0] == "fsd" and not e[2]]
        self.assertEqual(sorted(cleared), ["apps", "databases", "storage"])
        self.assertIn("shutdown_cancelled", r.types())
        self.assertEqual(r.seq.phases(), {"apps": "idle", "databases": "idle", "storage": "idle"})
        r.run(60000)
        self.assertEqual(r.fsd_times(True), [])
        self.assertEqual(r.ups.sent, [])
        self.assertTrue(all(h.state == "up" for h in r.fleet.hosts))

    def test_after_ponr_the_sequence_completes_and_the_ups_restores(self):
        r = Rig()
        r.outage()
        r.run_until(r.state(S.SHUTTING_DOWN))
        r.mains_back()  # right after the first FSD
        r.run_until(r.state(S.LOAD_OFF), 120000)
        self.assertIn(S.MAINS_BACK_AFTER_PONR, [x[3] for x in r.recs])
        self.assertEqual([t for t, _ in r.fsd_times()], ["apps", "databases", "storage"])
        self.assertEqual(r.ups.sent, [b"S01R0001\r"])
        # the UPS cuts the load: FSD is cleared, nothing is latched for the servers' return
        r.recs.extend(r.sm.load_off_done(r.now))
        r.tick()
        self.assertEqual(r.sm.state, S.WAIT_MAINS)
        self.assertEqual(r.nut.on, {})
        self.assertEqual(r.seq.phases(), {"apps": "off", "databases": "off", "storage": "off"})


class PowerOn(TestCase):
    def test_reverse_order_wol_and_health_gating(self):
        r = Rig()
        r.full_shutdown()
        r.power_cycle()
        r.run_until(r.state(S.RESTORING), 120000)
        tr = r.now
        self.assertEqual(r.seq.phases()["storage"], "waking")
        r.run_until(r.state(S.ONLINE), 600000)
        # storage first (nas1 boots in 20 s), databases after its 10 s delay (db1: 30 s),
        # then apps; web1 is tcp-checked every 5 s, web2 logs in to NUT after 10 s
        self.assertEqual(r.wols(), [("nas1", tr), ("db1", tr + 30000), ("web1", tr + 60000),
                                    ("web2", tr + 60000)])
        ups = r.records("host_up")
        self.assertEqual([(u[1]["host"], u[1]["took_ms"]) for u in ups],
                         [("nas1", 20000), ("db1", 30000), ("web2", 10000), ("web1", 15000)])
        self.assertEqual(r.seq.phases(), {"apps": "up", "databases": "up", "storage": "up"})
        self.assertEqual(r.seq.m_boot, {"nas1": 20000, "db1": 30000, "web2": 10000,
                                        "web1": 15000})
        # each tier's FSD was cleared before its first packet
        for name, tier in (("nas1", "storage"), ("db1", "databases"), ("web1", "apps")):
            i_clear = max(i for i, e in enumerate(r.log) if e[0] == "fsd" and e[1] == tier
                          and not e[2] and e[3] <= dict(r.wols())[name])
            i_wol = [i for i, e in enumerate(r.log) if e[0] == "wol" and e[1] == name][0]
            self.assertLess(i_clear, i_wol)
        self.assertEqual(r.nut.on, {})
        pw = [p[1] for p in r.records("power_on") if "tier" in p[1]]
        self.assertEqual([(p["tier"], p["took_ms"]) for p in pw],
                         [("storage", 20000), ("databases", 30000), ("apps", 15000)])
        summary = r.seq.summary(r.now)
        self.assertEqual(summary["tiers"][0]["name"], "storage")
        self.assertEqual(summary["tiers"][0]["hosts"][0]["took_s"], 20.0)
        json.dumps(summary)

    def test_fsd_raised_meanwhile_is_cleared_before_the_wake(self):
        r = Rig()
        r.full_shutdown()
        r.power_cycle()
        r.tick()
        self.assertEqual(r.nut.on, {})
        r.nut.set_fsd("storage", True)  # e.g. a primary upsmon sent "FSD storage"
        r.run_until(r.state(S.RESTORING), 120000)
        i_wol = [i for i, e in enumerate(r.log) if e[0] == "wol"][0]
        self.assertEqual(r.log[i_wol - 1][:3], ("fsd", "storage", False))
        self.assertNotIn("storage", r.nut.on)

    def test_host_already_up_gets_no_packet(self):
        r = Rig()
        r.full_shutdown()
        r.power_cycle()
        # nas1 powered on with its outlet and logged in again before the power-on began
        nas = r.fleet.hosts[3]
        nas.state = "up"
        nas.connected = True
        r.nut.clients["storage"].append(nas.addr)
        m = dict(r.seq.m_boot)
        r.run_until(r.state(S.RESTORING), 120000)
        self.assertEqual(r.seq.phase("storage"), "up")
        self.assertNotIn("nas1", [w[0] for w in r.wols()])
        self.assertEqual(r.records("host_up")[0][1]["took_ms"], 0)
        self.assertEqual(r.seq.m_boot, m)  # not a boot measurement

    def test_tcp_host_already_back_is_not_woken_but_still_checked(self):
        r = Rig()
        r.full_shutdown()
        r.power_cycle()
        web1 = r.fleet.hosts[0]
        web1.state = "up"
        web1.connected = True
        web1.t_up = r.now
        web1.tcp_ms = 200000  # its service takes long to start after the OS is up
        r.nut.clients["apps"].append(web1.addr)
        r.run_until(r.state(S.ONLINE), 600000)
        self.assertEqual([w[0] for w in r.wols()], ["nas1", "db1", "web2"])
        up = [u[1] for u in r.records("host_up") if u[1]["host"] == "web1"][0]
        self.assertEqual(r.now, web1.t_up + 200000)  # apps waited for web1's tcp check
        self.assertEqual(up["tries"], 0)

    def test_retries_then_gives_up_and_next_tier_starts(self):
        r = Rig(hosts=std_hosts(nas1={"boot": None}),
                recovery={"boot_timeout_s": 60, "wake_retries": 2})
        r.full_shutdown()
        r.power_cycle()
        r.run_until(r.state(S.RESTORING), 120000)
        tr = r.now
        r.run_until(lambda: r.seq.phase("storage") == "timeout", 600000)
        self.assertEqual([w for w in r.wols() if w[0] == "nas1"],
                         [("nas1", tr), ("nas1", tr + 60000), ("nas1", tr + 120000)])
        self.assertEqual(r.now, tr + 180000)
        to = r.records("host_timeout")[0][1]
        self.assertEqual((to["host"], to["tries"], to["waited_ms"]), ("nas1", 3, 180000))
        r.run_until(r.state(S.ONLINE), 600000)
        self.assertEqual(r.records("power_on")[-1][1]["failed"], ["nas1"])
        self.assertEqual(dict(r.wols())["db1"], tr + 180000 + 10000)

    def test_host_without_mac_is_waited_for_not_woken(self):
        tiers = std_tiers()
        tiers[2]["hosts"][0]["mac"] = None
        r = Rig(tiers=tiers)
        r.full_shutdown()
        r.power_cycle()
        r.run_until(r.state(S.RESTORING), 120000)
        tr = r.now
        r.run(7000)
        nas = r.fleet.hosts[3]  # its BIOS powers it on when the outlet returns
        nas.state = "booting"
        nas.t = r.now + 3000
        r.run_until(lambda: r.seq.phase("storage") == "up", 60000)
        self.assertEqual(r.now, tr + 10000)
        self.assertNotIn("nas1", [w[0] for w in r.wols()])


def confirm_rig(apps_wait=120, web1_halt=7000, web2_halt=2000):
    """apps confirms its servers off: web1 logs out at FSD + 3 s and halts 7 s later, web2 logs
    out at FSD + 5 s and halts 2 s later."""
    tiers = [tier("apps", [hcfg("web1", ADDR["web1"], MAC["web1"], "tcp:80"),
                           hcfg("web2", ADDR["web2"], MAC["web2"], "tcp:22")], apps_wait, 0,
                  confirm_off=True),
             tier("storage", [hcfg("nas1", ADDR["nas1"], MAC["nas1"])], 120, 0)]
    hosts = [Host("apps", "web1", ADDR["web1"], MAC["web1"], 3000, 15000),
             Host("apps", "web2", ADDR["web2"], MAC["web2"], 5000, 15000),
             Host("storage", "nas1", ADDR["nas1"], MAC["nas1"], 4000, 20000)]
    hosts[0].halt_ms = web1_halt
    hosts[1].halt_ms = web2_halt
    return Rig(tiers=tiers, hosts=hosts)


class ConfirmOff(TestCase):
    def test_a_tier_is_down_only_once_its_servers_stop_answering(self):
        r = confirm_rig()
        r.full_shutdown()
        fsd = dict(r.fsd_times())
        t_fsd = fsd["apps"]
        # web1 halts at FSD + 10 s: probed every second, proven off within a probe and a step
        off = {j[1]["host"]: j for j in r.records("host_off")}
        self.assertEqual(sorted(off), ["web1", "web2"])
        self.assertTrue(7000 <= off["web1"][1]["after_logout_ms"] <= 7000 + Q.OFF_PROBE_MS + STEP,
                        off["web1"])
        self.assertTrue(2000 <= off["web2"][1]["after_logout_ms"] <= 2000 + Q.OFF_PROBE_MS + STEP,
                        off["web2"])
        self.assertTrue(fsd["storage"] >= t_fsd + 10000, (fsd, t_fsd))
        self.assertEqual(fsd["storage"], off["web1"][2])  # the next tier starts at that step
        done = r.records("tier_done")[0][1]
        self.assertEqual(done["tier"], "apps")
        self.assertEqual(done["hosts"], {"web1": 3000, "web2": 5000})
        self.assertEqual(done["off"], {"web1": off["web1"][1]["after_logout_ms"],
                                       "web2": off["web2"][1]["after_logout_ms"]})
        hosts = r.seq.summary(r.now)["tiers"][0]["hosts"]
        self.assertEqual([(h["state"], h["off_s"]) for h in hosts],
                         [("off", seqstate.seconds(done["off"]["web1"])),
                          ("off", seqstate.seconds(done["off"]["web2"]))])
        # the storage tier, without confirm_off, is done at the logout as before
        self.assertNotIn("off", r.records("tier_done")[1][1])

    def test_without_it_the_same_servers_count_as_down_at_their_logout(self):
        r = confirm_rig()
        for t in r.seq.tiers:
            t.confirm_off = False
        r.full_shutdown()
        fsd = dict(r.fsd_times())
        self.assertEqual(fsd["storage"] - fsd["apps"], 5000)
        self.assertEqual(r.records("host_off"), [])

    def test_a_server_that_keeps_answering_times_out_as_running(self):
        r = confirm_rig(apps_wait=30, web1_halt=10 ** 6)
        r.full_shutdown()
        to = r.records("tier_timeout")
        self.assertEqual(len(to), 1)
        self.assertEqual((to[0][1]["tier"], to[0][1]["pending"], to[0][1]["running"],
                          to[0][1]["waited_ms"]), ("apps", [], ["web1"], 30000))
        self.assertEqual([j[1]["host"] for j in r.records("host_off")], ["web2"])
        self.assertEqual(r.seq.phase("apps"), "timeout")

    def test_no_network_proves_nothing(self):
        r = confirm_rig(apps_wait=30)
        r.health.net_state = lambda: "down"
        r.full_shutdown()
        to = r.records("tier_timeout")
        self.assertEqual(to[0][1]["running"], ["web1", "web2"])
        self.assertEqual(r.records("host_off"), [])

    def test_proven_off_survives_a_reboot(self):
        r = confirm_rig(web1_halt=60000)
        r.outage()
        r.run_until(lambda: len(r.records("host_off")) == 1)  # web2 proven off, web1 running
        saved = r.seq.to_dict(r.now)
        r.reboot(down_ms=4000, seq_saved=json.loads(json.dumps(saved)))
        t = r.seq.tiers[0]
        self.assertEqual([h.state for h in t.hosts], ["out", "off"])
        self.assertTrue(t.hosts[1].t2 is not None)
        r.run_until(r.state(S.LOAD_OFF))
        self.assertEqual([j[1]["host"] for j in r.records("host_off")], ["web2", "web1"])

    def test_the_site_file_needs_tcp_checks_on_a_confirmed_tier(self):
        obj = {"tiers": [tier("apps", [hcfg("web1", ADDR["web1"], None, "tcp:80"),
                                       hcfg("web2", ADDR["web2"], None, "nut")],
                              confirm_off=True)]}
        _, errs = config.validate(obj)
        self.assertEqual(errs, ['tiers[0].hosts[1].health: tier apps has confirm_off, which '
                                'proves a server off by its tcp check failing; health is "nut", '
                                'allowed: tcp:<port>'])


class Resume(TestCase):
    def test_reboot_mid_shutdown_resumes_at_the_tier_in_progress(self):
        r = Rig(hosts=std_hosts(db1={"logout": 20000}))
        r.outage()
        r.run_until(lambda: r.seq.phase("databases") == "waiting")
        t_db = dict(r.fsd_times())["databases"]
        r.run(2000)
        r.reboot(down_ms=3000)
        # the NUT server's FSD was in RAM: re-raised for the tiers reached
        self.assertEqual(sorted(r.nut.on), ["apps", "databases"])
        self.assertEqual(r.sm.state, S.SHUTTING_DOWN)
        self.assertEqual(r.seq.phase("databases"), "waiting")
        # db1 is still shutting down and reconnects 4 s after the reboot: the empty tier
        # must not count as down meanwhile
        r.run(4000)
        self.assertNotIn("storage", r.nut.on)
        db1 = r.fleet.hosts[2]
        db1.connected = True
        r.nut.clients["databases"].append(db1.addr)
        r.run_until(lambda: r.seq.phase("databases") == "done", 20000)
        # it logs out when its shutdown ends (20 s after the first FSD)
        self.assertEqual(r.now, t_db + 20000)
        r.run_until(r.state(S.LOAD_OFF), 60000)
        self.assertEqual(r.seq.phase("storage"), "done")
        self.assertEqual(r.ups.sent, [b"S01R0001\r"])
        # only one FSD raise for apps before the reboot, one re-raise after
        self.assertEqual([t for t, _ in r.fsd_times()],
                         ["apps", "databases", "apps", "databases", "storage"])

    def test_a_tier_told_soon_after_a_reboot_waits_for_its_clients_to_reconnect(self):
        # the apps end right after the reboot: the databases are told while db1's upsmon has
        # not reconnected yet; an empty tier then is no proof that its servers are down
        r = Rig(hosts=std_hosts(web1={"logout": 30000}, web2={"logout": 30000}))
        r.outage()
        r.run_until(lambda: r.seq.phase("apps") == "waiting")
        r.run(1000)
        r.reboot(down_ms=1000)
        t_boot = r.now
        web = [h.addr for h in r.fleet.hosts[:2]]
        r.nut.clients["apps"].extend(web)  # the apps' upsmons reconnect, see FSD...
        r.run(500)
        for a in web:
            r.nut.clients["apps"].remove(a)  # ...and finish
        r.run_until(lambda: r.seq.phase("apps") == "done", 5000)
        r.run_until(lambda: "databases" in r.nut.on, 15000)  # after the tier's delay
        self.assertLess(r.now - t_boot, Q.RESUME_GRACE_MS)
        r.run(3000)
        self.assertNotEqual(r.seq.phase("databases"), "done")
        self.assertNotIn("storage", r.nut.on)
        db1 = r.fleet.hosts[2]
        db1.connected = True
        r.nut.clients["databases"].append(db1.addr)
        r.run(2000)
        self.assertEqual(r.seq.phase("databases"), "waiting")
        self.assertNotIn("storage", r.nut.on)
        self.assertEqual(r.ups.sent, [])

    def test_client_that_never_reconnects_counts_down_after_the_grace(self):
        r = Rig()
        r.outage()
        r.run_until(lambda: r.seq.phase("databases") == "waiting")
        r.run(1000)
        r.reboot(down_ms=1000)
        t = r.now
        db1 = r.fleet.hosts[2]
        db1.state = "off"  # it finished shutting down while the board was rebooting
        r.run_until(lambda: r.seq.phase("databases") == "done", 60000)
        self.assertEqual(r.now, t + Q.RESUME_GRACE_MS)

    def test_reboot_mid_power_on_resumes_at_the_tier_in_progress(self):
        r = Rig()
        r.full_shutdown()
        r.power_cycle()
        r.run_until(r.state(S.RESTORING), 120000)
        tr = r.now
        r.run_until(lambda: r.seq.phase("databases") == "waking", 60000)
        r.run(10000)
        r.reboot(down_ms=2000, drop_clients=False)
        # nas1 reconnects (it is up); db1 keeps booting and logs in at tr + 60 s
        self.assertEqual(r.seq.phase("storage"), "up")
        self.assertEqual(r.seq.phase("databases"), "waking")
        r.run_until(r.state(S.ONLINE), 300000)
        wol = r.wols()
        self.assertEqual([w[0] for w in wol], ["nas1", "db1", "web1", "web2"])  # no re-wake
        up = [u[1] for u in r.records("host_up") if u[1]["host"] == "db1"][0]
        self.assertEqual(up["took_ms"], 30000)  # the boot time counts the reboot
        self.assertEqual(dict(wol)["web1"], tr + 60000)

    def test_restore_rejects_other_config(self):
        r = Rig()
        d = r.seq.to_dict(r.now)
        other = Rig(tiers=std_tiers()[:2], hosts=std_hosts()[:3])
        self.assertFalse(other.seq.restore(d, 0))
        self.assertFalse(r.seq.restore({"v": 99}, 0))


class SecondOutage(TestCase):
    def test_outage_during_restore_starts_a_new_ordered_shutdown(self):
        r = Rig(policy={"grace_s": 20}, hosts=std_hosts(db1={"boot": 25000}))
        r.full_shutdown()
        r.power_cycle()
        r.run_until(r.state(S.RESTORING), 120000)
        pid = r.sm.plan_id
        r.run_until(lambda: r.seq.phase("databases") == "waking", 60000)
        n_wol = len(r.wols())
        n_fsd = len(r.fsd_times())
        r.outage()
        r.run_until(r.state(S.ON_BATTERY), 1000)
        r.run(19000)
        # on battery the power-on pauses: db1 boots (it was woken) but apps is not woken
        self.assertEqual(len(r.wols()), n_wol)
        self.assertEqual(r.sm.state, S.ON_BATTERY)
        r.run_until(r.state(S.SHUTTING_DOWN), 5000)
        self.assertEqual(r.sm.plan_id, pid + 1)
        r.run_until(r.state(S.LOAD_OFF), 120000)
        new = r.fsd_times()[n_fsd:]
        self.assertEqual([t for t, _ in new], ["apps", "databases", "storage"])
        td = [d[1] for d in r.records("tier_done") if d[1]["plan"] == pid + 1]
        self.assertEqual([(d["tier"], d["took_ms"]) for d in td],
                         [("apps", 0), ("databases", 8000), ("storage", 4000)])
        self.assertEqual(len(r.ups.sent), 2)  # one load-off per shutdown plan
        self.assertEqual(len(r.wols()), n_wol)


class Drill(TestCase):
    def test_the_drill_module_loads_with_the_first_drill_not_at_boot(self):
        # boards without ROMFS hold every imported module's code in RAM
        sys.modules.pop("sentinel.drill", None)
        r = Rig()
        r.tick()
        self.assertNotIn("sentinel.drill", sys.modules)
        r.i.commands.append("drill")
        r.tick()
        r.tick()
        self.assertIn("sentinel.drill", sys.modules)
        self.assertEqual(r.sm.state, S.ONLINE)
        self.assertIsNotNone(r.seq.report)

    def test_drill_checks_everything_and_touches_nothing(self):
        r = Rig(hosts=std_hosts(db1={"up": False}))
        r.fleet.hosts[0].tcp_ms = 10 ** 9  # web1 is up but its service does not answer
        r.i.commands.append("drill")
        r.tick()  # SHUTTING_DOWN (drill): who is logged in; then RESTORING (drill) at once
        self.assertEqual(r.sm.state, S.RESTORING)
        self.assertTrue(r.sm.drill)
        r.tick()  # probes answer at once here: report, then ONLINE
        self.assertEqual(r.sm.state, S.ONLINE)
        self.assertEqual(r.fsd_times(), [])
        self.assertEqual(r.wols(), [])
        self.assertEqual(r.ups.sent, [])
        self.assertFalse(r.sm.ponr)
        rep = r.seq.report
        self.assertFalse(rep["ok"])
        self.assertEqual(rep["problems"], [
            "web1 (apps): health check tcp:80 failed",
            "db1 (databases): not logged in to its tier"])
        self.assertEqual(rep["tiers"][1]["hosts"][0]["reachable"], False)
        apps = rep["tiers"][0]
        self.assertEqual(apps["hosts"][1], {"host": "web2", "addr": "10.0.0.6",
                                            "connected": True, "reachable": True})
        # estimates from config (nothing measured yet): apps 120 s, databases nobody logged
        # in (only its 10 s delay), storage 120 s; power-on: 300 s boot timeout per tier + delay
        self.assertEqual(rep["shutdown_s"], 250.0)
        self.assertEqual(rep["tiers"][1]["down_basis"], "nobody logged in")
        self.assertEqual(rep["power_on_s"], 910.0)
        self.assertEqual(rep["order_up"], ["storage", "databases", "apps"])
        d = r.records("drill")[0][1]
        self.assertEqual((d["ok"], d["n_problems"]), (False, 2))
        self.assertEqual(r.seq.phases(), {"apps": "idle", "databases": "idle", "storage": "idle"})
        self.assertIn(S.DRILL_DONE, [x[3] for x in r.recs])

    def test_drill_after_a_real_cycle_uses_measured_figures(self):
        r = Rig()
        r.full_shutdown()
        r.power_cycle()
        r.run_until(r.state(S.ONLINE), 600000)
        r.i.commands.append("drill")
        r.run_until(lambda: r.seq.report is not None, 60000)
        rep = r.seq.report
        self.assertTrue(rep["ok"], rep["problems"])
        # measured: apps 5 s, databases 10 s delay + 8 s, storage 4 s
        self.assertEqual(rep["shutdown_s"], 27.0)
        # measured boots: storage 20 s, databases 10 s + 30 s, apps max(15, 10)
        self.assertEqual(rep["power_on_s"], 75.0)
        self.assertEqual({t["name"]: t["up_basis"] for t in rep["tiers"]},
                         {"apps": "measured", "databases": "measured", "storage": "measured"})

    def test_real_outage_aborts_the_drill(self):
        r = Rig(policy={"grace_s": 30})
        r.health.tcp_fn = self.slow_tcp  # the drill waits for web1's probe answer
        r.i.commands.append("drill")
        r.run_until(r.state(S.RESTORING), 2000)
        r.outage()
        r.run_until(r.state(S.ON_BATTERY), 1000)
        self.assertEqual(r.seq.mode, None)
        self.assertIn("drill_aborted", r.types())
        r.run_until(r.state(S.SHUTTING_DOWN), 40000)
        self.assertFalse(r.seq.drill)
        r.tick()
        self.assertIn("apps", r.nut.on)  # the real plan runs

    async def slow_tcp(self, addr, port, timeout_ms):
        await sleep_ms(10 ** 6)  # parked by run_now: never answers
        return True


class Persist(TestCase):
    def test_to_dict_is_json_and_round_trips(self):
        r = Rig()
        r.outage()
        r.run_until(lambda: r.seq.phase("databases") == "waiting")
        d = json.loads(json.dumps(r.seq.to_dict(r.now)))
        self.assertFalse(r.seq.dirty)
        r2 = Rig()
        self.assertTrue(r2.seq.restore(d, r.now + 500, 0))
        a = r.seq.summary(r.now)
        b = r2.seq.summary(r.now + 500)
        self.assertEqual(a["tiers"][0], b["tiers"][0])
        self.assertEqual(r2.seq.pos, 1)
        self.assertEqual(r2.seq.m_down, {"apps": 5000})


class StepRecords(TestCase):
    def test_step_hands_over_the_records_its_reports_produced(self):
        r = Rig()
        r.i.commands.append("drill")
        r.sm.update(r.now, r.i)  # SHUTTING_DOWN (drill)
        got = []
        for _ in range(3):
            got.extend(r.seq.step(r.now, r.sm))  # the list is reused: keep its items
            if r.sm.state == S.ONLINE:
                break
            r.now += STEP
        self.assertEqual(r.sm.state, S.ONLINE)
        self.assertEqual([g[3] for g in got if g[1] != g[2]], [S.SEQUENCE_DONE, S.DRILL_DONE])


class SavedFormat(TestCase):
    def test_fields_are_named_and_modes_are_not_phases(self):
        r = Rig()
        r.outage()
        r.run_until(lambda: r.seq.phase("databases") == "waiting")
        d = r.seq.to_dict(r.now)
        self.assertEqual(d["v"], 2)
        self.assertEqual(d["mode"], "shutdown")
        db = d["tiers"][1]
        self.assertEqual((db["name"], db["phase"], db["t_act"]), ("databases", "waiting", 100))
        self.assertEqual(db["hosts"][0]["state"], "in")
        self.assertEqual(d["tiers"][0]["hosts"][0]["t1"], 12100)  # web1 logged out at 3 s
        r.run_until(r.state(S.LOAD_OFF))
        r.power_cycle()
        r.run_until(lambda: r.seq.phase("storage") == "up", 600000)
        self.assertEqual(r.seq.summary(r.now)["mode"], "power_on")
        for mode in seqstate.MODES:
            self.assertNotIn(mode, (seqstate.IDLE, seqstate.FSD, seqstate.WAITING, seqstate.DONE,
                                    seqstate.TIMEOUT, seqstate.OFF, seqstate.WAKING, seqstate.UP))

    def test_unreadable_record_leaves_the_plan_untouched(self):
        r = Rig()
        r.outage()
        r.run_until(lambda: r.seq.phase("databases") == "waiting")
        d = json.loads(json.dumps(r.seq.to_dict(r.now)))
        d["tiers"][2]["hosts"][0]["t0"] = "x"  # the last field read is bad
        r2 = Rig()
        self.assertFalse(r2.seq.restore(d, r.now))
        self.assertEqual(r2.seq.mode, None)
        self.assertEqual(r2.seq.phases(), {"apps": "idle", "databases": "idle", "storage": "idle"})
        self.assertIsNone(r2.seq.tiers[0].t_act)
        d["tiers"][2]["hosts"][0]["t0"] = None
        d["mode"] = "up"  # a version 1 name in a version 2 record
        self.assertFalse(r2.seq.restore(d, r.now))


# What the previous firmware (saved format 1: tiers and hosts as positional lists, modes "down",
# "off", "up") saved at two moments of the standard rig's timeline, captured from it.
V1_MID_SHUTDOWN = json.loads(  # Rig(); outage(); until databases is "waiting" (now 16200)
    '{"age_ms": 15100, "m_down": {"apps": 5000}, "mode": "down", "drill": false, '
    '"complete": false, "tiers": [["apps", "done", 15100, 15100, 10100, [["out", null, null, '
    '12100, 0, false], ["out", null, null, 10100, 0, false]]], ["databases", "waiting", 10100, '
    '100, null, [["in", null, null, null, 0, false]]], ["storage", "idle", null, null, null, '
    '[[null, null, null, null, 0, false]]]], "m_boot": {}, "load_off": null, "plan_id": 1, '
    '"pos": 1, "lo_tries": 0, "v": 1}')
V1_MID_POWER_ON = json.loads(  # db1 boots in 400 s; full_shutdown(); power_cycle(); until db1
    # has had its second wake, then 5 s (now 423200)
    '{"age_ms": 335000, "m_down": {"storage": 4000, "databases": 8000, "apps": 5000}, '
    '"mode": "up", "drill": false, "complete": false, "tiers": [["apps", "off", null, null, '
    'null, [[null, null, null, null, 0, false], [null, null, null, null, 0, false]]], '
    '["databases", "waking", 315000, 305000, null, [["waking", 305000, 5000, null, 2, false]]], '
    '["storage", "up", 335000, 335000, 315000, [["up", 335000, 335000, 315000, 1, false]]]], '
    '"m_boot": {"nas1": 20000}, "load_off": null, "plan_id": 2, "pos": 1, "lo_tries": 0, '
    '"v": 1}')


class Upgrade(TestCase):
    """A board upgraded in the middle of a plan resumes it from what the previous firmware
    saved exactly as a board that kept this firmware resumes from its own record."""

    def twins(self, setup, now, **over):
        up, same = Rig(hosts=std_hosts(**over)), Rig(hosts=std_hosts(**over))
        for r in (up, same):
            setup(r)
            self.assertEqual(r.now, now)  # the moment of the capture
        return up, same

    def test_mid_shutdown(self):
        def setup(r):
            r.outage()
            r.run_until(lambda: r.seq.phase("databases") == "waiting")
        up, same = self.twins(setup, 16200)
        up.reboot(3000, seq_saved=V1_MID_SHUTDOWN)
        same.reboot(3000)
        self.assertEqual(up.seq.mode, seqstate.MODE_SHUTDOWN)
        self.assertEqual(up.seq.to_dict(up.now), same.seq.to_dict(same.now))
        self.assertEqual(sorted(up.nut.on), ["apps", "databases"])  # FSD raised again
        for r in (up, same):
            r.run_until(r.state(S.LOAD_OFF), 120000)
        self.assertEqual(up.jr, same.jr)
        self.assertEqual(up.log, same.log)
        # databases: FSD at 16100, the 3 s reboot, then its grace for db1 to reconnect (it
        # does not: the rig's hosts stay off the network); storage's nas1 is gone likewise
        self.assertEqual(up.seq.m_down, {"apps": 5000, "databases": 3000 + Q.RESUME_GRACE_MS + 100,
                                         "storage": 0})

    def test_mid_power_on(self):
        def setup(r):
            r.full_shutdown()
            r.power_cycle()
            r.run_until(lambda: r.seq.tiers[1].hosts[0].tries == 2, 900000)
            r.run(5000)
        up, same = self.twins(setup, 423200, db1={"boot": 400000})
        up.reboot(2000, drop_clients=False, seq_saved=V1_MID_POWER_ON)
        same.reboot(2000, drop_clients=False)
        self.assertEqual(up.seq.mode, seqstate.MODE_POWER_ON)
        self.assertEqual(up.seq.to_dict(up.now), same.seq.to_dict(same.now))
        for r in (up, same):
            r.run_until(r.state(S.ONLINE), 900000)
        self.assertEqual(up.jr, same.jr)
        self.assertEqual(up.wols(), same.wols())
        self.assertEqual(up.seq.m_boot, same.seq.m_boot)
        self.assertEqual(sorted(up.seq.m_boot), ["db1", "nas1", "web1", "web2"])


class ClientFsd(TestCase):
    """A NUT client's FSD on a tier (the server has raised it there and handed ("fsd", tier) to
    the state machine): an operator-forced shutdown starting with that tier."""

    def client_fsd(self, r, name):
        r.nut.set_fsd(name, True)  # what NutServer does on FSD before it tells anyone
        r.i.commands.append(("fsd", name))

    def test_starts_the_plan_from_that_tier_and_the_flag_clears_at_power_on(self):
        r = Rig()
        r.run(1000)
        self.client_fsd(r, "databases")
        r.tick()
        self.assertEqual((r.sm.state, r.sm.shutdown_cause), (S.SHUTTING_DOWN, S.CLIENT_FSD))
        r.run_until(r.state(S.LOAD_OFF))
        told = [j[1]["tier"] for j in r.records("tier_fsd")]
        self.assertEqual(told, ["databases", "apps", "storage"])
        # the forced tier does not wait its delay_s (10 s): the operator asked now
        self.assertLess(r.records("tier_fsd")[0][2] - 1000, 2000)
        self.assertEqual(len(r.ups.sent), 1)  # the UPS power cycle, as for any full plan
        r.power_cycle()
        r.run_until(r.state(S.ONLINE))
        self.assertEqual(r.nut.on, {})  # no tier left in FSD, without a reboot
        self.assertTrue(("fsd", "databases", False) in [e[:3] for e in r.log])

    def test_is_neither_cancelled_by_mains_nor_aborted(self):
        r = Rig(policy={"grace_s": 600})
        r.outage()
        r.run(1000)
        self.assertEqual(r.sm.state, S.ON_BATTERY)
        self.client_fsd(r, "apps")
        r.tick()
        self.assertEqual(r.sm.state, S.SHUTTING_DOWN)
        r.i.commands.append("abort")
        r.mains_back()
        r.run(5000)
        self.assertEqual(r.sm.state, S.SHUTTING_DOWN)
        self.assertIn(S.REJECTED, [x[3] for x in r.recs])

    def test_ends_a_drill_and_runs_for_real(self):
        r = Rig()
        r.i.commands.append("drill")
        r.tick()
        self.assertTrue(r.sm.drill)
        self.client_fsd(r, "storage")
        r.tick()
        self.assertEqual((r.sm.state, r.sm.drill, r.sm.forced_tier),
                         (S.SHUTTING_DOWN, False, "storage"))
        r.run_until(r.state(S.LOAD_OFF))
        self.assertEqual([j[1]["tier"] for j in r.records("tier_fsd")],
                         ["storage", "apps", "databases"])

    def test_a_reboot_keeps_the_forced_order(self):
        r = Rig()
        self.client_fsd(r, "storage")
        r.run(2000)
        self.assertEqual(r.seq.phase("storage"), seqstate.WAITING)
        r.reboot(down_ms=1000, drop_clients=False)
        self.assertEqual(r.sm.forced_tier, "storage")
        self.assertEqual(r.nut.on.get("storage") is not None, True)  # raised again at restore
        r.run_until(r.state(S.LOAD_OFF))
        self.assertEqual([j[1]["tier"] for j in r.records("tier_fsd")],
                         ["storage", "apps", "databases"])

    def test_while_the_load_is_off_the_flag_waits_for_the_tier_s_power_on(self):
        r = Rig()
        r.full_shutdown()
        r.power_cycle()
        self.assertEqual(r.sm.state, S.WAIT_MAINS)
        r.run(1000)
        self.client_fsd(r, "apps")
        r.tick()
        self.assertEqual(r.sm.state, S.WAIT_MAINS)
        self.assertIn("apps", r.nut.on)
        r.run_until(r.state(S.ONLINE))
        self.assertEqual(r.nut.on, {})
