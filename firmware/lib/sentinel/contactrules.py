"""The contact rules' parser (sentinel.contacts.parse_rules imports it for a call and drops
it: rules are parsed at boot only, and its messages and code stay off the device heap)."""
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


_OL = const(0)   # contacts.STATUSES' indexes
_OB = const(1)


def parse(text, lines, statuses):
    """contacts.parse_rules's work: rule string -> (terms, used lines, derive) for its Rules;
    ValueError(position, message) for one that does not parse (it raises the ContactRuleError:
    no import back, no cycle)."""
    if not isinstance(text, str):
        raise ValueError(0, "rules must be a string")
    n = len(text)
    pos = 0
    terms = []
    used = 0
    seen = 0
    allowed = "/".join(statuses)

    def skip(p):
        while p < n and text[p] in " \t":
            p += 1
        return p

    while True:
        pos = skip(pos)
        if pos >= n:
            break
        if text[pos] == ";":
            pos += 1
            continue
        # status name
        start = pos
        while pos < n and (text[pos].isalpha() or text[pos] == "_"):
            pos += 1
        name = text[start:pos].upper()
        if not name:
            raise ValueError(start, "expected a status name (%s)" % allowed)
        if name not in statuses:
            raise ValueError(start, "unknown status %r; allowed: %s" % (name, allowed))
        si = statuses.index(name)
        if seen & (1 << si):
            raise ValueError(start, "status %s defined twice" % name)
        seen |= 1 << si
        pos = skip(pos)
        if pos >= n or text[pos] != "=":
            raise ValueError(pos, "expected '=' after %s" % name)
        pos += 1
        # expression: conj ('|' conj)*, conj: lit ('&' lit)*
        hi = 0
        lo = 0
        while True:
            pos = skip(pos)
            inv = False
            if pos < n and text[pos] == "^":
                inv = True
                pos = skip(pos + 1)
            start = pos
            while pos < n and "0" <= text[pos] <= "9":
                pos += 1
            if start == pos:
                raise ValueError(start, "expected a line number 0-%d%s" % (
                    lines - 1, "" if inv else " or '^'"))
            line = int(text[start:pos])
            if line >= lines:
                raise ValueError(start, "line %d out of range 0-%d" % (line, lines - 1))
            bit = 1 << line
            used |= bit
            if inv:
                lo |= bit
            else:
                hi |= bit
            pos = skip(pos)
            c = text[pos] if pos < n else ";"
            if c == "&":
                pos += 1
                continue
            if hi & lo:
                raise ValueError(pos, "%s requires a line both high and low" % name)
            terms.append((si, hi, lo))
            hi = 0
            lo = 0
            if c == "|":
                pos += 1
                continue
            if c == ";":
                pos += 1
                break
            raise ValueError(pos, "expected '&', '|' or ';' after a line number")
    derive = 0
    if seen & (1 << _OB) and not seen & (1 << _OL):
        derive = 1 + _OL
    elif seen & (1 << _OL) and not seen & (1 << _OB):
        derive = 1 + _OB
    return tuple(terms), used, derive
