# HAL for the virtual board: the MicroPython unix port run by the host's supervisor
# (host/powersentinel/virtual/). It runs the real ports' board code (hal/_mcu.py through the
# board class of the port profile the supervisor chose) over the ROM's `machine` stand-in, which
# plays that port. This module only adds what a real board does not have: the wire to the
# supervisor (pins, reports), the eight contact and four output lines of the virtual header, and
# the host clock as RTC.
import json
import time

import _vboard  # installed by the virtual board's ROM
import _vwire

if _vboard.PROFILE == "esp32":
    from hal.esp32 import Esp32Board as _Port
else:
    from hal.rp2 import Rp2Board as _Port


class VirtualBoard(_Port):
    name = "virtual"
    CONTACT_PINS = _vboard.CONTACT_PINS
    OUTPUT_PINS = _vboard.OUTPUT_PINS

    def __init__(self, cfg=None):
        _Port.__init__(self, cfg)
        self.profile = _vboard.PROFILE
        self.wire = _vwire.Wire(_vboard.WIRE)
        self._time_offset = 0

    async def start(self):
        await self.wire.connect()
        await _Port.start(self)

    def background(self):
        return [self.wire.run()] + _Port.background(self)

    def hello(self, info):
        self.wire.send(b"H", json.dumps(info).encode())

    def heartbeat(self, info):
        self.wire.send(b"P", json.dumps(info).encode())

    def nut_bind(self):
        return _vboard.NUT

    def time(self):
        return int(time.time() + self._time_offset)  # RTC seconds, as on a board

    def set_time(self, epoch):
        self._time_offset = epoch - time.time()

    def flash_stats(self):
        bd = _vboard.BLOCKDEV
        return {"writes": bd.writes, "erases": bd.erases} if bd else None


def make_board(cfg=None):
    return VirtualBoard(cfg)
