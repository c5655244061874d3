"""E-mail transport: a small SMTP client, one connection per alert (EHLO, optional AUTH LOGIN,
MAIL FROM, RCPT TO each recipient, DATA, QUIT). No TLS.

The Message-ID is derived from the alert id (<alert-ID.SITE@powersentinel>), so a mail system
or a person can spot a duplicate. Answers to the message itself (MAIL, RCPT, end of DATA): 2xx
delivered, 5xx rejected for good, anything else retried. A refusal of the greeting, EHLO or AUTH
is retried: it is a server or configuration problem, and alerts wait for it to be mended.
"""
import asyncio
import binascii
import json

from sentinel.alerts import Rejected
from sentinel.alerts.util import close, rfc5322


def dot_stuff(text):
    """text with CRLF line ends and a '.' doubled at the start of a line (RFC 5321 4.5.2)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\r\n".join(["." + ln if ln.startswith(".") else ln for ln in lines])


def _b64(s):
    return binascii.b2a_base64(s.encode()).strip().decode()


def _header_safe(s):
    return s.replace("\r", " ").replace("\n", " ")


def message_id(alert):
    site = "".join([c if c.isalpha() or c.isdigit() or c in "-_" else "_"
                    for c in alert["site"]])
    return "<alert-%d.%s@powersentinel>" % (alert["id"], site or "sentinel")


def message(alert, sender, rcpts):
    """The message (headers and body, not yet dot-stuffed) for alert."""
    h = ["From: %s" % sender, "To: %s" % ", ".join(rcpts),
         "Subject: %s" % _header_safe("[%s] %s: %s" % (alert["site"], alert["severity"],
                                                        alert["text"])),
         "Message-ID: %s" % message_id(alert), "X-PowerSentinel-Id: %d" % alert["id"],
         "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    date = rfc5322(alert["ts"])
    if date:
        h.append("Date: " + date)
    body = "%s\n\nsite: %s\nkind: %s\nseverity: %s\nid: %d\ndata: %s\n" % (
        alert["text"], alert["site"], alert["kind"], alert["severity"], alert["id"],
        json.dumps(alert["data"]))
    return "\n".join(h) + "\n\n" + body


def recipients(to):
    return [r.strip() for r in to.split(",") if r.strip()]


class Transport:
    """The e-mail transport (package contract); cfg: the alerts.smtp section."""

    def __init__(self, cfg, site):
        self.host = cfg["host"]
        self.port = cfg["port"]
        self.user = cfg["user"]
        self.password = cfg["password"]
        self.sender = cfg["sender"]
        self.rcpts = recipients(cfg["to"])
        self.helo = "".join([c if c.isalpha() or c.isdigit() or c == "-" else "-" for c in site])
        self.w = None

    async def _reply(self, r):
        """(code, last line) of one possibly multi-line reply."""
        while True:
            line = await r.readline()
            if not line:
                raise OSError("the SMTP server closed the connection")
            try:
                code = int(line[:3])
            except ValueError:
                raise OSError("not an SMTP reply: %r" % line[:40])
            if line[3:4] != b"-":
                return code, line.strip().decode()

    async def _cmd(self, rw, line, want, per_message=False):
        r, w = rw
        if line is not None:
            w.write(line.encode() + b"\r\n")
            await w.drain()
        code, text = await self._reply(r)
        if code // 100 == want // 100:
            return code
        if per_message and code // 100 == 5:
            raise Rejected(text)
        raise OSError(text)

    async def send(self, alert):
        rw = await asyncio.open_connection(self.host, self.port)
        self.w = rw[1]
        try:
            await self._cmd(rw, None, 220)
            await self._cmd(rw, "EHLO " + (self.helo or "powersentinel"), 250)
            if self.user:
                await self._cmd(rw, "AUTH LOGIN", 334)
                await self._cmd(rw, _b64(self.user), 334)
                await self._cmd(rw, _b64(self.password), 235)
            await self._cmd(rw, "MAIL FROM:<%s>" % self.sender, 250, True)
            ok = []
            refused = None
            for rc in self.rcpts:
                try:
                    await self._cmd(rw, "RCPT TO:<%s>" % rc, 250, True)
                    ok.append(rc)
                except Rejected as e:  # one bad address must not stop the others
                    refused = e
            if not ok:
                raise refused or Rejected("no recipient")
            await self._cmd(rw, "DATA", 354, True)
            rw[1].write(dot_stuff(message(alert, self.sender, self.rcpts)).encode()
                         + b"\r\n.\r\n")
            await self._cmd(rw, None, 250, True)
            try:
                await self._cmd(rw, "QUIT", 221)
            except OSError:  # delivered already: a rude goodbye does not matter
                pass
        finally:
            await self.close()

    async def close(self):
        w = self.w
        self.w = None
        await close(w)
