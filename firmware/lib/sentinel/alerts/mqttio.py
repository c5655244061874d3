"""One exchange of the MQTT transport (sentinel.alerts.mqtt) with its broker: an alert's send,
a keepalive ping, the close; the packets on the wire and the retained state an alert changes.

Imported by the Transport for each exchange and dropped after it, with the packet encoding
(sentinel.alerts.mqttpkt): only the session stays resident (device heap: a module costs its
functions and constants even from ROMFS). Functions take the Transport `tr` whose state they
use: its socket's streams, the queued packets (_out), the packet id, the counters.
"""
import asyncio
import json
import time

from sentinel.alerts import forget
from sentinel.alerts.mqttpkt import (_LOST, _OK, DISCONNECT, PINGREQ, PINGRESP, PUBACK,
                                     publish_packet, topics)

# state alerts that say where mains stands (statemachine causes)
_MAINS_BACK = ("mains_restored", "mains_stable", "mains_restored_after_ponr")


# ---- topics and payloads -------------------------------------------------------------------

def node_id(site):
    """The site name as one topic level and HA node id: [a-zA-Z0-9_-] only, others become '_'."""
    out = ""
    for c in site:
        out += c if (c.isalpha() and c < "\x80") or c.isdigit() or c in "_-" else "_"
    return out or "sentinel"


def setup(tr, cfg, site):
    """The Transport's names: node id, topics, client id."""
    tr.node = node_id(site)
    tr.t = topics(cfg["topic_prefix"], tr.node)
    tr.client_id = cfg["client_id"] or "powersentinel-" + tr.node


def retained_for(alert, t):
    """[(topic, payload)] of the retained state that `alert` changes (t: topics())."""
    kind = alert["kind"]
    data = alert.get("data") or {}
    out = []
    mains = None
    if kind == "state":
        out.append((t["state"], json.dumps({
            "state": data.get("to"), "from": data.get("from"), "cause": data.get("cause"),
            "detail": data.get("detail"), "id": alert["id"], "ts": alert["ts"]})))
        if data.get("to") == "ON_BATTERY":
            mains = _LOST
        elif data.get("cause") in _MAINS_BACK:
            mains = _OK
    elif kind == "mains_lost":
        mains = _LOST
    elif kind == "mains_ok":
        mains = _OK
    if mains is not None:
        out.append((t["mains"], mains))
    out.append((t["last_alert"], alert["text"]))
    return out


# ---- the exchanges -------------------------------------------------------------------------

async def send(tr, alert):
    """Transport.send: returns once the broker has acknowledged the alert (PUBACK)."""
    tr._closed = False
    dl = time.ticks_add(time.ticks_ms(), tr.timeout_ms)
    # the keepalive task may hold the connection for a ping: that wait counts too (a
    # wait_for only then: each one allocates a task)
    lk = tr._lock
    await (asyncio.wait_for_ms(lk.acquire(), left(dl)) if lk.locked() else lk.acquire())
    try:
        if tr._w is None:
            await connect(tr, dl)
        for topic, payload in retained_for(alert, tr.t):
            tr._out += publish_packet(topic, payload, 0, True)
        await publish1(tr, tr.t["alert"], json.dumps(alert), dl)
        tr.sent += 1
    except Exception as e:
        tr._fail(e)
        raise
    finally:
        lk.release()


async def close(tr):
    """Transport.close, connected: "offline" (retained) and DISCONNECT."""
    tr._out += publish_packet(tr.t["availability"], "offline", 0, True)
    tr._out += bytes((DISCONNECT, 0))
    await drain(tr, time.ticks_add(time.ticks_ms(), tr.timeout_ms))


async def ping(tr, half):
    """The keepalive's turn (tr's lock held): reconnect if the broker went away, else PINGREQ
    when nothing was written for `half` ms."""
    dl = time.ticks_add(time.ticks_ms(), tr.timeout_ms)
    if tr._w is None:
        await connect(tr, dl)
        await drain(tr, dl)
    elif time.ticks_diff(time.ticks_ms(), tr._tx_at) >= half:
        tr._out += bytes((PINGREQ, 0))
        await drain(tr, dl)
        while (await read(tr, dl))[0] != PINGRESP:
            pass
        tr.pings += 1


# ---- connection ----------------------------------------------------------------------------

def left(dl):
    ms = time.ticks_diff(dl, time.ticks_ms())
    if ms <= 0:
        raise asyncio.TimeoutError()
    return ms


async def connect(tr, dl):
    # the connect-time code (CONNECT, CONNACK, the discovery payloads) is imported for the
    # connect and dropped after it: it runs once per broker session (device heap)
    from sentinel.alerts import mqttconn
    try:
        await mqttconn.connect(tr, dl, left, drain, read)
    finally:
        del mqttconn
        forget("mqttconn")
    tr.connects += 1
    if tr.keepalive_ms and tr._ka is None:
        tr._ka = asyncio.create_task(tr._keepalive())


# ---- packets on the wire -------------------------------------------------------------------

async def drain(tr, dl):
    """Writes the queued packets."""
    w = tr._w
    if w is None:
        raise OSError("mqtt: not connected")
    out = tr._out
    tr._out = bytearray()
    w.write(out)
    await asyncio.wait_for_ms(w.drain(), left(dl))
    tr._tx_at = time.ticks_ms()


async def _readn(tr, n, dl):
    r = tr._r
    if r is None:
        raise OSError("mqtt: not connected")
    try:
        return await asyncio.wait_for_ms(r.readexactly(n), left(dl))
    except EOFError:
        raise OSError("mqtt: connection closed by the broker")


async def read(tr, dl):
    """(first byte, body) of the next packet from the broker."""
    h = await _readn(tr, 2, dl)  # every packet has a type byte and a length byte
    first = h[0]
    b = h[1]
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 21:
            raise OSError("mqtt: malformed packet from the broker")
        b = (await _readn(tr, 1, dl))[0]
        n |= (b & 0x7F) << shift
        shift += 7
    return first, (await _readn(tr, n, dl) if n else b"")


async def publish1(tr, topic, payload, dl):
    """PUBLISH QoS 1 and wait for its PUBACK (other packets are skipped)."""
    tr._pid = tr._pid % 65535 + 1
    pid = tr._pid
    tr._out += publish_packet(topic, payload, 1, False, pid)
    await drain(tr, dl)
    while True:
        first, body = await read(tr, dl)
        if first >> 4 == PUBACK >> 4 and len(body) >= 2 and (body[0] << 8 | body[1]) == pid:
            return
