# The console protocol: framed, versioned JSON lines on the serial console, beside the REPL.
#
#   @PS1 <json> <crc32 as 8 hex digits>\r\n
#
# Both directions use the same frame. Requests carry {"id": n, "op": "..."} (+ arguments);
# replies {"id": n, "ok": true, "data": ...} or {"id": n, "ok": false, "error": "..."};
# unsolicited events {"ev": "...", ...}. Anything else on the line (REPL output, a boot banner,
# a human typing, a half line cut by a reboot) fails the marker or the CRC and is skipped, which
# is how both sides resynchronise. Shared by the firmware and the host (MicroPython + CPython).
import json
from binascii import crc32

VERSION = 1
MARK = b"@PS1 "
MAX_LINE = 4096  # a longer request is refused without being parsed (bounded memory)


def encode(obj):
    s = json.dumps(obj, separators=(",", ":")).encode()
    return MARK + s + b" " + (b"%08x" % (crc32(s) & 0xFFFFFFFF)) + b"\r\n"


def decode(line):
    """A frame's object, or None if the line is not a valid frame."""
    i = line.find(MARK)
    if i < 0:
        return None
    body = line[i + len(MARK):].rstrip(b"\r\n")
    if len(body) < 10 or body[-9:-8] != b" ":
        return None
    s, crc = body[:-9], body[-8:]
    try:
        if int(crc, 16) != crc32(s) & 0xFFFFFFFF:
            return None
        return json.loads(s)
    except ValueError:
        return None


class ConsoleServer:
    """Dispatches request frames to handlers `op -> fn(req) -> data` (or async fn); a handler
    raising ValueError is a clean error reply; anything else is reported, never fatal."""

    def __init__(self, write, handlers=None):
        self.write = write          # fn(bytes)
        self.handlers = handlers or {}
        self.bad = 0                # frames refused (too long, bad CRC with our marker, ...)

    def event(self, name, **data):
        data["ev"] = name
        self.write(encode(data))

    async def handle_line(self, line):
        if len(line) > MAX_LINE:
            self.bad += 1
            self.write(encode({"id": None, "ok": False, "error": "request too long"}))
            return
        if MARK not in line:
            return
        req = decode(line)
        if not isinstance(req, dict):
            self.bad += 1
            self.write(encode({"id": None, "ok": False, "error": "malformed frame"}))
            return
        rid = req.get("id")
        fn = self.handlers.get(req.get("op"))
        if fn is None:
            self.write(encode({"id": rid, "ok": False,
                               "error": "unknown op %r" % (req.get("op"),)}))
            return
        try:
            data = fn(req)
            if hasattr(data, "send"):  # a coroutine (generator on MicroPython)
                data = await data
            self.write(encode({"id": rid, "ok": True, "data": data}))
        except ValueError as e:
            self.write(encode({"id": rid, "ok": False, "error": str(e)}))
        except Exception as e:  # a bug in a handler must not take the console down
            self.write(encode({"id": rid, "ok": False, "error": "internal: %r" % (e,)}))

    async def serve(self, reader):
        # readline on a stream is bounded by our own check: drop over-long lines in pieces
        buf = b""
        while True:
            chunk = await reader.read(256)
            if not chunk:
                return
            buf += chunk
            chunk = None  # the frame outlives each step: hold no request between them (heap)
            while True:
                i = buf.find(b"\n")
                if i < 0:
                    if len(buf) > MAX_LINE:
                        buf = b""
                        self.bad += 1
                        self.write(encode({"id": None, "ok": False, "error": "request too long"}))
                    break
                line, buf = buf[:i + 1], buf[i + 1:]
                await self.handle_line(line)
                line = None
