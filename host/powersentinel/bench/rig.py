"""The rig: what drives the sentinel's inputs and reads back what the "hardware" did.

`Rig` is the interface the runner uses; `VirtualRig` implements it over the virtual board's
wires (powersentinel.virtual.set_wires/state). A physical rig implements the same methods with a
second microcontroller wired to the board (a DAC or relay-switched transformer tap for the mains
sense input, relays on the contact inputs, a UART playing the Q1 UPS); docs/bench.md describes
that bench firmware and its protocol. `SerialBoardRig` is what a real board gets today: the
console works, stimuli raise RigError naming what is missing.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

from .. import virtual
from ..virtual import pair as vpair
from ..errors import PowerSentinelError
from ..link import Link


class RigError(PowerSentinelError):
    """The rig cannot do what the scenario asks (one line)."""


class Rig:
    """Abstract: one board under test and its simulated surroundings.

    Times: `at_phase` is the fundamental's phase in degrees (0 = positive-going zero crossing)
    at which a mains change takes effect; None = at once."""

    name = "abstract"
    port: str            # console port for powersentinel.link.Link
    nut: tuple           # (host, port) of the board's NUT server
    nominal_hz: float = 50.0

    def start(self, config_path: str, ups_runtime_s: float, time_scale: float) -> None:
        """Install the device config, power the board, wait until its firmware answers."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def set_mains(self, level=None, frequency=None, at_phase=None, channel=None) -> None:
        """level: fraction of nominal rms (0 = off); frequency in Hz; channel: one mains
        channel's name or a feed's (every channel sensing it), None: every channel."""
        raise NotImplementedError

    def set_distortion(self, harmonics: dict | None = None, noise: float | None = None) -> None:
        raise NotImplementedError

    def set_contact(self, line: int, value: int) -> None:
        raise NotImplementedError

    def set_ups(self, status=None, charge=None, link=None) -> None:
        """status "OL"/"OB"/"OB LB"/"auto", charge %, link "ok"/"lost"/"garbage"."""
        raise NotImplementedError

    def reset_board(self, cause: str = "hard") -> None:
        raise NotImplementedError

    def read(self) -> dict:
        """{"mains_level", "frequency", "samples", "ups": {status, charge, output_on,
        commands:[...]}, "boots", "resets": [(wall time, cause), ...]}: what the rig applied,
        what the UPS did, when the board (re)started."""
        raise NotImplementedError

    def wait_mains_applied(self, level: float, timeout: float = 0.2,
                           channel=None) -> float | None:
        """Wall time (monotonic) when the rig reports the mains level applied, or None."""
        raise NotImplementedError


class VirtualRig(Rig):
    name = "virtual"

    def __init__(self, workdir: str | None = None, heap: str = "128wK"):
        self.dir = os.path.join(workdir or tempfile.mkdtemp(prefix="hil-"), "board")
        self.heap = heap
        self.meta = None
        self.port = ""
        self.nut = ("127.0.0.1", 0)
        self.channel_names = ()   # the config's mains.channels names (the board's wires)

    def _read_config(self, config_path):
        with open(config_path) as f:
            m = json.load(f).get("mains", {})
        self.nominal_hz = float(m.get("nominal_hz", 50))
        self.channel_names = tuple(c.get("name") for c in m.get("channels") or ())

    def start(self, config_path, ups_runtime_s, time_scale):
        self._read_config(config_path)
        self.meta = virtual.start(self.dir, config=config_path, heap=self.heap,
                                  extra_args=["--time-scale", "%g" % time_scale,
                                              "--ups-runtime", "%g" % ups_runtime_s])
        self.port = self.meta["serial"]
        host, port = self.meta["nut"].rsplit(":", 1)
        self.nut = (host, int(port))

    def stop(self):
        virtual.stop(self.dir)

    def _set(self, values, at_phase=None):
        try:
            virtual.set_wires(self.dir, values, at_phase=at_phase)
        except virtual.VirtualError as e:
            raise RigError(str(e))

    def _mains_wire(self, channel):
        """The virtual board's wire for `channel`: mains.NAME for a channel, feed.NAME for a
        feed (all its channels), mains for them all."""
        if channel is None:
            return "mains"
        return ("mains.%s" if channel in self.channel_names else "feed.%s") % channel

    def set_mains(self, level=None, frequency=None, at_phase=None, channel=None):
        v = {}
        if level is not None:
            v[self._mains_wire(channel)] = level
        if frequency is not None:
            v["frequency"] = frequency
        self._set(v, at_phase)

    def set_distortion(self, harmonics=None, noise=None):
        v = {}
        for order, frac in (harmonics or {}).items():
            v["harmonic.%d" % int(order)] = frac
        if noise is not None:
            v["noise"] = noise
        self._set(v)

    def set_contact(self, line, value):
        self._set({"contact.%d" % line: int(value)})

    def set_ups(self, status=None, charge=None, link=None):
        v = {}
        if status is not None:
            v["ups.status"] = status
        if charge is not None:
            v["ups.charge"] = charge
        if link is not None:
            v["ups.link"] = link
        self._set(v)

    def set_ups_load(self, load_pct):
        self._set({"ups.load": load_pct})

    def reset_board(self, cause="hard"):
        virtual.control(self.dir, {"cmd": "reset", "cause": cause})

    def read(self):
        s = virtual.state(self.dir)
        return {"mains_level": s["mains"]["level"], "frequency": s["mains"]["frequency"],
                "samples": s["mains"]["samples"], "ups": s["ups"], "boots": s["boots"],
                "resets": [tuple(r) for r in s.get("resets", [])],
                "channels": {c["name"]: c["level"] for c in s["mains"].get("channels", ())},
                "upses": s.get("upses") or {}, "outputs": s.get("outputs") or []}

    @staticmethod
    def _levels(state, channel):
        """The levels of the waveforms `channel` names (None: the first, the wire's clock)."""
        if channel is None:
            return [state["mains"]["level"]]
        return [c["level"] for c in state["mains"].get("channels", ())
                if channel in (c["name"], c["feed"])]

    def wait_mains_applied(self, level, timeout=0.2, channel=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lv = self._levels(virtual.state(self.dir), channel)
            if lv and all(abs(x - level) < 1e-9 for x in lv):
                return time.monotonic()
            time.sleep(0.002)
        return None


class SerialBoardRig(Rig):
    """A real board on a serial port without the bench controller: the console and its NUT
    server work, every stimulus raises RigError (see docs/bench.md, "Physical rig")."""
    name = "serial"

    def __init__(self, port, nut_host=None, nut_port=3493):
        self.port = port
        self.nut = (nut_host or "", nut_port)

    def start(self, config_path, ups_runtime_s, time_scale):
        with Link(self.port) as link:
            link.identify()

    def stop(self):
        pass

    def _missing(self, what):
        raise RigError("%s needs the bench controller (a second microcontroller driving the "
                       "board's inputs, docs/bench.md); this rig is a bare serial port" % what)

    def set_mains(self, level=None, frequency=None, at_phase=None, channel=None):
        self._missing("a mains stimulus")

    def set_distortion(self, harmonics=None, noise=None):
        self._missing("harmonics/noise")

    def set_contact(self, line, value):
        self._missing("a contact input")

    def set_ups(self, status=None, charge=None, link=None):
        self._missing("the UPS simulator")

    def reset_board(self, cause="hard"):
        self._missing("a board reset")

    def read(self):
        return {"mains_level": None, "frequency": None, "samples": None, "ups": {}, "boots": None,
                "resets": []}

    def wait_mains_applied(self, level, timeout=0.2, channel=None):
        return None


class PairRig(VirtualRig):
    """A redundant pair of virtual boards (virtual/pair.py) on one simulated site: both sense
    the same mains, A reads the UPS (with `ups = "both"`, B too, through a simulator of its
    own that follows the same mains: two links to one UPS), the peer link goes through a
    PeerRelay the bench can cut. `port`/`nut` are board A's; `ports`/`nuts` each board's.

    A power cut of a board (kill) is its supply gone: the interpreter dies (NUT port, peer
    link and RAM with it) while the site's wires and UPS stay; revive boots it from its flash.
    With `ups = "both"` the two simulators are one UPS: a command either receives is applied
    to the other too (at the next read, every 0.25 s), so both links see the output go off.
    Site power is on while every simulator's output is."""
    name = "virtual-pair"

    def __init__(self, workdir=None, heap="128wK", pair=None):
        super().__init__(workdir, heap)
        self.pair = pair
        self.relay = None
        self.sides = {}  # "a"/"b" -> board directory
        self._received = {"a": 0, "b": 0}  # commands each simulator had received
        self.ports = {}
        self.nuts = {}

    @property
    def ups_sides(self):
        return ("a", "b") if self.pair.ups == "both" else ("a",)

    def start(self, config_path, ups_runtime_s, time_scale):
        self._read_config(config_path)
        self.relay = vpair.PeerRelay()
        meta = vpair.start_pair(self.dir, config=config_path, heap=self.heap,
                                extra_args=["--time-scale", "%g" % time_scale,
                                            "--ups-runtime", "%g" % ups_runtime_s],
                                heartbeat_ms=self.pair.heartbeat_ms, dead_ms=self.pair.dead_ms,
                                ups_both=self.pair.ups == "both", relay=self.relay)
        for side in vpair.SIDES:
            b = meta[side]["board"]
            self.sides[side] = meta[side]["dir"]
            self.ports[side] = b["serial"]
            host, port = b["nut"].rsplit(":", 1)
            self.nuts[side] = (host, int(port))
        self.port, self.nut = self.ports["a"], self.nuts["a"]

    def stop(self):
        try:
            vpair.stop_pair(self.dir)
        finally:
            if self.relay is not None:
                self.relay.close()

    def _set(self, values, at_phase=None):
        try:
            vpair.set_pair_wires(self.dir, values, at_phase=at_phase)
            ups = {k: v for k, v in values.items() if k.startswith("ups.")}
            if ups and "b" in self.ups_sides:
                virtual.set_wires(self.sides["b"], ups)
        except virtual.VirtualError as e:
            raise RigError(str(e))

    def reset_board(self, cause="hard"):
        virtual.control(self.sides["a"], {"cmd": "reset", "cause": cause})

    def kill(self, side):
        virtual.power(self.sides[side], False)

    def revive(self, side):
        virtual.power(self.sides[side], True)

    def partition(self):
        self.relay.cut()

    def heal(self):
        self.relay.heal()

    def sensor(self, side, level):
        """Board `side`'s own mains sensor reads `level` (fraction of nominal) while the real
        mains stays as it is; its UPS simulator, which follows that wire, is pinned to OL
        meanwhile (a level of 1 ends the fault)."""
        v = {"mains": level}
        if side in self.ups_sides:
            v["ups.status"] = "auto" if level >= 0.9 else "OL"
        try:
            vpair.set_pair_wires(self.dir, v, board=side)
        except virtual.VirtualError as e:
            raise RigError(str(e))

    def _mirror(self, ups):
        """Apply each command one simulator received since the last read to the other."""
        for side, other in (("a", "b"), ("b", "a")):
            n = ups[side].get("received", 0) - self._received[side]
            self._received[side] = ups[side].get("received", 0)
            for c in ups[side].get("commands", [])[-n:] if n > 0 else ():
                virtual.set_wires(self.sides[other], {"ups.command": c})

    def read(self):
        sa = virtual.state(self.sides["a"])
        sb = virtual.state(self.sides["b"])
        ups = dict(sa["ups"])
        cmds = {"a": list(sa["ups"].get("commands", []))}
        if "b" in self.ups_sides:
            cmds["b"] = list(sb["ups"].get("commands", []))
            self._mirror({"a": sa["ups"], "b": sb["ups"]})
            ups["output_on"] = sa["ups"].get("output_on", True) is not False and \
                sb["ups"].get("output_on", True) is not False
        resets = [(r[0], "%s:%s" % (side, r[1])) for side, s in (("a", sa), ("b", sb))
                  for r in s.get("resets", [])]
        return {"mains_level": sa["mains"]["level"], "frequency": sa["mains"]["frequency"],
                "samples": sa["mains"]["samples"], "ups": ups, "ups_commands": cmds,
                "boots": sa["boots"], "resets": sorted(resets),
                "powered": {"a": sa.get("powered", True), "b": sb.get("powered", True)}}
