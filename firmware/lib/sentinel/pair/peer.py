"""The peer's liveness as this sentinel sees it, and its last authenticated view.

    UNKNOWN --accepted message--> ALIVE --dead_ms without one--> DEAD --accepted--> ALIVE
    UNKNOWN --dead_ms after start without one--> DEAD

A DEAD peer's cause says what the link saw in the last dead_ms: "peer is this sentinel" (our
own frames came back: pair.peer is our own address), "same id" (frames from a peer configured
with our own id), "bad key" (frames failing the HMAC), "replayed" (authentic frames
already seen, or from a boot the peer has left), else "no heartbeat" (or the cause the link
gives, e.g. "no network"). The cause is re-evaluated every dead_ms while DEAD, so a peer that
comes back with the wrong key shows "bad key" rather than "no heartbeat".

Replay safety (with frame.py): within one peer boot each counter is accepted once (Window); a
boot not seen before is accepted only when the frame echoes our current boot id, i.e. it was
made after we started; a boot the peer has left is never accepted again. Pure logic: the
clock comes in as `now` (ms), nothing here does I/O.
"""
from sentinel.pair.frame import BAD_MAC, Window

UNKNOWN = "UNKNOWN"
ALIVE = "ALIVE"
DEAD = "DEAD"

NO_HEARTBEAT = "no heartbeat"
BAD_KEY = "bad key"
REPLAYED = "replayed"
SAME_ID = "same id"
SELF = "peer is this sentinel"
HEARTBEAT = "heartbeat"
REBOOTED = "peer rebooted"

RETIRED_MAX = 4    # peer boots remembered as left (never accepted again)
_BIG = 0x3FFFFFFF  # counters stop here: 31-bit small ints on the device


def _inc(n):
    return n + 1 if n < _BIG else n


class Peer:
    """my_id: this sentinel's id ("A"/"B"); my_boot: this boot's id; dead_ms: pair.dead_ms;
    now: ms at start. receive() and tick() return (state, cause) when the state or its cause
    changed (the link journals it), else None."""

    def __init__(self, my_id, my_boot, dead_ms, now):
        self.my_id = my_id
        self.my_boot = my_boot
        self.dead_ms = dead_ms
        self.state = UNKNOWN
        self.cause = "starting"
        self.since = now
        self.last_at = None     # ms of the last accepted message
        self.msg = None         # the last accepted frame.Message
        self.boot = 0           # the peer boot whose frames we accept
        self.pending = 0        # the last authentic boot seen: echoed back so it can be accepted
        self.win = Window()
        self.retired = []
        self.reboots = 0
        self.bad_key = 0        # frames failing the HMAC
        self.replayed = 0       # authentic frames refused as already seen or from a left boot
        self.same_id = 0        # authentic frames carrying our own id from another boot
        self.unconfirmed = 0    # authentic frames of a new boot not echoing ours yet
        self.looped = 0         # our own frames coming back (peer address is ourselves)
        self._win_at = now
        self._mark = (0, 0, 0, 0)  # (looped, same_id, bad_key, replayed) at the window's start

    def echo(self):
        return self.pending

    def receive(self, m, now):
        """One decoded datagram: a frame.Message, or frame.BAD_MAC (MALFORMED is not ours and
        is not given here)."""
        if m is BAD_MAC or m == BAD_MAC:
            self.bad_key = _inc(self.bad_key)
            return None
        if m.sender == self.my_id:
            if m.boot == self.my_boot:
                self.looped = _inc(self.looped)
            else:
                self.same_id = _inc(self.same_id)
            return None
        if m.boot == self.boot:
            if not self.win.accept(m.counter):
                self.replayed = _inc(self.replayed)
                return None
            return self._accept(m, now, HEARTBEAT)
        if m.boot in self.retired:
            self.replayed = _inc(self.replayed)
            return None
        self.pending = m.boot
        if m.echo != self.my_boot:
            self.unconfirmed = _inc(self.unconfirmed)
            return None
        cause = HEARTBEAT
        if self.boot:
            self.retired.append(self.boot)
            if len(self.retired) > RETIRED_MAX:
                self.retired.pop(0)
            self.reboots = _inc(self.reboots)
            cause = REBOOTED
        self.boot = m.boot
        self.win = Window()
        self.win.accept(m.counter)
        return self._accept(m, now, cause)

    def _accept(self, m, now, cause):
        self.msg = m
        self.last_at = now
        self._win_at = now
        self._mark = self._counts()
        if self.state != ALIVE or cause == REBOOTED:
            return self._set(ALIVE, cause, now)
        return None

    def _counts(self):
        return (self.looped, self.same_id, self.bad_key, self.replayed)

    def _why(self, default):
        lo, s, b, r = self._mark
        if self.looped != lo:
            return SELF
        if self.same_id != s:
            return SAME_ID
        if self.bad_key != b:
            return BAD_KEY
        if self.replayed != r:
            return REPLAYED
        return default

    def tick(self, now, down=None):
        """Liveness at `now`. down: why the link cannot work at all (e.g. "no network"), or
        None; it is the cause when nothing more telling was seen."""
        if now - self._win_at < self.dead_ms:
            return None
        cause = self._why(down or NO_HEARTBEAT)
        self._win_at = now
        self._mark = self._counts()
        if self.state != DEAD or cause != self.cause:
            return self._set(DEAD, cause, now)
        return None

    def _set(self, state, cause, now):
        if state != self.state:
            self.since = now
        self.state = state
        self.cause = cause
        return state, cause

    def status(self, now):
        """The console's view of the peer."""
        m = self.msg
        return {"state": self.state, "cause": self.cause, "since_ms": now - self.since,
                "last_ms": None if self.last_at is None else now - self.last_at,
                "bad_key": self.bad_key, "replayed": self.replayed, "same_id": self.same_id,
                "unconfirmed": self.unconfirmed, "looped": self.looped, "reboots": self.reboots,
                "view": None if m is None else m.view()}
