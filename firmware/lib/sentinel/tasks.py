"""The housekeeping tasks around sensing and control: the watchdog supervisor, the status
reporter (the one place that collects garbage, at most once a second), the event-loop lag
monitor, and the NUT starter that waits for the network.

A stall of the event loop longer than the ADC ring's span loses samples, so the lag monitor
measures how late a 10 ms sleep wakes: the worst since boot, the worst over the last minute,
and a journal record when a stall exceeds half the ring's span.
"""
import asyncio
import gc
import time

from sentinel.runtime import STABLE_UPTIME_MS, WDT_MS, mark_stable

# Tasks the supervisor requires fresh progress from, and how fresh (ms).
# alerts: the outbox notes progress before each send, and a send is bounded by its timeout_ms
# (30 s at most)
ALIVE_LIMITS = {"sampler": 2000, "control": 2000, "ups": 15000, "alerts": 45000}
LAG_TICK_MS = 10
LAG_WINDOW_MS = 60000
STALL_RECORD_MS = 10000    # at most one loop_stall record this often (a loaded host stalls often)
NUT_RETRY_FIRST_MS = 1000  # network down: look again after this, doubling up to ...
NUT_RETRY_MAX_MS = 8000


async def supervisor(rt, limits):
    """Feed the watchdog only while every task in `limits` makes progress: a stuck sampler
    resets the board instead of leaving it saying "online"."""
    board = rt.board
    board.watchdog_start(WDT_MS)
    grace_until = rt.now() + 5000
    logged = False
    while True:
        now = rt.now()
        stuck = [n for n, lim in limits.items() if now - rt.alive.get(n, -10 ** 9) > lim]
        if not stuck or now < grace_until:
            board.watchdog_feed()
        elif not logged:
            logged = True
            rt.log("stuck", {"tasks": stuck}, critical=True)
            rt.journal.flush()
        await asyncio.sleep_ms(500)


class LoopLag:
    """How late the event loop runs a task: the largest overshoot of a LAG_TICK_MS sleep.
    max_ms: since boot; window_ms(): over the current and the previous LAG_WINDOW_MS (so at
    least the last minute); stalls: overshoots above the record limit."""

    def __init__(self, rt, limit_fn):
        self.rt = rt
        self.limit_fn = limit_fn   # () -> ms a stall may last before it is recorded (0: none)
        self.max_ms = 0
        self.cur_ms = 0
        self.prev_ms = 0
        self.stalls = 0
        self._win_at = 0
        self._rec_at = -10 ** 9

    def window_ms(self):
        return self.cur_ms if self.cur_ms > self.prev_ms else self.prev_ms

    def note(self, lag, now):
        """Account one measured overshoot `lag` (ms) at `now`."""
        if now - self._win_at >= LAG_WINDOW_MS:
            self.prev_ms = self.cur_ms
            self.cur_ms = 0
            self._win_at = now
        if lag > self.cur_ms:
            self.cur_ms = lag
        if lag > self.max_ms:
            self.max_ms = lag
        limit = self.limit_fn()
        if limit and lag > limit:
            if self.stalls < 0x3FFFFFFF:
                self.stalls += 1
            if now - self._rec_at >= STALL_RECORD_MS:
                self._rec_at = now
                self.rt.log("loop_stall", {"ms": lag, "limit_ms": limit, "stalls": self.stalls})

    async def run(self):
        rt = self.rt
        while True:
            t0 = time.ticks_ms()
            await asyncio.sleep_ms(LAG_TICK_MS)
            self.note(time.ticks_diff(time.ticks_ms(), t0) - LAG_TICK_MS, rt.now())


async def reporter(rt, status_fn, sm):
    """Once a second: collect garbage and note the heap right after (status reports that
    figure), then, in a separate step of the loop, send the status event and the board's
    heartbeat. Console and NUT handlers never collect: a collection is the loop's longest
    stall, so it happens here only."""
    board = rt.board
    stable = False
    while True:
        gc.collect()
        rt.heap[0] = gc.mem_free()
        rt.heap[1] = gc.mem_alloc()
        await asyncio.sleep_ms(0)
        rt.console.event("status", **status_fn())
        board.heartbeat({"heap_free": rt.heap[0], "state": sm.state})
        if not stable and rt.uptime() > STABLE_UPTIME_MS:
            stable = True
            mark_stable(rt.files["boots"])
        await asyncio.sleep_ms(1000)


class NutStarter:
    """Starts the NUT server once the network is up, and reports the network state. A board
    without a network module ("absent") never serves NUT but keeps sensing and deciding; a
    board whose Wi-Fi is down looks again with a bounded backoff.

    Also starts the web server the same way: `nut` may be any server with `await start(host,
    port)`; bind: () -> (host, port), default the board's NUT address; name: the prefix of its
    records (<name>_start_failed, <name>_started); log_network: whether this starter records
    network state changes (one starter does)."""

    def __init__(self, rt, nut, bind=None, name="nut", log_network=True):
        self.rt = rt
        self.nut = nut
        self.bind = bind or rt.board.nut_bind
        self.name = name
        self.log_network = log_network
        self.serving = False
        self.state = None      # the last network state seen
        self.waited = False    # an attempt did not start the server (network down, error)
        self._error = None

    def _observe(self):
        st = self.rt.board.network_state()
        if st != self.state:
            if self.log_network and (self.state is not None or st != "up"):
                self.rt.log("network", {"state": st})
            self.state = st
        return st

    async def try_start(self):
        """One attempt; True once the server listens."""
        if self.serving:
            return True
        if self._observe() != "up":
            self.waited = True
            return False
        host, port = self.bind()
        try:
            await self.nut.start(host, port)
        except OSError as e:
            self.waited = True
            err = repr(e)
            if err != self._error:  # once per distinct error, not once per retry
                self._error = err
                self.rt.log(self.name + "_start_failed", {"error": err, "port": port})
            return False
        self.serving = True
        if self.waited:
            self.rt.log(self.name + "_started", {"port": port})
        return True

    async def run(self):
        delay = NUT_RETRY_FIRST_MS
        while not await self.try_start():
            if self.state == "absent":
                return  # no network module on this image: nothing will come up
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, NUT_RETRY_MAX_MS)
