"""Host health checks for the power-on sequence and drills.

A host's `health` setting says how the sentinel knows it is up:
  "nut"         its upsmon is logged in to its tier again (address match with NutServer.logged_in)
  "tcp:<port>"  a TCP connection to address:port is accepted
  "none"        no check: counted up as soon as it has been woken

`tcp_check` is the raw async probe. `Health` is what the sequencer polls from its synchronous
step(): `check(tier, host, now_ms, since_ms)` answers True / False at once for "nut" and "none",
and for "tcp" starts a probe task in the background and answers None until a probe that began
at or after `since_ms` has finished (so a result from before a power cut is never taken as
"up now").

Why not asyncio.open_connection: on MicroPython it reports a refused connection as connected
(the error only shows at the first write), and a wait_for timeout cancels it without closing
its socket (lwIP has few sockets). tcp_check owns its socket, polls it, and always closes it.

Without networking (no `socket` module on the board, or the network down) a tcp check answers
False at once and `why(host)` says "no network"; the "nut" and "none" kinds need no socket.
"""
import asyncio
import select

try:
    import socket
except ImportError:  # a board built without networking: tcp checks fail, never crash
    socket = None

from sentinel.coverage import logged_in_addrs, norm_addr

KINDS = ("nut", "tcp", "none")
_POLL_STEP_MS = 20


def _sleep_ms(ms):
    f = getattr(asyncio, "sleep_ms", None)
    return f(ms) if f is not None else asyncio.sleep(ms / 1000)


def parse(health):
    """(kind, port) from a health setting: ("nut", None), ("tcp", 80), ("none", None).
    ValueError for anything else."""
    if health == "nut" or health == "none":
        return health, None
    if health.startswith("tcp:"):
        p = health[4:]
        if p.isdigit() and 0 < int(p) < 65536:
            return "tcp", int(p)
    raise ValueError("bad health check " + health)


async def tcp_check(addr, port, timeout_ms=3000, now_ms=None):
    """True if a TCP connection to addr:port is accepted within timeout_ms, else False (refused,
    unreachable, timed out, name not resolved). The connection is closed at once.
    getaddrinfo blocks for DNS names: configure hosts by IPv4 address where possible.
    `now_ms` (a clock function) bounds the wait by time; without one it counts poll steps."""
    if socket is None:
        return False
    s = None
    try:
        ai = socket.getaddrinfo(addr, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], ai[1], ai[2])
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            # EINPROGRESS (115 Linux/lwIP) or EAGAIN/EWOULDBLOCK: the connect goes on
            if e.args[0] not in (115, 119, 11, 36, 10035):
                return False
        p = select.poll()
        p.register(s, select.POLLOUT)
        bad = select.POLLERR | select.POLLHUP
        t0 = now_ms() if now_ms is not None else 0
        waited = 0
        while True:
            ev = p.poll(0)
            if ev:
                flags = ev[0][1]
                if flags & bad or not flags & select.POLLOUT:
                    return False
                err = getattr(socket, "SO_ERROR", None)
                gso = getattr(s, "getsockopt", None)  # CPython has it, MicroPython does not
                if err is not None and gso is not None and gso(socket.SOL_SOCKET, err):
                    return False
                return True
            if now_ms is not None:
                waited = now_ms() - t0
            if waited >= timeout_ms:
                return False
            await _sleep_ms(_POLL_STEP_MS)
            if now_ms is None:
                waited += _POLL_STEP_MS
    except OSError:
        return False
    finally:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


class Health:
    """Health checks the sequencer can poll without awaiting.

    nut          the NutServer (logged_in(tier))
    tcp_fn       async (addr, port, timeout_ms) -> bool; default tcp_check
    spawn        starts a coroutine in the background; default asyncio.create_task
    interval_ms  a new tcp probe of the same host starts at most this often
    timeout_ms   one tcp probe's connect timeout
    net_state    () -> "up" | "down" | "absent" (Board.network_state); None: assume up
    """

    def __init__(self, nut, tcp_fn=None, spawn=None, interval_ms=5000, timeout_ms=3000,
                 net_state=None):
        self.nut = nut
        self.net_state = net_state
        self._no_net = set()  # hosts whose last tcp check found no network
        self.tcp_fn = tcp_fn or tcp_check
        self.spawn = spawn or asyncio.create_task
        self.interval_ms = interval_ms
        self.timeout_ms = timeout_ms
        self._probes = {}  # host name -> [started_ms, running, ok, done_started_ms]
        self.probes = 0

    def nut_ok(self, tier, addr):
        return norm_addr(addr) in logged_in_addrs(self.nut, tier)

    def check(self, tier, host, now_ms, since_ms=None, interval_ms=None):
        """True (healthy), False (checked: not healthy) or None (no fresh answer yet) for a host
        dict of the config (name, address, health). interval_ms: probe this host this often
        instead of every `self.interval_ms`."""
        kind, port = parse(host.get("health") or "nut")
        if kind == "none":
            return True
        if kind == "nut":
            return self.nut_ok(tier, host["address"])
        name = host["name"]
        if self._no_network():
            self._no_net.add(name)
            return False
        self._no_net.discard(name)
        st = self._probes.get(name)
        if st is None:
            st = [None, False, None, None]
            self._probes[name] = st
        every = self.interval_ms if interval_ms is None else interval_ms
        if not st[1] and (st[0] is None or now_ms - st[0] >= every
                          or (since_ms is not None and st[0] < since_ms)):
            st[0] = now_ms
            st[1] = True
            self.probes += 1
            self.spawn(self._probe(st, host["address"], port, now_ms))
        if st[3] is None or (since_ms is not None and st[3] < since_ms):
            return None
        return st[2]

    async def _probe(self, st, addr, port, started):
        ok = False
        try:
            ok = bool(await self.tcp_fn(addr, port, self.timeout_ms))
        except Exception:
            ok = False
        finally:
            st[1] = False
            st[2] = ok
            st[3] = started

    def _no_network(self):
        if socket is None and self.tcp_fn is tcp_check:
            return True
        return self.net_state is not None and self.net_state() != "up"

    def why(self, host_name):
        """"no network" if the host's last tcp check could not be made for want of one."""
        return "no network" if host_name in self._no_net else None

    def forget(self):
        """Drop cached results (a new plan starts)."""
        self._probes = {}
