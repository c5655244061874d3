"""`powersentinel monitor`: a live dashboard of one board (rich Live).

The screen is redrawn from the board's `status` events (one a second). When they stop, the
monitor asks for `status` itself; when that fails too, a red banner says since when the board
has not answered, and the monitor keeps trying (reopening the port if it went away: a USB
board that rebooted, a virtual board restarted) until it answers again. `q` or Ctrl-C quits
and leaves the terminal as it was.
"""
import os
import select
import sys
import termios
import time
import tty

import serial
from rich.console import Console
from rich.live import Live

from .link import Link, LinkError, LinkLost
from .ui import event_text, render_dashboard

STALE_S = 2.5       # no status event for this long: ask for one
RETRY_S = 1.0       # pause between attempts to reopen a port that went away


class _Keys:
    """Single key presses from a terminal (cbreak mode, restored on exit); inert without one."""

    def __init__(self, stream=None):
        self.f = stream if stream is not None else sys.stdin
        self.old = None

    def __enter__(self):
        try:
            if self.f.isatty():
                self.old = termios.tcgetattr(self.f.fileno())
                tty.setcbreak(self.f.fileno())
        except (OSError, ValueError, AttributeError):
            self.old = None
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            termios.tcsetattr(self.f.fileno(), termios.TCSADRAIN, self.old)

    def read(self):
        if self.old is None:
            return ""
        out = ""
        while select.select([self.f], [], [], 0)[0]:
            c = os.read(self.f.fileno(), 32)
            if not c:
                break
            out += c.decode(errors="replace")
        return out


def event_line(ev, now=None):
    """One line for the "recent" panel, or None for events that are not news."""
    ts = time.strftime("%H:%M:%S", time.localtime(now or time.time()))
    kind = ev.get("ev")
    if kind == "state":
        txt = "state %s -> %s" % (ev.get("from", "?"), ev.get("to", "?"))
        if ev.get("cause"):
            txt += " (%s)" % ev["cause"]
    elif kind == "mains":
        txt = ("mains LOST (%s V)" % ev.get("v")) if ev.get("lost") else "mains back (%s V)" % ev.get("v")
    elif kind == "event":
        txt = "mains " + event_text(ev)
    elif kind == "log":
        d = ev.get("data")
        txt = "log #%s %s%s" % (ev.get("seq"), ev.get("type"),
                                " " + " ".join("%s=%s" % kv for kv in d.items()) if isinstance(d, dict) and d else "")
    elif kind == "boot":
        txt = "board started (firmware %s, %s)" % (ev.get("firmware", "?"), ev.get("cause", "?"))
    else:
        return None
    return "%s  %s" % (ts, txt)


class Monitor:
    def __init__(self, port, console=None, link_timeout=1.0, keys=None):
        self.port = port
        self.console = console
        self.link_timeout = link_timeout
        self.keys = keys
        self.link = None
        self.ident = {}
        self.st = {}
        self.recent = []
        self.problem = None
        self.last_status = 0.0
        self.updated = None
        self.down_since = None

    # -- connection ------------------------------------------------------------------------------
    def connect(self):
        self.link = Link(self.port, timeout=self.link_timeout)
        try:
            self.ident = self.link.identify()
            self.st = self.link.request("status")
        except BaseException:
            self.close()
            raise
        self.last_status = time.monotonic()
        self.updated = time.time()

    def close(self):
        if self.link is not None:
            try:
                self.link.close()
            except (OSError, serial.SerialException):
                pass
            self.link = None

    def _down(self, why):
        if self.down_since is None:
            self.down_since = time.time()
        self.problem = "%s; no answer since %s, retrying" % (
            why, time.strftime("%H:%M:%S", time.localtime(self.down_since)))

    def _up(self):
        if self.down_since is not None:
            self.note("board answering again (silent for %.0f s)" % (time.time() - self.down_since))
        self.down_since = None
        self.problem = None

    def note(self, text):
        self.recent.append("%s  %s" % (time.strftime("%H:%M:%S"), text))
        del self.recent[:-50]

    # -- one step --------------------------------------------------------------------------------
    def step(self, wait=0.2):
        """Read what the board sent for up to `wait` s and update the state; never raises for a
        board that is silent or gone."""
        if self.link is None:
            try:
                self.connect()
                self._up()
                self.note("connected to %s" % self.port)
            except LinkError as e:
                self._down(str(e).split(" (")[0])
                time.sleep(RETRY_S)
            return
        try:
            for ev in self.link.poll_events(wait):
                if ev.get("ev") == "status":
                    self.st = {k: v for k, v in ev.items() if k != "ev"}
                    self.last_status = time.monotonic()
                    self.updated = time.time()
                    self._up()
                else:
                    line = event_line(ev)
                    if line:
                        self.recent.append(line)
                        del self.recent[:-50]
                    if ev.get("ev") == "boot":
                        try:
                            self.ident = self.link.identify()
                        except LinkLost:
                            raise
                        except LinkError:
                            pass
            if time.monotonic() - self.last_status > STALE_S:
                try:
                    self.st = self.link.request("status", timeout=self.link_timeout, retries=0)
                    self.last_status = time.monotonic()
                    self.updated = time.time()
                    self._up()
                except LinkLost:
                    raise
                except LinkError:
                    self._down("the board on %s stopped answering" % self.port)
        except (serial.SerialException, OSError, LinkLost) as e:
            self.close()
            self._down("lost the port %s (%s)" % (self.port, str(e).split(":")[0]))

    def render(self):
        return render_dashboard(self.ident, self.st, self.recent, self.port, self.problem,
                                self.updated)

    def run(self, duration=None):
        """Until q, Ctrl-C or `duration` seconds. The first connection must work (its
        LinkError propagates: the user named a wrong port); later outages are shown."""
        con = self.console or Console()
        self.connect()
        end = time.monotonic() + duration if duration else None
        keys = self.keys or _Keys()
        try:
            with keys, Live(self.render(), console=con, refresh_per_second=4,
                            screen=con.is_terminal, transient=False) as live:
                while end is None or time.monotonic() < end:
                    if "q" in keys.read().lower():
                        break
                    self.step()
                    live.update(self.render())
        except KeyboardInterrupt:
            pass
        finally:
            self.close()
