"""Run the REAL Network UPS Tools daemons on loopback, in private directories, for tests and
benchmarks: `upsd` with one `dummy-ups` driver per UPS, and any number of `upsmon` clients.

    from powersentinel.nutreal import RealUpsd, RealUpsmon, Monitor, NutUser, UpsSpec

    users = [NutUser("admin", "pw", upsmon="primary", actions=("SET", "FSD"), instcmds=("ALL",)),
             NutUser("mon", "monpw", upsmon="secondary")]
    with RealUpsd([UpsSpec("apps", {"ups.status": "OL", "battery.charge": "100"}, "Apps")],
                  users) as upsd:
        print(upsd.upsc("apps"))                       # dict of variables, via the real upsc
        with RealUpsmon([Monitor("apps", upsd.host, upsd.port, "mon", "monpw")]) as mon:
            mon.wait_logged_in(5)
            ...                                        # raise FSD on the server under test
            t = mon.wait_shutdown(10)                  # time.time() when SHUTDOWNCMD ran

Binaries come from /lib/nut (the /usr/sbin wrappers refuse to run without nut.conf MODE). Every
process runs as root (`-u root`) in the foreground and is stopped, killed if need be, by stop()
or on leaving the `with` block; the private directory is then removed (keep=True keeps it).

upsmon 2.8.0 always writes /run/nut/upsmon.pid (NUT_ALTPIDPATH does not apply to it) and refuses
to start while that file names a live process, so each RealUpsmon runs in its own mount
namespace (`unshare -m`) with its private directory bind-mounted over /run/nut. Where that is
not permitted, only one RealUpsmon can run at a time (start() raises a clear error).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

NUT_BIN = "/lib/nut"
# Variables dummy-ups adds to those of its .dev file (NUT 2.8.0); `port` is the .dev path.
# device.mfr/model and ups.mfr/model are defaults the .dev file may override.
DUMMY_EXTRA = {
    "device.mfr": "Dummy Manufacturer",
    "device.model": "Dummy UPS",
    "ups.mfr": "Dummy Manufacturer",
    "ups.model": "Dummy UPS",
    "device.type": "ups",
    "driver.name": "dummy-ups",
    "driver.parameter.mode": "dummy-once",
    "driver.parameter.pollinterval": "2",
    "driver.parameter.synchronous": "auto",
    "driver.version": "2.8.0",
    "driver.version.internal": "0.15",
}
DUMMY_CMDS = ("load.off",)


def available() -> bool:
    """True when the real upsd, dummy-ups and upsmon binaries are installed."""
    return all(os.access(os.path.join(NUT_BIN, b), os.X_OK) for b in ("upsd", "dummy-ups", "upsmon"))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _quote(value: str) -> str:
    """A value as NUT's config parser reads it back unchanged."""
    out = []
    for ch in str(value):
        if ch in '#\\"':
            out.append("\\")
        out.append(ch)
    return '"' + "".join(out) + '"'


@dataclass
class UpsSpec:
    name: str
    vars: Mapping[str, str] | Sequence[tuple[str, str]]
    desc: str = ""

    def items(self) -> list[tuple[str, str]]:
        v = self.vars.items() if isinstance(self.vars, Mapping) else self.vars
        return [(str(k), str(x)) for k, x in v]


@dataclass
class NutUser:
    name: str
    password: str
    upsmon: str | None = None  # "primary" | "secondary" | None
    actions: Sequence[str] = ()  # "SET", "FSD"
    instcmds: Sequence[str] = ()  # command names or "ALL"


@dataclass
class Monitor:
    ups: str
    host: str
    port: int
    user: str
    password: str
    role: str = "secondary"
    power_value: int = 1

    def line(self) -> str:
        return "MONITOR %s@%s:%d %d %s %s %s" % (
            self.ups, self.host, self.port, self.power_value, self.user, _quote(self.password),
            self.role)


class NutClient:
    """Minimal line client for a NUT server (real or ours), with a deadline on every read."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        if not data.endswith(b"\n"):
            data += b"\n"
        self.sock.sendall(data)

    def readline(self) -> str:
        while b"\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("latin-1")

    def reply(self) -> list[str]:
        """One reply: a single line, or a whole BEGIN LIST ... END LIST block."""
        first = self.readline()
        out = [first]
        if first.startswith("BEGIN LIST "):
            while not out[-1].startswith("END LIST "):
                out.append(self.readline())
        return out

    def cmd(self, line: str) -> list[str]:
        self.send(line)
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stop_proc(p: subprocess.Popen | None, timeout: float = 3.0) -> None:
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout)
    except ProcessLookupError:
        pass


class _Private:
    def __init__(self, workdir: str | None, keep: bool, prefix: str):
        self._own = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix=prefix)
        self.keep = keep
        for sub in ("conf", "state", "run"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(os.path.join(self.dir, "state"), 0o770)

    def path(self, *p: str) -> str:
        return os.path.join(self.dir, *p)

    def write_conf(self, name: str, text: str) -> str:
        fn = self.path("conf", name)
        with open(fn, "w") as f:
            f.write(text)
        os.chmod(fn, 0o640)
        return fn

    def env(self) -> dict:
        e = dict(os.environ)
        e["NUT_CONFPATH"] = self.path("conf")
        e["NUT_STATEPATH"] = self.path("state")
        e["NUT_ALTPIDPATH"] = self.path("run")
        return e

    def cleanup(self) -> None:
        if self._own and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class RealUpsd:
    """Real upsd + one dummy-ups per UPS on host:port (port None: a free one)."""

    def __init__(self, upses: Iterable[UpsSpec], users: Iterable[NutUser] = (),
                 host: str = "127.0.0.1", port: int | None = None, maxage: int = 15,
                 maxconn: int | None = None, workdir: str | None = None, keep: bool = False):
        self.upses = list(upses)
        self.users = list(users)
        self.host = host
        self.port = port or free_port(host)
        self.maxage = maxage
        self.maxconn = maxconn
        self.priv = _Private(workdir, keep, "nutreal-upsd-")
        self.drivers: list[subprocess.Popen] = []
        self.upsd: subprocess.Popen | None = None

    # paths and names
    @property
    def workdir(self) -> str:
        return self.priv.dir

    def dev_path(self, ups: str) -> str:
        return self.priv.path("conf", ups + ".dev")

    def target(self, ups: str) -> str:
        return "%s@%s:%d" % (ups, self.host, self.port)

    def expected_vars(self, ups: str) -> dict[str, str]:
        """The variables upsd will serve for `ups`: its .dev content plus dummy-ups's own."""
        spec = next(u for u in self.upses if u.name == ups)
        v = dict(DUMMY_EXTRA)
        v["driver.parameter.port"] = self.dev_path(ups)
        v.update(spec.items())
        return v

    def _write(self) -> None:
        ups_conf = []
        for u in self.upses:
            with open(self.dev_path(u.name), "w") as f:
                for k, v in u.items():
                    f.write("%s: %s\n" % (k, _quote(v)))
            ups_conf.append("[%s]\n  driver = dummy-ups\n  port = %s\n" % (u.name, self.dev_path(u.name)))
            if u.desc:
                ups_conf.append("  desc = %s\n" % _quote(u.desc))
        self.priv.write_conf("ups.conf", "".join(ups_conf))
        upsd_conf = "LISTEN %s %d\nMAXAGE %d\n" % (self.host, self.port, self.maxage)
        if self.maxconn:
            upsd_conf += "MAXCONN %d\n" % self.maxconn
        self.priv.write_conf("upsd.conf", upsd_conf)
        users = []
        for u in self.users:
            users.append("[%s]\n  password = %s\n" % (u.name, _quote(u.password)))
            if u.actions:
                users.append("  actions = %s\n" % " ".join(u.actions))
            for c in u.instcmds:
                users.append("  instcmds = %s\n" % c)
            if u.upsmon:
                users.append("  upsmon %s\n" % u.upsmon)
        self.priv.write_conf("upsd.users", "".join(users))
        self.priv.write_conf("nut.conf", "MODE=netserver\n")

    def start(self, timeout: float = 15.0) -> "RealUpsd":
        if not available():
            raise RuntimeError("NUT binaries not found under %s (apt-get install nut-server "
                               "nut-client)" % NUT_BIN)
        self._write()
        env = self.priv.env()
        deadline = time.monotonic() + timeout
        try:
            for u in self.upses:
                log = open(self.priv.path("driver-%s.log" % u.name), "wb")
                self.drivers.append(subprocess.Popen(
                    [os.path.join(NUT_BIN, "dummy-ups"), "-a", u.name, "-u", "root", "-D"],
                    env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
                log.close()
            for u in self.upses:
                sock = self.priv.path("state", "dummy-ups-" + u.name)
                while not os.path.exists(sock):
                    self._check_alive()
                    if time.monotonic() > deadline:
                        raise TimeoutError("dummy-ups for %s did not create %s" % (u.name, sock))
                    time.sleep(0.05)
            log = open(self.priv.path("upsd.log"), "wb")
            self.upsd = subprocess.Popen(
                [os.path.join(NUT_BIN, "upsd"), "-u", "root", "-D"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        for p in self.drivers + ([self.upsd] if self.upsd else []):
            if p.poll() is not None:
                name = p.args[0] if isinstance(p.args, (list, tuple)) else p.args
                raise RuntimeError("NUT process %s exited (%s); logs in %s" % (
                    name, p.returncode, self.workdir))

    def _wait_ready(self, deadline: float) -> None:
        """Until every UPS answers GET VAR ups.status with its .dev value (driver connected,
        file read, data fresh)."""
        pending = [u.name for u in self.upses]
        last = None
        while pending:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("upsd not ready for %s (last reply %r); logs in %s" % (
                    pending, last, self.workdir))
            try:
                with NutClient(self.host, self.port, timeout=1.0) as c:
                    while pending:
                        last = c.cmd("GET VAR %s ups.status" % pending[0])[0]
                        # the driver reports "WAIT" until it has read its .dev file
                        if not last.startswith("VAR ") or last.endswith('"WAIT"'):
                            break
                        pending.pop(0)
            except OSError as e:
                last = repr(e)
            if pending:
                time.sleep(0.1)

    def client(self, timeout: float = 5.0) -> NutClient:
        return NutClient(self.host, self.port, timeout)

    def upsc(self, ups: str, var: str | None = None, timeout: float = 5.0):
        """Run the real `upsc`: a dict of all variables, or one value when `var` is given."""
        args = ["upsc", self.target(ups)] + ([var] if var else [])
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True).stdout
        if var:
            return out.rstrip("\n")
        return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)

    def stop(self) -> None:
        _stop_proc(self.upsd)
        self.upsd = None
        for p in self.drivers:
            _stop_proc(p)
        self.drivers = []
        self.priv.cleanup()

    def __enter__(self) -> "RealUpsd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _unshare_ok() -> bool:
    if shutil.which("unshare") is None or not os.path.isdir("/run/nut"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                       capture_output=True, timeout=5)
    return r.returncode == 0


class RealUpsmon:
    """A real upsmon watching `monitors`, with SHUTDOWNCMD recording the time to a file.
    Timing settings default to fast test values (upsmon's own defaults: POLLFREQ 5,
    POLLFREQALERT 5, DEADTIME 15, HOSTSYNC 15, FINALDELAY 5)."""

    _unshare: bool | None = None

    def __init__(self, monitors: Iterable[Monitor], pollfreq: int = 1, pollfreqalert: int = 1,
                 deadtime: int = 3, hostsync: int = 3, finaldelay: int = 0,
                 minsupplies: int = 1, extra_conf: str = "", workdir: str | None = None,
                 keep: bool = False):
        self.monitors = list(monitors)
        self.settings = dict(POLLFREQ=pollfreq, POLLFREQALERT=pollfreqalert, DEADTIME=deadtime,
                             HOSTSYNC=hostsync, FINALDELAY=finaldelay, MINSUPPLIES=minsupplies)
        self.extra_conf = extra_conf
        self.priv = _Private(workdir, keep, "nutreal-upsmon-")
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None

    @property
    def workdir(self) -> str:
        return self.priv.dir

    @property
    def shutdown_file(self) -> str:
        return self.priv.path("shutdown_at")

    @property
    def log_file(self) -> str:
        return self.priv.path("upsmon.log")

    def _write(self) -> None:
        lines = [m.line() for m in self.monitors]
        lines.append('SHUTDOWNCMD "date +%%s.%%N >> %s"' % self.shutdown_file)
        lines += ["%s %d" % kv for kv in self.settings.items()]
        lines.append("POWERDOWNFLAG %s" % self.priv.path("killpower"))
        lines.append("RUN_AS_USER root")
        lines.append(self.extra_conf)
        self.priv.write_conf("upsmon.conf", "\n".join(lines) + "\n")
        self.priv.write_conf("nut.conf", "MODE=netclient\n")

    def start(self, timeout: float = 5.0) -> "RealUpsmon":
        if not available():
            raise RuntimeError("NUT binaries not found under %s" % NUT_BIN)
        self._write()
        if RealUpsmon._unshare is None:
            RealUpsmon._unshare = _unshare_ok()
        upsmon = [os.path.join(NUT_BIN, "upsmon"), "-D", "-p"]
        if RealUpsmon._unshare:
            # private /run/nut: upsmon's fixed pid file no longer collides between instances
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   'mount --bind "$0" /run/nut && exec "$@"', self.priv.path("run")] + upsmon
        else:
            pidf = "/run/nut/upsmon.pid"
            if os.path.exists(pidf):
                try:
                    pid = int(open(pidf).read().strip() or 0)
                    if pid:
                        os.kill(pid, 0)
                        raise RuntimeError("another upsmon runs (pid %d) and mount namespaces "
                                           "are not available: one RealUpsmon at a time" % pid)
                except (ValueError, ProcessLookupError):
                    pass
            cmd = upsmon
        log = open(self.log_file, "wb")
        self.proc = subprocess.Popen(cmd, env=self.priv.env(), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.started_at = time.time()
        deadline = time.monotonic() + timeout
        while "upsmon" not in self.log() or "debug level" not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError("upsmon exited at start: %s" % self.log()[-2000:])
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("upsmon did not start: %s" % self.log()[-2000:])
            time.sleep(0.05)
        return self

    def log(self) -> str:
        try:
            with open(self.log_file, "rb") as f:
                return f.read().decode("latin-1")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_logged_in(self, timeout: float = 5.0) -> None:
        """Until upsmon has logged into every monitored UPS."""
        for m in self.monitors:
            what = "Logged into UPS %s@%s:%d" % (m.ups, m.host, m.port)
            if not self.wait_log(what, timeout):
                raise TimeoutError("upsmon did not log into %s: %s" % (m.ups, self.log()[-2000:]))

    def shutdown_time(self) -> float | None:
        """Wall-clock time (time.time()) at which SHUTDOWNCMD ran, or None."""
        try:
            with open(self.shutdown_file) as f:
                first = f.readline().strip()
            return float(first) if first else None
        except (FileNotFoundError, ValueError):
            return None

    def wait_shutdown(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while True:
            t = self.shutdown_time()
            if t is not None or time.monotonic() > deadline:
                return t
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        _stop_proc(self.proc)
        self.proc = None
        self.priv.cleanup()

    def __enter__(self) -> "RealUpsmon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
