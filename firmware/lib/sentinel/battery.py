# Battery charge and runtime: the UPS's own figures when it gives them, else an estimate.
#
# The estimate is deliberately simple and conservative: linear discharge from the configured
# runtime at full charge (battery_runtime_s), linear recharge on line over recharge_s (slower
# than most UPS chargers, so after an outage the sentinel believes the battery is emptier than it
# is rather than fuller). When the UPS reports a charge, the estimate is re-anchored to it, so
# if the link drops mid-outage the estimate carries on from the last reported value. A runtime of
# 0 (the schema allows it) estimates no runtime: the estimated charge empties at once on battery.

_MASK30 = 0x3FFFFFFF
_HALF30 = 0x20000000

UPS = "ups"
ESTIMATE = "estimate"


def _elapsed(now, then):
    # ticks_ms-style difference: right for wrapping 30-bit ticks and plain ms, gaps < 2**29 ms.
    return ((now - then + _HALF30) & _MASK30) - _HALF30


class BatteryModel:
    """update() once per poll with what is known; read charge_pct, runtime_s, the sources, and
    on_battery_s (seconds since the current outage began, 0 on line)."""

    def __init__(self, runtime_full_s, recharge_s=28800, initial_pct=100):
        """runtime_full_s: the ups section's battery_runtime_s (>= 0)."""
        if runtime_full_s < 0 or recharge_s <= 0:
            raise ValueError("runtime_full_s must be >= 0 and recharge_s > 0")
        self.runtime_full_s = runtime_full_s
        self.recharge_s = recharge_s
        self._charge = float(min(100, max(0, initial_pct)))
        self._last_ms = None
        self._on_battery = False
        self._ob_ms = 0  # ms spent on battery in the current outage
        self.charge_pct = self._charge
        self.runtime_s = int(self._charge * runtime_full_s / 100)
        self.charge_source = ESTIMATE
        self.runtime_source = ESTIMATE

    @property
    def on_battery_s(self):
        return self._ob_ms // 1000

    def update(self, now_ms, on_battery, ups_charge=None, ups_runtime_s=None):
        """now_ms: clock; on_battery: the state from now on (the interval since the previous
        update is accounted in the previous state); ups_charge (%) / ups_runtime_s: the UPS's
        figures, or None when it has none or the link is down."""
        dt = 0
        if self._last_ms is not None:
            dt = _elapsed(now_ms, self._last_ms)
            if dt < 0:
                dt = 0
        self._last_ms = now_ms
        if self._on_battery:
            self._ob_ms += dt
            if self.runtime_full_s:
                self._charge -= dt * 0.1 / self.runtime_full_s  # 100 % per runtime_full_s, dt in ms
            elif dt:
                self._charge = 0.0
        else:
            self._charge += dt * 0.1 / self.recharge_s
        if not on_battery:
            self._ob_ms = 0
        self._on_battery = bool(on_battery)
        if ups_charge is not None:
            self._charge = float(ups_charge)
            self.charge_source = UPS
        else:
            self.charge_source = ESTIMATE
        if self._charge < 0:
            self._charge = 0.0
        elif self._charge > 100:
            self._charge = 100.0
        self.charge_pct = self._charge
        if ups_runtime_s is not None:
            self.runtime_s = int(ups_runtime_s)
            self.runtime_source = UPS
        else:
            self.runtime_s = int(self._charge * self.runtime_full_s / 100)
            self.runtime_source = ESTIMATE
