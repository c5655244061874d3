"""A fake sentinel on a pty, for testing the host CLI before (and beside) the real firmware.

`FakeBoard()` opens a pseudo-terminal; pyserial opens its slave path (`fb.port`) exactly like a
USB port, exclusive lock included. A thread answers console frames (sentinel.console framing,
the ops and reply shapes of the console protocol), streams `status` events, and mixes REPL
noise, garbage and broken frames into its output the way a real board's console does.

Tests steer it: add log records, rotate the log, add captures, change the status, go silent
(`fb.silent = True`), cut the link after N upload chunks, or vanish altogether (`unplug()`).
It can also run as a process: `python fakeboard.py` prints the port and serves until killed.
"""
import base64
import copy
import errno
import hashlib
import json
import os
import select
import sys
import threading
import time
import tty

from click.testing import CliRunner

from powersentinel.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "firmware", "lib"))
from sentinel import config as fwconfig  # noqa: E402
from sentinel import console  # noqa: E402
from sentinel.version import PROTOCOL, VERSION  # noqa: E402

NOISE = (
    b"MicroPython v1.29.0-preview on 2026-01-01; ESP32 module with ESP32\r\n",
    b">>> \r\n",
    b"\x00\xff\xfe garbage \x1b[0m\r\n",
    b"@PS1 {\"ev\":\"status\"} 00000000\r\n",       # our marker, wrong CRC
    b"@PS1 {\"ev\":\"status\",\"mains\":{\r\n",       # a frame cut in half
    b"Traceback (most recent call last):\r\n",
)


def default_status():
    return {
        "mains": {"v": 229.8, "hz": 50.01, "lost": False, "good": True,
                  "events": [{"type": "dip", "start_ms": 1200, "duration_ms": 80,
                              "residual_v": 171.0}]},
        "ups": {"link": "ok", "status": "OL", "charge": 100, "runtime": 1800, "source": "q1"},
        "state": {"name": "normal", "cause": "mains ok", "since_ms": 0, "ponr": False,
                  "plan_id": None, "drill": False},
        "tiers": [
            {"name": "apps", "phase": "up", "fsd": False,
             "connected": [{"host": "web1", "addr": "10.0.0.5"}],
             "missing": [{"host": "web2", "since_s": 42}]},
            {"name": "databases", "phase": "up", "fsd": False,
             "connected": [{"host": "pg1", "addr": "10.0.1.5"}, {"host": "pg2", "addr": "10.0.1.6"}],
             "missing": []},
        ],
        "heap": {"free": 61234, "alloc": 52000},
        "uptime_ms": 0,
        "time": 0,
    }


class FakeBoard:
    def __init__(self, config=None, device_id="fake-0001", noise=True, status_period=1.0,
                 protocol=PROTOCOL, ops=None, board="esp32"):
        self.lock = threading.RLock()
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        self.device_id = device_id
        self.noise = noise
        self.status_period = status_period
        self.protocol = protocol
        self.board = board
        cfg, errs = fwconfig.validate(config or {})
        assert not errs, errs
        self.cfg = cfg
        self.cfg_source = "config" if config else "defaults"
        self.status = default_status()
        self.log = []            # [{seq, epoch, ms, type, data}] oldest first
        self.next_seq = 1
        self.captures = {}       # id -> (meta, bytes)
        self.upload = None       # config text being received
        self.chunks = 0          # config_put_chunk requests answered
        self.hangup_after_chunks = None  # go silent after answering this many chunks
        self.unplug_after_chunks = None  # vanish (port closed) after answering this many chunks
        self.silent = False      # answer nothing, send nothing (a hung or unplugged board)
        self.requests = []       # (op, args) of every request seen
        self.ops = set(ops) if ops is not None else None  # None: every op
        self.boots = 1
        self.t_boot = time.monotonic()
        self.epoch = 1767225600  # 2026-01-01T00:00:00Z, set by time_set
        self.epoch_at = time.monotonic()
        self._n_out = 0
        self._buf = b""
        self._stop = threading.Event()
        self._reboot_at = None
        self._thread = threading.Thread(target=self._run, name="fakeboard", daemon=True)
        self.add_log("boot", {"cause": "power_on"})

    # -- control from tests --------------------------------------------------------------------
    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def unplug(self):
        """The board disappears (USB cable pulled): the port closes under the host."""
        self.stop()

    def uptime_ms(self):
        return int((time.monotonic() - self.t_boot) * 1000)

    def now_epoch(self):
        return int(self.epoch + time.monotonic() - self.epoch_at)

    def add_log(self, type_, data=None, emit=True):
        with self.lock:
            rec = {"seq": self.next_seq, "epoch": self.now_epoch(), "ms": self.uptime_ms(),
                   "type": type_, "data": data if data is not None else {}}
            self.next_seq += 1
            self.log.append(rec)
            if emit:
                self._send({"ev": "log", "seq": rec["seq"], "type": type_, "data": rec["data"]})
            return rec["seq"]

    def rotate(self, keep_from):
        """Drop records older than seq `keep_from` (the device's log rotated)."""
        with self.lock:
            self.log = [r for r in self.log if r["seq"] >= keep_from]

    def add_capture(self, meta, data):
        with self.lock:
            cid = self.add_log("capture", {"bytes": len(data)})
            self.captures[cid] = (meta, bytes(data))
            return cid

    def reboot(self, cause="soft"):
        """Restart: uptime from 0, a boot banner (noise) on the console, seq numbers continue."""
        with self.lock:
            self.boots += 1
            self.t_boot = time.monotonic()
            self.upload = None
            self._write(b"\r\nets Jun  8 2016 00:22:57\r\nrst:0xc (SW_CPU_RESET)\r\n"
                        b"MicroPython v1.29.0 on 2026-01-01\r\n")
            self.add_log("boot", {"cause": cause})
            self._send({"ev": "boot", "firmware": VERSION, "cause": cause})

    # -- output ----------------------------------------------------------------------------------
    def _write(self, data):
        if self.silent:
            return
        try:
            os.write(self.master, data)
        except OSError as e:  # nobody reading and the pty buffer full: a UART drops bytes too
            if e.errno not in (errno.EAGAIN, errno.EIO):
                raise

    def _send(self, obj):
        self._n_out += 1
        if self.noise and self._n_out % 3 == 0:
            self._write(NOISE[(self._n_out // 3) % len(NOISE)])
        self._write(console.encode(obj))

    # -- the loop --------------------------------------------------------------------------------
    def _run(self):
        next_status = time.monotonic() + self.status_period
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.master], [], [], 0.05)
            except (OSError, ValueError):
                return
            if self._stop.is_set():
                return
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if chunk and not self.silent:
                    self._buf += chunk
                    while b"\n" in self._buf:
                        line, self._buf = self._buf.split(b"\n", 1)
                        self._line(line)
                    if len(self._buf) > console.MAX_LINE:
                        self._buf = b""
            now = time.monotonic()
            with self.lock:
                if self._reboot_at is not None and now >= self._reboot_at:
                    self._reboot_at = None
                    self.reboot("soft")
                if self.status_period and now >= next_status:
                    next_status = now + self.status_period
                    if not self.silent:
                        self._send(dict(self.op_status({}), ev="status"))

    def _line(self, line):
        if len(line) > console.MAX_LINE:
            self._send({"id": None, "ok": False, "error": "request too long"})
            return
        if console.MARK not in line:
            return
        req = console.decode(line)
        if not isinstance(req, dict):
            self._send({"id": None, "ok": False, "error": "malformed frame"})
            return
        rid, op = req.get("id"), req.get("op")
        with self.lock:
            self.requests.append((op, {k: v for k, v in req.items() if k not in ("id", "op")}))
            fn = getattr(self, "op_" + str(op), None)
            if fn is None or (self.ops is not None and op not in self.ops):
                self._send({"id": rid, "ok": False, "error": "unknown op %r" % (op,)})
                return
            try:
                data = fn(req)
            except ValueError as e:
                self._send({"id": rid, "ok": False, "error": str(e)})
                return
            self._send({"id": rid, "ok": True, "data": data})
            if op == "config_put_chunk" and self.hangup_after_chunks is not None \
                    and self.chunks >= self.hangup_after_chunks:
                self.silent = True
            if op == "config_put_chunk" and self.unplug_after_chunks is not None \
                    and self.chunks >= self.unplug_after_chunks:
                self.unplug()

    # -- ops -------------------------------------------------------------------------------------
    def op_ping(self, req):
        return "pong"

    def op_identify(self, req):
        return {"firmware": VERSION, "protocol": self.protocol, "board": self.board,
                "mpy": 6, "uptime_ms": self.uptime_ms(), "reset_cause": "power_on",
                "config_source": self.cfg_source, "config_errors": [],
                "device_id": self.device_id}

    def op_status(self, req):
        st = copy.deepcopy(self.status)
        st["uptime_ms"] = self.uptime_ms()
        st["time"] = self.now_epoch()
        return st

    def op_config_get(self, req):
        return {"config": copy.deepcopy(self.cfg), "source": self.cfg_source}

    def op_config_put_chunk(self, req):
        off, text = req.get("offset"), req.get("text")
        if not isinstance(off, int) or not isinstance(text, str):
            raise ValueError("config_put_chunk needs offset (int) and text (str)")
        if len(text) > 2048:
            raise ValueError("chunk of %d characters; at most 2048" % len(text))
        if off == 0:
            self.upload = ""
        elif self.upload is None or off != len(self.upload):
            raise ValueError("chunk at offset %d does not follow the %d characters received; "
                             "start again at offset 0" % (off, len(self.upload or "")))
        self.upload += text
        self.chunks += 1
        return {"received": len(self.upload)}

    def op_config_put_commit(self, req):
        text = self.upload
        if text is None:
            raise ValueError("no configuration upload in progress")
        if req.get("length") != len(text):
            raise ValueError("received %d characters, the host sent %s" % (len(text), req.get("length")))
        if hashlib.sha256(text.encode()).hexdigest() != req.get("sha256"):
            raise ValueError("sha256 mismatch: the upload was damaged; nothing installed")
        self.upload = None
        try:
            obj = json.loads(text)
        except ValueError:
            raise ValueError("not valid JSON; nothing installed")
        cfg, errs = fwconfig.validate(obj)
        if errs:
            raise ValueError("invalid configuration, nothing installed: " + "; ".join(errs))
        changed = [k for k in cfg if cfg[k] != self.cfg.get(k)]
        self.cfg, self.cfg_source = cfg, "config"
        self.add_log("config", {"changed": changed})
        self._reboot_at = time.monotonic() + 0.3  # applied by rebooting, like the firmware
        return {"installed": True, "changed": changed}

    def op_log_read(self, req):
        frm, mx = req.get("from_seq", 0), req.get("max", 32)
        if not isinstance(mx, int) or not 1 <= mx <= 32:
            raise ValueError("max must be 1..32")
        recs = [r for r in self.log if r["seq"] >= frm][:mx]
        return {"records": copy.deepcopy(recs),
                "first": self.log[0]["seq"] if self.log else None,
                "last": self.log[-1]["seq"] if self.log else None}

    def op_capture_list(self, req):
        return [{"id": cid, "bytes": len(d), "meta": m} for cid, (m, d) in sorted(self.captures.items())]

    def op_capture_read(self, req):
        # the frame's "id" is the request id, so the capture is named by capture_id
        cid, off, n = req.get("capture_id"), req.get("offset", 0), req.get("length", 1536)
        if cid not in self.captures:
            raise ValueError("no capture %r" % (cid,))
        if not isinstance(n, int) or not 1 <= n <= 1536:
            raise ValueError("length must be 1..1536")
        meta, data = self.captures[cid]
        return {"meta": meta, "total": len(data),
                "data_b64": base64.b64encode(data[off:off + n]).decode()}

    def op_drill_start(self, req):
        self.status["state"]["drill"] = True
        return {"started": True, "plan_id": 7}

    def op_time_set(self, req):
        self.epoch, self.epoch_at = int(req["epoch"]), time.monotonic()
        return {"time": self.epoch}


if __name__ == "__main__":
    # As a process (tmux tests, manual trials): print the port, serve until killed.
    fb = FakeBoard(config=json.loads(sys.argv[1]) if len(sys.argv) > 1 else None).start()
    print(fb.port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        fb.stop()


# -- test helpers (imported by the test_cli_* modules) ------------------------------------------
try:
    import pytest
except ImportError:  # running as a process
    pytest = None

if pytest is not None:
    @pytest.fixture
    def fake():
        fb = FakeBoard().start()
        try:
            yield fb
        finally:
            fb.stop()


def invoke(args, env=None):
    """Run the CLI's real entry point (main(): the one-line error handling included) inside
    click's CliRunner isolation. Returns (exit code, stdout, stderr)."""
    runner = CliRunner()
    env = dict({"POWERSENTINEL_TIMEOUT": "1", "COLUMNS": "120"}, **(env or {}))
    with runner.isolation(env=env) as streams:
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, streams[0].getvalue().decode(), streams[1].getvalue().decode()
