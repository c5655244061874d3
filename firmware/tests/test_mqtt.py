# The MQTT transport's pure parts: packet bytes (MQTT 3.1.1), topics, retained state and the
# Home Assistant discovery payloads. The real broker exchange is host/tests/test_alerts_mqtt.py.
import json

from mpunit import TestCase
from sentinel.alerts import mqtt as M
from sentinel.alerts import mqttconn as C
from sentinel.alerts import mqttio as IO
from sentinel.alerts import mqttpkt as PK
from sentinel.version import VERSION

CFG = {"enabled": True, "host": "127.0.0.1", "port": 1883, "user": "", "password": "",
       "client_id": "", "topic_prefix": "powersentinel", "discovery": True,
       "discovery_prefix": "homeassistant", "keepalive_s": 60, "timeout_ms": 3000}


def _alert(kind, data, i=7, text="t"):
    return {"id": i, "ts": 1700000000, "site": "lab", "kind": kind, "severity": "crit",
            "text": text, "data": data}


class Encoding(TestCase):
    def test_varint_boundaries(self):
        # the spec's table (MQTT 3.1.1 section 2.2.3)
        for n, want in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                        (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
                        (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")):
            self.assertEqual(PK.varint(n), want)
        for bad in (-1, 268435456):
            with self.assertRaises(ValueError):
                PK.varint(bad)

    def test_utf8_string_is_length_prefixed_in_bytes(self):
        self.assertEqual(C.mqtt_str("MQTT"), b"\x00\x04MQTT")
        self.assertEqual(C.mqtt_str("Zürich"), b"\x00\x07Z\xc3\xbcrich")
        self.assertEqual(C.mqtt_str(b""), b"\x00\x00")
        with self.assertRaises(ValueError):
            C.mqtt_str("x" * 65536)

    def test_connect_with_will_and_credentials(self):
        p = C.connect_packet("ps-lab", 60, "powersentinel/lab/availability", b"offline",
                             "alice", "s3cret")
        body = (b"\x00\x04MQTT\x04" + bytes((0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02,))
                + b"\x00\x3c" + b"\x00\x06ps-lab" + b"\x00\x1epowersentinel/lab/availability"
                + b"\x00\x07offline" + b"\x00\x05alice" + b"\x00\x06s3cret")
        self.assertEqual(p, b"\x10" + PK.varint(len(body)) + body)

    def test_connect_anonymous_and_password_needs_user(self):
        p = C.connect_packet("c", 0)
        self.assertEqual(p, b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01c")
        # MQTT 3.1.1 forbids a password without a user name: it is left out
        self.assertEqual(C.connect_packet("c", 0, user="", password="x"), p)

    def test_publish_qos0_retained_and_qos1_with_packet_id(self):
        self.assertEqual(PK.publish_packet("a/b", "on", 0, True), b"\x31\x07\x00\x03a/bon")
        self.assertEqual(PK.publish_packet("a/b", b"{}", 1, False, 0x1234),
                         b"\x32\x09\x00\x03a/b\x12\x34{}")
        big = PK.publish_packet("t", "x" * 200, 1, False, 1)
        self.assertEqual(big[:3], b"\x32\xcd\x01")  # 3 + 2 + 200 = 205 = 0x4d + 1 * 128
        self.assertEqual(len(big), 3 + 205)

    def test_connack_codes(self):
        self.assertIsNone(C.connack_error(b"\x00\x00"))
        self.assertEqual(C.connack_error(b"\x00\x04"), "bad user name or password")
        self.assertEqual(C.connack_error(b"\x00\x05"), "not authorized")
        self.assertEqual(C.connack_error(b"\x00\x09"), "refused (code 9)")
        self.assertEqual(C.connack_error(b"\x00"), "malformed CONNACK")


class Topics(TestCase):
    def test_node_id_keeps_only_safe_characters(self):
        self.assertEqual(IO.node_id("rack-1_A"), "rack-1_A")
        self.assertEqual(IO.node_id("site #2/x+y é"), "site__2_x_y__")
        self.assertEqual(IO.node_id(""), "sentinel")

    def test_topics_under_prefix_and_node(self):
        t = PK.topics("ps", "lab")
        self.assertEqual(t["alert"], "ps/lab/alert")
        self.assertEqual(t["availability"], "ps/lab/availability")
        self.assertEqual(sorted(t), ["alert", "availability", "last_alert", "mains", "state"])

    def test_state_alert_sets_state_mains_and_last_alert(self):
        t = PK.topics("ps", "lab")
        a = _alert("state", {"from": "ONLINE", "to": "ON_BATTERY", "cause": "mains_lost",
                             "detail": None}, text="on battery")
        r = dict(IO.retained_for(a, t))
        st = json.loads(r["ps/lab/state"])
        self.assertEqual((st["state"], st["from"], st["cause"], st["id"]),
                         ("ON_BATTERY", "ONLINE", "mains_lost", 7))
        self.assertEqual(r["ps/lab/mains"], "lost")
        self.assertEqual(r["ps/lab/last_alert"], "on battery")
        back = _alert("state", {"from": "ON_BATTERY", "to": "ONLINE", "cause": "mains_restored",
                                "detail": None})
        self.assertEqual(dict(IO.retained_for(back, t))["ps/lab/mains"], "ok")

    def test_mains_kinds_and_others(self):
        t = PK.topics("ps", "lab")
        self.assertEqual(IO.retained_for(_alert("mains_lost", {"v": 3.1}, text="x"), t),
                         [("ps/lab/mains", "lost"), ("ps/lab/last_alert", "x")])
        self.assertEqual(dict(IO.retained_for(_alert("mains_ok", {}), t))["ps/lab/mains"], "ok")
        self.assertEqual(IO.retained_for(_alert("tier_fsd", {"tier": "a"}, text="y"), t),
                         [("ps/lab/last_alert", "y")])


class Discovery(TestCase):
    def test_three_entities_with_device_and_availability(self):
        got = C.discovery(CFG, "Lab 1", "Lab_1")
        topics = [t for t, _p in got]
        self.assertEqual(topics, ["homeassistant/sensor/Lab_1/power_state/config",
                                  "homeassistant/binary_sensor/Lab_1/mains/config",
                                  "homeassistant/sensor/Lab_1/last_alert/config"])
        confs = [json.loads(p) for _t, p in got]
        self.assertEqual(len(set(c["unique_id"] for c in confs)), 3)
        for c in confs:
            self.assertEqual(c["availability_topic"], "powersentinel/Lab_1/availability")
            d = c["device"]
            self.assertEqual(d["identifiers"], ["powersentinel_Lab_1"])
            self.assertEqual(d["manufacturer"], "Power Sentinel")
            self.assertEqual(d["sw_version"], VERSION)
            self.assertTrue(c["state_topic"].startswith("powersentinel/Lab_1/"))
        self.assertEqual(confs[0]["value_template"], "{{ value_json.state }}")
        m = confs[1]
        self.assertEqual((m["device_class"], m["payload_on"], m["payload_off"]),
                         ("power", "ok", "lost"))

    def test_prefixes_come_from_the_config(self):
        cfg = dict(CFG)
        cfg["topic_prefix"] = "ups"
        cfg["discovery_prefix"] = "ha"
        t, p = C.discovery(cfg, "x", "x")[1]
        self.assertEqual(t, "ha/binary_sensor/x/mains/config")
        self.assertEqual(json.loads(p)["state_topic"], "ups/x/mains")


class Build(TestCase):
    def test_client_id_defaults_from_the_site(self):
        tr = M.Transport(CFG, "lab 2")
        self.assertEqual(tr.client_id, "powersentinel-lab_2")
        self.assertEqual(tr.t["alert"], "powersentinel/lab_2/alert")
        cfg = dict(CFG)
        cfg["client_id"] = "mine"
        self.assertEqual(M.Transport(cfg, "lab").client_id, "mine")

    def test_no_socket_module_fails_the_send_cleanly(self):
        import asyncio

        from test_health import import_without_socket

        import sys

        import sentinel.alerts as pkg

        # the socket is opened by the connect-time module, imported for each connect
        m = import_without_socket("alerts.mqttconn")
        self.assertIsNone(m.socket)
        sys.modules["sentinel.alerts.mqttconn"] = m
        pkg.mqttconn = m
        tr = M.Transport(CFG, "lab")
        with self.assertRaises(OSError):
            asyncio.run(tr.send(_alert("test", {})))
        self.assertEqual(tr.errors, 1)
        # and it was forgotten after the connect, the exchange's modules after the send
        self.assertNotIn("sentinel.alerts.mqttconn", sys.modules)
        self.assertNotIn("sentinel.alerts.mqttio", sys.modules)
        self.assertNotIn("sentinel.alerts.mqttpkt", sys.modules)
