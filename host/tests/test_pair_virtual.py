"""Pair mode on two virtual boards (the real firmware on two MicroPython interpreters), the peer
link on loopback: both see the peer ALIVE; board B stopped, board A raises "redundancy lost"
in its status, its journal and over NUT (real upsc: ALARM in ups.status, the ups.alarm text);
B back, cleared. A frame made with a wrong key (Python's hmac) is refused and counted."""
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess
import time

import io

import pytest
from rich.console import Console

from powersentinel import ui, virtual
from powersentinel.link import Link
from powersentinel.virtual import pair as vpair
from powersentinel.virtual import wait_for

HEARTBEAT_MS = 300
DEAD_MS = 1500
TIER = "tier"


def upsc(nut, var=None):
    """The real upsc against a board's NUT address ("127.0.0.1:port")."""
    r = subprocess.run(["upsc", "%s@%s" % (TIER, nut)] + ([var] if var else []),
                       capture_output=True, text=True, timeout=10)
    if var:
        return r.stdout.strip()
    return dict(ln.split(": ", 1) for ln in r.stdout.splitlines() if ": " in ln)


def records(link, kind):
    out, frm = [], 0
    while True:
        r = link.request("log_read", from_seq=frm, max=32)
        out += [x for x in r["records"] if x["type"] == kind]
        if not r["records"] or r["records"][-1]["seq"] >= (r["last"] or 0):
            return out
        frm = r["records"][-1]["seq"] + 1


def render(ident, st):
    """The console status table and the monitor screen as plain text."""
    con = Console(width=200, record=True, file=io.StringIO())
    con.print(ui.render_status(ident, st))
    con.print(ui.render_dashboard(ident, st, [], "virtual"))
    return con.export_text()


def pair_status(link):
    return link.request("status").get("pair") or {}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pair"))
    cfg = os.path.join(d, "site.json")
    with open(cfg, "w") as f:
        json.dump({"tiers": [{"name": TIER, "hosts": []}]}, f)
    meta = vpair.start_pair(d, config=cfg, heartbeat_ms=HEARTBEAT_MS, dead_ms=DEAD_MS)
    meta["dir"] = d
    try:
        yield meta
    finally:
        vpair.stop_pair(d)


def test_configs_cross_ports_and_share_one_key():
    a, b, key, (pa, pb) = vpair.configs({"ups": {"link": "q1"}}, ports=(4001, 4002))
    assert (a["pair"]["id"], b["pair"]["id"]) == ("A", "B")
    assert (a["pair"]["port"], a["pair"]["peer_port"]) == (4001, 4002)
    assert (b["pair"]["port"], b["pair"]["peer_port"]) == (4002, 4001)
    assert a["pair"]["key"] == b["pair"]["key"] == key and len(key) >= 16
    assert (a["ups"]["link"], b["ups"]["link"]) == ("q1", "none")


def test_dead_peer_raises_redundancy_lost_everywhere_and_clears(pair):
    a, b = pair["a"], pair["b"]
    nut_a = a["board"]["nut"]
    with Link(a["board"]["serial"]) as la:
        wait_for(lambda: pair_status(la).get("state") == "ALIVE", 30, "A to see B alive")
        with Link(b["board"]["serial"]) as lb:
            wait_for(lambda: pair_status(lb).get("state") == "ALIVE", 30, "B to see A alive")
            st = pair_status(lb)
            assert st["id"] == "B" and st["view"]["state"] == "ONLINE"
        assert "ALARM" not in upsc(nut_a, "ups.status")

        virtual.stop(b["dir"])
        t0 = time.monotonic()
        st = wait_for(lambda: (lambda s: s if s.get("state") == "DEAD" else None)(
            pair_status(la)), DEAD_MS / 1000 + 5, "A to see B dead")
        took = time.monotonic() - t0
        assert st["cause"] == "no heartbeat"
        print("peer stopped -> redundancy lost in status: %.2f s (dead_ms %d)"
              % (took, DEAD_MS))
        v = upsc(nut_a)
        assert v["ups.status"].split()[0] == "ALARM" and "OL" in v["ups.status"].split()
        assert v["ups.alarm"] == "redundancy lost: no heartbeat"
        full = la.request("status")
        assert full["ups"]["status"].startswith("ALARM")
        shown = render(la.identify(), full)
        assert "pair A" in shown and "redundancy lost: peer 127.0.0.1 DEAD (no heartbeat)" in shown
        recs = records(la, "pair_peer")
        assert recs[-1]["data"]["state"] == "DEAD"
        assert recs[-1]["data"]["cause"] == "no heartbeat"

        virtual.start(b["dir"])
        wait_for(lambda: pair_status(la).get("state") == "ALIVE", 40, "A to see B back")
        assert "ALARM" not in upsc(nut_a, "ups.status")
        assert "ups.alarm" not in upsc(nut_a)
        recs = records(la, "pair_peer")
        assert recs[-1]["data"]["state"] == "ALIVE"
        assert recs[-1]["data"]["cause"] in ("heartbeat", "peer rebooted")


def test_wrong_key_frame_is_refused_and_counted(pair):
    a = pair["a"]
    with Link(a["board"]["serial"]) as la:
        before = pair_status(la)
        body = struct.pack("!4sBIIIBBBBIBB", b"PSP1", ord("B"), 12345, 1, 0, 1, 1, 0, 0, 0, 0,
                           0)
        frame = body + hmac.new(b"not-the-shared-key!", body, hashlib.sha256).digest()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(3):
                s.sendto(frame, ("127.0.0.1", a["port"]))
        finally:
            s.close()
        st = wait_for(lambda: (lambda s: s if s["bad_key"] >= before["bad_key"] + 3 else None)(
            pair_status(la)), 10, "the bad frames to be counted")
        assert st["state"] == before["state"]  # refused: the real peer's frames still count
        # the right key makes the same body authentic (so the count above is the key's doing)
        good = body + hmac.new(pair["key"].encode(), body, hashlib.sha256).digest()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(good, ("127.0.0.1", a["port"]))
        finally:
            s.close()
        # an authentic frame of an unknown boot that does not echo A's boot: not accepted
        wait_for(lambda: pair_status(la)["unconfirmed"] >= 1, 10, "the frame to be seen")
        assert pair_status(la)["bad_key"] == st["bad_key"]


def test_pair_row_names_refused_frames():
    line = ui.pair_line({"state": "ALIVE", "peer": "10.0.0.2", "since_ms": 5000,
                         "last_ms": 200, "bad_key": 2, "replayed": 0, "same_id": 0})
    assert line.startswith("[green]peer 10.0.0.2 ALIVE[/green]  since 5 s, last frame 0 s ago")
    assert "refused: 2 bad key" in line


def test_a_pulled_pair_config_keeps_its_pair_section(tmp_path):
    from powersentinel import siteconfig
    a, _, key, _ = vpair.configs({"tiers": [{"name": TIER, "hosts": []}]}, ports=(4001, 4002))
    device, problems = siteconfig.convert(a)
    assert problems == []
    cfg = siteconfig.load(str(_write(tmp_path / "a.toml", siteconfig.to_toml(device))))
    assert cfg["pair"] == dict(a["pair"], enabled=True)
    assert cfg["pair"]["key"] == key


def _write(path, text):
    path.write_text(text)
    return path


def test_cli_starts_drives_and_stops_a_pair(tmp_path):
    from fakeboard import invoke
    d = str(tmp_path / "cli-pair")
    code, so, se = invoke(["virtual", "start", "--dir", d, "--pair"],
                          env={"POWERSENTINEL_TIMEOUT": "5"})
    try:
        assert code == 0, se
        meta = json.loads(so)
        assert {meta["a"]["id"], meta["b"]["id"]} == {"A", "B"}
        # mains to both boards, the UPS to A only
        code, so, se = invoke(["virtual", "set", "--dir", d, "mains=0.5", "ups.load=40"])
        assert code == 0, se
        st = json.loads(so)
        assert st["a"]["mains"]["level"] == st["b"]["mains"]["level"] == 0.5
        code, so, se = invoke(["virtual", "get", "--dir", d])
        both = json.loads(so)
        assert both["a"]["ups"]["load"] == 40 and both["b"]["ups"]["load"] != 40
        code, _, se = invoke(["virtual", "start", "--dir", d, "--pair", "--nut-port", "5000"])
        assert code == 2 and "--nut-port does not apply to a pair" in se
    finally:
        code, so, _ = invoke(["virtual", "stop", "--dir", d])
    assert code == 0 and "stopped" in so
    assert not os.path.exists(os.path.join(d, "a", "board.json"))
    assert not os.path.exists(os.path.join(d, "b", "board.json"))
