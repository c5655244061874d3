"""What the sentinel's web server serves: the route table and its handlers, and who may change
state.

Reads only what exists: the console's status, a part at a time (Live over Ops.part()), the
journal's last records, the config's NUT users. The one state change is the drill; its handler
and who may ask for it are sentinel.web.drill, imported per request.
"""
import sys

from sentinel.runtime import drop_modules
from sentinel.web.server import drop as _drop

HTML = "text/html; charset=utf-8"
PAGES = ("page", "page1", "page2")  # the status page's parts, in order (sentinel.web.<name>)


class Site:
    """ops: the console's Ops (status(), sm, commands, rt); cfg_http: the config's `http`
    section. The WebServer sets `server` (its counters appear in /metrics)."""

    def __init__(self, ops, cfg_http):
        self.ops = ops
        self.rt = ops.rt
        self.refresh_s = cfg_http["refresh_s"]
        self.recent = cfg_http["recent"]
        self.name = self.rt.cfg["site"]["name"]
        self.server = None

    # -- access ------------------------------------------------------------------------------
    def allowed(self, user, password, right):
        """None when the credentials are wrong; else whether `user` holds `right` ("drill")."""
        from sentinel.web import drill
        try:
            return drill.allowed(self.rt.cfg["nut"]["users"], user, password, right)
        finally:
            del drill
            _drop("drill")
            _drop("fmt")

    # -- handlers: fn(self, req, resp, who) returning an awaitable; who = (addr, user), user
    # None without login.
    # The page and the metrics modules are imported for the request and dropped after it, as
    # the console's rare ops are: saves device heap between requests (a board without ROMFS
    # holds a module's bytecode in RAM; from ROMFS, still its function objects and strings).
    def index(self, req, resp, who):
        # the response's coroutine itself: awaited by the server, no frame of its own
        return resp.send(200, HTML, self._page(Live(self.ops, False)))

    def _page(self, st):
        # the page's parts, each module imported when its turn comes and dropped before the
        # next: a third of the page's code on the heap at a time (page.py says why); the
        # records are read for the last part, which lists them
        try:
            for name in PAGES:
                __import__("sentinel.web." + name)
                mod = sys.modules["sentinel.web." + name]
                try:
                    for piece in mod.render(st, self.name, self.refresh_s,
                                            self.records if name == "page2" else ()):
                        yield piece
                finally:
                    del mod
                    _drop(name)
        finally:
            _drop("fmt")

    async def metrics(self, req, resp, who):
        from sentinel.web import metrics
        srv = self.server
        try:
            await resp.send(200, metrics.CONTENT_TYPE, metrics.render(
                Live(self.ops, True), None if srv is None else srv.stats))
        finally:
            del metrics
            _drop("metrics")

    async def drill(self, req, resp, who):
        # a drill request is rare: its code (the form, the answer page) is imported for it
        # and dropped after it (device heap)
        from sentinel.web import drill
        try:
            await drill.drill(self, req, resp, who)
        finally:
            del drill
            _drop("drill")
            _drop("page")
            _drop("fmt")

    def records(self):
        """The last `recent` journal records, oldest first (what was flushed and what is still
        batched: a read of one segment, the same as a console log_read)."""
        j = self.rt.journal
        last = j.last_seq()
        if not self.recent or last is None:
            return []
        from sentinel import journalread
        try:
            return journalread.read(j, max(0, last - self.recent + 1), self.recent)
        finally:
            # read a page at a time: not kept on the heap between pages
            del journalread
            drop_modules(("journalread",))


class Live:
    """The status as the page and the metrics read it: st[k] builds part k now (Ops.part), so
    a request holds the parts its code is using, never the whole status dict (device heap:
    the whole dict is 2.5-4 KB). brief: the alerts part is the queue's depth only."""

    def __init__(self, ops, brief):
        self.ops = ops
        self.brief = brief

    def __getitem__(self, k):
        return self.ops.part(k, self.brief)

    def get(self, k, default=None):
        v = self.ops.part(k, self.brief)
        return default if v is None else v


# The route table, in the style of upsd's netcmds.h: path, method, handler, and the right a
# login must hold (None: no login).
ROUTES = (
    ("/", "GET", Site.index, None),
    ("/metrics", "GET", Site.metrics, None),
    ("/drill", "POST", Site.drill, "drill"),
)
