"""Peer link frames: a fixed 27-byte body and its HMAC-SHA256 (32 bytes) over the shared key.

    magic "PSP1" | sender id ("A"/"B") | boot id | counter | echo | mains | ups | state | flags |
    plan id | tiers done | load-off sent | HMAC-SHA256(key, everything before it)

boot id: random per boot of the sender (31-bit, never 0); counter: strictly increasing within
one boot (31-bit, from 1); echo: the receiver's boot id as the sender last authenticated it (0:
none yet). A receiver accepts a boot it does not know only when the message echoes its own
current boot, which no recording made before that boot can do (peer.py). Integers are big
endian. hashlib has no hmac module on MicroPython: RFC 2104 is done here with the pads
computed once per key.

Runs under MicroPython and CPython; pure (no I/O, no clock).
"""
import hashlib
import struct

MAGIC = b"PSP1"
_BODY = "!4sBIIIBBBBIBB"
BODY_LEN = 27  # struct.calcsize(_BODY)
MAC_LEN = 32
FRAME_LEN = BODY_LEN + MAC_LEN
MAX31 = 0x7FFFFFFF

# mains verdicts and UPS readings as carried in a frame
MAINS = ("unknown", "good", "lost", "bad")
UPS = ("none", "OL", "OB", "OB LB")
# state machine states, in a fixed order both ends share (an unknown name travels as 255)
STATES = ("ONLINE", "ON_BATTERY", "SHUTTING_DOWN", "LOAD_OFF", "WAIT_MAINS", "RESTORING")

# decode() results besides a Message
MALFORMED = "malformed"   # wrong length or magic: not ours, not counted as a key failure
BAD_MAC = "bad key"       # authentication failed: another key, or tampered


def _sha(data):
    return hashlib.sha256(data)


class Message:
    """One authenticated frame's fields (a new object per accepted frame: a few per second)."""

    def __init__(self, t):
        (_, sid, self.boot, self.counter, self.echo, self.mains, self.ups, self.state,
         self.flags, self.plan_id, self.tiers_done, self.loadoff) = t
        self.sender = chr(sid)

    def view(self):
        """The sender's view as names (for status and records)."""
        st = self.state
        return {"mains": MAINS[self.mains] if self.mains < len(MAINS) else "unknown",
                "ups": UPS[self.ups] if self.ups < len(UPS) else "none",
                "state": STATES[st] if st < len(STATES) else "?",
                "plan_id": self.plan_id, "tiers_done": self.tiers_done,
                "loadoff_sent": bool(self.loadoff), "hears_us": bool(self.flags & 1),
                "ups_output_off": bool(self.flags & 2)}


class Codec:
    """Encodes this sentinel's frames and checks the peer's. key: the shared key (str or
    bytes); sender: "A" or "B"; boot: this boot's id (1..MAX31)."""

    def __init__(self, key, sender, boot):
        if isinstance(key, str):
            key = key.encode()
        if len(key) > 64:
            key = _sha(key).digest()
        ik = bytearray(64)
        ok = bytearray(64)
        for i in range(64):
            k = key[i] if i < len(key) else 0
            ik[i] = k ^ 0x36
            ok[i] = k ^ 0x5C
        self._ik = bytes(ik)
        self._ok = bytes(ok)
        self.sender = ord(sender)
        self.boot = boot
        self.counter = 0
        self.buf = bytearray(FRAME_LEN)  # reused by every encode: one heartbeat, one buffer

    def mac(self, body):
        """HMAC-SHA256 of body with the shared key (RFC 2104)."""
        h = _sha(self._ik)
        h.update(body)
        inner = h.digest()
        h = _sha(self._ok)
        h.update(inner)
        return h.digest()

    def encode(self, echo, mains, ups, state, flags, plan_id, tiers_done, loadoff):
        """The next frame (the codec's own buffer, valid until the next encode). The counter
        never leaves the 31-bit small-int range: at MAX31 the caller must take a new boot id
        (next_boot), which the peer accepts as a reboot."""
        if self.counter >= MAX31:
            raise OverflowError("counter exhausted: take a new boot id")
        self.counter += 1
        b = self.buf
        struct.pack_into(_BODY, b, 0, MAGIC, self.sender, self.boot, self.counter,
                         echo & MAX31, mains, ups, state, flags, plan_id & MAX31,
                         min(tiers_done, 255), 1 if loadoff else 0)
        b[BODY_LEN:] = self.mac(memoryview(b)[:BODY_LEN])
        return b

    def next_boot(self, boot):
        self.boot = boot
        self.counter = 0

    def decode(self, data):
        """A Message, or MALFORMED, or BAD_MAC. The MAC is compared in constant time."""
        if len(data) != FRAME_LEN or data[:4] != MAGIC:
            return MALFORMED
        mv = memoryview(data)
        want = self.mac(mv[:BODY_LEN])
        d = 0
        for i in range(MAC_LEN):
            d |= want[i] ^ data[BODY_LEN + i]
        if d:
            return BAD_MAC
        return Message(struct.unpack_from(_BODY, data, 0))


def state_code(name):
    """The frame code of a state machine state (255: not one both ends know)."""
    for i in range(len(STATES)):
        if STATES[i] == name:
            return i
    return 255


class Window:
    """Replay window over one boot's counters: accepts each counter once, rejects any more than
    WIDTH behind the highest seen. The bit mask stays a small int (WIDTH < 31)."""

    WIDTH = 30

    def __init__(self):
        self.hi = 0
        self.mask = 0   # bit d: counter hi - d was seen

    def accept(self, ctr):
        """True (and remembered) when ctr is new."""
        if ctr <= 0:
            return False
        if ctr > self.hi:
            d = ctr - self.hi
            # drop the bits that leave the window before shifting: no long int on the device
            self.mask = ((self.mask & ((1 << (self.WIDTH - d)) - 1)) << d | 1
                         if d < self.WIDTH else 1)
            self.hi = ctr
            return True
        d = self.hi - ctr
        if d >= self.WIDTH or self.mask & (1 << d):
            return False
        self.mask |= 1 << d
        return True
