# HAL for the Raspberry Pi Pico W (RP2040). Pins follow docs/wiring.md: ADC0 on GP26 for the
# sensed waveform, UART1 on GP4/GP5 for the UPS serial line (docs/ups-wiring.md),
# UART0 on GP16/GP17 for a second UPS (docs/wiring.md).
import machine

from hal._mcu import McuBoard

WDT_MAX_MS = 8388  # the RP2040 watchdog cannot count longer


class Rp2Board(McuBoard):
    name = "rp2"
    PORT = "rp2"
    ADC_PIN = 26
    CONTACT_PINS = (10, 11, 12, 13)
    OUTPUT_PINS = (14,)   # optocoupler to the UPS remote-shutdown input
    UART_ID = 1           # GP0/GP1 stay free for a debug UART
    UART_PINS = {"tx": machine.Pin(4), "rx": machine.Pin(5)}
    UART2_ID = 0          # a second UPS (one per feed): UART0 on GP16/GP17
    UART2_PINS = (16, 17)  # tx, rx
    TIMER_ID = -1         # rp2 has only the virtual timer: Timer(0) "doesn't exist"
    PARK_TIMER_ID = -1
    RESET_REPORTS = "WDT_RESET"  # machine.reset() goes through the watchdog
    UNNAMED_CAUSES = {2: "hard"}  # the RUN pin reads 2 (HARD_RESET), a name rp2 does not have

    def make_adc(self, pin=None):
        return machine.ADC(int(self.adc_pin or self.ADC_PIN if pin is None else pin))

    def watchdog_start(self, timeout_ms):
        McuBoard.watchdog_start(self, min(timeout_ms, WDT_MAX_MS))


def make_board(cfg=None):
    return Rp2Board(cfg)
