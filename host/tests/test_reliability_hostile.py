"""Hostile input over the real sockets and pty, and authorisation and connection
exhaustion, against the firmware on the virtual board.

One board serves the module: two tiers ("apps" and "lab"; a client raises FSD on "lab" only,
which then runs the forced plan over both), four users (benchmarks/reliability_common.USERS),
max_conns 16.
"""
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from reliability_common import USERS, LinkError, virtual  # noqa: E402  # pyright: ignore[reportMissingImports]
from sentinel.passwd import hash_password  # noqa: E402  # pyright: ignore[reportMissingImports]

MAX_CONNS = 16
WRONG = ["wrong-Zx81Qa", "", "upsmon", "admin", "password"]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("hostile") / "b")
    cfg = rc.make_config(**{"nut.max_conns": MAX_CONNS, "nut.idle_timeout_s": 20,
                            "tiers": [{"name": "apps"}, {"name": "lab"}]})
    b = rc.Board(d, cfg)
    b.wait_serving(10)
    try:
        yield b
    finally:
        b.stop()


def heap_alloc(lk, n=3):
    """gc'd heap in use (status runs gc.collect() first): the lowest of n reads."""
    vals = []
    for _ in range(n):
        vals.append(lk.request("status")["heap"]["alloc"])
        time.sleep(0.3)
    return min(vals)


def upsc_ok(b):
    r = subprocess.run(["upsc", "apps@%s:%d" % b.nut, "ups.status"], capture_output=True,
                       text=True, timeout=10)
    return r.returncode == 0 and r.stdout.strip() in ("OL", "OB", "OL LB", "OB LB"), r


def _blast(b, payload, read=False, timeout=2.0):
    """One connection: send payload (bytes), maybe read what comes, close. Never raises."""
    try:
        s = socket.create_connection(b.nut, timeout=timeout)
        s.settimeout(timeout)
        try:
            s.sendall(payload)
            if read:
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    if not s.recv(65536):
                        break
        finally:
            s.close()
    except OSError:
        pass


def test_malformed_nut_streams_floods_and_connect_storms(board):
    b = board
    seed, rng = rc.rng()
    with rc.link(b) as lk:
        boots = b.boots()
        heap0 = heap_alloc(lk)
        t0 = time.monotonic()
        payloads = [
            bytes(rng.randrange(256) for _ in range(4000)),                 # binary noise
            b"\x00" * 5000 + b"\n",                                          # NULs
            b"GET VAR apps " + b"A" * 17000 + b"\n",                         # line > 16 KiB
            b"USERNAME " + b"\x01\x7f\xff" * 3000,                           # half line
            b"VER\n" * 20000,                                                # flood, unread
            b'"' + b"x" * 3000,                                              # open quote
            b"\\\n" * 3000,                                                  # continuations
            b"LIST VAR apps\n" * 500,                                        # big replies, unread
        ]
        for i in range(60):
            p = payloads[i % len(payloads)] if i < 16 else bytes(
                rng.randrange(256) for _ in range(rng.randint(1, 20000)))
            _blast(b, p, read=(i % 3 == 0), timeout=1.0)
        # many parallel connections at once
        socks = []
        for _ in range(40):
            try:
                socks.append(socket.create_connection(b.nut, timeout=2))
            except OSError:
                pass
        for s in socks:
            try:
                s.sendall(b"GET VAR apps ups.status\nHALF")
            except OSError:
                pass
        for s in socks:
            s.close()
        # a connect storm: thousands of connects; most ask VER and read the reply (as a port
        # scanner or a health check does), one in ten closes at once without a byte (those
        # fill the listen backlog of 4 faster than any server accepts: the kernel then drops
        # SYNs and the client retries after 1 s, which bounds their rate, not the server)
        n_conn = 0
        slow = 0
        end = time.monotonic() + 20
        while n_conn < 1500 and time.monotonic() < end:
            t = time.monotonic()
            try:
                s = socket.create_connection(b.nut, timeout=3)
                s.settimeout(3)
                if n_conn % 10:
                    s.sendall(b"VER\n")
                    s.recv(200)
                s.close()
                n_conn += 1
                slow += time.monotonic() - t > 0.5
            except OSError:
                time.sleep(0.01)
        took = time.monotonic() - t0
        # the board survived, serves real clients, and its heap is back where it was
        time.sleep(2.0)
        assert b.boots() == boots, "the board rebooted under hostile NUT input"
        ok, r = upsc_ok(b)
        assert ok, r
        heap1 = heap_alloc(lk)
        print("hostile NUT: %d connects (%d slower than 0.5 s) + 100 abusive streams in %.1f s;"
              " heap alloc %d -> %d" % (n_conn, slow, took, heap0, heap1))
        assert n_conn >= 1000
        assert heap1 - heap0 < 8192, (heap0, heap1)
        st = lk.request("status")
        assert st["state"]["name"] == "ONLINE"


def test_malformed_console_input_on_the_pty(board):
    """Noise on the serial console: never Ctrl-C (0x03) or Ctrl-D (0x04), which are the REPL's
    interrupt and reset keys by design (the console is the physical, trusted port)."""
    b = board
    seed, rng = rc.rng()
    allowed = bytes(c for c in range(256) if c not in (3, 4))
    boots = b.boots()
    with rc.link(b) as lk:
        heap0 = heap_alloc(lk)
        junk = [
            b"\x00" * 3000 + b"\r\n",
            b"@PS1 " + b"{" * 20000 + b"\r\n",                         # over-long frame
            b"@PS1 {\"id\":1,\"op\":\"status\"} 00000000\r\n" * 50,     # bad CRCs
            b"half a line with no end " * 40,
            bytes(rng.choice(allowed) for _ in range(30000)),
        ]
        for j in junk:
            lk.ser.write(j)
            lk.ser.flush()
            time.sleep(0.05)
        # a flood of valid but unknown ops
        for i in range(200):
            lk.ser.write(rc.console_frame({"id": 10000 + i, "op": "nope%d" % i}))
        time.sleep(1.0)
        assert lk.request("ping") == "pong"
        heap1 = heap_alloc(lk)
        assert heap1 - heap0 < 8192, (heap0, heap1)
    assert b.boots() == boots
    ok, r = upsc_ok(b)
    assert ok, r


# -- authorisation --------------------------------------------------------------------------------
def _session(b, user, pw):
    c = b.nut_client(timeout=12)
    out = [c.cmd("USERNAME %s" % user)]
    if pw is not None:
        out.append(c.cmd('PASSWORD "%s"' % pw))
    return c, out


def _lab_fsd(b):
    with b.nut_client() as c:
        return "FSD" in c.cmd("GET VAR lab ups.status") or "FSD" in c.cmd("GET VAR apps ups.status")


def test_fsd_set_instcmd_need_the_right(board):
    b = board
    # unauthenticated
    with b.nut_client() as c:
        for cmd in ("FSD lab", "SET VAR lab ups.delay.shutdown 5", "INSTCMD lab load.off",
                    "LOGIN lab", "PRIMARY lab"):
            assert c.cmd(cmd) == "ERR USERNAME-REQUIRED", cmd
        assert c.cmd("USERNAME nobody") == "OK"
        assert c.cmd("FSD lab") == "ERR PASSWORD-REQUIRED"
    # unknown users and default / empty passwords
    for user, pw in (("nobody", "x"), ("upsmon", "upsmon"), ("admin", "admin"), ("admin", ""),
                     ("monuser", "")):
        c, out = _session(b, user, pw)
        with c:
            assert out[-1] == "OK"
            assert c.cmd("LOGIN lab") == "ERR ACCESS-DENIED", (user, pw)
            assert c.cmd("FSD lab") == "ERR ACCESS-DENIED", (user, pw)
    # a secondary with the right password: monitoring only
    pw = USERS["monuser"][0]
    c, out = _session(b, "monuser", pw)
    with c:
        assert c.cmd("LOGIN lab") == "OK"
        assert c.cmd("FSD lab") == "ERR ACCESS-DENIED"
        assert c.cmd("PRIMARY lab") == "ERR ACCESS-DENIED"
        assert c.cmd("SET VAR lab ups.delay.shutdown 5") in ("ERR ACCESS-DENIED",)
    # a primary with a wrong password
    c, out = _session(b, "primo", "wrong-Zx81Qa")
    with c:
        assert c.cmd("FSD lab") == "ERR ACCESS-DENIED"
    assert not _lab_fsd(b)
    # SET right but nothing writable; INSTCMD: no commands offered at all
    c, out = _session(b, "setter", USERS["setter"][0])
    with c:
        assert c.cmd("SET VAR lab ups.delay.shutdown 5") in ("ERR VAR-NOT-SUPPORTED",
                                                             "ERR READONLY")
        assert c.cmd("FSD lab") == "ERR ACCESS-DENIED"
        assert c.cmd("INSTCMD lab load.off") == "ERR CMD-NOT-SUPPORTED"
    assert not _lab_fsd(b)
    # the primary may raise FSD: an operator-forced shutdown from "lab", then the other tier
    # (docs/nut-clients.md, "A client's FSD")
    c, out = _session(b, "primo", USERS["primo"][0])
    with c:
        assert c.cmd("PRIMARY lab") == "OK PRIMARY-GRANTED"
        assert c.cmd("FSD lab") == "OK FSD-SET"
    with b.nut_client() as c:
        assert "FSD" in c.cmd("GET VAR lab ups.status")
    with rc.link(b) as lk:
        virtual.wait_for(lambda: lk.request("status")["state"]["name"] != "ONLINE", 5,
                         "the forced shutdown to start")
    virtual.wait_for(lambda: "FSD" in b.nut_get("ups.status"), 5, "apps to be told next")


def test_failed_logins_are_rate_limited(board):
    b = board
    times = []
    c, _ = _session(b, "primo", "wrong-Zx81Qa")
    with c:
        for i in range(6):
            t = time.monotonic()
            assert c.cmd("LOGIN lab") == "ERR ACCESS-DENIED"
            times.append(time.monotonic() - t)
    print("failed-login reply times (s):", [round(x, 2) for x in times])
    assert max(times[:2]) < 0.2           # the first failures are free (typos)
    assert times[4] >= 0.45 and times[5] >= 0.9, times   # then doubling delays
    # the right password still gets in (after the delay) and clears the address
    t = time.monotonic()
    c, _ = _session(b, "primo", USERS["primo"][0])
    with c:
        assert c.cmd("LOGIN apps") == "OK"
    assert time.monotonic() - t < 6
    c, _ = _session(b, "monuser", USERS["monuser"][0])
    with c:
        t = time.monotonic()
        assert c.cmd("LOGIN apps") == "OK"
        assert time.monotonic() - t < 0.3


def test_weak_or_plaintext_passwords_are_refused_by_the_device(board):
    b = board
    with rc.link(b) as lk:
        before = lk.request("config_get")["config"]
        for pw_field in (hash_password(""), hash_password("upsmon"), "plaintext-Secret1"):
            cfg = rc.make_config(**{"nut.max_conns": MAX_CONNS,
                                    "tiers": [{"name": "apps"}, {"name": "lab"}]})
            cfg["nut"]["users"].append({"name": "upsmon", "password": pw_field,
                                        "role": "secondary"})
            with pytest.raises(LinkError) as e:
                rc.upload_config(lk, rc.json.dumps(cfg))
            assert "password" in str(e.value).lower(), str(e.value)
        assert lk.request("config_get")["config"] == before


def test_passwords_never_logged(board):
    b = board
    with rc.link(b) as lk:
        recs, _, _ = rc.read_log(lk)
        cfg = lk.request("config_get")["config"]
    text = rc.json.dumps(recs) + rc.json.dumps(cfg)
    log = b.console_log().decode("latin-1")
    for pw in [v[0] for v in USERS.values()] + ["wrong-Zx81Qa", "plaintext-Secret1"]:
        assert pw not in text, pw
        assert pw not in log, pw


# -- connection exhaustion ------------------------------------------------------------------------
class Poller(threading.Thread):
    """An upsmon-style client: logs in, then GET VAR ups.status once per period."""

    def __init__(self, b, period=1.0, ups="apps"):
        super().__init__(daemon=True)
        self.b, self.period, self.ups = b, period, ups
        self.ok = 0
        self.fail = []
        self.lat = []
        self.stop = False

    def run(self):
        try:
            c = self.b.nut_client(timeout=5)
            r = c.login("monuser", USERS["monuser"][0], self.ups)
            if r[-1] != "OK":
                self.fail.append("login %r" % r)
                return
            while not self.stop:
                t = time.monotonic()
                r = c.cmd("GET VAR %s ups.status" % self.ups)
                self.lat.append(time.monotonic() - t)
                if r.startswith("VAR "):
                    self.ok += 1
                else:
                    self.fail.append(r)
                time.sleep(max(0.0, self.period - (time.monotonic() - t)))
            c.close()
        except (OSError, EOFError) as e:
            self.fail.append(repr(e))


def test_idle_sockets_never_starve_a_logged_in_client(board):
    b = board
    p = Poller(b, 0.5)
    p.start()
    time.sleep(1.0)
    idle = []
    try:
        for i in range(3 * MAX_CONNS):   # idle and unauthenticated, far past the limit
            try:
                s = socket.create_connection(b.nut, timeout=2)
                if i % 2:
                    s.sendall(b"USERNAME x\n")
                idle.append(s)
            except OSError:
                pass
            time.sleep(0.05)
        time.sleep(3.0)
        # a newcomer that logs in is still served (an idle socket is shed for it)
        with b.nut_client() as c:
            assert c.login("monuser", USERS["monuser"][0])[-1] == "OK"
            assert c.cmd("GET VAR apps ups.status").startswith("VAR ")
    finally:
        p.stop = True
        p.join(10)
        for s in idle:
            s.close()
    assert p.fail == [] and p.ok >= 8, (p.fail, p.ok)


def test_most_concurrent_upsmon_clients_at_one_poll_per_second(board):
    """All max_conns slots held by logged-in upsmon-style clients polling once a second; the
    next one is refused (a logged-in client is never shed). Reports latency."""
    b = board
    time.sleep(1.0)
    ps = [Poller(b, 1.0) for _ in range(MAX_CONNS)]
    for p in ps:
        p.start()
        time.sleep(0.05)
    time.sleep(6.0)
    refused = False
    try:
        with b.nut_client(timeout=3) as c:
            c.cmd("VER")
    except (OSError, EOFError):
        refused = True
    for p in ps:
        p.stop = True
    for p in ps:
        p.join(10)
    lat = sorted(x for p in ps for x in p.lat)
    fails = [f for p in ps for f in p.fail]
    served = sum(1 for p in ps if p.ok >= 4 and not p.fail)
    print("concurrent upsmon clients served at 1 poll/s: %d of %d; latency p50 %.1f ms, "
          "max %.1f ms; client %d refused: %s" % (served, MAX_CONNS, 1000 * lat[len(lat) // 2],
                                                 1000 * lat[-1], MAX_CONNS + 1, refused))
    assert served == MAX_CONNS, fails
    assert refused
    assert lat[-1] < 1.0
