# MicroPython (virtual board ROM), also read by host tests: the port profiles the `machine`
# stand-in (_vmachine.py) plays. Each is data; _vmachine offers exactly the names listed here, and
# host/tests/test_hal_profiles.py checks that every `machine.X`/`network.X` the HAL uses is listed.
# Values of reset causes are MicroPython's (extmod/modmachine.h): PWRON 1, HARD 2, WDT 3,
# DEEPSLEEP 4, SOFT 5.

PROFILES = {
    # Raspberry Pi Pico W, stock MicroPython 1.29 rp2 port. Sources: the stock RPI_PICO image run on
    # an emulated RP2040 (timer ids, reset constants, reset() reads WDT_RESET, the WDT cannot be
    # stopped, 31-bit small ints, UART timeout_char); docs.micropython.org rp2 quickref
    # (Pin, ADC(26), UART(1, tx=Pin(4), rx=Pin(5)), Timer(-1), WDT max 8388 ms, network.WLAN).
    "rp2": {
        "machine": ("ADC", "Pin", "Pin.IN", "Pin.OUT", "Pin.PULL_UP", "UART", "Timer",
                    "Timer.PERIODIC", "Timer.ONE_SHOT", "WDT", "RTC", "reset", "soft_reset",
                    "reset_cause", "unique_id", "idle", "freq", "PWRON_RESET", "WDT_RESET"),
        "network": ("WLAN", "STA_IF"),
        "timer_ids": (-1,),
        # supervisor cause -> machine.reset_cause() value. machine.reset() goes through the
        # watchdog (WDT_RESET); the RUN pin reads 2 (HARD), a value the port does not name; a
        # soft reboot leaves the last hard cause (taken as power-on); a crash ends at the REPL and
        # the watchdog resets the board.
        "reset_causes": {"power_on": 1, "machine_reset": 3, "hard": 2, "wdt": 3, "crash": 3,
                         "soft": 1},
        "wdt_stoppable": False,
        "wdt_max_ms": 8388,
        "small_int_bits": 31,
        "uart_ids": (0, 1),
        "uart2_id": 0,   # hal/rp2.py's second UPS UART: its bytes go in "V" wire frames
        # machine_uart.c: timeout_char is at least 13 bit times, rounded up (ms) plus one
        "uart_min_timeout_char": "rp2",
        "uart_rxbuf": 256,
        # the virtual board's header: contact lines 0-7 and output lines 0-3 of the wire; the
        # first ones are the pins hal/rp2.py uses (docs/wiring.md)
        "contact_pins": (10, 11, 12, 13, 6, 7, 8, 9),
        "output_pins": (14, 15, 16, 17),
        # ADC0-3 (GP29: VSYS/3 on a Pico); the mains channels' defaults are GP26-28
        "adc_pins": (26, 27, 28, 29),
        "default_adc_pins": (26, 27, 28),
    },
    # A plain Pico (RPI_PICO image): as rp2, but the image has no `network` (nor `socket`; the
    # stand-in hides `network` only: the unix port's `socket` stays, the NUT server needs it).
    "rp2-pico": None,
    # ESP32-WROOM DevKit, MicroPython 1.29 esp32 port. Sources: docs.micropython.org esp32 quickref
    # (Timer ids 0-3 are the four hardware timers; -1 is refused since 1.26, micropython#18263;
    # ADC.ATTN_11DB; UART 0-2; network.WLAN), esp32/modmachine.c machine_reset_cause (ESP_RST_SW
    # and panics read SOFT_RESET, the EXT pin HARD_RESET, the task/interrupt WDT WDT_RESET).
    "esp32": {
        "machine": ("ADC", "ADC.ATTN_11DB", "Pin", "Pin.IN", "Pin.OUT", "Pin.PULL_UP", "UART",
                    "Timer", "Timer.PERIODIC", "Timer.ONE_SHOT", "WDT", "RTC", "reset",
                    "soft_reset", "reset_cause", "unique_id", "idle", "freq", "PWRON_RESET",
                    "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"),
        "network": ("WLAN", "STA_IF"),
        "timer_ids": (0, 1, 2, 3),
        "reset_causes": {"power_on": 1, "machine_reset": 5, "hard": 2, "wdt": 3, "crash": 5,
                         "soft": 5},
        "wdt_stoppable": False,
        "wdt_max_ms": None,
        "small_int_bits": 31,
        "uart_ids": (0, 1, 2),
        "uart2_id": 1,   # hal/esp32.py's second UPS UART
        "uart_min_timeout_char": None,
        "uart_rxbuf": 256,
        "contact_pins": (25, 26, 27, 14, 32, 33, 18, 19),  # first four: hal/esp32.py's
        "output_pins": (4, 21, 22, 23),
        "adc_pins": (32, 33, 34, 35, 36, 37, 38, 39),   # ADC1 (ADC2 stops with Wi-Fi on)
        "default_adc_pins": (34, 35, 32),
    },
}
PROFILES["rp2-pico"] = dict(PROFILES["rp2"], network=None)
DEFAULT = "rp2"
