# Mains channels on one board: the ADC inputs each port can sample, each channel's default, and
# the sampling source for several channels. Imported only by boards whose site lists
# mains.channels (device heap: boards without ROMFS hold every imported module's bytecode in
# RAM, and a single-channel site's hal._mcu stays as it was). The same pin tables are in
# sentinel/schema.py (ADC_PINS, DEFAULT_PINS), which validates the config on the device and the
# host; keep them in step.
from micropython import const

_WRAP = const(0x3FFFFFFF)  # as hal._mcu: block counters wrap here (31-bit small ints)

# port -> (the GPIOs a mains channel may use, each channel's default GPIO in order)
# RP2040: ADC0-2 on GP26-28 (ADC3, GP29, reads VSYS/3 on a Pico).
# ESP32: ADC1 only (GPIO 32-39): ADC2 stops working while Wi-Fi is on; defaults ADC1_CH6, CH7, CH4.
PINS = {"rp2": ((26, 27, 28), (26, 27, 28)),
        "esp32": ((32, 33, 34, 35, 36, 37, 38, 39), (34, 35, 32))}


def channel_pins(board, pins):
    """The GPIO of each mains channel on `board` (an McuBoard): pins as configured, None taking
    the port's default for that channel (the first: board.adc_pin). ValueError names a pin the
    port cannot sample (config validation on the device refuses it first)."""
    allowed, defaults = PINS[board.PORT]   # set by hal.rp2 / hal.esp32
    out = []
    for i, p in enumerate(pins):
        if p is None:
            p = board.adc_pin if i == 0 else defaults[i]
        elif p not in allowed:
            raise ValueError("mains.channels[%d].pin: GPIO %d is not an ADC input on %s"
                             % (i, p, board.PORT))
        out.append(p)
    return out


_made = []


def multi_source(base):
    """The sampling source class for several channels: a subclass of `base` (hal._mcu's
    AdcSource, passed in because hal._mcu imports this module), made once.

    MultiAdcSource(adcs, rate, block_len, timer_id): at each tick of the one timer the hard IRQ
    converts every channel in turn, in channel order, into an interleaved ring (ch0, ch1, ...
    per tick; a block holds block_len ticks); nch says how many. The stock rp2 and esp32
    `machine.ADC` have no round-robin or multi-channel read, so the conversions come one after
    the other in the same IRQ: a few microseconds apart (an RP2040 conversion takes 2 us), well
    under a degree at 50 Hz (55 us). As AdcSource: no allocation, small-int counters."""
    if not _made:
        class MultiAdcSource(base):
            def __init__(self, adcs, rate, block_len, timer_id=-1):
                base.__init__(self, adcs[0], rate, block_len * len(adcs), timer_id)
                self.nch = len(adcs)
                self.adcs = tuple(adcs)

            def _isr(self, _t):
                w = self.w
                ring = self.ring
                adcs = self.adcs
                for i in range(self.nch):
                    ring[w + i] = adcs[i].read_u16() - 32768
                w += self.nch
                if w == self._size:
                    w = 0
                self.w = w
                if w % self.block_len == 0:
                    b = self.blocks
                    self.blocks = b + 1 if b < _WRAP else 0
                    self.flag.set()

        _made.append(MultiAdcSource)
    return _made[0]
