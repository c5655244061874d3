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
each imported module's bytecode in RAM. Only the session stays resident here (the Transport's
state and its keepalive loop); what an exchange runs (a send, a ping, the close: packets on the
wire, the retained state) is sentinel.alerts.mqttio, with the packet encoding
(sentinel.alerts.mqttpkt) imported for each exchange and dropped after it, and the connect
(CONNECT, CONNACK, discovery) is sentinel.alerts.mqttconn, imported for each connect. A module
costs device heap even from ROMFS (its functions and constants).
"""
import asyncio

from sentinel.alerts import forget


def _io():
    # the exchange's code, imported for it; done() forgets it and the packet module again
    from sentinel.alerts import mqttio
    return mqttio


def _done():
    forget("mqttio")
    forget("mqttpkt")


class Transport:
    """Alerts to an MQTT broker (contract: sentinel.alerts). cfg: the validated "mqtt" alert
    section; site: the sentinel's name. Counters: connects, sent, pings, errors, last_error."""

    def __init__(self, cfg, site):
        self.cfg = cfg
        self.site = site
        try:
            _io().setup(self, cfg, site)   # node, topics, client id
        finally:
            _done()
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
        try:
            await _io().send(self, alert)
        finally:
            _done()

    async def close(self):
        """Says "offline" (retained), disconnects cleanly (no will) and stops the keepalive task."""
        self._closed = True
        ka = self._ka
        self._ka = None
        if ka is not None:
            ka.cancel()
        if self._w is not None:
            try:
                await _io().close(self)
            except Exception:
                pass
            finally:
                _done()
        self._drop()

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

    async def _keepalive(self):
        """PINGREQ when idle for half the keepalive; reconnect if the broker went away."""
        half = self.keepalive_ms // 2
        sleep_ms = getattr(asyncio, "sleep_ms", None)   # CPython has asyncio.sleep only
        while not self._closed:
            await (sleep_ms(half) if sleep_ms is not None else asyncio.sleep(half / 1000))
            if self._lock.locked() or self._closed:
                continue
            await self._lock.acquire()
            try:
                await _io().ping(self, half)
            except Exception as e:
                self._fail(e)
            finally:
                _done()
                self._lock.release()
