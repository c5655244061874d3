# Parts of the HAL shared by the real microcontroller ports (esp32, rp2): timer-driven ADC
# sampling into a ring, GPIO contact inputs and outputs, a UART behind asyncio streams, the
# watchdog and the RTC. Only the board modules import this (it imports `machine`).
import asyncio
import time
from array import array

import machine
import micropython

_RING_BLOCKS = 16


class AdcSource:
    """A hardware timer samples the ADC at `rate` into a preallocated ring from its interrupt
    handler (which must not allocate); read() hands out whole blocks to the sampler task."""

    def __init__(self, adc, rate, block_len, timer_id=0):
        self.adc = adc
        self.rate = rate
        self.block_len = block_len
        self.ring = array("h", bytes(2 * block_len * _RING_BLOCKS))
        self._mv = memoryview(self.ring)
        self._size = len(self.ring)
        self.w = 0
        self.r = 0
        self.overruns = 0
        self.flag = asyncio.ThreadSafeFlag()
        self.timer_id = timer_id
        self._isr_ref = self._isr  # bound method allocated once, not in the interrupt

    def _isr(self, _t):
        # 16-bit reading centred on zero: the monitor removes the sensor's real DC offset.
        self.ring[self.w % self._size] = self.adc.read_u16() - 32768
        self.w += 1
        if self.w % self.block_len == 0:
            self.flag.set()

    def start(self):
        self.timer = machine.Timer(self.timer_id)
        self.timer.init(freq=self.rate, mode=machine.Timer.PERIODIC, callback=self._isr_ref,
                        hard=True)

    async def read(self):
        while self.w - self.r < self.block_len:
            await self.flag.wait()
        if self.w - self.r > self._size - self.block_len:
            lost = (self.w - self.r) // self.block_len - 1
            self.overruns += lost
            self.r += lost * self.block_len
        pos = self.r % self._size
        self.r += self.block_len
        return self._mv[pos:pos + self.block_len]


class Contacts:
    """Optocoupled UPS contacts on GPIO inputs with pull-ups (bit n = line n)."""

    def __init__(self, pins):
        self.pins = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in pins]
        self.lines = len(self.pins)

    def read(self):
        v = 0
        for i, p in enumerate(self.pins):
            if p.value():
                v |= 1 << i
        return v


class Outputs:
    def __init__(self, pins):
        self.pins = [machine.Pin(p, machine.Pin.OUT, value=0) for p in pins]
        self.lines = len(self.pins)

    def set(self, line, level):
        self.pins[line].value(1 if level else 0)

    def get(self, line):
        return self.pins[line].value()


class Uart:
    def __init__(self, uart):
        self.uart = uart
        self.reader = asyncio.StreamReader(uart)
        self.writer = asyncio.StreamWriter(uart, {})
        self.rx = b""

    async def write(self, data):
        self.writer.write(data)
        await self.writer.drain()

    def flush_input(self):
        self.rx = b""
        while self.uart.any():
            self.uart.read()

    async def read_until(self, term, timeout_ms):
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while True:
            i = self.rx.find(term)
            if i >= 0:
                out, self.rx = self.rx[:i + len(term)], self.rx[i + len(term):]
                return out
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return None
            try:
                chunk = await asyncio.wait_for_ms(self.reader.read(64), left)
            except asyncio.TimeoutError:
                return None
            if len(self.rx) < 512:  # a babbling line cannot grow the buffer without bound
                self.rx += chunk


class McuBoard:
    """What the ESP32 and RP2 boards share; subclasses set pins and network."""

    name = "mcu"
    ADC_PIN = 0
    CONTACT_PINS = ()
    OUTPUT_PINS = ()
    UART_ID = 1
    UART_PINS = {}

    def __init__(self, cfg=None):
        self.cfg = cfg or {}
        hw = self.cfg.get("board") or {}
        self.adc_pin = hw.get("adc_pin")
        if self.adc_pin is None:
            self.adc_pin = self.ADC_PIN
        self.contact_pins = self.CONTACT_PINS
        self.output_pins = self.OUTPUT_PINS
        self._adc = None
        self._contacts = None
        self._outputs = None
        self._uart = None
        self._wdt = None
        self._wlan = None
        if hasattr(micropython, "alloc_emergency_exception_buf"):
            micropython.alloc_emergency_exception_buf(100)

    async def start(self):
        self.network_connect()

    def background(self):
        return []

    def make_adc(self):
        return machine.ADC(machine.Pin(int(self.adc_pin or self.ADC_PIN)))

    def adc(self, rate, block_len):
        if self._adc is None:
            self._adc = AdcSource(self.make_adc(), rate, block_len)
        return self._adc

    def contacts(self):
        if self._contacts is None:
            self._contacts = Contacts(self.contact_pins)
        return self._contacts

    def outputs(self):
        if self._outputs is None:
            self._outputs = Outputs(self.output_pins)
        return self._outputs

    def uart(self, baud):
        if self._uart is None:
            u = machine.UART(self.UART_ID, baudrate=baud, bits=8, parity=None, stop=1,
                             **self.UART_PINS)
            self._uart = Uart(u)
        return self._uart

    def network_connect(self):
        import network  # the HAL is the only place allowed to import it
        net = self.cfg.get("network", {})
        self._wlan = network.WLAN(network.STA_IF)
        self._wlan.active(True)
        if net.get("ssid") and not self._wlan.isconnected():
            self._wlan.connect(net["ssid"], net.get("password", ""))

    def network_up(self):
        return bool(self._wlan and self._wlan.isconnected())

    def ip(self):
        w = self._wlan
        return w.ifconfig()[0] if w is not None and w.isconnected() else "0.0.0.0"

    def nut_bind(self):
        return ("0.0.0.0", self.cfg.get("nut", {}).get("port", 3493))

    def watchdog_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def watchdog_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def time(self):
        return time.time()

    def set_time(self, epoch):
        t = time.gmtime(epoch)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def unique_id(self):
        import binascii
        return binascii.hexlify(machine.unique_id()).decode()

    def reset_cause(self):
        c = machine.reset_cause()
        return {machine.PWRON_RESET: "power_on", machine.HARD_RESET: "hard",
                machine.WDT_RESET: "wdt", machine.SOFT_RESET: "soft"}.get(c, "unknown")

    def reset(self):
        machine.reset()
