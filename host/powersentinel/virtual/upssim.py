"""A Megatec/Q1 UPS on the virtual board's UPS serial line.

Its battery discharges with the load while on battery and recharges on line; it honours
`S<n>R<m>` (load off after n minutes, back on m minutes after mains returns; `S00R<m>` at
once), `C` (cancel a shutdown, output back on), `T` (10 s battery test), `TL` (test until low
battery), `T<nn>` (nn minutes), `CT` (end the test) and `Q` (toggle the beeper); the test and
beeper show in the Q1 status bits. Minutes
and battery time run `time_scale` times faster than the wall clock, so hour-long stories fit in
minutes; the mains waveform itself is never scaled.
"""
import time

from ..paths import use_firmware_lib

use_firmware_lib()
from sentinel import q1, q1fmt  # noqa: E402


class UpsSim:
    def __init__(self, runtime_full_s: float = 1200.0, time_scale: float = 1.0, clock=time.monotonic):
        self.clock = clock
        self.time_scale = time_scale
        self.runtime_full_s = runtime_full_s  # at the nominal load
        self.charge = 100.0
        self.load = 30.0                      # percent
        self.forced_status = None             # e.g. "OB LB" set by hand; None = follow mains
        self.low_charge = 20.0
        self.mains_ok = True
        self.input_v = 230.0
        self.input_hz = 50.0
        self.output_on = True
        self.silent = False                   # link loss: answer nothing
        self.garbage = False                  # answer noise instead of replies
        self.commands = []                    # (wall time, command) received, for tests/reports
        self.load_offs = 0                    # S<n>R<m> commands received
        self.load_off_at = None               # wall time of the last one
        self.received = 0                     # how many, ever (commands keeps the last ones)
        self._shutdown_at = None
        self._restore_after = None            # scaled seconds after mains returns; None = stay off
        self._mains_back_at = None
        self.beeper = False                   # Q1 bit 0 (the replies before Q was modelled)
        self._test_until = None               # clock time a battery test ends; inf: until LB
        self._last = clock()

    # -- state ---------------------------------------------------------------------------------
    def on_battery(self) -> bool:
        if self.forced_status is not None:
            return "OB" in self.forced_status.split()
        return not self.mains_ok

    def low_battery(self) -> bool:
        if self.forced_status is not None and "LB" in self.forced_status.split():
            return True
        return self.on_battery() and self.charge <= self.low_charge

    def runtime_s(self) -> float:
        load = max(self.load, 1.0)
        return self.charge / 100.0 * self.runtime_full_s * 30.0 / load

    def tick(self):
        now = self.clock()
        dt = (now - self._last) * self.time_scale
        self._last = now
        if self.on_battery() and self.output_on:
            self.charge = max(0.0, self.charge - dt / self.runtime_full_s * 100.0 * self.load / 30.0)
        elif not self.on_battery() and self.charge < 100.0:
            self.charge = min(100.0, self.charge + dt / (4 * self.runtime_full_s) * 100.0)
        if self._shutdown_at is not None and now >= self._shutdown_at:
            self.output_on = False
            self._shutdown_at = None
            if self.mains_ok:
                self._mains_back_at = now
        if not self.output_on and self._restore_after is not None and self.mains_ok:
            if self._mains_back_at is None:
                self._mains_back_at = now
            if (now - self._mains_back_at) * self.time_scale >= self._restore_after:
                self.output_on = True
                self._restore_after = None
                self._mains_back_at = None
        if not self.mains_ok:
            self._mains_back_at = None
        if self.charge <= 0.0:
            self.output_on = False
        if self._test_until is not None and (now >= self._test_until or self.low_battery()):
            self._test_until = None

    def testing(self) -> bool:
        return self._test_until is not None

    def status_tokens(self):
        toks = ["OB" if self.on_battery() else "OL"]
        if self.low_battery():
            toks.append("LB")
        if not self.output_on:
            toks.append("OFF")
        return toks

    # -- serial --------------------------------------------------------------------------------
    def handle(self, line: bytes, record: bool = True):
        """One command (without its CR) -> reply bytes (may be empty). Formats come from the
        firmware's own Q1 module, so the simulator and the device share one definition.
        record=False: a command another link to the same UPS received (a pair's two
        simulators are one UPS), applied but not listed as received here."""
        self.tick()
        if self.silent:
            return b""
        if self.garbage:
            return b"\x00\xff#garbage(\r"
        try:
            cmd = q1fmt.parse_command(line)
        except q1.Q1Error:
            return b""  # a real UPS ignores what it does not understand
        kind = cmd[0]
        if kind == "status":
            in_v = self.input_v if self.mains_ok else 0.0
            out_v = (in_v if not self.on_battery() else 230.0) if self.output_on else 0.0
            bits = q1fmt.make_bits(on_battery=self.on_battery(), battery_low=self.low_battery(),
                                shutdown_active=self._shutdown_at is not None,
                                testing=self.testing(), beeper=self.beeper)
            return q1fmt.format_q1({"vin": in_v, "vin_fault": in_v, "vout": out_v,
                                 "load": self.load, "freq": self.input_hz if self.mains_ok else 0.0,
                                 "vbat": 20.4 + 6.9 * self.charge / 100.0, "temp": 30.0,
                                 "bits": bits})
        if kind == "rating":
            return q1fmt.format_f(230.0, 4, 24.0, 50.0)
        if kind == "info":
            return q1fmt.format_i("PowerSentinel", "VirtualUPS", "1.0")
        if record:
            self.commands.append((time.time(), line.strip().decode("ascii", "replace")))
            self.received += 1
        if kind == "shutdown":
            _, delay_min, restore_min = cmd
            if record:   # not one applied from the other link of the same UPS
                self.load_offs += 1
                self.load_off_at = time.time()
            self._shutdown_at = self.clock() + delay_min * 60.0 / self.time_scale
            if restore_min is None:
                self._restore_after = 0.0       # plain S<n>: back on when mains returns
            elif restore_min == 0:
                self._restore_after = None      # R0000: stay off
            else:
                self._restore_after = restore_min * 60.0
        elif kind in ("test_quick", "test_low", "test_minutes"):
            secs = {"test_quick": 10.0, "test_low": float("inf")}.get(kind)
            if secs is None:
                secs = cmd[1] * 60.0
            self._test_until = self.clock() + secs / self.time_scale
        elif kind == "test_cancel":
            self._test_until = None
        elif kind == "beeper":
            self.beeper = not self.beeper
        elif kind == "cancel":
            self._shutdown_at = None
            if not self.output_on and self.mains_ok:
                self.output_on = True
        return b""

    def snapshot(self) -> dict:
        self.tick()
        return {"status": " ".join(self.status_tokens()), "charge": round(self.charge, 1),
                "runtime": round(self.runtime_s()), "load": self.load, "output_on": self.output_on,
                "shutdown_pending": self._shutdown_at is not None,
                "testing": self.testing(), "beeper": self.beeper,
                "restore_pending": self._restore_after is not None,
                "commands": [c for _, c in self.commands[-10:]], "received": self.received,
                "load_offs": self.load_offs, "load_off_at": self.load_off_at}
