# Megatec / Q1 UPS client: an asyncio task over the HAL Uart (2400 8N1, set up by the board).
#
# One request in flight at a time (an asyncio.Lock serialises polling and commands, because
# replies carry no request id). `Q1` every poll_ms; `F` and `I` after the first good reply and
# again after each recovery of the link. The link is "lost" once link_lost_s pass without a
# valid reply; a later valid reply recovers it.
import asyncio

from sentinel import q1 as Q  # Q.X: an imported name would be a module-dict entry each

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


_MASK30 = const(0x3FFFFFFF)
_HALF30 = const(0x20000000)

INIT = "init"  # no valid reply yet since start
OK = "ok"
LOST = "lost"

_INFO_TRIES = const(3)  # F / I attempts per (re)connection before giving up on them

# __getattr__ readings: the UpsLink name and the Q1Status field it shows.
_READINGS = const(("input_v", "input_hz", "output_v", "load", "battery_v", "on_battery",
                   "shutdown_active"))
_Q1_FIELDS = const(("vin", "freq", "vout", "load", "vbat", "on_battery", "shutdown_active"))


def _elapsed(now, then):
    # ticks_ms-style difference: right for wrapping 30-bit ticks and plain ms, gaps < 2**29 ms.
    return ((now - then + _HALF30) & _MASK30) - _HALF30


# MicroPython has asyncio.sleep_ms; CPython (host simulations) only asyncio.sleep. Not a
# wrapper coroutine: its frame would stay on the heap for each link's sleep between polls
_sleep_ms = getattr(asyncio, "sleep_ms", None) or (lambda ms: asyncio.sleep(ms / 1000))


class UpsLink:
    """Q1 client. uart: HAL Uart; now_ms(): int ms (ticks_ms or monotonic); progress(): called
    once per poll cycle (liveness for the supervisor); sleep_ms(ms): awaitable, injectable so tests
    advance a fake clock; battery_nominal_v: pack voltage for charge when `F` does not give it;
    poll_ms, link_lost_s: the validated ups section's."""

    # State a link rarely writes as class defaults (an instance holds only what was written:
    # a smaller attribute table for each UPS link, device heap)
    reply_timeout_ms = 1000
    cmd_timeout_ms = 500
    battery_nominal_v = None
    last_error = None  # kind of the last bad reply ('timeout', 'lead', ...)
    timeouts = 0
    garbage = 0
    uart_errors = 0
    losses = 0
    recoveries = 0
    commands = 0
    last_command = None
    last_command_reply = None

    def __init__(self, uart, now_ms, poll_ms, link_lost_s, progress=None,
                 reply_timeout_ms=1000, cmd_timeout_ms=500, sleep_ms=None,
                 battery_nominal_v=None):
        self._uart = uart
        self._now = now_ms
        self._progress = progress
        self.poll_ms = poll_ms
        self.link_lost_ms = int(link_lost_s * 1000)
        if reply_timeout_ms != 1000:
            self.reply_timeout_ms = reply_timeout_ms
        if cmd_timeout_ms != 500:
            self.cmd_timeout_ms = cmd_timeout_ms
        self._sleep = sleep_ms or _sleep_ms
        if battery_nominal_v is not None:
            self.battery_nominal_v = battery_nominal_v
        self._lock = asyncio.Lock()
        self._running = False
        self._ref_ms = None  # last valid reply, or the first poll while none came yet
        self._f_tries = _INFO_TRIES
        self._i_tries = _INFO_TRIES
        self.state = INIT
        self.q1 = None  # last Q1Status
        self.rating = None  # Q1Rating from F
        self.info = None  # Q1Info from I
        self.status = ()  # NUT ups.status tokens while the link is OK, else ()
        self.last_ok_ms = None
        self.polls = 0
        self.replies = 0

    # -- readings ---------------------------------------------------------------------------
    # Read-only, computed on access by one __getattr__ (eight properties would cost ~1.3 KB of
    # heap on the device):
    #   link_ok            state == OK
    #   link_known         state != INIT: the link has answered, or has timed out for good
    #   input_v, input_hz, output_v, load, battery_v
    #                      the last Q1 reading's field while the link is OK, else None
    #   on_battery, shutdown_active
    #                      True/False from the UPS, None while the link is not OK
    #   nominal_battery_v  pack voltage from `F`, else the configured battery_nominal_v
    #   charge             battery charge % estimated from battery voltage vs nominal, or None
    #                      (Q1 has no charge or runtime field)

    def __getattr__(self, name):
        if name == "link_ok":
            return self.state == OK
        if name == "link_known":
            return self.state != INIT
        if name in _READINGS:
            q = self.q1
            if q is None or self.state != OK:
                return None
            return getattr(q, _Q1_FIELDS[_READINGS.index(name)])
        if name == "nominal_battery_v":
            r = self.rating
            if r is not None and r.battery_v:
                return r.battery_v
            return self.battery_nominal_v
        if name == "charge":
            return Q.battery_charge(self.battery_v, self.nominal_battery_v)
        raise AttributeError(name)

    def age_ms(self):
        """ms since the last valid reply, or None if there never was one."""
        if self.last_ok_ms is None:
            return None
        return _elapsed(self._now(), self.last_ok_ms)

    def nut_vars(self):
        """Current readings under NUT variable names (only the ones known)."""
        v = {}
        if self.state == OK and self.q1 is not None:
            q = self.q1
            v["ups.status"] = " ".join(self.status)
            for k, x in (("input.voltage", q.vin), ("output.voltage", q.vout), ("ups.load", q.load),
                         ("input.frequency", q.freq), ("battery.voltage", q.vbat),
                         ("ups.temperature", q.temp), ("battery.charge", self.charge)):
                if x is not None:
                    v[k] = x
            v["ups.beeper.status"] = "enabled" if q.beeper else "disabled"
            v["ups.type"] = "offline / line interactive" if q.line_interactive else "online"
        r = self.rating
        if r is not None:
            for k, x in (("input.voltage.nominal", r.voltage), ("input.current.nominal", r.current),
                         ("battery.voltage.nominal", r.battery_v),
                         ("input.frequency.nominal", r.freq)):
                if x is not None:
                    v[k] = x
        i = self.info
        if i is not None:
            for k, x in (("device.mfr", i.mfr), ("device.model", i.model), ("ups.firmware", i.fw)):
                if x:
                    v[k] = x
        return v

    # -- wire ---------------------------------------------------------------------------------

    async def _transact(self, cmd, timeout_ms):
        """Send one command and wait for one CR-terminated reply (None on timeout or UART
        error). The lock keeps exactly one request in flight."""
        async with self._lock:
            try:
                self._uart.flush_input()  # drop late or unsolicited bytes from a previous request
                await self._uart.write(cmd)
                return await self._uart.read_until(b"\r", timeout_ms)
            except OSError:
                self.uart_errors += 1
                return None

    def _valid(self, now):
        self.replies += 1
        self.last_ok_ms = now
        self._ref_ms = now
        if self.state != OK:
            if self.state == LOST:
                self.recoveries += 1
            # Ask identity and ratings again: the UPS may have been swapped or restarted.
            self._f_tries = _INFO_TRIES
            self._i_tries = _INFO_TRIES
            self.state = OK

    def _invalid(self, kind, now):
        if kind == "timeout":
            self.timeouts += 1
        else:
            self.garbage += 1
        self.last_error = kind
        if self._ref_ms is None:
            self._ref_ms = now
        if self.state != LOST and _elapsed(now, self._ref_ms) >= self.link_lost_ms:
            self.state = LOST
            self.status = ()
            self.losses += 1

    async def _ask(self, cmd, parse):
        """Request + parse. Returns (parsed object or None, error kind or None); every failure
        is counted and may mark the link lost."""
        r = await self._transact(cmd, self.reply_timeout_ms)
        now = self._now()
        if r is None:
            self._invalid("timeout", now)
            return None, "timeout"
        try:
            obj = parse(r)
        except Q.Q1Error as e:
            self._invalid(e.kind, now)
            return None, e.kind
        self._valid(now)
        return obj, None

    async def _info(self, cmd, parse, tries):
        """F or I: returns (object or None, tries left). NAK means unsupported: stop asking;
        other failures retry on later polls, a few times."""
        obj, err = await self._ask(cmd, parse)
        if obj is not None:
            return obj, 0
        return None, (0 if err == "nak" else tries - 1)

    async def poll_once(self):
        """One cycle: Q1 (plus F / I when due), then progress()."""
        q, _ = await self._ask(Q.CMD_Q1, Q.parse_q1)
        if q is not None:
            self.q1 = q
            self.status = Q.status_tokens(q)
            if self._f_tries > 0:
                f, self._f_tries = await self._info(Q.CMD_F, Q.parse_f, self._f_tries)
                if f is not None:
                    self.rating = f
            if self._i_tries > 0:
                i, self._i_tries = await self._info(Q.CMD_I, Q.parse_i, self._i_tries)
                if i is not None:
                    self.info = i
        self.polls += 1
        if self._progress is not None:
            self._progress()

    async def run(self):
        """Poll until stop(). Never raises for UPS trouble: it is counted and reflected in
        state."""
        self._running = True
        while self._running:
            t0 = self._now()
            await self.poll_once()
            wait = self.poll_ms - _elapsed(self._now(), t0)
            await self._sleep(wait if wait > 0 else 0)

    def stop(self):
        self._running = False

    # -- commands -----------------------------------------------------------------------------

    async def _command(self, cmd):
        r = await self._transact(cmd, self.cmd_timeout_ms)
        self.commands += 1
        self.last_command = cmd
        rs = None
        if r is not None:
            rs = bytes(r).strip(b"\r\n\x00 ")
        self.last_command_reply = rs
        # The protocol acknowledges with nothing or "ACK"; only an explicit NAK is a refusal.
        # Without a working link there is no telling whether the UPS heard it.
        return self.state == OK and rs not in (b"NAK", b"(NAK")

    async def send(self, cmd):
        """Send one command (a q1.CMD_* constant or a formatted S<n>R<m>) for a NUT instant
        command. True if sent over a working link and not refused (NAK)."""
        return await self._command(cmd)

    async def shutdown_restore(self, delay_min, restore_min):
        """Send `S<n>R<mmmm>`: cut the output after delay_min minutes (.2-.9 or 1-10), restore
        it restore_min minutes later (0: stay off). True if sent over a working link and not
        refused. ValueError for values the protocol cannot express."""
        return await self._command(Q.format_shutdown_restore(delay_min, restore_min))

    async def shutdown(self, delay_min):
        """Send `S<n>` (the UPS restores output when mains returns)."""
        return await self._command(Q.format_shutdown(delay_min))

    async def cancel_shutdown(self):
        """Send `C`: cancel a pending shutdown (and a restore countdown)."""
        return await self._command(Q.CMD_CANCEL)
