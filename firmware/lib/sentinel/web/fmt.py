"""Small text helpers shared by the status page's parts (page, page1, page2) and the drill's
answer: HTML escaping, durations, record fields, definition lists. Pure."""


def esc(s):
    """Text for HTML element content and double-quoted attribute values."""
    s = str(s)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                 ("'", "&#39;")):
        if a in s:
            s = s.replace(a, b)
    return s


def dur(s):
    """Seconds as a short human duration: "45 s", "3 min 20 s", "2 h 05 min"."""
    if s is None:
        return "-"
    s = int(s)
    if s < 60:
        return "%d s" % s
    if s < 3600:
        return "%d min %02d s" % (s // 60, s % 60)
    return "%d h %02d min" % (s // 3600, s % 3600 // 60)


def kv(data, limit=110):
    """A record's fields as `k=v k=v`, cut at `limit` characters."""
    if not isinstance(data, dict):
        return str(data)
    out = ""
    for k in data:
        v = data[k]
        if k == "_t" or v is None:
            continue
        out += "%s=%s " % (k, v if not isinstance(v, float) else round(v, 2))
        if len(out) > limit:
            return out[:limit] + "..."
    return out.strip()


def dl(rows):
    """A definition list of (element id or None, label, value)."""
    out = "<dl>"
    for ident, name, value in rows:
        out += '<dt>%s</dt><dd%s>%s</dd>' % (name, ' id="%s"' % ident if ident else "",
                                             esc(value))
    return out + "</dl>"
