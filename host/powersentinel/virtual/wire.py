"""The wire protocol between the virtual board's supervisor (host) and the firmware's virtual HAL.

One TCP connection on loopback carries every signal a real board would get from its pins:
frames of `type (1 byte) | length (uint16 LE) | payload`. The board side is the ROM's
rom/_vwire.py, which drives the `machine` stand-in (rom/_vmachine.py) the firmware's HAL runs
on; keep the two in step.

host -> board: A  ADC block: int16 LE samples (their pace clocks the board's hard timers)
               C  contact input levels: one byte per line, 0 or 1
               U  bytes arriving on the UPS serial line
               V  bytes arriving on the second UPS's serial line (two feeds, one UPS each)
board -> host: H  hello: JSON {"fw": version, "protocol": n}
               U  bytes the firmware sends on the UPS serial line
               V  bytes the firmware sends on the second UPS's serial line
               O  output line levels: one byte per line
               W  watchdog: empty = feed; uint32 LE timeout ms = start (0 = stop; no port
                  profile sends it: their watchdogs cannot be stopped)
               P  progress: JSON (the firmware's heartbeat: heap, state) for the supervisor
"""
import struct

HEADER = struct.Struct("<cH")
MAX_PAYLOAD = 0xFFFF


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("wire payload too long")
    return HEADER.pack(kind, len(payload)) + payload


class Deframer:
    """Incremental parser: feed bytes, get (kind, payload) frames."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes):
        self.buf += data
        out = []
        while len(self.buf) >= HEADER.size:
            kind, n = HEADER.unpack_from(self.buf)
            if len(self.buf) < HEADER.size + n:
                break
            out.append((kind, bytes(self.buf[HEADER.size:HEADER.size + n])))
            del self.buf[:HEADER.size + n]
        return out
