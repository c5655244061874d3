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

Heap: this module holds only the lanes, the task's loop and the status. The work (reading the
journal, building and sending alerts, the cursor files: sentinel.alerts.delivery, with the
journal reader and the alert kinds) is imported for one lane's step when that lane has
something to do, and dropped after it. A transport other than MQTT is built for each send and
its module dropped after it (delivery.KEPT says why MQTT stays). Each step runs under a lock the
web server's handlers hold too: a page or a scrape being rendered and an alert being sent are
never on the heap together (a page waits for a send at most the transport's timeout_ms).

Time budget: every send runs under asyncio.wait_for_ms(timeout_ms); the journal is read a few
records at a time (journalread.read is synchronous file I/O) and the task yields after each read
and each send. The longest synchronous step (a transport's import for a send included) is
reported as step_max_ms (the delivery code's import for the step included).
"""
import asyncio
import random
import time

from sentinel.alerts import forget
from sentinel.runtime import drop_modules

# transport name -> module holding its Transport; imported only when enabled (device heap:
# boards without ROMFS hold every imported module's bytecode in RAM)
TRANSPORTS = (("syslog", "sentinel.alerts.syslog"), ("webhook", "sentinel.alerts.webhook"),
              ("smtp", "sentinel.alerts.smtp"), ("mqtt", "sentinel.alerts.mqtt"))
MAX_IDS = 128   # alert ids a lane holds ahead of delivery; it stops reading ahead when full
IDLE_MS = 200   # pause when no lane has anything to do


def _drop_work():
    # the delivery code and what only it imports (the next step imports them afresh)
    forget("delivery")
    forget("kinds")
    drop_modules(("journalread",))


class Lane:
    """One transport's delivery state (see the module docstring). What a lane rarely changes
    is a class default: an instance holds only what was set (device heap, per transport)."""
    head = None      # the alert dict of ids[0], once read
    next_at = 0      # ms (outbox clock) before which no send is tried
    delay = 0        # the last retry delay (0: the last send succeeded)
    error = None     # the last failure (kept after a later success)
    sec = None       # its config section when it is built per send (not KEPT)
    sent = 0
    rejected = 0
    failures = 0

    def __init__(self, name, transport, timeout_ms, path, cursor, error=None, sec=None):
        self.name = name
        self.t = transport       # None: it could not be built (error says why)
        if sec is not None:
            self.sec = sec
        if error is not None:
            self.error = error
        self.timeout_ms = timeout_ms
        self.path = path
        self.cursor = cursor     # last id delivered or rejected
        self.scan = cursor       # last seq looked at
        self.ids = []            # alert ids in (cursor, scan], oldest first


class Outbox:
    """journal: the Journal; cfg: the validated config; root: the filesystem root (cursor files
    go into <root>/alerts/); now(): ms clock; log(kind, data, critical=False): the runtime's
    log; progress(): liveness for the supervisor; transports: {name: Transport} to use instead
    of building the enabled ones (tests); rnd(): random int for the jitter; lock: the
    asyncio.Lock each step holds, shared with the web server's handlers (None: one of its
    own)."""

    def __init__(self, journal, cfg, root, now, log, progress=None, transports=None, rnd=None,
                 lock=None):
        a = cfg["alerts"]
        self.journal = journal
        self.site = cfg["site"]["name"]
        self.lo = a["backoff_min_ms"]
        self.hi = a["backoff_max_ms"]
        self.now = now
        self.log = log
        self.progress = progress or (lambda: None)
        self.rnd = rnd or (lambda: random.getrandbits(20))
        self.lock = lock or asyncio.Lock()
        self.step_max_ms = 0
        self.max_ids = MAX_IDS
        self.table = TRANSPORTS
        self.min_rank = 0
        from sentinel.alerts import delivery
        try:
            self.lanes = delivery.build(self, a, root, transports, Lane)
        finally:
            del delivery
            _drop_work()

    def enabled(self):
        """Names of the enabled transports (those that could not be built included: their
        status says why)."""
        return [ln.name for ln in self.lanes]

    def _due(self, lane):
        """Whether `lane` has work now: journal records it has not looked at (and room for
        their ids), or an alert whose retry time has come."""
        if lane.t is None:
            return False
        last = self.journal.last_seq()
        if last is not None and lane.scan < last and len(lane.ids) < MAX_IDS:
            return True
        return bool(lane.ids) and self.now() >= lane.next_at

    async def run(self):
        while True:
            self.progress()
            busy = False
            for lane in self.lanes:
                if not self._due(lane):
                    continue
                async with self.lock:
                    t0 = time.ticks_ms()
                    from sentinel.alerts import delivery
                    ms = time.ticks_diff(time.ticks_ms(), t0)
                    if ms > self.step_max_ms:
                        self.step_max_ms = ms
                    try:
                        if await delivery.step(self, lane):
                            busy = True
                    finally:
                        del delivery
                        _drop_work()
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
