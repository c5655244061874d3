"""Sensor arbitration in a pair: one bad mains sensor must never shut the site down alone.

Each control step the arbiter takes the three views a pair has of mains, as frame codes
(frame.MAINS, frame.UPS):

    own    this sentinel's mains sensor: unknown, good, lost, bad
    ups    the UPS's own status: this sentinel's link or contacts, else the one an alive peer
           reads and carries in its frame: none, OL, OB, OB LB
    peer   an alive peer's own mains sensor (unknown when the peer is not alive)

and decides two things:

- `unconfirmed`: this sentinel's own "mains lost" (or out of tolerance) is not corroborated
  (neither the UPS says OB nor an alive peer's sensor says lost or bad) while something says
  mains is fine (the UPS says OL, or the peer's sensor good). The state machine then ignores
  its own sensor (Inputs.mains_unconfirmed): it does not leave ONLINE, and an outage it is
  timing ends as a mains return. It is set at once, so the first heartbeat of a real outage
  that has not yet brought the peer's verdict holds the plan back by that much (docs/
  redundancy.md measures it). With nothing to corroborate with and nothing saying fine (peer
  dead or partitioned, no UPS status), the sensor is acted on alone: redundancy is lost then,
  and its alarm says so.
- `outvoted`: this sentinel's sensor reads mains fine (or nothing yet) while an alive peer's
  sensor says lost or bad and the UPS says OB: two views against one, so a sensor stuck at
  "good" does not keep this sentinel ONLINE through a real outage (Inputs.mains_outvoted).
  It matters where this sentinel has no UPS link of its own (the UPS reading is the one the
  peer carries); with one, the state machine acts on the UPS's OB anyway.
- `disagree`: the views that have a verdict do not agree (one says trouble, another fine) and
  have not for `confirm_ms`: long enough for a live peer's fresh frame and the UPS's next poll
  to have arrived, so the ordinary skew at an outage's onset or end is never reported. It is
  the text of the alarm ("sensor disagrees: ..."), "" while they agree. The sentinel whose
  sensor is the odd one and its peer both see it, each from its own side.

Pure logic: the clock comes in as `now` (ms), no I/O; the caller journals the changes.
"""

from sentinel.seqstate import TURN_PEER, TURN_SEND, TURN_UPS, TURN_WAIT

_GOOD, _LOST, _BAD = 1, 2, 3
_OL, _OB, _OBLB = 1, 2, 3

_WORDS = ("unknown", "good", "lost", "out of tolerance")
_UPS_WORDS = ("none", "on line", "on battery", "on battery, low")

RAISED = "raised"
CLEARED = "cleared"


def _trouble(m):
    return m == _LOST or m == _BAD


class Arbiter:
    """me, other: the pair ids ("A"/"B"); confirm_ms: how long a disagreement lasts before it
    is declared. update() returns (RAISED, text) or (CLEARED, how long it lasted in ms) on a
    change."""

    def __init__(self, me, other, confirm_ms):
        self.me = me
        self.other = other
        self.confirm_ms = confirm_ms
        self.unconfirmed = False
        self.outvoted = False
        self.disagree = ""        # the alarm text while a declared disagreement lasts
        self.since = None         # ms the current disagreement began (declared or not)
        self.own = 0              # the views at the last update (three ints: a step that
        self.ups = 0              # changes nothing allocates nothing)
        self.peer = 0

    def update(self, now, own, ups, peer):
        """One step: own and peer in frame.MAINS codes (peer 0 when not alive), ups in frame.UPS
        codes (0: no UPS status known). Returns the change to journal, or None."""
        changed = own != self.own or ups != self.ups or peer != self.peer
        self.own = own
        self.ups = ups
        self.peer = peer
        bad_own = _trouble(own)
        ups_ob = ups == _OB or ups == _OBLB
        trouble = ups_ob or _trouble(peer)        # someone besides us says mains is lost
        fine = ups == _OL or peer == _GOOD        # someone besides us says mains is fine
        self.unconfirmed = bad_own and fine and not trouble
        self.outvoted = not bad_own and ups_ob and _trouble(peer)
        # a disagreement: the verdicts given (ours, the peer's, the UPS's) are not all alike
        split = ((bad_own or trouble) and (fine or own == _GOOD))
        if not split:
            if self.since is None:
                return None
            lasted = now - self.since
            self.since = None
            if self.disagree:
                self.disagree = ""
                return CLEARED, lasted
            return None
        if self.since is None:
            self.since = now
        if self.disagree:
            if changed:  # the alarm says what the views say now; the record was written once
                self.disagree = self.text()
        elif now - self.since >= self.confirm_ms:
            self.disagree = self.text()
            return RAISED, self.disagree
        return None

    def text(self):
        """What each view says, for the alarm and the record."""
        own, ups, peer = self.own, self.ups, self.peer
        s = "sensor disagrees: %s reads mains %s, %s reads %s" % (
            self.me, _WORDS[own] if own < 4 else "?", self.other,
            _WORDS[peer] if peer and peer < 4 else "nothing (not alive)")
        if ups:
            s += ", UPS %s" % (_UPS_WORDS[ups] if ups < 4 else "?")
        if self.unconfirmed:
            s += "; not acted on"
        elif self.outvoted:
            s += "; %s outvoted" % self.me
        return s

    def record(self):
        """The journal data of a raised disagreement: each view by name."""
        own, ups, peer = self.own, self.ups, self.peer
        return {"cause": self.disagree, "own": _WORDS[own] if own < 4 else "?",
                "peer": _WORDS[peer] if peer < 4 else "?",
                "ups": _UPS_WORDS[ups] if ups < 4 else "?", "held": self.unconfirmed,
                "outvoted": self.outvoted}


# frame.STATES codes of a sentinel inside an outage's plan: SHUTTING_DOWN, LOAD_OFF, WAIT_MAINS
_PLAN_FIRST, _PLAN_LAST = 2, 4


def load_off_turn(me, peer, waited_ms, defer_ms, ups_busy=False, handover_ms=0):
    """Whose turn it is to send this outage's UPS load-off (seqstate TURN_*: "send", "wait",
    "peer", "ups"), so that the pair sends one. me: "A" or "B"; peer: the alive peer's last
    frame.Message, or None (dead, partitioned: then only this sentinel can); waited_ms: since
    this plan first asked; ups_busy: this sentinel's own UPS link shows a shutdown counting
    down or the output cut, so a command already reached the UPS (the peer's, sent just before
    it died or behind a partition); sending another would restart the UPS's countdown.
    The peer's "sent" flag counts only while it is in a plan: a flag left from an earlier
    outage is stale. When both read the UPS, A sends; B sends only if A's flag has not come
    within defer_ms (A's command failed, or its link did). Without a live peer, A sends and B
    first waits handover_ms: long enough for a partitioned A's command to show on B's link."""
    if ups_busy:
        return TURN_UPS
    if peer is None:
        return TURN_SEND if me == "A" or waited_ms >= handover_ms else TURN_WAIT
    if peer.loadoff and _PLAN_FIRST <= peer.state <= _PLAN_LAST:
        return TURN_PEER
    if peer.ups == 0 or me == "A":  # the peer reads no UPS, or this is the designated sender
        return TURN_SEND
    return TURN_SEND if waited_ms >= defer_ms else TURN_WAIT
