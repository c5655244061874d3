"""A redundant pair of virtual boards: DIR/a (pair id A) and DIR/b (pair id B), each a full
virtual board (its own supervisor, interpreter, flash and NUT port), with the peer link on
loopback (two UDP ports on 127.0.0.1) and one shared key.

Wiring, as a site would have it: both boards sense the same mains (a mains, frequency, noise or
harmonic change is applied to both supervisors in one call, set_wires), and board A alone reads
the UPS over Q1 (board B's `ups.link` is "none"; UPS wires go to A's simulator). The two
waveforms are separate generators fed the same settings, so their phases differ: each board's
sensing is its own, as with two sensors on one supply.

DIR/pair.json records the two directories and ports, read by `pair_info`.
"""
import json
import os
import secrets
import selectors
import socket
import threading

from . import start, stop, set_wires
from .board import VirtualError

SIDES = ("a", "b")
# wires both boards see (the mains); the others (ups.*, contacts, adc) are board A's
MAINS_WIRES = ("mains", "frequency", "noise")


def _free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def pair_json(d):
    return os.path.join(os.path.abspath(d), "pair.json")


def pair_info(d):
    """DIR/pair.json: {"a": {"dir", "port", ...}, "b": {...}}."""
    try:
        with open(pair_json(d)) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise VirtualError("no virtual pair in %s (pair.json missing)" % d)


def configs(base, key=None, ports=None, heartbeat_ms=500, dead_ms=3000, ups_both=False,
            peer_ports=None):
    """The two boards' device configs from `base` (a device config dict, or None): the same
    plan, a `pair` section each (ids A and B, loopback ports crossed, one key), and the UPS read
    by A only, or with ups_both by each (each board's own UPS simulator, following the shared
    mains: two sentinels wired to one UPS). peer_ports: where A and B send (a PeerRelay's
    ports) instead of each other's port. -> (cfg_a, cfg_b, key, (port_a, port_b))."""
    key = key or secrets.token_hex(16)
    pa, pb = ports or (_free_udp_port(), _free_udp_port())
    to_a, to_b = peer_ports or (pb, pa)
    out = []
    for sid, port, peer_port in (("A", pa, to_a), ("B", pb, to_b)):
        c = json.loads(json.dumps(base or {}))
        c["pair"] = dict(c.get("pair") or {}, enabled=True, id=sid, peer="127.0.0.1",
                         port=port, peer_port=peer_port, key=key, heartbeat_ms=heartbeat_ms,
                         dead_ms=dead_ms)
        ups = c.setdefault("ups", {})
        if sid == "A" or ups_both:
            ups.setdefault("link", "q1")
        else:
            ups["link"] = "none"
        out.append(c)
    return out[0], out[1], key, (pa, pb)


def start_pair(d, config=None, heap="128wK", extra_args=(), progress=None, timeout=60.0,
               heartbeat_ms=500, dead_ms=3000, ups_both=False, relay=None):
    """Start both boards of a pair in d/a and d/b. config: a device config JSON file (the
    plan both serve) or None; ups_both: B reads a UPS too (configs()); relay: a PeerRelay the
    peer link goes through (so it can be cut). Returns pair.json's content (each side with
    its board.json)."""
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    base = None
    if config:
        try:
            with open(config) as f:
                base = json.load(f)
        except (OSError, ValueError) as e:
            raise VirtualError("cannot read config %s: %s" % (config, e))
    prev = None
    if os.path.exists(pair_json(d)):
        prev = pair_info(d)  # a restart keeps the key and ports the flash images hold
    key = prev["key"] if prev else None
    ports = (prev["a"]["port"], prev["b"]["port"]) if prev else None
    if relay is not None:
        ports = relay.board_ports
    ca, cb, key, ports = configs(base, key, ports, heartbeat_ms, dead_ms, ups_both,
                                 relay.relay_ports if relay is not None else None)
    meta = {"key": key}
    started = []
    try:
        for side, cfg, port in (("a", ca, ports[0]), ("b", cb, ports[1])):
            sd = os.path.join(d, side)
            os.makedirs(sd, exist_ok=True)
            path = os.path.join(sd, "pair-config.json")
            with open(path, "w") as f:
                json.dump(cfg, f, indent=1)
            info = start(sd, config=path, heap=heap, extra_args=extra_args,
                         progress=progress, timeout=timeout)
            started.append(sd)
            meta[side] = {"dir": sd, "port": port, "id": side.upper(), "board": info}
    except BaseException:
        for sd in started:
            stop(sd)
        raise
    with open(pair_json(d), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def stop_pair(d):
    """Stop both boards (their flash images stay). False if neither was running."""
    d = os.path.abspath(d)
    return any([stop(os.path.join(d, s)) for s in SIDES])


def set_pair_wires(d, values, at_phase=None, board=None):
    """Mains wires to both boards, every other wire (the UPS's, contacts) to board A.
    board: "a" or "b" to drive that board's wires alone (a fault of one board's sensor, e.g.
    mains=0 on b while mains is fine); the UPS simulator sits on A's wires and follows A's
    mains wire, so a fault of A's sensor alone pins it (ups.status=OL). -> {"a": state or
    None, "b": state or None}."""
    d = os.path.abspath(d)
    if board is not None:
        if board not in SIDES:
            raise VirtualError("--board must be a or b, not %r" % board)
        out = {"a": None, "b": None}
        out[board] = set_wires(os.path.join(d, board), dict(values), at_phase=at_phase)
        return out
    mains = {k: v for k, v in values.items()
             if k in MAINS_WIRES or k.startswith("harmonic.")}
    out = {"a": set_wires(os.path.join(d, "a"), dict(values), at_phase=at_phase), "b": None}
    if mains:
        out["b"] = set_wires(os.path.join(d, "b"), mains, at_phase=at_phase)
    return out


class PeerRelay:
    """The peer link through a cuttable wire: A sends to one relay port, which forwards to B's
    port (from the other relay port, B's "A"), and the other way round. cut() drops every
    datagram both ways (a partitioned LAN: both boards live, neither hears the other), heal()
    lets them through again. The firmware does not check a frame's source port (the HMAC and
    the boot echo are its authentication), so the relay is invisible to it."""

    def __init__(self):
        self.board_ports = (_free_udp_port(), _free_udp_port())
        self.cut_ = False
        self.dropped = 0
        self.socks = []
        for _ in SIDES:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.socks.append(s)
        # A sends to socks[0] (-> B), B to socks[1] (-> A)
        self.relay_ports = tuple(s.getsockname()[1] for s in self.socks)
        self.sel = selectors.DefaultSelector()
        for i, s in enumerate(self.socks):
            self.sel.register(s, selectors.EVENT_READ, i)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="peer-relay")
        self.thread.start()

    def _run(self):
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.1):
                i = key.data
                try:
                    data = key.fileobj.recv(2048)
                except OSError:
                    continue
                if self.cut_:
                    self.dropped += 1
                    continue
                # from A (socks[0]) to B's port, sent from socks[1]; and the other way
                try:
                    self.socks[1 - i].sendto(data, ("127.0.0.1", self.board_ports[1 - i]))
                except OSError:
                    pass  # the receiving board is down: a datagram into the void

    def cut(self):
        self.cut_ = True

    def heal(self):
        self.cut_ = False

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for s in self.socks:
            s.close()
