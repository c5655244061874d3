# HAL for the virtual board: the MicroPython unix port run by the host's supervisor
# (host/powersentinel/virtual/). Every pin a real board would have arrives over one loopback TCP
# connection as frames `kind (1) | length (uint16 LE) | payload`; the host side and the frame
# kinds are in host/powersentinel/virtual/wire.py.
import asyncio
import json
import socket
import struct
import time
from array import array

import micropython

import _vboard  # installed by the virtual board's ROM

_RING_BLOCKS = 16  # ADC blocks buffered: ~64 ms at 4 kHz / 16 samples


class _Wire:
    def __init__(self, addr):
        self.addr = addr
        self.sock = None
        self.reader = None
        self.handlers = {}

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(*self.addr)

    def send(self, kind, payload=b""):
        # Frames are tiny and the host reads promptly; a blocking send keeps order simple.
        self.writer.write(struct.pack("<BH", kind[0], len(payload)) + payload)

    async def drain(self):
        await self.writer.drain()

    async def run(self):
        r = self.reader
        adc = None
        while True:
            h = await r.readexactly(3)
            kind = h[0:1]
            n = h[1] | (h[2] << 8)
            if kind == b"A":
                adc = adc or self.handlers.get(b"A")
                if adc is not None:
                    await adc.receive(r, n)
                    continue
            payload = await r.readexactly(n) if n else b""
            fn = self.handlers.get(kind)
            if fn is not None:
                fn(payload)


@micropython.viper
def _le16_into(dst: ptr16, dpos: int, src: ptr8, spos: int, n: int):
    for i in range(n):
        j = 2 * (spos + i)
        dst[dpos + i] = src[j] | (src[j + 1] << 8)


class AdcSource:
    """ADC blocks from the wire: the supervisor paces samples in real time, as a timer-driven
    ADC would; blocks are copied into a preallocated ring so the reader never allocates."""

    def __init__(self, wire, rate, block_len):
        self.rate = rate
        self.block_len = block_len
        self.ring = array("h", bytes(2 * block_len * _RING_BLOCKS))
        self._mv = memoryview(self.ring)
        self._scratch = bytearray(4096)
        self._smv = memoryview(self._scratch)
        self.w = 0  # samples written (monotonic)
        self.r = 0  # samples read
        self.overruns = 0
        self.flag = asyncio.Event()
        wire.handlers[b"A"] = self

    def start(self):
        pass

    async def receive(self, r, nbytes):
        # Read the raw int16 LE bytes into a preallocated scratch buffer, then store them in
        # the ring: no allocation per block.
        scratch = self._scratch
        if nbytes > len(scratch):
            raise OSError(22)
        got = 0
        while got < nbytes:
            m = await r.readinto(self._smv[got:nbytes])
            if not m:
                raise OSError(104)
            got += m
        size = len(self.ring)
        n = nbytes // 2
        done = 0
        while done < n:
            pos = self.w % size
            k = min(n - done, size - pos)
            _le16_into(self.ring, pos, scratch, done, k)
            self.w += k
            done += k
        if self.w - self.r > size:
            lost = (self.w - self.r - size + self.block_len - 1) // self.block_len
            self.overruns += lost
            self.r += lost * self.block_len
        if self.w - self.r >= self.block_len:
            self.flag.set()

    async def read(self):
        while self.w - self.r < self.block_len:
            self.flag.clear()
            await self.flag.wait()
        size = len(self.ring)
        pos = self.r % size
        self.r += self.block_len
        # block_len divides the ring, so a block never wraps
        return self._mv[pos:pos + self.block_len]


class Contacts:
    lines = 8

    def __init__(self, wire):
        self.levels = 0
        wire.handlers[b"C"] = self._on_levels

    def _on_levels(self, payload):
        v = 0
        for i, b in enumerate(payload):
            if b:
                v |= 1 << i
        self.levels = v

    def read(self):
        return self.levels


class Outputs:
    lines = 4

    def __init__(self, wire):
        self.wire = wire
        self.levels = bytearray(self.lines)

    def set(self, line, level):
        self.levels[line] = 1 if level else 0
        self.wire.send(b"O", bytes(self.levels))

    def get(self, line):
        return self.levels[line]


class Uart:
    def __init__(self, wire, baud):
        self.wire = wire
        self.baud = baud
        self.rx = bytearray()
        self.flag = asyncio.Event()
        wire.handlers[b"U"] = self._on_rx

    def _on_rx(self, payload):
        if len(self.rx) < 1024:  # a UART FIFO overflows rather than grow
            self.rx += payload
        self.flag.set()

    async def write(self, data):
        self.wire.send(b"U", data)
        await self.wire.drain()

    def flush_input(self):
        self.rx = bytearray()

    async def read_until(self, term, timeout_ms):
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while True:
            i = self.rx.find(term)
            if i >= 0:
                out = bytes(self.rx[:i + len(term)])
                self.rx = self.rx[i + len(term):]
                return out
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return None
            self.flag.clear()
            try:
                await asyncio.wait_for_ms(self.flag.wait(), left)
            except asyncio.TimeoutError:
                pass


class Board:
    name = "virtual"

    def __init__(self, cfg=None):
        self.cfg = cfg or {}
        self.wire = _Wire(_vboard.WIRE)
        self._adc = None
        self._contacts = Contacts(self.wire)
        self._outputs = Outputs(self.wire)
        self._uart = None
        self._time_offset = 0

    async def start(self):
        await self.wire.connect()

    def background(self):
        """Coroutines the board needs running (here: the wire reader)."""
        return [self.wire.run()]

    def hello(self, info):
        self.wire.send(b"H", json.dumps(info).encode())

    def heartbeat(self, info):
        self.wire.send(b"P", json.dumps(info).encode())

    def adc(self, rate, block_len):
        if self._adc is None:
            self._adc = AdcSource(self.wire, rate, block_len)
        return self._adc

    def contacts(self):
        return self._contacts

    def outputs(self):
        return self._outputs

    def uart(self, baud):
        if self._uart is None:
            self._uart = Uart(self.wire, baud)
        return self._uart

    def network_up(self):
        return True

    def ip(self):
        return "127.0.0.1"

    def nut_bind(self):
        return _vboard.NUT

    def watchdog_start(self, timeout_ms):
        self.wire.send(b"W", struct.pack("<I", timeout_ms))

    def watchdog_feed(self):
        self.wire.send(b"W")

    def watchdog_park(self):
        # Only the virtual board can stop its watchdog (a real WDT cannot be stopped): used when
        # the firmware is interrupted to the REPL, so a developer session is not reset.
        self.wire.send(b"W", struct.pack("<I", 0))

    def time(self):
        return int(time.time() + self._time_offset)  # RTC seconds, as on a board

    def set_time(self, epoch):
        self._time_offset = epoch - time.time()

    def reset_cause(self):
        return _vboard.RESET_CAUSE

    def unique_id(self):
        return _vboard.UID

    def reset(self):
        import machine  # the ROM's stand-in: exits the interpreter, the supervisor reboots it
        machine.reset()

    def flash_stats(self):
        bd = _vboard.BLOCKDEV
        return {"writes": bd.writes, "erases": bd.erases} if bd else None


def make_board(cfg=None):
    return Board(cfg)
