"""The peer link task: every heartbeat_ms one frame to the peer with this sentinel's view, and
every TICK_MS the datagrams waiting on the socket, then the peer's liveness. The socket is
non-blocking (a read that finds nothing raises EAGAIN and the task sleeps): the event loop never
waits on it. Without a network the link keeps trying to open its socket (a board whose Wi-Fi
is down) or, on an image without one, gives up; either way the peer goes DEAD with cause "no
network" after dead_ms, which is the truth: this sentinel alone cannot be redundant.

Changes of the peer's state are journalled as `pair_peer` records (with their cause), and the
Snapshot's `pair_alarm` is set while redundancy is lost, which NUT serves as ALARM and
ups.alarm (nutview.py). The control step asks `arbitrate()` whether its own sensor's loss is
corroborated (pair/arbiter.py); a sensor disagreement is journalled (`pair_disagree`, then
`pair_agree`) and joins the alarm.
"""
import asyncio
import select

try:
    import socket
except ImportError:  # an image without networking: the link reports "no network"
    socket = None

from sentinel.pair.arbiter import RAISED, Arbiter
from sentinel.pair.frame import MALFORMED, Codec, MAX31
from sentinel.pair.peer import ALIVE, DEAD, Peer

TICK_MS = 50        # how often the socket is drained and liveness checked
READS_PER_TICK = 8  # at most this many datagrams per tick: a flood cannot starve the loop
NO_NETWORK = "no network"


def new_boot_id():
    """A random boot id in 1..MAX31 (os.urandom: the hardware RNG on esp32 and rp2)."""
    try:
        import os
        b = os.urandom(4)
        n = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) & MAX31
    except (ImportError, AttributeError, OSError):
        import random
        n = random.getrandbits(30)
    return n or 1


class PairLink:
    """cfg: the validated config (its `pair` section); board: the HAL board (network_state,
    nut_bind for the address to bind); now: the ms clock; log(type, data, critical=False);
    snap: the Snapshot (its pair_alarm is set here); view_fn() -> (mains, ups, state, plan_id,
    tiers_done, loadoff) in frame codes; boot: this boot's id."""

    def __init__(self, cfg, board, now, log, snap, view_fn, boot):
        p = cfg["pair"]
        self.cfg = p
        self.board = board
        self.now = now
        self.log = log
        self.snap = snap
        self.view_fn = view_fn
        self.codec = Codec(p["key"], p["id"], boot)
        self.peer = Peer(p["id"], boot, p["dead_ms"], now())
        self.addr = None    # the peer's socket address, resolved once (an IPv4 literal)
        self.sock = None
        self._poll = None
        self.sent = 0
        self.send_errors = 0
        self.received = 0
        self._send_at = -10 ** 9
        # a disagreement is declared once a live peer's fresh frames and the UPS's next poll
        # have had time to arrive: the skew at an outage's onset is never reported
        ups = cfg.get("ups")
        confirm = max(p["dead_ms"], 2 * ups["poll_ms"] if ups else 0)
        self.arbiter = Arbiter(p["id"], "B" if p["id"] == "A" else "A", confirm)
        self._lost = ""     # "redundancy lost: <cause>" while the peer is DEAD
        self._shown = ""    # the disagreement text pair_alarm was last composed with

    def _open(self):
        """The socket, once the network is up; None (and why) otherwise."""
        if self.sock is not None:
            return None
        if socket is None:
            return NO_NETWORK
        if self.board.network_state() != "up":
            return NO_NETWORK
        p = self.cfg
        host = self.board.nut_bind()[0]
        s = None
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.bind(socket.getaddrinfo(host, p["port"], 0, socket.SOCK_DGRAM)[0][-1])
            self.addr = socket.getaddrinfo(p["peer"], p["peer_port"] or p["port"], 0,
                                           socket.SOCK_DGRAM)[0][-1]
        except OSError as e:
            if s is not None:
                s.close()
            self.log("pair_link_failed", {"error": repr(e), "port": p["port"]})
            return NO_NETWORK
        self.sock = s
        # asked before each read: an empty socket costs no EAGAIN exception object
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        self.log("pair_link", {"port": p["port"], "peer": p["peer"],
                               "peer_port": p["peer_port"] or p["port"], "id": p["id"]})
        return None

    def send(self):
        v = self.view_fn()
        # bit 0 "I hear you" (a one-way link shows); bit 1 this sentinel's UPS link shows the
        # output off (a peer without a UPS link leaves LOAD_OFF on it); bits 2-3 the plan's
        # (agree.py)
        flags = (1 if self.peer.state == ALIVE else 0) | (2 if v[6] else 0) | v[7]
        try:
            frame = self.codec.encode(self.peer.echo(), v[0], v[1], v[2], flags, v[3], v[4],
                                      v[5])
        except OverflowError:  # 68 years of heartbeats at 1 Hz: a new boot id
            self.codec.next_boot(new_boot_id())
            return
        s = self.sock
        if s is None or self.addr is None:
            return
        try:
            s.sendto(frame, self.addr)
            if self.sent < 0x3FFFFFFF:
                self.sent += 1
        except OSError:
            if self.send_errors < 0x3FFFFFFF:
                self.send_errors += 1

    def drain(self, now):
        """Read what waits on the socket (bounded); returns the peer changes."""
        changes = []
        s = self.sock
        p = self._poll
        if s is None or p is None:
            return changes
        for _ in range(READS_PER_TICK):
            if not p.poll(0):
                break
            try:
                data = s.recv(128)
            except OSError:  # e.g. ECONNREFUSED from an earlier send to a closed port
                continue
            m = self.codec.decode(data)
            if m == MALFORMED:
                continue
            if self.received < 0x3FFFFFFF:
                self.received += 1
            ch = self.peer.receive(m, now)
            if ch is not None:
                changes.append(ch)
        return changes

    def step(self, now):
        """One tick: open the socket if needed, send when due, read, check liveness. Returns
        the peer changes (already journalled)."""
        down = self._open()
        changes = []
        if self.sock is not None:
            if now - self._send_at >= self.cfg["heartbeat_ms"]:
                self._send_at = now
                self.send()
            changes = self.drain(now)
        ch = self.peer.tick(now, down)
        if ch is not None:
            changes.append(ch)
        for state, cause in changes:
            self.note(state, cause)
        return changes

    def note(self, state, cause):
        """Journal a change and set the alarm NUT serves."""
        p = self.peer
        data = {"state": state, "cause": cause, "peer": self.cfg["peer"]}
        if p.same_id and cause == "same id":
            data["id"] = self.cfg["id"]  # both sentinels say they are this one
        self.log("pair_peer", data, critical=state == DEAD)
        self._lost = ("redundancy lost: " + cause) if state == DEAD else ""
        self._alarm()

    def _alarm(self):
        """pair_alarm, what NUT serves in ups.alarm: redundancy lost, then a disagreement."""
        d = self.arbiter.disagree
        self._shown = d
        lost = self._lost
        self.snap.pair_alarm = (lost + "; " + d) if lost and d else (lost or d)

    def arbitrate(self, now, own, own_ups):
        """The control step's question: own (this sensor's verdict) and own_ups (this
        sentinel's UPS reading), in frame codes. The UPS reading an alive peer carries stands in
        when this sentinel has none. True when this sentinel's loss is not corroborated and
        must not be acted on (Inputs.mains_unconfirmed); arbiter.outvoted tells whether its
        sensor's "fine" is outvoted by the peer's and the UPS's "lost"."""
        peer = self.peer
        m = peer.msg if peer.state == ALIVE else None
        pm = 0
        ups = own_ups
        if m is not None:
            pm = m.mains
            if not ups:
                ups = m.ups
        a = self.arbiter
        ch = a.update(now, own, ups, pm)
        if ch is not None:
            if ch[0] == RAISED:
                self.log("pair_disagree", a.record(), critical=True)
            else:
                self.log("pair_agree", {"ms": ch[1]}, critical=True)
        if a.disagree is not self._shown:
            self._alarm()
        return a.unconfirmed

    def status(self):
        now = self.now()
        st = self.peer.status(now)
        st["id"] = self.cfg["id"]
        st["peer"] = self.cfg["peer"]
        st["sent"] = self.sent
        st["received"] = self.received
        st["send_errors"] = self.send_errors
        st["link"] = "open" if self.sock is not None else "closed"
        a = self.arbiter
        st["sensor"] = {"disagree": a.disagree, "held": a.unconfirmed,
                        "since_ms": None if a.since is None else now - a.since}
        return st

    async def run(self):
        # a failing step is recorded (once per distinct error) and the link goes on: the pair
        # is an addition, it must never take the sentinel's own duties down with it
        last = None
        while True:
            try:
                self.step(self.now())
            except Exception as e:
                err = repr(e)
                if err != last:
                    last = err
                    self.log("pair_error", {"error": err})
            await asyncio.sleep_ms(TICK_MS)


_DONE = ("done", "timeout", "off")  # sequencer phases of a tier whose shutdown is over


def _mains(control):
    """This sentinel's own mains verdict in frame codes (unknown, good, lost, bad)."""
    mon = control.monitor
    return 2 if mon.lost else 1 if mon.good else 3 if control.sensing.seen else 0


def _ups(i):
    """The UPS's status from this sentinel's link or contacts in frame codes (none, OL, OB,
    OB LB)."""
    if i.ups_link_configured and i.ups_link_ok:
        return (3 if i.ups_low_battery else 2) if i.ups_on_battery else 1
    return 0


def gate(link, control):
    """(now) -> None, for the control step to call between gathering its inputs and the
    state machine's update: sets Inputs.mains_unconfirmed and mains_outvoted from the
    arbitration, and peer_output_off and peer_plan_id from an alive peer's frame."""
    from sentinel.pair.agree import peer_plan

    def step(now):
        i = control.inputs
        i.mains_unconfirmed = link.arbitrate(now, _mains(control), _ups(i))
        i.mains_outvoted = link.arbiter.outvoted
        p = link.peer
        i.peer_output_off = p.state == ALIVE and bool(p.msg.flags & 2)
        m = peer_plan(link)
        i.peer_plan_id = 0 if m is None else m.plan_id
    return step


def turn(link, defer_ms, busy=None, handover_ms=0):
    """Sequencer.turn for a pair: (now, plan_id) -> whose turn the load-off is (arbiter.py's
    load_off_turn), timing the wait from the plan's first ask. busy() -> True while this
    sentinel's UPS link shows a load-off already at the UPS (ups_busy(control))."""
    from sentinel.pair.arbiter import load_off_turn
    asked = [None, 0]  # plan id, ms it first asked

    def f(now, plan_id):
        if asked[0] != plan_id:
            asked[0] = plan_id
            asked[1] = now
        p = link.peer
        return load_off_turn(link.arbiter.me, p.msg if p.state == ALIVE else None,
                             now - asked[1], defer_ms, busy is not None and busy(),
                             handover_ms)
    return f


def ups_busy(control):
    """() -> True while this sentinel's own UPS link (Q1 or contacts) is up and shows a
    shutdown counting down (Q1's "shutdown active" bit) or the output cut (OFF): a load-off
    command has already reached the UPS."""
    def busy():
        i = control.inputs
        if not (i.ups_link_configured and i.ups_link_ok):
            return False
        lk = control.link
        return bool(i.ups_output_off or (lk is not None and lk.shutdown_active))
    return busy


def own_view(control):
    """() -> this sentinel's view in frame codes, read from the control loop (its inputs, the
    mains monitor, the state machine, the sequencer): what the peer is told each heartbeat
    (its own sensor's verdict, never the arbitrated one)."""
    from sentinel.pair.agree import plan_flags
    from sentinel.pair.frame import state_code

    def view():
        mains = _mains(control)
        ups = _ups(control.inputs)
        seq = control.seq
        done = 0
        for t in seq.tiers:
            if t.phase in _DONE:
                done += 1
        i = control.inputs
        sm = control.sm
        return (mains, ups, state_code(sm.state), sm.plan_id, done,
                seq.load_off == "sent", ups != 0 and i.ups_output_off, plan_flags(sm, seq))
    return view
