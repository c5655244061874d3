"""Wake-on-LAN: the magic packet and a UDP sender.

A magic packet is 6 bytes 0xFF then the target MAC 16 times (102 bytes), sent as a UDP datagram
(port 9 by convention, 7 on some NICs). The sleeping NIC matches the pattern anywhere in the frame,
so the IP destination only has to get the frame onto the host's segment: the broadcast address
does that; a unicast to the host's own address helps where a router forwards it (or the switch
still knows the MAC), so both are sent.

Runs under MicroPython and CPython. Socket errors are counted, never raised: a wake is
best-effort and the sequencer's health check decides whether the host came up. A board without
networking (no `socket` module, or the network down) sends nothing and logs why.
"""
import asyncio

try:
    import socket
except ImportError:  # a board built without networking: wakes are skipped, not a crash
    socket = None

PACKET_LEN = 102
_HEX = "0123456789abcdef"


def parse_mac(mac):
    """6 bytes from "aa:bb:cc:dd:ee:ff" (also "-" separated, or 12 bare hex digits).
    ValueError for anything else."""
    s = mac.lower().replace(":", "").replace("-", "")
    if len(s) != 12:
        raise ValueError("bad MAC " + mac)
    out = bytearray(6)
    for i in range(6):
        hi = _HEX.find(s[2 * i])
        lo = _HEX.find(s[2 * i + 1])
        if hi < 0 or lo < 0:
            raise ValueError("bad MAC " + mac)
        out[i] = hi * 16 + lo
    return bytes(out)


def magic_packet(mac, buf=None):
    """The 102-byte magic packet for `mac` (a string or 6 bytes), written into `buf` (a
    bytearray of PACKET_LEN) if given, so repeated sends need not allocate."""
    m = parse_mac(mac) if isinstance(mac, str) else mac
    if len(m) != 6:
        raise ValueError("MAC must be 6 bytes")
    b = buf if buf is not None else bytearray(PACKET_LEN)
    for i in range(6):
        b[i] = 0xFF
    for r in range(16):
        o = 6 + 6 * r
        for i in range(6):
            b[o + i] = m[i]
    return b


def _is_ipv4(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            return False
    return True


def _sleep_ms(ms):
    f = getattr(asyncio, "sleep_ms", None)
    return f(ms) if f is not None else asyncio.sleep(ms / 1000)


class Sender:
    """Sends magic packets from one UDP socket (opened on first use, kept open).

    broadcast, port   recovery.wol_broadcast and recovery.wol_port
    directed          also send to the host's own address (IPv4 literals only: resolving a DNS
                      name would block, and the host is off)
    log               log(type, data): told about every wake skipped for want of a network
    net_state         () -> "up" | "down" | "absent" (Board.network_state); None: assume up
    """

    def __init__(self, broadcast="255.255.255.255", port=9, directed=True, sock_factory=None,
                 log=None, net_state=None):
        self.broadcast = broadcast
        self.port = port
        self.directed = directed
        self._factory = sock_factory
        self.log = log
        self.net_state = net_state
        self.skipped = 0  # wakes not sent: no network
        self._sock = None
        self._buf = bytearray(PACKET_LEN)
        self.sent = 0  # datagrams sent
        self.errors = 0  # datagrams that failed (no route, socket error)
        self.last_error = None

    def _socket(self, sk):
        if self._sock is None:
            if self._factory is not None:
                s = self._factory()
            else:
                s = sk.socket(sk.AF_INET, sk.SOCK_DGRAM)
                so = getattr(sk, "SO_BROADCAST", None)
                if so is not None:  # absent on some ports: broadcasts then go out anyway or fail
                    try:
                        s.setsockopt(sk.SOL_SOCKET, so, 1)
                    except OSError:
                        pass
            self._sock = s
        return self._sock

    def _sendto(self, ip, pkt):
        try:
            sk = socket
            if sk is None:
                raise OSError("no network module")
            # getaddrinfo gives the sockaddr form every port accepts (raw bytes on unix)
            sa = sk.getaddrinfo(ip, self.port, 0, sk.SOCK_DGRAM)[0][-1]
            self._socket(sk).sendto(pkt, sa)
            self.sent += 1
            return True
        except OSError as e:
            self.errors += 1
            self.last_error = e
            return False

    def send_now(self, mac, addr=None):
        """One packet to the broadcast address and, if `addr` is an IPv4 literal, one to it.
        Returns how many datagrams went out (0 if all failed)."""
        pkt = magic_packet(mac, self._buf)
        n = 1 if self._sendto(self.broadcast, pkt) else 0
        if self.directed and addr and addr != self.broadcast and _is_ipv4(addr):
            if self._sendto(addr, pkt):
                n += 1
        return n

    def no_network(self):
        """Why nothing can be sent now ("no network module", "network down"), or None."""
        if socket is None and self._factory is None:
            return "no network module"
        st = self.net_state() if self.net_state is not None else "up"
        if st != "up":
            return "network " + st
        return None

    async def send(self, mac, addr=None, repeat=3, gap_ms=100):
        """A burst of `repeat` send_now() spaced by gap_ms (a single UDP datagram is easily
        lost on a busy or just-powered switch). Returns the datagrams sent: 0, with a log
        record saying why, when there is no network."""
        why = self.no_network()
        if why is not None:
            self.skipped += 1
            if self.log is not None:
                self.log("wol_skipped", {"mac": mac if isinstance(mac, str) else None,
                                         "addr": addr, "reason": why})
            return 0
        n = 0
        for i in range(repeat):
            if i:
                await _sleep_ms(gap_ms)
            n += self.send_now(mac, addr)
        return n

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
