"""What the sentinel's web server serves: the route table and its handlers, and who may change
state.

Reads only what exists: the console's status (Ops.status()), the journal's last records, the
config's NUT users. The one state change is the drill, requested exactly as the console and
NUT's `sentinel.drill.start/stop` instant commands request it: a command in the control loop's
queue, refused where the state machine would refuse it.

Who may: a NUT user (nut.users) whose password matches, with the `primary` role (a primary may
already raise FSD, which a drill rehearses) or the instant-command right to the drill
(`actions` holding INSTCMD, or `instcmds` naming sentinel.drill.start, sentinel.drill.stop or
ALL). A `secondary` user is only what a server's upsmon needs, so it may not.
"""
import sys

from sentinel.nut.auth import check_password

HTML = "text/html; charset=utf-8"
# compared against when the user name is unknown, so that a wrong name costs the same time as a
# wrong password (the salt and digest are arbitrary)
_NOBODY = "sha256$nobody$" + "0" * 64
_DRILL_CMDS = ("ALL", "sentinel.drill.start", "sentinel.drill.stop")


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
        u = None
        for x in self.rt.cfg["nut"]["users"]:
            if x["name"] == user:
                u = x
        if not check_password(_NOBODY if u is None else u["password"], password) or u is None:
            return None
        if right != "drill":
            return False
        if u["role"] == "primary" or "INSTCMD" in u["actions"]:
            return True
        for c in u.get("instcmds") or ():
            if c in _DRILL_CMDS:
                return True
        return False

    # -- handlers: async fn(self, req, resp, who); who = (addr, user), user None without login.
    # The page and the metrics modules are imported for the request and dropped after it, as
    # the console's rare ops are: saves device heap between requests (a board without ROMFS
    # holds a module's bytecode in RAM; from ROMFS, still its function objects and strings).
    async def index(self, req, resp, who):
        await resp.send(200, HTML, self._page(self.ops.status(), self.records()))

    def _page(self, st, records):
        # the page's two halves, each module imported when its turn comes and dropped before
        # the next: half the page's code on the heap at a time (page.py says why)
        try:
            for name in ("page", "page2"):
                __import__("sentinel.web." + name)
                mod = sys.modules["sentinel.web." + name]
                try:
                    for piece in mod.render(st, self.name, self.refresh_s, records):
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
                self.ops.status(brief=True), None if srv is None else srv.stats))
        finally:
            del metrics
            _drop("metrics")

    async def drill(self, req, resp, who):
        from sentinel.web.http import parse_form  # req (its parser) keeps the module loaded
        action = parse_form(req.body).get("action", "start")
        if action not in ("start", "stop"):
            await self._message(resp, 400, "action must be start or stop")
            return
        cmd = "drill" if action == "start" else "drill_stop"
        sm = self.ops.sm
        if sm.allowed(cmd):
            self.ops.commands.append(cmd)
            code = 200
            text = "Drill %s requested by %s." % ("start" if cmd == "drill" else "stop", who[1])
        else:
            code = 409
            text = ("A drill cannot start now (state %s%s)." % (
                sm.state, ", a drill already runs" if sm.drill else "") if cmd == "drill"
                else "No drill is running.")
        self.rt.log("web_drill", {"action": action, "user": who[1], "addr": who[0],
                                  "result": "ok" if code == 200 else "refused"}, critical=True)
        await self._message(resp, code, text)

    async def _message(self, resp, code, text):
        from sentinel.web import page
        try:
            await resp.send(code, HTML, page.message(self.name, code, text))
        finally:
            del page
            _drop("page")
            _drop("fmt")

    def records(self):
        """The last `recent` journal records, oldest first (what was flushed and what is still
        batched: a read of one segment, the same as a console log_read)."""
        j = self.rt.journal
        last = j.last_seq()
        if not self.recent or last is None:
            return []
        from sentinel import journalread  # loaded with the first log read, then kept
        return journalread.read(j, max(0, last - self.recent + 1), self.recent)


def _drop(name):
    """Forget sentinel.web.<name>, imported for one request: the module table and the package
    both hold it (runtime.drop_modules does this for sentinel.<name>). A request still using
    it keeps its own reference; the next one imports it afresh."""
    sys.modules.pop("sentinel.web." + name, None)
    pkg = sys.modules.get("sentinel.web")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)


# The route table, in the style of upsd's netcmds.h: path, method, handler, and the right a
# login must hold (None: no login).
ROUTES = (
    ("/", "GET", Site.index, None),
    ("/metrics", "GET", Site.metrics, None),
    ("/drill", "POST", Site.drill, "drill"),
)
