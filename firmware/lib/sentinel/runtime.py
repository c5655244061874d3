"""The running sentinel's shared context, used by every task module and using none of them.

Owns: the non-wrapping millisecond clock, the log (a journal record plus a console `log`
event), task liveness for the watchdog supervisor, the count of hook failures, the heap figures
measured right after the reporter's collection, the file paths under the board's root, atomic
file writes, and the boot-loop counter (a boot that crashes soon after starting counts; a boot
that lives STABLE_UPTIME_MS resets the count).
"""
import asyncio
import gc
import json
import os
import select
import sys
import time

from sentinel import console

WDT_MS = 8000             # fits the RP2040's 8388 ms maximum
STABLE_UPTIME_MS = 60000  # a boot that lived this long resets the crash counter
SAFE_MODE_BOOTS = 3       # this many short-lived boots in a row: safe mode
EPOCH_VALID = 1600000000  # an RTC reading before 2020 means the clock was never set


def out(data):
    """The console's writer: bytes to stdout."""
    w = getattr(sys.stdout, "buffer", sys.stdout)
    w.write(data)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def paths(root="/"):
    """The files the sentinel keeps under `root` (the board's filesystem root)."""
    r = root if root.endswith("/") else root + "/"
    return {"config": r + "config.json", "state": r + "state.json", "boots": r + "boots.json",
            "upload": r + "config.upload"}


def count_boot(cause, boots_path):
    """Crashes in a row soon after boot. Only resets the firmware caused (watchdog, crash)
    count: a power cut is no reason to give up shutdown authority."""
    b = read_json(boots_path) or {}
    n = int(b.get("unstable", 0)) + 1 if cause in ("wdt", "crash", "unknown") else 0
    try:
        write_atomic(boots_path, json.dumps({"unstable": n}))
    except OSError:
        pass
    return n


def mark_stable(boots_path):
    b = read_json(boots_path)
    if b and b.get("unstable"):
        try:
            write_atomic(boots_path, json.dumps({"unstable": 0}))
        except OSError:
            pass


def drop_validator():
    """The validator and its schema tables (~30 KB) are needed only at boot and for a config
    push: forget them."""
    drop_modules(("config", "schema", "passwd"))


def bind(f, arg):
    """f(arg) as a callable of no arguments, made in this resident module (a closure made in
    a module dropped after boot would keep that module's globals alive)."""
    return lambda: f(arg)


def drop_modules(names):
    """Forget sentinel.<name> modules imported for a rare job, so the next collection frees
    their code. The package keeps a reference too, so drop both. No collection here: this
    runs inside console handlers, and a collection stalls the loop (the reporter collects)."""
    pkg = sys.modules.get("sentinel")
    for name in names:
        sys.modules.pop("sentinel." + name, None)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)


class Clock:
    """Monotonic milliseconds that never wrap (ticks_ms wraps at 2^30 on MicroPython)."""

    def __init__(self):
        self.last = time.ticks_ms()
        self.ms = 0

    def __call__(self):
        t = time.ticks_ms()
        self.ms += time.ticks_diff(t, self.last)
        self.last = t
        return self.ms


class StdinReader:
    """Non-blocking console input. A stream read(n) on the console blocks until n bytes (or a
    newline) arrive, which would freeze every task on a half line; so poll, then take bytes
    one at a time while more are ready."""

    def __init__(self):
        self.s = getattr(sys.stdin, "buffer", sys.stdin)
        self.poll = select.poll()
        self.poll.register(self.s, select.POLLIN)

    async def read(self, n):
        while True:
            b = b""
            while len(b) < n and self.poll.poll(0):
                c = self.s.read(1)
                if not c:
                    return b
                b += c if isinstance(c, bytes) else c.encode()
            if b:
                return b
            await asyncio.sleep_ms(20)


class Runtime:
    """What every part of the running sentinel shares.

    board     the HAL Board            cfg       the validated config
    journal   sentinel.journal.Journal console   sentinel.console.ConsoleServer (ops fill its
                                                 handler table)
    files     paths(root)              now()     milliseconds since boot, never wraps
    alive     task name -> ms of its last progress (the supervisor reads it)
    errors    hook and control-step failures (reported in status)
    heap      [free, alloc] measured right after the reporter's last gc.collect()
    """

    def __init__(self, board, cfg, journal, write=out, root="/"):
        self.board = board
        self.cfg = cfg
        self.journal = journal
        self.console = console.ConsoleServer(write, {})
        self.files = paths(root)
        self.now = Clock()
        self.t_boot = self.now()
        self.alive = {}
        self.errors = 0
        self.heap = [gc.mem_free(), gc.mem_alloc()]

    def uptime(self):
        return self.now() - self.t_boot

    def progress(self, name):
        self.alive[name] = self.now()

    def log(self, kind, data=None, critical=False):
        seq = self.journal.append(kind, data, now_ms=self.now(), critical=critical)
        self.console.event("log", seq=seq, type=kind, data=data)
        return seq

    def journal_fn(self, kind, data, now=None, critical=False):
        """log() in the (type, data, now_ms, critical) form the logic modules call."""
        return self.log(kind, data, critical)

    def error(self, where, e):
        if self.errors < 0x3FFFFFFF:  # a small int however long a fault lasts
            self.errors += 1
        try:
            self.console.event("error", where=where, error=repr(e))
        except Exception:
            pass

    def guard(self, name, fn):
        """A failing hook (flash full, heap exhausted) is counted and reported, never allowed
        to stop the task calling it: losing one capture is better than losing mains sensing."""
        def call(*args):
            try:
                fn(*args)
            except Exception as e:
                self.error(name, e)
        return call

    def stale(self):
        """Sensor data too old to trust (a hung sampler makes NUT clients fail safe)."""
        t = self.alive.get("sampler")
        return t is None or self.now() - t > self.cfg["nut"]["stale_s"] * 1000
