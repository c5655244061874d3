# Alerts in the wired sentinel (sentinel.app.Sentinel on test_app's fake board, the real event
# loop): nothing of the alerts package is loaded, reported or supervised unless a transport is
# enabled; enabled, the console's alerts_test reaches a real UDP syslog listener on loopback and
# the status reports the delivery.
import asyncio
import os
import select
import socket
import sys

from mpunit import TestCase
from sentinel.app import Sentinel
from test_app import Console, FakeBoard, _answer, _cfg, _root, _rmtree, _until, run_app

SYSLOG_PORT = 39433  # loopback only


def _forget_alerts():
    for name in [n for n in sys.modules if n.startswith("sentinel.alerts")]:
        del sys.modules[name]


class TestAlertsOff(TestCase):
    def test_nothing_loaded_reported_or_supervised(self):
        _forget_alerts()
        root = _root()
        try:
            board = FakeBoard(_cfg(), "up")
            s = Sentinel(board, board.cfg, "defaults", [], write=Console().write, root=root)
            self.assertIsNone(s.outbox)
            self.assertNotIn("sentinel.alerts.outbox", sys.modules)
            self.assertNotIn("alerts", s.ops.status())
            self.assertNotIn("alerts", s.tasks(Console())[1])
            self.assertRaises(ValueError, s.ops.alerts_test, {})
        finally:
            asyncio.new_event_loop()
            _rmtree(root)
            os.rmdir(root)


class TestAlertsOn(TestCase):
    def test_alerts_test_reaches_syslog_and_status_says_so(self):
        cfg = _cfg()
        cfg["alerts"]["syslog"].update({"enabled": True, "host": "127.0.0.1",
                                        "port": SYSLOG_PORT, "proto": "udp"})
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(socket.getaddrinfo("127.0.0.1", SYSLOG_PORT, 0, socket.SOCK_DGRAM)[0][-1])
        p = select.poll()
        p.register(rx, select.POLLIN)
        got = []
        seen = {}

        def drain():
            while p.poll(0):
                got.append(rx.recv(1024))
            return got

        async def body(s, con):
            self.assertIn("alerts", s.tasks(con)[1])
            r = await _answer(con, "alerts_test")
            seen["id"] = r["id"]
            self.assertEqual(r["transports"], ["syslog"])
            mark = 'id="%d"' % r["id"]
            await _until(lambda: any(mark.encode() in d for d in drain()), "the datagram")
            await _until(lambda: s.ops.status()["alerts"]["transports"]["syslog"]["delivered"]
                         >= r["id"], "the cursor to move")
            seen["status"] = s.ops.status()["alerts"]

        try:
            run_app(FakeBoard(cfg, "up"), body)
        finally:
            rx.close()
        # the boot alert came first, then the test alert, each once
        kinds = [d.split(b" ")[5] for d in got]
        self.assertEqual(kinds[0], b"boot")
        self.assertEqual(kinds.count(b"alert_test"), 1)
        self.assertTrue(got[-1].startswith(b"<133>1 "), got[-1])  # local0, notice
        st = seen["status"]
        self.assertEqual(st["depth"], 0)
        self.assertEqual(st["transports"]["syslog"]["error"], None)
        self.assertGreaterEqual(st["transports"]["syslog"]["sent"], 2)
