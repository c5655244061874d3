"""Two feeds on a virtual board, end to end, with the REAL upsmon (NUT 2.8.0) of three servers:
mains channels A and B; tier apps holds a1 (dual-corded: feeds A and B) and b1 (feed B only);
tier dbs holds b2 (feed B only). Each server's upsmon reaches the board through a relay bound to
its own loopback address (127.0.0.21-23), as on a LAN where each server has its address.

Feed B lost (`virtual set feed.B=off`): the site stays ONLINE and ALARM is raised at once; after
grace b1's upsmon shuts its server down (FSD for b1's connection only), then, once b1 has logged
out, b2's (tier order); a1's upsmon stays up reading ALARM OL with "redundancy lost: feed B
lost". Feed B back: the FSDs are cleared once B is stable; b2 (the later tier) is woken first,
b1 only once b2 is back up (its upsmon logged in again); both power-ons are recorded.

A hard reset while B is lost: the server told FSD reads FSD again as soon as NUT serves after
the boot, without a new grace; nothing else changes.
"""
import json
import os
import re
import socket
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from rich.console import Console  # noqa: E402

from powersentinel import logs, nutreal, ui  # noqa: E402
from powersentinel.bench.site import Relay, free_port_on  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import VirtualError, wait_for  # noqa: E402

GRACE_S = 3
STABLE_S = 3
A1, B1, B2 = "127.0.0.21", "127.0.0.22", "127.0.0.23"
B1_MAC, B2_MAC = "02:50:53:00:00:22", "02:50:53:00:00:23"
CHANNELS = [{"name": "A"}, {"name": "B"}]

pytestmark = pytest.mark.skipif(not nutreal.available(), reason="NUT binaries not installed")


def _status_from(relay, ups=rc.TIER):
    """(ups.status, ups.alarm) reply lines as the server behind `relay` reads them."""
    with nutreal.NutClient(*relay.addr) as c:
        return (c.cmd("GET VAR %s ups.status" % ups)[0],
                c.cmd("GET VAR %s ups.alarm" % ups)[0])


def _upsmon(relay, ups=rc.TIER):
    pw = rc.USERS["monuser"][0]
    return nutreal.RealUpsmon([nutreal.Monitor(ups, relay.addr[0], relay.addr[1],
                                               "monuser", pw)], pollfreq=1, pollfreqalert=1)


def _three_servers():
    """Tier apps: a1 (dual-corded: feeds A and B) and b1 (B only); tier dbs: b2 (B only)."""
    return [{"name": rc.TIER, "max_wait_s": 30, "delay_s": 0, "hosts": [
                {"name": "a1", "address": A1, "mac": None, "health": "nut", "feeds": ["A", "B"]},
                {"name": "b1", "address": B1, "mac": B1_MAC, "health": "nut", "feeds": ["B"]}]},
            {"name": "dbs", "max_wait_s": 30, "delay_s": 0, "hosts": [
                {"name": "b2", "address": B2, "mac": B2_MAC, "health": "nut", "feeds": ["B"]}]}]


def _three_upsmons(b):
    """The relays (each server's own address) to board b and the three servers' upsmon."""
    relays = (Relay(A1, b.nut), Relay(B1, b.nut), Relay(B2, b.nut))
    return relays, (_upsmon(relays[0]), _upsmon(relays[1]), _upsmon(relays[2], "dbs"))


def _log_in(b, mons):
    """Once board b serves NUT: every upsmon started and logged in."""
    b.wait_serving(15)
    for m in mons:
        m.start()
    for m in mons:
        m.wait_logged_in(15)


class Wol:
    """Magic packets sent to the "broadcast" address (127.0.0.1 here): (time, mac) each."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.seen = []

    def poll(self):
        while True:
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                return self.seen
            if data[:6] == b"\xff" * 6 and len(data) >= 12:
                self.seen.append((time.monotonic(), ":".join("%02x" % b for b in data[6:12])))

    def macs(self):
        out = []
        for _, m in self.poll():
            if m not in out:
                out.append(m)
        return out

    def close(self):
        self.sock.close()


def test_feed_b_lost_shuts_down_only_the_servers_on_b(tmp_path):
    wol = Wol(free_port_on(["127.0.0.1", A1, B1, B2], socket.SOCK_DGRAM))
    tiers = _three_servers()
    cfg = rc.make_config(**{"policy.grace_s": GRACE_S, "policy.stable_mains_s": STABLE_S,
                            "mains.channels": CHANNELS, "tiers": tiers,
                            "recovery": {"wol_port": wol.sock.getsockname()[1],
                                         "wol_broadcast": "127.0.0.1", "boot_timeout_s": 60,
                                         "wake_retries": 1}})
    http_port = free_port_on(["127.0.0.1"])
    cfg["http"] = {"enabled": True, "port": http_port}   # the status page's feeds block
    b = rc.Board(str(tmp_path / "b"), cfg, extra_args=("--channels", json.dumps(CHANNELS)))
    (ra, rb, rb2), (ma, mb, mdb) = _three_upsmons(b)
    later = []
    try:
        _log_in(b, (ma, mb, mdb))
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
            assert _status_from(rb2, "dbs")[0] == 'VAR dbs ups.status "ALARM OL"'
            st = lk.request("status")
            assert st["state"]["name"] == "ONLINE"
            hosts = {h["host"]: h["state"] for h in st["feeds"]["hosts"]}
            assert hosts == {"a1": "degraded", "b1": "lost", "b2": "lost"}
            # `powersentinel status` (and the monitor) show the feeds row and each server's feeds
            ident = lk.identify()

            def shown():
                con = Console(record=True, width=200)
                con.print(ui.render_status(ident, lk.request("status")))
                text = con.export_text()
                return "a1 (A+B), b1 (B)" in text and text   # the coverage audit: 2 s period
            text = wait_for(shown, 5, "the status to list each server's feeds")
            assert "redundancy lost  A ok  B lost  servers: a1 degraded, b1 lost" in text, text

            t_b1 = mb.wait_shutdown(GRACE_S + 15)
            assert t_b1 is not None, mb.log()[-3000:]
            assert t_b1 - t_lost >= GRACE_S - 0.5, t_b1 - t_lost
            t_b2 = mdb.wait_shutdown(15)
            assert t_b2 is not None, mdb.log()[-3000:]
            assert t_b2 > t_b1   # dbs is told only once apps' lost server has logged out
            assert _status_from(rb)[0] == 'VAR apps ups.status "FSD ALARM OL"'
            # the dual-corded server: told nothing, still up, reading ALARM OL
            assert _status_from(ra)[0] == 'VAR apps ups.status "ALARM OL"'
            time.sleep(2)   # upsmon polls every second: two more polls must not shut it down
            assert ma.shutdown_time() is None and ma.running(), ma.log()[-3000:]
            fsd = logs.read(lk, ("feed_fsd",))
            assert [r["data"] for r in fsd] == [
                {"host": "b1", "tier": rc.TIER, "cause": "grace_expired"},
                {"host": "b2", "tier": "dbs", "cause": "grace_expired"}]
            assert lk.request("status")["state"]["name"] == "ONLINE"
            assert logs.read(lk, ("tier_fsd",)) == []   # no tier-wide FSD
            # the status page: each channel, feed B lost, the servers it leaves short
            page = urllib.request.urlopen("http://127.0.0.1:%d/" % http_port,
                                          timeout=10).read().decode()
            for frag in ('<tr data-channel="B" data-supply="lost">',
                         '<tr data-feed="A" data-state="ok">', '<tr data-feed="B" data-state="lost">',
                         'data-host="a1" data-state="degraded" data-action="">',
                         'data-host="b1" data-state="lost" data-action="'):
                assert frag in page, (frag, page[-3000:])
            mb.stop()    # b1 and b2 have halted: their upsmon is gone
            mdb.stop()
            wol.poll()
            wol.seen.clear()

            t_back = time.monotonic()
            b.wires({"feed.B": "on"})
            wait_for(lambda: B2_MAC in wol.macs(), STABLE_S + 15, "a magic packet for b2")
            assert wol.seen[0][0] - t_back >= STABLE_S - 0.5
            assert _status_from(rb)[0] == 'VAR apps ups.status "OL"'   # every FSD cleared
            time.sleep(1.5)
            assert wol.macs() == [B2_MAC]   # apps waits for dbs to be up
            mdb2 = _upsmon(rb2, "dbs")      # b2 boots
            later.append(mdb2)
            mdb2.start()
            mdb2.wait_logged_in(15)
            wait_for(lambda: B1_MAC in wol.macs(), 15, "a magic packet for b1 after b2 is up")
            mb2 = _upsmon(rb)               # b1 boots
            later.append(mb2)
            mb2.start()
            mb2.wait_logged_in(15)

            def powered_on():
                r = logs.read(lk, ("feed_power_on",))
                return len(r) == 2 and r
            recs = wait_for(powered_on, 20, "feed_power_on for b2 and b1")
            assert [(r["data"]["host"], r["data"]["ok"]) for r in recs] == [
                ("b2", True), ("b1", True)], recs
            st = lk.request("status")
            assert {h["host"]: (h["state"], h["action"]) for h in st["feeds"]["hosts"]} == {
                "a1": ("ok", ""), "b1": ("ok", ""), "b2": ("ok", "")}
            assert "ALARM" not in _status_from(ra)[0]
            assert mb2.shutdown_time() is None and mdb2.shutdown_time() is None
            kinds = [r["type"] for r in logs.read(lk, ("feed_lost", "feed_back"))]
            assert kinds == ["feed_lost", "feed_back"], kinds
    finally:
        for m in [ma, mb, mdb] + later:
            m.stop()
        for r in (ra, rb, rb2):
            r.close()
        wol.close()
        b.stop()


def _journal(lk, kinds):
    return [r["data"] for r in logs.read(lk, kinds)]


def test_both_feeds_lost_cuts_both_ups_loads_and_power_on_waits_for_both(tmp_path):
    """Two UPSes, one per feed (ups.feed A on the first UART, ups.feeds B on the second), the
    UPS minutes 60x faster. Both feeds lost: the full ordered sequence (apps, then dbs), then
    each UPS is told once to cut its load and restore it; every server halts. A back alone: the
    site's power-on wakes nobody (every server needs B); B back: both loads are restored and the
    servers are powered on, b2 first."""
    wol = Wol(free_port_on(["127.0.0.1", A1, B1, B2], socket.SOCK_DGRAM))
    tiers = _three_servers()
    cfg = rc.make_config(**{"policy.grace_s": GRACE_S, "policy.stable_mains_s": STABLE_S,
                            "mains.channels": CHANNELS, "tiers": tiers,
                            "ups.link": "q1", "ups.feed": "A", "ups.feeds": [{"feed": "B"}],
                            "ups.shutdown_delay_min": 1, "ups.restore_min": 1,
                            "recovery": {"wol_port": wol.sock.getsockname()[1],
                                         "wol_broadcast": "127.0.0.1", "boot_timeout_s": 60,
                                         "wake_retries": 1}})
    b = rc.Board(str(tmp_path / "b"), cfg, extra_args=(
        "--channels", json.dumps(CHANNELS), "--ups-feeds", json.dumps(["A", "B"]),
        "--time-scale", "60"))
    (ra, rb, rb2), (ma, mb, mdb) = _three_upsmons(b)
    later = []
    try:
        _log_in(b, (ma, mb, mdb))
        with Link(b.serial) as lk:
            def links_ok():
                u = lk.request("status")["ups"]["feeds"]
                return u["A"]["link"] == "ok" and u["B"]["link"] == "ok" and u
            u = wait_for(links_ok, 15, "both UPS links")
            assert u["A"]["status"] == "OL" and u["B"]["status"] == "OL", u
            assert u["A"]["commanded"] and u["B"]["commanded"]   # a1 is on A too
            # `powersentinel status` and the monitor show each feed's UPS
            ident, st = lk.identify(), lk.request("status")
            for r in (ui.render_status(ident, st), ui.render_dashboard(ident, st, [], "pty")):
                con = Console(record=True, width=200)
                con.print(r)
                text = con.export_text()
                assert text.count("OL  link ok  charge 100 %  load 30 %") == 2, text

            # each UPS is driven on its own wire; NUT's instant commands go to the first UPS
            b.wires({"ups.B.status": "OB"})
            wait_for(lambda: lk.request("status")["ups"]["feeds"]["B"]["status"] == "OB", 10,
                     "UPS B on battery")
            assert lk.request("status")["ups"]["feeds"]["A"]["status"] == "OL"
            b.wires({"ups.B.status": "auto"})
            with nutreal.NutClient(*b.nut) as c:
                c.cmd("USERNAME admin")
                c.cmd("PASSWORD %s" % rc.USERS["admin"][0])
                assert c.cmd("INSTCMD %s test.battery.start.quick" % rc.TIER)[0] == "OK"
            wait_for(lambda: "T" in b.state()["upses"]["A"]["commands"], 10,
                     "UPS A to get the battery test")
            assert "T" not in b.state()["upses"]["B"]["commands"]
            wait_for(lambda: lk.request("status")["ups"]["feeds"]["B"]["status"] == "OL", 10,
                     "UPS B back on line")

            b.wires({"feed.A": "off", "feed.B": "off"})
            # the full ordered sequence: apps (a1, b1), then dbs (b2)
            t_a1 = ma.wait_shutdown(GRACE_S + 20)
            t_b1 = mb.wait_shutdown(5)
            assert t_a1 is not None and t_b1 is not None, (ma.log()[-2000:], mb.log()[-2000:])
            t_b2 = mdb.wait_shutdown(30)
            assert t_b2 is not None and t_b2 > max(t_a1, t_b1), mdb.log()[-2000:]
            for m in (ma, mb, mdb):
                m.stop()   # the servers have halted
            wait_for(lambda: lk.request("status")["state"]["name"] == "WAIT_MAINS", 30,
                     "the load-off")
            ups = b.state()["upses"]
            assert (ups["A"]["load_offs"], ups["B"]["load_offs"]) == (1, 1), ups
            assert "S01R0001" in ups["A"]["commands"] and "S01R0001" in ups["B"]["commands"]
            offs = [(d.get("feed"), d["ok"]) for d in _journal(lk, ("ups_off",))]
            assert offs[:2] == [("A", True), ("B", True)], offs
            assert [x for x in offs if x[0] is not None] == [("A", True), ("B", True)], offs
            st = lk.request("status")
            fu = st["ups"]["feeds"]
            assert fu["A"]["load_offs"] == 1 and fu["B"]["load_offs"] == 1, fu
            con = Console(record=True, width=200)
            con.print(ui.render_status(lk.identify(), st))
            assert con.export_text().count("load cut 1x") == 2, con.export_text()
            wait_for(lambda: not any(u["output_on"] for u in b.state()["upses"].values()), 10,
                     "both UPSes to cut their load")
            wol.poll()
            wol.seen.clear()

            # A back alone: the site powers on, but every server here needs B
            b.wires({"feed.A": "on"})
            wait_for(lambda: lk.request("status")["state"]["name"] == "ONLINE", 30,
                     "the site's power-on on feed A")
            waits = sorted(d["host"] for d in _journal(lk, ("power_on_wait",)))
            assert waits == ["a1", "b1", "b2"], waits
            wait_for(lambda: b.state()["upses"]["A"]["output_on"], 10, "UPS A's restore")
            time.sleep(STABLE_S + 1)
            assert wol.macs() == [], wol.seen
            assert not b.state()["upses"]["B"]["output_on"]   # B's UPS restores on B only
            acts = {h["host"]: h["action"] for h in lk.request("status")["feeds"]["hosts"]}
            assert acts == {"a1": "wait", "b1": "wait", "b2": "wait"}, acts

            t_back = time.monotonic()
            b.wires({"feed.B": "on"})
            wait_for(lambda: B2_MAC in wol.macs(), STABLE_S + 15, "a magic packet for b2")
            assert wol.seen[0][0] - t_back >= STABLE_S - 0.5
            wait_for(lambda: b.state()["upses"]["B"]["output_on"], 10, "UPS B's restore")
            mdb2 = _upsmon(rb2, "dbs")      # b2 boots
            later.append(mdb2)
            mdb2.start()
            mdb2.wait_logged_in(15)
            wait_for(lambda: B1_MAC in wol.macs(), 15, "a magic packet for b1 after b2 is up")
            for r, name in ((ra, "a1"), (rb, "b1")):   # a1 and b1 boot
                m = _upsmon(r)
                later.append(m)
                m.start()
                m.wait_logged_in(15)

            def powered_on():
                r = _journal(lk, ("feed_power_on",))
                return len(r) == 3 and r
            recs = wait_for(powered_on, 20, "feed_power_on for b2, a1 and b1")
            assert recs[0]["host"] == "b2" and all(r["ok"] for r in recs), recs
            ups = b.state()["upses"]
            assert (ups["A"]["load_offs"], ups["B"]["load_offs"]) == (1, 1), ups
            assert all(m.shutdown_time() is None for m in later)
    finally:
        for m in [ma, mb, mdb] + later:
            m.stop()
        for r in (ra, rb, rb2):
            r.close()
        wol.close()
        b.stop()


def test_feed_state_survives_a_hard_reset(tmp_path):
    """Feed B lost, b1 told FSD and halted; the board's interpreter is killed (a reset as the
    flash sees it) while B is still out. After the boot b1's address reads FSD at once (no new
    grace, no second feed_fsd), a1 stays on ALARM OL and its upsmon up, B is not lost anew."""
    grace_s = 8   # long enough that a grace started again at boot could not pass unseen
    tiers = [{"name": rc.TIER, "max_wait_s": 30, "delay_s": 0, "hosts": [
        {"name": "a1", "address": A1, "mac": None, "health": "nut", "feeds": ["A", "B"]},
        {"name": "b1", "address": B1, "mac": B1_MAC, "health": "nut", "feeds": ["B"]}]}]
    cfg = rc.make_config(**{"policy.grace_s": grace_s, "policy.stable_mains_s": STABLE_S,
                            "mains.channels": CHANNELS, "tiers": tiers})
    b = rc.Board(str(tmp_path / "b"), cfg, extra_args=("--channels", json.dumps(CHANNELS)))
    ra, rb = Relay(A1, b.nut), Relay(B1, b.nut)
    ma, mb = _upsmon(ra), _upsmon(rb)
    try:
        b.wait_serving(15)
        for m in (ma, mb):
            m.start()
        for m in (ma, mb):
            m.wait_logged_in(15)
        b.wires({"feed.B": "off"})
        assert mb.wait_shutdown(grace_s + 15) is not None, mb.log()[-3000:]
        mb.stop()   # b1 has halted
        with Link(b.serial) as lk:
            wait_for(lambda: {h["host"]: h["action"] for h in lk.request("status")["feeds"][
                "hosts"]}["b1"] == "off", 10, "b1 counted off")
        nut = b.nut
        boots = b.boots()
        b.kill()
        b.wait_booted(boots)
        b.refresh()
        assert b.nut == nut   # the relays still reach the board
        t_boot = time.monotonic()
        b.wait_serving(15)
        st_b, alarm = _status_from(rb)
        took = time.monotonic() - t_boot
        assert st_b == 'VAR apps ups.status "FSD ALARM OL"', (st_b, took)
        assert took < grace_s - 2, took
        assert alarm == 'VAR apps ups.alarm "redundancy lost: feed B lost"', alarm
        assert _status_from(ra)[0] == 'VAR apps ups.status "ALARM OL"'
        with Link(b.serial) as lk:
            wait_for(lambda: ma.log().count("Logged into UPS") >= 2, 30,
                     "a1's upsmon to log in again")
            time.sleep(2)   # two more upsmon polls: a1 must not be told anything
            assert ma.shutdown_time() is None and ma.running(), ma.log()[-3000:]
            assert [r["data"] for r in logs.read(lk, ("feed_fsd",))] == [
                {"host": "b1", "tier": rc.TIER, "cause": "grace_expired"}]
            assert len(logs.read(lk, ("feed_lost",))) == 1
            res = [r["data"] for r in logs.read(lk, ("feed_resume",))]
            assert res == [{"ok": True, "lost": ["B"], "told": ["b1"]}], res
            st = lk.request("status")
            assert st["state"]["name"] == "ONLINE"
            assert {h["host"]: (h["state"], h["action"]) for h in st["feeds"]["hosts"]} == {
                "a1": ("degraded", ""), "b1": ("lost", "off")}, st["feeds"]
    finally:
        for m in (ma, mb):
            m.stop()
        for r in (ra, rb):
            r.close()
        b.stop()


def test_the_first_ups_on_battery_alone_is_feed_a_lost_not_the_site_s_outage(tmp_path):
    """Two UPSes, one per feed (A's is the first, the one the tiers' NUT variables come from),
    the UPS minutes 60x faster and a 10-minute battery. Feed A lost: UPS A goes on battery, yet
    the site stays ONLINE (before, its OB started the whole site's sequence and cut both UPS
    loads, dual-corded servers included). Grace is long (60 s); UPS A's battery runs low within
    ~8 s: a2 (on A alone) is told at once, without waiting for the grace; a1 (A and B) never."""
    tiers = [{"name": rc.TIER, "max_wait_s": 30, "delay_s": 0, "hosts": [
                 {"name": "a1", "address": A1, "mac": None, "health": "nut",
                  "feeds": ["A", "B"]},
                 {"name": "a2", "address": B1, "mac": None, "health": "nut", "feeds": ["A"]}]}]
    cfg = rc.make_config(**{"policy.grace_s": 60, "policy.stable_mains_s": STABLE_S,
                            "mains.channels": CHANNELS, "tiers": tiers,
                            "ups.link": "q1", "ups.feed": "A", "ups.feeds": [{"feed": "B"}],
                            "ups.shutdown_delay_min": 1, "ups.restore_min": 1})
    b = rc.Board(str(tmp_path / "b"), cfg, extra_args=(
        "--channels", json.dumps(CHANNELS), "--ups-feeds", json.dumps(["A", "B"]),
        "--time-scale", "60", "--ups-runtime", "600"))
    ra, r2 = Relay(A1, b.nut), Relay(B1, b.nut)
    ma, m2 = _upsmon(ra), _upsmon(r2)
    try:
        b.wait_serving(15)
        for m in (ma, m2):
            m.start()
        for m in (ma, m2):
            m.wait_logged_in(15)
        with Link(b.serial) as lk:
            wait_for(lambda: all(u["link"] == "ok" for u in
                                 lk.request("status")["ups"]["feeds"].values()), 15,
                     "both UPS links")
            t_lost = time.time()
            b.wires({"feed.A": "off"})
            wait_for(lambda: lk.request("status")["ups"]["feeds"]["A"]["status"]
                     .startswith("OB"), 10, "UPS A on battery")
            t2 = m2.wait_shutdown(25)
            assert t2 is not None, m2.log()[-3000:]
            print("a2 shut down %.1f s after feed A was lost (grace 60 s)" % (t2 - t_lost))
            assert t2 - t_lost < 30
            st = lk.request("status")
            assert "LB" in st["ups"]["feeds"]["A"]["status"], st["ups"]["feeds"]
            assert [r["data"] for r in logs.read(lk, ("feed_fsd",))] == [
                {"host": "a2", "tier": rc.TIER, "cause": "ups_low_battery"}]
            # the site never left ONLINE: no tier-wide FSD, no load-off; a1 reads ALARM OL
            assert [r["data"]["to"] for r in logs.read(lk, ("state",))] == []
            assert logs.read(lk, ("tier_fsd",)) == [] and logs.read(lk, ("ups_off",)) == []
            assert _status_from(ra)[0] == 'VAR apps ups.status "ALARM OL"'
            time.sleep(2)   # two more upsmon polls: a1 stays up
            assert ma.shutdown_time() is None and ma.running(), ma.log()[-3000:]
    finally:
        for m in (ma, m2):
            m.stop()
        for r in (ra, r2):
            r.close()
        b.stop()


def test_feed_b_ups_read_over_dry_contacts(tmp_path):
    """Both UPSes read over dry contacts on one virtual board (the first, feed A's, on lines 1-2
    with output 0; feed B's on lines 3-4 with output 1), driven with `virtual set contact.N`.
    Feed B lost, its UPS on battery (line 3): the site stays ONLINE, a1 (A+B) untouched; grace
    is long (60 s) but B's low battery (line 4) ends it: b1 then b2 (B only) are told at once, in
    tier order, cause ups_low_battery. Then feed A lost as well (line 1): the whole site's
    sequence shuts a1 down and its load-off pulses each UPS's output once, A then B."""
    tiers = _three_servers()
    cfg = rc.make_config(**{"policy.grace_s": 60, "policy.stable_mains_s": STABLE_S,
                            "mains.channels": CHANNELS, "tiers": tiers,
                            "ups.link": "contacts", "ups.contacts": "OB=1;LB=2;",
                            "ups.shutdown_output": 0, "ups.feed": "A",
                            "ups.feeds": [{"feed": "B", "link": "contacts",
                                           "contacts": "OB=3;LB=4;", "shutdown_output": 1}]})
    b = rc.Board(str(tmp_path / "b"), cfg, extra_args=("--channels", json.dumps(CHANNELS)))
    (ra, rb, rb2), (ma, mb, mdb) = _three_upsmons(b)
    try:
        _log_in(b, (ma, mb, mdb))
        with Link(b.serial) as lk:
            def feed_ups(feed, status):
                u = lk.request("status")["ups"]["feeds"][feed]
                return u["link"] == "contacts" and u["status"] == status and u

            wait_for(lambda: feed_ups("B", "OL"), 10, "UPS B read over its contacts")
            with pytest.raises(VirtualError, match=re.escape("driven by its lines: contact.N=0|1")):
                b.wires({"ups.B.status": "OB"})   # no simulator: its lines drive it
            t_lost = time.time()
            b.wires({"feed.B": "off", "contact.3": "1"})    # B lost, its UPS on battery
            wait_for(lambda: feed_ups("B", "OB"), 10, "UPS B on battery")
            wait_for(lambda: lk.request("status")["feeds"]["feeds"]["B"] == "lost", 5,
                     "the firmware to see feed B lost")
            st = lk.request("status")
            assert st["ups"]["feeds"]["A"]["status"] == "OL", st["ups"]
            # `powersentinel status` and the monitor: a row per feed's UPS, B's on its contacts
            ident = lk.identify()
            for r in (ui.render_status(ident, st), ui.render_dashboard(ident, st, [], "pty")):
                con = Console(record=True, width=200)
                con.print(r)
                text = con.export_text()
                assert "OB  link contacts" in text and "OL  link contacts" in text, text
            assert _status_from(ra)[0] == 'VAR apps ups.status "ALARM OL"'
            time.sleep(2)   # the grace (60 s) runs: nobody is told yet
            assert _status_from(rb)[0] == 'VAR apps ups.status "ALARM OL"'

            b.wires({"contact.4": "1"})                      # UPS B's battery low
            t_b1 = mb.wait_shutdown(15)
            assert t_b1 is not None, mb.log()[-3000:]
            assert t_b1 - t_lost < 30, t_b1 - t_lost         # well inside the 60 s grace
            t_b2 = mdb.wait_shutdown(15)
            assert t_b2 is not None and t_b2 > t_b1, mdb.log()[-3000:]
            assert _journal(lk, ("feed_fsd",)) == [
                {"host": "b1", "tier": rc.TIER, "cause": "ups_low_battery"},
                {"host": "b2", "tier": "dbs", "cause": "ups_low_battery"}]
            # one UPS on battery, even low, is its feed lost: the site never left ONLINE
            st = lk.request("status")
            assert st["state"]["name"] == "ONLINE"
            assert _journal(lk, ("state",)) == [] and _journal(lk, ("ups_off",)) == []
            assert {"feed": "B", "status": ["OB", "LB"]} in _journal(lk, ("contacts",))
            assert _status_from(ra)[0] == 'VAR apps ups.status "ALARM OL"'
            assert ma.shutdown_time() is None and ma.running(), ma.log()[-3000:]
            mb.stop()    # b1 and b2 have halted
            mdb.stop()

            # feed A lost too: every feed's UPS on battery is the site's outage
            b.wires({"feed.A": "off", "contact.1": "1"})
            t_a1 = ma.wait_shutdown(30)
            assert t_a1 is not None, ma.log()[-3000:]
            ma.stop()
            seen = set()
            deadline = time.monotonic() + 60
            while seen != {0, 1} and time.monotonic() < deadline:   # each UPS's 1 s pulse
                seen |= {n for n, v in enumerate(b.state()["outputs"]) if v}
                time.sleep(0.05)
            assert seen == {0, 1}, seen
            def offs():
                x = [(d["feed"], d["ok"]) for d in _journal(lk, ("ups_off",)) if "feed" in d]
                return len(x) >= 2 and x
            offs = wait_for(offs, 10, "the per-feed ups_off records")
            assert offs == [("A", True), ("B", True)], offs
            assert _journal(lk, ("state",))[0]["from"] == "ONLINE"
    finally:
        for m in (ma, mb, mdb):
            m.stop()
        for r in (ra, rb, rb2):
            r.close()
        b.stop()
