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
  * one handler runs at a time (a lock): a response's working set is on the heap once.
  * the request's size: sentinel.web.http.RequestParser.
Credentials (HTTP Basic) are asked only by routes that change state; failures are delayed per
address by the NUT server's LoginLimiter (one budget for a guesser, whichever door it knocks at).

Routes come as a table of (path, method, handler, right): handler is async fn(site, request,
response, who) with who = (address, user or None); right is what a login must hold (None: no
login), checked with site.allowed(user, password, right) -> None (wrong credentials), False or
True.
"""
import asyncio

from sentinel.nut.server import _close, peer_addr
from sentinel.web import http as H

_READ = 256     # bytes asked of the socket per read
_FLUSH = 512    # a response is written in pieces of about this size
_MAX = 0x3FFFFFFF


class Response:
    """One response on `writer`: the head, then the body in pieces; all of it must be taken
    within timeout_ms (ms clock `now_ms`), or asyncio.TimeoutError."""

    def __init__(self, writer, timeout_ms, now_ms):
        self.w = writer
        self.now_ms = now_ms
        self.deadline = now_ms() + timeout_ms
        self.code = None

    async def send(self, code, ctype, body, extra=()):
        """body: a str, or an iterable of str (rendered while the previous pieces are sent)."""
        self.code = code
        parts = [H.response_head(code, ctype, extra)]
        n = len(parts[0])
        for piece in ((body,) if isinstance(body, str) else body):
            parts.append(piece)
            n += len(piece)
            if n >= _FLUSH:
                await self._write("".join(parts))
                parts = []
                n = 0
        if parts:
            await self._write("".join(parts))

    async def _write(self, s):
        self.w.write(s.encode())
        left = self.deadline - self.now_ms()
        if left <= 0:
            raise asyncio.TimeoutError()
        await asyncio.wait_for_ms(self.w.drain(), left)


class _Conn:
    def __init__(self, task, now):
        self.task = task
        self.t0 = now
        self.reading = True   # the request has not arrived in full yet


class WebServer:
    """site: the handlers' object (its allowed() checks logins; `server` is set to this);
    routes: the route table; cfg_http: the config's `http` section; limiter: a
    nut.auth.LoginLimiter; now_ms: the ms clock.
    stats: requests (answered by a route), bad (malformed or over a bound), timeouts, shed,
    refused, auth_failed, errors (a handler failed); small ints, capped."""

    def __init__(self, site, routes, cfg_http, limiter, now_ms):
        self.site = site
        site.server = self
        self.routes = routes
        self.max_conns = cfg_http["max_conns"]
        self.timeout_ms = cfg_http["timeout_ms"]
        self.limiter = limiter
        self.now_ms = now_ms
        self.conns = []
        self._busy = asyncio.Lock()
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
                writer.write(H.response_head(503, "text/plain").encode() + b"busy\n")
            except Exception:
                pass
            _close(writer)
            return
        c = _Conn(asyncio.current_task(), self.now_ms())
        self.conns.append(c)
        try:
            await self._serve(c, reader, writer)
        except asyncio.TimeoutError:
            self._count("timeouts")
        except asyncio.CancelledError:
            pass  # shed, or the server is closing
        except Exception:
            pass  # the peer reset the connection: nothing to answer
        if c in self.conns:
            self.conns.remove(c)
        _close(writer)

    async def _serve(self, c, reader, writer):
        p = H.RequestParser()
        deadline = self.now_ms() + self.timeout_ms
        r = H.MORE
        while r == H.MORE:
            left = deadline - self.now_ms()
            if left <= 0:
                raise asyncio.TimeoutError()
            data = await asyncio.wait_for_ms(reader.read(_READ), left)
            if not data:
                return  # closed before a whole request: nothing to answer
            r = p.feed(data)
        c.reading = False
        resp = Response(writer, self.timeout_ms, self.now_ms)
        if r != H.DONE:
            self._count("bad")
            await resp.send(r, "text/plain", H.REASONS.get(r, "Error") + "\n")
            return
        route, err = self.route(p.path, p.method)
        if route is None:
            extra = ()
            if err == 405:
                extra = (("Allow", ", ".join(x[1] for x in self.routes if x[0] == p.path)),)
            await resp.send(err, "text/plain", H.REASONS[err] + "\n", extra)
            return
        addr = peer_addr(writer.get_extra_info("peername"))[0]
        who = (addr, None)
        if route[3] is not None:
            who = await self._login(addr, p, route[3], resp)
            if who is None:
                return
        self._count("requests")
        # one handler at a time: what a response holds while it is rendered (the status, the
        # page's module, the records) is paid once on the heap, not once per connection; a
        # slow reader holds the others back at most timeout_ms
        async with self._busy:
            try:
                await route[2](self.site, p, resp, who)
            except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
                raise
            except Exception:
                # a handler's bug: counted, answered 500 when nothing was sent yet
                self._count("errors")
                if resp.code is None:
                    await resp.send(500, "text/plain", "internal error\n")

    async def _login(self, addr, p, right, resp):
        """(addr, user) when the request's credentials hold `right`; else answers 401 or 403
        and returns None."""
        creds = H.basic_credentials(p.headers.get("authorization"))
        user = None
        ok = None
        if creds is not None:
            user = creds[0]
            d = self.limiter.delay_ms(addr, self.now_ms())
            if d:
                await asyncio.sleep_ms(d)
            ok = self.site.allowed(user, creds[1], right)
            if ok is None:
                self.limiter.failed(addr, self.now_ms())
                self._count("auth_failed")
            else:
                self.limiter.succeeded(addr, self.now_ms())
        if ok is None:
            await resp.send(401, "text/plain", "login needed: a NUT user of this sentinel\n",
                            (("WWW-Authenticate", 'Basic realm="Power Sentinel", charset="UTF-8"'),))
            return None
        if not ok:
            await resp.send(403, "text/plain", "this user may not do that\n")
            return None
        return addr, user
