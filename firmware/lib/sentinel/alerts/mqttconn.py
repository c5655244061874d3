"""Connecting the MQTT transport (sentinel.alerts.mqtt) to its broker: the socket, CONNECT with
the last will, CONNACK, "online" and the Home Assistant discovery configs.

Imported by mqttio.connect for one connect and dropped after it: it runs once per broker
session, and a module costs device heap even from ROMFS (its functions and constants).
"""
import asyncio
import json
import select

try:
    import socket
except ImportError:  # a board built without networking: every send fails, nothing crashes
    socket = None

from sentinel.alerts.mqttpkt import (_LOST, _OK, CONNACK, CONNECT, _sleep_ms, publish_packet,
                                     topics, varint)
from sentinel.version import VERSION

_REFUSED = (None, "unacceptable protocol version", "client id rejected", "server unavailable",
            "bad user name or password", "not authorized")
_POLL_STEP_MS = 20


def mqtt_str(s):
    """A UTF-8 string field: 2-byte big-endian length, then the bytes."""
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise ValueError("mqtt: string too long")
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def connect_packet(client_id, keepalive_s, will_topic=None, will_msg=b"", user=None,
                   password=None):
    """CONNECT with a clean session; the will (if any) is QoS 1 and retained. A password is
    sent only with a user name (MQTT 3.1.1 3.1.2.9)."""
    flags = 0x02
    payload = mqtt_str(client_id)
    if will_topic:
        flags |= 0x04 | 0x08 | 0x20
        payload += mqtt_str(will_topic) + mqtt_str(will_msg)
    if user:
        flags |= 0x80
        payload += mqtt_str(user)
        if password:
            flags |= 0x40
            payload += mqtt_str(password)
    body = mqtt_str("MQTT") + bytes((4, flags, (keepalive_s >> 8) & 0xFF, keepalive_s & 0xFF)) \
        + payload
    return bytes((CONNECT,)) + varint(len(body)) + body


def connack_error(body):
    """None if a CONNACK body accepts the connection, else the reason in words."""
    if len(body) != 2:
        return "malformed CONNACK"
    rc = body[1]
    if rc == 0:
        return None
    return _REFUSED[rc] if rc < len(_REFUSED) else "refused (code %d)" % rc


def discovery(cfg, site, node):
    """[(topic, payload JSON)] of the Home Assistant discovery configs (retained)."""
    t = topics(cfg["topic_prefix"], node)
    dev = {"identifiers": ["powersentinel_" + node], "name": "Power Sentinel " + site,
           "manufacturer": "Power Sentinel", "model": "Power Sentinel",
           "sw_version": VERSION}
    ents = (
        ("sensor", "power_state", {"name": "Power state", "state_topic": t["state"],
                                   "value_template": "{{ value_json.state }}",
                                   "json_attributes_topic": t["state"],
                                   "icon": "mdi:power-plug"}),
        ("binary_sensor", "mains", {"name": "Mains", "state_topic": t["mains"],
                                    "device_class": "power", "payload_on": _OK,
                                    "payload_off": _LOST}),
        ("sensor", "last_alert", {"name": "Last alert", "state_topic": t["last_alert"],
                                  "icon": "mdi:alert-circle-outline"}),
    )
    out = []
    for comp, obj, conf in ents:
        conf["unique_id"] = "powersentinel_" + node + "_" + obj
        conf["availability_topic"] = t["availability"]
        conf["device"] = dev
        out.append(("%s/%s/%s/%s/config" % (cfg["discovery_prefix"], comp, node, obj),
                    json.dumps(conf)))
    return out


async def _open(tr, dl, left):
    """A connected non-blocking socket to tr's broker (closed again on any failure)."""
    cfg = tr.cfg
    if socket is None:
        raise OSError("mqtt: this board has no network")
    ai = socket.getaddrinfo(cfg["host"], cfg["port"], 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], ai[1], ai[2])
    try:
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            # EINPROGRESS (115 Linux/lwIP) or EAGAIN/EWOULDBLOCK: the connect goes on
            if e.args[0] not in (115, 119, 11, 36, 10035):
                raise
        p = select.poll()
        p.register(s, select.POLLOUT)
        while True:
            ev = p.poll(0)
            if ev:
                if ev[0][1] & (select.POLLERR | select.POLLHUP):
                    raise OSError("mqtt: connection to %s:%d refused" % (cfg["host"], cfg["port"]))
                return s
            left(dl)
            await _sleep_ms(_POLL_STEP_MS)
    except BaseException:
        s.close()
        raise


async def connect(tr, dl, left, drain, read):
    """Connect Transport `tr` (socket, streams, CONNECT, CONNACK) and queue "online" and the
    discovery configs on it; OSError or asyncio.TimeoutError by the deadline dl (ticks_ms).
    left, drain, read: sentinel.alerts.mqttio's, which imports this module (passed, no cycle)."""
    tr._sock = s = await _open(tr, dl, left)
    tr._r = asyncio.StreamReader(s)
    tr._w = asyncio.StreamWriter(s, {})
    cfg = tr.cfg
    tr._out = bytearray(connect_packet(tr.client_id, cfg["keepalive_s"], tr.t["availability"],
                                       b"offline", cfg["user"], cfg["password"]))
    await drain(tr, dl)
    first, body = await read(tr, dl)
    if first != CONNACK:
        raise OSError("mqtt: no CONNACK from the broker")
    err = connack_error(body)
    if err:
        raise OSError("mqtt: broker refused the connection: " + err)
    tr._out += publish_packet(tr.t["availability"], "online", 0, True)
    if cfg["discovery"]:
        for topic, payload in discovery(cfg, tr.site, tr.node):
            tr._out += publish_packet(topic, payload, 0, True)
