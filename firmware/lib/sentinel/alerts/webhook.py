"""Webhook transport: one HTTP/1.1 POST of the alert as JSON per alert.

Headers: X-PowerSentinel-Id (the alert id, for deduplication) and, with a secret,
X-PowerSentinel-Signature: sha256=<hex HMAC-SHA256(secret, body)>. Answers: 2xx delivered;
408, 429 and 5xx retried; any other 4xx rejected for good; anything else retried. Plain HTTP
only.
"""
import asyncio
import binascii
import hashlib
import json

from sentinel.alerts import Rejected
from sentinel.alerts.util import close
from sentinel.version import VERSION

_BLOCK = 64  # SHA-256 block size


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) of bytes msg under bytes key: the firmware has no hmac module."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (_BLOCK - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]))
    inner.update(msg)
    outer = hashlib.sha256(bytes([b ^ 0x5C for b in key]))
    outer.update(inner.digest())
    return outer.digest()


def signature(secret, body):
    """The X-PowerSentinel-Signature value for body under secret (str)."""
    return "sha256=" + binascii.hexlify(hmac_sha256(secret.encode(), body)).decode()


def parse_url(url):
    """http://host[:port][/path] -> (host, port, path). ValueError for anything else."""
    if not url.startswith("http://"):
        raise ValueError("webhook url must start with http://")
    rest = url[7:]
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    port = 80
    if ":" in hostport:
        hostport, p = hostport.rsplit(":", 1)
        port = int(p)
    if not hostport:
        raise ValueError("webhook url has no host")
    return hostport, port, path


def request(alert, host, port, path, secret):
    """The whole HTTP request (bytes) for alert."""
    body = json.dumps(alert).encode()
    head = ["POST %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
            "User-Agent: PowerSentinel/%s" % VERSION, "Content-Type: application/json",
            "Content-Length: %d" % len(body), "Connection: close",
            "X-PowerSentinel-Id: %d" % alert["id"]]
    if secret:
        head.append("X-PowerSentinel-Signature: " + signature(secret, body))
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def outcome(status_line):
    """None if the status line says delivered; raises Rejected or OSError otherwise."""
    parts = status_line.split()
    try:
        code = int(parts[1])
    except (IndexError, ValueError):
        raise OSError("no HTTP status in %r" % status_line[:40])
    if 200 <= code < 300:
        return None
    if 400 <= code < 500 and code not in (408, 429):
        raise Rejected("HTTP %d" % code)
    raise OSError("HTTP %d" % code)


class Transport:
    """The webhook transport (package contract); cfg: the alerts.webhook section."""

    def __init__(self, cfg, site):
        self.host, self.port, self.path = parse_url(cfg["url"])
        self.secret = cfg["secret"]
        self.w = None

    async def send(self, alert):
        req = request(alert, self.host, self.port, self.path, self.secret)
        r, self.w = await asyncio.open_connection(self.host, self.port)
        try:
            self.w.write(req)
            await self.w.drain()
            line = await r.readline()
        finally:
            await self.close()
        if not line:
            raise OSError("the webhook closed the connection without an answer")
        outcome(line)

    async def close(self):
        w = self.w
        self.w = None
        await close(w)
