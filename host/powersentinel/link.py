"""The host side of the console protocol (firmware/lib/sentinel/console.py) over pyserial.

`Link(port)` opens the board's serial port (a USB device, a virtual board's pty, `virtual://DIR`
or any other name ports.py accepts), and `request(op, **args)` sends one framed request and
waits for the reply with the same id, skipping REPL noise, boot banners and half lines (they
fail the frame check) and collecting unsolicited events on the way.
"""
import collections
import itertools
import time

import serial

from . import ports
from .errors import PowerSentinelError
from .paths import use_firmware_lib

use_firmware_lib()
from sentinel import console  # noqa: E402  (one definition of the framing, shared with the device)
from sentinel.version import PROTOCOL  # noqa: E402


class LinkError(PowerSentinelError):
    """An expected failure (no port, busy, no answer, wrong firmware), reported as one line."""


class LinkLost(LinkError):
    """The port itself failed mid-conversation (cable pulled, board re-enumerated)."""


class Link:
    def __init__(self, port, baudrate=115200, timeout=3.0):
        try:
            self.port = ports.device(port)
        except ports.PortError as e:
            raise LinkError(str(e))
        try:
            self.ser = serial.serial_for_url(self.port, baudrate, timeout=0.05, exclusive=True)
        except serial.SerialException as e:
            msg = str(e)
            if "lock" in msg.lower() or "busy" in msg.lower():
                raise LinkError("port %s is busy (another program has it open)" % self.port)
            raise LinkError("cannot open %s: %s" % (self.port, msg))
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.events = collections.deque(maxlen=1000)
        self.buf = b""
        self.ser.reset_input_buffer()

    def close(self):
        self.ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _frames(self, deadline):
        """Yield decoded frames until the deadline."""
        while time.monotonic() < deadline:
            try:
                chunk = self.ser.read(4096)
            except (serial.SerialException, OSError) as e:
                raise LinkLost("lost the connection to the board on %s: %s" % (self.port, e))
            if not chunk:
                continue
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                obj = console.decode(line)
                if obj is not None:
                    yield obj
            if len(self.buf) > 65536:  # a runaway line without newline: resync
                self.buf = b""

    def request(self, op, timeout=None, retries=2, **args):
        """Send a request; return its data. Raises LinkError on error replies or silence."""
        timeout = timeout or self.timeout
        for attempt in range(retries + 1):
            rid = next(self.ids)
            req = dict(args, id=rid, op=op)
            # A leading newline ends any half line the board may hold from earlier noise.
            try:
                self.ser.write(b"\r\n" + console.encode(req))
            except (serial.SerialException, OSError) as e:
                raise LinkLost("lost the connection to the board on %s: %s" % (self.port, e))
            deadline = time.monotonic() + timeout
            for obj in self._frames(deadline):
                if "ev" in obj:
                    self.events.append(obj)
                elif obj.get("id") == rid:
                    if obj.get("ok"):
                        return obj.get("data")
                    raise LinkError("the board refused %s: %s" % (op, obj.get("error")))
        raise LinkError("the board on %s does not answer (is the firmware running? "
                        "deploy it with `powersentinel deploy --port %s`)" % (self.port, self.port))

    def identify(self):
        info = self.request("identify")
        if info.get("protocol") != PROTOCOL:
            raise LinkError("firmware %s speaks console protocol %s, this host speaks %s: "
                            "run `powersentinel deploy` to update the firmware"
                            % (info.get("firmware"), info.get("protocol"), PROTOCOL))
        return info

    def wait_event(self, pred, timeout):
        """Wait for an event matching pred (also checks events already collected)."""
        for ev in list(self.events):
            if pred(ev):
                self.events.remove(ev)
                return ev
        for obj in self._frames(time.monotonic() + timeout):
            if "ev" in obj:
                if pred(obj):
                    return obj
                self.events.append(obj)
        return None

    def poll_events(self, duration=0.0):
        """Collect events for `duration` seconds; return and clear them."""
        for obj in self._frames(time.monotonic() + duration):
            if "ev" in obj:
                self.events.append(obj)
        out = list(self.events)
        self.events.clear()
        return out
