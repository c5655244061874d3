"""A logout is not a halted host: a tier with `confirm_off` on a virtual board, the REAL upsmon
(NUT 2.8.0) as its server, and a TCP service standing for the server's sshd that keeps
answering for HALT_S after upsmon ran its SHUTDOWNCMD (the OS still halting), then closes.

The tier must not count as down at the logout: `host_off` comes once the port is closed, its
`after_logout_ms` is the halt time (within a probe period), and `tier_done` follows it. With
the service never closing, the tier ends at max_wait_s as a timeout naming the server running.
"""
import os
import socket
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from powersentinel import nutreal  # noqa: E402
from powersentinel import logs  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import wait_for  # noqa: E402

HALT_S = 4
PROBE_MS = 1000  # the sequencer's OFF_PROBE_MS
POLL = 1

pytestmark = pytest.mark.skipif(not nutreal.available(), reason="NUT binaries not installed")


class Service:
    """A TCP port that accepts (and drops) connections until close()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.closed.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.close()

    def close(self):
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def records(link, kinds):
    return logs.read(link, kinds)


def run_outage(tmp_path, halts, max_wait_s=60):
    svc = Service()
    tier = {"name": rc.TIER, "max_wait_s": max_wait_s, "delay_s": 0, "confirm_off": True,
            "hosts": [{"name": "srv1", "address": "127.0.0.1", "mac": None,
                       "health": "tcp:%d" % svc.port}]}
    b = rc.Board(str(tmp_path / "b"), rc.make_config(**{"policy.grace_s": 2, "tiers": [tier]}))
    mon = nutreal.RealUpsmon([nutreal.Monitor(rc.TIER, b.nut[0], b.nut[1], "monuser",
                                              rc.USERS["monuser"][0])],
                             pollfreq=POLL, pollfreqalert=POLL)
    timer = None
    try:
        b.wait_serving(15)
        mon.start()
        mon.wait_logged_in(15)
        b.wires({"mains": "off"})
        assert mon.wait_shutdown(30) is not None, mon.log()[-3000:]
        if halts:  # the OS goes on halting, then sshd's port closes
            timer = threading.Timer(HALT_S, svc.close)
            timer.start()
        with Link(b.serial) as lk:
            def tier_end():
                recs = records(lk, ("tier_done", "tier_timeout"))
                return recs and recs[0]
            end = wait_for(tier_end, max_wait_s + 20, "the tier to end")
            offs = records(lk, ("host_off",))
            logouts = records(lk, ("nut_logout",))
            st = lk.request("status")
        return end, offs, logouts, st, svc
    finally:
        if timer is not None:
            timer.cancel()
        svc.close()
        mon.stop()
        b.stop()


def test_the_tier_waits_for_the_server_to_stop_answering(tmp_path):
    end, offs, logouts, st, svc = run_outage(tmp_path, halts=True)
    assert end["type"] == "tier_done", end
    assert len(offs) == 1, offs
    after = offs[0]["data"]["after_logout_ms"]
    print("upsmon logged out; port closed %d s later; host_off %d ms after the logout "
          "(%d probes answered)" % (HALT_S, after, svc.accepted))
    # the logout comes right after SHUTDOWNCMD (upsmon exits): proven off one probe at most
    # after the port closed
    assert HALT_S * 1000 - 1000 <= after <= HALT_S * 1000 + PROBE_MS + 1000, after
    assert svc.accepted >= HALT_S - 1  # it was probed while still answering
    assert end["data"]["off"] == {"srv1": after}
    assert end["data"]["took_ms"] >= after
    assert end["ms"] >= offs[0]["ms"]
    host = st["plan"]["tiers"][0]["hosts"][0]
    assert (host["state"], host["off_s"]) == ("off", round(after / 1000, 1)), host


def test_a_server_still_answering_ends_the_wait_as_running(tmp_path):
    end, offs, _, _, _ = run_outage(tmp_path, halts=False, max_wait_s=8)
    assert end["type"] == "tier_timeout", end
    assert end["data"]["pending"] == [] and end["data"]["running"] == ["srv1"], end
    assert offs == []
