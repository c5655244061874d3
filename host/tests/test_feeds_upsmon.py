"""Two feeds on a virtual board, end to end, with the REAL upsmon (NUT 2.8.0) of two servers:
mains channels A and B; server a1 is dual-corded (feeds A and B), server b1 is on feed B only.
Each server's upsmon reaches the board through a relay bound to its own loopback address
(127.0.0.21, .22), as on a LAN where each server has its address.

Feed B lost (`virtual set feed.B=off`): the site stays ONLINE; after grace b1's upsmon shuts its
server down (FSD for b1's connection only), a1's upsmon stays up and reads ALARM OL with
"redundancy lost: feed B lost". Feed B back: b1's FSD is cleared once B is stable, a magic packet
for b1's MAC goes out, b1 "boots" (its upsmon logs in again) and passes its health check.
"""
import json
import os
import socket
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from rich.console import Console  # noqa: E402

from powersentinel import logs, nutreal, ui  # noqa: E402
from powersentinel.bench.site import Relay, free_port_on  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import wait_for  # noqa: E402

GRACE_S = 3
STABLE_S = 3
A1, B1 = "127.0.0.21", "127.0.0.22"
B1_MAC = "02:50:53:00:00:22"
CHANNELS = [{"name": "A"}, {"name": "B"}]

pytestmark = pytest.mark.skipif(not nutreal.available(), reason="NUT binaries not installed")


def _status_from(relay):
    """ups.status as the server behind `relay` reads it (its own address)."""
    with nutreal.NutClient(*relay.addr) as c:
        return (c.cmd("GET VAR %s ups.status" % rc.TIER)[0],
                c.cmd("GET VAR %s ups.alarm" % rc.TIER)[0])


def _upsmon(relay):
    pw = rc.USERS["monuser"][0]
    return nutreal.RealUpsmon([nutreal.Monitor(rc.TIER, relay.addr[0], relay.addr[1],
                                               "monuser", pw)], pollfreq=1, pollfreqalert=1)


def _magic_for(sock, mac, deadline):
    want = bytes.fromhex(mac.replace(":", ""))
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            continue
        if data[:6] == b"\xff" * 6 and data[6:12] == want:
            return True
    return False


def test_feed_b_lost_shuts_down_only_the_servers_on_b(tmp_path):
    wol_port = free_port_on(["127.0.0.1", A1, B1], socket.SOCK_DGRAM)
    wol = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wol.bind(("127.0.0.1", wol_port))
    wol.settimeout(0.2)
    tier = {"name": rc.TIER, "max_wait_s": 30, "delay_s": 0, "hosts": [
        {"name": "a1", "address": A1, "mac": None, "health": "nut", "feeds": ["A", "B"]},
        {"name": "b1", "address": B1, "mac": B1_MAC, "health": "nut", "feeds": ["B"]}]}
    cfg = rc.make_config(**{"policy.grace_s": GRACE_S, "policy.stable_mains_s": STABLE_S,
                            "mains.channels": CHANNELS, "tiers": [tier],
                            "recovery": {"wol_port": wol_port, "wol_broadcast": "127.0.0.1",
                                         "boot_timeout_s": 60, "wake_retries": 1}})
    b = rc.Board(str(tmp_path / "b"), cfg, extra_args=("--channels", json.dumps(CHANNELS)))
    ra, rb = Relay(A1, b.nut), Relay(B1, b.nut)
    ma, mb = _upsmon(ra), _upsmon(rb)
    mb2 = None
    try:
        b.wait_serving(15)
        ma.start()
        mb.start()
        ma.wait_logged_in(15)
        mb.wait_logged_in(15)
        with Link(b.serial) as lk:
            st = lk.request("status")
            assert st["feeds"]["feeds"] == {"A": "ok", "B": "ok"}, st.get("feeds")
            assert _status_from(ra)[0] == 'VAR apps ups.status "OL"'

            t_lost = time.time()
            b.wires({"feed.B": "off"})
            wait_for(lambda: lk.request("status")["feeds"]["feeds"]["B"] == "lost", 5,
                     "the firmware to see feed B lost")
            # at once: the alarm on every tier, nobody shut down, the site still ONLINE
            st_a, alarm = _status_from(ra)
            assert st_a == 'VAR apps ups.status "ALARM OL"', st_a
            assert alarm == 'VAR apps ups.alarm "redundancy lost: feed B lost"', alarm
            st = lk.request("status")
            assert st["state"]["name"] == "ONLINE"
            hosts = {h["host"]: h["state"] for h in st["feeds"]["hosts"]}
            assert hosts == {"a1": "degraded", "b1": "lost"}
            # `powersentinel status` (and the monitor) show the feeds row and each server's feeds
            ident = lk.identify()

            def shown():
                con = Console(record=True, width=200)
                con.print(ui.render_status(ident, lk.request("status")))
                text = con.export_text()
                return "a1 (A+B), b1 (B)" in text and text   # the coverage audit: 2 s period
            text = wait_for(shown, 5, "the status to list each server's feeds")
            assert "redundancy lost  A ok  B lost  servers: a1 degraded, b1 lost" in text, text

            t_down = mb.wait_shutdown(GRACE_S + 15)
            assert t_down is not None, mb.log()[-3000:]
            assert t_down - t_lost >= GRACE_S - 0.5, t_down - t_lost
            assert _status_from(rb)[0] == 'VAR apps ups.status "FSD ALARM OL"'
            # the dual-corded server: told nothing, still up, reading ALARM OL
            assert _status_from(ra)[0] == 'VAR apps ups.status "ALARM OL"'
            time.sleep(2)   # upsmon polls every second: two more polls must not shut it down
            assert ma.shutdown_time() is None and ma.running(), ma.log()[-3000:]
            fsd = logs.read(lk, ("feed_fsd",))
            assert [r["data"] for r in fsd] == [{"host": "b1", "tier": rc.TIER}]
            assert lk.request("status")["state"]["name"] == "ONLINE"
            assert logs.read(lk, ("tier_fsd",)) == []
            mb.stop()   # b1 has halted: its upsmon is gone
            wol_drain = time.monotonic() + 0.3
            _magic_for(wol, B1_MAC, wol_drain)

            t_back = time.monotonic()
            b.wires({"feed.B": "on"})
            assert _magic_for(wol, B1_MAC, time.monotonic() + STABLE_S + 15), \
                "no magic packet for b1"
            assert time.monotonic() - t_back >= STABLE_S - 0.5
            assert _status_from(rb)[0] == 'VAR apps ups.status "OL"'
            mb2 = _upsmon(rb)    # b1 boots
            mb2.start()
            mb2.wait_logged_in(15)

            def powered_on():
                r = logs.read(lk, ("feed_power_on",))
                return r and r[0]
            rec = wait_for(powered_on, 20, "feed_power_on for b1")
            assert rec["data"]["host"] == "b1" and rec["data"]["ok"] is True, rec
            st = lk.request("status")
            assert {h["host"]: (h["state"], h["action"]) for h in st["feeds"]["hosts"]} == {
                "a1": ("ok", ""), "b1": ("ok", "")}
            assert "ALARM" not in _status_from(ra)[0]
            assert mb2.shutdown_time() is None
            kinds = [r["type"] for r in logs.read(lk, ("feed_lost", "feed_back"))]
            assert kinds == ["feed_lost", "feed_back"], kinds
    finally:
        for m in (ma, mb, mb2):
            if m is not None:
                m.stop()
        ra.close()
        rb.close()
        wol.close()
        b.stop()
