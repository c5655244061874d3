"""MQTT alert transport, with Home Assistant MQTT discovery (topics: docs/mqtt.md).

A small MQTT 3.1.1 client of its own: micropython-lib's umqtt.simple uses blocking sockets and
would stall the event loop (sensing, the NUT server) for as long as the broker takes to answer.
This one connects with a non-blocking socket it owns (so a timed-out connect never leaks an lwIP
socket) and talks through asyncio streams.

What `send(alert)` does, bounded as a whole by `timeout_ms`:
  - connects if needed: CONNECT (clean session, credentials, keepalive, last will "offline"
    retained on <prefix>/<node>/availability), checks CONNACK, then publishes "online" and,
    with `discovery`, the Home Assistant config payloads (retained);
  - publishes the retained per-kind state this alert changes (state, mains, last_alert);
  - publishes the alert JSON on <prefix>/<node>/alert with QoS 1 and waits for its PUBACK.
The retained messages go out with QoS 0 before the alert: the broker handles one connection's
packets in order, so the alert's PUBACK also means they were accepted.
Any error drops the connection (the next send reconnects) and raises OSError or
asyncio.TimeoutError: the queue retries. A refused CONNECT (bad credentials too) is an OSError
with the broker's reason: Rejected would skip every alert for good, while a fixed password or
ACL lets the queue deliver them all.

While connected and idle, a keepalive task sends PINGREQ so the broker does not drop the session
(and publish the will) between alerts; it also reconnects after a broker restart so that
"online" comes back without waiting for the next alert.

`host` should be an IP address: getaddrinfo blocks the event loop while it resolves a name.
Like every transport, this module is imported only when configured: boards without ROMFS hold
each imported module's bytecode in RAM. Its packet encoding is sentinel.alerts.mqttpkt; the
connect (CONNECT, CONNACK, discovery) is sentinel.alerts.mqttconn, imported for each connect
and dropped after it.
"""
import asyncio
import json
import time

from sentinel.alerts import forget
from sentinel.alerts.mqttpkt import (_LOST, _OK, DISCONNECT, PINGREQ, PINGRESP,  # noqa: F401
                                     PUBACK, _sleep_ms, publish_packet, topics, varint)

# state alerts that say where mains stands (statemachine causes)
_MAINS_BACK = ("mains_restored", "mains_stable", "mains_restored_after_ponr")


# ---- topics and payloads -------------------------------------------------------------------

def node_id(site):
    """The site name as one topic level and HA node id: [a-zA-Z0-9_-] only, others become '_'."""
    out = ""
    for c in site:
        out += c if (c.isalpha() and c < "\x80") or c.isdigit() or c in "_-" else "_"
    return out or "sentinel"


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


class Transport:
    """Alerts to an MQTT broker (contract: sentinel.alerts). cfg: the validated "mqtt" alert
    section; site: the sentinel's name. Counters: connects, sent, pings, errors, last_error."""

    def __init__(self, cfg, site):
        self.cfg = cfg
        self.site = site
        self.node = node_id(site)
        self.t = topics(cfg["topic_prefix"], self.node)
        self.client_id = cfg["client_id"] or "powersentinel-" + self.node
        self.timeout_ms = cfg["timeout_ms"]
        self.keepalive_ms = cfg["keepalive_s"] * 1000
        self._sock = None
        self._r = None
        self._w = None
        self._pid = 0
        # packets for the next write: one TCP segment per exchange (separate small writes meet
        # Nagle and delayed ACK: 40 ms per alert measured on loopback)
        self._out = bytearray()
        self._tx_at = 0           # ticks_ms of the last packet written (keepalive)
        self._lock = asyncio.Lock()  # one exchange at a time: send and the keepalive task
        self._ka = None           # the keepalive task
        self._closed = False
        self.connects = 0
        self.sent = 0
        self.pings = 0
        self.errors = 0
        self.last_error = None

    # ---- the contract ----------------------------------------------------------------------
    async def send(self, alert):
        """Returns once the broker has acknowledged the alert (PUBACK); OSError or
        asyncio.TimeoutError otherwise, within timeout_ms (DNS lookups aside)."""
        self._closed = False
        dl = time.ticks_add(time.ticks_ms(), self.timeout_ms)
        # the keepalive task may hold the connection for a ping: that wait counts too (a
        # wait_for only then: each one allocates a task)
        lk = self._lock
        await (asyncio.wait_for_ms(lk.acquire(), self._left(dl)) if lk.locked() else lk.acquire())
        try:
            if self._w is None:
                await self._connect(dl)
            for topic, payload in retained_for(alert, self.t):
                self._out += publish_packet(topic, payload, 0, True)
            await self._publish1(self.t["alert"], json.dumps(alert), dl)
            self.sent += 1
        except Exception as e:
            self._fail(e)
            raise
        finally:
            self._lock.release()

    async def close(self):
        """Says "offline" (retained), disconnects cleanly (no will) and stops the keepalive task."""
        self._closed = True
        ka = self._ka
        self._ka = None
        if ka is not None:
            ka.cancel()
        if self._w is not None:
            try:
                self._out += publish_packet(self.t["availability"], "offline", 0, True)
                self._out += bytes((DISCONNECT, 0))
                await self._drain(time.ticks_add(time.ticks_ms(), self.timeout_ms))
            except Exception:
                pass
        self._drop()

    # ---- connection ------------------------------------------------------------------------
    def _left(self, dl):
        ms = time.ticks_diff(dl, time.ticks_ms())
        if ms <= 0:
            raise asyncio.TimeoutError()
        return ms

    async def _connect(self, dl):
        # the connect-time code (CONNECT, CONNACK, the discovery payloads) is imported for the
        # connect and dropped after it: it runs once per broker session (device heap)
        from sentinel.alerts import mqttconn
        try:
            await mqttconn.connect(self, dl)
        finally:
            del mqttconn
            forget("mqttconn")
        self.connects += 1
        if self.keepalive_ms and self._ka is None:
            self._ka = asyncio.create_task(self._keepalive())

    def _fail(self, e):
        self.errors += 1
        self.last_error = e.args[0] if e.args else type(e).__name__
        self._drop()

    def _drop(self):
        s = self._sock
        self._sock = self._r = self._w = None
        self._out = bytearray()
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    # ---- packets on the wire ---------------------------------------------------------------
    async def _drain(self, dl):
        """Writes the queued packets."""
        w = self._w
        if w is None:
            raise OSError("mqtt: not connected")
        out = self._out
        self._out = bytearray()
        w.write(out)
        await asyncio.wait_for_ms(w.drain(), self._left(dl))
        self._tx_at = time.ticks_ms()

    async def _readn(self, n, dl):
        r = self._r
        if r is None:
            raise OSError("mqtt: not connected")
        try:
            return await asyncio.wait_for_ms(r.readexactly(n), self._left(dl))
        except EOFError:
            raise OSError("mqtt: connection closed by the broker")

    async def _read(self, dl):
        """(first byte, body) of the next packet from the broker."""
        h = await self._readn(2, dl)  # every packet has a type byte and a length byte
        first = h[0]
        b = h[1]
        n = b & 0x7F
        shift = 7
        while b & 0x80:
            if shift > 21:
                raise OSError("mqtt: malformed packet from the broker")
            b = (await self._readn(1, dl))[0]
            n |= (b & 0x7F) << shift
            shift += 7
        return first, (await self._readn(n, dl) if n else b"")

    async def _publish1(self, topic, payload, dl):
        """PUBLISH QoS 1 and wait for its PUBACK (other packets are skipped)."""
        self._pid = self._pid % 65535 + 1
        pid = self._pid
        self._out += publish_packet(topic, payload, 1, False, pid)
        await self._drain(dl)
        while True:
            first, body = await self._read(dl)
            if first >> 4 == PUBACK >> 4 and len(body) >= 2 and (body[0] << 8 | body[1]) == pid:
                return

    async def _keepalive(self):
        """PINGREQ when idle for half the keepalive; reconnect if the broker went away."""
        half = self.keepalive_ms // 2
        while not self._closed:
            await _sleep_ms(half)
            if self._lock.locked() or self._closed:
                continue
            await self._lock.acquire()
            try:
                dl = time.ticks_add(time.ticks_ms(), self.timeout_ms)
                if self._w is None:
                    await self._connect(dl)
                    await self._drain(dl)
                elif time.ticks_diff(time.ticks_ms(), self._tx_at) >= half:
                    self._out += bytes((PINGREQ, 0))
                    await self._drain(dl)
                    while (await self._read(dl))[0] != PINGRESP:
                        pass
                    self.pings += 1
            except Exception as e:
                self._fail(e)
            finally:
                self._lock.release()
