"""The Q1 UPS simulator (powersentinel.virtual.upssim.UpsSim) against NUT's REAL Megatec driver.

The bench and the virtual board trust UpsSim to behave like a Q1 UPS. Here NUT's own driver,
/lib/nut/nutdrv_qx (protocol megatec), talks to it over a pty of our own (a thread answers each
CR-terminated command with UpsSim.handle()), a private upsd serves it, and the real `upsc` must
read back what the simulator holds - ups.status, battery.voltage, input.voltage,
input.frequency, ups.load - on line and on battery with low battery. If the simulator's replies
drifted from what real Q1 UPSes send, NUT's parser would disagree here.

Every wait has a deadline; every process started here is stopped (killed if need be).
"""
import os
import selectors
import subprocess
import threading
import time

import pytest

from powersentinel import nutreal
from powersentinel.virtual.upssim import UpsSim

DRIVER = os.path.join(nutreal.NUT_BIN, "nutdrv_qx")
UPSD = os.path.join(nutreal.NUT_BIN, "upsd")

pytestmark = pytest.mark.skipif(
    not (os.access(DRIVER, os.X_OK) and os.access(UPSD, os.X_OK)) or
    subprocess.run(["which", "upsc"], capture_output=True).returncode != 0,
    reason="NUT's nutdrv_qx, upsd and upsc are needed (apt-get install nut-server nut-client)")


class PtyUps:
    """UpsSim on the master side of a pty; the driver opens the slave path like a serial port
    (it sets 2400 baud raw termios on it: a pty accepts and ignores the speed)."""

    def __init__(self, sim):
        self.sim = sim
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)  # we keep the slave open: no EIO while the driver reopens
        self.commands = []                  # every command line received (diagnostics)
        self.lock = threading.Lock()        # the test changes the simulator while we serve it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pty-ups")
        self._thread.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.master, selectors.EVENT_READ)
        buf = b""
        while not self._stop.is_set():
            if not sel.select(timeout=0.1):
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:
                break
            buf += data
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                line = line.strip(b"\n")
                if not line:
                    continue
                with self.lock:
                    self.commands.append(line)
                    reply = self.sim.handle(line)
                if reply:
                    os.write(self.master, reply)
        sel.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class DriverAndUpsd:
    """nutdrv_qx on the pty + upsd, in a private NUT_CONFPATH / NUT_STATEPATH."""

    def __init__(self, port_path, tmp_path):
        self.priv = nutreal._Private(str(tmp_path / "nut"), keep=True, prefix="")
        self.port = nutreal.free_port()
        self.procs = []
        self.port_path = port_path

    def start(self, timeout=20.0):
        p = self.priv
        # pollinterval: the quick status poll; pollfreq: the full update (voltages, load),
        # every 30 s by default
        p.write_conf("ups.conf", "[sim]\n  driver = nutdrv_qx\n  port = %s\n  protocol = megatec\n"
                                 "  pollinterval = 1\n  pollfreq = 1\n  desc = \"UpsSim\"\n" % self.port_path)
        p.write_conf("upsd.conf", "LISTEN 127.0.0.1 %d\nMAXAGE 15\n" % self.port)
        p.write_conf("upsd.users", "")
        p.write_conf("nut.conf", "MODE=standalone\n")
        env = p.env()
        deadline = time.monotonic() + timeout
        self._spawn([DRIVER, "-a", "sim", "-u", "root", "-F"], "driver.log", env)
        sock = p.path("state", "nutdrv_qx-sim")
        while not os.path.exists(sock):
            self._alive()
            if time.monotonic() > deadline:
                raise TimeoutError("nutdrv_qx did not create %s: %s" % (sock, self.log("driver.log")))
            time.sleep(0.05)
        self._spawn([UPSD, "-u", "root", "-F"], "upsd.log", env)
        # ready: upsd answers with the driver's data (not "data stale"/"driver not connected")
        while True:
            self._alive()
            try:
                if self.upsc("ups.status", timeout=3):
                    return self
            except subprocess.CalledProcessError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("upsd never served the driver's data: %s\n%s" % (
                    self.log("upsd.log"), self.log("driver.log")))
            time.sleep(0.1)

    def _spawn(self, cmd, log_name, env):
        with open(self.priv.path(log_name), "wb") as log:
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL))

    def _alive(self):
        for pr in self.procs:
            if pr.poll() is not None:
                raise RuntimeError("%s exited (%s): %s" % (pr.args[0], pr.returncode,
                                                           self.log("driver.log")[-2000:]))

    def log(self, name):
        try:
            with open(self.priv.path(name), "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def upsc(self, var=None, timeout=5):
        args = ["upsc", "sim@127.0.0.1:%d" % self.port] + ([var] if var else [])
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                             check=True).stdout
        if var:
            return out.strip()
        return dict(ln.split(": ", 1) for ln in out.splitlines() if ": " in ln)

    def stop(self):
        for pr in reversed(self.procs):  # upsd first, then the driver
            nutreal._stop_proc(pr)
        self.procs = []


@pytest.fixture
def rig(tmp_path):
    t = [1000.0]
    sim = UpsSim(runtime_full_s=1200.0, time_scale=1.0, clock=lambda: t[0])  # frozen: no drain
    ups = PtyUps(sim)
    nut = DriverAndUpsd(ups.path, tmp_path)
    started = nut.procs  # the same list object: it fills as start() spawns
    try:
        nut.start()
        started = list(nut.procs)
        yield sim, ups, nut
    finally:
        nut.stop()
        ups.close()
    assert started and all(pr.poll() is not None for pr in started)


def _expected(sim):
    """What a Q1 reader must report for the simulator's state (the Q1 reply's precision)."""
    on_line = sim.mains_ok
    toks = ["OB" if sim.on_battery() else "OL"] + (["LB"] if sim.low_battery() else [])
    return {"ups.status": " ".join(toks),
            "input.voltage": sim.input_v if on_line else 0.0,
            "input.frequency": sim.input_hz if on_line else 0.0,
            "battery.voltage": 20.4 + 6.9 * sim.charge / 100.0,
            "ups.load": float(int(sim.load))}


TOL = {"input.voltage": 0.051, "input.frequency": 0.051, "battery.voltage": 0.051,
       "ups.load": 0.5}


def _mismatches(got, exp):
    bad = []
    if got.get("ups.status") != exp["ups.status"]:
        bad.append("ups.status %r != %r" % (got.get("ups.status"), exp["ups.status"]))
    for k, tol in TOL.items():
        if k not in got:
            bad.append("no %s" % k)
        elif abs(float(got[k]) - exp[k]) > tol:
            bad.append("%s %s != %.2f" % (k, got[k], exp[k]))
    return bad


def _check(sim, ups, nut, timeout=15.0):
    """upsc's view once it matches the simulator (the driver polls every second: the first
    reads after a change may still be the previous state), else fail with what differs."""
    with ups.lock:
        exp = _expected(sim)
    deadline = time.monotonic() + timeout
    while True:
        got = nut.upsc()
        bad = _mismatches(got, exp)
        if not bad:
            break
        if time.monotonic() > deadline:
            raise AssertionError("upsc never matched the simulator: %s; driver log:\n%s"
                                 % ("; ".join(bad), nut.log("driver.log")[-3000:]))
        time.sleep(0.2)
    assert got["driver.name"] == "nutdrv_qx"
    return got


def test_real_nutdrv_qx_reads_what_the_simulator_holds(rig):
    sim, ups, nut = rig
    # on line, with values that are not anybody's defaults
    with ups.lock:
        sim.input_v, sim.input_hz, sim.charge, sim.load = 228.4, 49.9, 80.0, 30.0
    got = _check(sim, ups, nut)
    assert got["ups.status"] == "OL"
    # on battery, low battery (charge below the simulator's 20 % threshold), another load
    with ups.lock:
        sim.mains_ok = False
        sim.charge = 15.0
        sim.load = 47.0
    got = _check(sim, ups, nut)
    assert got["ups.status"] == "OB LB"
    assert abs(float(got["battery.voltage"]) - 21.4) <= 0.051
    # and back on line: the driver follows both ways
    with ups.lock:
        sim.mains_ok = True
        sim.charge = 60.0
    got = _check(sim, ups, nut)
    assert got["ups.status"] == "OL"
    # the driver really spoke Megatec to the simulator
    assert b"Q1" in ups.commands
    assert got["device.mfr"].strip() == "PowerSentinel"  # from the simulator's I reply
