"""The outbox's work (sentinel.alerts.outbox says what the outbox does): building the lanes,
reading the journal for alerts, sending a lane's oldest alert, retry delays, cursor files.

Imported by the Outbox for one lane's step and dropped after it, with the journal reader and the
alert kinds it brings (device heap: the outbox is idle nearly always, and a module costs heap
even from ROMFS, about 3 KB for this code and what it imports).
"""
import asyncio
import os
import time

from sentinel import journalread
from sentinel.alerts import Rejected, forget
from sentinel.alerts.kinds import alert as make_alert
from sentinel.alerts.kinds import classify, rank

# Transports kept between alerts: MQTT's session (its "online" availability, the keepalive) is
# state the broker sees. The others are built for one send and their modules dropped after it
# (with the helpers only they use): alerts are rare, and a module costs heap even from ROMFS
# (its functions, constants and class objects: about 1.5-2 KB each on the 64-bit port), so at
# most one of them is on the heap, and only while it sends. Syslog over TCP then connects per
# alert, as the webhook and e-mail already do.
KEPT = ("mqtt",)
TRANSIENT_HELPERS = ("util",)
READ_N = 4      # journal records per read: keeps one step of the task short


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


def load_transport(table, name, cfg, site):
    """A Transport for `name` (table: the outbox's TRANSPORTS) built from its config section
    (imports its module now)."""
    for n, mod in table:
        if n == name:
            return __import__(mod, None, None, ("Transport",)).Transport(cfg, site)
    raise ValueError("no alert transport %r" % name)


def drop_transport(name):
    """Forget transport `name`'s module and the helpers only the dropped ones use. Not for a
    kept transport."""
    forget(name)
    for mod in TRANSIENT_HELPERS:
        forget(mod)


def build(box, a, root, transports, lane_class):
    """The lanes of Outbox `box` (a: the alerts config section; transports: the Outbox's
    argument), its cursor files under <root>/alerts/ created."""
    box.min_rank = rank(a["min_severity"])
    d = root.rstrip("/") + "/alerts"
    try:
        os.mkdir(d)
    except OSError:  # exists
        pass
    start = box.journal.next_seq() - 1
    lanes = []
    for name, _ in box.table:
        sec = a[name]
        if transports is not None:
            if name not in transports:
                continue
            t, err = transports[name], None
        elif not sec["enabled"]:
            continue
        else:
            try:
                t, err = load_transport(box.table, name, sec, box.site), None
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
        lanes.append(lane_class(name, t, a[name]["timeout_ms"], path, cur, err, sec))
    return lanes


# -- reading the journal -----------------------------------------------------------------------
def _wanted(box, rec):
    c = classify(rec[3], rec[4] if isinstance(rec[4], dict) else {})
    return c is not None and rank(c[0]) <= box.min_rank


def scan(box, lane):
    """Look at up to READ_N records after lane.scan (one journal read). True if it moved on
    (more may follow at once), False when there was nothing to do or flash is failing."""
    j = box.journal
    last = j.last_seq()
    if last is None or lane.scan >= last or len(lane.ids) >= box.max_ids:
        return False
    frm = lane.scan + 1
    recs = journalread.read(j, frm, READ_N)
    if recs and recs[0][0] > frm:
        first = journalread.first_seq(j)
        if first is not None and first > frm:
            # the journal rotated past records this lane had not looked at
            box.log("alerts_lost", {"transport": lane.name, "count": first - frm})
    for rec in recs:
        seq = rec[0]
        if _wanted(box, rec):
            if seq > j.committed:
                j.flush()
                if seq > j.committed:
                    # flash failing: only what is on flash is sent; idle, then try again
                    return False
            lane.ids.append(seq)
            if lane.head is None and len(lane.ids) == 1:
                lane.head = make_alert(rec, box.site)
        lane.scan = seq
    if not recs:
        lane.scan = last  # nothing readable up to the end (corrupt records)
    return True


def _head(box, lane):
    if lane.head is None and lane.ids:
        recs = journalread.read(box.journal, lane.ids[0], 1)
        if recs and recs[0][0] == lane.ids[0]:
            lane.head = make_alert(recs[0], box.site)
        else:  # rotated away since it was found
            box.log("alerts_lost", {"transport": lane.name, "count": 1})
            _done(lane, lane.ids[0])
    return lane.head


def _done(lane, seq):
    lane.ids.pop(0)
    lane.head = None
    lane.cursor = seq
    if lane.delay:  # written only after a failure: the class defaults stay shared (heap)
        lane.delay = 0
        lane.next_at = 0
    try:
        write_cursor(lane.path, seq)
    except OSError as e:  # flash full: delivered anyway; a reboot sends it again
        lane.error = "cursor not saved: %r" % (e,)


# -- sending -------------------------------------------------------------------------------------
async def step(box, lane):
    """One step of the outbox for `lane`: look at the journal, then send its oldest alert when
    its retry time has come. True if it moved on (more may follow at once)."""
    t0 = time.ticks_ms()
    busy = scan(box, lane)
    note_step(box, t0)
    await asyncio.sleep_ms(0)
    if lane.ids and box.now() >= lane.next_at:
        if await deliver(box, lane):
            busy = True
    return busy


async def deliver(box, lane):
    """Send lane's oldest alert once. True if it was delivered or rejected."""
    t0 = time.ticks_ms()
    a = _head(box, lane)
    note_step(box, t0)
    if a is None:
        return False
    box.progress()
    t = lane.t
    try:
        if lane.sec is not None:
            t0 = time.ticks_ms()
            t = load_transport(box.table, lane.name, lane.sec, box.site)
            note_step(box, t0)
        await asyncio.wait_for_ms(t.send(a), lane.timeout_ms)
    except Rejected as e:
        lane.rejected = inc(lane.rejected)
        # not an alert kind itself, so a receiver rejecting everything cannot loop
        box.log("alert_rejected", {"transport": lane.name, "id": a["id"], "error": str(e)})
        _done(lane, a["id"])
        return True
    except Exception as e:  # OSError, TimeoutError, or a transport's bug: retry later
        lane.failures = inc(lane.failures)
        lane.error = repr(e) if str(e) else type(e).__name__
        lane.delay = next_delay(lane.delay, box.lo, box.hi)
        lane.next_at = box.now() + jitter(lane.delay, box.rnd())
        if lane.sec is None:  # a transient one is closed below
            await _close(t)
        return False
    finally:
        if lane.sec is not None:
            await _close(t)
            t = None
            drop_transport(lane.name)
    lane.sent = inc(lane.sent)
    _done(lane, a["id"])
    return True


async def _close(t):
    try:
        await t.close()
    except Exception:  # not built (True), or a dead connection
        pass


def note_step(box, t0):
    """Keep box.step_max_ms, the longest synchronous step, up to date with one from t0."""
    ms = time.ticks_diff(time.ticks_ms(), t0)
    if ms > box.step_max_ms:
        box.step_max_ms = ms
