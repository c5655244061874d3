"""Every NUT client people run, against the sentinel on a virtual board and against a real
upsd 2.8.0 + dummy-ups holding the same data (copied from the sentinel's own LIST VAR): the
same operations, the results compared item by item (host/tests/nutclients_harness.py).

A difference fails the test unless docs/nut-clients.md lists it, with its reason, under
"Accepted differences". The separate tests below check what a comparison cannot show: a poller
surviving silent newcomers, a client's FSD acted on, the repeater relaying every variable,
eneru finding the site's nominal voltage. Each of those, and each REGRESSIONS pattern, failed on
the server before its defect was fixed.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import aionut.client as ac
import pytest
from aionut import AIONUTClient
from PyNUTClient.PyNUT import PyNUTClient

import nutclients_harness as H

pytestmark = pytest.mark.skipif(bool(H.missing_tools()),
                                reason="missing (make test installs them): %s"
                                % ", ".join(H.missing_tools()))

ACCEPTED = H.accepted_differences()


# Differences the server once had (each failed this file before its fix): never accepted, and
# named when they come back.
REGRESSIONS = {
    "no instant commands (INSTCMD refused as CMD-NOT-SUPPORTED even to a user without the "
    "right; an empty LIST CMD or LIST RW trips clients)": [
        "cmd * load.off (only upsd)",          # dummy-ups offers load.off
        "cmd * <empty> (only sentinel)",       # an empty list parsed as one nameless command
        "rw * (only sentinel)",                # nut2.list_rw_vars raised on an empty list
        "upscmd as monuser exit",              # upsd: ACCESS-DENIED first
        "run load.off as monuser",
        "requests",                            # go.nut sent no GET CMDDESC without commands
    ],
    "sentinel.coverage.* served as empty strings (dummy-ups drops them)": [
        "var * sentinel.coverage.* (only sentinel)",
    ],
}


def regression(diff: str) -> str | None:
    for name, patterns in REGRESSIONS.items():
        if any(H.fnmatch.fnmatchcase(diff, p) for p in patterns):
            return name
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = H.Site(str(tmp_path_factory.mktemp("nutclients")))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def results(site, client):
    return site.run(client, H.CLIENTS[client])


def explain(real, ours, diffs):
    def val(d, res):
        return res.get(d.split(" (only ")[0], "-")
    return "\n".join("  %s: upsd %r, sentinel %r" % (d, val(d, real), val(d, ours))
                     for d in diffs)


# What each client must have read from upsd for the comparison to mean anything.
SANITY = {
    "upsc": ("var apps ups.status", "OL"),
    "upscmd": ("cmd apps load.off", "Turn off the load immediately"),
    "upsrw": ("rw apps ups.status", None),
    "upslog": ("upslog line 0 ups.status", "OL"),
    "check_ups": ("check_ups status", None),
    "collectd": ("collectd nut-apps/percent-charge", None),
    "aionut": ("var apps ups.status", "OL"),
    "PyNUTClient": ("var apps ups.status", "OL"),
    "nut2": ("var apps ups.status", "OL"),
    "go.nut": ("scrape", "ok"),
    "node-nut": ("var apps ups.status", "OL"),
    "eneru": ("eneru voltage monitoring", "True"),
    "dummy-ups repeater": ("var apps ups.status", "OL"),
}


def test_accepted_differences_parse_and_name_their_reason():
    assert ACCEPTED, "docs/nut-clients.md has no accepted differences table"
    for client, item, reason in ACCEPTED:
        assert client == "*" or any(H.fnmatch.fnmatchcase(c, client) for c in H.CLIENTS), client
        assert len(reason) > 10, (client, item)
    # a fixed defect is never an accepted difference
    for client, item, _ in ACCEPTED:
        for patterns in REGRESSIONS.values():
            assert item not in patterns, item


@pytest.mark.parametrize("client", list(H.CLIENTS))
def test_client_sees_the_sentinel_as_upsd(site, client):
    real, ours = results(site, client)
    key, want = SANITY[client]
    assert key in real and (want is None or real[key] == want), (key, real.get(key), real)
    diffs = H.differences(real, ours)
    unexplained = [d for d in diffs if regression(d) or not H.matches(client, d, ACCEPTED)]
    back = sorted({r for r in map(regression, unexplained) if r})
    assert not unexplained, "%s: differences not in docs/nut-clients.md%s:\n%s" % (
        client, "".join("; back: " + b for b in back), explain(real, ours, unexplained))


def test_repeater_relays_every_sentinel_variable(site):
    """dummy-ups in repeater mode drops variables with an empty value."""
    real, ours = results(site, "dummy-ups repeater")
    direct = H.upsc(site, site.sentinel)
    served = {k for k in direct if k.startswith("var ") and " sentinel." in k}
    assert served, direct
    lost = sorted(served - set(ours))
    assert not lost, "the repeater dropped %s" % ", ".join(lost)


def test_eneru_finds_the_site_nominal_voltage(site):
    """eneru takes its voltage band from input.voltage.nominal; without it, it falls back to
    230 V (at a 120 V site it then reports a permanent brownout)."""
    real, ours = results(site, "eneru")
    assert "eneru Nominal" in ours, ours
    assert real["eneru Nominal"].startswith("%.1fV (NUT=%.1f" % (H.NOMINAL_V, H.NOMINAL_V)), (
        "no input.voltage.nominal in the sentinel's variables (upsd holds a copy)", real)
    assert ours["eneru Nominal"] == real["eneru Nominal"]


def test_aionut_runs_a_command_the_sentinel_offers(site):
    """Home Assistant's service call: a command from list_commands, run by a user with the
    INSTCMD right, reaches the UPS (the simulator's beeper); a user without it is refused."""
    async def go():
        c = AIONUTClient(site.sentinel.host, site.sentinel.port, H.ADMIN,
                         H.password(H.ADMIN), timeout=5)
        mon = AIONUTClient(site.sentinel.host, site.sentinel.port, H.MON, H.password(H.MON),
                           timeout=5)
        try:
            assert "beeper.toggle" in await c.list_commands("apps")
            with pytest.raises(H.NUTError, match="ACCESS-DENIED"):
                await mon.run_command("apps", "beeper.toggle")
            return await c.run_command("apps", "beeper.toggle")
        finally:
            c.shutdown()
            mon.shutdown()
    before = H.rc.virtual.state(site.board.dir)["ups"]["beeper"]
    assert asyncio.run(go()) == "OK"
    H.rc.virtual.wait_for(lambda: H.rc.virtual.state(site.board.dir)["ups"]["beeper"] != before,
                          5, "the UPS beeper to toggle")


# -- live pollers and silent newcomers ----------------------------------------------------------
SILENT = 8  # the sentinel's max_conns: sockets that connect and never send a byte


def _silent_newcomers(t: H.Target):
    socks = [socket.create_connection((t.host, t.port), timeout=5) for _ in range(SILENT)]
    # a reply on one more connection: the server has accepted (and so shed for) all of them
    with H.NutClient(t.host, t.port) as probe:
        assert probe.cmd("VER")[0].startswith("Network UPS Tools"), "no reply from %s" % t.side
    return socks


def _close(socks):
    for s in socks:
        s.close()


def _nut2_poller(site, t):
    c = H.nut2.PyNUTClient(t.host, t.port, H.ADMIN, H.password(H.ADMIN), timeout=5)
    try:
        assert c.get_var("apps", "ups.status") == "OL"
        socks = _silent_newcomers(t)
        try:
            return c.get_var("apps", "ups.status")
        except (EOFError, OSError) as e:
            return H.error_name(e)
        finally:
            _close(socks)
    finally:
        c.__exit__(None, None, None)


_PYNUT_POLLER = r"""
import json, socket, sys
from PyNUTClient.PyNUT import PyNUTClient
host, port = sys.argv[1], int(sys.argv[2])
c = PyNUTClient(host=host, port=port, timeout=5)
assert c.GetUPSVars("apps")[b"ups.status"] == b"OL"
print("polled", flush=True)
sys.stdin.readline()  # the newcomers are in
print(json.dumps(c.GetUPSVars("apps")[b"ups.status"].decode()), flush=True)
"""


def _pynut_poller(site, t):
    """In its own interpreter: PyNUTClient spins forever on a socket the server closed."""
    p = subprocess.Popen([sys.executable, "-c", _PYNUT_POLLER, t.host, str(t.port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        assert H.read_lines(p, 1, 15.0) == ["polled"]
        socks = _silent_newcomers(t)
        try:
            p.stdin.write("go\n")
            p.stdin.flush()
            got = H.read_lines(p, 1, 10.0)
            return got[0].strip('"') if got else "no answer within 10 s"
        finally:
            _close(socks)
    finally:
        H.stop(p)


def _aionut_poller(site, t):
    """Home Assistant's client reconnects silently: count the TCP connections it needs."""
    opened = []
    real_open = ac.asyncio.open_connection

    async def counting(*a, **kw):
        opened.append(a)
        return await real_open(*a, **kw)

    async def go():
        c = AIONUTClient(t.host, t.port, H.ADMIN, H.password(H.ADMIN), timeout=5)
        try:
            assert (await c.list_vars("apps"))["ups.status"] == "OL"
            socks = await asyncio.to_thread(_silent_newcomers, t)
            try:
                status = (await c.list_vars("apps"))["ups.status"]
            finally:
                _close(socks)
            return "%s after %d connection(s)" % (status, len(opened))
        finally:
            c.shutdown()
    ac.asyncio.open_connection = counting
    try:
        return asyncio.run(go())
    finally:
        ac.asyncio.open_connection = real_open


POLLERS = {"nut2": (_nut2_poller, "OL"), "PyNUTClient": (_pynut_poller, "OL"),
           "aionut": (_aionut_poller, "OL after 1 connection(s)")}


@pytest.mark.parametrize("client", list(POLLERS))
def test_live_poller_survives_silent_newcomers(site, client):
    """A client that polls without logging in (as these do) is not shed by newcomers that
    have not sent a byte: no error, no reconnect."""
    fn, want = POLLERS[client]
    got = fn(site, site.real)
    assert got == want, "against upsd: %r" % got
    got = fn(site, site.sentinel)
    assert got == want, "%s polling the sentinel, after %d silent connections: %r" % (
        client, SILENT, got)


# -- a client's FSD (last: it may start the sentinel's plan) --------------------------------------
def test_zz_client_fsd_is_logged_and_acted_on(site):
    """PyNUTClient.FSD by a primary user with the FSD right: upsd raises the flag; the sentinel
    must also log it with the user's name and start its plan."""
    with H.rc.link(site.board) as lk:
        before = lk.request("log_read", from_seq=0, max=1)["last"] or 0
    for t in site.targets():
        c = PyNUTClient(host=t.host, port=t.port, login=H.ADMIN,
                        password=H.password(H.ADMIN), timeout=5)
        assert c.FSD("databases") == "OK", t
        del c
    assert H.upsc(site, site.real)["var databases ups.status"].startswith("FSD")
    deadline = time.monotonic() + 5
    logged = acted = False
    while time.monotonic() < deadline and not (logged and acted):
        with H.rc.link(site.board) as lk:
            recs, _, _ = H.rc.read_log(lk, before + 1)
        logged = any(H.ADMIN in H.json.dumps(r) for r in recs)
        acted = not site.board.nut_get("sentinel.state").endswith('"ONLINE"')
        time.sleep(0.2)
    assert logged and acted, "after FSD by %s: logged %s, plan started %s" % (
        H.ADMIN, logged, acted)
