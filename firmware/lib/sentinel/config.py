"""Configuration: validation against `sentinel.schema`, safe loading, atomic saving.

validate() is pure and runs identically under MicroPython and CPython (the host validates TOML
with it before sending JSON to the device). load() and save() use only `open`, `os.rename`,
`os.remove` and `json`, so they work on littlefs, FAT and the unix port's VfsPosix.
"""
import json
import os
import sys

from sentinel import passwd
from sentinel import schema

CONFIG_PATH = "/config.json"
GOOD_PATH = "/config.good.json"

# A waveform capture is held in RAM as int16: bound it so a config cannot exhaust the heap.
CAPTURE_MAX_SAMPLES = 8192

_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_USER_CHARS = _NAME_CHARS + "."
_DNS_CHARS = _NAME_CHARS.replace("_", "")
_HEXCH = "0123456789abcdefABCDEF"
_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false",
               "str": "a string", "section": "an object", "list": "a list", "enums": "a list",
               "names": "a list"}


def _show(v):
    """A value as the user wrote it, in JSON terms, the same text on both interpreters."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        s = "".join(ch if " " <= ch <= "~" else "?" for ch in v[:40])
        return '"%s"%s' % (s, "..." if len(v) > 40 else "")
    if isinstance(v, float):
        return "%g" % v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, (list, tuple)):
        return "a list"
    return "a value of another kind"


def _kind(v):
    if v is None:
        return "null"
    if type(v) is bool:  # MicroPython's bool is not an int subclass, CPython's is: test first
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, dict):
        return "section"
    if isinstance(v, (list, tuple)):
        return "list"
    return "other"


def _choices(c):
    return ", ".join(_show(x) for x in c)


def _range(f):
    return "%s..%s" % (_show(f["min"]), _show(f["max"]))


def _default(f):
    t = f["t"]
    if t == "section":
        return _section(f["f"], {}, "", None)
    if t == "list":
        return []
    if t == "enums" or t == "names":
        return list(f["d"])
    d = f["d"]
    return None if d == schema.REQUIRED else d


# ---- string formats -------------------------------------------------------------------------

def _all_in(s, chars):
    for ch in s:
        if ch not in chars:
            return False
    return True


def _ipv4_ok(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not _all_in(p, "0123456789") or (len(p) > 1 and p[0] == "0"):
            return False
        if int(p) > 255:
            return False
    return True


def _host_ok(s):
    labels = s.split(".")
    if _all_in(s, "0123456789."):
        return _ipv4_ok(s)
    for lab in labels:
        if not 1 <= len(lab) <= 63 or not _all_in(lab, _DNS_CHARS) or lab[0] == "-" or lab[-1] == "-":
            return False
    return True


def _contacts_err(s):
    """None if `s` is a valid contact rule string, else what is wrong."""
    seen = []
    for rule in s.split(";"):
        if not rule:
            continue
        if rule.count("=") != 1:
            return "rule %s is not SIGNAL=EXPR" % _show(rule)
        sig, expr = rule.split("=")
        if sig not in schema.CONTACT_SIGNALS:
            return "unknown signal %s (signals: %s)" % (_show(sig), ", ".join(schema.CONTACT_SIGNALS))
        if sig in seen:
            return "signal %s is defined twice" % sig
        seen.append(sig)
        for term in expr.replace("|", "&").split("&"):
            line = term[1:] if term.startswith("^") else term
            if not line or not _all_in(line, "0123456789") or int(line) > 31:
                return "%s: %s is not a line number 0..31 (optionally ^inverted)" % (sig, _show(term))
    return None


def _fmt(f, v):
    """(value, None) when the string `v` satisfies the field's format (value possibly
    normalised), else (None, message)."""
    fmt = f.get("fmt")
    if fmt == "name":
        if not _all_in(v, _NAME_CHARS):
            return None, "%s has characters outside [A-Za-z0-9_-]" % _show(v)
    elif fmt == "user":
        if not _all_in(v, _USER_CHARS):
            return None, "%s has characters outside [A-Za-z0-9_.-]" % _show(v)
    elif fmt == "text":
        for ch in v:
            if not " " <= ch <= "~":
                return None, "%s has characters that are not printable ASCII" % _show(v)
    elif fmt == "ipv4":
        if not _ipv4_ok(v):
            return None, "%s is not an IPv4 address like 192.168.1.255" % _show(v)
    elif fmt == "host":
        if not _host_ok(v):
            return None, "%s is not an IPv4 address or a DNS name" % _show(v)
    elif fmt == "mac":
        sep = v[2:3]
        parts = v.split(sep) if sep in (":", "-") else ()
        if len(parts) != 6 or not all(len(p) == 2 and _all_in(p, _HEXCH) for p in parts):
            return None, "%s is not a MAC address like aa:bb:cc:dd:ee:ff" % _show(v)
        first = int(parts[0], 16)
        if first & 1 or v.replace(sep, "") == "000000000000":
            return None, "%s is a multicast or null address, not a network card's" % _show(v)
        return ":".join(parts).lower(), None
    elif fmt == "health":
        if v in ("nut", "none"):
            return v, None
        port = v[4:] if v.startswith("tcp:") else ""
        if not port or not _all_in(port, "0123456789") or not 1 <= int(port) <= 65535:
            return None, "%s is not a health check; allowed: nut, none, tcp:<port 1..65535>" % _show(v)
    elif fmt == "contacts":
        err = _contacts_err(v)
        if err:
            return None, err
    elif fmt == "pwhash":
        if passwd.parse(v) is None:
            return None, ("is not a password hash sha256$<salt>$<64 hex>; plaintext passwords are "
                          "never stored on the device (the host tool hashes them)")
    return v, None


# ---- the tree walk --------------------------------------------------------------------------

def _number(f, v, k):
    """`v` as the field's number type when it is one (60.0 -> 60 for an int field, 60 -> 60.0
    for a float field), else None."""
    if k == "int" and f["t"] == "float":
        return float(v)
    if k == "float" and f["t"] == "int" and v == int(v):
        return int(v)
    return v if k == f["t"] else None


def _value(f, v, path, errors):
    """The checked value of field `f`, or its default after recording an error."""
    t = f["t"]
    k = _kind(v)
    if k == "null" and f.get("null"):
        return None
    if t == "enum":
        if k == "float" and v == int(v):
            k = "int"
        for c in f["c"]:
            if _kind(c) == k and c == v:
                return c
        errors.append("%s: %s is not allowed; allowed: %s" % (path, _show(v), _choices(f["c"])))
        return _default(f)
    if t in ("int", "float"):
        n = _number(f, v, k) if k in ("int", "float") else None
        if n is None:
            errors.append("%s: must be %s, got %s; allowed %s%s" % (
                path, _TYPE_NAMES[t], _show(v), _range(f), " or null" if f.get("null") else ""))
            return _default(f)
        if not f["min"] <= n <= f["max"]:
            errors.append("%s: %s is out of range; allowed %s" % (path, _show(v), _range(f)))
            return _default(f)
        return n
    if k != t and not ((t == "enums" or t == "names") and k == "list"):
        errors.append("%s: must be %s, got %s%s" % (
            path, _TYPE_NAMES[t], _show(v), " or null" if f.get("null") else ""))
        return _default(f)
    if t == "str":
        if not f["min"] <= len(v) <= f["max"]:
            errors.append("%s: %s has %d characters; allowed %d..%d" % (path, _show(v), len(v), f["min"], f["max"]))
            return _default(f)
        nv, err = _fmt(f, v)
        if err:
            errors.append("%s: %s" % (path, err))
            return _default(f)
        return nv
    if t == "enums":
        out = []
        for i, x in enumerate(v):
            if _kind(x) != "str" or x not in f["c"]:
                errors.append("%s[%d]: %s is not allowed; allowed: %s" % (path, i, _show(x), _choices(f["c"])))
            elif x in out:
                errors.append("%s[%d]: %s is listed twice" % (path, i, _show(x)))
            else:
                out.append(x)
        return out
    if t == "names":
        if not f["min"] <= len(v) <= f["max"]:
            errors.append("%s: has %d items; allowed %d..%d" % (path, len(v), f["min"], f["max"]))
        out = []
        for i, x in enumerate(v):
            if _kind(x) != "str" or not 1 <= len(x) <= 8 or not _all_in(x, _NAME_CHARS):
                errors.append("%s[%d]: %s is not a name of 1..8 characters [A-Za-z0-9_-]"
                              % (path, i, _show(x)))
            elif x in out:
                errors.append("%s[%d]: %s is listed twice" % (path, i, _show(x)))
            else:
                out.append(x)
        return out
    if t == "section":
        return _section(f["f"], v, path + ".", errors)
    if t == "list":
        if not f["min"] <= len(v) <= f["max"]:
            errors.append("%s: has %d items; allowed %d..%d" % (path, len(v), f["min"], f["max"]))
        out = []
        for i, item in enumerate(v[:f["max"]]):
            ip = "%s[%d]" % (path, i)
            if _kind(item) != "section":
                errors.append("%s: must be an object, got %s" % (ip, _show(item)))
                continue
            out.append(_section(f["f"], item, ip + ".", errors))
        return out
    return v  # bool


def _section(fields, obj, prefix, errors):
    out = {}
    for f in fields:
        k = f["k"]
        if k in obj:
            out[k] = _value(f, obj[k], prefix + k, errors)
        elif f.get("d") == schema.REQUIRED:
            if errors is not None:
                errors.append("%s: required key missing (%s)" % (prefix + k, f["doc"]))
            out[k] = None
        else:
            out[k] = _default(f)
    if errors is not None:
        for k in sorted(obj):
            if k not in out:
                errors.append("%s: unknown key; allowed keys: %s" % (
                    prefix + str(k) if isinstance(k, str) else prefix + "?",
                    ", ".join(f["k"] for f in fields)))
    return out


# ---- checks that involve several fields -----------------------------------------------------

def _unique(items, key, path_fmt, what, errors):
    seen = {}
    for i, it in enumerate(items):
        v = it.get(key)
        if v is None:
            continue
        here = path_fmt(i)
        if v in seen:
            errors.append("%s.%s: %s is already used by %s; %s must be unique" % (
                here, key, _show(v), seen[v], what))
        else:
            seen[v] = here


def _cross(cfg, errors):
    m = cfg["mains"]
    h = m["hysteresis_pct"]
    if m["dip_pct"] + h >= 100:
        errors.append("mains.hysteresis_pct: dip_pct + hysteresis_pct = %s must be below 100, or a dip "
                      "could not end at nominal voltage" % _show(m["dip_pct"] + h))
    if m["swell_pct"] - h <= 100:
        errors.append("mains.hysteresis_pct: swell_pct - hysteresis_pct = %s must be above 100, or a "
                      "swell could not end at nominal voltage" % _show(m["swell_pct"] - h))
    if m["interruption_pct"] + h >= m["dip_pct"]:
        errors.append("mains.interruption_pct: interruption_pct + hysteresis_pct = %s must be below "
                      "dip_pct (%s)" % (_show(m["interruption_pct"] + h), _show(m["dip_pct"])))
    n = m["sample_rate"] * (m["capture_pre_ms"] + m["capture_post_ms"]) // 1000
    if n > CAPTURE_MAX_SAMPLES:
        errors.append("mains.capture_post_ms: capture_pre_ms + capture_post_ms at sample_rate %d needs %d "
                      "samples; at most %d fit in RAM" % (m["sample_rate"], n, CAPTURE_MAX_SAMPLES))
    u = cfg["ups"]
    if u["link"] == "contacts":
        rules = u["contacts"]
        if "OB=" not in rules and "OL=" not in rules:
            errors.append("ups.contacts: link is \"contacts\" but no OB or OL rule is given; allowed: "
                          "e.g. \"OB=1;LB=2;\"")

    users = cfg["nut"]["users"]
    _unique(users, "name", lambda i: "nut.users[%d]" % i, "user names", errors)
    for i, us in enumerate(users):
        stored = us.get("password")
        if stored is None or passwd.parse(stored) is None:
            continue
        for weak in passwd.WEAK + ((us["name"],) if us.get("name") else ()):
            if passwd.check_password(stored, weak):
                errors.append("nut.users[%d].password: is the hash of an empty, default or easily "
                              "guessed password (%s); choose another" % (i, "empty" if weak == "" else _show(weak)))
                break

    tiers = cfg["tiers"]
    _unique(tiers, "name", lambda i: "tiers[%d]" % i, "tier names", errors)
    hosts = []
    paths = []
    for ti, t in enumerate(tiers):
        for hi, hst in enumerate(t.get("hosts") or ()):
            hosts.append(hst)
            paths.append("tiers[%d].hosts[%d]" % (ti, hi))
    for ti, t in enumerate(tiers):
        if t.get("confirm_off"):
            for hi, hst in enumerate(t.get("hosts") or ()):
                if not str(hst.get("health") or "nut").startswith("tcp:"):
                    errors.append("tiers[%d].hosts[%d].health: tier %s has confirm_off, which "
                                  "proves a server off by its tcp check failing; health is %s, "
                                  "allowed: tcp:<port>" % (ti, hi, t.get("name"),
                                                          _show(hst.get("health") or "nut")))
    pf = lambda i: paths[i]  # noqa: E731
    _unique(hosts, "name", pf, "host names", errors)
    _unique(hosts, "address", pf, "host addresses", errors)
    _unique(hosts, "mac", pf, "MAC addresses", errors)
    errors.extend(schema.feeds_errors(cfg))
    errors.extend(schema.ups_feeds_errors(cfg))
    errors.extend(schema.alerts_errors(cfg))
    errors.extend(schema.pair_errors(cfg))
    # a channel pin is checked against this port's ADC inputs (host, unix: any supported port)
    errors.extend(schema.mains_errors(cfg, sys.platform))
    # a UPS's contact and output lines against this port's board (host, unix: not checked)
    errors.extend(schema.board_lines_errors(cfg, sys.platform))


def validate(obj):
    """(cfg, errors): `cfg` is `obj` with defaults filled in and values normalised (MAC
    addresses lower-case with colons, numbers as the schema's type); an invalid value is replaced
    by its default. `errors` lists "path: what is wrong; what is allowed" lines, in schema order;
    the configuration may be used only when it is empty."""
    errors = []
    if _kind(obj) != "section":
        errors.append("(top): must be an object, got %s" % _show(obj))
        obj = {}
    cfg = _section(schema.SCHEMA, obj, "", errors)
    _cross(cfg, errors)
    return cfg, errors


def defaults():
    """The safe configuration the board runs when no valid file exists."""
    return validate({})[0]


# ---- files ----------------------------------------------------------------------------------

def _read(path):
    """(obj, None) or (None, message)."""
    try:
        f = open(path)
    except OSError:
        return None, "%s: missing or unreadable" % path
    try:
        # parsed from the stream: no contiguous buffer the size of the file on a fragmented heap
        return json.load(f), None
    except ValueError:
        return None, "%s: not valid JSON" % path
    except OSError:
        return None, "%s: missing or unreadable" % path
    finally:
        f.close()


def _load_one(path, errors):
    obj, err = _read(path)
    if err:
        errors.append(err)
        return None
    cfg, errs = validate(obj)
    if errs:
        for e in errs:
            errors.append("%s: %s" % (path, e))
        return None
    return cfg


def load(path=CONFIG_PATH, fallback_path=GOOD_PATH):
    """(cfg, errors, source). Never raises for a bad or missing file: it returns the
    configuration at `path` if valid, else the last good copy at `fallback_path`, else the safe
    defaults; source is "config", "fallback" or "defaults"; errors says what was wrong with the
    files passed over (report them: the board is running on something else than asked)."""
    errors = []
    cfg = _load_one(path, errors)
    if cfg is not None:
        return cfg, errors, "config"
    if fallback_path:
        cfg = _load_one(fallback_path, errors)
        if cfg is not None:
            return cfg, errors, "fallback"
    return defaults(), errors, "defaults"


def _replace(src, dst):
    try:
        os.rename(src, dst)  # atomic over an existing file on littlefs and POSIX
    except OSError:
        # FAT refuses to rename over an existing file: not atomic, but load() then falls back
        try:
            os.remove(dst)
        except OSError:
            pass
        os.rename(src, dst)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def save(obj, path=CONFIG_PATH, fallback_path=GOOD_PATH, opener=open):
    """Validate `obj` and, only if it is valid, write it (with defaults filled in) to `path`
    atomically: a temporary file is written and closed, then renamed over the old file. The
    previous file, if it was valid, becomes `fallback_path`. Returns the error list (empty on
    success). `opener` lets tests simulate a power cut during the write."""
    cfg, errors = validate(obj)
    if errors:
        return errors
    tmp = path + ".tmp"
    f = opener(tmp, "w")
    try:
        json.dump(cfg, f)  # streamed in small writes
        f.flush()
        try:
            os.fsync(f.fileno())  # CPython; MicroPython's close() commits the file
        except (AttributeError, OSError):
            pass
    finally:
        f.close()
    back, err = _read(tmp)
    if err or validate(back)[1]:
        # compared by validity, not equality: floats need not round-trip exactly on
        # single-precision ports
        return ["%s: written file does not read back as a valid configuration; old configuration kept" % tmp]
    if fallback_path and _exists(path):
        errs = []
        if _load_one(path, errs) is not None:
            # path is missing only between these two renames; load() then uses the good copy
            _replace(path, fallback_path)
    _replace(tmp, path)
    return []
