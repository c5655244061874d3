"""The MQTT alert transport against a real Mosquitto broker on a loopback port.

The transport (firmware/lib/sentinel/alerts/mqtt.py) runs under the real MicroPython unix port
in a small driver that reads commands on stdin and prints each send's result; a durable
`mosquitto_sub` session (-c, QoS 1) is the receiver, so the broker keeps its messages across
the broker's own restart. The Home Assistant discovery payloads the broker holds are checked
against HA's MQTT discovery schemas, written here as data (see HA_* below).
"""
import json
import os
import re
import subprocess
import time

import pytest

from alerts_receivers import MOSQUITTO, PASSWD, SUB, Broker, Lines
from alerts_receivers import Sub as _Sub
from support import REPO, venv_tool

MPY = venv_tool("micropython")
LIB = os.path.join(REPO, "firmware", "lib")
TIMEOUT_MS = 1500
SITE = "lab 1"
NODE = "lab_1"  # node_id(SITE)
PFX = "pstest"
HA = "hatest"

pytestmark = pytest.mark.skipif(not (os.path.exists(MOSQUITTO) and SUB and PASSWD and MPY),
                                reason="needs mosquitto, mosquitto-clients and micropython")

DRIVER = r"""
import sys, json, time, asyncio
sys.path.insert(0, %r)
from sentinel.alerts.mqtt import Transport

async def main():
    t = Transport(json.loads(sys.argv[1]), sys.argv[2])
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "close":
            await t.close()
            print("closed")
        elif op == "idle":
            await asyncio.sleep_ms(cmd["ms"])
            print("idle", t.pings, t.connects, t.errors)
        else:
            a = cmd["alert"]
            for _ in range(cmd.get("tries", 1000)):
                t0 = time.ticks_ms()
                try:
                    await t.send(a)
                    print("ok", a["id"], time.ticks_diff(time.ticks_ms(), t0), t.connects)
                    break
                except Exception as e:
                    print("err", a["id"], time.ticks_diff(time.ticks_ms(), t0),
                          type(e).__name__, json.dumps(str(e)))
                    await asyncio.sleep_ms(cmd.get("gap_ms", 100))

asyncio.run(main())
"""


def Sub(broker, auth=()):  # noqa: N802  (the shared session on this module's two prefixes)
    return _Sub(broker, (PFX, HA), auth)


def parse(line):
    retain, qos, topic, payload = line.split(" ", 3)
    return retain == "1", int(qos), topic, payload


def alert_ids(lines):
    return [json.loads(p)["id"] for r, q, t, p in map(parse, lines) if t == PFX + "/" + NODE + "/alert"]


def retained_now(broker, n, auth=()):
    """The broker's retained messages under both prefixes: {topic: payload} (exactly n)."""
    r = subprocess.run([SUB, "-h", "127.0.0.1", "-p", str(broker.port), "--retained-only",
                        "-C", str(n), "-W", "5", "-F", "%r %q %t %p", "-t", PFX + "/#",
                        "-t", HA + "/#"] + list(auth), capture_output=True, text=True, timeout=15)
    got = {}
    for line in r.stdout.splitlines():
        retain, _q, topic, payload = parse(line)
        assert retain
        got[topic] = payload
    assert len(got) == n, (r.returncode, got)
    return got


class Driver:
    def __init__(self, tmp_path, port, **over):
        cfg = {"enabled": True, "host": "127.0.0.1", "port": port, "user": "", "password": "",
               "client_id": "", "topic_prefix": PFX, "discovery": True,
               "discovery_prefix": HA, "keepalive_s": 60, "timeout_ms": TIMEOUT_MS}
        cfg.update(over)
        script = tmp_path / "driver.py"
        script.write_text(DRIVER % LIB)
        self.proc = subprocess.Popen([MPY, "-X", "heapsize=2M", str(script), json.dumps(cfg), SITE],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        self.out = Lines(self.proc)

    def cmd(self, **c):
        self.proc.stdin.write(json.dumps(c) + "\n")
        self.proc.stdin.flush()

    def send(self, alert, **c):
        self.cmd(op="send", alert=alert, **c)

    def results(self, aid):
        return [ln.split() for ln in self.out.lines if ln.split()[1:2] == [str(aid)]]

    def wait_ok(self, aid, timeout=10):
        self.out.wait(lambda ls: any(ln.startswith("ok %d " % aid) for ln in ls), timeout,
                      "alert %d accepted" % aid)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def alert(i, kind="tier_fsd", data=None, text=None):
    return {"id": i, "ts": 1760000000 + i, "site": SITE, "kind": kind, "severity": "warning",
            "text": text or "alert %d" % i, "data": data if data is not None else {"n": i}}


@pytest.fixture
def broker(tmp_path):
    b = Broker(str(tmp_path))
    b.start()
    yield b
    b.stop()


# ---- Home Assistant's MQTT discovery schemas, as data ----------------------------------------
# From home-assistant/core homeassistant/components/mqtt: discovery.py (TOPIC_MATCHER),
# schemas.py / mixins.py (MQTT_AVAILABILITY_SCHEMA, MQTT_ENTITY_COMMON_SCHEMA,
# MQTT_ENTITY_DEVICE_INFO_SCHEMA: a device needs identifiers or connections), sensor.py and
# binary_sensor.py (PLATFORM_SCHEMA_MODERN = MQTT_RO_SCHEMA + the platform's keys); documented at
# home-assistant.io/integrations/mqtt/#mqtt-discovery, /sensor.mqtt/ and /binary_sensor.mqtt/.
# The platform schemas (PLATFORM_SCHEMA_MODERN) reject unknown keys; discovery drops them
# silently (DISCOVERY_SCHEMA, extra=REMOVE_EXTRA), so a misspelt key would be lost without a
# word: this check rejects them. The device classes are HA's BinarySensorDeviceClass values.
# The payloads were also run once through HA 2024.1.6's own voluptuous schemas (docs/mqtt.md);
# HA is not a test dependency (it needs its own environment and minutes to install).
HA_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
                      r"?(?P<object_id>[a-zA-Z0-9_-]+)/config$")
_str = str


def _topic(v):  # valid_subscribe_topic: non-empty UTF-8, no NUL, "+" a whole level, "#" last
    if not isinstance(v, str) or not v or "\0" in v or len(v.encode()) > 65535:
        return False
    lv = v.split("/")
    return all(x in ("+", "#") or ("+" not in x and "#" not in x) for x in lv) and \
        "#" not in lv[:-1]


def _template(v):
    return isinstance(v, str)


def _icon(v):  # cv.icon: "prefix:name"
    return isinstance(v, str) and ":" in v


def _qos(v):
    return v in (0, 1, 2)


def _strlist(v):
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


HA_DEVICE = {"identifiers": _strlist, "connections": lambda v: isinstance(v, list),
             "manufacturer": _str, "model": _str, "model_id": _str, "name": _str,
             "hw_version": _str, "serial_number": _str, "sw_version": _str, "via_device": _str,
             "suggested_area": _str, "configuration_url": _str}
HA_COMMON = {  # MQTT_ENTITY_COMMON_SCHEMA + MQTT_AVAILABILITY_SCHEMA + MQTT_RO_SCHEMA
    "availability_topic": _topic, "availability_template": _template,
    "availability_mode": lambda v: v in ("all", "any", "latest"), "availability": list,
    "payload_available": _str, "payload_not_available": _str, "device": dict, "origin": dict,
    "enabled_by_default": bool, "entity_category": lambda v: v in ("config", "diagnostic"),
    "icon": _icon, "json_attributes_topic": _topic, "json_attributes_template": _template,
    "object_id": _str, "unique_id": _str, "state_topic": _topic, "value_template": _template,
    "qos": _qos, "encoding": _str, "name": lambda v: v is None or isinstance(v, str),
    "entity_picture": _str}
HA_PLATFORM = {
    "sensor": {"device_class": _str, "expire_after": int, "force_update": bool,
               "last_reset_value_template": _template, "state_class": _str,
               "suggested_display_precision": int, "unit_of_measurement": _str, "options": list},
    "binary_sensor": {"device_class": lambda v: v in HA_BINARY_CLASSES, "expire_after": int,
                      "force_update": bool, "off_delay": int, "payload_off": _str,
                      "payload_on": _str},
}
HA_BINARY_CLASSES = ("battery", "battery_charging", "carbon_monoxide", "cold", "connectivity",
                     "door", "garage_door", "gas", "heat", "light", "lock", "moisture", "motion",
                     "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
                     "running", "safety", "smoke", "sound", "tamper", "update", "vibration",
                     "window")


def _ok(check, v):
    return isinstance(v, check) if isinstance(check, type) else bool(check(v))


def ha_problems(topic, payload):
    """What Home Assistant would reject in one discovery message ([] when it validates)."""
    m = HA_TOPIC.match(topic[len(HA) + 1:]) if topic.startswith(HA + "/") else None
    if m is None:
        return ["topic %s is not <prefix>/<component>/[<node_id>/]<object_id>/config" % topic]
    comp = m.group("component")
    if comp not in HA_PLATFORM:
        return ["component " + comp]
    try:
        conf = json.loads(payload)
    except ValueError as e:
        return ["not JSON: %s" % e]
    bad = []
    keys = dict(HA_COMMON, **HA_PLATFORM[comp])
    for k, v in conf.items():
        if k not in keys:
            bad.append("extra key " + k)
        elif not _ok(keys[k], v):
            bad.append("bad %s: %r" % (k, v))
    if "state_topic" not in conf:
        bad.append("state_topic is required")
    dev = conf.get("device")
    if dev is not None:
        for k, v in dev.items():
            if k not in HA_DEVICE or not _ok(HA_DEVICE[k], v):
                bad.append("device %s: %r" % (k, v))
        if not (dev.get("identifiers") or dev.get("connections")):
            bad.append("device needs identifiers or connections")
    return bad


def test_ha_schema_check_catches_what_ha_rejects():
    # the checker itself can fail: each of these is refused by HA's schemas
    ok = {"state_topic": "a/b", "unique_id": "u", "device": {"identifiers": ["x"]}}
    assert ha_problems(HA + "/sensor/n/o/config", json.dumps(ok)) == []
    for topic, conf in (
            (HA + "/sensor/n/o/state", ok),
            (HA + "/sensor/n o/o/config", ok),
            (HA + "/sensor/n/o/config", dict(ok, state_topic="a/#/b")),
            (HA + "/sensor/n/o/config", dict(ok, stat_topic="x")),
            (HA + "/sensor/n/o/config", dict(ok, device={"name": "no ids"})),
            (HA + "/binary_sensor/n/o/config", dict(ok, device_class="voltage")),
            (HA + "/sensor/n/o/config", {"unique_id": "u"})):
        assert ha_problems(topic, json.dumps(conf)), (topic, conf)


# ---- the transport against the broker --------------------------------------------------------

def test_alerts_retained_state_and_ha_discovery(tmp_path, broker):
    sub = Sub(broker)
    drv = Driver(tmp_path, broker.port)
    try:
        seq = [alert(1, "state", {"from": "ONLINE", "to": "ON_BATTERY", "cause": "mains_lost",
                                  "detail": None}, "on battery: mains lost"),
               alert(2, "mains_lost", {"v": 12.5}, "mains lost (12.5 V)"),
               alert(3, "tier_fsd", {"tier": "apps"}, "tier apps: FSD"),
               alert(4, "state", {"from": "ON_BATTERY", "to": "ONLINE",
                                  "cause": "mains_restored", "detail": None}, "back on mains")]
        for a in seq:
            drv.send(a)
            drv.wait_ok(a["id"])
        assert [ln.split()[3] for ln in drv.out.lines] == ["1", "1", "1", "1"]  # one connection
        got = sub.wait(lambda ls: alert_ids(ls) == [1, 2, 3, 4], 10, "alerts 1-4")
        msgs = [parse(ln) for ln in got if parse(ln)[2] == PFX + "/" + NODE + "/alert"]
        assert [json.loads(p) for _r, _q, _t, p in msgs] == seq
        assert all(q == 1 and not r for r, q, _t, _p in msgs)  # QoS 1, not retained

        ret = retained_now(broker, 7)
        base = PFX + "/" + NODE + "/"
        assert ret[base + "availability"] == "online"
        st = json.loads(ret[base + "state"])
        assert (st["state"], st["from"], st["cause"], st["id"]) == ("ONLINE", "ON_BATTERY",
                                                                    "mains_restored", 4)
        assert ret[base + "mains"] == "ok"
        assert ret[base + "last_alert"] == "back on mains"
        disc = {t: p for t, p in ret.items() if t.startswith(HA + "/")}
        assert sorted(disc) == [HA + "/binary_sensor/lab_1/mains/config",
                                HA + "/sensor/lab_1/last_alert/config",
                                HA + "/sensor/lab_1/power_state/config"]
        for t, p in disc.items():
            assert ha_problems(t, p) == [], t
            conf = json.loads(p)
            assert conf["availability_topic"] == base + "availability"
            assert conf["state_topic"] in ret  # HA finds a retained state at once
            assert conf["device"]["manufacturer"] == "Power Sentinel"
        assert len({json.loads(p)["unique_id"] for p in disc.values()}) == 3

        drv.cmd(op="close")
        drv.out.wait(lambda ls: "closed" in ls, 10, "close")
        assert retained_now(broker, 7)[base + "availability"] == "offline"
    finally:
        drv.kill()
        sub.stop()


def test_broker_outage_loses_nothing_and_never_hangs(tmp_path, broker):
    sub = Sub(broker)
    drv = Driver(tmp_path, broker.port)
    try:
        for i in (1, 2, 3):
            drv.send(alert(i))
            drv.wait_ok(i)
        # a broker that stops answering (SIGSTOP): each try times out within timeout_ms
        broker.pause(True)
        drv.send(alert(4))
        drv.out.wait(lambda ls: len(drv.results(4)) >= 2, 10, "two failed tries of alert 4")
        # the broker gone (refused): each try fails at once, never hangs
        broker.stop()
        n = len(drv.results(4))
        drv.out.wait(lambda ls: len(drv.results(4)) >= n + 3, 10, "tries against no broker")
        fails = drv.results(4)
        assert all(r[0] == "err" for r in fails), fails
        assert fails[0][3] == "TimeoutError", fails[0]
        assert fails[-1][3] == "OSError" and "refused" in " ".join(fails[-1][4:]), fails
        for r in fails:
            assert int(r[2]) <= TIMEOUT_MS + 300, r  # bounded by timeout_ms

        broker.start()
        drv.wait_ok(4, timeout=15)
        for i in range(5, 9):
            drv.send(alert(i))
            drv.wait_ok(i)
        assert drv.out.lines[-1].split()[3] == "2"  # it reconnected
        # a restart between two alerts: the connection the transport holds is dead; the next
        # send finds out (reset or EOF), fails, and its retry reconnects
        broker.stop()
        broker.start()
        drv.send(alert(9))
        drv.wait_ok(9)
        assert drv.out.lines[-1].split()[3] == "3"
        got = sub.wait(lambda ls: set(alert_ids(ls)) >= set(range(1, 10)), 20, "alerts 1-9")
        ids = alert_ids(got)
        dedup = []
        for i in ids:
            if i not in dedup:
                dedup.append(i)
        assert dedup == list(range(1, 10)), ids  # every alert, in order, once after dedupe
    finally:
        drv.kill()
        sub.stop()


def test_credentials_from_the_password_file(tmp_path):
    b = Broker(str(tmp_path), users={"sentinel": "s3cret"})
    b.start()
    auth = ("-u", "sentinel", "-P", "s3cret")
    sub = Sub(b, auth)
    good = Driver(tmp_path, b.port, user="sentinel", password="s3cret")
    bad = Driver(tmp_path, b.port, user="sentinel", password="wrong", client_id="ps-bad")
    try:
        good.send(alert(1))
        good.wait_ok(1)
        sub.wait(lambda ls: alert_ids(ls) == [1], 10, "alert 1")
        bad.send(alert(2), tries=2)
        bad.out.wait(lambda ls: len(ls) >= 2, 10, "two refused tries")
        for r in bad.results(2):
            assert r[0] == "err" and r[3] == "OSError", r
            assert "refused the connection" in " ".join(r[4:]), r
            assert int(r[2]) <= TIMEOUT_MS, r
    finally:
        good.kill()
        bad.kill()
        sub.stop()
        b.stop()


def test_keepalive_pings_and_last_will(tmp_path, broker):
    sub = Sub(broker)
    drv = Driver(tmp_path, broker.port, keepalive_s=1)
    avail = PFX + "/" + NODE + "/availability"

    def avail_msgs(ls):
        return [p for _r, _q, t, p in map(parse, ls) if t == avail]
    try:
        drv.send(alert(1))
        drv.wait_ok(1)
        # idle for 3.5 keepalives: without PINGREQ the broker drops us after 1.5 s
        drv.cmd(op="idle", ms=3500)
        line = drv.out.wait(lambda ls: [x for x in ls if x.startswith("idle")], 10, "idle")[0]
        _idle, pings, connects, errors = line.split()
        assert int(pings) >= 2 and (connects, errors) == ("1", "0"), line
        assert "offline" not in avail_msgs(sub.all())
        # a broker restart between alerts: the keepalive task reconnects and says "online"
        n_online = avail_msgs(sub.all()).count("online")
        broker.stop()
        broker.start()
        drv.cmd(op="idle", ms=2000)
        line = drv.out.wait(lambda ls: [x for x in ls if x.startswith("idle")][1:], 10,
                            "idle")[0]
        assert line.split()[2] == "2", line  # connects: without a send
        sub.wait(lambda ls: avail_msgs(ls).count("online") > n_online, 10, "online again")
        # the sentinel dies without a word: the broker publishes its will
        drv.kill()
        sub.wait(lambda ls: avail_msgs(ls)[-1:] == ["offline"], 10, "the last will")
    finally:
        drv.kill()
        sub.stop()
