# Megatec / Q1 serial UPS protocol, the UPS's side: format replies and parse the commands a UPS
# receives. Used by the host's UPS simulator and by tests; the device never imports it (its side
# is q1.py), so none of this is on the device's heap. Pure; MicroPython and CPython 3.10+, with
# the same bit-identical formatting rules as q1.py (fields formatted from integers).

from sentinel.q1 import (B_AVR, B_BATTERY_LOW, B_BEEPER, B_FAILED, B_SHUTDOWN,  # noqa: F401
                         B_STANDBY, B_TEST, B_UTILITY_FAIL, CMD_BEEPER, CMD_TEST, CMD_TEST_CANCEL,
                         CMD_TEST_LOW, Q1Error, format_shutdown, format_shutdown_restore)

_STRIP = b"\r\n\x00 "


# ---------------------------------------------------------------------------------------------
# Replies

def _fx(v, width, dp):
    """Fixed-width fixed-point field: zero-padded, clamped to what fits, dashes for None."""
    if v is None:
        if dp == 0:
            return "-" * width
        return "-" * (width - dp - 1) + "." + "-" * dp
    scale = 10 ** dp
    neg = v < 0
    n = int((-v if neg else v) * scale + 0.5)
    iw = width - (dp + 1 if dp else 0) - (1 if neg else 0)
    top = 10 ** iw - 1
    ip = n // scale
    if ip > top:  # clamp rather than widen: fixed columns matter to column-based parsers
        ip = top
        n = top * scale + scale - 1
    s = str(ip)
    s = "0" * (iw - len(s)) + s
    if dp:
        f = str(n % scale)
        s = s + "." + "0" * (dp - len(f)) + f
    return "-" + s if neg else s


def _bits_str(bits):
    out = ""
    m = 0x80
    while m:
        out += "1" if bits & m else "0"
        m >>= 1
    return out


def _get(state, name, default=None):
    if isinstance(state, dict):
        return state.get(name, default)
    return getattr(state, name, default)


def make_bits(on_battery=False, battery_low=False, avr=False, failed=False, line_interactive=True,
              testing=False, shutdown_active=False, beeper=False):
    """Status flags -> the 8-bit field value."""
    b = 0
    if on_battery:
        b |= B_UTILITY_FAIL
    if battery_low:
        b |= B_BATTERY_LOW
    if avr:
        b |= B_AVR
    if failed:
        b |= B_FAILED
    if line_interactive:
        b |= B_STANDBY
    if testing:
        b |= B_TEST
    if shutdown_active:
        b |= B_SHUTDOWN
    if beeper:
        b |= B_BEEPER
    return b


def format_q1(state):
    """Q1Status, or a dict with the same keys -> the 46-byte reply plus b'\\r'."""
    vbat = _get(state, "vbat")
    if vbat is not None and -0.005 < vbat < 9.995:
        vb = _fx(vbat, 4, 2)  # per-cell style "2.27"
    elif vbat is not None and vbat >= 99.95:
        vb = _fx(vbat, 4, 0)
    else:
        vb = _fx(vbat, 4, 1)
    temp = _get(state, "temp")
    if temp is not None and temp < -9.9:
        temp = -9.9
    load = _get(state, "load")
    s = "(%s %s %s %s %s %s %s %s\r" % (
        _fx(_get(state, "vin"), 5, 1), _fx(_get(state, "vin_fault"), 5, 1),
        _fx(_get(state, "vout"), 5, 1), _fx(None if load is None else int(load), 3, 0),
        _fx(_get(state, "freq"), 4, 1), vb, _fx(temp, 4, 1), _bits_str(_get(state, "bits", 0)))
    return s.encode()


def format_f(voltage, current, battery_v, freq):
    """Ratings -> b'#220.0 000 024.0 50.0\\r'."""
    return ("#%s %s %s %s\r" % (_fx(voltage, 5, 1), _fx(current, 3, 0), _fx(battery_v, 5, 1),
                                _fx(freq, 4, 1))).encode()


def _col(s, n):
    s = (s or "")[:n]
    return s + " " * (n - len(s))


def format_i(mfr, model, fw):
    """Identity -> b'#<mfr 15> <model 10> <fw 10>\\r' (padded / truncated to the columns)."""
    return ("#%s %s %s\r" % (_col(mfr, 15), _col(model, 10), _col(fw, 10))).encode()


# ---------------------------------------------------------------------------------------------
# Commands, as the UPS receives them

def format_test_minutes(minutes):
    """`T<nn>`: battery test for nn minutes (1..99)."""
    if not isinstance(minutes, int) or not 1 <= minutes <= 99:
        raise ValueError("test minutes %r: integer 1-99" % (minutes,))
    return ("T" + ("0" if minutes < 10 else "") + str(minutes) + "\r").encode()


_SIMPLE = {
    "Q1": ("status",), "F": ("rating",), "I": ("info",), "C": ("cancel",),
    "T": ("test_quick",), "TL": ("test_low",), "CT": ("test_cancel",), "Q": ("beeper",),
}


def parse_command(data):
    """A command as the UPS receives it -> tuple:
    ('status',) ('rating',) ('info',) ('cancel',) ('test_quick',) ('test_low',)
    ('test_minutes', nn) ('test_cancel',) ('beeper',) ('shutdown', delay_min, restore_min|None).
    delay_min is a float for .2-.9, an int for 01-10, and 0 for the immediate `S00R<mmmm>`
    (what NUT's driver sends for load.off). Raises Q1Error('command')."""
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data).strip(_STRIP)
    for b in data:
        if b < 0x20 or b > 0x7E:
            raise Q1Error("command", "non-printable byte 0x%02x" % b)
    s = data.decode()
    t = _SIMPLE.get(s)
    if t is not None:
        return t
    if len(s) == 3 and s[0] == "T" and s[1:].isdigit():
        n = int(s[1:])
        if n >= 1:
            return ("test_minutes", n)
    if len(s) in (3, 8) and s[0] == "S":
        d = s[1:3]
        if d[0] == "." and "2" <= d[1] <= "9":
            delay = (ord(d[1]) - 48) / 10
        elif d == "00" and len(s) == 8:
            delay = 0  # "S00R0000": NUT's load.off, output off at once
        elif d.isdigit() and 1 <= int(d) <= 10:
            delay = int(d)
        else:
            raise Q1Error("command", "bad shutdown delay %r" % d)
        if len(s) == 3:
            return ("shutdown", delay, None)
        if s[3] == "R" and s[4:].isdigit():
            return ("shutdown", delay, int(s[4:]))
    raise Q1Error("command", "unknown %r" % s)


def format_command(name, *args):
    """Inverse of parse_command: format_command(*parse_command(b)) == b."""
    if name == "shutdown":
        delay, restore = args
        if delay == 0:
            return ("S00R" + "0" * (4 - len(str(restore))) + str(restore) + "\r").encode()
        if restore is None:
            return format_shutdown(delay)
        return format_shutdown_restore(delay, restore)
    if name == "test_minutes":
        return format_test_minutes(args[0])
    for k in _SIMPLE:
        if _SIMPLE[k][0] == name:
            return (k + "\r").encode()
    raise ValueError("unknown command %r" % (name,))


