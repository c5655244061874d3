# MicroPython (virtual board ROM): the virtual board's side of the wire to its supervisor
# (frames in host/powersentinel/virtual/wire.py). What arrives drives the `machine` stand-in's
# pins (ADC samples clock its hard timers, contact levels, UART bytes); what the stand-in and
# the board send (outputs, UART, watchdog, hello, heartbeat) leaves through send().
import asyncio
import struct

import _thread

import _vboard
import _vmachine


class ThreadSafeFlag:
    """asyncio.ThreadSafeFlag as the virtual board provides it. The unix port's own one is a
    stream the event loop polls, and polling it next to sockets crashes the interpreter
    (segmentation fault, seen with NUT clients connecting). Here set() is only ever called by
    hard timer callbacks, which the wire task runs in the main thread, so an Event does the
    same; Event.set() does not allocate, as a hard callback requires."""

    def __init__(self):
        self._ev = asyncio.Event()

    def set(self):
        self._ev.set()

    def clear(self):
        self._ev.clear()

    async def wait(self):
        await self._ev.wait()
        self._ev.clear()


class Wire:
    def __init__(self, addr):
        self.addr = addr
        self.sock = None
        self.lock = _thread.allocate_lock()  # soft timers (a thread) send too
        self._scratch = bytearray(512)  # even: whole samples
        self._smv = memoryview(self._scratch)
        _vmachine._send = self.send

    async def connect(self):
        self.reader, writer = await asyncio.open_connection(*self.addr)
        self.sock = writer.s

    def send(self, kind, payload=b""):
        if self.sock is None:
            return
        mv = memoryview(struct.pack("<BH", kind[0], len(payload)) + payload)
        with self.lock:
            while mv:
                n = self.sock.write(mv)
                if n is None:  # the host is slow to read: frames are tiny, wait for room
                    _vmachine.time.sleep_ms(1)
                    continue
                mv = mv[n:]

    async def run(self):
        r = self.reader
        smv = self._smv
        while True:
            h = await r.readexactly(3)
            kind = h[0:1]
            n = h[1] | (h[2] << 8)
            if kind == b"A":
                # through a small preallocated buffer, a piece at a time (a frame after the
                # supervisor was starved holds up to a second of samples)
                whole = len(smv) - len(smv) % (2 * len(_vmachine._adc_now))  # whole ticks
                while n:
                    k = min(n, whole)
                    got = 0
                    while got < k:
                        m = await r.readinto(smv[got:k])
                        if not m:
                            raise OSError(104)
                        got += m
                    _vmachine._adc_feed(self._scratch, k // 2)
                    n -= k
                continue
            payload = await r.readexactly(n) if n else b""
            if kind == b"C":
                c = _vmachine._contacts
                for i in range(min(len(payload), len(c))):
                    c[i] = 1 if payload[i] else 0
            elif kind == b"U" and _vmachine._uart is not None:
                _vmachine._uart._arrive(payload)
            elif kind == b"V" and _vmachine._uart2 is not None:
                _vmachine._uart2._arrive(payload)
