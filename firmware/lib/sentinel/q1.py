# Megatec / Q1 serial UPS protocol, the device's side: parse replies, format the commands the
# sentinel sends. The simulator's side (reply formatting, command parsing) is in q1fmt.py, so the
# device does not carry it on its heap.
#
# Pure and shared: the firmware's UPS link parses with it, and the host's UPS simulator formats
# with q1fmt, so both must run unchanged under MicroPython and CPython 3.10+. Numbers are parsed
# as fixed-point integers divided by a power of ten (one correctly rounded IEEE division), and
# formatted from integers, so both interpreters give bit-identical results whatever float
# parsing and printing a port was built with (ESP32 / RP2040 builds use single-precision floats).
#
# Reply to `Q1`:  (MMM.M NNN.N PPP.P QQQ RR.R S.SS TT.T b7b6b5b4b3b2b1b0<cr>
#   input V, input fault V, output V, load %, input Hz, battery V, temperature C, status bits.
# Reply to `F`:   #VVV.V CCC BBB.B FF.F<cr>   nominal V, current A, battery V, frequency Hz.
# Reply to `I`:   #<mfr 15> <model 10> <fw 10><cr>
# Commands end in <cr>; `S<n>R<mmmm>` shuts down after n minutes (.2-.9 or 01-10) and restores
# mmmm minutes later (0000: stay off).

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


# Status bits (bit 7 is the first character of the bit field). const(): inlined here, and
# still importable (q1fmt builds the field from them).
B_UTILITY_FAIL = const(0x80)  # on battery
B_BATTERY_LOW = const(0x40)
B_AVR = const(0x20)  # bypass / boost / buck active
B_FAILED = const(0x10)  # UPS failed
B_STANDBY = const(0x08)  # 1 = line-interactive / offline (standby) UPS, 0 = on-line
B_TEST = const(0x04)  # test in progress
B_SHUTDOWN = const(0x02)  # shutdown active (S command counting down, or output being cut)
B_BEEPER = const(0x01)

Q1_REPLY_LEN = const(46)  # without the <cr>

CMD_Q1 = b"Q1\r"
CMD_F = b"F\r"
CMD_I = b"I\r"
CMD_CANCEL = b"C\r"
# Instant commands, with the bytes NUT's own nutdrv_qx (megatec) sends for them
CMD_LOAD_OFF = b"S00R0000\r"  # cut the output now and keep it off
CMD_TEST = b"T\r"             # 10-second battery test
CMD_TEST_LOW = b"TL\r"        # battery test until low battery
CMD_TEST_CANCEL = b"CT\r"
CMD_BEEPER = b"Q\r"           # toggle the beeper

_STRIP = const(b"\r\n\x00 ")


class Q1Error(ValueError):
    """A reply or command that cannot be understood. `kind` is a short constant the link counts:
    'empty', 'bytes' (non-printable), 'lead' (wrong first character), 'nak', 'short', 'long',
    'field' (a field that must be numeric is not), 'bits', 'command'."""

    def __init__(self, kind, detail=""):
        super().__init__("%s: %s" % (kind, detail) if detail else kind)
        self.kind = kind


class _Rec:
    """Shared value-object behaviour: fields() in _F order, equality by type and fields, and a
    repr naming each field (one copy of these methods instead of one per class)."""

    _F = ()

    def fields(self):
        return tuple(getattr(self, n) for n in self._F)

    def __eq__(self, other):
        return type(other) is type(self) and self.fields() == other.fields()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (n, getattr(self, n)) for n in self._F))


# Status flag names, bit 7 first: Q1Status.<name> is bool(bits & (0x80 >> index)).
_FLAGS = const(("on_battery", "battery_low", "avr", "failed", "line_interactive", "testing",
                "shutdown_active", "beeper"))


class Q1Status(_Rec):
    """A parsed `Q1` reply. Numeric fields are None when the UPS sent dashes or junk for them.
    Flags, read-only bools from `bits`: on_battery, battery_low, avr, failed,
    line_interactive, testing, shutdown_active, beeper."""

    _F = ("vin", "vin_fault", "vout", "load", "freq", "vbat", "temp", "bits")

    def __init__(self, vin=None, vin_fault=None, vout=None, load=None, freq=None, vbat=None,
                 temp=None, bits=0):
        self.vin = vin
        self.vin_fault = vin_fault
        self.vout = vout
        self.load = load
        self.freq = freq
        self.vbat = vbat
        self.temp = temp
        self.bits = bits

    def __getattr__(self, name):
        # the flags, computed on access (one method instead of eight properties)
        if name in _FLAGS:
            return bool(self.bits & (0x80 >> _FLAGS.index(name)))
        raise AttributeError(name)


class Q1Rating(_Rec):
    """A parsed `F` reply: nominal ratings."""

    _F = ("voltage", "current", "battery_v", "freq")

    def __init__(self, voltage=None, current=None, battery_v=None, freq=None):
        self.voltage = voltage
        self.current = current
        self.battery_v = battery_v
        self.freq = freq


class Q1Info(_Rec):
    """A parsed `I` reply: manufacturer, model, firmware (stripped strings, maybe empty)."""

    _F = ("mfr", "model", "fw")

    def __init__(self, mfr="", model="", fw=""):
        self.mfr = mfr
        self.model = model
        self.fw = fw


# ---------------------------------------------------------------------------------------------
# Parsing helpers

def _text(data, lead):
    """bytes/str reply -> str without the terminator, checked to be printable ASCII and to start
    with `lead`."""
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = bytes(data)
    # A UPS may prefix a NUL or leave a stray LF; the terminator may be CR or CRLF.
    data = data.strip(_STRIP)
    if not data:
        raise Q1Error("empty")
    for b in data:
        if b < 0x20 or b > 0x7E:
            raise Q1Error("bytes", "non-printable byte 0x%02x" % b)
    s = data.decode()
    if s[0] != lead:
        if s == "NAK" or s == "(NAK":
            raise Q1Error("nak")
        raise Q1Error("lead", "expected %r, got %r" % (lead, s[0]))
    if s == "(NAK":
        raise Q1Error("nak")
    return s[1:]


def _num(tok):
    """'226.0', '-5.3', '014' -> float (or None for dashes, NaN, or anything else non-numeric).
    Fixed-point: digits as one integer divided by 10**decimals, so both interpreters agree."""
    n = len(tok)
    if n == 0 or n > 12:
        return None
    i = 0
    neg = False
    c = tok[0]
    if c == "-" or c == "+":
        neg = c == "-"
        i = 1
    mant = 0
    dec = -1  # digits after the point, -1 while no point seen
    digits = 0
    while i < n:
        c = tok[i]
        if "0" <= c <= "9":
            mant = mant * 10 + (ord(c) - 48)
            digits += 1
            if dec >= 0:
                dec += 1
        elif c == "." and dec < 0:
            dec = 0
        else:
            return None
        i += 1
    if digits == 0:
        return None
    v = mant / (10 ** dec) if dec > 0 else float(mant)
    return -v if neg else v


def _int(tok):
    """'014' -> 14; None for anything that is not plain digits."""
    if not tok or len(tok) > 9:
        return None
    for c in tok:
        if not ("0" <= c <= "9"):
            return None
    return int(tok)


def parse_q1(data):
    """Reply to `Q1` (bytes or str, terminator optional) -> Q1Status; raises Q1Error."""
    s = _text(data, "(")
    toks = s.split()
    if len(toks) < 8:
        raise Q1Error("short", "%d fields" % len(toks))
    if len(toks) > 8:
        raise Q1Error("long", "%d fields" % len(toks))
    b = toks[7]
    if len(b) != 8:
        raise Q1Error("bits", "status field %r" % b)
    bits = 0
    for c in b:
        if c == "1":
            bits = (bits << 1) | 1
        elif c == "0":
            bits <<= 1
        else:
            raise Q1Error("bits", "status field %r" % b)
    return Q1Status(_num(toks[0]), _num(toks[1]), _num(toks[2]), _int(toks[3]), _num(toks[4]),
                    _num(toks[5]), _num(toks[6]), bits)


def parse_f(data):
    """Reply to `F` -> Q1Rating; raises Q1Error."""
    s = _text(data, "#")
    toks = s.split()
    if len(toks) < 4:
        raise Q1Error("short", "%d fields" % len(toks))
    if len(toks) > 4:
        raise Q1Error("long", "%d fields" % len(toks))
    r = Q1Rating(_num(toks[0]), _int(toks[1]), _num(toks[2]), _num(toks[3]))
    if r.voltage is None and r.battery_v is None and r.freq is None:
        raise Q1Error("field", "no numeric rating")
    return r


def parse_i(data):
    """Reply to `I` -> Q1Info; raises Q1Error. Fixed columns (15/10/10) when the reply has the
    standard length, else whitespace-separated with the manufacturer taking the leftovers."""
    s = _text(data, "#")
    if len(s) >= 37 and s[15] == " " and s[26] == " ":
        return Q1Info(s[0:15].strip(), s[16:26].strip(), s[27:37].strip())
    toks = s.split()
    if len(toks) >= 3:
        return Q1Info(" ".join(toks[:-2]), toks[-2], toks[-1])
    if len(toks) == 0:
        return Q1Info()
    raise Q1Error("short", "%d fields" % len(toks))


# ---------------------------------------------------------------------------------------------
# Commands the sentinel sends

def _delay_code(delay_min):
    """Shutdown delay in minutes -> '.2'..'.9' or '01'..'10'; ValueError if not representable."""
    t = int(delay_min * 10 + 0.5) if delay_min >= 0 else -1
    if t < 0 or abs(delay_min * 10 - t) > 1e-6:
        raise ValueError("shutdown delay %r min: use .2-.9 or whole minutes 1-10" % (delay_min,))
    if 2 <= t <= 9:
        return "." + str(t)
    if t % 10 == 0 and 10 <= t <= 100:
        m = t // 10
        return ("0" if m < 10 else "") + str(m)
    raise ValueError("shutdown delay %r min: use .2-.9 or whole minutes 1-10" % (delay_min,))


def format_shutdown(delay_min):
    """`S<n>`: cut the output after delay_min minutes (the UPS restores it when mains returns)."""
    return ("S" + _delay_code(delay_min) + "\r").encode()


def format_shutdown_restore(delay_min, restore_min):
    """`S<n>R<mmmm>`: cut the output after delay_min minutes, restore restore_min minutes later
    (0 = stay off). restore_min must be an integer 0..9999."""
    if not isinstance(restore_min, int) or not 0 <= restore_min <= 9999:
        raise ValueError("restore %r min: integer 0-9999" % (restore_min,))
    r = str(restore_min)
    return ("S" + _delay_code(delay_min) + "R" + "0" * (4 - len(r)) + r + "\r").encode()


# ---------------------------------------------------------------------------------------------
# Mapping to NUT

def status_tokens(q):
    """Q1Status -> tuple of NUT ups.status tokens, in NUT's usual order.
    OL/OB from b7; LB from b6; b5 becomes TRIM, BYPASS or BOOST by output/input voltage ratio
    (BYPASS when a voltage is missing); CAL from b2; ALARM from b4 (UPS failed); OFF when the
    output reads below 10 V while the UPS answers. Shutdown-active (b1) is not a token: the
    server owns FSD; read q.shutdown_active."""
    out = ["OB" if q.bits & B_UTILITY_FAIL else "OL"]
    if q.bits & B_BATTERY_LOW:
        out.append("LB")
    if q.bits & B_AVR:
        vi = q.vin
        vo = q.vout
        if vi and vo is not None and vi > 0:
            r = vo / vi
            if r < 0.5:
                pass  # output collapsed: OFF below says so when it applies
            elif r < 0.95:
                out.append("TRIM")
            elif r < 1.05:
                out.append("BYPASS")
            elif r < 1.5:
                out.append("BOOST")
        else:
            out.append("BYPASS")
    if q.bits & B_TEST:
        out.append("CAL")
    if q.vout is not None and q.vout < 10:
        out.append("OFF")
    if q.bits & B_FAILED:
        out.append("ALARM")
    return tuple(out)


def battery_charge(vbat, nominal_v):
    """Rough charge % from battery voltage and the nominal pack voltage (from `F`): linear
    between 1.75 V/cell (empty, under load) and 2.15 V/cell (full, lead-acid), clamped 0..100.
    UPSes that report per-cell voltage (below a third of nominal) are scaled to the pack.
    None when either value is missing or nonsensical."""
    if vbat is None or not nominal_v or nominal_v < 2 or vbat <= 0:
        return None
    cells = nominal_v / 2
    per_cell = vbat if vbat * 3 < nominal_v else vbat / cells
    pct = (per_cell - 1.75) * 100 / 0.40
    if pct < 0:
        return 0
    if pct > 100:
        return 100
    return int(pct + 0.5)
