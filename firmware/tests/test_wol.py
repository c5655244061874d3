# Wake-on-LAN packets, and a real send to loopback UDP listeners.
import asyncio
import select
import socket

from mpunit import TestCase
from sentinel import wol
from test_health import import_without_socket

PORT = 39409  # loopback only


def _listener(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo(ip, port, 0, socket.SOCK_DGRAM)[0][-1])
    return s


def _drain(s, max_n=16, wait_ms=500):
    """Datagrams waiting on s (bounded: stops at the first poll that times out)."""
    p = select.poll()
    p.register(s, select.POLLIN)
    out = []
    while len(out) < max_n and p.poll(wait_ms):
        out.append(s.recv(256))
        wait_ms = 50
    return out


class Packet(TestCase):
    def test_magic_packet_bytes(self):
        p = wol.magic_packet("aa:bb:cc:dd:ee:0f")
        self.assertEqual(len(p), wol.PACKET_LEN)
        self.assertEqual(bytes(p[:6]), b"\xff" * 6)
        self.assertEqual(bytes(p[6:]), b"\xaa\xbb\xcc\xdd\xee\x0f" * 16)

    def test_mac_forms(self):
        want = b"\x00\x11\x22\x33\x44\x55"
        for m in ("00:11:22:33:44:55", "00-11-22-33-44-55", "001122334455", "00:11:22:33:44:55".upper()):
            self.assertEqual(wol.parse_mac(m), want)
        for bad in ("00:11:22:33:44", "00:11:22:33:44:5g", "", "00:11:22:33:44:55:66"):
            with self.assertRaises(ValueError):
                wol.parse_mac(bad)

    def test_buffer_reused(self):
        buf = bytearray(wol.PACKET_LEN)
        a = wol.magic_packet(b"\x01\x02\x03\x04\x05\x06", buf)
        self.assertIs(a, buf)
        self.assertEqual(bytes(buf[96:]), b"\x01\x02\x03\x04\x05\x06")


class Send(TestCase):
    def test_broadcast_and_directed_reach_loopback_listeners(self):
        # 127.0.0.1 stands for the broadcast address, 127.0.0.2 for the host's own address
        bc = _listener("127.0.0.1", PORT)
        host = _listener("127.0.0.2", PORT)
        s = wol.Sender("127.0.0.1", PORT)
        try:
            n = asyncio.run(s.send("02:00:00:00:00:2a", "127.0.0.2", repeat=3, gap_ms=5))
            self.assertEqual(n, 6)
            got_bc = _drain(bc)
            got_host = _drain(host)
        finally:
            s.close()
            bc.close()
            host.close()
        want = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x2a" * 16
        self.assertEqual(got_bc, [want] * 3)
        self.assertEqual(got_host, [want] * 3)
        self.assertEqual((s.sent, s.errors), (6, 0))

    def test_directed_only_to_ipv4_literals(self):
        bc = _listener("127.0.0.1", PORT)
        s = wol.Sender("127.0.0.1", PORT)
        try:
            self.assertEqual(s.send_now("02:00:00:00:00:01", "nas1.example"), 1)  # no DNS
            self.assertEqual(s.send_now("02:00:00:00:00:01", None), 1)
            s2 = wol.Sender("127.0.0.1", PORT, directed=False)
            self.assertEqual(s2.send_now("02:00:00:00:00:01", "127.0.0.2"), 1)
            s2.close()
            self.assertEqual(len(_drain(bc)), 3)
        finally:
            s.close()
            bc.close()

    def test_socket_error_is_counted_not_raised(self):
        class Broken:
            def sendto(self, data, addr):
                raise OSError(101)

            def close(self):
                pass

        s = wol.Sender("127.0.0.1", PORT, sock_factory=Broken)
        self.assertEqual(s.send_now("02:00:00:00:00:01", "127.0.0.2"), 0)
        self.assertEqual((s.sent, s.errors), (0, 2))


class NoNetwork(TestCase):
    def test_without_socket_a_wake_sends_nothing_and_logs_why(self):
        w = import_without_socket("wol")
        self.assertIsNone(w.socket)
        log = []
        s = w.Sender("127.255.255.255", PORT, log=lambda t, d: log.append((t, d)))
        self.assertEqual(asyncio.run(s.send("02:00:00:00:00:01", "127.0.0.2")), 0)
        self.assertEqual((s.sent, s.errors, s.skipped), (0, 0, 1))
        self.assertEqual(log, [("wol_skipped", {"mac": "02:00:00:00:00:01", "addr": "127.0.0.2",
                                                "reason": "no network module"})])

    def test_network_down_sends_nothing_until_it_is_up(self):
        state = ["down"]
        log = []
        bc = _listener("127.255.255.255", PORT)
        try:
            s = wol.Sender("127.255.255.255", PORT, directed=False,
                           log=lambda t, d: log.append(d["reason"]),
                           net_state=lambda: state[0])
            self.assertEqual(asyncio.run(s.send("02:00:00:00:00:01", repeat=1)), 0)
            self.assertEqual(log, ["network down"])
            state[0] = "up"
            self.assertEqual(asyncio.run(s.send("02:00:00:00:00:01", repeat=1)), 1)
            self.assertEqual(len(_drain(bc)), 1)
            s.close()
        finally:
            bc.close()
