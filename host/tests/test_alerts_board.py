"""Alerts end to end: the real firmware on a virtual board sends its alerts to real receivers on
loopback (rsyslogd over TCP, an HTTP receiver checking the HMAC, aiosmtpd with AUTH LOGIN,
Mosquitto with a durable QoS 1 mosquitto_sub session).
Each receiver is stopped during an outage and started again: every alert arrives, in order,
without duplicate ids after dedupe; a reboot mid-queue loses nothing; a rejection is logged and
skipped; `powersentinel alerts test` reports each delivery."""
import json
import os
import subprocess
import sys

import pytest

from alerts_receivers import Mqtt, Rsyslog, Smtp, Webhook, dedupe, wait_ids
from powersentinel import virtual
from powersentinel.link import Link
from powersentinel.virtual import wait_for
from support import REPO, venv_tool

sys.path.insert(0, os.path.join(REPO, "firmware", "lib"))
from sentinel.alerts import kinds  # noqa: E402  (the firmware's table, under CPython)

# aiosmtpd warns that AUTH without TLS is unsafe: on loopback, on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SECRET = "hook-secret"
DELIVERY_S = 30  # receivers back: everything queued arrives within this (backoff max 1 s)


class Site:
    def __init__(self, tmp):
        self.syslog = Rsyslog(tmp / "rsyslog")
        self.hook = Webhook(SECRET)
        self.smtp = Smtp("alerts", "mail-pw")
        self.mqtt = Mqtt(tmp / "mqtt", "pstest")
        self.receivers = (self.syslog, self.hook, self.smtp, self.mqtt)
        self.cfg = {
            "version": 1, "site": {"name": "lab"},
            "alerts": {
                "min_severity": "notice", "backoff_min_ms": 200, "backoff_max_ms": 1000,
                "syslog": {"enabled": True, "host": "127.0.0.1", "port": self.syslog.tcp,
                           "proto": "tcp", "facility": "local1", "timeout_ms": 2000},
                "webhook": {"enabled": True, "url": self.hook.url(), "secret": SECRET,
                            "timeout_ms": 2000},
                "smtp": {"enabled": True, "host": "127.0.0.1", "port": self.smtp.port,
                         "user": "alerts", "password": "mail-pw", "sender": "lab@site.lan",
                         "to": "ops@site.lan", "timeout_ms": 3000},
                "mqtt": {"enabled": True, "host": "127.0.0.1", "port": self.mqtt.port,
                         "topic_prefix": "pstest", "timeout_ms": 2000},
            }}

    def start(self):
        for r in self.receivers:
            r.start()

    def stop(self):
        for r in self.receivers:
            r.stop()

    def got(self):
        return {"syslog": self.syslog.ids(), "webhook": self.hook.ids(), "smtp": self.smtp.ids(),
                "mqtt": self.mqtt.ids()}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alerts")
    s = Site(tmp)
    s.start()
    cfg = tmp / "config.json"
    cfg.write_text(json.dumps(s.cfg))
    d = str(tmp / "board")
    s.meta = virtual.start(d, config=str(cfg))
    s.dir = d
    try:
        yield s
    finally:
        virtual.stop(d)
        s.stop()
        s.mqtt.close()


def journal(link):
    """Every record on the board (flushed ones: log_read flushes first)."""
    out = []
    frm = 0
    while True:
        r = link.request("log_read", from_seq=frm, max=32)
        out += r["records"]
        if not r["records"] or r["records"][-1]["seq"] >= (r["last"] or 0):
            return out
        frm = r["records"][-1]["seq"] + 1


def alert_ids(recs, after):
    """Ids of the records that are alerts at min_severity notice, with seq > after."""
    out = []
    for r in recs:
        c = kinds.classify(r["type"], r["data"] if isinstance(r["data"], dict) else {})
        if r["seq"] > after and c is not None and kinds.rank(c[0]) <= kinds.rank("notice"):
            out.append(r["seq"])
    return out


def alerts_status(link):
    return link.request("status")["alerts"]


def assert_all_arrived(site, want, after):
    for name, fn in (("syslog", site.syslog.ids), ("webhook", site.hook.ids),
                     ("smtp", site.smtp.ids), ("mqtt", site.mqtt.ids)):
        wait_ids(fn, want, DELIVERY_S, "%s to receive alerts %s" % (name, want))
        got = [i for i in dedupe(fn()) if i > after]
        # in order, every one, nothing else (boot and the scenario's own alerts only)
        assert got == sorted(got), (name, got)
        assert got[:len(want)] == want, (name, got, want)


def test_boot_and_test_alert_reach_every_receiver(site):
    with Link(site.meta["serial"]) as link:
        link.identify()
        boot = [r["seq"] for r in journal(link) if r["type"] == "boot"][-1]
        aid = link.request("alerts_test")["id"]
        assert aid > boot
        assert_all_arrived(site, [boot, aid], 0)
        st = wait_for(lambda: (lambda s: s if all(t["delivered"] >= aid for t in
                                                  s["transports"].values()) else None)(
            alerts_status(link)), 10, "status to show the delivery")
    assert set(st["transports"]) == {"syslog", "webhook", "smtp", "mqtt"}
    assert st["depth"] == 0
    # the outbox's synchronous steps (journal reads) stay short (a loaded machine included)
    assert 0 <= st["step_max_ms"] < 50
    # the syslog line as rsyslog parsed it
    line = [ln for ln in site.syslog.lines() if 'id="%d"' % aid in ln[6]][0]
    assert line[1:4] == ["local1", "notice", "alert_test"] and line[0] == str(17 * 8 + 5)
    assert line[4] == "lab"
    # the webhook body is the alert dict, the e-mail carries the id
    body = [b for i, b in site.hook.got if i == aid][0]
    assert body["kind"] == "alert_test" and body["site"] == "lab" and body["severity"] == "notice"
    mail = [m for m in site.smtp.messages if int(m["X-PowerSentinel-Id"]) == aid][0]
    assert mail["Message-ID"] == "<alert-%d.lab@powersentinel>" % aid
    assert site.smtp.auths and all(ok for _, ok in site.smtp.auths)


def test_receivers_down_during_an_outage_then_back(site):
    with Link(site.meta["serial"]) as link:
        link.identify()
        st = alerts_status(link)
        after = min(t["delivered"] for t in st["transports"].values())
        site.stop()
        virtual.set_wires(site.dir, {"mains": "off"})
        wait_for(lambda: link.request("status")["state"]["name"] != "ONLINE", 15,
                 "the sentinel to see the outage")
        link.request("alerts_test")
        # every transport has failed at least once while its receiver was down
        wait_for(lambda: all(t["failures"] > 0 and t["pending"] > 0 for t in
                             alerts_status(link)["transports"].values()), 20,
                 "every transport to fail and queue")
        # the operator's one screen shows the queue and why each transport is failing
        down = status_screen(link)
        virtual.set_wires(site.dir, {"mains": "on"})
        wait_for(lambda: link.request("status")["state"]["name"] == "ONLINE", 30,
                 "mains to be back")
        last = link.request("alerts_test")["id"]
        site.start()
        want = [i for i in alert_ids(journal(link), after) if i <= last]
        assert len(want) >= 4  # mains lost, the state changes, two test alerts at least
        assert_all_arrived(site, want, after)
        st = alerts_status(link)
        wait_for(lambda: alerts_status(link)["depth"] == 0, 10, "the queue to empty")
        up = status_screen(link)
    rows = [ln.strip("│ ") for ln in down.splitlines()]
    rows = [r for r in rows if r.split()[:1] in (["alerts"], ["mqtt"], ["smtp"], ["syslog"],
                                                  ["webhook"])]
    assert "waiting for the slowest transport" in rows[0], down
    assert len(rows) == 5 and all("waiting" in r and "Error" in r for r in rows[1:]), down
    assert "all delivered" in up and "waiting" not in up, up
    kinds_seen = {b["kind"] for i, b in site.hook.got if i > after}
    assert {"mains_lost", "state", "alert_test"} <= kinds_seen
    # MQTT's retained state (QoS 0: the latest is what counts) follows the replayed alerts:
    # back on line after this outage, mains good
    state = [json.loads(p) for _r, t, p in site.mqtt.messages() if t == "pstest/lab/state"]
    mains = [p for _r, t, p in site.mqtt.messages() if t == "pstest/lab/mains"]
    assert state[-1]["state"] == "ONLINE" and state[-1]["id"] > after, state
    assert mains[-1] == "ok", mains
    assert all(t["delivered"] >= last for t in st["transports"].values())


def test_reboot_mid_queue_loses_nothing(site):
    with Link(site.meta["serial"]) as link:
        link.identify()
        after = min(t["delivered"] for t in alerts_status(link)["transports"].values())
        site.stop()
        ids = [link.request("alerts_test")["id"] for _ in range(3)]
        wait_for(lambda: all(t["failures"] > 0 for t in
                             alerts_status(link)["transports"].values()), 20,
                 "every transport to fail")
    boots = virtual.info(site.dir)["boots"]
    virtual.control(site.dir, {"cmd": "reset", "cause": "hard"})
    wait_for(lambda: virtual.info(site.dir)["boots"] > boots and
             virtual.info(site.dir).get("firmware"), 30, "the board to boot again")
    site.start()
    with Link(site.meta["serial"]) as link:
        link.identify()
        recs = journal(link)
        want = alert_ids(recs, after)
    boot = [r["seq"] for r in recs if r["type"] == "boot"][-1]
    # the test alerts queued before the reset, then the new boot's alert: all delivered
    assert set(ids) <= set(want) and boot > ids[-1] and boot in want
    assert_all_arrived(site, want, after)


def test_a_rejected_alert_is_logged_and_skipped(site):
    with Link(site.meta["serial"]) as link:
        link.identify()
        site.hook.secret = "not-the-board's"
        bad = link.request("alerts_test")["id"]
        wait_for(lambda: bad in site.hook.refused, 15, "the webhook to refuse the alert")
        site.hook.secret = SECRET
        good = link.request("alerts_test")["id"]
        wait_ids(site.hook.ids, [good], 15, "the next alert to be delivered")
        rej = [r for r in journal(link) if r["type"] == "alert_rejected"]
        st = alerts_status(link)
    assert bad not in site.hook.ids()
    assert rej[-1]["data"]["id"] == bad and rej[-1]["data"]["transport"] == "webhook"
    assert "401" in rej[-1]["data"]["error"]
    assert st["transports"]["webhook"]["rejected"] >= 1


def status_screen(link):
    """`powersentinel status` as the operator sees it (rich, without colour), from the link's
    own status: the CLI cannot open the port while the test holds it."""
    from rich.console import Console

    from powersentinel import ui
    con = Console(width=200, color_system=None, record=True, file=open(os.devnull, "w"))
    con.print(ui.render_status(link.identify(), link.request("status")))
    return con.export_text()


def run_cli(*args, timeout=60):
    return subprocess.run([venv_tool("powersentinel")] + list(args), capture_output=True,
                          text=True, timeout=timeout)


def test_cli_alerts_test(site):
    r = run_cli("alerts", "test", "--port", site.meta["serial"], "--timeout", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    aid = int(lines[0].split()[-1])
    assert sorted(ln.split()[0] for ln in lines[1:]) == ["mqtt", "smtp", "syslog", "webhook"]
    assert all(ln.split()[1] == "delivered" for ln in lines[1:])
    assert aid in site.smtp.ids() and aid in site.hook.ids() and aid in site.syslog.ids()
    wait_ids(site.mqtt.ids, [aid], 10, "mosquitto_sub to see the test alert")
    # one receiver down: that transport fails with its error, the command exits 1
    site.smtp.stop()
    try:
        r = run_cli("alerts", "test", "--port", site.meta["serial"], "--timeout", "3")
    finally:
        site.smtp.start()
    assert r.returncode == 1, r.stdout + r.stderr
    bad = [ln for ln in r.stdout.splitlines() if ln.startswith("smtp")]
    assert bad and "failed:" in bad[0], r.stdout
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("webhook")][0].endswith(
        "delivered")
