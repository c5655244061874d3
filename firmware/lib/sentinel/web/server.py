"""A small asyncio HTTP/1.0-1.1 server for the status page and the metrics.

Why not microdot (PyPI, the usual MicroPython web framework): it is a general framework (routing
with URL patterns, sessions, cookies, streaming, WebSocket hooks) whose core alone stays on the
heap at about 30 KB when loaded from an .mpy file on the 64-bit unix port (`microdot` 2.7.0,
`mpy-cross -O3`, gc.mem_alloc() around the import), and would still need the bounds below
around it. This package keeps 18 KB resident the same way (server, parser, routes), and loads
the page's or the metrics' module (9-10 KB) only while it answers a request (figures from
ROMFS: benchmarks/README.md, the heap section).

One request per connection (Connection: close; responses end with the connection, so pages are
streamed as they are rendered, never held whole in RAM). Bounds, all from the config's `http`
section or the parser's defaults:
  * at most max_conns connections: a newcomer beyond that sheds the connection that has waited
    longest for its request to arrive (a slowloris cannot hold every place), else is answered
    503 and closed;
  * the whole request (line, headers, body) must arrive within timeout_ms, and the whole answer
    be taken within as long again: a client that stops reading is dropped;
  * one handler runs at a time (a lock, shared with the alerts outbox's sends): a response's
    working set is on the heap once, and never beside an alert being sent.
  * the request's size: sentinel.web.http.RequestParser (imported per request).
Credentials (HTTP Basic) are asked only by routes that change state (the check is
sentinel.web.drill.login, imported for such a request); failures are delayed per
address by the NUT server's LoginLimiter (one budget for a guesser, whichever door it knocks at).

Routes come as a table of (path, method, handler, right): handler is fn(site, request,
response, who) returning an awaitable (an async fn, or one returning a response's coroutine) with who = (address, user or None), request the RequestParser holding the
request when the route needs a login (right is not None), else None; right is what a login must hold (None: no
login), checked with site.allowed(user, password, right) -> None (wrong credentials), False or
True.
"""
import asyncio
import sys

from sentinel.nut.server import _close, peer_addr

_MORE = 0  # sentinel.web.http's MORE and DONE
_DONE = 1
_READ = 256     # bytes asked of the socket per read
_FLUSH = 512    # a response is written in pieces of about this size
_MAX = 0x3FFFFFFF
_EMPTY = memoryview(b"")  # the final flush's piece


# "code phrase" lines: one string, not a dict of 15 entries (this module is on the heap while
# the server runs, and a dict and its strings cost heap even from ROMFS)
REASONS = """
200 OK
303 See Other
400 Bad Request
401 Unauthorized
403 Forbidden
404 Not Found
405 Method Not Allowed
408 Request Timeout
409 Conflict
413 Content Too Large
414 URI Too Long
431 Request Header Fields Too Large
500 Internal Server Error
501 Not Implemented
503 Service Unavailable
"""


def reason(code):
    """The reason phrase of HTTP status `code` ("Error" for one not listed)."""
    i = REASONS.find("\n%d " % code)
    return "Error" if i < 0 else REASONS[i + 5:REASONS.find("\n", i + 1)]


def response_head(code, ctype=None, extra=()):
    """The status line and headers of a response that ends when the connection closes (no
    Content-Length: bodies are streamed as they are rendered)."""
    h = "HTTP/1.1 %d %s\r\n" % (code, reason(code))
    if ctype:
        h += "Content-Type: %s\r\n" % ctype
    for k, v in extra:
        h += "%s: %s\r\n" % (k, v)
    return h + "Cache-Control: no-store\r\nConnection: close\r\n\r\n"


def drop(name):
    """Forget sentinel.web.<name>, imported for one request: the module table and the package
    both hold it. A request still using it keeps its own reference; the next one imports it
    afresh."""
    sys.modules.pop("sentinel.web." + name, None)
    pkg = sys.modules.get("sentinel.web")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)


class Response:
    """One response on `writer`: the head, then the body in pieces; all of it must be taken
    within timeout_ms (ms clock `now_ms`), or asyncio.TimeoutError."""

    def __init__(self, writer, timeout_ms, now_ms):
        self.w = writer
        self.now_ms = now_ms
        self.deadline = now_ms() + timeout_ms
        self.code = None

    async def send(self, code, ctype, body, extra=()):
        """body: a str, or an iterable of str or bytes (rendered while the previous pieces are
        sent). The pieces are copied into one buffer of _FLUSH bytes, written whenever it is
        full: no piece is joined to another or kept, and a long one is copied a slice at a
        time from its own bytes (_utf8: no encoded copy), so a response holds one buffer's
        worth of heap however long it is."""
        self.code = code
        mv = memoryview(bytearray(_FLUSH))
        n = await self._put(mv, 0, response_head(code, ctype, extra))
        for piece in ((body,) if isinstance(body, str) else body):
            n = await self._put(mv, n, piece)
        await self._put(mv, n, None)

    async def _put(self, mv, n, piece):
        """Copy piece into the buffer after its first n bytes, writing the buffer out when
        full (piece None: write out what it holds); the bytes now in it. The writes happen in
        this frame, not in a coroutine of their own (one frame less on the heap per request)."""
        last = piece is None
        src = _EMPTY if piece is None else (
            _utf8(piece) if isinstance(piece, str) else memoryview(piece))
        piece = None
        k = len(src)
        i = 0
        while True:
            m = k - i if k - i < _FLUSH else _FLUSH
            if n and (last or n + m > _FLUSH):
                # the stream copies what the socket did not take at once: the buffer may be
                # reused
                w = self.w
                w.write(mv[:n])
                n = 0
                left = self.deadline - self.now_ms()
                if left <= 0:
                    raise asyncio.TimeoutError()
                if getattr(w, "out_buf", 1):
                    # the socket did not take it all (a slow reader): wait, within the deadline
                    await asyncio.wait_for_ms(w.drain(), left)
                else:
                    # MicroPython's stream wrote it at once: drain only yields, and a wait_for
                    # around it would cost a task, a timer and their frames (device heap)
                    await w.drain()
            if i >= k:
                return n
            mv[n:n + m] = src if m == k else src[i:i + m]
            n += m
            i += m


def _utf8(s):
    """The UTF-8 bytes of str s: on MicroPython the str's own buffer (a view, no copy); on
    CPython, encoded."""
    try:
        return memoryview(s)  # pyright: ignore[reportArgumentType]
    except TypeError:
        return memoryview(s.encode())


class _Conn:
    def __init__(self, task, now):
        self.task = task
        self.t0 = now
        self.reading = True   # the request has not arrived in full yet


class WebServer:
    """site: the handlers' object (its allowed() checks logins; `server` is set to this);
    routes: the route table; cfg_http: the config's `http` section; limiter: a
    nut.auth.LoginLimiter; now_ms: the ms clock; lock: the asyncio.Lock a handler holds while it
    runs, shared with the alerts outbox (None: one of its own).
    stats: requests (answered by a route), bad (malformed or over a bound), timeouts, shed,
    refused, auth_failed, errors (a handler failed); small ints, capped."""

    def __init__(self, site, routes, cfg_http, limiter, now_ms, lock=None):
        self.site = site
        site.server = self
        self.routes = routes
        self.max_conns = cfg_http["max_conns"]
        self.timeout_ms = cfg_http["timeout_ms"]
        self.limiter = limiter
        self.now_ms = now_ms
        self.conns = []
        self._busy = lock or asyncio.Lock()
        self.stats = {"requests": 0, "bad": 0, "timeouts": 0, "shed": 0, "refused": 0,
                      "auth_failed": 0, "errors": 0}
        self._srv = None

    def _count(self, k):
        if self.stats[k] < _MAX:
            self.stats[k] += 1

    async def start(self, host, port, backlog=4):
        self._srv = await asyncio.start_server(self._client, host, port, backlog)

    def close(self):
        if self._srv is not None:
            self._srv.close()
            self._srv = None
        for c in list(self.conns):
            c.task.cancel()

    def route(self, path, method):
        """(the route, 200) or (None, HTTP status 404 or 405)."""
        found = False
        for r in self.routes:
            if r[0] == path:
                if r[1] == method:
                    return r, 200
                found = True
        return None, 405 if found else 404

    def _make_room(self):
        """At capacity: cancel the connection that has waited longest for its request. False
        when every connection is past reading (the newcomer is refused instead)."""
        victim = None
        for c in self.conns:
            if c.reading and (victim is None or c.t0 < victim.t0):
                victim = c
        if victim is None:
            return False
        self.conns.remove(victim)
        victim.task.cancel()
        self._count("shed")
        return True

    async def _client(self, reader, writer):
        if len(self.conns) >= self.max_conns and not self._make_room():
            self._count("refused")
            try:
                writer.write(response_head(503, "text/plain").encode() + b"busy\n")
            except Exception:
                pass
            _close(writer)
            return
        c = _Conn(asyncio.current_task(), self.now_ms())
        self.conns.append(c)
        try:
            job = await self._serve(c, reader, writer)
            if job is not None:
                # the request's reading frame is gone: the handler runs from a small one
                await self._answer(job)
        except asyncio.TimeoutError:
            self._count("timeouts")
        except asyncio.CancelledError:
            pass  # shed, or the server is closing
        except Exception:
            pass  # the peer reset the connection: nothing to answer
        drop("http")
        if c in self.conns:
            self.conns.remove(c)
        _close(writer)

    async def _serve(self, c, reader, writer):
        """Read the request and answer what needs no handler; (route, request or None,
        response, who) for the handler to answer (_answer), else None."""
        # the parser's module is imported for the request and dropped once it is read (for a
        # route that needs a login or a body, once it is answered): it is not on the heap
        # while a page or a scrape is rendered, nor between requests
        from sentinel.web import http as H
        p = H.RequestParser()
        del H
        deadline = self.now_ms() + self.timeout_ms
        r = _MORE
        while r == _MORE:
            left = deadline - self.now_ms()
            if left <= 0:
                raise asyncio.TimeoutError()
            data = await asyncio.wait_for_ms(reader.read(_READ), left)
            if not data:
                return  # closed before a whole request: nothing to answer
            r = p.feed(data)
        data = None  # the frame outlives the read: let go of its bytes while answering
        c.reading = False
        resp = Response(writer, self.timeout_ms, self.now_ms)
        if r != _DONE:
            self._count("bad")
            await resp.send(r, "text/plain", reason(r) + "\n")
            return
        route, err = self.route(p.path, p.method)
        if route is None:
            extra = ()
            if err == 405:
                extra = (("Allow", ", ".join(x[1] for x in self.routes if x[0] == p.path)),)
            await resp.send(err, "text/plain", reason(err) + "\n", extra)
            return
        addr = peer_addr(writer.get_extra_info("peername"))[0]
        who = (addr, None)
        if route[3] is None:
            p = None  # nothing of the request is used from here on
            drop("http")
        else:
            # the login's code is the drill module's (the one route that asks for a login):
            # imported for it, not resident (device heap)
            from sentinel.web import drill
            try:
                who = await drill.login(self, addr, p, route[3], resp)
            finally:
                del drill
                drop("drill")
                drop("fmt")
            if who is None:
                return
        self._count("requests")
        return route, p, resp, who

    async def _answer(self, job):
        route, p, resp, who = job
        job = None
        # one handler at a time, and never beside an alert send (the lock is the outbox's too):
        # what a response holds while it is rendered (the status, the page's module, the
        # records) is paid once on the heap, not once per connection nor on top of a send's;
        # a slow reader holds the others back at most timeout_ms, a send at most its
        # transport's timeout_ms. The answer's own deadline starts once the lock is held.
        async with self._busy:
            resp.deadline = self.now_ms() + self.timeout_ms
            try:
                await route[2](self.site, p, resp, who)
            except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
                raise
            except Exception:
                # a handler's bug: counted, answered 500 when nothing was sent yet
                self._count("errors")
                if resp.code is None:
                    await resp.send(500, "text/plain", "internal error\n")
