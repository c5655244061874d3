"""The firmware's alert transports, run by the real MicroPython unix port, against real
receivers on loopback: rsyslogd (TCP octet counting and UDP), an HTTP receiver checking the
HMAC with Python's hmac, aiosmtpd with AUTH LOGIN. Also the firmware HMAC against Python's."""
import hashlib
import hmac
import json
import os
import subprocess
import sys

import pytest

from alerts_receivers import Rsyslog, Smtp, Webhook, wait_ids
from support import REPO

sys.path.insert(0, os.path.join(REPO, "firmware", "lib"))
from sentinel.alerts import webhook as fw_webhook  # noqa: E402  (pure: runs under CPython too)

# aiosmtpd warns that AUTH without TLS is unsafe: on loopback, on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MPY = os.path.join(os.path.dirname(sys.executable), "micropython")

SCRIPT = r"""
import sys, json, asyncio
sys.path.insert(0, %(lib)r)
from sentinel.alerts import Rejected
mod = __import__("sentinel.alerts." + %(name)r, None, None, ("Transport",))
t = mod.Transport(json.loads(%(cfg)r), "paris dc")
out = []
async def main():
    for a in json.loads(%(alerts)r):
        if a == "pause":  # the test changes the receiver, then sends a line
            print("paused")
            sys.stdin.readline()
            continue
        try:
            await asyncio.wait_for_ms(t.send(a), 5000)
            out.append("ok")
        except Rejected as e:
            out.append("rejected " + str(e))
        except Exception as e:
            out.append("error " + repr(e))
    await t.close()
asyncio.run(main())
print(json.dumps(out))
"""


def alert(i, **kw):
    a = {"id": i, "ts": 1796447334, "site": "paris dc", "kind": "mains_lost",
         "severity": "crit", "text": "mains lost (3.1 V)", "data": {"v": 3.1}}
    a.update(kw)
    return a


def run_mpy(name, cfg, alerts):
    src = SCRIPT % {"lib": os.path.join(REPO, "firmware", "lib"), "name": name,
                    "cfg": json.dumps(cfg), "alerts": json.dumps(alerts)}
    r = subprocess.run([MPY, "-X", "heapsize=2M", "-c", src], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def rsyslog(tmp_path):
    r = Rsyslog(tmp_path / "rsyslog")
    r.start()
    yield r
    r.stop()


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_rsyslog_receives_rfc5424(rsyslog, proto):
    port = rsyslog.tcp if proto == "tcp" else rsyslog.udp
    cfg = {"host": "127.0.0.1", "port": port, "proto": proto, "facility": "local3",
           "timeout_ms": 3000}
    alerts = [alert(11), alert(12, kind="state", severity="warning",
                                text="state ONLINE -> ON_BATTERY (mains_lost)"),
              alert(13, kind="alert_test", severity="notice", text="test ] \"quoted\"")]
    assert run_mpy("syslog", cfg, alerts) == ["ok"] * 3
    wait_ids(rsyslog.ids, [11, 12, 13], 10, "rsyslog to write the alerts")
    lines = {int(ln[6].split('id="')[1].split('"')[0]): ln for ln in rsyslog.lines()}
    pri, fac, sev, msgid, host, app, sd, msg = lines[11]
    assert (pri, fac, sev, msgid, host, app) == (str(19 * 8 + 2), "local3", "crit", "mains_lost",
                                                 "paris_dc", "powersentinel")
    assert sd == '[ps@32473 id="11" severity="crit" site="paris dc"]'
    assert msg.strip() == "mains lost (3.1 V)"
    assert lines[12][2] == "warning" and lines[12][3] == "state"
    assert lines[13][2] == "notice" and lines[13][7].strip() == 'test ] "quoted"'


def test_syslog_tcp_notices_a_stopped_receiver(rsyslog):
    """One transport, one connection: rsyslogd stopped between two sends is noticed (the
    connection closed, the new one refused) instead of the alert going into a dead socket;
    started again, the retry arrives."""
    cfg = {"host": "127.0.0.1", "port": rsyslog.tcp, "proto": "tcp", "facility": "local0",
           "timeout_ms": 3000}
    src = SCRIPT % {"lib": os.path.join(REPO, "firmware", "lib"), "name": "syslog",
                    "cfg": json.dumps(cfg),
                    "alerts": json.dumps([alert(1), "pause", alert(2), "pause", alert(2)])}
    p = subprocess.Popen([MPY, "-X", "heapsize=2M", "-c", src], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "paused"
        wait_ids(rsyslog.ids, [1], 10, "rsyslog to write alert 1")
        rsyslog.stop()
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "paused"
        rsyslog.start()
        p.stdin.write("\n")
        p.stdin.flush()
        out = json.loads(p.stdout.readline())
    finally:
        p.kill()
        p.wait()
    assert out[0] == "ok" and out[1].startswith("error") and out[2] == "ok", out
    wait_ids(rsyslog.ids, [1, 2], 10, "rsyslog to write the alerts")


def test_webhook_hmac_and_rejection():
    hook = Webhook("s3cret")
    hook.start()
    try:
        cfg = {"url": hook.url(), "secret": "s3cret", "timeout_ms": 3000}
        assert run_mpy("webhook", cfg, [alert(5), alert(6)]) == ["ok", "ok"]
        assert hook.ids() == [5, 6]
        assert hook.got[0][1]["text"] == "mains lost (3.1 V)"
        bad = dict(cfg, secret="wrong")
        assert run_mpy("webhook", bad, [alert(7)]) == ["rejected HTTP 401"]
        assert hook.refused == [7] and hook.ids() == [5, 6]
    finally:
        hook.stop()
    # the receiver gone: a failure worth retrying, not a rejection
    assert run_mpy("webhook", cfg, [alert(8)])[0].startswith("error")


def test_smtp_auth_login_and_dot_stuffing():
    srv = Smtp("alice", "pw")
    srv.start()
    try:
        cfg = {"host": "127.0.0.1", "port": srv.port, "user": "alice", "password": "pw",
               "sender": "sentinel@site.lan", "to": "ops@site.lan, oncall@site.lan",
               "timeout_ms": 5000}
        a = alert(21, text="line one", data={"note": "x"})
        assert run_mpy("smtp", cfg, [a]) == ["ok"]
        m = srv.messages[0]
        assert m["Message-ID"] == "<alert-21.paris_dc@powersentinel>"
        assert m["Subject"] == "[paris dc] crit: line one"
        assert m["X-Envelope-To"] == "ops@site.lan,oncall@site.lan"
        assert srv.auths == [("LOGIN", True)]
        # a wrong password is retried (alerts wait for the config to be mended), not dropped
        assert run_mpy("smtp", dict(cfg, password="nope"), [alert(22)])[0].startswith("error")
        assert srv.ids() == [21]
    finally:
        srv.stop()


def test_firmware_hmac_matches_python():
    for key, msg in ((b"", b""), (b"k", b"body"), (b"x" * 64, b"y" * 1000),
                     (os.urandom(100), os.urandom(333))):
        assert fw_webhook.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_every_alert_kind_is_documented():
    from sentinel.alerts import kinds
    with open(os.path.join(REPO, "docs", "alerts.md")) as f:
        doc = f.read()
    names = [ln.split()[0].split("/")[0] for ln in kinds.TABLE.strip().splitlines()]
    assert [n for n in names if "| `%s` |" % n not in doc] == []
