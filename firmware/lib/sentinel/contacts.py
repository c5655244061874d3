# Dry-contact ("dumb") UPS inputs: rule strings in the style of NUT's generic_gpio, and a
# debouncer.
#
# Rules: `STATUS=EXPR;STATUS=EXPR;...` e.g. `OL=^0;OB=0;LB=3;RB=1;` or `LB=3|4;DISCHRG=0&^6;`.
#   EXPR is literals joined by `&` (and) and `|` (or); `&` binds tighter than `|`; no brackets.
#   A literal is a line number (true while the debounced line is high, i.e. contact closed on
#   the board's convention) or `^` + line number (true while low). Spaces are ignored, the last
#   `;` is optional, names are case-insensitive.
# Compiled form: per status a tuple of (must_be_high_mask, must_be_low_mask) conjunctions, any
# one of which makes it true, so evaluation is a few integer ops with no allocation.
#
# When the rules give OB but not OL, OL is reported whenever OB is not (and vice versa), so the
# policy always sees one of the two, as with NUT's genericups.
from array import array

STATUSES = ("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF", "OVER",
            "TRIM", "BOOST")
_OL = 0
_OB = 1

_MASK30 = 0x3FFFFFFF  # ticks_ms() period on MicroPython is 2**30
_HALF30 = 0x20000000


def _elapsed(now, then):
    # Works for wrapping ticks_ms values and for plain monotonic ms alike, for gaps < 2**29 ms.
    return ((now - then + _HALF30) & _MASK30) - _HALF30


class ContactRuleError(ValueError):
    """A rule string that does not parse. `pos` is the 0-based character position."""

    def __init__(self, text, pos, msg):
        super().__init__("contact rules %r, position %d: %s" % (text, pos, msg))
        self.pos = pos


class Rules:
    """Compiled rules. eval(line_mask) -> status bitmask (bit i = STATUSES[i])."""

    def __init__(self, terms, used_lines, derive):
        self.terms = terms  # tuple of (status_index, hi_mask, lo_mask) conjunctions
        self.used_lines = used_lines
        self._derive = derive  # 0, or the status index to derive (OL from OB or OB from OL)
        self.defined = 0
        for t in terms:
            self.defined |= 1 << t[0]

    def eval(self, lines):
        out = 0
        terms = self.terms
        i = 0
        n = len(terms)
        while i < n:
            t = terms[i]
            if (lines & t[1]) == t[1] and (lines & t[2]) == 0:
                out |= 1 << t[0]
            i += 1
        d = self._derive
        if d:
            other = _OB if d == 1 + _OL else _OL
            if not (out & (1 << other)):
                out |= 1 << (d - 1)
        return out


def status_names(mask):
    """Status bitmask -> list of names in STATUSES order."""
    out = []
    for i in range(len(STATUSES)):
        if mask & (1 << i):
            out.append(STATUSES[i])
    return out


def parse_rules(text, lines=16):
    """Rule string -> Rules. `lines`: how many input lines the board has (line numbers must be
    below it). Raises ContactRuleError naming the position and what was expected there.
    The parser (sentinel.contactrules, its messages and code) is imported for the call and
    dropped after it: rules are parsed at boot only (device heap)."""
    from sentinel import contactrules
    from sentinel.runtime import drop_modules
    try:
        terms, used, derive = contactrules.parse(text, lines, STATUSES)
    except ValueError as e:
        raise ContactRuleError(str(text), e.args[0], e.args[1])
    finally:
        drop_modules(("contactrules",))
    return Rules(terms, used, derive)


class Debouncer:
    """Per-line debouncing of a polled line bitmask.

    update(raw_mask, now_ms): a line's stable level follows its raw level once the raw level has
    not changed for debounce_ms. An edge that comes sooner than debounce_ms after the previous
    edge on the same line counts as chatter. Until every line has been stable once, `ready` is
    False and `stable` is 0. Allocation-free after construction.
    """

    def __init__(self, lines, debounce_ms):
        self.lines = lines
        self.debounce_ms = debounce_ms
        self.raw = 0
        self.stable = 0
        self.ready = False
        self.chatter = array("I", [0] * lines)  # per line
        self._edge = array("i", [0] * lines)  # last raw edge, masked to 30 bits
        self._pending = 0  # lines whose raw level has not yet been stable for debounce_ms
        self._started = False

    def update(self, raw, now_ms):
        """Feed a sample; returns True when the stable mask changed (or became ready)."""
        t = now_ms & _MASK30
        lines = self.lines
        raw &= (1 << lines) - 1
        edge = self._edge
        if not self._started:
            self._started = True
            self.raw = raw
            self._pending = (1 << lines) - 1
            i = 0
            while i < lines:
                edge[i] = t
                i += 1
        changed = raw ^ self.raw
        db = self.debounce_ms
        if changed:
            i = 0
            while i < lines:
                if changed & (1 << i):
                    # Start-up settling is not chatter.
                    if self.ready and _elapsed(t, edge[i]) < db:
                        self.chatter[i] += 1
                    edge[i] = t
                i += 1
            self.raw = raw
            self._pending |= changed
        pend = self._pending
        if not pend:
            return False
        old = self.stable
        new = old
        i = 0
        while i < lines:
            bit = 1 << i
            if pend & bit and _elapsed(t, edge[i]) >= db:
                pend &= ~bit
                new = (new & ~bit) | (raw & bit)
            i += 1
        self._pending = pend
        became_ready = False
        if not self.ready:
            if pend:
                return False
            self.ready = True
            became_ready = True
        self.stable = new
        return became_ready or new != old

    def level(self, line):
        """Debounced level of one line: 0, 1, or None before the line has settled once."""
        if not self.ready:
            return None
        return (self.stable >> line) & 1


class ContactMonitor:
    """Rules + debouncer: feed raw line masks, read the active statuses."""

    def __init__(self, rules, lines, debounce_ms):
        self.rules = parse_rules(rules, lines) if isinstance(rules, str) else rules
        self.deb = Debouncer(lines, debounce_ms)
        self.status = 0  # status bitmask; 0 until the debouncer is ready

    def update(self, raw, now_ms):
        """Returns True when the status bitmask changed. Allocation-free."""
        if not self.deb.update(raw, now_ms):
            return False
        s = self.rules.eval(self.deb.stable)
        if s == self.status:
            return False
        self.status = s
        return True

    @property
    def ready(self):
        return self.deb.ready

    def has(self, name):
        return bool(self.status & (1 << STATUSES.index(name)))

    def statuses(self):
        """Active status names, e.g. ['OB', 'LB']; [] until the inputs have settled."""
        return status_names(self.status)

    def line_states(self):
        """[(line, stable level or None, raw level, chatter count)] for every line."""
        d = self.deb
        return [(i, d.level(i), (d.raw >> i) & 1, d.chatter[i]) for i in range(d.lines)]
