# Health checks: a real TCP probe against loopback listeners (open, closed, not answering),
# the "nut" and "none" kinds, and the freshness rule of Health.check().
import asyncio
import os
import socket
import time

from mpunit import TestCase
from sentinel import health
from sentinel.health import Health, tcp_check

OPEN = 39421    # loopback only; started by the tests
CLOSED = 39422  # nothing ever listens here
HANG = 39423    # listens with a full backlog: SYNs go unanswered


def _fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class FakeNut:
    def __init__(self):
        self.clients = {"storage": [("10.0.2.5", "upsmon")]}

    def logged_in(self, ups):
        return self.clients.get(ups, [])


async def _noop(r, w):
    w.close()


class Tcp(TestCase):
    def test_open_closed_and_silent_ports(self):
        async def main():
            srv = await asyncio.start_server(_noop, "127.0.0.1", OPEN)
            try:
                ok = await tcp_check("127.0.0.1", OPEN, 1000)
                refused = await tcp_check("127.0.0.1", CLOSED, 1000)
            finally:
                srv.close()
            return ok, refused

        self.assertEqual(asyncio.run(main()), (True, False))

    def test_timeout_on_a_port_that_does_not_answer(self):
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(socket.getaddrinfo("127.0.0.1", HANG)[0][-1])
        lst.listen(0)
        filler = socket.socket()
        filler.setblocking(False)
        try:
            try:
                filler.connect(socket.getaddrinfo("127.0.0.1", HANG)[0][-1])
            except OSError:
                pass
            t0 = time.ticks_ms()
            ok = asyncio.run(tcp_check("127.0.0.1", HANG, 300, time.ticks_ms))
            took = time.ticks_diff(time.ticks_ms(), t0)
        finally:
            filler.close()
            lst.close()
        self.assertFalse(ok)
        self.assertGreaterEqual(took, 300)
        self.assertLess(took, 2000)

    def test_no_socket_leak(self):
        before = _fds()
        if before is None:
            self.skipTest("no /proc here")

        async def main():
            for _ in range(20):
                await tcp_check("127.0.0.1", CLOSED, 200)

        asyncio.run(main())
        self.assertEqual(_fds(), before)

    def test_unresolvable_name_is_false(self):
        self.assertFalse(asyncio.run(tcp_check("no-such-host.invalid", 80, 200)))


class Kinds(TestCase):
    def test_parse(self):
        self.assertEqual(health.parse("nut"), ("nut", None))
        self.assertEqual(health.parse("none"), ("none", None))
        self.assertEqual(health.parse("tcp:443"), ("tcp", 443))
        for bad in ("tcp:", "tcp:0", "tcp:70000", "tcp:x", "ping", ""):
            with self.assertRaises(ValueError):
                health.parse(bad)

    def test_nut_and_none(self):
        h = Health(FakeNut(), spawn=lambda c: self.fail("no probe for nut/none"))
        nas = {"name": "nas1", "address": "10.0.2.5", "health": "nut"}
        db = {"name": "db1", "address": "10.0.1.5", "health": "nut"}
        self.assertIs(h.check("storage", nas, 0), True)
        self.assertIs(h.check("databases", db, 0), False)
        self.assertIs(h.check("storage", dict(nas, address="::FFFF:10.0.2.5"), 0), True)
        self.assertIs(h.check("apps", {"name": "x", "address": "10.0.0.9", "health": "none"}, 0), True)


class Polling(TestCase):
    def test_tcp_check_runs_in_background_and_results_must_be_fresh(self):
        web = {"name": "web1", "address": "127.0.0.1", "health": "tcp:%d" % OPEN}
        out = []

        async def main():
            srv = await asyncio.start_server(_noop, "127.0.0.1", OPEN)
            h = Health(None, interval_ms=5000, timeout_ms=500)
            try:
                out.append(h.check("apps", web, 1000))       # probe started: no answer yet
                for _ in range(50):
                    await asyncio.sleep_ms(10)
                    if h.check("apps", web, 1001) is not None:
                        break
                out.append(h.check("apps", web, 1002))       # fresh result
                out.append(h.probes)
                out.append(h.check("apps", web, 2000, 1500))  # older than since: new probe
                out.append(h.probes)
                out.append(h.check("apps", web, 2001))        # still one probe at a time
                out.append(h.probes)
                await asyncio.sleep_ms(100)
            finally:
                srv.close()
            srv2 = None
            out.append(h.check("apps", web, 9000, 9000))  # interval over: probe the closed port
            for _ in range(50):
                await asyncio.sleep_ms(10)
                if h.check("apps", web, 9001, 9000) is not None:
                    break
            out.append(h.check("apps", web, 9002, 9000))
            return srv2

        asyncio.run(main())
        self.assertEqual(out, [None, True, 1, None, 2, True, 2, None, False])


def import_without_socket(name):
    """A fresh import of sentinel.<name> on a board whose firmware has no `socket` module (a
    plain Pico): a socket.py first on the path raises ImportError, as the missing module
    would. Returns the module; the real one is put back for the other tests."""
    import sys

    d = "/tmp/ps_nosocket"
    try:
        os.mkdir(d)
    except OSError:
        pass
    with open(d + "/socket.py", "w") as f:
        f.write("raise ImportError('no module named socket')\n")
    full = "sentinel." + name
    real = sys.modules.pop(full)
    sys.path.insert(0, d)
    try:
        return __import__(full, None, None, [name])
    finally:
        sys.path.remove(d)
        sys.modules[full] = real


class NoNetwork(TestCase):
    def test_imports_without_socket_and_tcp_checks_answer_no_network(self):
        h_mod = import_without_socket("health")
        self.assertIsNone(h_mod.socket)
        h = h_mod.Health(FakeNut(), spawn=lambda c: self.fail("no probe without a network"))
        web = {"name": "web1", "address": "127.0.0.1", "health": "tcp:%d" % OPEN}
        self.assertIs(h.check("apps", web, 1000), False)
        self.assertEqual(h.why("web1"), "no network")
        # a "nut" check needs no socket: the NUT server's logins decide
        nas = {"name": "nas1", "address": "10.0.2.5", "health": "nut"}
        self.assertIs(h.check("storage", nas, 1000), True)
        self.assertIs(asyncio.run(h_mod.tcp_check("127.0.0.1", OPEN, 100)), False)

    def test_network_down_answers_no_network_until_it_is_up(self):
        state = ["down"]
        h = Health(FakeNut(), spawn=lambda c: c.close() or state.append("probe"),
                   net_state=lambda: state[0])
        web = {"name": "web1", "address": "127.0.0.1", "health": "tcp:%d" % OPEN}
        self.assertIs(h.check("apps", web, 1000), False)
        self.assertEqual(h.why("web1"), "no network")
        state[0] = "up"
        self.assertIsNone(h.check("apps", web, 2000))  # a probe starts now
        self.assertIsNone(h.why("web1"))
        self.assertEqual(state[1:], ["probe"])
