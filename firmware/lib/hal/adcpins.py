# Mains channels on one board: the ADC inputs each port can sample and each channel's default.
# Imported only by boards whose site lists mains.channels (device heap: boards without ROMFS hold
# every imported module's bytecode in RAM). The same tables are in sentinel/schema.py (ADC_PINS,
# DEFAULT_PINS), which validates the config on the device and the host; keep them in step.

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
