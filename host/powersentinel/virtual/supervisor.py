"""The virtual board's supervisor: the process that plays the board's hardware.

It owns
- the console: a pty whose slave path (`/dev/pts/N`) is the board's "USB port". It outlives the
  interpreter, so mpremote and pyserial see one port across reboots, as with a real board;
- the interpreter: the MicroPython unix port, restarted on every reset on a pty of its own whose
  line discipline makes Ctrl-C a KeyboardInterrupt (ISIG on), as on a board;
  bytes are relayed between the two ptys;
- the wires (see wire.py): the ADC waveform paced in real time, contact levels, the UPS serial
  line (a Q1 UPS simulator), the outputs and the watchdog;
- a control socket (DIR/control.sock, JSON lines) for `powersentinel virtual set/get/stop`.

Run as `python -m powersentinel.virtual.supervisor --dir DIR ...` (what `virtual start` does).
"""
import argparse
import errno
import math
import hashlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import tty
from array import array

from . import wire
from .upssim import UpsSim
from .waveform import Waveform
from .rom import _vprofiles

ROM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rom")
EXIT_HARD = 3   # rom/_vmachine.py: machine.reset()
EXIT_SOFT = 4   # machine.soft_reset()
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
CONTACT_LINES = 8
OUTPUT_LINES = 4


ROMFS_KIB = 256  # the ROMFS partition (firmware modules run in place from it); 0: none


def micropython_cmd(heap: str, romfs: str, romfs_bytes: int = ROMFS_KIB * 1024):
    return [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch.py"),
            romfs, str(romfs_bytes), "-X", "heapsize=%s" % heap, "-i",
            os.path.join(ROM_DIR, "rom.py")]


def _set_nonblock(fd):
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)


def _interp_tty(fd):
    """Line discipline for the interpreter's terminal: raw bytes in and out, but ISIG on so
    Ctrl-C interrupts running code; no other signal characters."""
    a = termios.tcgetattr(fd)
    a[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.ISTRIP
              | termios.BRKINT | termios.PARMRK)
    a[1] &= ~termios.OPOST
    a[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ECHONL)
    # NOFLSH: a board's Ctrl-C drops nothing else; without it the kernel flushes the input
    # (and the output not yet relayed) when it sees Ctrl-C, racing with what follows it
    # (mpremote sends Ctrl-A right behind its Ctrl-C)
    a[3] |= termios.ISIG | termios.NOFLSH
    cc = a[6]
    cc[termios.VINTR] = b"\x03"
    for name in ("VQUIT", "VSUSP", "VDSUSP", "VLNEXT", "VDISCARD", "VREPRINT", "VWERASE",
                 "VKILL", "VERASE", "VEOF", "VSTART", "VSTOP"):
        if hasattr(termios, name):
            cc[getattr(termios, name)] = b"\x00"
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


def resolve_channels(channels, profile, volts_per_count):
    """The waveforms the ADC wire carries, from mains.channels items: name, feed (the channel's
    feed, else its name unless it is a phase L1..L3), pin (the profile's default for its index
    when not given, as the firmware's HAL resolves it), volts_per_count, and phase_deg: L1, L2,
    L3 at 0, -120, -240 degrees (an item's "phase_deg" overrides); feeds in phase (0)."""
    pins = (_vprofiles.PROFILES[profile] or {}).get("default_adc_pins") or (None,)
    out = []
    for i, ch in enumerate(channels or [{"name": "mains"}]):
        name = ch["name"]
        phase = name in ("L1", "L2", "L3")
        out.append({"name": name,
                    "feed": ch.get("feed") or ("" if phase else name),
                    "pin": ch.get("pin") if ch.get("pin") is not None else pins[i % len(pins)],
                    "volts_per_count": ch.get("volts_per_count") or volts_per_count,
                    "phase_deg": float(ch.get("phase_deg", -120.0 * (int(name[1]) - 1)
                                              if phase else 0.0))})
    return out


class Supervisor:
    def __init__(self, args):
        self.dir = os.path.abspath(args.dir)
        self.heap = args.heap
        self.profile = args.profile        # the port the `machine` stand-in plays (rom/_vprofiles.py)
        self.isr_preset = args.isr_preset  # test knob: ISR counters' starting values
        self.wifi = args.wifi
        self.sample_rate = args.sample_rate
        self.machine_reset = False         # the last reset was the firmware's machine.reset()
        self.flash = os.path.join(self.dir, "flash.img")
        self.intent_path = os.path.join(self.dir, "reset.intent")
        self.romfs = os.path.join(self.dir, "romfs.img")
        # 0: no ROMFS partition, as on stock images without one (RPI_PICO): deploy then
        # uploads .mpy files to littlefs and their code is loaded into the heap
        self.romfs_bytes = args.romfs_kib * 1024
        self.sel = selectors.DefaultSelector()
        self.log = open(os.path.join(self.dir, "console.log"), "ab", buffering=0)
        self.stopping = False
        self.powered = True        # False: the board's supply is cut (control `power`)
        self.boots = 0
        self.proc = None
        self.ifd = None            # master of the interpreter's pty
        self.cause = "power_on"
        self.pending_cause = None  # set when we kill the interpreter on purpose
        self.raw_mode = False      # the console is in the raw REPL (mpremote)
        self.want_raw = False      # rebooting into the raw REPL (soft reset from raw REPL)
        self.tail = b""            # recent interpreter output, for banner detection
        self.wdt_timeout = 0       # ms; 0 = not running (or parked)
        self.wdt_last = 0.0
        self.resets = []           # (time, cause)
        self.fw = None             # hello from the firmware
        self.progress = None       # last progress frame from the firmware
        self.contacts = bytearray(CONTACT_LINES)
        self.adc_stalled = False   # fault injection: the ADC stops delivering samples
        self.contact_names = dict(args.contact_names or {})
        self.outputs = bytearray(OUTPUT_LINES)
        # one waveform per mains channel (--channels), interleaved on the ADC wire; the first
        # is the clock of the wire and the UPS simulator's input
        self.channels = resolve_channels(args.channels, self.profile, args.volts_per_count)
        self.waves = []
        for ch in self.channels:
            w = Waveform(rate=args.sample_rate, nominal_v=args.nominal_v,
                         frequency=args.nominal_hz, volts_per_count=ch["volts_per_count"])
            w.phase = math.radians(ch["phase_deg"] % 360.0)
            self.waves.append(w)
        self.wave = self.waves[0]
        self.nominal_hz = args.nominal_hz
        # one UPS simulator per UPS serial line: the first on "U" frames, a second (two feeds,
        # one UPS each: --ups-feeds) on "V"; each one's input is its feed's channels
        feeds = args.ups_feeds or [None]
        self.upses = [{"feed": f, "kind": k, "rx": bytearray(),
                       "sim": UpsSim(runtime_full_s=args.ups_runtime, time_scale=args.time_scale),
                       "waves": self._feed_waves(f)} for f, k in zip(feeds, (b"U", b"V"))]
        self.ups = self.upses[0]["sim"]
        self.wire_client = None
        self.deframer = wire.Deframer()
        self.t0 = None             # waveform start (monotonic)

        # console pty: we keep the slave open too, so the master never sees EIO while no
        # program has the port open (a UART keeps sending into the void as well)
        self.cfd, self.cslave = os.openpty()
        tty.setraw(self.cslave)
        self.console_path = os.ttyname(self.cslave)
        _set_nonblock(self.cfd)
        self.sel.register(self.cfd, selectors.EVENT_READ, self._on_console)

        self.wire_srv = socket.socket()
        self.wire_srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.wire_srv.bind(("127.0.0.1", 0))
        self.wire_srv.listen(2)
        self.wire_srv.setblocking(False)
        self.sel.register(self.wire_srv, selectors.EVENT_READ, self._on_wire_accept)

        self.nut_port = args.nut_port or self._free_port()
        self.ctl_path = os.path.join(self.dir, "control.sock")
        if os.path.exists(self.ctl_path):
            os.unlink(self.ctl_path)
        self.ctl = socket.socket(socket.AF_UNIX)
        self.ctl.bind(self.ctl_path)
        self.ctl.listen(8)
        self.ctl.setblocking(False)
        self.sel.register(self.ctl, selectors.EVENT_READ, self._on_ctl_accept)

    @staticmethod
    def _free_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    # -- board.json --------------------------------------------------------------------------
    def write_board_json(self):
        info = {"serial": self.console_path, "nut": "127.0.0.1:%d" % self.nut_port,
                "pid": os.getpid(), "flash": self.flash, "romfs": self.romfs, "heap": self.heap,
                "interpreter_pid": self.proc.pid if self.proc else None,
                "boots": self.boots, "reset_cause": self.cause,
                "firmware": self.fw, "control": self.ctl_path, "profile": self.profile}
        tmp = os.path.join(self.dir, "board.json.tmp")
        with open(tmp, "w") as f:
            json.dump(info, f, indent=1)
        os.replace(tmp, os.path.join(self.dir, "board.json"))

    # -- interpreter ---------------------------------------------------------------------------
    def _blank_flash(self):
        # A never-formatted image is all zeros; anything else (even a damaged filesystem) is
        # left for the ROM to mount or report, never reformatted.
        with open(self.flash, "rb") as f:
            return not any(f.read(8192))

    def boot(self, fresh=False):
        fresh = fresh or self._blank_flash()
        self.boots += 1
        self.fw = None
        self.progress = None
        self.wdt_timeout = 0
        mfd, sfd = os.openpty()
        _interp_tty(sfd)
        env = dict(os.environ)
        env["PSV_BOOT"] = json.dumps({
            "rom": ROM_DIR, "flash": self.flash, "wire_port": self.wire_srv.getsockname()[1],
            "nut_port": self.nut_port, "cause": self.cause, "format": fresh,
            "raw": self.want_raw, "intent": self.intent_path,
            "uid": hashlib.sha256(self.flash.encode()).hexdigest()[:12],
            "profile": self.profile, "sample_rate": self.sample_rate,
            "isr_preset": self.isr_preset, "wifi": self.wifi,
            "adc_pins": [ch["pin"] for ch in self.channels],
            "machine_reset": self.machine_reset})
        with open(self.intent_path, "w"):
            pass

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # A stray Ctrl-C while CPython is still loading the interpreter would kill it; with
            # SIGINT ignored at exec, MicroPython installs its own handler once it runs code.
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        if not os.path.exists(self.romfs):
            with open(self.romfs, "wb") as f:
                f.truncate(self.romfs_bytes)  # an empty (erased) partition
        self.proc = subprocess.Popen(micropython_cmd(self.heap, self.romfs, self.romfs_bytes), stdin=sfd, stdout=sfd,
                                     stderr=sfd, env=env, cwd=self.dir, start_new_session=True,
                                     preexec_fn=ctty, close_fds=True)
        os.close(sfd)
        _set_nonblock(mfd)
        self.ifd = mfd
        self.sel.register(mfd, selectors.EVENT_READ, self._on_interp)
        self.resets.append((time.time(), self.cause))
        self.write_board_json()

    def _interp_exited(self):
        rc = self.proc.wait()
        self._close_interp()
        self.log.write(b"\r\n[supervisor] interpreter exited with status %d\r\n" % rc)
        if self.stopping or not self.powered:
            return  # an unpowered board stays dead until `power` on
        try:
            with open(self.intent_path) as f:
                intent = f.read().strip()
        except OSError:
            intent = ""
        self.machine_reset = intent == "hard" and not self.pending_cause
        if self.pending_cause:
            # a reset we caused (control `reset`, watchdog): the kill is not a crash
            self.cause, self.pending_cause, self.want_raw = self.pending_cause, None, False
            self.raw_mode = False
            self.boot()
            return
        if intent == "hard":
            rc = EXIT_HARD
        elif intent == "soft":
            rc = EXIT_SOFT
        if rc == EXIT_HARD:
            self.cause, self.want_raw = "hard", False
        elif rc in (0, EXIT_SOFT):
            # Ctrl-D ends the unix process; a board soft-reboots. From the raw REPL it comes
            # back in the raw REPL (boot.py only), which mpremote waits for.
            self.cause = "soft"
            self.want_raw = self.raw_mode and rc == 0
            self._to_console(b"MPY: soft reboot\r\n")
        else:
            self.cause, self.want_raw = "crash", False
        self.raw_mode = False
        self.boot()

    def _close_interp(self):
        if self.ifd is not None:
            self.sel.unregister(self.ifd)
            os.close(self.ifd)
            self.ifd = None
        if self.wire_client is not None:
            self.sel.unregister(self.wire_client)
            self.wire_client.close()
            self.wire_client = None

    def _kill_interp(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- console relay -------------------------------------------------------------------------
    def _to_console(self, data):
        self.log.write(data)
        try:
            os.write(self.cfd, data)
        except BlockingIOError:
            pass  # nobody reading the port: bytes are lost, as on a UART

    def _on_console(self, fd):
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, OSError):
            return
        if b"\x02" in data:
            self.raw_mode = False
        if self.ifd is not None:
            try:
                os.write(self.ifd, data)
            except (BlockingIOError, OSError):
                pass

    def _on_interp(self, fd):
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self._kill_interp()
            self._interp_exited()
            return
        self.tail = (self.tail + data)[-64:]
        if RAW_BANNER in self.tail:
            self.raw_mode = True
            self.tail = b""
        if self.want_raw and self.tail.endswith(b">>> "):
            self.want_raw = False
            os.write(self.ifd, b"\x01")
        self._to_console(data)

    # -- wires ---------------------------------------------------------------------------------
    def _on_wire_accept(self, srv):
        conn, _ = srv.accept()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.wire_client is not None:
            self.sel.unregister(self.wire_client)
            self.wire_client.close()
        self.wire_client = conn
        self.deframer = wire.Deframer()
        self.sel.register(conn, selectors.EVENT_READ, self._on_wire)
        self._send(b"C", bytes(self.contacts))

    def _send(self, kind, payload=b""):
        if self.wire_client is None:
            return
        try:
            self.wire_client.send(wire.frame(kind, payload))
        except (BlockingIOError, OSError):
            pass  # the firmware is not reading (stopped in the REPL): samples fall on the floor

    def _on_wire(self, conn):
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(conn)
            conn.close()
            self.wire_client = None
            return
        for kind, payload in self.deframer.feed(data):
            if kind == b"U" or kind == b"V":
                for u in self.upses:
                    if u["kind"] == kind:
                        self._serial(u, payload)
            elif kind == b"W":
                if payload:
                    self.wdt_timeout = struct.unpack("<I", payload)[0]
                self.wdt_last = time.monotonic()
            elif kind == b"O":
                self.outputs[:len(payload)] = payload[:OUTPUT_LINES]
            elif kind == b"H":
                self.fw = json.loads(payload)
                self.write_board_json()
            elif kind == b"P":
                self.progress = json.loads(payload)

    def _feed_waves(self, feed):
        """Indexes of the waveforms a UPS on `feed` takes its input from (None: the first)."""
        idx = [i for i, ch in enumerate(self.channels) if feed and ch["feed"] == feed]
        if feed and not idx:
            raise SystemExit("--ups-feeds: no mains channel on feed %r" % feed)
        return idx or [0]

    def _serial(self, u, payload):
        u["rx"] += payload
        while b"\r" in u["rx"]:
            line, _, rest = bytes(u["rx"]).partition(b"\r")
            u["rx"] = bytearray(rest)
            reply = u["sim"].handle(line)
            if reply:
                self._send(u["kind"], reply)

    def _tick(self):
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        due = int((now - self.t0) * self.wave.rate) - self.wave.n
        if due > 0:
            if due > self.wave.rate:  # we were starved (suspended): skip, keep phase running
                for w in self.waves:
                    w.generate(due - self.wave.rate // 10)
                due = self.wave.rate // 10
            if len(self.waves) == 1:
                block = self.wave.generate(due)
            else:
                nch = len(self.waves)
                block = array("h", bytes(2 * due * nch))
                for c, w in enumerate(self.waves):
                    block[c::nch] = w.generate(due)
            if not self.adc_stalled:
                self._send(b"A", block.tobytes())
        for u in self.upses:
            w = max((self.waves[i] for i in u["waves"]), key=lambda w: w.level)
            sim = u["sim"]
            sim.mains_ok = w.level >= 0.8 and abs(w.frequency - self.nominal_hz) < 5
            sim.input_v = w.level * w.nominal_v
            sim.input_hz = w.frequency
        if self.wdt_timeout and (now - self.wdt_last) * 1000 > self.wdt_timeout:
            self.log.write(b"\r\n[supervisor] watchdog expired: resetting\r\n")
            self.pending_cause = "wdt"
            self._kill_interp()
            self.wdt_timeout = 0
        if self.proc is not None and self.proc.poll() is not None and self.ifd is not None:
            self._on_interp(self.ifd)

    # -- control -------------------------------------------------------------------------------
    def _on_ctl_accept(self, srv):
        conn, _ = srv.accept()
        conn.settimeout(2)
        try:
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
            try:
                reply = self.control(json.loads(buf))
            except (ValueError, KeyError, TypeError) as e:
                reply = {"ok": False, "error": str(e)}
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def control(self, req):
        cmd = req.get("cmd")
        if cmd == "get":
            return {"ok": True, "state": self.state()}
        if cmd == "set":
            for key, value in req["values"].items():
                self.set_value(key, value, req.get("at_phase"))
            return {"ok": True, "state": self.state()}
        if cmd == "reset":
            self.pending_cause = req.get("cause", "hard")
            self._kill_interp()
            return {"ok": True}
        if cmd == "power":
            return self._power(bool(req.get("on")))
        if cmd == "stop":
            self.stopping = True
            return {"ok": True}
        return {"ok": False, "error": "unknown command %r" % cmd}

    def _power(self, on):
        """Cut or restore the board's supply: off kills the interpreter (its sockets, NUT
        port and peer link vanish at once, RAM is lost) and boots nothing; the wires and the
        UPS simulator stay, being the site's. On boots it again from its flash."""
        if on == self.powered:
            return {"ok": True, "changed": False}
        self.powered = on
        if on:
            if self.ifd is not None:  # the cut interpreter is not collected yet
                self._kill_interp()
                self.proc.wait(timeout=5)
                self._close_interp()
            self.cause, self.pending_cause, self.want_raw, self.raw_mode = "power_on", None, False, False
            self.boot()
        else:
            self.log.write(b"\r\n[supervisor] power cut\r\n")
            self.pending_cause = None
            self.fw = None
            self.wdt_timeout = 0  # the watchdog lost its power too
            self._kill_interp()
        return {"ok": True, "changed": True}

    def _set_waves(self, idx, at_phase, **changes):
        """Apply changes to the waveforms idx at the same sample: at_phase is the phase of the
        first of them (the others reach theirs at that instant, shifted by their angle)."""
        if at_phase is None:
            for i in idx:
                self.waves[i].set(**changes)
            return
        ref = self.channels[idx[0]]["phase_deg"]
        for i in idx:
            self.waves[i].set(at_phase=float(at_phase) + self.channels[i]["phase_deg"] - ref,
                              **changes)

    def _channels_of(self, key):
        """Waveform indexes a mains.NAME or feed.NAME key names."""
        what, _, name = key.partition(".")
        if what == "mains":
            idx = [i for i, ch in enumerate(self.channels) if ch["name"] == name]
        else:
            idx = [i for i, ch in enumerate(self.channels) if ch["feed"] == name]
        if not idx:
            known = sorted({ch["name" if what == "mains" else "feed"] for ch in self.channels}
                           - {""})
            raise ValueError("no mains channel %s %r (configured: %s)"
                             % ("named" if what == "mains" else "on feed", name,
                                ", ".join(known) or "none"))
        return idx

    def set_value(self, key, value, at_phase=None):
        value = str(value).strip()
        if key == "mains" or key.startswith("mains.") or key.startswith("feed."):
            level = {"on": 1.0, "off": 0.0}.get(value.lower())
            if level is None:
                level = float(value)
                if not 0.0 <= level <= 2.0:
                    raise ValueError("%s must be on, off or a fraction of nominal 0..2" % key)
            idx = list(range(len(self.waves))) if key == "mains" else self._channels_of(key)
            self._set_waves(idx, at_phase, level=level)
        elif key == "frequency":
            f = float(value)
            if not 20.0 <= f <= 100.0:
                raise ValueError("frequency must be 20..100 Hz")
            self._set_waves(list(range(len(self.waves))), at_phase, frequency=f)
        elif key == "adc":
            if value not in ("run", "stall"):
                raise ValueError("adc must be run or stall")
            self.adc_stalled = value == "stall"
        elif key == "noise":
            for w in self.waves:
                w.set(noise=float(value))
        elif key.startswith("harmonic."):
            h = dict(self.wave.harmonics)
            h[int(key.split(".", 1)[1])] = float(value)
            for w in self.waves:
                w.set(harmonics=h)
        elif key.startswith("contact."):
            name = key.split(".", 1)[1]
            line = self.contact_names.get(name, name)
            if not str(line).isdigit() or int(line) >= CONTACT_LINES:
                raise ValueError("contact %r: use a line number 0..%d or a configured name"
                                 % (name, CONTACT_LINES - 1))
            if value not in ("0", "1"):
                raise ValueError("contact levels are 0 or 1")
            self.contacts[int(line)] = int(value)
            self._send(b"C", bytes(self.contacts))
        elif key.startswith("ups.") and key.count(".") == 2:   # ups.FEED.field
            _, feed, fld = key.split(".")
            u = [u for u in self.upses if u["feed"] == feed]
            if not u:
                raise ValueError(
                    "no Q1 UPS simulator on feed %r (simulators: %s); a UPS read over dry "
                    "contacts is driven by its lines: contact.N=0|1" % (feed, ", ".join(
                        "the first UPS's (ups.*)" if u["feed"] is None else str(u["feed"])
                        for u in self.upses)))
            self._set_ups(u[0]["sim"], "ups.%s.%s" % (feed, fld), fld, value)
        elif key == "ups.command":
            # a command another link to the same UPS carried (a pair's two simulators)
            self.ups.handle(value.encode("ascii"), record=False)
        elif key in ("ups.charge", "ups.runtime", "ups.status", "ups.load", "ups.link"):
            self._set_ups(self.ups, key, key[4:], value)
        else:
            raise ValueError("unknown wire %r (mains, mains.CHANNEL, feed.NAME, frequency, noise, "
                             "harmonic.N, contact.NAME, "
                             "ups.charge, ups.runtime, ups.status, ups.load, ups.link, ups.command, "
                             "ups.FEED.status ..., adc)" % key)

    @staticmethod
    def _set_ups(ups, key, fld, value):
        if fld == "charge":
            c = float(value)
            if not 0 <= c <= 100:
                raise ValueError("%s is a percentage 0..100" % key)
            ups.charge = c
        elif fld == "runtime":
            r = float(value)
            if r < 0:
                raise ValueError("%s is seconds >= 0" % key)
            # the simulator's runtime follows its charge: set the charge that gives this runtime
            ups.charge = max(0.0, min(100.0, r / ups.runtime_s() * ups.charge
                                      if ups.runtime_s() else 0.0))
        elif fld == "status":
            toks = value.upper().split()
            if value.lower() == "auto":
                ups.forced_status = None
            elif toks and all(t in ("OL", "OB", "LB", "OFF", "CAL", "BYPASS") for t in toks):
                ups.forced_status = " ".join(toks)
            else:
                raise ValueError("%s must be OL, OB, OB LB (tokens OL OB LB) or auto" % key)
        elif fld == "load":
            ups.load = float(value)
        elif fld == "link":
            if value not in ("ok", "lost", "garbage"):
                raise ValueError("%s must be ok, lost or garbage" % key)
            ups.silent = value == "lost"
            ups.garbage = value == "garbage"
        else:
            raise ValueError("unknown UPS wire %r (charge, runtime, status, load, link)" % key)

    def state(self):
        return {"mains": {"level": self.wave.level, "frequency": self.wave.frequency,
                          "noise": self.wave.noise, "samples": self.wave.n,
                          "channels": [{"name": ch["name"], "feed": ch["feed"], "pin": ch["pin"],
                                        "phase_deg": ch["phase_deg"], "level": w.level}
                                       for ch, w in zip(self.channels, self.waves)]},
                "contacts": list(self.contacts), "outputs": list(self.outputs),
                "ups": self.ups.snapshot(),
                "upses": {str(u["feed"]): u["sim"].snapshot() for u in self.upses},
                "boots": self.boots, "reset_cause": self.cause,
                "resets": self.resets[-20:], "firmware": self.fw, "progress": self.progress,
                "wdt_ms": self.wdt_timeout, "raw_repl": self.raw_mode, "powered": self.powered,
                "interpreter_pid": self.proc.pid if self.proc else None}

    # -- main loop -----------------------------------------------------------------------------
    def run(self, fresh):
        signal.signal(signal.SIGTERM, lambda *a: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *a: setattr(self, "stopping", True))
        self.boot(fresh=fresh)
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.004):
                key.data(key.fileobj)
                if self.stopping:
                    break
            self._tick()
        self.shutdown()

    def shutdown(self):
        self.stopping = True
        self._kill_interp()
        if self.proc:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_interp()
        for path in (self.ctl_path, os.path.join(self.dir, "board.json")):
            try:
                os.unlink(path)
            except OSError:
                pass


def main(argv=None):
    ap = argparse.ArgumentParser(prog="powersentinel.virtual.supervisor")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--heap", default="128wK")
    ap.add_argument("--nut-port", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="format a new flash image")
    ap.add_argument("--flash-size", type=int, default=2 * 1024 * 1024)
    ap.add_argument("--sample-rate", type=int, default=4000)
    ap.add_argument("--nominal-v", type=float, default=230.0)
    ap.add_argument("--nominal-hz", type=float, default=50.0)
    ap.add_argument("--volts-per-count", type=float, default=0.02)
    ap.add_argument("--ups-runtime", type=float, default=1200.0)
    ap.add_argument("--ups-feeds", type=json.loads, default=None,
                    help='JSON list: the feed of the UPS on the first UPS UART, then of the one '
                         'on the second (two feeds, one Q1 UPS each), e.g. ["A", "B"]')
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--contact-names", type=json.loads, default=None)
    ap.add_argument("--romfs-kib", type=int, default=ROMFS_KIB,
                    help="size of the board's ROMFS partition; 0: the board has none")
    ap.add_argument("--profile", default=_vprofiles.DEFAULT, choices=sorted(_vprofiles.PROFILES),
                    help="the port the virtual board's `machine` behaves like")
    ap.add_argument("--isr-preset", type=json.loads, default=None,
                    help='JSON {attribute: value} preset on hard-IRQ callback objects (tests)')
    ap.add_argument("--wifi", default="up", choices=("up", "down"))
    ap.add_argument("--channels", type=json.loads, default=None,
                    help='JSON list of the site\'s mains.channels items ({"name", "pin", '
                         '"volts_per_count", "feed"}, optional "phase_deg"); default: one channel')
    args = ap.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    flash = os.path.join(args.dir, "flash.img")
    fresh = args.fresh or not os.path.exists(flash)
    if fresh:
        with open(flash, "wb") as f:
            f.truncate(args.flash_size)
    sup = Supervisor(args)
    try:
        sup.run(fresh)
    except Exception:
        sup.shutdown()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
