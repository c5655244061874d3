"""The simulated site: servers that obey the sentinel, on loopback only.

Each host of a scenario gets
- an address 127.0.0.N (the loopback network is all of 127/8 on Linux), so the sentinel's
  per-address bookkeeping (who is logged in, coverage audit, health checks) sees distinct hosts;
- a real `upsmon` (powersentinel.nutreal.RealUpsmon, own state dir) monitoring its tier's UPS on
  the board, reaching it through a small TCP relay whose outgoing connection is bound to the
  host's address. With a pair of sentinels, every host's upsmon monitors the tier on both,
  power value 1 each, MINSUPPLIES 2 (docs/redundancy.md), through one relay per sentinel.
  Its SHUTDOWNCMD records the time and then blocks until the site releases it
  (after the host's shutdown time; never for a host that hangs on shutdown), after which upsmon
  is stopped: the host is down and its login is gone. Where upsmon is not installed, a small NUT
  client of our own (MiniUpsmon) does the same, and the site says so (`site.client_kind`);
- a Wake-on-LAN listener (UDP, 127.0.0.1:wol_port for the "broadcast" and the host's own
  address) and a TCP health port that accepts connections only while the host is up.

Host life: up -> stopping (SHUTDOWNCMD ran) -> halted (OS down, outlet still powered) -> off
(outlet unpowered). With power back, a `wake = "power"` host boots by itself; a `wake = "wol"`
host waits for its magic packet. booting -> up after its boot time (story time, scaled).
A host that loses power while up or stopping is recorded as a crash.
"""
from __future__ import annotations

import os
import selectors
import socket
import threading
import time

from .. import nutreal

UPSMON = os.path.join(nutreal.NUT_BIN, "upsmon")
RELEASE_MAX_S = 4 * 3600  # a hung SHUTDOWNCMD still ends eventually (bounded loop)


def upsmon_available():
    if os.environ.get("POWERSENTINEL_HIL_NO_UPSMON"):
        return False
    return os.access(UPSMON, os.X_OK)


def free_port_on(addrs, kind=socket.SOCK_STREAM):
    """A port free on every address in addrs (asked of the kernel on the first, then checked)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kind)
        s.bind((addrs[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for a in addrs:
            t = socket.socket(socket.AF_INET, kind)
            try:
                t.bind((a, port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no port free on all of %s" % addrs)


class Relay:
    """127.0.0.1:port -> target, the outgoing side bound to `source` (the host's address)."""

    def __init__(self, source, target):
        self.source = source
        self.target = target
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((source, 0))
        self.srv.listen(8)
        self.addr = self.srv.getsockname()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.srv, selectors.EVENT_READ, None)
        self.peers = {}
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="relay-" + source)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.2):
                if key.data is None:
                    self._accept()
                else:
                    self._pump(key.fileobj)

    def _accept(self):
        c, _ = self.srv.accept()
        o = socket.socket()
        try:
            o.bind((self.source, 0))
            o.settimeout(3)
            o.connect(self.target)
        except OSError:
            c.close()
            o.close()
            return
        o.settimeout(None)
        self.peers[c] = o
        self.peers[o] = c
        self.sel.register(c, selectors.EVENT_READ, "p")
        self.sel.register(o, selectors.EVENT_READ, "p")

    def _drop(self, s):
        other = self.peers.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            self.peers.pop(x, None)
            try:
                self.sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    def _pump(self, s):
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        other = self.peers.get(s)
        if not data or other is None:
            self._drop(s)
            return
        try:
            other.sendall(data)
        except OSError:
            self._drop(s)

    def drop_all(self):
        """Cut every relayed connection (a host that loses power vanishes from the network)."""
        for s in list(self.peers):
            if s in self.peers:
                self._drop(s)

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for s in list(self.peers):
            if s in self.peers:
                self._drop(s)
        self.srv.close()


class _BenchUpsmon(nutreal.RealUpsmon):
    """RealUpsmon whose SHUTDOWNCMD records the time, then blocks until release()."""

    def _write(self):
        super()._write()
        script = self.priv.path("shutdown.sh")
        with open(script, "w") as f:
            # ends on release(), when the host's private directory is removed (the host was
            # stopped while halting), or after RELEASE_MAX_S: never a leftover loop
            f.write("#!/bin/sh\ndate +%%s.%%N >> '%s'\ni=0\n"
                    "while [ ! -e '%s' ] && [ -d '%s' ] && [ $i -lt %d ]; do sleep 0.1; "
                    "i=$((i+1)); done\n"
                    % (self.shutdown_file, self.priv.path("release"), self.priv.path(),
                       RELEASE_MAX_S * 10))
        os.chmod(script, 0o755)
        conf = self.priv.path("conf", "upsmon.conf")
        with open(conf) as f:
            lines = [ln for ln in f.read().splitlines() if not ln.startswith("SHUTDOWNCMD")]
        lines.append('SHUTDOWNCMD "%s"' % script)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def release(self):
        try:
            with open(self.priv.path("release"), "w"):
                pass
        except OSError:
            pass  # already cleaned up


class UpsmonClient:
    """A host's real upsmon (one process, own private directory)."""
    kind = "upsmon"

    def __init__(self, tier, relay_addrs, user, password, keep_dir=None):
        # one MONITOR line per sentinel, power value 1 each; MINSUPPLIES = their number
        self.mon = _BenchUpsmon([nutreal.Monitor(tier, a[0], a[1], user, password)
                                 for a in relay_addrs],
                                pollfreq=1, pollfreqalert=1, deadtime=5, hostsync=3, finaldelay=0,
                                minsupplies=len(relay_addrs), workdir=keep_dir)
        self.t_shutdown = None

    def start(self):
        self.mon.start()

    def shutdown_time(self):
        if self.t_shutdown is None:
            self.t_shutdown = self.mon.shutdown_time()
        return self.t_shutdown

    def release(self):
        self.mon.release()

    def kill(self):
        p = self.mon.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(3)
        self.release()  # a SHUTDOWNCMD still waiting would outlive its upsmon
        self.mon.stop()

    def stop(self):
        self.release()
        self.mon.stop()

    def log_tail(self):
        return self.mon.log()[-1500:]


class MiniUpsmon:
    """Stand-in for upsmon where NUT is not installed: LOGIN to the tier, poll ups.status every
    second, on FSD record the time, wait for release(), LOGOUT."""
    kind = "mini"

    def __init__(self, tier, relay_addrs, user, password, keep_dir=None):
        # the first sentinel only: a pair needs the real upsmon (Site notes it)
        self.tier, self.addr, self.user, self.password = tier, relay_addrs[0], user, password
        self.t_shutdown = None
        self._release = threading.Event()
        self._stop = threading.Event()
        self.logged_in = False
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True, name="mini-upsmon")
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                with nutreal.NutClient(self.addr[0], self.addr[1], timeout=3) as c:
                    for line in ("USERNAME %s" % self.user, "PASSWORD %s" % self.password,
                                 "LOGIN %s" % self.tier):
                        r = c.cmd(line)[0]
                        if not r.startswith("OK"):
                            raise OSError(r)
                    self.logged_in = True
                    while not self._stop.is_set():
                        r = c.cmd("GET VAR %s ups.status" % self.tier)[0]
                        toks = r.split('"')[1].split() if r.count('"') >= 2 else []
                        if "FSD" in toks:
                            self.t_shutdown = time.time()
                            # the OS is shutting down; its login lasts until it is done
                            while not (self._release.wait(0.2) or self._stop.is_set()):
                                c.cmd("GET VAR %s ups.status" % self.tier)
                            if self._release.is_set():
                                c.cmd("LOGOUT")
                            return
                        self._stop.wait(1.0)
            except (OSError, EOFError, IndexError):
                self.logged_in = False
                self._stop.wait(1.0)

    def shutdown_time(self):
        return self.t_shutdown

    def release(self):
        self._release.set()

    def kill(self):
        self._stop.set()

    def stop(self):
        self._stop.set()
        if self.thread:
            self.thread.join(3)

    def log_tail(self):
        return ""


class SimHost:
    def __init__(self, spec, addr, mac, site):
        self.spec = spec
        self.addr = addr
        self.mac = mac
        self.site = site
        self.state = "up"
        self.history = []        # (time.time(), state)
        self.client = None
        self.relays = []         # one per sentinel (site.nuts)
        self.health = None
        self.stop_at = None
        self.boot_at = None
        self.shutdowns = []      # time.time() of each SHUTDOWNCMD
        self.ups_at = []         # time.time() each time it became healthy after a boot
        self.crashes = []        # time.time() it lost power while running
        self.wol = []            # time.time() of magic packets received

    def _set(self, state, now):
        if state != self.state:
            self.state = state
            self.history.append((now, state))

    def _start_os(self, now):
        if self.spec.upsmon:
            if not self.relays:
                self.relays = [Relay(self.addr, nut) for nut in self.site.nuts]
            cls = UpsmonClient if self.site.client_kind == "upsmon" else MiniUpsmon
            self.client = cls(self.spec.tier, [r.addr for r in self.relays], self.site.user,
                              self.site.password)
            self.client.start()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, self.site.health_port))
        s.listen(16)
        s.setblocking(False)
        self.health = s

    def _stop_os(self, kill):
        if self.client is not None:
            (self.client.kill if kill else self.client.stop)()
            self.client = None
        if kill:
            for r in self.relays:
                r.drop_all()
        if self.health is not None:
            self.health.close()
            self.health = None

    def step(self, now, powered):
        st = self.state
        if not powered and st != "off":
            if st in ("up", "stopping", "booting"):
                self.crashes.append(now)
            self._stop_os(kill=True)
            self._set("off", now)
            return
        if self.health is not None:
            while True:
                try:
                    c, _ = self.health.accept()
                    c.close()
                except OSError:
                    break
        if st == "off" and powered:
            if self.spec.wake == "power":
                self.boot_at = now + self.site.wall(self.spec.boot_s)
                self._set("booting", now)
            else:
                self._set("halted", now)
        elif st == "up" and self.client is not None:
            t = self.client.shutdown_time()
            if t is not None:
                self.shutdowns.append(t)
                self.stop_at = None if self.spec.hang_on_shutdown else now + self.site.wall(self.spec.shutdown_s)
                self._set("stopping", now)
        elif st == "stopping" and self.stop_at is not None and now >= self.stop_at:
            self._stop_os(kill=False)
            self._set("halted", now)
        elif st == "booting" and now >= self.boot_at:
            self._start_os(now)
            self.ups_at.append(now)
            self._set("up", now)

    def wake(self, now):
        self.wol.append(now)
        if self.state == "halted":
            self.boot_at = now + self.site.wall(self.spec.boot_s)
            self._set("booting", now)

    def close(self):
        self._stop_os(kill=False)
        for r in self.relays:
            r.close()
        self.relays = []


class Site:
    """All hosts of a scenario. `nut` = the board's NUT (host, port), or a list of them, one per
    sentinel of a pair; `scale` story s per wall s."""

    def __init__(self, scenario, nut, user, password, scale, first_octet=20):
        self.scenario = scenario
        self.nuts = []
        self._set_nut(nut)
        self.user = user
        self.password = password
        self.scale = scale
        self.client_kind = "upsmon" if upsmon_available() else "mini"
        self.notes = []
        if self.client_kind == "mini" and scenario.pair is not None:
            self.notes.append("a pair without upsmon: the bench's small NUT client watches "
                              "sentinel A only")
        if self.client_kind == "mini":
            self.notes.append("upsmon is not installed (%s): hosts run the bench's own small NUT "
                              "client instead" % UPSMON)
        self.hosts = []
        for i, h in enumerate(scenario.hosts()):
            addr = "127.0.0.%d" % (first_octet + i)
            mac = "02:50:53:00:%02x:%02x" % (i // 256, i % 256)
            self.hosts.append(SimHost(h, addr, mac, self))
        addrs = ["127.0.0.1"] + [h.addr for h in self.hosts]
        self.health_port = free_port_on(addrs)
        self.wol_port = free_port_on(addrs, socket.SOCK_DGRAM)
        self.wol_socks = []

    def wall(self, story_s):
        return story_s / self.scale

    def host(self, name):
        return next(h for h in self.hosts if h.spec.name == name)

    def device_hosts(self, tier):
        """The device-config host entries of a tier (hosts with in_plan)."""
        out = []
        for h in self.hosts:
            if h.spec.tier == tier and h.spec.in_plan:
                out.append({"name": h.spec.name, "address": h.addr,
                            "mac": h.mac if h.spec.wake == "wol" else None,
                            "health": "tcp:%d" % self.health_port if h.spec.health == "tcp" else "nut"})
                if h.spec.feeds:
                    out[-1]["feeds"] = list(h.spec.feeds)
        return out

    def _set_nut(self, nut):
        self.nut = nut[0] if isinstance(nut, list) else nut
        self.nuts = list(nut) if isinstance(nut, list) else [nut]

    def start(self, nut=None):
        if nut is not None:
            self._set_nut(nut)
        for a in ["127.0.0.1"] + [h.addr for h in self.hosts]:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((a, self.wol_port))
            s.setblocking(False)
            self.wol_socks.append(s)
        now = time.time()
        for h in self.hosts:
            h._start_os(now)
            h.history.append((now, "up"))

    def wait_logged_in(self, timeout):
        """Until every host with upsmon has logged in (real upsmon: its log says so)."""
        deadline = time.monotonic() + timeout
        for h in self.hosts:
            c = h.client
            if c is None:
                continue
            while True:
                if isinstance(c, UpsmonClient):
                    ok = c.mon.log().count("Logged into UPS") >= len(c.mon.monitors)
                else:
                    ok = c.logged_in
                if ok:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("host %s did not log in to the sentinel: %s"
                                       % (h.spec.name, c.log_tail()))
                time.sleep(0.1)

    def _drain_wol(self, now):
        for s in self.wol_socks:
            while True:
                try:
                    data, _ = s.recvfrom(2048)
                except OSError:
                    break
                mac = _magic_target(data)
                if mac is None:
                    continue
                for h in self.hosts:
                    if h.mac.replace(":", "") == mac:
                        h.wake(now)

    def step(self, powered):
        """powered: the UPS's output is on (one UPS for the whole site), or {feed: its UPS's
        output on} (one UPS per feed): a host runs while any of its feeds (none listed: any
        feed) is powered, as a dual-corded server does on one supply. A feed without a UPS
        counts as powered (its raw mains is not simulated)."""
        now = time.time()
        self._drain_wol(now)
        for h in self.hosts:
            if isinstance(powered, dict):
                ups = [v for f, v in powered.items() if not h.spec.feeds or f in h.spec.feeds]
                on = any(ups) if ups else True   # on feeds without a UPS: not simulated
            else:
                on = powered
            h.step(now, on)

    def host_action(self, name, what):
        h = self.host(name)
        now = time.time()
        if what == "hang_on_shutdown":
            h.spec.hang_on_shutdown = True
        elif what in ("power_off", "crash"):
            if what == "crash":
                h.crashes.append(now)
            h._stop_os(kill=True)
            h._set("halted", now)

    def close(self):
        for h in self.hosts:
            h.close()
        for s in self.wol_socks:
            s.close()
        self.wol_socks = []


def _magic_target(data):
    """The MAC (12 lower-case hex digits) a Wake-on-LAN magic packet addresses, or None."""
    i = data.find(b"\xff" * 6)
    if i < 0 or len(data) < i + 102:
        return None
    mac = data[i + 6:i + 12]
    if data[i + 6:i + 102] != mac * 16:
        return None
    return mac.hex()
