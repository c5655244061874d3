# Failed-login limiter for the NUT server. Pure; MicroPython and CPython.
# Password hashes themselves are sentinel.passwd's (one definition, shared with the config
# validator): imported for each check and dropped after it, as logins are rare (device heap:
# its functions and tables are not resident beside the NUT server).
from sentinel.runtime import drop_modules


def check_password(stored, given):
    """sentinel.passwd.check_password, its module imported for the call."""
    from sentinel import passwd
    try:
        return passwd.check_password(stored, given)
    finally:
        del passwd
        drop_modules(("passwd",))


class LoginLimiter:
    """Per-source-address failed-login throttle with bounded state.

    After `free` failures from one address (at least one), every further credential check from
    it (right or wrong, so timing tells nothing) waits base_ms, then twice as long after each
    further failure, capped at max_ms, until `forget_ms` passes without a failure. A success
    clears the address. At most `size`
    addresses are tracked; when full, the one whose last failure is oldest is forgotten.
    Delays rather than lockouts: a locked-out upsmon would look like a dead link (and shut its
    host down after DEADTIME), while a delay of a few seconds is harmless to it."""

    def __init__(self, size=8, free=2, base_ms=250, max_ms=4000, forget_ms=300000):
        self.size = size
        self.free = free
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.forget_ms = forget_ms
        self.addrs = [None] * size
        self.fails = [0] * size
        self.last = [0] * size

    def _find(self, addr, now_ms):
        for i in range(self.size):
            a = self.addrs[i]
            if a is None:
                continue
            if now_ms - self.last[i] > self.forget_ms:
                self.addrs[i] = None
                continue
            if a == addr:
                return i
        return -1

    def delay_ms(self, addr, now_ms):
        """How long to wait before checking credentials from `addr`."""
        i = self._find(addr, now_ms)
        if i < 0:
            return 0
        n = self.fails[i] - (self.free if self.free > 0 else 1)
        if n < 0:
            return 0
        if n > 16:
            return self.max_ms
        return min(self.base_ms << n, self.max_ms)

    def failed(self, addr, now_ms):
        i = self._find(addr, now_ms)
        if i < 0:
            i = 0
            for j in range(self.size):
                if self.addrs[j] is None:
                    i = j
                    break
                if self.last[j] < self.last[i]:
                    i = j
            self.addrs[i] = addr
            self.fails[i] = 0
        self.fails[i] += 1
        self.last[i] = now_ms

    def succeeded(self, addr, now_ms):
        i = self._find(addr, now_ms)
        if i >= 0:
            self.addrs[i] = None

    def tracked(self):
        return sum(1 for a in self.addrs if a is not None)
