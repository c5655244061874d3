"""The NUT client harness for test_nut_clients.py: the sentinel on one virtual board and a real
upsd + dummy-ups serving the same data, the clients people run pointed at each, their results
normalised into comparable items, and the accepted differences read from docs/nut-clients.md.

A result is a dict of items ("var apps battery.charge" -> "100", "exit" -> "0", ...). Two
results differ by the items whose values differ ("ITEM") or that only one side has
("ITEM (only upsd)", "ITEM (only sentinel)"). An accepted difference is a (client, item) pair
of shell patterns in the doc's table, each with its reason.
"""
from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from powersentinel import nutreal  # noqa: E402
from powersentinel.nutreal import NutClient, NutUser, RealUpsd, UpsSpec  # noqa: E402
from aionut import AIONUTClient, NUTError  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # nut2 imports telnetlib
    import nut2  # noqa: E402

DOC = os.path.join(REPO, "docs", "nut-clients.md")
NPM_DIR = os.path.join(REPO, "build", "npm")
NODE_NUT = os.path.join(NPM_DIR, "node_modules", "node-nut")
CHECK_UPS = "/usr/lib/nagios/plugins/check_ups"
COLLECTD = "/usr/sbin/collectd"
COLLECTD_PLUGINS = "/usr/lib/collectd"
COLLECTD_TYPES = "/usr/share/collectd/types.db"
TIERS = ("apps", "databases")
# the virtual board's mains; the site config must match it from the first boot, or the board
# starts on battery (the template flash boots with the default config)
NOMINAL_V, NOMINAL_HZ = 230.0, 50
ADMIN, MON = "admin", "monuser"


def password(user: str) -> str:
    return rc.USERS[user][0]


def real_users() -> list[NutUser]:
    """rc.USERS as upsd.users: the same names, passwords, roles and rights."""
    out = []
    for name, (pw, role, acts) in rc.USERS.items():
        out.append(NutUser(name, pw, upsmon=role, actions=tuple(a for a in acts if a != "INSTCMD"),
                           instcmds=("ALL",) if "INSTCMD" in acts else ()))
    return out


def site_config() -> dict:
    tiers = [{"name": t, "max_wait_s": 60, "delay_s": 0, "hosts": []} for t in TIERS]
    return rc.make_config(**{"mains.nominal_v": NOMINAL_V, "mains.nominal_hz": NOMINAL_HZ,
                             "ups.link": "q1", "tiers": tiers})


def missing_tools() -> list[str]:
    """The installs this harness needs that are not there (the Makefile's test target makes
    them)."""
    need = {"upsc": shutil.which("upsc"), "upscmd": shutil.which("upscmd"),
            "upsrw": shutil.which("upsrw"), "upslog": shutil.which("upslog"),
            "check_ups": os.access(CHECK_UPS, os.X_OK) or None,
            "collectd": os.access(COLLECTD, os.X_OK) or None,
            "collectd nut plugin": os.path.exists(os.path.join(COLLECTD_PLUGINS, "nut.so")) or None,
            "node": shutil.which("node"), "node-nut": os.path.isdir(NODE_NUT) or None,
            "upsd/dummy-ups": nutreal.available() or None}
    return [k for k, v in need.items() if not v]


# -- the two servers --------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    side: str  # "sentinel" or "upsd"
    host: str
    port: int

    def ups(self, name: str) -> str:
        return "%s@%s:%d" % (name, self.host, self.port)


def _unquote(v: str) -> str:
    return re.sub(r'\\(.)', r"\1", v[1:-1])


def snapshot(host: str, port: int) -> list[UpsSpec]:
    """The UPSes a server serves, with their descriptions and every variable (LIST UPS,
    LIST VAR), as specs for dummy-ups."""
    specs = []
    with NutClient(host, port) as c:
        for line in c.cmd("LIST UPS")[1:-1]:
            _, name, desc = line.split(" ", 2)
            rows = c.cmd("LIST VAR " + name)[1:-1]
            specs.append(UpsSpec(name, [(r.split(" ", 3)[2], _unquote(r.split(" ", 3)[3]))
                                        for r in rows], _unquote(desc)))
    return specs


class Repeater(RealUpsd):
    """A real upsd whose dummy-ups run in repeater mode, one per UPS of `source`
    (`port = ups@host:port`)."""

    def __init__(self, source: Target, names, **kw):
        super().__init__([UpsSpec(n, {}) for n in names], real_users(), **kw)
        self.source = source

    def _write(self) -> None:
        super()._write()  # users, upsd.conf; its (empty) .dev files are not used
        self.priv.write_conf("ups.conf", "".join(
            "[%s]\n  driver = dummy-ups\n  port = %s\n" % (u.name, self.source.ups(u.name))
            for u in self.upses))


class Site:
    """One virtual board (the sentinel) and one real upsd holding a copy of its data, plus
    repeaters made on demand. Results are cached per client, so the comparison and the tests
    that look further into one client's result share one run."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.board = None
        self.upsd = None
        self.repeaters: list[RealUpsd] = []
        self.results: dict[str, tuple[dict, dict]] = {}

    def start(self) -> "Site":
        cfg = site_config()
        self.board = rc.Board(os.path.join(self.workdir, "board"), cfg)
        self.board.wait_serving(20)
        # copy a settled reading: ONLINE, and the UPS's own variables once the Q1 link is up
        rc.virtual.wait_for(lambda: self.board.nut_get("sentinel.state").endswith('"ONLINE"')
                            and self.board.nut_get("ups.load").startswith("VAR "),
                            20, "the sentinel to settle ONLINE with its UPS link up")
        self.upsd = RealUpsd(snapshot(*self.board.nut), real_users()).start()
        return self

    @property
    def sentinel(self) -> Target:
        return Target("sentinel", self.board.nut[0], self.board.nut[1])

    @property
    def real(self) -> Target:
        return Target("upsd", self.upsd.host, self.upsd.port)

    def targets(self) -> tuple[Target, Target]:
        return self.real, self.sentinel

    def repeater(self, source: Target) -> Target:
        r = Repeater(source, TIERS).start()
        self.repeaters.append(r)
        return Target(source.side, r.host, r.port)

    def run(self, client: str, runner) -> tuple[dict, dict]:
        """(upsd's result, the sentinel's result) of runner(target), run once per client."""
        if client not in self.results:
            self.results[client] = (runner(self, self.real), runner(self, self.sentinel))
        return self.results[client]

    def stop(self) -> None:
        for r in self.repeaters:
            r.stop()
        if self.upsd:
            self.upsd.stop()
        if self.board:
            self.board.stop()


# -- differences -----------------------------------------------------------------------------
def differences(real: dict, ours: dict) -> list[str]:
    out = []
    for k in sorted(set(real) | set(ours)):
        if k not in ours:
            out.append("%s (only upsd)" % k)
        elif k not in real:
            out.append("%s (only sentinel)" % k)
        elif real[k] != ours[k]:
            out.append(k)
    return out


def accepted_differences(path: str = DOC) -> list[tuple[str, str, str]]:
    """(client pattern, item pattern, reason) rows of the doc's accepted-differences table:
    the first table after the heading "Accepted differences"; items in backquotes."""
    rows = []
    with open(path) as f:
        text = f.read()
    m = re.search(r"^#+ Accepted differences.*?$(.*?)(?=^#)", text + "\n#", re.M | re.S)
    if not m:
        raise ValueError("%s has no 'Accepted differences' section" % path)
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.lstrip().startswith("|") or set(cells[0]) <= set("-: "):
            continue
        client, item, reason = cells
        if client.lower() == "client":
            continue
        if not (item.startswith("`") and item.endswith("`")) or not reason:
            raise ValueError("%s: accepted difference %r needs an item in `backquotes` and a "
                             "reason" % (path, line))
        rows.append((client.strip("`"), item[1:-1], reason))
    return rows


def matches(client: str, diff: str, rows) -> bool:
    return any(fnmatch.fnmatchcase(client, c) and fnmatch.fnmatchcase(diff, i)
               for c, i, _ in rows)


# -- running things with deadlines ------------------------------------------------------------
def run(args, timeout=15.0, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def _quiet(stderr: str) -> str:
    # libupsclient built with NSS says this on every connection, to upsd and us alike
    return "\n".join(l for l in stderr.splitlines()
                     if l.strip() and "Init SSL without certificate database" not in l)


def read_lines(proc: subprocess.Popen, n: int, timeout: float) -> list[str]:
    """Up to n whole stdout lines of a running process, within timeout (it keeps running)."""
    out, buf = [], b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(proc.stdout.fileno(), 1)  # byte by byte: no line is read past
            if not chunk:
                break
            buf += chunk
            if chunk == b"\n":
                out.append(buf[:-1].decode("utf-8", "replace"))
                buf = b""
    finally:
        sel.close()
    return out


def lines_of(proc: subprocess.Popen, n: int, timeout: float) -> list[str]:
    """The first n stdout lines of a running process, within timeout; the process is stopped."""
    try:
        return read_lines(proc, n, timeout)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def python_json(code: str, timeout: float = 30.0):
    """Run `code` in a fresh interpreter (clients that can spin forever on a closed socket
    run there, under a deadline); it prints one JSON value as its last line."""
    r = run([sys.executable, "-c", code], timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("client script failed: %s" % r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def error_name(e: BaseException) -> str:
    """An exception as a client sees it: its class and the NUT error word, if any."""
    m = re.search(r"ERR [A-Z-]+", str(e))
    return "%s%s" % (type(e).__name__, " " + m.group(0) if m else "")


# -- the clients ------------------------------------------------------------------------------
def upsc(site: Site, t: Target) -> dict:
    out = {}
    r = run(["upsc", "-l", "%s:%d" % (t.host, t.port)])
    out["upsc -l exit"] = str(r.returncode)
    for line in r.stdout.splitlines():
        out["upsc -l " + line] = "listed"
    for ups in TIERS:
        r = run(["upsc", t.ups(ups)])
        out["upsc %s exit" % ups] = "%d %s" % (r.returncode, _quiet(r.stderr))
        for line in r.stdout.splitlines():
            k, _, v = line.partition(": ")
            out["var %s %s" % (ups, k)] = v
    return out


def upscmd_list(site: Site, t: Target) -> dict:
    out = {}
    for ups in TIERS:
        r = run(["upscmd", "-l", t.ups(ups)])
        out["upscmd -l %s exit" % ups] = "%d %s" % (r.returncode, _quiet(r.stderr))
        for line in r.stdout.splitlines()[2:]:
            name, _, desc = line.partition(" - ")
            out["cmd %s %s" % (ups, name or "<empty>")] = desc
    # a user without the right is refused before the command is looked at
    r = run(["upscmd", "-u", MON, "-p", password(MON), t.ups("apps"), "load.off"])
    out["upscmd as monuser exit"] = "%d %s" % (r.returncode, _quiet(r.stderr + r.stdout))
    return out


def upsrw_list(site: Site, t: Target) -> dict:
    out = {}
    for ups in TIERS:
        r = run(["upsrw", t.ups(ups)])
        out["upsrw %s exit" % ups] = "%d %s" % (r.returncode, _quiet(r.stderr))
        for block in r.stdout.split("\n\n"):
            lines = block.strip().splitlines()
            if lines and lines[0].startswith("["):
                out["rw %s %s" % (ups, lines[0].strip("[]") or "<empty>")] = " | ".join(lines[1:])
    return out


UPSLOG_VARS = ("battery.charge", "input.voltage", "ups.load", "ups.status", "ups.temperature",
               "input.frequency")  # upslog's default format, less the time


def upslog(site: Site, t: Target) -> dict:
    """Three lines of upslog's default variables, one item per variable."""
    out = {}
    fmt = " ".join("%%VAR %s%%" % v for v in UPSLOG_VARS)
    p = subprocess.Popen(["upslog", "-s", t.ups("apps"), "-l", "-", "-i", "1", "-f", fmt,
                          "-p", os.path.join(site.workdir, "upslog-%s" % t.side)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    # two banner lines (the second names the target), then one line per second
    lines = lines_of(p, 5, 15.0)
    out["upslog banner"] = lines[0] if lines else "none"
    for i, line in enumerate(lines[2:]):
        values = line.split(" ")
        if len(values) != len(UPSLOG_VARS):
            out["upslog line %d" % i] = line
            continue
        for var, value in zip(UPSLOG_VARS, values):
            out["upslog line %d %s" % (i, var)] = value
    return out


def check_ups(site: Site, t: Target) -> dict:
    out = {}
    for var in (None, "LINE", "BATTPCT", "LOADPCT"):
        args = [CHECK_UPS, "-H", t.host, "-p", str(t.port), "-u", "apps"]
        if var:
            args += ["-v", var, "-w", "1000", "-c", "2000"]
        r = run(args)
        out["check_ups %s" % (var or "status")] = "%d %s" % (r.returncode, r.stdout.strip())
    return out


def write_file(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


def fresh_dir(site: Site, client: str, t: Target) -> str:
    d = os.path.join(site.workdir, "%s-%s" % (client, t.side))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


class Collectd:
    """collectd in the foreground with the nut plugin reading every tier each second into the
    csv plugin."""

    def __init__(self, site: Site, t: Target):
        self.t = t
        self.dir = d = fresh_dir(site, "collectd", t)
        self.csv = os.path.join(d, "csv")
        conf = write_file(os.path.join(d, "collectd.conf"), (
            # one read thread: two nut plugin reads at once can crash collectd (SIGSEGV seen
            # in libupsclient's set-up, against upsd as well)
            'Hostname "h"\nFQDNLookup false\nInterval 1\nReadThreads 1\n'
            'BaseDir "%s"\nPIDFile "%s/pid"\n'
            'PluginDir "%s"\nTypesDB "%s"\nLoadPlugin nut\nLoadPlugin csv\n'
            '<Plugin nut>\n%s</Plugin>\n<Plugin csv>\n  DataDir "%s/csv"\n'
            '  StoreRates false\n</Plugin>\n' % (
                d, d, COLLECTD_PLUGINS, COLLECTD_TYPES,
                "".join('  UPS "%s"\n' % t.ups(u) for u in TIERS), d)))
        log = open(os.path.join(d, "log"), "wb")
        self.proc = subprocess.Popen([COLLECTD, "-f", "-C", conf], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()

    def files(self) -> set[str]:
        return {os.path.join(root, fn) for root, _, fns in os.walk(self.csv) for fn in fns}

    @staticmethod
    def rows(fn: str) -> list[str]:
        with open(fn) as f:
            return f.read().splitlines()[1:]

    def reads(self) -> int:
        """Reads written for every tier (rows of its battery charge), the fewest of them."""
        charge = [f for f in self.files() if "/percent-charge-" in f]
        return min(len(self.rows(f)) for f in charge) if len(charge) == len(TIERS) else 0

    def wait_reads(self, n: int, timeout: float) -> None:
        rc.virtual.wait_for(lambda: self.reads() >= n or self.proc.poll() is not None,
                            timeout, "collectd's read %d" % n)

    def log(self) -> list[str]:
        """What the nut plugin logged (a server that hangs up shows here), the port cut."""
        with open(os.path.join(self.dir, "log"), "rb") as f:
            text = f.read().decode("latin-1")
        return [line.replace(":%d" % self.t.port, "").replace(", %d)" % self.t.port, ")")
                for line in text.splitlines()
                if line.startswith("nut plugin:") or "read-function of plugin `nut" in line]

    def stop(self) -> None:
        stop(self.proc)


def collectd(site: Site, t: Target) -> dict:
    """collectd's nut plugin until its second read; the first read's values are compared
    (collectd -T may stop before its write threads have written everything)."""
    c = Collectd(site, t)
    try:
        c.wait_reads(2, 15)
    finally:
        c.stop()
    out = {"collectd exit": str(c.proc.returncode)}
    for line in c.log():
        out["collectd log " + line] = "logged"
    for fn in sorted(c.files()):
        plugin, name = fn.split(os.sep)[-2:]
        # files are named <type>-<date>: keep the type, and the first row without its epoch
        key = "collectd %s/%s" % (plugin, re.sub(r"-\d{4}-\d\d-\d\d$", "", name))
        first = c.rows(fn)[:1]
        out[key] = first[0].split(",", 1)[1] if first else "no row"
    return out


def aionut(site: Site, t: Target) -> dict:
    """As Home Assistant's nut integration: a persistent client with the user's credentials;
    list_ups (the alias), list_vars every update, list_commands for the services it offers,
    description; run_command refused to a user without the right, and for an unknown one."""

    async def go():
        out = {}
        c = AIONUTClient(t.host, t.port, ADMIN, password(ADMIN), timeout=5, persistent=True)
        mon = AIONUTClient(t.host, t.port, MON, password(MON), timeout=5, persistent=True)

        async def call(key, coro):
            try:
                v = await coro
                if isinstance(v, dict):
                    for k, x in v.items():
                        out["%s %s" % (key, k or "<empty>")] = x
                elif isinstance(v, set):
                    for k in v:
                        out["%s %s" % (key, k or "<empty>")] = "listed"
                else:
                    out[key] = v
            except NUTError as e:
                out[key] = error_name(e)
        try:
            await call("ups", c.list_ups())
            for ups in TIERS:
                await call("var %s" % ups, c.list_vars(ups))
                await call("cmd %s" % ups, c.list_commands(ups))
                await call("upsdesc %s" % ups, c.description(ups))
            await call("run load.off as monuser", mon.run_command("apps", "load.off"))
            await call("run no.such.cmd", c.run_command("apps", "no.such.cmd"))
        finally:
            c.shutdown()
            mon.shutdown()
        return out
    return asyncio.run(go())


_PYNUT = r"""
import json, sys
from PyNUTClient.PyNUT import PyNUTClient
host, port, user, pw, upses = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
out = {}
def d(b):
    return b.decode("latin-1") if isinstance(b, bytes) else str(b)
def call(key, fn, *a):
    try:
        v = fn(*a)
    except Exception as e:
        out[key] = type(e).__name__ + " " + str(e)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            x = " ".join(map(d, x)) if isinstance(x, list) else d(x)
            out["%s %s" % (key, d(k) or "<empty>")] = x
    else:
        out[key] = d(v).strip()
c = PyNUTClient(host=host, port=port, login=user, password=pw, timeout=5)
call("ups", c.GetUPSList)
for u in upses:
    call("var " + u, c.GetUPSVars, u)
    call("cmd " + u, c.GetUPSCommands, u)
    call("rw " + u, c.GetRWVars, u)
    call("available " + u, c.CheckUPSAvailable, u)
    call("clients " + u, c.ListClients, u)
call("ver", c.ver)
call("help", c.help)
print(json.dumps(out))
"""


def pynutclient(site: Site, t: Target) -> dict:
    argv = ["-", t.host, str(t.port), ADMIN, password(ADMIN)] + list(TIERS)
    return python_json("import sys\nsys.argv = %r\n%s" % (argv, _PYNUT))


def nut2_client(site: Site, t: Target) -> dict:
    out = {}

    def call(key, fn, *a):
        try:
            v = fn(*a)
        except Exception as e:  # the client's own parsing errors are results too
            out[key] = error_name(e)
            return
        if isinstance(v, dict):
            for k, x in v.items():
                out["%s %s" % (key, k or "<empty>")] = str(x)
        else:
            out[key] = str(v).strip()
    c = nut2.PyNUTClient(t.host, t.port, ADMIN, password(ADMIN), timeout=5)
    try:
        call("ups", c.list_ups)
        for ups in TIERS:
            call("var %s" % ups, c.list_vars, ups)
            call("cmd %s" % ups, c.list_commands, ups)
            call("rw %s" % ups, c.list_rw_vars, ups)
            call("upsdesc %s" % ups, c.description, ups)
            call("numlogins %s" % ups, c.num_logins, ups)
            for var in ("ups.status", "battery.charge", "sentinel.state"):
                call("get %s %s" % (ups, var), c.get_var, ups, var)
                call("desc %s %s" % (ups, var), c.var_description, ups, var)
                call("type %s %s" % (ups, var), c.var_type, ups, var)
            call("cmddesc %s load.off" % ups, c.command_description, ups, "load.off")
        call("clients", c.list_clients, "apps")
        call("ver", c.ver)
    finally:
        c.__exit__(None, None, None)
    return out


class GoNutClient:
    """The request sequence of the Go client go.nut (robbiet480/go.nut: nut.go and ups.go at
    commit 0715702), which Prometheus's nut_exporter uses, with its parsing and strictness:
    any ERR fails the whole scrape, and a reply line that does not split as it expects is an
    error too.

    NewClient: VER, NETVER. Authenticate: USERNAME, PASSWORD. GetUPSList: LIST UPS, then for
    each UPS (NewUPS): LIST CLIENT, LIST CMD (GET CMDDESC for each), GET UPSDESC,
    GET NUMLOGINS, LIST VAR (GET DESC and GET TYPE for each variable)."""

    def __init__(self, host, port, timeout=5.0):
        self.c = NutClient(host, port, timeout)
        self.sent = []
        self.version = self.send("VER")[0]
        self.protocol = self.send("NETVER")[0]

    def send(self, cmd: str) -> list[str]:
        words = cmd.split(" ")
        self.sent.append(" ".join(words[:2]) if words[0] in ("GET", "LIST") else words[0])
        self.c.send(cmd)
        if cmd.startswith("LIST "):
            lines = [self.c.readline()]
            # go.nut reads until the line "END <cmd>"; an ERR is its first line
            while not lines[0].startswith("ERR ") and lines[-1] != "END " + cmd:
                lines.append(self.c.readline())
        else:
            lines = [self.c.readline()]
        if lines[0].startswith("ERR "):
            raise RuntimeError("NUT error %s to %r" % (lines[0], cmd))
        return lines

    def authenticate(self, user, pw) -> bool:
        return self.send("USERNAME " + user)[0] == "OK" and self.send("PASSWORD " + pw)[0] == "OK"

    def ups_list(self) -> list[dict]:
        out = []
        for line in self.send("LIST UPS"):
            if line.startswith("UPS "):
                out.append(self.new_ups(line[4:].split('"')[0].rstrip(" ")))
        return out

    def new_ups(self, name: str) -> dict:
        u: dict = {"name": name}
        u["clients"] = [l[len("CLIENT %s " % name):]
                        for l in self.send("LIST CLIENT " + name)[1:-1]]
        u["commands"] = {}
        for line in self.send("LIST CMD " + name)[1:-1]:
            cmd = line[len("CMD %s " % name):]
            desc = self.send("GET CMDDESC %s %s" % (name, cmd))[0]
            u["commands"][cmd] = desc[len("CMDDESC %s %s " % (name, cmd)):].replace('"', "")
        u["description"] = self.send("GET UPSDESC " + name)[0].replace('"', "")[
            len("UPSDESC %s " % name):]
        u["numlogins"] = int(self.send("GET NUMLOGINS " + name)[0][len("NUMLOGINS %s " % name):])
        u["variables"] = {}
        for line in self.send("LIST VAR " + name)[1:-1]:
            parts = line[len("VAR %s " % name):].split('"')
            var, value = parts[0].rstrip(" "), parts[1].strip(" ")  # IndexError as Go's panic
            desc = self.send("GET DESC %s %s" % (name, var))[0]
            desc = desc[len("DESC %s %s " % (name, var)):].replace('"', "")
            typ = self.send("GET TYPE %s %s" % (name, var))[0][len("TYPE %s %s " % (name, var)):]
            words = typ.split(" ")
            writable = words[0] == "RW"
            kind = words[1] if writable else words[0]  # IndexError as Go's panic
            if writable and kind.startswith("STRING:"):
                kind = "STRING:%d" % int(kind.split(":")[1])
            if re.fullmatch(r"-?[0-9.]+", value):
                conv = "FLOAT_64" if value.count(".") == 1 else "INTEGER"
                try:
                    float(value) if conv == "FLOAT_64" else int(value)
                except ValueError:
                    conv = "STRING"
            else:
                conv = "BOOLEAN" if value in ("enabled", "disabled") else "STRING"
            u["variables"][var] = (value, desc, kind, writable, conv)
        return u

    def close(self):
        try:
            self.send("LOGOUT")
        except (OSError, EOFError, RuntimeError):
            pass
        self.c.close()


def gonut(site: Site, t: Target) -> dict:
    """nut_exporter's scrape: NewClient, Authenticate, GetUPSList (every UPS in full)."""
    out = {}
    g = GoNutClient(t.host, t.port)
    try:
        out["version"] = g.version
        out["protocol"] = g.protocol
        out["auth"] = str(g.authenticate(MON, password(MON)))
        try:
            upses = g.ups_list()
        except (RuntimeError, IndexError, ValueError) as e:
            out["scrape"] = "failed: %s" % e
            return out
        out["scrape"] = "ok"
        for u in upses:
            n = u["name"]
            out["upsdesc %s" % n] = u["description"]
            out["numlogins %s" % n] = str(u["numlogins"])
            out["clients %s" % n] = " ".join(u["clients"])
            for c, d in u["commands"].items():
                out["cmd %s %s" % (n, c or "<empty>")] = d
            for v, info in u["variables"].items():
                out["var %s %s" % (n, v)] = info[0]
                out["desc %s %s" % (n, v)] = info[1]
                rw = "RW" if info[3] else "RO"
                out["type %s %s" % (n, v)] = "%s %s %s" % (info[2], rw, info[4])
        out["requests"] = " ".join(dict.fromkeys(g.sent))  # the request kinds, in order
    finally:
        g.close()
    return out


_NODE = r"""
const Nut = require(process.argv[2]);
const [port, host, user, pw] = process.argv.slice(3, 7);
const upses = process.argv.slice(7);
const out = {};
const nut = new Nut(+port, host);
const steps = [];
// node-nut may call a callback twice (an error, then null): the first call is the answer
function step(key, call) { steps.push(() => new Promise(done => { let seen = false;
  call((v, err) => {
    if (seen) return;
    seen = true;
    if (err) out[key] = 'ERR ' + err;
    else if (v !== null && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        // node-nut returns lists as arrays, and name -> value maps as arrays with named keys
        const list = Array.isArray(v) && Object.keys(v).every(i => String(+i) === i);
        const name = list ? v[k] : k;
        out[key + ' ' + (name || '<empty>')] = list ? 'listed' : v[k];
      }
    } else out[key] = String(v);
    done();
  }); })); }
step('username', cb => nut.SetUsername(user, e => cb('', e)));
step('password', cb => nut.SetPassword(pw, e => cb('', e)));
step('ups', cb => nut.GetUPSList(cb));
for (const u of upses) {
  step('var ' + u, cb => nut.GetUPSVars(u, cb));
  step('cmd ' + u, cb => nut.GetUPSCommands(u, cb));
  step('rw ' + u, cb => nut.GetRWVars(u, cb));
  step('desc ' + u + ' ups.status', cb => nut.GetVarDescription(u, 'ups.status', cb));
  step('type ' + u + ' battery.charge', cb => nut.GetVarType(u, 'battery.charge', cb));
  step('cmddesc ' + u + ' load.off', cb => nut.GetCommandDescription(u, 'load.off', cb));
}
nut.on('error', e => { out.error = String(e); console.log(JSON.stringify(out)); process.exit(0); });
nut.on('ready', async () => {
  for (const s of steps) await s();
  console.log(JSON.stringify(out));
  nut.close();
});
nut.start();
"""


def node_nut(site: Site, t: Target) -> dict:
    """npm node-nut 1.0.3 from a small node script; a reply it never completes is a timeout."""
    script = write_file(os.path.join(site.workdir, "nodenut.js"), _NODE)
    try:
        r = run(["node", script, NODE_NUT, str(t.port), t.host, ADMIN, password(ADMIN)]
                + list(TIERS), timeout=20)
    except subprocess.TimeoutExpired:
        return {"node-nut": "timed out"}
    if r.returncode != 0:
        return {"node-nut": "exit %d %s" % (r.returncode, r.stderr.strip()[-300:])}
    return json.loads(r.stdout.strip().splitlines()[-1])


def eneru(site: Site, t: Target) -> dict:
    """eneru 6.2.2 `run --dry-run` on the apps tier until its first status line; its log
    lines with times, paths and the target cut."""
    d = fresh_dir(site, "eneru", t)
    # a monitor of a remote UPS: no local shutdown, VMs, containers or unmounts (in a
    # container those would need an SSH delegate to the host)
    cfg = write_file(os.path.join(d, "config.yaml"), (
                "ups:\n  - name: \"%s\"\n    is_local: false\n    check_interval: 1\n"
                "logging:\n  file: \"%s/eneru.log\"\n  state_file: \"%s/state\"\n"
                "  battery_history_file: \"%s/history\"\n  shutdown_flag_file: \"%s/flag\"\n"
                "behavior:\n  dry_run: true\nvirtual_machines:\n  enabled: false\n"
                "containers:\n  enabled: false\nfilesystems:\n  unmount:\n    enabled: false\n"
                "local_shutdown:\n  enabled: false\n" % (t.ups("apps"), d, d, d, d)))
    env = dict(os.environ, HOME=d, XDG_STATE_HOME=d, XDG_CONFIG_HOME=d)
    p = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "eneru"), "run",
                          "--dry-run", "-c", cfg], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=d)
    marker = "Voltage Monitoring Active"
    lines = []
    deadline = time.monotonic() + 30
    try:
        while not any(marker in x for x in lines) and time.monotonic() < deadline:
            got = read_lines(p, 1, deadline - time.monotonic())
            if not got:
                break
            lines += got
        lines += read_lines(p, 10, 1.5)  # the block the marker opens, and what follows
    finally:
        stop(p)
    out = {}
    for line in lines:
        line = re.sub(r"^\S+ \S+ (- )?", "", line) if re.match(r"^\d{4}-\d\d-\d\d", line) else line
        line = line.replace(t.ups("apps"), "<ups>").replace(d, "<dir>").strip()
        if line.startswith(("Nominal:", "Grid-quality warnings:", "UPS battery-switch")):
            out["eneru " + line.split(":")[0]] = line.split(":", 1)[1].strip()
        elif "POWER EVENT:" in line or "connection" in line.lower():
            out["eneru " + line.split(" ", 1)[-1]] = "logged"
    out["eneru voltage monitoring"] = str(any(marker in x for x in lines))
    return out


def repeater(site: Site, t: Target) -> dict:
    """dummy-ups in repeater mode (`port = ups@host:port`) against the server, read with upsc."""
    r = site.repeater(t)
    out = upsc(site, r)
    for k in list(out):
        if "driver.parameter.port" in k:  # the source's address, by construction
            out[k] = out[k].replace(":%d" % t.port, ":<port>")
    return out


CLIENTS = {
    "upsc": upsc,
    "upscmd": upscmd_list,
    "upsrw": upsrw_list,
    "upslog": upslog,
    "check_ups": check_ups,
    "collectd": collectd,
    "aionut": aionut,
    "PyNUTClient": pynutclient,
    "nut2": nut2_client,
    "go.nut": gonut,
    "node-nut": node_nut,
    "eneru": eneru,
    "dummy-ups repeater": repeater,
}
