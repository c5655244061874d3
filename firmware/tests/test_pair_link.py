# The peer link task over real loopback UDP sockets: two links find each other, one stops, the
# other reports redundancy lost (journal record, Snapshot alarm), a wrong key is counted.
import socket

from mpunit import TestCase
from sentinel.nutview import Snapshot
from sentinel.pair import link as L
from sentinel.pair.frame import Codec

KEY = "0123456789abcdef-pair"
PA, PB = 39495, 39496  # loopback only


class Board:
    """What the link asks of the HAL board."""

    def __init__(self, state="up"):
        self.state = state

    def network_state(self):
        return self.state

    def nut_bind(self):
        return ("127.0.0.1", 3493)


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _link(me, port, peer_port, clock, board=None, key=KEY, boot=None,
          view=lambda: (1, 1, 0, 7, 0, False, False, 0)):
    cfg = {"pair": {"enabled": True, "id": me, "peer": "127.0.0.1", "port": port,
                    "peer_port": peer_port, "key": key, "heartbeat_ms": 100, "dead_ms": 500}}
    logs = []
    snap = Snapshot(["t1"])
    lk = L.PairLink(cfg, board or Board(), clock, lambda t, d, critical=False: logs.append(
        (t, d)), snap, view, boot or L.new_boot_id())
    return lk, logs, snap


def _pair(c, key_b=KEY):
    """Links A and B on crossed loopback ports: (a, a's records, a's Snapshot, b)."""
    a, alog, asnap = _link("A", PA, PB, c, boot=11)
    b, _, _ = _link("B", PB, PA, c, key=key_b, boot=22)
    return a, alog, asnap, b


def _run(links, clock, until, step=50):
    while clock.t < until:
        clock.t += step
        for lk in links:
            lk.step(clock.t)


class Link(TestCase):
    def setUp(self):
        self.links = []

    def tearDown(self):
        for lk in self.links:
            if lk.sock is not None:
                lk.sock.close()

    def test_alive_then_dead_then_back(self):
        c = Clock()
        a, alog, asnap, b = _pair(c)
        self.links = [a, b]
        _run([a, b], c, 400)
        self.assertEqual((a.peer.state, b.peer.state), ("ALIVE", "ALIVE"))
        self.assertEqual(a.peer.msg.view()["plan_id"], 7)
        self.assertEqual([r for r in alog if r[0] == "pair_peer"],
                         [("pair_peer", {"state": "ALIVE", "cause": "heartbeat",
                                         "peer": "127.0.0.1"})])
        self.assertEqual(asnap.pair_alarm, "")
        # B stops: after dead_ms A says why
        _run([a], c, 1000)
        self.assertEqual(a.peer.state, "DEAD")
        self.assertEqual(alog[-1], ("pair_peer", {"state": "DEAD", "cause": "no heartbeat",
                                                  "peer": "127.0.0.1"}))
        self.assertEqual(asnap.pair_alarm, "redundancy lost: no heartbeat")
        st = a.status()
        self.assertEqual((st["state"], st["cause"], st["id"]), ("DEAD", "no heartbeat", "A"))
        self.assertTrue(st["last_ms"] >= 500)
        _run([a, b], c, 1300)
        self.assertEqual(a.peer.state, "ALIVE")
        self.assertEqual(asnap.pair_alarm, "")

    def test_a_ups_output_off_travels_in_the_flags(self):
        c = Clock()
        off = [False]
        a, _, _ = _link("A", PA, PB, c, boot=11, view=lambda: (1, 2, 3, 7, 1, True, off[0], 0))
        b, _, _ = _link("B", PB, PA, c, boot=22)
        self.links = [a, b]
        _run([a, b], c, 400)
        self.assertFalse(b.peer.msg.view()["ups_output_off"])
        off[0] = True
        _run([a, b], c, 800)
        v = b.peer.msg.view()
        self.assertTrue(v["ups_output_off"] and v["hears_us"] and v["loadoff_sent"])

    def test_wrong_key_is_counted_and_named(self):
        c = Clock()
        a, alog, asnap, b = _pair(c, key_b="a-different-key-123")
        self.links = [a, b]
        _run([a, b], c, 600)
        self.assertEqual(a.peer.state, "DEAD")
        self.assertTrue(a.peer.bad_key >= 4)
        self.assertEqual(asnap.pair_alarm, "redundancy lost: bad key")

    def test_garbage_is_ignored(self):
        c = Clock()
        a, _, _ = _link("A", PA, PB, c, boot=11)
        self.links = [a]
        a.step(0)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"not a frame", socket.getaddrinfo("127.0.0.1", PA)[0][-1])
            c.t = 50
            a.step(50)
        finally:
            s.close()
        self.assertEqual((a.received, a.peer.bad_key), (0, 0))

    def test_without_network(self):
        c = Clock()
        a, alog, asnap = _link("A", PA, PB, c, board=Board("absent"))
        _run([a], c, 600)
        self.assertIsNone(a.sock)
        self.assertEqual((a.peer.state, a.peer.cause), ("DEAD", "no network"))
        self.assertEqual(asnap.pair_alarm, "redundancy lost: no network")
        self.assertEqual(a.status()["link"], "closed")

    def test_heartbeat_allocates_little(self):
        import gc
        c = Clock()
        a, _, _, b = _pair(c)
        self.links = [a, b]
        _run([a, b], c, 400)
        gc.collect()
        before = gc.mem_alloc()
        gc.disable()
        try:
            _run([a, b], c, 1400, step=100)  # 10 heartbeats each way
            used = gc.mem_alloc() - before
        finally:
            gc.enable()
        # per heartbeat and side: one frame encoded (its HMAC: two sha256 objects), one
        # received and decoded (HMAC, the Message); about 1.9 KB on this 64-bit port
        self.assertTrue(used < 20 * 2200, "%d bytes for 20 heartbeats" % used)
        print("pair heartbeat: %d bytes allocated per frame sent and received" % (used // 20))


class Disagreement(TestCase):
    def setUp(self):
        self.links = []

    def tearDown(self):
        for lk in self.links:
            if lk.sock is not None:
                lk.sock.close()

    def test_both_sides_log_and_alarm_then_clear(self):
        # A's sensor reads mains lost, B's good (the view functions above send mains "good",
        # UPS "OL": the peer's UPS reading stands in for A's, which has none): the
        # arbitration each control step holds A, both journal it and serve the alarm
        c = Clock()
        a, alog, asnap, b = _pair(c)
        blog = []
        b.log = lambda t, d, critical=False: blog.append((t, d))
        self.links = [a, b]
        _run([a, b], c, 400)
        held = []
        while c.t < 400 + 600:  # dead_ms (500) plus a step or two: the disagreement is declared
            c.t += 50
            a.step(c.t)
            b.step(c.t)
            held.append(a.arbitrate(c.t, 2, 0))
            b.arbitrate(c.t, 1, 0)
        self.assertEqual(set(held), {True})
        self.assertEqual(asnap.pair_alarm, "sensor disagrees: A reads mains lost, B reads good,"
                                           " UPS on line; not acted on")
        self.assertEqual([d for t, d in alog if t == "pair_disagree"],
                         [{"cause": asnap.pair_alarm, "own": "lost", "peer": "good",
                           "ups": "on line", "held": True, "outvoted": False}])
        # B hears A's own verdict (lost) in A's frames: B reports it from its side (A's view
        # function says good in this rig, so feed B what A's sensor would send)
        b.peer.msg.mains = 2
        b.arbitrate(c.t, 1, 0)
        b.arbitrate(c.t + 600, 1, 0)
        self.assertEqual([d["cause"] for t, d in blog if t == "pair_disagree"],
                         ["sensor disagrees: B reads mains good, A reads lost, UPS on line"])
        st = a.status()["sensor"]
        self.assertTrue(st["held"] and st["disagree"].startswith("sensor disagrees"))
        # A's sensor agrees again: cleared, with how long it lasted
        self.assertFalse(a.arbitrate(c.t + 700, 1, 0))
        self.assertEqual(asnap.pair_alarm, "")
        self.assertEqual(alog[-1][0], "pair_agree")
        self.assertTrue(alog[-1][1]["ms"] >= 500)

    def test_redundancy_lost_and_a_disagreement_share_the_alarm(self):
        c = Clock()
        a, alog, asnap = _link("A", PA, PB, c, boot=11)
        self.links = [a]
        _run([a], c, 600)
        a.arbitrate(c.t, 2, 1)          # our sensor lost, our UPS on line, no peer
        a.arbitrate(c.t + 600, 2, 1)
        self.assertEqual(asnap.pair_alarm, "redundancy lost: no heartbeat; sensor disagrees: "
                                           "A reads mains lost, B reads nothing (not alive), UPS "
                                           "on line; not acted on")


class Codecs(TestCase):
    def test_codec_used_by_the_link(self):
        c = Clock()
        a, _, _ = _link("A", PA, PB, c, boot=11)
        self.assertTrue(isinstance(a.codec, Codec))


class Robust(TestCase):
    def test_a_failing_step_is_logged_once_and_the_task_goes_on(self):
        import asyncio
        c = Clock()
        a, alog, _ = _link("A", PA, PB, c, board=Board("absent"))
        calls = []

        def bad_step(now):
            calls.append(now)
            raise ValueError("boom")
        a.step = bad_step

        async def main():
            t = asyncio.create_task(a.run())
            await asyncio.sleep_ms(180)
            t.cancel()
        asyncio.run(main())
        self.assertTrue(len(calls) >= 3)
        errs = [r[1]["error"] for r in alog if r[0] == "pair_error"]
        self.assertEqual(len(errs), 1)
        self.assertTrue(errs[0].startswith("ValueError('boom'"), errs[0])
