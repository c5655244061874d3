"""NUT network server (upsd-compatible) for the sentinel, on MicroPython asyncio.

One NUT "UPS" per shutdown tier (named like the tier: `apps`, `databases`, `storage`), so each
server's stock `upsmon` watches the tier it belongs to, and the sentinel can raise FSD tier by
tier and see each tier's clients go away.

Provider interface (the sentinel supplies it; the test harness supplies a fake):
  ups_names() -> [(name, desc), ...]     the UPSes served, in LIST UPS order
  status(ups) -> str | None              ups.status tokens without FSD ("OL", "OB LB"...);
                                         None before the first reading: served as "WAIT"
  vars(ups) -> [(var, value), ...] | None
                                         every other variable (battery.charge, input.voltage,
                                         device.*, driver.*, sentinel.*...; values str/int/
                                         float, printed with str()); None when the data is
                                         stale: per-UPS queries then answer ERR DATA-STALE
Optional (absent: nothing writable, no instant commands):
  rw_vars(ups) -> [(var, kind), ...]     writable variables; kind "NUMBER" or "STRING:<n>"
  cmds(ups) -> [cmd, ...]                instant commands offered
  set_var(ups, var, value) -> None | code
  instcmd(ups, cmd, param) -> None | code
                                         None = done; else a NUT error code (protocol's
                                         SET_FAILED, INVALID_VALUE, INSTCMD_FAILED...: small
                                         ints), sent as ERR and its word.
Calls are synchronous and must be quick (they run inside the connection task).

Actions (NutServer(..., actions=) or .actions; the sentinel sets rwvars.NutActions): when
set, commands and writable variables come from it instead of the provider, with who asked:
  cmds(ups), rw_vars(ups)                as above; a kind may be "RANGE NUMBER"
  rw_values(ups) -> [(var, value), ...]  the writable variables' values (served with vars())
  range(ups, var) -> (lo, hi) | None     LIST RANGE
  set_var(ups, var, value, who) / instcmd(ups, cmd, param, who) -> None | code
  refused(ups, kind, name, who, code, value)
                                         a SET ("nut_set", with its value) or INSTCMD
                                         ("nut_instcmd") the server refused (ACCESS-DENIED);
                                         who = (addr, user)

Server API for the sentinel:
  NutServer(cfg_nut, provider, now_ms_fn)   cfg_nut: the config's "nut" section
  await start(host, port)   /   close()
  set_fsd(ups, on)          raise or clear forced shutdown for a UPS (not a latch forever)
  fsd(ups) -> bool
  set_fsd_hosts(ups, addrs) forced shutdown on that UPS for the connections from these
                            addresses only (the feed policy: the servers whose feeds are all
                            lost); () clears it. The tier's other clients keep seeing no FSD.
  logged_in(ups) -> [(addr, user), ...]   connections that did LOGIN ups and are still open
  numlogins(ups) -> int
  on_login(ups, client) / on_logout(ups, client) / on_fsd(ups, client): callbacks, or None;
      client = (addr, user, how); how for on_logout: "logout" (LOGOUT command), "closed"
      (peer closed or the link failed), "idle" (idle timeout), "shed" (made room for another
      connection; never done to a logged-in client), "abuse" (over-long line), "server"
      (server closing), "tls_fail" (its TLS handshake failed or timed out). on_fsd gets how =
      "FSD".
  stats: dict of counters (conns, refused, shed, idle, abuse, auth_fail, errors, tls_ok,
      tls_fail)
  tls_error: why TLS is off although nut.tls_cert is set (str), else None
  NutServer(..., on_tls=fn): fn(addr, result) after each STARTTLS: "ok" (handshake done,
      first request read), "timeout" (not both within nut.tls_handshake_s) or "failed" (the
      handshake failed, the peer left, no memory); a repeat of the previous (addr, result) is
      not reported (the stats count them all); see nut/tls.py

STARTTLS (upsd's netssl.c): when nut.tls_cert/tls_key hold a certificate, STARTTLS answers
"OK STARTTLS" and the TLS handshake follows on the same socket; without a certificate it answers
ERR FEATURE-NOT-CONFIGURED (clients go on in plain text), and a second STARTTLS ERR
ALREADY-SSL-MODE. Plain text pipelined behind STARTTLS is discarded (it must not be read as if it
had come over TLS). The handshake runs inside the connection's next reads on a non-blocking
socket, bounded by nut.tls_handshake_s; a failure closes that connection only ("tls_fail").
As in upsd, STARTTLS is accepted at any point (also after LOGIN), and nothing refuses a plain-text
client: requiring TLS is the client's choice (upsmon's FORCESSL).

Commands are dispatched through one table (_COMMANDS, in the style of upsd's netcmds.h):
name, handler, whether USERNAME/PASSWORD are required, argument count, and the right checked.

Security: credentials are checked against salted hashes (auth.py) at LOGIN, PRIMARY/
MASTER, FSD, SET and INSTCMD, as upsd does, with a per-address delay after repeated failures;
roles: "secondary" may LOGIN, "primary" may LOGIN, PRIMARY/MASTER and FSD; "actions" adds FSD,
SET, INSTCMD (every instant command) per user, "instcmds" the named commands (or "ALL"). At
most max_conns connections: a newcomer beyond that sheds a connection that is neither logged in
nor active (sent a request other than USERNAME/PASSWORD within active_ms, half of
idle_timeout_s): first the oldest that never sent such a request, else the one idle longest; if there is none, the newcomer is refused. So
a client that keeps polling is never pushed out by sockets that do not speak. Idle connections
are dropped after idle_timeout_s. Input is bounded per connection (protocol.LineParser).
"""

import asyncio

try:
    import socket
except ImportError:  # pragma: no cover
    socket = None

from sentinel.coverage import norm_addr
from sentinel.nut import protocol as P
from sentinel.nut.auth import LoginLimiter, check_password

# the schema's roles (nut.users.role); "actions" adds FSD, SET, INSTCMD
_ROLE_ACTIONS = {
    "secondary": ("LOGIN",),
    "primary": ("LOGIN", "PRIMARY", "MASTER", "FSD"),
}
_F_USER = 1  # USERNAME and PASSWORD must come first (upsd's FLAG_USER)
_READ_CHUNK = 128
_TRACK_KEEP = 4
_LOGIN_STEPS = ("USERNAME", "PASSWORD")


def peer_addr(pe):
    """(ip, port) from a StreamWriter's peername (tuple on ESP32/CPython, raw sockaddr bytes on
    the MicroPython unix port)."""
    if isinstance(pe, tuple):
        return str(pe[0]), pe[1]
    try:
        # unix port only: decode the raw sockaddr
        fam, raw, port = getattr(socket, "sockaddr")(pe)
        return getattr(socket, "inet_ntop")(fam, raw), port
    except Exception:
        return "?", 0


def _track_id():
    """A random TRACKING id in the UUID form upsd uses."""
    try:
        import os
        r = os.urandom(16)
    except Exception:  # pragma: no cover
        r = bytes(16)
    h = "".join("%02X" % b for b in r)
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


def _unknown(ups):
    raise ValueError("unknown UPS " + ups)


def _sleep_ms(ms):
    f = getattr(asyncio, "sleep_ms", None)  # MicroPython; CPython has only sleep()
    return f(ms) if f is not None else asyncio.sleep(ms / 1000)


def _close(writer):
    try:
        writer.close()  # CPython closes here; MicroPython's StreamWriter.close() does nothing
        s = getattr(writer, "s", None)  # MicroPython: the stream's socket
        if s is not None:
            s.close()
    except Exception:
        pass


class Conn:
    """One client connection. The attributes most connections never change are class
    defaults: an instance holds only what was set, so a logged-in upsmon costs the board a
    10-slot attribute table rather than a 17-slot one (device heap, per client)."""
    user = None  # type: str | None
    password = None  # type: str | None
    ups = None  # type: str | None  # canonical name after LOGIN
    heard = False  # a complete request came: shed silent sockets before this one
    tracking = False
    quit = False  # LOGOUT answered: close after the reply
    task = None  # type: object
    writer = None  # type: object
    gone = None  # type: str | None  # reason once dropped
    tls = 0  # 0 plain text, 1 STARTTLS answered (handshake pending), 2 TLS up
    raw = None  # type: object  # the TCP socket under TLS, closed on its own too (see _drop)

    def __init__(self, addr, port, now_ms, maxline):
        self.addr = addr
        self.port = port
        self.last_ms = now_ms  # time of the last complete command (upsd's last_heard)
        self.parser = P.LineParser(maxline, maxline * 4)


class NutServer:
    def __init__(self, cfg_nut, provider, now_ms_fn, sleep_ms=None, maxline=512, limiter=None,
                 actions=None, on_tls=None):
        """cfg_nut: the "nut" section as config.validate() makes it (every key present)."""
        self.provider = provider
        self.now_ms = now_ms_fn
        self._sleep_ms = sleep_ms or _sleep_ms
        self.max_conns = cfg_nut["max_conns"]
        self.idle_ms = cfg_nut["idle_timeout_s"] * 1000
        # a client that sent a request within this window is active and never shed: 30 s by
        # default, well above upsmon's 5 s and collectd's 10 s poll intervals
        self.active_ms = self.idle_ms // 2
        self.maxline = maxline
        self.users = {}
        for u in cfg_nut["users"]:
            self.users[u["name"]] = u
        self.limiter = limiter or LoginLimiter()
        self.conns = []
        self._fsd = {}  # canonical ups name -> True
        self._fsd_hosts = {}  # canonical ups name -> normalised client addresses told FSD
        self._track = []  # [(id, status)] newest last, at most _TRACK_KEEP
        self.on_login = None
        self.on_logout = None
        self.on_fsd = None
        self.actions = actions
        self.stats = {"conns": 0, "refused": 0, "shed": 0, "idle": 0, "abuse": 0,
                      "auth_fail": 0, "errors": 0, "tls_ok": 0, "tls_fail": 0}
        self.tls = None
        self.tls_error = None
        if cfg_nut.get("tls_cert"):
            try:
                # imported only when a certificate is configured: the ssl module and the TLS
                # code stay out of the device heap otherwise
                from sentinel.nut.tls import Tls
                self.tls = Tls(cfg_nut["tls_cert"], cfg_nut.get("tls_key"),
                               cfg_nut.get("tls_handshake_s", 10) * 1000, on_tls)
            except Exception as e:  # bad certificate, no ssl on this port, heap: plain NUT
                self.tls_error = str(e)
        self._srv = None
        self._sweep = None

    # -- sentinel-facing state --------------------------------------------------------------

    def _canon(self, name):
        """(canonical name, desc) of a UPS, matched case-insensitively as upsd does, or None."""
        low = name.lower()
        for n, d in self.provider.ups_names():
            if n.lower() == low:
                return n, d
        return None

    def set_fsd(self, ups, on):
        c = self._canon(ups) or _unknown(ups)
        if on:
            self._fsd[c[0]] = True
        elif c[0] in self._fsd:
            del self._fsd[c[0]]

    def fsd(self, ups):
        c = self._canon(ups)
        return c is not None and c[0] in self._fsd

    def set_fsd_hosts(self, ups, addrs):
        c = self._canon(ups) or _unknown(ups)
        if addrs:
            self._fsd_hosts[c[0]] = tuple(norm_addr(a) for a in addrs)
        else:
            self._fsd_hosts.pop(c[0], None)

    def _fsd_for(self, ups, conn):
        """FSD as this connection sees it on a (canonical) UPS: the tier's, or its own."""
        hosts = self._fsd_hosts.get(ups)
        return ups in self._fsd or (hosts is not None and conn is not None
                                    and norm_addr(conn.addr) in hosts)

    def logged_in(self, ups):
        c = self._canon(ups)
        if c is None:
            return []
        return [(k.addr, k.user) for k in self.conns if k.ups == c[0] and k.gone is None]

    def numlogins(self, ups):
        return len(self.logged_in(ups))

    # -- command handling (no I/O: returns the reply text) -----------------------------------

    def _allowed(self, conn, action, cmd=None):
        u = self.users.get(conn.user)
        ok = False
        if u is not None and check_password(u["password"], conn.password or ""):
            ok = action in _ROLE_ACTIONS[u["role"]] or action in u["actions"]
            if cmd is not None and not ok:
                names = u.get("instcmds") or ()
                ok = cmd in names or "ALL" in names
            # a right password clears the address's failure count even if the action is refused
            self.limiter.succeeded(conn.addr, self.now_ms())
        else:
            self.limiter.failed(conn.addr, self.now_ms())
            self.stats["auth_fail"] += 1
        return ok

    def auth_delay_ms(self, conn, args):
        """Delay to apply before handling `args` (credential-checking commands only)."""
        e = _COMMANDS.get(args[0].upper()) if args else None
        if e is not None and e[1] & _F_USER and conn.user is not None \
                and conn.password is not None:
            return self.limiter.delay_ms(conn.addr, self.now_ms())
        return 0

    def _stale(self, ups):
        return self.provider.vars(ups) is None

    def _vars(self, ups, conn=None):
        """Sorted [(var, value)], ups.status (FSD-prefixed) as `conn` sees it; None if stale."""
        vs = self.provider.vars(ups)
        if vs is None:
            return None
        out = [("ups.status", self._status(ups, conn))]
        for k, v in vs:
            if k != "ups.status":
                out.append((k, v))
        if self.actions is not None:
            out.extend(self.actions.rw_values(ups))
        out.sort(key=lambda kv: kv[0])
        return out

    def _status(self, ups, conn=None):
        st = self.provider.status(ups)
        return P.status_value(st if st else "WAIT", self._fsd_for(ups, conn))

    def _lookup(self, ups, var, conn=None):
        """(canonical var, value) or None; ups.status as `conn` sees it."""
        low = var.lower()
        if low == "ups.status":
            return "ups.status", self._status(ups, conn)
        for k, v in self.provider.vars(ups) or ():
            if k.lower() == low:
                return k, v
        if self.actions is not None:
            for k, v in self.actions.rw_values(ups):
                if k.lower() == low:
                    return k, v
        return None

    def _rw(self, ups, var):
        f = getattr(self.actions or self.provider, "rw_vars", None)
        if f is None:
            return None
        low = var.lower()
        for k, kind in f(ups) or ():
            if k.lower() == low:
                return kind
        return None

    def _cmds(self, ups):
        f = getattr(self.actions or self.provider, "cmds", None)
        return sorted(f(ups) or ()) if f is not None else []

    def _track_add(self, status):
        tid = _track_id()
        self._track.append((tid, status))
        if len(self._track) > _TRACK_KEEP:
            self._track.pop(0)
        return tid

    def handle(self, conn, args):
        """Reply (one or more lines) to one request line split into `args`: the command is
        looked up in _COMMANDS; its login requirement and argument count are checked here,
        the rest by its handler."""
        e = _COMMANDS.get(args[0].upper()) if args else None
        if e is None:
            return P.err(P.UNKNOWN_COMMAND)
        fn, flags, lo, hi, perm = e
        if flags & _F_USER:
            if conn.user is None:
                return P.err(P.USERNAME_REQUIRED)
            if conn.password is None:
                return P.err(P.PASSWORD_REQUIRED)
        a = args[1:]
        if not lo <= len(a) <= hi:
            return P.err(P.INVALID_ARGUMENT)
        return fn(self, conn, a, perm)

    def _ver(self, conn, a, perm):
        return P.VERSION_LINE + "\n"

    def _netver(self, conn, a, perm):
        return P.NETVER + "\n"

    def _help(self, conn, a, perm):
        return P.HELP_LINE + "\n"

    def _logout(self, conn, a, perm):
        conn.quit = True
        return "OK Goodbye\n"

    def _starttls(self, conn, a, perm):
        if conn.tls:
            return P.err(P.ALREADY_SSL_MODE)
        if self.tls is None:
            return P.err(P.FEATURE_NOT_CONFIGURED)
        conn.tls = 1  # _feed upgrades the socket once this reply is out
        return "OK STARTTLS\n"

    def _username(self, conn, a, perm):
        if conn.user is not None:
            return P.err(P.ALREADY_SET_USERNAME)
        conn.user = a[0]
        return P.ok()

    def _password(self, conn, a, perm):
        if conn.password is not None:
            return P.err(P.ALREADY_SET_PASSWORD)
        conn.password = a[0]
        return P.ok()

    def _login(self, conn, a, perm):
        if conn.ups is not None:
            return P.err(P.ALREADY_LOGGED_IN)
        c = self._canon(a[0])
        if c is None:
            return P.err(P.UNKNOWN_UPS)
        if not self._allowed(conn, perm):
            return P.err(P.ACCESS_DENIED)
        conn.ups = c[0]
        self._notify(self.on_login, c[0], (conn.addr, conn.user, "LOGIN"))
        return P.ok()

    def _primary(self, conn, a, perm):
        """PRIMARY, MASTER (its old name) and FSD: `perm` is the command itself."""
        c = self._canon(a[0])
        if c is None:
            return P.err(P.UNKNOWN_UPS)
        if not self._allowed(conn, perm):
            return P.err(P.ACCESS_DENIED)
        if perm == "FSD":
            self._fsd[c[0]] = True
            self._notify(self.on_fsd, c[0], (conn.addr, conn.user, "FSD"))
            return P.ok("FSD-SET")
        return P.ok(perm + "-GRANTED")

    def _get(self, conn, a, perm):
        n = len(a)
        sub = a[0].upper()
        if sub == "TRACKING":
            if n < 2:
                return "ON\n" if conn.tracking else "OFF\n"
            if not conn.tracking:
                return P.err(P.FEATURE_NOT_CONFIGURED)
            for tid, st in self._track:
                if tid == a[1]:
                    return st + "\n"
            return "ERR UNKNOWN\n"
        if n < 2:
            return P.err(P.INVALID_ARGUMENT)
        if sub == "UPSDESC":
            c = self._canon(a[1])
            if c is None:
                return P.err(P.UNKNOWN_UPS)
            return P.upsdesc_line(a[1], c[1] or "Unavailable")
        if sub == "NUMLOGINS":
            c = self._canon(a[1])
            if c is None:
                return P.err(P.UNKNOWN_UPS)
            if self._stale(c[0]):
                return P.err(P.DATA_STALE)
            return P.numlogins_line(a[1], self.numlogins(c[0]))
        if n < 3:
            return P.err(P.INVALID_ARGUMENT)
        ups, var = a[1], a[2]
        if sub == "VAR" and var[:7].lower() == "server.":
            low = var.lower()
            if low == "server.info":
                return P.var_line(ups, "server.info", P.VERSION_LINE)
            if low == "server.version":
                return P.var_line(ups, "server.version", P.NUT_VERSION)
            return P.err(P.VAR_NOT_SUPPORTED)
        if sub not in ("VAR", "TYPE", "DESC", "CMDDESC"):
            return P.err(P.INVALID_ARGUMENT)
        c = self._canon(ups)
        if c is None:
            return P.err(P.UNKNOWN_UPS)
        if self._stale(c[0]):
            return P.err(P.DATA_STALE)
        if sub == "DESC":
            return P.desc_line(ups, var, P.describe(var))
        if sub == "CMDDESC":
            return P.desc_line(ups, var, P.describe(var, True), "CMDDESC")
        kv = self._lookup(c[0], var, conn)
        if kv is None:
            return P.err(P.VAR_NOT_SUPPORTED)
        if sub == "VAR":
            return P.var_line(ups, var, kv[1])
        kind = self._rw(c[0], var)
        return P.type_line(ups, var, kind is not None, kind or "NUMBER")

    def _list(self, conn, a, perm):
        n = len(a)
        sub = a[0].upper()
        if sub == "UPS":
            out = [P.begin_list("UPS")]
            for name, desc in self.provider.ups_names():
                out.append(P.ups_line(name, desc))
            out.append(P.end_list("UPS"))
            return "".join(out)
        if n < 2:
            return P.err(P.INVALID_ARGUMENT)
        ups = a[1]
        if sub in ("VAR", "RW", "CMD", "CLIENT"):
            c = self._canon(ups)
            if c is None:
                return P.err(P.UNKNOWN_UPS)
            q = sub + " " + ups
            if sub == "CLIENT":  # upsd lists clients even when the data is stale
                out = [P.begin_list(q)]
                for k in reversed(self.conns):
                    if k.ups == c[0] and k.gone is None:
                        out.append(P.client_line(c[0], k.addr))
                out.append(P.end_list(q))
                return "".join(out)
            vs = self._vars(c[0], conn)
            if vs is None:
                return P.err(P.DATA_STALE)
            out = [P.begin_list(q)]
            if sub == "VAR":
                for k, v in vs:
                    out.append(P.var_line(ups, k, v))
            elif sub == "RW":
                raw = self.provider.status(c[0]) or "WAIT"
                for k, v in vs:
                    if self._rw(c[0], k) is not None:
                        out.append(P.var_line(ups, k, raw if k == "ups.status" else v, "RW"))
            else:
                for cmd in self._cmds(c[0]):
                    out.append(P.cmd_line(ups, cmd))
            out.append(P.end_list(q))
            return "".join(out)
        if n < 3:
            return P.err(P.INVALID_ARGUMENT)
        if sub not in ("ENUM", "RANGE"):
            return P.err(P.INVALID_ARGUMENT)
        c = self._canon(ups)
        if c is None:
            return P.err(P.UNKNOWN_UPS)
        if self._stale(c[0]):
            return P.err(P.DATA_STALE)
        if self._lookup(c[0], a[2]) is None:
            return P.err(P.VAR_NOT_SUPPORTED)
        q = sub + " " + ups + " " + a[2]
        r = None
        if sub == "RANGE" and self.actions is not None:
            kv = self._lookup(c[0], a[2])
            r = None if kv is None else self.actions.range(c[0], kv[0])
        if r is None:
            return P.begin_list(q) + P.end_list(q)  # no enumerated variables served
        return "%sRANGE %s %s \"%d\" \"%d\"\n%s" % (P.begin_list(q), ups, a[2], r[0], r[1],
                                                  P.end_list(q))

    def _set(self, conn, a, perm):
        n = len(a)
        sub = a[0].upper()
        if sub == "TRACKING":
            v = a[1].upper()
            if v == "ON":
                conn.tracking = True
            elif v == "OFF":
                conn.tracking = False
            else:
                return P.err(P.INVALID_ARGUMENT)
            return P.ok()
        if sub != "VAR":
            return P.err(P.INVALID_ARGUMENT)
        if n < 4:
            return P.err(P.INVALID_ARGUMENT)
        c = self._canon(a[1])
        if c is None:
            return P.err(P.UNKNOWN_UPS)
        if self._stale(c[0]):
            return P.err(P.DATA_STALE)
        var, val = a[2], a[3]
        if not self._allowed(conn, perm):
            return self._refused(c[0], "nut_set", var, conn, val)
        kv = self._lookup(c[0], var)
        if kv is None:
            return P.err(P.VAR_NOT_SUPPORTED)
        kind = self._rw(c[0], var)
        if kind is None:
            return P.err(P.READONLY)
        if kind.startswith("STRING:"):
            try:
                lim = int(kind[7:])
            except ValueError:
                lim = 0
            if lim < 1:
                return P.err(P.SET_FAILED)
            if len(val) > lim:
                return P.err(P.TOO_LONG)
        if self.actions is not None:
            code = self.actions.set_var(c[0], kv[0], val, (conn.addr, conn.user))
        else:
            f = getattr(self.provider, "set_var", None)
            code = f(c[0], kv[0], val) if f is not None else P.SET_FAILED
        return self._done(conn, code)

    def _refused(self, ups, kind, name, conn, value=None):
        if self.actions is not None:
            self.actions.refused(ups, kind, name, (conn.addr, conn.user), P.ACCESS_DENIED, value)
        return P.err(P.ACCESS_DENIED)

    def _done(self, conn, code):
        if conn.tracking:
            # the provider acts at once, so the tracked result is already final
            return P.ok("TRACKING " + self._track_add("SUCCESS" if code is None else "ERR FAILED"))
        return P.ok() if code is None else P.err(code)

    def _instcmd(self, conn, a, perm):
        n = len(a)
        c = self._canon(a[0])
        if c is None:
            return P.err(P.UNKNOWN_UPS)
        if self._stale(c[0]):
            return P.err(P.DATA_STALE)
        low = a[1].lower()
        name = None
        for k in self._cmds(c[0]):
            if k.lower() == low:
                name = k
        if name is None:
            return P.err(P.CMD_NOT_SUPPORTED)
        if not self._allowed(conn, perm, name):
            return self._refused(c[0], "nut_instcmd", name, conn)
        # upsd 2.8.0 passes the parameter only when exactly one follows the command name
        param = a[2] if n == 3 else None
        if self.actions is not None:
            code = self.actions.instcmd(c[0], name, param, (conn.addr, conn.user))
        else:
            f = getattr(self.provider, "instcmd", None)
            code = f(c[0], name, param) if f is not None else P.INSTCMD_FAILED
        return self._done(conn, code)

    # -- connections ---------------------------------------------------------------------------

    def _drop(self, conn, how):
        """Forget a connection (idempotent): logins, list, socket, and its task if it is not
        the one running."""
        if conn.gone is not None:
            return
        conn.gone = how
        if conn in self.conns:
            self.conns.remove(conn)
        if how in self.stats:
            self.stats[how] += 1
        if conn.task is not None and conn.task is not asyncio.current_task():
            try:
                conn.task.cancel()
            except Exception:
                pass
        if conn.writer is not None:
            _close(conn.writer)
        if conn.raw is not None:
            # after a failed handshake the TLS socket's close leaves the TCP socket open
            # (unix port, measured): the peer would wait for a FIN that never comes
            try:
                conn.raw.close()
            except Exception:
                pass
        if conn.ups is not None:
            self._notify(self.on_logout, conn.ups, (conn.addr, conn.user, how))

    def _notify(self, fn, ups, client):
        # a failing callback must not break the protocol exchange or the cleanup
        if fn is not None:
            try:
                fn(ups, client)
            except Exception:
                self.stats["errors"] += 1

    def _make_room(self):
        """At capacity: shed a connection that is neither logged in nor active: the oldest one
        that never sent a request, else the one idle longest. False if there is none (the
        newcomer is refused instead)."""
        now = self.now_ms()
        victim = None
        for k in self.conns:
            if k.ups is not None or (k.heard and now - k.last_ms < self.active_ms):
                continue
            # silent before heard; then the earliest last_ms (connect time for silent ones)
            if victim is None or (victim.heard and not k.heard) or \
                    (victim.heard == k.heard and k.last_ms < victim.last_ms):
                victim = k
        if victim is None:
            return False
        self._drop(victim, "shed")
        return True

    async def _client(self, reader, writer):
        addr, port = peer_addr(writer.get_extra_info("peername"))
        if len(self.conns) >= self.max_conns and not self._make_room():
            self.stats["refused"] += 1
            _close(writer)
            return
        conn = Conn(addr, port, self.now_ms(), self.maxline)
        conn.writer = writer
        conn.task = asyncio.current_task()
        self.conns.append(conn)
        self.stats["conns"] += 1
        how = "closed"
        try:
            while conn.gone is None:
                if conn.tls == 1 and self.tls is not None:
                    data = await self._handshake(conn, reader, self.tls)
                    if data is None:
                        how = "tls_fail"
                        break
                else:
                    data = await reader.read(_READ_CHUNK)
                if not data:
                    break
                how = await self._feed(conn, writer, data)
                if how is not None:
                    break
                # the frame keeps its locals while it waits for the next read: one chunk per
                # idle client otherwise (device heap)
                data = None
                how = "closed"
        except asyncio.CancelledError:
            how = conn.gone or "server"
        except Exception:
            how = "closed"
        self._drop(conn, how)

    async def _handshake(self, conn, reader, tls):
        """The first read after STARTTLS (it runs the handshake): its data, or None."""
        data = await tls.first_read(conn.addr, reader, _READ_CHUNK)
        if data is not None:
            conn.tls = 2
            self.stats["tls_ok"] += 1
        return data

    async def _feed(self, conn, writer, data):
        p = conn.parser
        for b in data:
            r = p.push(b)
            if r == P.MORE or r == P.DROP:
                continue
            if r == P.ABUSE:
                return "abuse"
            conn.last_ms = self.now_ms()
            if p.too_long:
                reply = P.err(P.TOO_LONG)
            else:
                args = p.args()
                # a login step alone is not activity: a real client sends USERNAME, PASSWORD and
                # LOGIN at once, and one USERNAME per socket must not buy a protected place
                if not args or args[0].upper() not in _LOGIN_STEPS:
                    conn.heard = True
                d = self.auth_delay_ms(conn, args)
                if d:
                    await self._sleep_ms(d)
                try:
                    reply = self.handle(conn, args)
                except Exception:
                    self.stats["errors"] += 1
                    reply = P.err(P.DRIVER_NOT_CONNECTED)
            writer.write(reply.encode())
            await writer.drain()
            if conn.quit:
                return "logout"
            if conn.tls == 1 and self.tls is not None:
                # OK STARTTLS is out: the rest of this chunk was sent in plain text after it
                # and is dropped with the parser's state
                conn.raw = self.tls.upgrade(writer, conn.addr)
                if conn.raw is None:  # no memory for a TLS session (a Pico W): this one only
                    return "tls_fail"
                conn.parser = P.LineParser(self.maxline, self.maxline * 4)
                return None
        return None

    async def _sweeper(self):
        step = max(250, min(1000, self.idle_ms // 4))
        while True:
            await self._sleep_ms(step)
            now = self.now_ms()
            for k in list(self.conns):
                if now - k.last_ms > self.idle_ms:
                    self._drop(k, "idle")

    async def start(self, host, port, backlog=4):
        self._srv = await asyncio.start_server(self._client, host, port, backlog)
        self._sweep = asyncio.create_task(self._sweeper())

    def close(self):
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._srv is not None:
            self._srv.close()
            self._srv = None
        for k in list(self.conns):
            self._drop(k, "server")


# The command table, in the style of upsd's netcmds.h: name -> (handler, flags, fewest and most
# words after the name, the right the user must hold, checked by the handler at upsd's point).
# A name not here answers ERR UNKNOWN-COMMAND.
_ANY = P.MAX_ARGS
_COMMANDS = {
    "VER": (NutServer._ver, 0, 0, 0, None),
    "NETVER": (NutServer._netver, 0, 0, 0, None),
    "PROTVER": (NutServer._netver, 0, 0, 0, None),
    "HELP": (NutServer._help, 0, 0, 0, None),
    "STARTTLS": (NutServer._starttls, 0, 0, _ANY, None),
    "GET": (NutServer._get, 0, 1, _ANY, None),
    "LIST": (NutServer._list, 0, 1, _ANY, None),
    "USERNAME": (NutServer._username, 0, 1, 1, None),
    "PASSWORD": (NutServer._password, 0, 1, 1, None),
    "LOGIN": (NutServer._login, _F_USER, 1, 1, "LOGIN"),
    "LOGOUT": (NutServer._logout, 0, 0, 0, None),
    "PRIMARY": (NutServer._primary, _F_USER, 1, 1, "PRIMARY"),
    "MASTER": (NutServer._primary, _F_USER, 1, 1, "MASTER"),
    "FSD": (NutServer._primary, _F_USER, 1, 1, "FSD"),
    "SET": (NutServer._set, _F_USER, 2, _ANY, "SET"),
    "INSTCMD": (NutServer._instcmd, _F_USER, 2, _ANY, "INSTCMD"),
}
