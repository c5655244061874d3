"""The site file: a human-written TOML file -> the device's JSON configuration, and back.

The TOML file has the same sections and keys as the device JSON (firmware/lib/sentinel/schema.py,
docs/configuration.md) with one difference: a NUT user gives `password` in plaintext, which
this module hashes (sentinel.passwd.hash_password) so that no plaintext ever reaches the board;
a hash pulled from a board is written back as `password_hash`. The NUT server's TLS certificate
and key are named as PEM files (`nut.tls_cert_file`, `nut.tls_key_file`, relative to the site
file), checked by tlscert.py and sent as the DER in base64 the device keys nut.tls_cert and
nut.tls_key hold; the key is never shown in a diff.

Checking is done by the firmware's own validator (sentinel.config.validate, imported through
powersentinel.paths.use_firmware_lib()), so the host accepts exactly what the device accepts;
its error paths ("tiers[1].hosts[0].mac") are mapped back to the line of the TOML file that set
them.

Pushing: the JSON text goes up in config_put_chunk frames, then config_put_commit checks its
length and SHA-256, validates it and installs it atomically on the board; an upload cut short
leaves the previous configuration in force.
"""
import hashlib
import json
import os
import re
import time

from . import tlscert
from .errors import PowerSentinelError
from .link import LinkError
from .paths import use_firmware_lib

use_firmware_lib()
from sentinel import config as fwconfig  # noqa: E402
from sentinel import console, passwd, schema  # noqa: E402

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 only
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None

CHUNK_CHARS = 2048      # the device's limit per config_put_chunk
FRAME_BUDGET = 3900     # the device refuses request lines over console.MAX_LINE (4096) bytes


class SiteConfigError(PowerSentinelError):
    """A site file that cannot be used; `problems` holds one Problem per thing wrong."""

    def __init__(self, msg, problems=()):
        Exception.__init__(self, msg)
        self.problems = list(problems)


class ConfigPushError(PowerSentinelError):
    """The board did not take the configuration (its own message is included)."""


class Problem:
    def __init__(self, file, line, path, message):
        self.file, self.line, self.path, self.message = file, line, path, message

    def __str__(self):
        where = "%s:%d" % (self.file, self.line) if self.line else self.file
        return "%s: %s: %s" % (where, self.path, self.message) if self.path else \
            "%s: %s" % (where, self.message)

    def __repr__(self):
        return "Problem(%r)" % str(self)


# ---- where each key is written ----------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


class _Scanner:
    """Finds the line of every key (and array item) in a TOML text that tomllib accepted.
    Paths are tuples of key names and item indices: ("tiers", 1, "hosts", 0, "mac")."""

    def __init__(self, text):
        self.s = text
        self.i = 0
        self.line = 1
        self.lines = {}
        self.aot = {}    # array-of-tables path -> items so far

    def put(self, path, line=None):
        self.lines.setdefault(tuple(path), line or self.line)

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def ws(self, newlines=False):
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            elif c == "\n" and newlines:
                self.line += 1
                self.i += 1
            else:
                return

    def string(self):
        s = self.s
        q = s[self.i]
        triple = s.startswith(q * 3, self.i)
        self.i += 3 if triple else 1
        out = []
        while self.i < len(s):
            c = s[self.i]
            if c == "\n":
                self.line += 1
            if c == "\\" and q == '"':
                out.append(s[self.i:self.i + 2])
                self.i += 2
                continue
            if triple and s.startswith(q * 3, self.i):
                self.i += 3
                while self.i < len(s) and s[self.i] == q:  # up to two quotes may close it
                    self.i += 1
                return "".join(out)
            if not triple and c == q:
                self.i += 1
                return "".join(out)
            out.append(c)
            self.i += 1
        return "".join(out)

    def key(self):
        parts = []
        while True:
            self.ws()
            c = self.peek()
            if c in "\"'":
                parts.append(self.string())
            else:
                m = _BARE.match(self.s, self.i)
                if not m:
                    break
                parts.append(m.group())
                self.i = m.end()
            self.ws()
            if self.peek() != ".":
                break
            self.i += 1
        return parts

    def resolve(self, parts):
        """Header key parts -> path, entering the newest item of arrays of tables."""
        path = []
        for p in parts:
            path.append(p)
            if tuple(path) in self.aot:
                path.append(self.aot[tuple(path)] - 1)
        return path

    def value(self, path):
        c = self.peek()
        if c in "\"'":
            self.string()
        elif c == "[":
            self.i += 1
            idx = 0
            while True:
                self.ws(newlines=True)
                c = self.peek()
                if c == "]" or not c:
                    self.i += 1
                    return
                if c == ",":
                    self.i += 1
                    idx += 1
                    continue
                self.put(path + [idx])
                self.value(path + [idx])
        elif c == "{":
            self.i += 1
            while True:
                self.ws(newlines=True)
                c = self.peek()
                if c == "}" or not c:
                    self.i += 1
                    return
                if c == ",":
                    self.i += 1
                    continue
                self.keyval(path)
        else:
            while self.i < len(self.s) and self.s[self.i] not in ",]}\n#":
                self.i += 1

    def keyval(self, table):
        line = self.line
        parts = self.key()
        for k in range(1, len(parts) + 1):
            self.put(table + parts[:k], line)
        self.ws()
        if self.peek() == "=":
            self.i += 1
        self.ws()
        self.value(table + parts)

    def scan(self):
        table = []
        s = self.s
        while self.i < len(s):
            self.ws(newlines=True)
            if self.i >= len(s):
                break
            if s[self.i] == "[":
                aot = s.startswith("[[", self.i)
                self.i += 2 if aot else 1
                parts = self.key()
                self.i += 2 if aot else 1
                if aot:
                    base = self.resolve(parts[:-1]) + parts[-1:]
                    n = self.aot.get(tuple(base), 0)
                    self.aot[tuple(base)] = n + 1
                    for k in range(1, len(base) + 1):
                        self.put(base[:k])
                    table = base + [n]
                else:
                    table = self.resolve(parts)
                self.put(table)
            else:
                self.keyval(table)
            # the rest of the line (a comment) up to the newline
            self.ws()
            while self.i < len(s) and s[self.i] != "\n":
                self.i += 1
        return self.lines


def key_lines(text):
    """{path tuple: line number} for every key and array item of a valid TOML text."""
    try:
        return _Scanner(text).scan()
    except (IndexError, ValueError):  # never let line finding hide the real message
        return {}


def parse_path(p):
    """"tiers[1].hosts[0].mac" -> ("tiers", 1, "hosts", 0, "mac")."""
    out = []
    for part in p.split("."):
        m = re.match(r"^([^\[]*)((?:\[\d+\])*)$", part)
        if not m:
            out.append(part)
            continue
        if m.group(1):
            out.append(m.group(1))
        out.extend(int(x) for x in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(out)


def line_of(lines, path):
    """The line that sets `path`, or its nearest written ancestor; None when none is written."""
    path = tuple(path)
    while path:
        for cand in (path, path[:-1] + ("password_hash",) if path[-1] == "password" else None):
            if cand and cand in lines:
                return lines[cand]
        path = path[:-1]
    return None


# ---- TOML -> device JSON ----------------------------------------------------------------------

def read_toml(path):
    """(document dict, text). SiteConfigError for a missing, unreadable or malformed file."""
    if tomllib is None:
        raise SiteConfigError("reading TOML on Python 3.10 needs the tomli package "
                              "(pip install tomli)")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SiteConfigError("%s: no such file" % path)
    except OSError as e:
        raise SiteConfigError("%s: cannot read: %s" % (path, e.strerror or e))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SiteConfigError("%s: not UTF-8 text (byte %d)" % (path, e.start))
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            where = "%s:%s:%s" % (path, m.group(1), m.group(2))
            msg = msg[:m.start()].strip()
        else:
            where = path
        raise SiteConfigError("%s: not valid TOML: %s" % (where, msg))
    return doc, text


def _users(doc, existing, problems, fname, lines):
    """Replace plaintext passwords by hashes (reusing the board's hash when it already matches,
    so an unchanged password is not shown as changed) and password_hash by password."""
    nut = doc.get("nut")
    if not isinstance(nut, dict) or not isinstance(nut.get("users"), list):
        return set()
    old = {}
    for u in ((existing or {}).get("nut") or {}).get("users") or ():
        if isinstance(u, dict) and isinstance(u.get("name"), str):
            old[u["name"]] = u.get("password")
    plain = set()
    for i, u in enumerate(nut["users"]):
        if not isinstance(u, dict):
            continue
        here = ("nut", "users", i)
        if "password" in u and "password_hash" in u:
            problems.append(Problem(fname, line_of(lines, here + ("password_hash",)),
                                    "nut.users[%d]" % i, "give either password (plaintext, "
                                    "hashed by this tool) or password_hash, not both"))
            del u["password_hash"]
        if "password_hash" in u:
            u["password"] = u.pop("password_hash")
            continue
        pw = u.get("password")
        if not isinstance(pw, str):
            continue  # the validator says what is wrong with it
        if passwd.parse(pw) is not None:
            problems.append(Problem(fname, line_of(lines, here + ("password",)),
                                    "nut.users[%d].password" % i,
                                    "looks like a password hash; write a hash as password_hash "
                                    "and a plaintext password as password"))
            continue
        if any(not " " <= ch <= "~" for ch in pw) or '"' in pw or "\\" in pw or " " in pw:
            problems.append(Problem(fname, line_of(lines, here + ("password",)),
                                    "nut.users[%d].password" % i,
                                    "must be printable ASCII without spaces, quotes or "
                                    "backslashes (upsmon.conf cannot carry them reliably)"))
            continue
        prev = old.get(u.get("name"))
        u["password"] = prev if prev and passwd.check_password(prev, pw) else passwd.hash_password(pw)
        plain.add(i)
    return plain


_TLS_FILES = (("tls_cert_file", "tls_cert"), ("tls_key_file", "tls_key"))


def _tls_files(doc, problems, fname, lines):
    """nut.tls_cert_file / tls_key_file (PEM paths, relative to the site file) -> nut.tls_cert
    / tls_key (DER in base64), checked as a pair by tlscert.load_pair."""
    nut = doc.get("nut")
    if not isinstance(nut, dict) or not any(f in nut for f, _ in _TLS_FILES):
        return
    where = ("nut", "tls_cert_file")
    paths = []
    for f, k in _TLS_FILES:
        v = nut.pop(f, None)
        if k in nut:
            problems.append(Problem(fname, line_of(lines, ("nut", f)), "nut." + f,
                                    "give either %s (a PEM file) or %s (base64 DER), not both"
                                    % (f, k)))
            return
        if not isinstance(v, str) or not v:
            problems.append(Problem(fname, line_of(lines, where), "nut." + f,
                                    "TLS needs both tls_cert_file and tls_key_file (PEM file "
                                    "paths)"))
            return
        base = os.path.dirname(os.path.abspath(fname)) if os.path.exists(fname) else os.getcwd()
        paths.append(os.path.join(base, os.path.expanduser(v)))
    try:
        nut["tls_cert"], nut["tls_key"] = tlscert.load_pair(paths[0], paths[1])
    except tlscert.TlsCertError as e:
        problems.append(Problem(fname, line_of(lines, where), "nut.tls_cert_file", str(e)))


def convert(doc, existing=None, fname="<site>", lines=None):
    """(device config with defaults filled in, [Problem]) for a parsed TOML document.
    `existing` is the board's current config: matching password hashes are kept."""
    lines = lines or {}
    problems = []
    doc = _copy(doc)
    plain = _users(doc, existing, problems, fname, lines)
    _tls_files(doc, problems, fname, lines)
    cfg, errors = fwconfig.validate(doc)
    for e in errors:
        path, _, msg = e.partition(": ")
        pt = parse_path(path) if path != "(top)" else ()
        if len(pt) >= 4 and pt[:2] == ("nut", "users") and pt[2] in plain and pt[3] == "password":
            msg = msg.replace("is the hash of an", "is an")
        problems.append(Problem(fname, line_of(lines, pt), path, msg))
    problems.sort(key=lambda p: (p.line or 0))
    return cfg, problems


def _copy(v):
    # TOML dates and times are kept as objects (the validator reports them as the wrong kind)
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def load(path, existing=None):
    """The device config for the site file at `path`. Raises SiteConfigError listing every
    problem (file:line: key path: what is wrong; what is allowed)."""
    doc, text = read_toml(path)
    cfg, problems = convert(doc, existing, path, key_lines(text))
    if problems:
        raise SiteConfigError("%s: %d problem%s" % (path, len(problems),
                                                     "" if len(problems) == 1 else "s"), problems)
    return cfg


def board_line_warnings(cfg, path):
    """[Problem] for each contact or output line a UPS uses that no real board wires: rp2 and
    esp32 boards refuse such a config (schema.BOARD_LINES), the virtual board's header has
    the line. Warnings, not errors: the host cannot tell which board the file is for."""
    ins = min(n[0] for n in schema.BOARD_LINES.values())
    outs = min(n[1] for n in schema.BOARD_LINES.values())
    uses = schema.board_line_uses(cfg, ins, outs)
    if not uses:
        return []
    lines = key_lines(read_toml(path)[1])
    return [Problem(path, line_of(lines, parse_path(where)), where,
                    "%s line %d is wired only on the virtual board; rp2 and esp32 boards have "
                    "%s and refuse this config" % (kind, line, schema.line_range(
                        ins if kind == "contact" else outs)))
            for where, line, kind in uses]


# ---- device JSON -> TOML ----------------------------------------------------------------------

def _tv(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes are valid in TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_tv(x) for x in v) + "]"
    raise ValueError("cannot write %r as TOML" % (v,))


def _emit(out, fields, obj, header, user=False):
    scalars = [f for f in fields if f["t"] not in ("section", "list")]
    out.append(header)
    for f in scalars:
        v = obj.get(f["k"])
        if v is None:
            continue  # null means "not used", which is also the default of every nullable key
        k = "password_hash" if user and f["k"] == "password" else f["k"]
        out.append("%s = %s" % (k, _tv(v)))
    out.append("")


def _emit_tree(out, fields, obj, path, header):
    """A table's scalars, then its sub-tables ([path.sub]) and arrays of tables
    ([[path.list]]), recursively, in schema order: every key the schema has, so that a pulled
    file pushed back changes nothing."""
    _emit(out, fields, obj, header, user=fields is schema.NUT_USER)
    for f in fields:
        sub = "%s.%s" % (path, f["k"])
        if f["t"] == "section":
            _emit_tree(out, f["f"], obj.get(f["k"]) or {}, sub, "[%s]" % sub)
        elif f["t"] == "list":
            for item in obj.get(f["k"]) or ():
                _emit_tree(out, f["f"], item, sub, "[[%s]]" % sub)


def to_toml(cfg, source=None):
    """A site file for a device config (passwords stay hashed, as password_hash)."""
    out = ["# Power Sentinel site file%s." % (" pulled from a board (%s)" % source if source else ""),
           "# Keys: docs/configuration.md; push with `powersentinel config push FILE`.",
           "version = %d" % cfg.get("version", schema.VERSION), ""]
    for f in schema.SCHEMA:
        k = f["k"]
        if f["t"] == "section":
            _emit_tree(out, f["f"], cfg.get(k) or {}, k, "[%s]  # %s" % (k, f["doc"]))
        elif f["t"] == "list":
            for item in cfg.get(k) or ():
                _emit_tree(out, f["f"], item, k, "[[%s]]" % k)
    return "\n".join(out)


# ---- what a push changes ----------------------------------------------------------------------

def _label(item, i):
    return item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else str(i)


def _show(v):
    return json.dumps(v)


_HIDDEN = ("password", "tls_cert", "tls_key")  # shown as "changed": secrets, or base64 blobs


def diff(old, new, path=""):
    """Lines describing what `new` changes against `old`: "~ path: old -> new", "+ path ...",
    "- path ...". Password and TLS key and certificate values are never shown. List items with a name are matched by name
    (tiers[apps].hosts[web1].mac) and a change of tier order is reported."""
    out = []
    if isinstance(old, dict) and isinstance(new, dict):
        # in the order of `new` (the host's, schema order): the board's JSON order is arbitrary
        for k in list(new) + [k for k in old if k not in new]:
            p = "%s.%s" % (path, k) if path else k
            if k not in new:
                out.append("- %s" % p)
            elif k not in old:
                scalar = not isinstance(new[k], (dict, list)) and k not in _HIDDEN
                out.append("+ %s%s" % (p, ": " + _show(new[k]) if scalar else ""))
            elif k in _HIDDEN:
                if old[k] != new[k]:
                    out.append("~ %s: changed" % p)
            else:
                out += diff(old[k], new[k], p)
        return out
    if isinstance(old, list) and isinstance(new, list) and \
            all(isinstance(x, dict) for x in old + new) and (old or new):
        on = [_label(x, i) for i, x in enumerate(old)]
        nn = [_label(x, i) for i, x in enumerate(new)]
        for i, name in enumerate(nn):
            p = "%s[%s]" % (path, name)
            if name in on:
                out += diff(old[on.index(name)], new[i], p)
            else:
                out.append("+ %s" % p)
        for name in on:
            if name not in nn:
                out.append("- %s[%s]" % (path, name))
        common_old = [n for n in on if n in nn]
        common_new = [n for n in nn if n in on]
        if common_old != common_new:
            out.append("~ %s order: %s -> %s" % (path, ", ".join(common_old), ", ".join(common_new)))
        return out
    if old != new:
        out.append("~ %s: %s -> %s" % (path, _show(old), _show(new)))
    return out


# ---- talking to the board ---------------------------------------------------------------------

def fetch(link):
    """(config, source) from the board."""
    r = link.request("config_get")
    if not isinstance(r, dict) or not isinstance(r.get("config"), dict):
        raise ConfigPushError("the board sent a config_get reply of an unexpected shape")
    return r["config"], r.get("source")


def device_text(cfg):
    """The exact JSON text sent to the board (ASCII only, so characters = bytes)."""
    return json.dumps(cfg, separators=(",", ":"), ensure_ascii=True)


def _chunks(text):
    """(offset, piece) with each request frame under the device's line limit: JSON escaping
    of the quotes inside the text can make a 2048-character piece far longer on the wire."""
    off = 0
    while off < len(text):
        n = min(CHUNK_CHARS, len(text) - off)
        while len(console.encode({"id": 999999, "op": "config_put_chunk", "offset": off,
                                  "text": text[off:off + n]})) > FRAME_BUDGET:
            n = n * 3 // 4
        yield off, text[off:off + n]
        off += n


def upload(link, cfg, progress=None, attempts=2):
    """Send `cfg` and commit it. Returns the commit reply ({installed, changed}).
    A chunk whose reply is lost restarts the upload at offset 0 (which discards the
    unfinished one on the board), so a retry can never splice two uploads together."""
    text = device_text(cfg)
    digest = hashlib.sha256(text.encode()).hexdigest()
    for attempt in range(attempts):
        try:
            for off, piece in _chunks(text):
                r = link.request("config_put_chunk", offset=off, text=piece, retries=0)
                got = (r or {}).get("received")
                if got != off + len(piece):
                    raise ConfigPushError("the board acknowledged %r characters, expected %d"
                                          % (got, off + len(piece)))
                if progress:
                    progress(off + len(piece), len(text))
            break
        except LinkError as e:
            if attempt + 1 == attempts or "does not answer" not in str(e):
                raise
    r = link.request("config_put_commit", length=len(text), sha256=digest, timeout=15, retries=0)
    if not isinstance(r, dict) or not r.get("installed"):
        raise ConfigPushError("the board did not confirm the install (reply %r)" % (r,))
    return r


def wait_restart(link, uptime_before_ms, timeout=30.0):
    """After a commit the board applies the config by rebooting: wait until it answers with a
    smaller uptime. Returns its identify reply, or None if it did not restart in time."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        try:
            ident = link.request("identify", timeout=1.0, retries=0)
            booted = any(e.get("ev") == "boot" for e in link.events)
            if booted or (ident.get("uptime_ms") or 0) < \
                    uptime_before_ms + (time.monotonic() - t0) * 1000 - 500:
                return ident
        except LinkError:
            pass
        time.sleep(0.2)
    return None


def write_pulled(cfg, out_path=None, as_toml=False, source=None):
    text = to_toml(cfg, source) if as_toml else json.dumps(cfg, indent=1) + "\n"
    if out_path:
        tmp = out_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        if ((cfg.get("nut") or {}).get("tls_key")):
            os.chmod(tmp, 0o600)  # it holds the NUT server's TLS private key
        os.replace(tmp, out_path)
    return text
