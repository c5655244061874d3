# The board code the microcontroller ports share (rp2, esp32, and the virtual board, which runs it
# over its `machine` stand-in): timer-driven ADC sampling into a ring, GPIO contact inputs and
# outputs, a polled UART, the watchdog, the RTC, the reset cause and the Wi-Fi station. Only the
# board modules import this (it imports `machine`).
import asyncio
import os
import time
from array import array

import machine
import micropython
from micropython import const

from hal.board import Board

RING_BLOCKS = 64  # ADC blocks buffered: 256 ms at 4 kHz / 16; to be sized from the worst loop stall
_WRAP = const(0x3FFFFFFF)  # block counters run 0.._WRAP then 0: 31-bit small ints on every port
_RX_MAX = const(512)       # a babbling line cannot grow the receive buffer without bound
_POLL_MS = const(10)       # UART poll period: 24 characters at 2400 baud, far below the FIFO
# machine.reset_cause() values by name; a port lacks some names (rp2: PWRON_RESET, WDT_RESET only)
_CAUSES = (("PWRON_RESET", "power_on"), ("HARD_RESET", "hard"), ("WDT_RESET", "wdt"),
           ("SOFT_RESET", "soft"))


class AdcSource:
    """A hardware timer samples the ADC at `rate` into a preallocated ring from its interrupt
    handler, which must not allocate and keeps every counter a small int: the write index wraps
    inside the ring and the block counter wraps at _WRAP. read() hands out whole blocks.
    Several mains channels: hal.adcpins.multi_source()."""

    def __init__(self, adc, rate, block_len, timer_id=-1, ring_blocks=RING_BLOCKS):
        self.adc = adc
        self.rate = rate
        self.block_len = block_len
        self.nblocks = ring_blocks
        self.ring = array("h", bytes(2 * block_len * ring_blocks))
        self._mv = memoryview(self.ring)
        self._size = len(self.ring)
        self.w = 0        # ISR: ring index of the next sample
        self.blocks = 0   # ISR: blocks completed, modulo _WRAP + 1
        self.rblocks = 0  # reader: blocks taken (or skipped), modulo _WRAP + 1
        self.rslot = 0    # reader: slot of the next block
        self.overruns = 0
        self.flag = asyncio.ThreadSafeFlag()
        self.timer_id = timer_id
        self.timer = None
        self._isr_ref = self._isr  # bound method allocated once, not in the interrupt

    def _isr(self, _t):
        w = self.w
        # 16-bit reading centred on zero: the monitor removes the sensor's real DC offset.
        self.ring[w] = self.adc.read_u16() - 32768
        w += 1
        if w == self._size:
            w = 0
        self.w = w
        if w % self.block_len == 0:
            b = self.blocks
            self.blocks = b + 1 if b < _WRAP else 0
            self.flag.set()

    def start(self):
        self.timer = machine.Timer(self.timer_id)
        self.timer.init(freq=self.rate, mode=machine.Timer.PERIODIC, callback=self._isr_ref,
                        hard=True)

    def pending(self):
        """Complete blocks not yet read (the ring holds at most nblocks - 1 intact)."""
        n = self.blocks - self.rblocks
        if n < 0:
            n = (n + _WRAP) + 1  # grouped so no step leaves the small-int range
        return n

    async def read(self):
        n = self.pending()
        while not n:
            await self.flag.wait()
            n = self.pending()
        if n >= self.nblocks:
            # The ISR is writing over the oldest unread block: skip to the oldest intact one.
            lost = n - (self.nblocks - 1)
            self.overruns = _WRAP if lost > _WRAP - self.overruns else self.overruns + lost
            room = _WRAP - self.rblocks
            self.rblocks = lost - room - 1 if lost > room else self.rblocks + lost
            self.rslot = (self.rslot + lost % self.nblocks) % self.nblocks
        s = self.rslot
        self.rslot = s + 1 if s + 1 < self.nblocks else 0
        r = self.rblocks
        self.rblocks = r + 1 if r < _WRAP else 0
        # a view per read (one small object), rather than one kept per slot: the heap's peak
        # matters more than this garbage
        pos = s * self.block_len
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
    """The UPS serial line, polled: read(n) is only called for the n bytes any() reports, since a
    port's read() with fewer bytes waiting blocks everything until the line goes quiet."""

    def __init__(self, uart, baud):
        self.uart = uart
        self.rx = b""
        # a reply still arriving at the deadline is waited for while bytes keep coming: the line
        # counts as quiet after three character times (10 bits each) without one
        self._quiet_ms = 3 * (10000 // baud + 1) + _POLL_MS

    async def write(self, data):
        self.uart.write(data)  # a Q1 command fits the port's transmit buffer: no wait
        await asyncio.sleep_ms(0)

    def flush_input(self):
        self.rx = b""
        n = self.uart.any()
        while n:
            self.uart.read(n)
            n = self.uart.any()

    async def read_until(self, term, timeout_ms):
        t0 = time.ticks_ms()
        last = None  # when the last byte came
        while True:
            i = self.rx.find(term)
            if i >= 0:
                out, self.rx = self.rx[:i + len(term)], self.rx[i + len(term):]
                return out
            n = self.uart.any()
            if n:
                chunk = self.uart.read(n)  # n bytes are waiting: returns at once
                if chunk:
                    if len(self.rx) < _RX_MAX:
                        self.rx += chunk
                    last = time.ticks_ms()
                    continue
            now = time.ticks_ms()
            if time.ticks_diff(now, t0) >= timeout_ms:
                # past the deadline: only a reply still arriving, and never past twice the timeout
                if last is None or time.ticks_diff(now, last) > self._quiet_ms \
                        or time.ticks_diff(now, t0) >= 2 * timeout_ms:
                    return None
            await asyncio.sleep_ms(_POLL_MS)


class McuBoard(Board):
    """What the microcontroller boards share; subclasses set pins, timers and port facts."""

    name = "mcu"
    ADC_PIN = 0
    CONTACT_PINS = ()
    OUTPUT_PINS = ()
    UART_ID = 1
    UART_PINS = {}
    UART2_ID = 0           # a second UPS's UART (two feeds, one Q1 UPS each)
    UART2_PINS = None      # (tx, rx) GPIO numbers: the Pins are made only when it is used
    TIMER_ID = -1          # the ADC's timer: an id this port has
    PARK_TIMER_ID = -1     # a soft timer that feeds the watchdog while at the REPL
    RESET_REPORTS = None   # the machine.reset_cause() name machine.reset() leaves behind
    UNNAMED_CAUSES = {}    # reset_cause() values the port returns without naming them
    INTENT_PATH = "/.reset_intent"  # written just before a reset the firmware asks for
    _uart2 = None   # a second UPS's Uart, once asked for (a class default: device heap)

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
        self._wdt_ms = 0
        self._park = None
        self._wlan = None
        self._net = None  # False: this image has no `network` module
        self._cause = None
        if hasattr(micropython, "alloc_emergency_exception_buf"):
            micropython.alloc_emergency_exception_buf(100)

    async def start(self):
        self.network_connect()

    def make_adc(self, pin=None):
        return machine.ADC(machine.Pin(int(self.adc_pin or self.ADC_PIN if pin is None else pin)))

    def adc(self, rate, block_len, pins=None):
        if self._adc is None:
            if pins:
                # only sites that list mains.channels load this module (device heap)
                from hal.adcpins import channel_pins, multi_source
                adcs = [self.make_adc(p) for p in channel_pins(self, pins)]
                if len(adcs) == 1:
                    self._adc = AdcSource(adcs[0], rate, block_len, self.TIMER_ID)
                else:
                    self._adc = multi_source(AdcSource)(adcs, rate, block_len, self.TIMER_ID)
            else:
                self._adc = AdcSource(self.make_adc(), rate, block_len, self.TIMER_ID)
        return self._adc

    def contacts(self):
        if self._contacts is None:
            self._contacts = Contacts(self.contact_pins)
        return self._contacts

    def outputs(self):
        if self._outputs is None:
            self._outputs = Outputs(self.output_pins)
        return self._outputs

    def uart(self, baud, second=False):
        if second:
            if self._uart2 is None:
                p = self.UART2_PINS
                if p is None:
                    u = machine.UART(self.UART2_ID, baudrate=baud, bits=8, parity=None, stop=1)
                else:
                    u = machine.UART(self.UART2_ID, baudrate=baud, bits=8, parity=None, stop=1,
                                     tx=machine.Pin(p[0]), rx=machine.Pin(p[1]))
                self._uart2 = Uart(u, baud)
            return self._uart2
        if self._uart is None:
            u = machine.UART(self.UART_ID, baudrate=baud, bits=8, parity=None, stop=1,
                             **self.UART_PINS)
            self._uart = Uart(u, baud)
        return self._uart

    def network_connect(self):
        """Start joining the configured Wi-Fi; never raises, never waits."""
        try:
            import network  # here, not at the top: images without network hardware have none
        except ImportError:
            self._net = False
            return
        self._net = True
        net = self.cfg.get("network") or {}
        try:
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
            if net.get("ssid") and not self._wlan.isconnected():
                self._wlan.connect(net["ssid"], net.get("password", ""))
        except Exception:  # OSError on esp32, RuntimeError from some radio drivers
            pass  # radio or driver trouble: the state reads "down" and sensing goes on

    def network_state(self):
        if self._net is False:
            return "absent"
        try:
            return "up" if self._wlan is not None and self._wlan.isconnected() else "down"
        except Exception:
            return "down"

    def ip(self):
        w = self._wlan
        if w is None or self.network_state() != "up":
            return "0.0.0.0"
        return w.ifconfig()[0]

    def nut_bind(self):
        return ("0.0.0.0", self.cfg.get("nut", {}).get("port", 3493))

    def watchdog_start(self, timeout_ms):
        self._wdt_ms = timeout_ms
        self._wdt = machine.WDT(timeout=timeout_ms)

    def watchdog_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def watchdog_park(self):
        # A started watchdog cannot be stopped on these ports, and a developer at the REPL
        # (mpremote) must not be reset: feed it from a soft timer, which runs at the REPL too.
        if self._wdt is None or self._park is not None:
            return
        self._park = machine.Timer(self.PARK_TIMER_ID)
        self._park.init(period=max(100, self._wdt_ms // 4), mode=machine.Timer.PERIODIC,
                        callback=self._park_feed, hard=False)

    def _park_feed(self, _t):
        w = self._wdt
        if w is not None:
            w.feed()

    def time(self):
        return time.time()

    def set_time(self, epoch):
        t = time.gmtime(epoch)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def unique_id(self):
        import binascii  # only for this one-off call
        return binascii.hexlify(machine.unique_id()).decode()

    def reset_cause(self):
        if self._cause is None:
            c = machine.reset_cause()
            cause = self.UNNAMED_CAUSES.get(c, "unknown")
            for attr, what in _CAUSES:
                if getattr(machine, attr, None) == c:
                    cause = what
                    break
            try:
                os.remove(self.INTENT_PATH)
                asked = True
            except OSError:
                asked = False
            # the marker counts only with the cause machine.reset() leaves: a marker left by a
            # reset that never happened (power cut first) does not hide a real cause
            if asked and c == getattr(machine, self.RESET_REPORTS or "", None):
                cause = "hard"
            self._cause = cause
        return self._cause

    def reset(self):
        # machine.reset() reads back as a watchdog reset on rp2: leave a marker so this reset,
        # which the firmware asked for, does not count as a crash at the next boot
        try:
            with open(self.INTENT_PATH, "w") as f:
                f.write("reset")
        except OSError:
            pass
        machine.reset()
