"""Syslog transport: RFC 5424 messages over TCP (RFC 6587 octet counting, the default) or UDP
(RFC 5426).

    <PRI>1 TIMESTAMP HOST powersentinel - KIND [ps@32473 id="ID" severity="SEV"] TEXT

PRI = facility x 8 + the alert's severity; HOST is the site name; MSGID the alert's kind; the
structured data carries the alert id (32473 is the documentation private enterprise number),
so a receiver can drop duplicates. Syslog has no acknowledgement: over TCP a receiver that
stopped (closed its connection, or refuses new ones) is noticed before the send and the alert
retried; one that dies in the moment after a send loses it. UDP is fire and forget.
"""
import asyncio
import select
import socket

from sentinel.alerts.kinds import rank
from sentinel.alerts.util import close, iso

PEN = 32473
APP = "powersentinel"
# facility codes 0..23 in order (one string: device heap; schema.FACILITIES, which the
# validator checks against, is not resident)
FACILITIES = ("kern user mail daemon auth syslog lpr news uucp cron authpriv ftp ntp audit console "
              "cron2 local0 local1 local2 local3 local4 local5 local6 local7")


def facility_code(name):
    return FACILITIES.split().index(name)


def _printable(s, n):
    # header fields are PRINTUSASCII (33..126), at most n characters, "-" when empty
    out = "".join([c if "!" <= c <= "~" else "_" for c in s[:n]])
    return out or "-"


def _sd_value(s):
    # PARAM-VALUE escapes: \ " ]
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_message(alert, facility=16):
    """The RFC 5424 message (str, no framing) for `alert`; facility: its code (16: local0)."""
    pri = facility * 8 + rank(alert["severity"])
    ts = iso(alert["ts"]) or "-"
    sd = '[ps@%d id="%d" severity="%s" site="%s"]' % (PEN, alert["id"], alert["severity"],
                                                     _sd_value(alert["site"]))
    return "<%d>1 %s %s %s - %s %s %s" % (pri, ts, _printable(alert["site"], 255), APP,
                                          _printable(alert["kind"], 32), sd, alert["text"])


def frame(msg):
    """RFC 6587 octet counting: "LEN SP MSG" (bytes)."""
    b = msg.encode()
    return ("%d " % len(b)).encode() + b


class Transport:
    """The syslog transport (package contract); cfg: the alerts.syslog section."""

    def __init__(self, cfg, site):
        self.host = cfg["host"]
        self.port = cfg["port"]
        self.tcp = cfg["proto"] == "tcp"
        self.facility = facility_code(cfg["facility"])
        self.site = site
        self.w = None       # TCP stream
        self.sock = None    # UDP socket
        self.addr = None

    def _peer_gone(self):
        # A syslog receiver never sends: a readable (EOF) or hung-up socket means it closed
        # the connection (stopped, restarted). Poll without waiting.
        s = getattr(self.w, "s", None)
        if s is None:
            return False
        p = select.poll()
        p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        return bool(p.poll(0))

    async def send(self, alert):
        msg = format_message(alert, self.facility)
        if not self.tcp:
            s = self.sock
            addr = self.addr
            if s is None or addr is None:
                addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_DGRAM)[0][-1]
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setblocking(False)
                self.sock = s
                self.addr = addr
            s.sendto(msg.encode(), addr)
            return
        if self.w is not None and self._peer_gone():
            await self.close()
        if self.w is None:
            r, self.w = await asyncio.open_connection(self.host, self.port)
        self.w.write(frame(msg))
        await self.w.drain()

    async def close(self):
        w = self.w
        self.w = None
        await close(w)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
