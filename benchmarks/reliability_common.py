"""Shared tooling for the reliability tests (host/tests/test_reliability_*.py) and benchmarks
(benchmarks/reliability_*.py): virtual boards cloned from one deployed flash image, a config
builder, a NUT line client with deadlines, a loopback TCP fault proxy, and console helpers.

Everything here drives the REAL firmware on the virtual board (the MicroPython unix port) from
outside, through its console pty, its NUT socket, its wires and its process id; nothing in here
reaches inside the firmware.
"""
import atexit
import json  # noqa: F401  (re-exported for the tests)
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
for _p in (os.path.join(REPO, "host"),):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from powersentinel import virtual  # noqa: E402
from powersentinel.link import Link, LinkError  # noqa: E402
from powersentinel.nutreal import NutClient  # noqa: E402
from powersentinel.paths import use_firmware_lib  # noqa: E402

use_firmware_lib()
from sentinel.passwd import hash_password  # noqa: E402  # pyright: ignore[reportMissingImports]

# Accounts every reliability config carries. Plaintexts are long random-looking strings so a
# grep for them in logs cannot match anything by accident.
USERS = {
    # name: (plaintext, role, actions)
    "monuser": ("mon-Rk4w9PzQ2v", "secondary", []),
    "primo": ("pri-Hq7Lm2Xc8n", "primary", []),
    "admin": ("adm-Vb3Nt6Jy1s", "primary", ["FSD", "SET", "INSTCMD"]),
    "setter": ("set-Wd5Gk8Fu0e", "secondary", ["SET"]),
}
TIER = "apps"


def make_config(**over):
    """A full config dict; `over` maps dotted paths ("policy.grace_s") to values."""
    cfg = {
        "version": 1,
        "site": {"name": "reliability"},
        "mains": {"nominal_v": 230.0, "nominal_hz": 50, "sample_rate": 4000, "block_len": 16,
                  "volts_per_count": 0.02},
        "ups": {"link": "none", "baud": 2400, "poll_ms": 500, "link_lost_s": 3,
                "contacts": "OB=1;LB=2;", "debounce_ms": 50, "battery_runtime_s": 1200},
        "policy": {"grace_s": 3600, "charge_floor_pct": 0, "runtime_floor_s": 0,
                   "shutdown_on_link_lost": True, "stable_mains_s": 5},
        "nut": {"port": 3493, "max_conns": 8, "idle_timeout_s": 60, "stale_s": 5,
                "users": [{"name": n, "password": hash_password(pw), "role": role,
                           "actions": acts} for n, (pw, role, acts) in USERS.items()]},
        "tiers": [{"name": TIER, "max_wait_s": 60, "delay_s": 0, "hosts": []}],
    }
    for path, value in over.items():
        d = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
    return cfg


def write_config(path, cfg):
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


# -- boards -----------------------------------------------------------------------------------
_TEMPLATE = None
_TEMPLATE_LOCK = threading.Lock()


def template_flash():
    """Path of a flash image with the current firmware deployed (built once per process)."""
    global _TEMPLATE
    with _TEMPLATE_LOCK:
        if _TEMPLATE and os.path.exists(_TEMPLATE):
            return _TEMPLATE
        d = tempfile.mkdtemp(prefix="rel-template-")
        atexit.register(shutil.rmtree, d, True)  # one per process, reused by every board
        try:
            virtual.start(d)
            set_boot_headroom(virtual.info(d)["serial"])
        finally:
            virtual.stop(d)
        _TEMPLATE = os.path.join(d, "flash.img")
        return _TEMPLATE


BOOT_HEADROOM = 100000


def set_boot_headroom(serial):
    """Work around the boot-loop counter (firmware app.count_boot counts EVERY boot, planned
    resets and power cuts included, and more than 3 boots within 60 s each put the board in a
    safe mode it never leaves; see docs/reliability.md, finding F1): write a large negative
    count to /boots.json so the tests that reboot the board on purpose many times exercise the
    normal firmware. test_reliability_powerloss.py::test_power_cuts_do_not_enter_safe_mode
    checks the counter itself on an untouched board."""
    from powersentinel.deploy import Board as RawBoard
    with RawBoard(serial) as b:
        b.exec("f = open('/boots.json', 'w')\nf.write('{\"unstable\": -%d}')\nf.close()"
               % BOOT_HEADROOM)


class Board:
    """A virtual board started from the deployed template with a given config."""

    def __init__(self, d, cfg=None, extra_args=()):
        self.dir = os.path.abspath(d)
        os.makedirs(self.dir, exist_ok=True)
        tdir = os.path.dirname(template_flash())
        for name in os.listdir(tdir):   # flash.img, and romfs.img where the board has one
            if name.endswith(".img"):
                shutil.copyfile(os.path.join(tdir, name), os.path.join(self.dir, name))
        self.cfg = cfg if cfg is not None else make_config()
        self.cfg_path = write_config(os.path.join(self.dir, "config.json"), self.cfg)
        # The config goes in over the console protocol (config_put_*), as the CLI does, not
        # through virtual.start(config=): that path interrupts the firmware with mpremote right
        # after the supervisor starts, and a Ctrl-C sent before the interpreter installed its
        # SIGINT handler is lost; mpremote then waits forever (finding F5).
        virtual.start(self.dir, extra_args=extra_args)
        self.refresh()
        boots = self.boots()
        with link(self) as lk:
            upload_config(lk, json.dumps(self.cfg))
        self.wait_booted(boots)
        self.refresh()

    def refresh(self):
        """Re-read the pty path and NUT port (new after the supervisor itself restarts)."""
        self.meta = virtual.info(self.dir)
        host, port = self.meta["nut"].split(":")
        self.nut = (host, int(port))
        self.serial = self.meta["serial"]

    def info(self):
        return virtual.info(self.dir)

    def set(self, **values):
        return virtual.set_wires(self.dir, {k.replace("_", "."): v for k, v in values.items()})

    def wires(self, values):
        return virtual.set_wires(self.dir, values)

    def state(self):
        return virtual.state(self.dir)

    def boots(self):
        return self.info()["boots"]

    def kill(self):
        """Power loss as the flash sees it: SIGKILL the interpreter at this instant."""
        pid = self.info()["interpreter_pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return pid

    def wait_booted(self, after_boots, timeout=20):
        """Until a boot later than `after_boots` has reported its firmware hello."""
        def up():
            m = self.info()
            return m["boots"] > after_boots and m.get("firmware") and m
        return virtual.wait_for(up, timeout, "the board to boot again", interval=0.02)

    def console_log(self):
        with open(os.path.join(self.dir, "console.log"), "rb") as f:
            return f.read()

    def nut_client(self, timeout=3.0):
        return NutLine(self.nut[0], self.nut[1], timeout)

    def nut_get(self, var="ups.status", timeout=2.0):
        """One fresh connection, one GET VAR; the reply line (or the exception text)."""
        try:
            with self.nut_client(timeout) as c:
                return c.cmd("GET VAR %s %s" % (TIER, var))
        except (OSError, EOFError) as e:
            return "EXC %r" % (e,)

    def wait_serving(self, timeout=15.0):
        """Until GET VAR ups.status answers a real value; returns the seconds it took."""
        t0 = time.monotonic()
        virtual.wait_for(lambda: self.nut_get().startswith("VAR "), timeout,
                         "NUT to serve", interval=0.05)
        return time.monotonic() - t0

    def stop(self):
        virtual.stop(self.dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# -- NUT line client ------------------------------------------------------------------------------
class NutLine(NutClient):
    """The NUT line client, as the benches use it: send() writes bytes exactly as given (half
    lines, NULs, floods), cmd() returns the reply as one string, login() in one call."""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, line):
        NutClient.send(self, line)
        return "\n".join(self.reply())

    def login(self, user, password, ups=TIER):
        return [self.cmd("USERNAME %s" % user), self.cmd("PASSWORD %s" % password),
                self.cmd("LOGIN %s" % ups)]


# -- console ---------------------------------------------------------------------------------------
def link(board):
    return Link(board.serial, timeout=3.0)


def read_log(lk, from_seq=0, limit=100000):
    """Every record from from_seq on, via log_read pages: (records, first, last)."""
    out = []
    first = last = None
    nxt = from_seq
    while len(out) < limit:
        r = lk.request("log_read", from_seq=nxt, max=32, timeout=5)
        first, last = r["first"], r["last"]
        recs = r["records"]
        if not recs:
            break
        out.extend(recs)
        nxt = recs[-1]["seq"] + 1
        if last is not None and nxt > last:
            break
    return out, first, last


def upload_config(lk, cfg_text, chunk=2048, kill_hook=None):
    """config_put_chunk pieces then config_put_commit. Returns the commit reply."""
    import hashlib
    for off in range(0, len(cfg_text), chunk):
        lk.request("config_put_chunk", offset=off, text=cfg_text[off:off + chunk], timeout=5,
                   retries=0)
        if kill_hook:
            kill_hook()
    return lk.request("config_put_commit", length=len(cfg_text),
                      sha256=hashlib.sha256(cfg_text.encode()).hexdigest(), timeout=10, retries=0)


# -- loopback fault proxy --------------------------------------------------------------------------
class FaultProxy:
    """TCP proxy on 127.0.0.1 between NUT clients and the board's NUT port.

    mode "pass": relay; "drop": accept but discard every byte both ways (a black hole, no RST,
    as a dead switch port looks to TCP); "partition": as drop, and existing connections are
    held silently; delay_s adds latency to every chunk. flap(period) alternates pass/partition.
    """

    def __init__(self, target):
        self.target = target
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.mode = "pass"
        self.delay_s = 0.0
        self.stopping = False
        self.pairs = []
        self.stats = {"accepted": 0, "bytes_up": 0, "bytes_down": 0, "dropped_chunks": 0}
        self._flap = None
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        self.srv.settimeout(0.2)
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.stats["accepted"] += 1
            try:
                u = socket.create_connection(self.target, timeout=3)
            except OSError:
                c.close()
                continue
            self.pairs.append((c, u))
            for a, b, key in ((c, u, "bytes_up"), (u, c, "bytes_down")):
                threading.Thread(target=self._pump, args=(a, b, key), daemon=True).start()

    def _pump(self, a, b, key):
        a.settimeout(0.2)
        while not self.stopping:
            try:
                d = a.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            if self.mode != "pass":
                self.stats["dropped_chunks"] += 1
                continue
            if self.delay_s:
                time.sleep(self.delay_s)
            try:
                b.sendall(d)
                self.stats[key] += len(d)
            except OSError:
                break
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def flap(self, period_s, until=None):
        """Alternate pass/partition every period_s seconds in a thread (until stop_flap)."""
        self._flapping = True

        def run():
            while self._flapping and not self.stopping:
                self.mode = "partition" if self.mode == "pass" else "pass"
                end = time.monotonic() + period_s
                while self._flapping and time.monotonic() < end:
                    time.sleep(0.05)
            self.mode = "pass"
        self._flap = threading.Thread(target=run, daemon=True)
        self._flap.start()

    def stop_flap(self):
        self._flapping = False
        if self._flap:
            self._flap.join(2)

    def close(self):
        self.stopping = True
        self._flapping = False
        try:
            self.srv.close()
        except OSError:
            pass
        for c, u in self.pairs:
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass


def rng(seed=None):
    seed = int(os.environ.get("PS_REL_SEED", seed if seed is not None else time.time()))
    return seed, random.Random(seed)


def console_frame(obj):
    """One console protocol frame (sentinel.console.encode)."""
    from sentinel import console  # pyright: ignore[reportMissingImports]
    return console.encode(obj)
