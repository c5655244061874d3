"""HTTP/1.0 and 1.1 requests, bounded: the incremental parser, Basic credentials, form bodies.
Pure; MicroPython and CPython. The server imports this module for each request and drops it
once the request is read (the response head is the server's: server.response_head).

A request may hold at most `max_line` bytes per line, `max_headers` header lines, `max_head`
bytes before its body and `max_body` bytes of body: what a browser, curl or Prometheus sends
fits well within the defaults, and nothing a client sends makes the parser keep more. Only the
headers the server uses are kept (KEEP); an over-long line of another header is skipped, not
refused (a browser may send cookies set by another service on the same host name).
"""
import binascii

MORE = 0   # feed() wants more bytes
DONE = 1   # the request is complete (an error is returned as its HTTP status code instead)

KEEP = ("authorization", "content-length", "content-type", "transfer-encoding")

_REQ = 0
_HEAD = 1
_BODY = 2
_DONE = 3
_TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class RequestParser:
    """One request, fed in chunks of bytes. After DONE: method, path, query (str, "" when
    none), version ("HTTP/1.1"), headers {lowercase name: str} (KEEP only), body (bytes)."""

    def __init__(self, max_line=512, max_headers=32, max_head=4096, max_body=256):
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_head = max_head
        self.max_body = max_body
        self.line = bytearray()
        self.skip = False     # the current line outgrew max_line: its rest is not kept
        self.state = _REQ
        self.head = 0         # bytes before the body so far
        self.count = 0        # header lines so far
        self.need = 0         # body bytes announced
        self.method = None
        self.path = None
        self.query = ""
        self.version = None
        self.headers = {}
        self.body = b""

    def started(self):
        """Whether any byte of the request has arrived."""
        return self.head > 0

    def done(self):
        return self.state == _DONE

    def feed(self, data):
        """Take the next bytes of the connection: MORE, DONE or an HTTP error status (int > 1).
        Bytes after a complete request are ignored (one request per connection)."""
        i = 0
        n = len(data)
        while i < n:
            st = self.state
            if st == _DONE:
                return DONE
            if st == _BODY:
                take = min(self.need - len(self.body), n - i)
                self.body += bytes(data[i:i + take])
                i += take
                if len(self.body) >= self.need:
                    self.state = _DONE
                    return DONE
                continue
            j = data.find(b"\n", i)
            end = n if j < 0 else j
            self.head += end - i + (1 if j >= 0 else 0)
            if self.head > self.max_head:
                return 414 if st == _REQ else 431
            if not self.skip:
                if len(self.line) + end - i > self.max_line:
                    self.line += data[i:i + self.max_line - len(self.line)]
                    self.skip = True
                else:
                    self.line += data[i:end]
            if j < 0:
                return MORE
            i = j + 1
            r = self._line()
            self.line = bytearray()
            self.skip = False
            if r != MORE:
                return r
        return DONE if self.state == _DONE else MORE

    def _line(self):
        line = self.line
        if line and line[-1] == 13:  # CR
            line = line[:-1]
        if self.state == _REQ:
            if not line:
                return MORE  # an empty line before the request line is allowed (RFC 9112)
            if self.skip:
                return 414
            return self._request_line(line)
        if not line:
            return self._end_of_head()
        self.count += 1
        if self.count > self.max_headers:
            return 431
        if line[0] in (32, 9):
            return 400  # obsolete line folding
        c = line.find(b":")
        if c <= 0:
            return 400
        try:
            name = bytes(line[:c]).decode()
        except Exception:
            return 400
        for ch in name:
            if ch not in _TOKEN:
                return 400
        name = name.lower()
        if name not in KEEP:
            return MORE
        if self.skip:
            return 431
        try:
            self.headers[name] = bytes(line[c + 1:]).decode().strip()
        except Exception:
            return 400
        return MORE

    def _request_line(self, line):
        parts = bytes(line).split(b" ")
        if len(parts) != 3:
            return 400
        try:
            method = parts[0].decode()
            target = parts[1].decode()
            version = parts[2].decode()
        except Exception:
            return 400
        if not method or any(ch not in _TOKEN for ch in method):
            return 400
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            return 400 if not version.startswith("HTTP/") else 501
        if target.startswith("http://"):
            # absolute form (a proxy's): keep the path
            k = target.find("/", 7)
            target = "/" if k < 0 else target[k:]
        if not target.startswith("/"):
            return 400
        q = target.find("?")
        if q >= 0:
            self.query = target[q + 1:]
            target = target[:q]
        self.method = method
        self.path = target
        self.version = version
        self.state = _HEAD
        return MORE

    def _end_of_head(self):
        h = self.headers
        if "transfer-encoding" in h:
            return 501  # chunked request bodies: no client of this server sends them
        cl = h.get("content-length")
        if cl is not None:
            if not cl or any(ch not in "0123456789" for ch in cl) or len(cl) > 9:
                return 400
            self.need = int(cl)
            if self.need > self.max_body:
                return 413
        if self.need > 0:
            self.state = _BODY
            return MORE
        self.state = _DONE
        return DONE


def basic_credentials(value):
    """(user, password) from an Authorization header value, or None when it is missing or not
    well-formed HTTP Basic."""
    if not value:
        return None
    parts = value.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "basic":
        return None
    try:
        raw = binascii.a2b_base64(parts[1].strip()).decode()
    except Exception:
        return None
    c = raw.find(":")
    if c <= 0:
        return None
    return raw[:c], raw[c + 1:]


def unquote(s):
    """Percent-decoding of a form value ("+" is a space)."""
    if "%" not in s and "+" not in s:
        return s
    out = bytearray()
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == "+":
            out.append(32)
        elif ch == "%" and i + 2 < n and _hex2(s[i + 1:i + 3]) >= 0:
            out.append(_hex2(s[i + 1:i + 3]))
            i += 2
        else:
            out += ch.encode()
        i += 1
    try:
        return bytes(out).decode()
    except Exception:
        return ""


def _hex2(h):
    """The byte two hex digits give, or -1."""
    for ch in h:
        if ch not in "0123456789abcdefABCDEF":
            return -1
    return int(h, 16)


def parse_form(body):
    """{name: value} of an application/x-www-form-urlencoded body (bytes or str); the first
    of repeated names wins; a body that is not text gives {}."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode()
        except Exception:
            return {}
    out = {}
    for pair in body.split("&"):
        if not pair:
            continue
        e = pair.find("=")
        k = unquote(pair if e < 0 else pair[:e])
        v = "" if e < 0 else pair[e + 1:]
        if k not in out:
            out[k] = unquote(v)
    return out
