"""The outbox: one asyncio task that delivers the journal's alert records through every enabled
transport, in order, each transport at its own pace.

The journal is the queue. Each transport has a lane: a cursor (the id of the last alert it
delivered or that its receiver rejected), persisted in a small file under the journal root
after each delivery (temporary file + rename), so a reboot resumes after it; the ids of the
alerts found after the cursor; and its retry state. A failed send retries the same alert after
backoff_min_ms, doubling up to backoff_max_ms, jittered by +-25% so that many sentinels do not
retry in step; the other lanes go on. Delivery is at least once (a reboot between a send and
the cursor write sends that alert again): receivers drop duplicates by id.

Only records already on flash are sent: a record still batched in RAM could be lost to a power
cut and its seq reused by another, which a receiver deduplicating by id would then drop. An
alert record found in the batch makes the outbox flush the journal (alerts are rare: few extra
flash writes).

Heap: a transport other than MQTT is built for each send and its module dropped after it
(KEPT says why MQTT stays), so at most one of them is on the heap, while it sends.

Time budget: every send runs under asyncio.wait_for_ms(timeout_ms); the journal is read a few
records at a time (journalread.read is synchronous file I/O) and the task yields after each read
and each send. The longest synchronous step (a transport's import for a send included) is
reported as step_max_ms.
"""
import asyncio
import os
import random
import time

from sentinel import journalread
from sentinel.alerts import Rejected, forget
from sentinel.alerts.kinds import alert as make_alert
from sentinel.alerts.kinds import classify, rank

# transport name -> module holding its Transport; imported only when enabled (device heap:
# boards without ROMFS hold every imported module's bytecode in RAM)
TRANSPORTS = (("syslog", "sentinel.alerts.syslog"), ("webhook", "sentinel.alerts.webhook"),
              ("smtp", "sentinel.alerts.smtp"), ("mqtt", "sentinel.alerts.mqtt"))
# Transports kept between alerts: MQTT's session (its "online" availability, the keepalive) is
# state the broker sees. The others are built for one send and their modules dropped after it
# (with the helpers only they use): alerts are rare, and a module costs heap even from ROMFS
# (its functions, constants and class objects: about 1.5-2 KB each on the 64-bit port), so at
# most one of them is on the heap, and only while it sends. Syslog over TCP then connects per
# alert, as the webhook and e-mail already do.
KEPT = ("mqtt",)
TRANSIENT_HELPERS = ("util",)
READ_N = 4      # journal records per read: keeps one step of the task short
MAX_IDS = 128   # alert ids a lane holds ahead of delivery; it stops reading ahead when full
IDLE_MS = 200   # pause when no lane has anything to do


def inc(n):
    """n + 1, held below 2**30 so a counter stays a small int however long it runs."""
    return n + 1 if n < 0x3FFFFFFF else n


def next_delay(prev_ms, lo, hi):
    """The retry delay after one more failure: lo first, then doubling, at most hi."""
    return lo if prev_ms <= 0 else min(prev_ms * 2, hi)


def jitter(delay_ms, rnd):
    """delay_ms spread over [0.75, 1.25] x delay_ms by rnd, a non-negative random int."""
    return delay_ms - delay_ms // 4 + rnd % (delay_ms // 2 + 1)


def read_cursor(path):
    """The id saved in the cursor file at `path`, or None (no file, or unreadable)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def write_cursor(path, seq):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % seq)
    os.rename(tmp, path)


def load_transport(name, cfg, site):
    """A Transport for `name` built from its config section (imports its module now)."""
    for n, mod in TRANSPORTS:
        if n == name:
            return __import__(mod, None, None, ("Transport",)).Transport(cfg, site)
    raise ValueError("no alert transport %r" % name)


def drop_transport(name):
    """Forget transport `name`'s module and the helpers only the dropped ones use. Not for a
    kept transport."""
    forget(name)
    for mod in TRANSIENT_HELPERS:
        forget(mod)


class Lane:
    """One transport's delivery state (see the module docstring)."""

    def __init__(self, name, transport, timeout_ms, path, cursor, error=None, sec=None):
        self.name = name
        self.t = transport       # None: it could not be built (error says why)
        self.sec = sec           # its config section when it is built per send (not KEPT)
        self.timeout_ms = timeout_ms
        self.path = path
        self.cursor = cursor     # last id delivered or rejected
        self.scan = cursor       # last seq looked at
        self.ids = []            # alert ids in (cursor, scan], oldest first
        self.head = None         # the alert dict of ids[0], once read
        self.next_at = 0         # ms (outbox clock) before which no send is tried
        self.delay = 0           # the last retry delay (0: the last send succeeded)
        self.error = error       # the last failure (kept after a later success)
        self.sent = 0
        self.rejected = 0
        self.failures = 0


class Outbox:
    """journal: the Journal; cfg: the validated config; root: the filesystem root (cursor files
    go into <root>/alerts/); now(): ms clock; log(kind, data, critical=False): the runtime's
    log; progress(): liveness for the supervisor; transports: {name: Transport} to use instead
    of building the enabled ones (tests); rnd(): random int for the jitter."""

    def __init__(self, journal, cfg, root, now, log, progress=None, transports=None, rnd=None):
        a = cfg["alerts"]
        self.journal = journal
        self.site = cfg["site"]["name"]
        self.min_rank = rank(a["min_severity"])
        self.lo = a["backoff_min_ms"]
        self.hi = a["backoff_max_ms"]
        self.now = now
        self.log = log
        self.progress = progress or (lambda: None)
        self.rnd = rnd or (lambda: random.getrandbits(20))
        self.step_max_ms = 0
        d = root.rstrip("/") + "/alerts"
        try:
            os.mkdir(d)
        except OSError:  # exists
            pass
        start = journal.next_seq() - 1
        self.lanes = []
        for name, _ in TRANSPORTS:
            sec = a[name]
            if transports is not None:
                if name not in transports:
                    continue
                t, err = transports[name], None
            elif not sec["enabled"]:
                continue
            else:
                try:
                    t, err = load_transport(name, sec, self.site), None
                except Exception as e:  # a missing module, a config it cannot use
                    t, err = None, repr(e)
                if name not in KEPT:
                    # built once to know it can be (status, 'alerts test'), then per send
                    if t is not None:
                        t = True
                    drop_transport(name)
                else:
                    sec = None
            if transports is not None:
                sec = None
            path = "%s/%s.cur" % (d, name)
            cur = read_cursor(path)
            if cur is None or cur > start:
                # newly enabled (or the journal was erased): alerts from now on, not history
                cur = start
                try:
                    write_cursor(path, cur)
                except OSError:
                    pass
            self.lanes.append(Lane(name, t, a[name]["timeout_ms"], path, cur, err, sec))

    def enabled(self):
        """Names of the enabled transports (those that could not be built included: their
        status says why)."""
        return [ln.name for ln in self.lanes]

    # -- reading the journal -------------------------------------------------------------------
    def _wanted(self, rec):
        c = classify(rec[3], rec[4] if isinstance(rec[4], dict) else {})
        return c is not None and rank(c[0]) <= self.min_rank

    def scan(self, lane):
        """Look at up to READ_N records after lane.scan (one journal read). True if it moved
        on (more may follow at once), False when there was nothing to do or flash is failing."""
        j = self.journal
        last = j.last_seq()
        if last is None or lane.scan >= last or len(lane.ids) >= MAX_IDS:
            return False
        frm = lane.scan + 1
        recs = journalread.read(j, frm, READ_N)
        if recs and recs[0][0] > frm:
            first = journalread.first_seq(j)
            if first is not None and first > frm:
                # the journal rotated past records this lane had not looked at
                self.log("alerts_lost", {"transport": lane.name, "count": first - frm})
        for rec in recs:
            seq = rec[0]
            if self._wanted(rec):
                if seq > j.committed:
                    j.flush()
                    if seq > j.committed:
                        # flash failing: only what is on flash is sent; idle, then try again
                        return False
                lane.ids.append(seq)
                if lane.head is None and len(lane.ids) == 1:
                    lane.head = make_alert(rec, self.site)
            lane.scan = seq
        if not recs:
            lane.scan = last  # nothing readable up to the end (corrupt records)
        return True

    def _head(self, lane):
        if lane.head is None and lane.ids:
            recs = journalread.read(self.journal, lane.ids[0], 1)
            if recs and recs[0][0] == lane.ids[0]:
                lane.head = make_alert(recs[0], self.site)
            else:  # rotated away since it was found
                self.log("alerts_lost", {"transport": lane.name, "count": 1})
                self._done(lane, lane.ids[0])
        return lane.head

    def _done(self, lane, seq):
        lane.ids.pop(0)
        lane.head = None
        lane.cursor = seq
        lane.delay = 0
        lane.next_at = 0
        try:
            write_cursor(lane.path, seq)
        except OSError as e:  # flash full: delivered anyway; a reboot sends it again
            lane.error = "cursor not saved: %r" % (e,)

    # -- sending -----------------------------------------------------------------------------
    async def deliver(self, lane):
        """Send lane's oldest alert once. True if it was delivered or rejected."""
        t0 = time.ticks_ms()
        a = self._head(lane)
        self._note_step(t0)
        if a is None:
            return False
        self.progress()
        t = lane.t
        try:
            if lane.sec is not None:
                t0 = time.ticks_ms()
                t = load_transport(lane.name, lane.sec, self.site)
                self._note_step(t0)
            await asyncio.wait_for_ms(t.send(a), lane.timeout_ms)
        except Rejected as e:
            lane.rejected = inc(lane.rejected)
            # not an alert kind itself, so a receiver rejecting everything cannot loop
            self.log("alert_rejected", {"transport": lane.name, "id": a["id"],
                                        "error": str(e)})
            self._done(lane, a["id"])
            return True
        except Exception as e:  # OSError, TimeoutError, or a transport's bug: retry later
            lane.failures = inc(lane.failures)
            lane.error = repr(e) if str(e) else type(e).__name__
            lane.delay = next_delay(lane.delay, self.lo, self.hi)
            lane.next_at = self.now() + jitter(lane.delay, self.rnd())
            if lane.sec is None:  # a transient one is closed below
                await self._close(t)
            return False
        finally:
            if lane.sec is not None:
                await self._close(t)
                t = None
                drop_transport(lane.name)
        lane.sent = inc(lane.sent)
        self._done(lane, a["id"])
        return True

    @staticmethod
    async def _close(t):
        try:
            await t.close()
        except Exception:  # not built (True), or a dead connection
            pass

    def _note_step(self, t0):
        ms = time.ticks_diff(time.ticks_ms(), t0)
        if ms > self.step_max_ms:
            self.step_max_ms = ms

    async def run(self):
        while True:
            self.progress()
            busy = False
            for lane in self.lanes:
                if lane.t is None:
                    continue
                t0 = time.ticks_ms()
                if self.scan(lane):
                    busy = True
                self._note_step(t0)
                await asyncio.sleep_ms(0)
                if lane.ids and self.now() >= lane.next_at:
                    if await self.deliver(lane):
                        busy = True
                    await asyncio.sleep_ms(0)
            await asyncio.sleep_ms(0 if busy else IDLE_MS)

    def depth(self):
        """Alerts waiting for the slowest transport."""
        n = 0
        for ln in self.lanes:
            if len(ln.ids) > n:
                n = len(ln.ids)
        return n

    def status(self):
        """The console status block: per transport the last delivered id, the alerts waiting,
        the journal records not looked at yet, the last error and the ms to the next retry;
        depth: alerts waiting for the slowest transport."""
        now = self.now()
        last = self.journal.last_seq() or 0
        tr = {}
        depth = 0
        for ln in self.lanes:
            n = len(ln.ids)
            if n > depth:
                depth = n
            tr[ln.name] = {"delivered": ln.cursor, "pending": n, "unread": max(0, last - ln.scan),
                           "error": ln.error,
                           "retry_ms": max(0, ln.next_at - now) if ln.ids and ln.delay else 0,
                           "sent": ln.sent, "rejected": ln.rejected, "failures": ln.failures,
                           "ok": ln.t is not None}
        return {"transports": tr, "depth": depth, "step_max_ms": self.step_max_ms}
