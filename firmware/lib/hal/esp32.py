# HAL for ESP32 boards (ESP32-WROOM/-S3 DevKit). Pin choices follow docs/wiring.md and
# docs/ups-wiring.md: ADC1 only
# (ADC2 is unusable while Wi-Fi is on), input-only GPIO 34-39 for the sensed waveform.
import machine

from hal._mcu import McuBoard


class Esp32Board(McuBoard):
    name = "esp32"
    PORT = "esp32"
    ADC_PIN = 34                   # ADC1_CH6: isolated mains sensor output (biased to mid-rail)
    CONTACT_PINS = (25, 26, 27, 14)  # optocoupler outputs from the UPS dry contacts
    OUTPUT_PINS = (4,)              # optocoupler to the UPS remote-shutdown input
    UART_ID = 2
    UART_PINS = {"tx": 17, "rx": 16}  # through a MAX3232 to the UPS RS-232 port
    UART2_ID = 1                   # a second UPS (one per feed); UART1's default pins are flash
    UART2_PINS = (23, 22)          # tx, rx
    TIMER_ID = 0                   # hardware timers 0-3; -1 (virtual) is refused since 1.26
    PARK_TIMER_ID = 1              # its callbacks are scheduled (soft), so they run at the REPL
    RESET_REPORTS = "SOFT_RESET"   # machine.reset() is esp_restart(): ESP_RST_SW

    def make_adc(self, pin=None):
        adc = machine.ADC(machine.Pin(int(self.adc_pin or self.ADC_PIN if pin is None else pin)))
        adc.atten(machine.ADC.ATTN_11DB)  # full 0-3.3 V range for the biased sensor output
        return adc


def make_board(cfg=None):
    return Esp32Board(cfg)
