# NUT network protocol: request line splitting and exact reply formats, as upsd 2.8 speaks them.
# Pure and I/O-free; runs under MicroPython and CPython (the host's conformance tests and bench
# clients reuse it). The server (server.py) owns sockets, users and state.
#
# Splitting follows upsd's parser (common/parseconf.c) byte for byte, so replies to odd input
# match the real server: whitespace (CR included) separates words, "..." groups one word,
# backslash takes the next byte literally (also a newline: the line goes on), an unquoted '#'
# starts a comment, a '=' outside quotes is a word of its own, a '#' inside quotes is a parse
# error (the line is dropped without reply), at most 32 words count. Bytes outside printable
# ASCII (0x20..0x7E) are discarded, which is how upsd answered CVE-2012-2944 (upsd 2.8.0 keeps
# 0x7F; we drop it too). Deviation: upsd truncates words at 512 bytes and keeps going; we bound
# the whole line's kept bytes at `maxline` and answer ERR TOO-LONG, and a logical line of more
# than `maxraw` raw bytes (comments, discarded bytes, whitespace included) is abuse: the server
# drops the client.

from array import array

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


VERSION_LINE = "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"
NUT_VERSION = "2.8.0"
NETVER = "1.3"
# upsd 2.8.0's exact text (it does not list PROTVER, though it answers it).
HELP_LINE = "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"

# Error codes: small ints naming the word after "ERR " in _ERRS (one string constant; 23
# strings of 11 characters or more would be 23 heap objects for the board's life even from
# ROMFS). name(code) gives the word, as journal records keep it.
ACCESS_DENIED = const(0)
UNKNOWN_UPS = const(1)
VAR_NOT_SUPPORTED = const(2)
CMD_NOT_SUPPORTED = const(3)
INVALID_ARGUMENT = const(4)
INSTCMD_FAILED = const(5)
SET_FAILED = const(6)
READONLY = const(7)
TOO_LONG = const(8)
FEATURE_NOT_SUPPORTED = const(9)
FEATURE_NOT_CONFIGURED = const(10)
ALREADY_SSL_MODE = const(11)
DRIVER_NOT_CONNECTED = const(12)
DATA_STALE = const(13)
ALREADY_LOGGED_IN = const(14)
INVALID_PASSWORD = const(15)
ALREADY_SET_PASSWORD = const(16)
INVALID_USERNAME = const(17)
ALREADY_SET_USERNAME = const(18)
USERNAME_REQUIRED = const(19)
PASSWORD_REQUIRED = const(20)
UNKNOWN_COMMAND = const(21)
INVALID_VALUE = const(22)
_ERRS = (
    "ACCESS-DENIED UNKNOWN-UPS VAR-NOT-SUPPORTED CMD-NOT-SUPPORTED INVALID-ARGUMENT "
    "INSTCMD-FAILED SET-FAILED READONLY TOO-LONG FEATURE-NOT-SUPPORTED FEATURE-NOT-CONFIGURED "
    "ALREADY-SSL-MODE DRIVER-NOT-CONNECTED DATA-STALE ALREADY-LOGGED-IN INVALID-PASSWORD "
    "ALREADY-SET-PASSWORD INVALID-USERNAME ALREADY-SET-USERNAME USERNAME-REQUIRED "
    "PASSWORD-REQUIRED UNKNOWN-COMMAND INVALID-VALUE")

# LineParser.push() results.
MORE = const(0)  # line not complete yet
LINE = const(1)  # a line is complete: read .args() / .too_long
DROP = const(-1)  # parse error: the line is dropped, no reply (upsd does the same)
ABUSE = const(-2)  # line longer than maxraw: drop the client

MAX_ARGS = const(32)  # upsd's PCONF_DEFAULT_ARG_LIMIT
_BUF_START = const(64)  # a line buffer's first size: a line's words without their spaces
# (upsmon's longest line is ~60 bytes with them)

# Parser states (parseconf.c's, same meaning).
_FIND_WORD = const(0)
_FIND_EOL = const(1)
_QUOTE = const(2)
_QUOTE_LIT = const(3)
_WORD = const(4)
_WORD_LIT = const(5)
_SKIP_ERR = const(6)  # after a parse error: eat the rest of the physical line

_NL = const(10)
_HASH = const(35)
_QUOTE_CH = const(34)
_BSLASH = const(92)
_EQ = const(61)


def _space(c):
    # C isspace(): space, \t \n \v \f \r
    return c == 32 or 9 <= c <= 13


class LineParser:
    """Incremental splitter for one connection. Feed bytes with push(); on LINE, args() gives
    the words (str) unless too_long is set. Storage is one bytearray, _BUF_START bytes at first
    and grown (doubling) up to maxline by the first longer line: upsmon's lines are short, and
    a board serving 8-16 clients keeps 96 B per client instead of a full line buffer each. The
    bounds and too_long are class defaults, set on an instance only when they differ: a
    6-slot attribute table per client instead of a 9-slot one (device heap)."""
    maxline = 512
    maxraw = 2048
    too_long = False

    def __init__(self, maxline=512, maxraw=2048):
        if maxline != 512:
            self.maxline = maxline
        if maxraw != 2048:
            self.maxraw = maxraw
        self.buf = bytearray(min(maxline, _BUF_START))
        # end offset of each word in buf: 16-bit cells, 64 bytes instead of a 32-slot list
        self.ends = array("H", bytes(2 * MAX_ARGS))
        self.reset()

    def reset(self):
        self.n = 0  # bytes kept in buf
        self.nargs = 0
        self.state = _FIND_WORD
        if self.too_long:
            self.too_long = False
        self.raw = 0

    def _add(self, c):
        if c < 0x20 or c > 0x7E:
            return  # discarded, but the word has started (as in upsd)
        if self.n >= len(self.buf):
            if self.n >= self.maxline:
                self.too_long = True
                return
            b = bytearray(min(self.maxline, 2 * self.n))
            b[:self.n] = self.buf
            self.buf = b
        self.buf[self.n] = c
        self.n += 1

    def _end_word(self):
        if self.nargs >= MAX_ARGS:
            # upsd drops words past the limit; forget their bytes too
            self.n = self.ends[self.nargs - 1] if self.nargs else 0
            return
        self.ends[self.nargs] = self.n
        self.nargs += 1

    def args(self):
        out = []
        start = 0
        buf = self.buf
        for i in range(self.nargs):
            end = self.ends[i]
            out.append(bytes(buf[start:end]).decode())
            start = end
        return out

    def push(self, c):
        """Feed one byte (int). Returns MORE, LINE, DROP or ABUSE."""
        if self.state == -1:  # previous call completed a line
            self.reset()
        self.raw += 1
        if self.raw > self.maxraw:
            self.state = _SKIP_ERR
            return ABUSE
        st = self.state
        if st == _FIND_WORD:
            if c == _NL:
                return self._done()
            if c == _HASH:
                self.state = _FIND_EOL
            elif _space(c):
                pass
            elif c == _BSLASH:
                self.state = _WORD_LIT
            elif c == _QUOTE_CH:
                self.state = _QUOTE
            else:
                self._add(c)
                if c == _EQ:
                    self._end_word()
                else:
                    self.state = _WORD
        elif st == _WORD:
            if c == _HASH:
                self._end_word()
                self.state = _FIND_EOL
            elif c == _NL:
                self._end_word()
                return self._done()
            elif _space(c):
                self._end_word()
                self.state = _FIND_WORD
            elif c == _EQ:
                self._end_word()
                self._add(c)
                self._end_word()
                self.state = _FIND_WORD
            elif c == _BSLASH:
                self.state = _WORD_LIT
            else:
                self._add(c)
        elif st == _QUOTE:
            if c == _QUOTE_CH:
                self._end_word()
                self.state = _FIND_WORD
            elif c == _BSLASH:
                self.state = _QUOTE_LIT
            elif c == _HASH:
                # upsd 2.8.0: "Unbalanced word due to unescaped # in quotes"
                self.state = _SKIP_ERR
            else:
                self._add(c)  # a newline here is discarded: the quote spans lines
        elif st == _QUOTE_LIT:
            if c != _NL:
                self._add(c)
            self.state = _QUOTE
        elif st == _WORD_LIT:
            if c != _NL:
                self._add(c)
            self.state = _WORD
        elif st == _FIND_EOL:
            if c == _NL:
                return self._done()
        elif st == _SKIP_ERR:
            if c == _NL:
                self.state = -1
                return DROP
        return MORE

    def _done(self):
        self.state = -1
        return LINE


def split(line, maxline=512):
    """Split one complete request (str or bytes, newline optional) into words. Returns the list
    of words, None for a dropped line (parse error) or TOO_LONG. For tests and host tools."""
    p = LineParser(maxline, 1 << 30)
    if isinstance(line, str):
        line = line.encode()
    if not line.endswith(b"\n"):
        line = line + b"\n"
    for c in line:
        r = p.push(c)
        if r == LINE:
            return TOO_LONG if p.too_long else p.args()
        if r == DROP:
            return None
    return None  # unterminated quote / continuation: no complete line


# Reply side ---------------------------------------------------------------------------------


def encode(value):
    """Escape '#', '\\' and '"' with a backslash (pconf_encode); the caller adds the quotes."""
    s = str(value)
    if '"' not in s and "\\" not in s and "#" not in s:
        return s
    out = []
    for ch in s:
        if ch == '"' or ch == "\\" or ch == "#":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def name(code):
    """The NUT error word of `code` (one of the error constants above)."""
    i = 0
    for _ in range(code):
        i = _ERRS.index(" ", i) + 1
    j = _ERRS.find(" ", i)
    return _ERRS[i:] if j < 0 else _ERRS[i:j]


def err(code):
    return "ERR " + name(code) + "\n"


def ok(extra=None):
    return "OK\n" if extra is None else "OK " + extra + "\n"


def status_value(status, fsd):
    """ups.status as upsd reports it: with FSD latched, "FSD " is put before the driver's
    tokens ("FSD OB LB")."""
    return "FSD " + status if fsd else status


def var_line(ups, var, value, kind="VAR"):
    return '%s %s %s "%s"\n' % (kind, ups, var, encode(value))


def numlogins_line(ups, n):
    return "NUMLOGINS %s %d\n" % (ups, n)


def upsdesc_line(ups, desc):
    return 'UPSDESC %s "%s"\n' % (ups, encode(desc))


def type_line(ups, var, rw, kind):
    # kind: "NUMBER" or "STRING:n" (ENUM/RANGE flags are not used by this server)
    return "TYPE %s %s %s%s\n" % (ups, var, "RW " if rw else "", kind)


def desc_line(ups, var, desc, kind="DESC"):
    return '%s %s %s "%s"\n' % (kind, ups, var, desc or "Description unavailable")


def begin_list(query):
    return "BEGIN LIST " + query + "\n"


def end_list(query):
    return "END LIST " + query + "\n"


def ups_line(name, desc):
    return 'UPS %s "%s"\n' % (name, encode(desc) if desc else "Description unavailable")


def cmd_line(ups, cmd):
    return "CMD %s %s\n" % (ups, cmd)


def client_line(ups, addr):
    return "CLIENT %s %s\n" % (ups, addr)


def describe(name, cmd=False):
    """upsd's description of a variable (of an instant command with cmd=True), or None. The
    tables are in descs.py, imported for this call only and dropped again: GET DESC and GET
    CMDDESC are rare (upsmon never sends them), so the tables stay off the heap."""
    import sys

    from sentinel.nut import descs

    try:
        return (descs.CMD_DESC if cmd else descs.VAR_DESC).get(name.lower())
    finally:
        # both references: sys.modules and the package's attribute (set by the import)
        sys.modules.pop("sentinel.nut.descs", None)
        pkg = sys.modules.get("sentinel.nut")
        if pkg is not None and "descs" in pkg.__dict__:
            delattr(pkg, "descs")
