# Pair mode's pure logic: frames and their HMAC, the replay window, the peer's liveness.
import hashlib

from mpunit import TestCase
from sentinel import config
from sentinel.pair import frame
from sentinel.pair.frame import BAD_MAC, MALFORMED, Codec, Window
from sentinel.pair.peer import ALIVE, DEAD, UNKNOWN, Peer

KEY = "0123456789abcdef-pair"


def _hex(b):
    return "".join("%02x" % x for x in b)


class Hmac(TestCase):
    def test_rfc4231_case_2(self):
        # RFC 4231 test case 2: key "Jefe"
        c = Codec(b"Jefe", "A", 1)
        self.assertEqual(_hex(c.mac(b"what do ya want for nothing?")),
                         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")

    def test_rfc4231_case_6_long_key(self):
        # a key longer than the block is hashed first
        c = Codec(b"\xaa" * 131, "A", 1)
        self.assertEqual(_hex(c.mac(b"Test Using Larger Than Block-Size Key - Hash Key First")),
                         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


class Frames(TestCase):
    def test_round_trip(self):
        a = Codec(KEY, "A", 77)
        b = Codec(KEY, "B", 99)
        f = bytes(a.encode(99, 1, 2, frame.state_code("SHUTTING_DOWN"), 1, 12, 2, True))
        self.assertEqual(len(f), frame.FRAME_LEN)
        m = b.decode(f)
        self.assertEqual((m.sender, m.boot, m.counter, m.echo), ("A", 77, 1, 99))
        self.assertEqual(m.view(), {"mains": "good", "ups": "OB", "state": "SHUTTING_DOWN",
                                    "plan_id": 12, "tiers_done": 2, "loadoff_sent": True,
                                    "hears_us": True, "ups_output_off": False})
        self.assertTrue(b.decode(bytes(a.encode(99, 1, 2, 0, 3, 12, 2, True))).view()[
            "ups_output_off"])
        m2 = b.decode(bytes(a.encode(0, 0, 0, 0, 0, 0, 0, False)))
        self.assertEqual(m2.counter, 3)

    def test_wrong_key_and_tampering_fail_the_mac(self):
        a = Codec(KEY, "A", 5)
        f = bytearray(a.encode(0, 1, 1, 0, 0, 3, 0, False))
        self.assertEqual(Codec("another-key-0123456", "B", 6).decode(bytes(f)), BAD_MAC)
        f[20] ^= 1  # one bit of the body
        self.assertEqual(Codec(KEY, "B", 6).decode(bytes(f)), BAD_MAC)

    def test_not_a_frame(self):
        c = Codec(KEY, "B", 6)
        self.assertEqual(c.decode(b"hello"), MALFORMED)
        self.assertEqual(c.decode(b"XXXX" + bytes(frame.FRAME_LEN - 4)), MALFORMED)

    def test_counter_stays_a_small_int(self):
        a = Codec(KEY, "A", 5)
        a.counter = frame.MAX31 - 1
        a.encode(0, 0, 0, 0, 0, 0, 0, False)
        with self.assertRaises(OverflowError):
            a.encode(0, 0, 0, 0, 0, 0, 0, False)
        a.next_boot(8)
        a.encode(0, 0, 0, 0, 0, 0, 0, False)
        self.assertEqual((a.boot, a.counter), (8, 1))

    def test_cpython_hmac_agrees(self):
        # the same construction as hmac.new(key, body, sha256), spelled out
        a = Codec(KEY, "A", 5)
        f = bytes(a.encode(0, 1, 1, 0, 0, 3, 0, False))
        body = f[:frame.BODY_LEN]
        k = KEY.encode() + bytes(64 - len(KEY))
        inner = hashlib.sha256(bytes(x ^ 0x36 for x in k) + body).digest()
        outer = hashlib.sha256(bytes(x ^ 0x5C for x in k) + inner).digest()
        self.assertEqual(f[frame.BODY_LEN:], outer)


class Replay(TestCase):
    def test_each_counter_once_within_the_window(self):
        w = Window()
        for c in (1, 2, 5, 4, 3):
            self.assertTrue(w.accept(c))
        for c in (1, 2, 3, 4, 5, 0, -1):
            self.assertFalse(w.accept(c))
        self.assertTrue(w.accept(40))
        self.assertFalse(w.accept(5))   # fell out of the window
        self.assertTrue(w.accept(39))
        self.assertTrue(w.accept(11))   # 40 - 29: still inside
        self.assertFalse(w.accept(10))  # 40 - 30: outside
        self.assertTrue(w.mask < (1 << 30))

    def test_large_jump_keeps_the_mask_small(self):
        w = Window()
        w.accept(1)
        w.accept(1 << 29)
        self.assertEqual(w.mask, 1)
        self.assertTrue(w.accept((1 << 29) + 29))
        self.assertTrue(w.mask < (1 << 30))


def _pair(dead_ms=1000):
    """Two peers and their codecs, as A and B see each other."""
    ca, cb = Codec(KEY, "A", 111), Codec(KEY, "B", 222)
    pa, pb = Peer("A", 111, dead_ms, 0), Peer("B", 222, dead_ms, 0)
    return ca, cb, pa, pb


def _send(codec, to, seen_by, now):
    """codec's next frame (echoing what its own side last authenticated) into peer `to`."""
    m = Codec(KEY, to.my_id, to.my_boot).decode(bytes(codec.encode(seen_by.echo(), 1, 1, 0, 0,
                                                                   0, 0, False)))
    return to.receive(m, now), m


class Liveness(TestCase):
    def test_handshake_then_alive_on_both_sides(self):
        ca, cb, pa, pb = _pair()
        self.assertEqual(pa.state, UNKNOWN)
        # A's first frame echoes nothing: B cannot tell it from a recording yet
        ch, _ = _send(ca, pb, pa, 10)
        self.assertEqual((ch, pb.state, pb.unconfirmed), (None, UNKNOWN, 1))
        # B's frame echoes A's boot: A accepts it
        ch, _ = _send(cb, pa, pb, 20)
        self.assertEqual(ch, (ALIVE, "heartbeat"))
        ch, _ = _send(ca, pb, pa, 30)
        self.assertEqual(ch, (ALIVE, "heartbeat"))
        self.assertEqual(pb.last_at, 30)

    def _alive(self):
        ca, cb, pa, pb = _pair()
        _send(ca, pb, pa, 0)
        _send(cb, pa, pb, 0)
        _send(ca, pb, pa, 0)
        return ca, cb, pa, pb

    def test_no_heartbeat_then_back(self):
        ca, cb, pa, pb = self._alive()
        self.assertIsNone(pa.tick(999))
        self.assertEqual(pa.tick(1001), (DEAD, "no heartbeat"))
        self.assertEqual(pa.since, 1001)
        self.assertIsNone(pa.tick(1500))
        ch, _ = _send(cb, pa, pb, 1600)
        self.assertEqual(ch, (ALIVE, "heartbeat"))

    def test_never_heard_goes_dead(self):
        p = Peer("A", 1, 1000, 0)
        self.assertIsNone(p.tick(500))
        self.assertEqual(p.tick(1000, "no network"), (DEAD, "no network"))

    def test_replayed_frames_are_refused_and_named(self):
        ca, cb, pa, pb = self._alive()
        _, m = _send(cb, pa, pb, 100)
        for _ in range(3):
            self.assertIsNone(pa.receive(m, 200))
        self.assertEqual(pa.replayed, 3)
        self.assertEqual(pa.last_at, 100)
        self.assertEqual(pa.tick(1200), (DEAD, "replayed"))
        # the next window saw nothing at all
        self.assertEqual(pa.tick(2300), (DEAD, "no heartbeat"))

    def test_bad_key_counted_and_named(self):
        ca, cb, pa, pb = self._alive()
        pa.receive(BAD_MAC, 500)
        self.assertEqual(pa.bad_key, 1)
        self.assertEqual(pa.tick(1100), (DEAD, "bad key"))

    def test_reboot_needs_our_echo_and_old_boot_never_returns(self):
        ca, cb, pa, pb = self._alive()
        _, old = _send(cb, pa, pb, 100)
        cb2 = Codec(KEY, "B", 333)  # B rebooted: it knows nothing of A yet
        pb2 = Peer("B", 333, 1000, 200)
        ch, _ = _send(cb2, pa, pb2, 200)
        self.assertIsNone(ch)
        self.assertEqual(pa.unconfirmed, 1)
        _send(ca, pb2, pa, 250)            # A echoes B's new boot
        ch, _ = _send(cb2, pa, pb2, 300)   # and B's next frame echoes A's
        self.assertEqual(ch, (ALIVE, "peer rebooted"))
        self.assertEqual((pa.reboots, pa.boot), (1, 333))
        # a recording from B's previous boot is refused
        self.assertIsNone(pa.receive(old, 400))
        self.assertEqual(pa.replayed, 1)

    def test_recording_from_before_our_boot_is_not_accepted(self):
        ca, cb, pa, pb = self._alive()
        _, m = _send(cb, pa, pb, 100)
        fresh = Peer("A", 999, 1000, 0)  # A rebooted: a new boot id, nothing heard
        self.assertIsNone(fresh.receive(m, 10))
        self.assertEqual(fresh.state, UNKNOWN)

    def test_peer_with_our_id(self):
        p = Peer("A", 1, 1000, 0)
        other = Codec(KEY, "A", 2)
        m = Codec(KEY, "A", 1).decode(bytes(other.encode(1, 0, 0, 0, 0, 0, 0, False)))
        self.assertIsNone(p.receive(m, 10))
        self.assertEqual(p.same_id, 1)
        self.assertEqual(p.tick(1000), (DEAD, "same id"))
        # our own frame looped back is not a peer
        own = Codec(KEY, "A", 1)
        p.receive(Codec(KEY, "A", 1).decode(bytes(own.encode(0, 0, 0, 0, 0, 0, 0, False))), 20)
        self.assertEqual(p.looped, 1)
        self.assertEqual(p.tick(2000), (DEAD, "peer is this sentinel"))


def _cfg(**pair):
    p = {"enabled": True, "peer": "10.0.0.2", "key": KEY}
    p.update(pair)
    return {"pair": p}


class Schema(TestCase):
    def test_off_by_default(self):
        cfg, errs = config.validate({})
        self.assertEqual(errs, [])
        self.assertFalse(cfg["pair"]["enabled"])

    def test_good(self):
        cfg, errs = config.validate(_cfg(id="B", peer_port=4000))
        self.assertEqual(errs, [])
        self.assertEqual((cfg["pair"]["id"], cfg["pair"]["peer_port"]), ("B", 4000))

    def test_errors(self):
        def errs(**kw):
            return config.validate(_cfg(**kw))[1]
        self.assertEqual(errs(key=""), [
            "pair.key: must be given when pair.enabled is true (the same key on both "
            "sentinels, at least 16 characters)"])
        self.assertEqual(errs(key="short-key"),
                         ["pair.key: is 9 characters long; at least 16 are needed"])
        self.assertEqual(errs(peer=None), [
            "pair.peer: must be given when pair.enabled is true (the other sentinel's IPv4 "
            "address)"])
        self.assertEqual(errs(peer="127.0.0.1", port=5000), [
            "pair.peer: 127.0.0.1 port 5000 is this sentinel itself; give the peer's address, "
            "or a different peer_port on loopback"])
        self.assertEqual(errs(peer="127.0.0.1", port=5000, peer_port=5001), [])
        self.assertEqual(errs(id="C")[0][:10], "pair.id: \"")
        self.assertEqual(errs(heartbeat_ms=1000, dead_ms=2000), [
            "pair.dead_ms: must be at least 3 heartbeat_ms (3000), or one lost frame would "
            "count the peer dead"])
        self.assertEqual(config.validate({"pair": {"key": "x"}})[1], [])  # off: not checked
