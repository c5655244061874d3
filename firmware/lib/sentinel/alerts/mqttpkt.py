"""MQTT 3.1.1 packet encoding and the transport's topics, shared by the MQTT transport
(sentinel.alerts.mqtt, resident while MQTT is enabled) and its connect-time module
(sentinel.alerts.mqttconn, imported per connect). Pure, unit-tested under MicroPython."""
import asyncio

# Fixed-header types (MQTT 3.1.1 section 2.2.1)
CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

_OK = "ok"
_LOST = "lost"


def varint(n):
    """The remaining-length field: 7 bits a byte, low first, high bit = more (1 to 4 bytes)."""
    if n < 0 or n > 268435455:
        raise ValueError("mqtt: packet too long")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def publish_packet(topic, payload, qos=0, retain=False, pid=0):
    """PUBLISH; `pid` (1..65535) only with QoS 1. Built in one buffer: alerts are the biggest
    packets and each concatenation would copy them again (device heap)."""
    tb = topic.encode()
    pb = payload.encode() if isinstance(payload, str) else payload
    n = 2 + len(tb) + (2 if qos else 0) + len(pb)
    v = varint(n)
    buf = bytearray(1 + len(v) + n)
    buf[0] = PUBLISH | (qos << 1) | (1 if retain else 0)
    i = 1 + len(v)
    buf[1:i] = v
    buf[i] = len(tb) >> 8
    buf[i + 1] = len(tb) & 0xFF
    i += 2
    buf[i:i + len(tb)] = tb
    i += len(tb)
    if qos:
        buf[i] = pid >> 8
        buf[i + 1] = pid & 0xFF
        i += 2
    buf[i:] = pb
    return buf


def topics(prefix, node):
    """Every topic the transport publishes under its base `<prefix>/<node>`."""
    base = prefix + "/" + node
    return {"alert": base + "/alert", "availability": base + "/availability",
            "state": base + "/state", "mains": base + "/mains",
            "last_alert": base + "/last_alert"}


def _sleep_ms(ms):
    f = getattr(asyncio, "sleep_ms", None)
    return f(ms) if f is not None else asyncio.sleep(ms / 1000)
