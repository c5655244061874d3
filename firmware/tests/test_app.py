# The wired sentinel (sentinel.app.Sentinel) on a fake board, under the real MicroPython event
# loop: it senses, decides and answers its console before the network exists, and starts its
# NUT server when the network comes up. Also the parts the app is built from: the NUT view's
# snapshot, the loop-lag monitor, and a status that never collects garbage.
import asyncio
import gc
import json
import math
import os
import random
from array import array

from mpunit import TestCase
from sentinel import config, console
from sentinel.app import Sentinel
from sentinel.nutview import NutView, Snapshot
from sentinel.tasks import LoopLag

# loopback only; random so that two runs at once (other worktrees, a helper) do not share it
NUT_PORT = 20000 + int.from_bytes(os.urandom(2), "little") % 20000


class FakeAdc:
    """A clean 230 V / 50 Hz sine, one block per read, paced like a real ADC."""

    def __init__(self, rate, block_len, vpc):
        self.rate = rate
        self.block_len = block_len
        self.ring = array("h", bytes(2 * block_len * 16))
        self.overruns = 0
        per = rate // 50
        amp = 230.0 * math.sqrt(2) / vpc
        self.cycle = array("h", [int(amp * math.sin(2 * math.pi * k / per)) for k in range(per)])
        self.buf = array("h", bytes(2 * block_len))
        self.pos = 0
        self.blocks = 0

    def start(self):
        pass

    async def read(self):
        await asyncio.sleep_ms(self.block_len * 1000 // self.rate)
        n = len(self.cycle)
        for k in range(self.block_len):
            self.buf[k] = self.cycle[(self.pos + k) % n]
        self.pos = (self.pos + self.block_len) % n
        self.blocks += 1
        return memoryview(self.buf)


class FakeBoard:
    """Every Board method, with a network the test switches: "down", "up" or "absent"."""

    name = "fake"

    def __init__(self, cfg, net="down"):
        self.cfg = cfg
        self.net = net
        self._adc = None
        self.binds = 0
        self.hellos = []
        self.fed = 0

    async def start(self):
        pass

    def background(self):
        return []

    def adc(self, rate, block_len):
        if self._adc is None:
            self._adc = FakeAdc(rate, block_len, self.cfg["mains"]["volts_per_count"])
        return self._adc

    def contacts(self):
        raise AssertionError("no contacts configured")

    def outputs(self):
        raise AssertionError("no outputs configured")

    def uart(self, baud):
        raise AssertionError("no UPS link configured")

    def network_state(self):
        return self.net

    def network_up(self):
        return self.net == "up"

    def ip(self):
        return "127.0.0.1" if self.net == "up" else "0.0.0.0"

    def nut_bind(self):
        self.binds += 1
        return ("127.0.0.1", NUT_PORT)

    def watchdog_start(self, ms):
        pass

    def watchdog_feed(self):
        self.fed += 1

    def watchdog_park(self):
        pass

    def time(self):
        return 1700000000

    def set_time(self, epoch):
        pass

    def reset_cause(self):
        return "soft"

    def unique_id(self):
        return "fake-01"

    def reset(self):
        raise AssertionError("reset")

    def hello(self, info):
        self.hellos.append(info)

    def heartbeat(self, info):
        pass


class Console:
    """Both ends of the console: requests in (a reader), frames out (a writer)."""

    def __init__(self):
        self.pending = b""
        self.frames = []
        self.rid = 0

    def write(self, data):
        f = console.decode(data)
        if f is not None:
            self.frames.append(f)

    async def read(self, n):
        while not self.pending:
            await asyncio.sleep_ms(5)
        b, self.pending = self.pending[:n], self.pending[n:]
        return b

    def request(self, op, **args):
        self.rid += 1
        args["id"] = self.rid
        args["op"] = op
        self.pending += console.encode(args)
        return self.rid

    def reply(self, rid):
        for f in self.frames:
            if f.get("id") == rid:
                return f
        return None

    def logs(self, kind):
        return [f["data"] for f in self.frames if f.get("ev") == "log" and f.get("type") == kind]


def _rmtree(path):
    for e in os.ilistdir(path):
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            _rmtree(p)
            os.rmdir(p)
        else:
            os.remove(p)


def _root():
    """An empty directory standing for the board's filesystem."""
    root = "/tmp/ps_test_app_%08x" % random.getrandbits(30)
    os.mkdir(root)
    return root


async def _until(cond, what, ms=20000):
    """Wait for cond() with a deadline (real time: the loop must actually run the tasks)."""
    t = 0
    while not cond():
        if t >= ms:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep_ms(20)
        t += 20


async def _answer(con, op, **args):
    rid = con.request(op, **args)
    await _until(lambda: con.reply(rid) is not None, "a reply to " + op)
    r = con.reply(rid)
    if not r["ok"]:
        raise AssertionError("%s failed: %r" % (op, r))
    return r["data"]


async def _nut_ver():
    r, w = await asyncio.open_connection("127.0.0.1", NUT_PORT)
    try:
        w.write(b"LIST UPS\n")
        await w.drain()
        lines = []
        while not lines or lines[-1] != b"END LIST UPS\n":
            lines.append(await r.readline())
        return lines
    finally:
        w.close()
        await w.wait_closed()  # MicroPython closes the socket here, not in close()


def _cfg():
    cfg = config.defaults()
    cfg["nut"]["port"] = NUT_PORT
    return cfg


def run_app(board, body):
    """Run the wired sentinel on `board` while `body(sentinel, console)` runs."""
    con = Console()
    root = _root()
    s = Sentinel(board, board.cfg, "defaults", [], write=con.write, root=root)

    async def main():
        t = asyncio.create_task(s.run(con))
        try:
            await body(s, con)
        finally:
            t.cancel()
            s.nut.close()
            await asyncio.sleep_ms(0)

    try:
        asyncio.run(main())
    finally:
        asyncio.new_event_loop()  # drop the sentinel's tasks: the next test starts clean
        _rmtree(root)
        os.rmdir(root)
    return s, con


async def _first_status():
    """Ask NUT for ups.status from the moment it listens; its first answer."""
    for _ in range(2000):
        r, w = await asyncio.open_connection("127.0.0.1", NUT_PORT)
        try:
            w.write(b"GET VAR sentinel ups.status\n")
            await w.drain()
            line = await r.readline()
            if line:
                return line
        except OSError:
            pass  # not listening yet (the connect completes, or fails, at the first write)
        finally:
            w.close()
            await w.wait_closed()
        await asyncio.sleep_ms(1)
    raise AssertionError("NUT never listened")


class TestNutAtBoot(TestCase):
    def test_nut_listens_only_once_it_has_a_reading_to_serve(self):
        # upsmon counts a UPS answering DATA-STALE at login as lost for a whole DEADTIME, and
        # would miss an FSD in that time
        board = FakeBoard(_cfg(), "up")
        seen = {}

        async def body(s, con):
            seen["first"] = await _first_status()

        run_app(board, body)
        self.assertEqual(seen["first"], b'VAR sentinel ups.status "OL"\n')


class TestNetworkLate(TestCase):
    def test_senses_and_answers_before_the_network_then_serves_nut_when_it_comes_up(self):
        board = FakeBoard(_cfg(), "down")
        seen = {}

        async def body(s, con):
            await _until(lambda: board.hellos, "hello")
            # sensing, deciding and the console work with no network
            await _until(lambda: s.sensing.monitor.good and s.control.snap.seen,
                         "mains read as good, published")
            st = await _answer(con, "status")
            seen["before"] = st
            ident = await _answer(con, "identify")
            seen["ident"] = ident["network"]
            seen["binds_before"] = board.binds
            try:
                await _nut_ver()
                seen["listening_before"] = True
            except OSError:
                seen["listening_before"] = False
            board.net = "up"
            await _until(lambda: s.net.serving, "the NUT server to start")
            seen["lines"] = await _nut_ver()
            seen["after"] = await _answer(con, "status")

        s, con = run_app(board, body)
        before = seen["before"]
        self.assertEqual(before["network"], {"state": "down", "nut": False})
        self.assertEqual(seen["ident"], "down")
        self.assertTrue(before["mains"]["good"])
        self.assertTrue(225 < before["mains"]["v"] < 235, before["mains"])
        self.assertEqual(before["state"]["name"], "ONLINE")
        self.assertEqual(seen["binds_before"], 0)
        self.assertFalse(seen["listening_before"])
        self.assertEqual(seen["lines"][-1], b"END LIST UPS\n")
        self.assertIn(b"UPS sentinel ", seen["lines"][1])
        self.assertEqual(seen["after"]["network"], {"state": "up", "nut": True})
        self.assertEqual(con.logs("network"), [{"state": "down"}, {"state": "up"}])
        self.assertEqual(len(con.logs("nut_started")), 1)
        self.assertEqual(len(board.hellos), 1)

    def test_no_network_module_keeps_sensing_and_never_binds(self):
        board = FakeBoard(_cfg(), "absent")
        seen = {}

        async def body(s, con):
            await _until(lambda: s.sensing.monitor.good, "mains read as good")
            await _until(lambda: s.net.state == "absent", "the network state")
            seen["st"] = await _answer(con, "status")

        s, con = run_app(board, body)
        self.assertEqual(seen["st"]["network"], {"state": "absent", "nut": False})
        self.assertTrue(seen["st"]["mains"]["good"])
        self.assertEqual(board.binds, 0)
        self.assertEqual(con.logs("network"), [{"state": "absent"}])

    def test_network_up_at_boot_serves_nut_before_hello(self):
        board = FakeBoard(_cfg(), "up")
        seen = {}

        async def body(s, con):
            await _until(lambda: board.hellos, "hello")
            seen["serving_at_hello"] = s.net.serving
            seen["lines"] = await _nut_ver()

        s, con = run_app(board, body)
        self.assertTrue(seen["serving_at_hello"])
        self.assertEqual(seen["lines"][-1], b"END LIST UPS\n")
        self.assertEqual(con.logs("network"), [])  # nothing to report: up from the start
        self.assertEqual(con.logs("nut_started"), [])

    def test_status_reports_loop_and_adc_and_does_not_collect(self):
        board = FakeBoard(_cfg(), "up")
        seen = {}

        async def body(s, con):
            await _until(lambda: s.sensing.seen, "sensing")
            junk = [bytearray(1000) for _ in range(60)]
            del junk  # 60 KB of garbage a collection would free
            a0 = gc.mem_alloc()
            st = s.ops.status()
            seen["drop"] = a0 - gc.mem_alloc()
            seen["st"] = st

        s, con = run_app(board, body)
        st = seen["st"]
        self.assertLess(seen["drop"], 30000)  # status did not run a collection
        self.assertEqual(sorted(st["loop"]), ["max_stall_ms", "stall_ms_1m", "stalls"])
        self.assertEqual(st["adc"]["overruns"], 0)
        self.assertEqual(st["adc"]["ring_ms"], 64)  # 16 blocks of 16 samples at 4 kHz
        json.dumps(st)  # it goes out on the console as JSON


class TestGaps(TestCase):
    def test_lost_blocks_are_logged_and_shown_not_read_as_an_outage(self):
        board = FakeBoard(_cfg(), "up")
        seen = {}

        async def body(s, con):
            await _until(lambda: s.sensing.monitor.good, "mains read as good")
            board._adc.overruns += 3  # the reader was late: three blocks overwritten
            await _until(lambda: con.logs("adc_gap"), "an adc_gap record")
            seen["st"] = await _answer(con, "status")

        s, con = run_app(board, body)
        self.assertEqual(con.logs("adc_gap"), [{"gaps": 1, "samples": 48, "last": 48}])
        adc = seen["st"]["adc"]
        self.assertEqual((adc["overruns"], adc["gaps"], adc["gap_samples"]), (3, 1, 48))
        self.assertEqual(seen["st"]["state"]["name"], "ONLINE")
        self.assertEqual(con.logs("mains_lost"), [])


class TestRareOps(TestCase):
    def test_config_push_ops_are_loaded_per_request_and_dropped(self):
        import sys

        con = Console()
        root = _root()
        try:
            board = FakeBoard(_cfg(), "up")
            s = Sentinel(board, board.cfg, "defaults", [], write=con.write, root=root)
            h = s.rt.console.handlers
            self.assertNotIn("sentinel.ops_rare", sys.modules)
            self.assertEqual(h["config_put_chunk"]({"offset": 0, "text": "{}"}),
                             {"received": 2})
            self.assertNotIn("sentinel.ops_rare", sys.modules)
            with self.assertRaises(ValueError):
                h["config_put_chunk"]({"offset": 5, "text": "x"})  # not where the upload is
            with self.assertRaises(ValueError):
                h["config_put_commit"]({"length": 2, "sha256": "0" * 64})
            self.assertNotIn("sentinel.ops_rare", sys.modules)
            self.assertIsNone(s.ops.upload)  # a damaged upload is forgotten
            # the table is the Ops object: handlers looked up per request, unknown ops absent
            self.assertIs(h, s.ops)
            self.assertEqual(h.get("ping")({}), "pong")
            self.assertIsNotNone(h.get("time_set"))
            self.assertIsNone(h.get("nope"))
            self.assertIsNone(h.get("handlers"))  # only console ops, not any attribute
            with self.assertRaises(KeyError):
                h["nope"]
        finally:
            asyncio.new_event_loop()
            _rmtree(root)
            os.rmdir(root)


class TestLazyWake(TestCase):
    def test_wake_on_lan_loads_with_the_first_wake_not_at_boot(self):
        import sys

        sys.modules.pop("sentinel.wol", None)  # other test modules of this run import it
        con = Console()
        root = _root()
        try:
            board = FakeBoard(_cfg(), "down")
            s = Sentinel(board, board.cfg, "defaults", [], write=con.write, root=root)
            self.assertNotIn("sentinel.wol", sys.modules)
            self.assertIsNone(s.wol)
            # the sequencer's wake: a burst, skipped here with a record (the network is down)
            self.assertEqual(asyncio.run(s.control.seq.wake("02:00:00:00:00:01", "10.0.0.9")),
                             0)
            self.assertIn("sentinel.wol", sys.modules)
            self.assertEqual((s.wol.skipped, s.wol.port), (1, board.cfg["recovery"]["wol_port"]))
            self.assertEqual(con.logs("wol_skipped")[0]["reason"], "network down")
            w = s.wol
            asyncio.run(s.control.seq.wake("02:00:00:00:00:01"))
            self.assertIs(s.wol, w)  # one sender (one socket) for the board's life
        finally:
            asyncio.new_event_loop()
            _rmtree(root)
            os.rmdir(root)


class TestNutView(TestCase):
    def view(self, now=10000):
        snap = Snapshot(["apps", "db"])
        clock = [now]
        return snap, NutView("fake", ["apps", "db"], snap, lambda: clock[0], 15000), clock

    def test_wait_until_the_first_reading_and_stale_until_published(self):
        snap, v, clock = self.view()
        self.assertIsNone(v.status("apps"))
        self.assertIsNone(v.vars("apps"))
        snap.seen = True
        snap.sampler_at = 9900
        snap.at = 9950
        self.assertEqual(v.status("apps"), "OL")
        snap.ob = True
        snap.lb = True
        self.assertEqual(v.status("apps"), "OB")  # never LB: the sentinel says when, with FSD
        self.assertEqual(snap.tokens(), "OB LB")

    def test_vars_come_from_the_snapshot(self):
        snap, v, clock = self.view()
        snap.seen = True
        snap.sampler_at = snap.at = 10000
        snap.charge, snap.runtime, snap.v, snap.hz = 87, 900, 229.5, 50.01
        snap.state, snap.plan_id = "ON_BATTERY", 3
        snap.phases["db"] = "fsd"
        snap.coverage["db"] = [("sentinel.coverage.connected", "pg1")]
        d = dict(v.vars("db"))
        self.assertEqual((d["battery.charge"], d["battery.runtime"], d["input.voltage"],
                          d["input.frequency"]), (87, 900, 229.5, 50.01))
        self.assertEqual((d["sentinel.state"], d["sentinel.plan"], d["sentinel.tier"],
                          d["sentinel.tier.phase"]), ("ON_BATTERY", 3, "db", "fsd"))
        self.assertEqual(d["sentinel.coverage.connected"], "pg1")
        self.assertNotIn("ups.load", d)
        snap.load = 41
        self.assertEqual(dict(v.vars("db"))["ups.load"], 41)
        self.assertEqual(v.ups_names(), [("apps", "Power Sentinel tier apps"),
                                         ("db", "Power Sentinel tier db")])

    def test_stale_when_the_sampler_or_the_control_step_stops(self):
        snap, v, clock = self.view()
        snap.seen = True
        snap.sampler_at = snap.at = 10000
        clock[0] = 25000
        self.assertIsNotNone(v.vars("apps"))
        clock[0] = 25001
        self.assertIsNone(v.vars("apps"))  # nothing published for stale_s: DATA-STALE
        snap.at = 25000
        self.assertIsNone(v.vars("apps"))  # published, but the sampler is silent
        snap.sampler_at = 24000
        self.assertIsNotNone(v.vars("apps"))


class FakeRt:
    def __init__(self):
        self.recs = []

    def log(self, kind, data=None, critical=False):
        self.recs.append((kind, data))


class TestLoopLag(TestCase):
    def test_max_window_and_records(self):
        rt = FakeRt()
        lag = LoopLag(rt, lambda: 32)
        lag.note(3, 1000)
        lag.note(20, 2000)
        self.assertEqual((lag.max_ms, lag.window_ms(), lag.stalls), (20, 20, 0))
        self.assertEqual(rt.recs, [])
        lag.note(40, 3000)  # over half the ring: recorded
        lag.note(50, 4000)  # again within 10 s: counted, not recorded again
        self.assertEqual(lag.stalls, 2)
        self.assertEqual(rt.recs, [("loop_stall", {"ms": 40, "limit_ms": 32, "stalls": 1})])
        lag.note(1, 62000)  # a new window: the last one's worst still shows
        self.assertEqual(lag.window_ms(), 50)
        lag.note(2, 123000)  # two windows on: the stall is out of the last minute
        self.assertEqual((lag.window_ms(), lag.max_ms), (2, 50))

    def test_no_record_before_the_ring_is_known(self):
        rt = FakeRt()
        lag = LoopLag(rt, lambda: 0)
        lag.note(500, 1000)
        self.assertEqual((rt.recs, lag.max_ms), ([], 500))


class TestFeedsLoad(TestCase):
    def _app(self, host_feeds, chans=("A", "B")):
        import sys

        sys.modules.pop("sentinel.feeds", None)  # other test modules of this run import it
        cfg, errs = config.validate({
            "nut": {"port": NUT_PORT},
            "mains": {"channels": [{"name": c} for c in chans]},
            "tiers": [{"name": "apps", "hosts": [
                {"name": "a1", "address": "10.0.0.1", "feeds": host_feeds}]}]})
        self.assertEqual(errs, [])
        root = _root()
        s = Sentinel(FakeBoard(cfg, "down"), cfg, "config", [], write=Console().write,
                     root=root)
        return s, "sentinel.feeds" in sys.modules

    def test_the_site_model_loads_with_two_feeds_sensed(self):
        s, loaded = self._app(["A", "B"])
        self.assertTrue(loaded)
        self.assertEqual(s.control.feeds.names, ["A", "B"])
        self.assertIs(s.ops.feeds, s.control.feeds)
        self.assertIs(s.control.seq.feeds, s.control.feeds)   # the power-on waits for feeds
        # no server lists its feeds: the model still runs (a lost feed's alarm), but the
        # site's power-on is not held for a feed nobody said a server needs
        s, loaded = self._app([])
        self.assertTrue(loaded)
        fp = s.control.feeds
        self.assertIsNone(s.control.seq.feeds)
        fp.step(0, 0b01, True, True)   # feed B lost
        self.assertEqual(fp.alarm, "redundancy lost: feed B lost")
        self.assertEqual(fp.status()["hosts"][0]["state"], "degraded")
        fp.step(fp.grace_ms + 1000, 0b01, True, True)
        self.assertEqual(s.nut._fsd_hosts, {})   # nobody is told
        s, loaded = self._app([], ("L1", "L2", "L3"))   # phases: one feed
        self.assertFalse(loaded)
        self.assertIsNone(s.control.feeds)

    def test_a_server_on_one_phase_makes_each_phase_a_feed_of_the_site_model(self):
        import sys
        sys.modules.pop("sentinel.schema", None)   # as after boot (runtime drops it)
        s, loaded = self._app(["L2"], ("L1", "L2", "L3"))
        self.assertTrue(loaded)
        # the running board keeps no validator tables (about 30 KB)
        self.assertNotIn("sentinel.schema", sys.modules)
        fp = s.control.feeds
        self.assertEqual(fp.names, ["L1", "L2", "L3"])
        fp.step(0, 0b101, True, True)          # L2 lost: a1 (on L2) is lost
        self.assertEqual(fp.status()["hosts"][0]["state"], "lost")
        # the phase alarm says it (phases.py): the policy adds no "feed L2 lost"
        self.assertEqual(fp.alarm, "")
        fp.step(fp.grace_ms, 0b101, True, True)
        self.assertEqual(s.nut._fsd_hosts, {"apps": ("10.0.0.1",)})


    def test_feed_state_resumed_from_state_json(self):
        import json

        from sentinel.runtime import read_json, write_atomic
        s, _ = self._app(["B"])
        root = s.rt.files["state"][:-len("/state.json")]
        fp = s.control.feeds
        fp.step(0, 1, True, True)              # feed B lost (channel A good only)
        fp.step(fp.grace_ms, 1, True, True)    # grace over: a1 told FSD
        self.assertTrue(fp.dirty)
        s.control.persist()
        self.assertFalse(fp.dirty)
        saved = read_json(s.rt.files["state"])
        self.assertEqual(saved["feeds"]["lost"], [False, True])

        def boot():
            cfg = s.rt.cfg
            return Sentinel(FakeBoard(cfg, "down"), cfg, "config", [], write=Console().write,
                            root=root)
        s2 = boot()
        self.assertEqual(s2.nut._fsd_hosts, {"apps": ("10.0.0.1",)})   # told again at once
        self.assertEqual(s2.control.feeds.alarm, "redundancy lost: feed B lost")
        for bad in ("garbage", {"v": 1, "feeds": ["A", "C"]}, [1, 2]):
            write_atomic(s.rt.files["state"], json.dumps(dict(saved, feeds=bad)))
            s3 = boot()                        # ignored, never a crash
            self.assertEqual(s3.nut._fsd_hosts, {})
            self.assertEqual(s3.control.feeds.alarm, "")
            self.assertEqual(s3.control.feeds.status()["hosts"][0]["action"], "")
        write_atomic(s.rt.files["state"], "[1, 2]")   # the whole file damaged
        self.assertEqual(boot().nut._fsd_hosts, {})


class UartBoard(FakeBoard):
    """A board with both UPS UARTs (nothing answers on them: the links are only built)."""

    def uart(self, baud, second=False):
        return ("uart", second)


class TestFeedUpsLoad(TestCase):
    def _app(self, ups, hosts_feeds=True):
        import sys

        sys.modules.pop("sentinel.feedups", None)
        cfg, errs = config.validate({
            "nut": {"port": NUT_PORT}, "ups": ups,
            "mains": {"channels": [{"name": "A"}, {"name": "B"}]},
            "tiers": [{"name": "apps", "hosts": [
                {"name": "b1", "address": "10.0.0.1",
                 "feeds": ["B"] if hosts_feeds else []}]}]})
        self.assertEqual(errs, [])
        s = Sentinel(UartBoard(cfg, "down"), cfg, "config", [], write=Console().write,
                     root=_root())
        return s, "sentinel.feedups" in sys.modules

    def test_one_ups_per_feed_loads_only_with_ups_feeds(self):
        s, loaded = self._app({"link": "q1", "feed": "A", "feeds": [{"feed": "B"}]}, False)
        self.assertTrue(loaded)
        self.assertIs(s.control.seq.ups, s.feed_ups)      # the load-off: every feed's UPS
        self.assertIs(s.nut.actions.ups, s.link)           # instant commands: the first UPS
        self.assertEqual([k for k, _ in s.more_links], ["ups_B"])
        self.assertEqual(s.more_links[0][1]._uart, ("uart", True))   # the second UART
        self.assertEqual(s.feed_ups.feeds, ["A", "B"])     # b1 lists none: every feed
        # no server lists its feeds, yet the policy loads: the power-on waits for every feed
        self.assertIsNotNone(s.control.feeds)
        s, loaded = self._app({"link": "q1", "feed": "A", "feeds": [{"feed": "B"}]})
        self.assertEqual(s.feed_ups.feeds, ["B"])          # only b1's feed is cut
        co, limits = s.tasks(None)
        self.assertIn("ups_B", limits)
        for c in co:
            c.close()
        s, loaded = self._app({"link": "q1"}, hosts_feeds=False)
        self.assertFalse(loaded)
        # two feeds sensed: the site model runs (the alarm), the power-on is not held by it
        self.assertIsNone(s.control.seq.feeds)
        self.assertIs(s.control.seq.ups, s.link)
        self.assertEqual((s.more_links, s.feed_ups), ((), None))


class FakeLines:
    """A board's contact inputs (read: the mask the test sets) and outputs (every set)."""

    lines = 8

    def __init__(self):
        self.raw = 0
        self.sets = []

    def read(self):
        return self.raw

    def set(self, line, level):
        self.sets.append((line, level))


class ContactBoard(UartBoard):
    def __init__(self, cfg, net="down"):
        UartBoard.__init__(self, cfg, net)
        self.io = FakeLines()

    def contacts(self):
        return self.io

    def outputs(self):
        return self.io


class TestContactFeedUps(TestCase):
    """Feed B's UPS read over dry contacts: its rules over its own lines, debounced with the
    first UPS's lines when those are contacts too, else by a task of its own; its load-off is
    its output's pulse."""

    def _app(self, first, rules="OB=3;LB=4;"):
        ups = dict(first, feed="A", feeds=[{"feed": "B", "link": "contacts",
                                            "contacts": rules, "shutdown_output": 1}])
        cfg, errs = config.validate({
            "nut": {"port": NUT_PORT}, "ups": ups, "policy": {"grace_s": 3600},
            "mains": {"channels": [{"name": "A"}, {"name": "B"}]},
            "tiers": [{"name": "apps", "hosts": [
                {"name": "b1", "address": "10.0.0.1", "feeds": ["B"]}]}]})
        self.assertEqual(errs, [])
        self.console = Console()
        s = Sentinel(ContactBoard(cfg, "down"), cfg, "config", [], write=self.console.write,
                     root=_root())
        return s, s.rt.board.io

    def test_a_line_the_board_lacks_leaves_it_unread_and_says_which_key(self):
        s, io = self._app({"link": "q1"}, "OB=3;LB=9;")   # the fake board has lines 0-7
        feed, act, link = s.feed_ups.units[1]
        self.assertIsNone(link)           # its feed's mains stand for it; its output still cuts
        self.assertIsNotNone(act)
        self.assertIsNone(s.more_contacts)
        err = self.console.logs("config_error")
        self.assertEqual(len(err), 1)
        self.assertTrue(err[0]["error"].startswith("ups.feeds[0].contacts: contact rules "),
                        err)
        self.assertIn("line 9 out of range 0-7 (this board's lines)", err[0]["error"])

    def test_first_ups_rules_naming_a_line_the_board_lacks_leave_it_unread(self):
        # a boot that raised before: the first UPS is now unread, the state machine acting on
        # mains sensing as with no UPS link; the feed's contact UPS still gets its own lines
        s, io = self._app({"link": "contacts", "contacts": "OB=9;LB=2;"})
        self.assertIsNone(s.sensing.contacts)
        self.assertIsNone(s.feed_ups.units[0][2])
        self.assertIsNotNone(s.more_contacts)      # B's lines, debounced by a task of its own
        self.assertIs(s.feed_ups.units[1][2].deb, s.more_contacts.deb)
        err = self.console.logs("config_error")
        self.assertEqual(len(err), 1)
        self.assertTrue(err[0]["error"].startswith("ups.contacts: contact rules "), err)
        self.assertIn("line 9 out of range 0-7 (this board's lines); this UPS is not read",
                      err[0]["error"])
        self.assertEqual(s.ops.identify({})["config_errors"], [err[0]["error"]])
        self.assertEqual(s.ops.status()["ups"]["link"], "config_error")
        s.control.step()
        self.assertFalse(s.control.inputs.ups_link_configured)
        co, limits = s.tasks(None)
        self.assertIn("contacts", limits)
        for c in co:
            c.close()

    def test_first_ups_on_q1_the_contacts_get_their_own_task(self):
        from sentinel.feedups import ContactUps
        from sentinel.sequencer import ContactLoadOff
        s, io = self._app({"link": "q1"})
        feed, act, link = s.feed_ups.units[1]
        self.assertTrue(isinstance(link, ContactUps))
        self.assertTrue(isinstance(act, ContactLoadOff))
        self.assertIs(link.deb, s.more_contacts.deb)
        self.assertIsNone(s.sensing.contacts)       # the first UPS stays the Q1 link
        co, limits = s.tasks(None)
        self.assertIn("contacts", limits)
        for c in co:
            c.close()

        async def run():
            task = asyncio.create_task(s.sensing.contacts_task(s.more_contacts, "contacts"))
            io.raw = 1 << 3   # B's AC-fail contact closed
            await _until(lambda: (s.control.step() or link.status) == ["OB"], "B on battery")
            self.assertEqual(s.ops.status()["ups"]["feeds"]["B"]["status"],
                             "OB")
            self.assertIn("contacts", s.rt.alive)
            ok = await s.feed_ups.shutdown_restore(1, 1)   # feed B's UPS: its output's pulse
            self.assertTrue(ok)
            self.assertEqual(io.sets, [(1, 1), (1, 0)])
            task.cancel()
        asyncio.run(run())

    def test_first_ups_on_contacts_one_debouncer_for_both(self):
        s, io = self._app({"link": "contacts", "contacts": "OB=1;LB=2;"})
        link = s.feed_ups.units[1][2]
        self.assertIs(link.deb, s.sensing.contacts.deb)
        self.assertIsNone(s.more_contacts)
        co, limits = s.tasks(None)
        self.assertNotIn("contacts", limits)
        for c in co:
            c.close()
        t = 0
        for raw in (0, 0b11000):    # B: OB LB, the first UPS's lines still open
            for _ in range(8):
                s.sensing.contacts.update(raw, t)
                t += 10
            s.control.step()
        self.assertEqual((s.sensing.contacts.statuses(), link.status), (["OL"], ["OB", "LB"]))
        fu = s.feed_ups.status()    # the first UPS's row too, from its own contacts
        self.assertEqual([(fu[f]["link"], fu[f]["status"]) for f in ("A", "B")],
                         [("contacts", "OL"), ("contacts", "OB LB")])
        self.assertEqual(s.feed_ups.low_mask(["A", "B"]), 0b10)
