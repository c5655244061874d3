"""The status page: server-rendered HTML from the console's status (Ops.status()) and the last
journal records. No scripts, no external assets: it refreshes itself with
<meta http-equiv="refresh">, so it works with JavaScript disabled and from a phone on the LAN.

Elements a test or a scraper may rely on (stable): #state[data-state], #cause, #mains-v,
#mains-hz, #mains-supply, #ups-status, #ups-charge, #ups-runtime, #plan[data-mode],
.tier[data-tier][data-phase][data-fsd] holding .host.connected / .host.missing [data-host],
#alarms li, #events tr, #alerts, #records tr[data-type], form#drill.

Pure: render() yields the page in pieces, so it is never held whole in RAM.
"""
from sentinel.version import VERSION

CONTENT_TYPE = "text/html; charset=utf-8"

_CSS = (
    "*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,'Segoe UI',"
    "Roboto,'DejaVu Sans',sans-serif;background:#eef1f5;color:#1d2733}"
    "header{background:#1d2733;color:#fff;padding:14px 20px;display:flex;flex-wrap:wrap;"
    "align-items:center;gap:12px}header h1{font-size:20px;margin:0;font-weight:600}"
    "header .sub{color:#aeb9c7;font-size:13px}"
    "main{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:14px;"
    "padding:14px 20px}section{background:#fff;border-radius:8px;padding:12px 16px;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}section.wide{grid-column:1/-1}"
    "h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:#5b6b7e;"
    "margin:0 0 8px}dl{display:grid;grid-template-columns:auto 1fr;gap:4px 14px;margin:0}"
    "dt{color:#5b6b7e}dd{margin:0;font-weight:600}"
    ".big{font-size:26px;font-weight:700}"
    ".badge{display:inline-block;padding:3px 10px;border-radius:12px;font-weight:700;"
    "font-size:13px;background:#d9dee5;color:#1d2733}"
    ".s-ONLINE,.p-up,.p-done{background:#1f9d55;color:#fff}"
    ".s-ON_BATTERY,.p-fsd,.p-waiting,.p-waking{background:#f0a202;color:#1d2733}"
    ".s-SHUTTING_DOWN,.p-timeout{background:#d64545;color:#fff}"
    ".s-LOAD_OFF,.p-off{background:#6b2d5c;color:#fff}"
    ".s-WAIT_MAINS,.s-RESTORING{background:#2b6cb0;color:#fff}"
    "#state{font-size:16px;padding:5px 14px}"
    ".tiers{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:10px}"
    ".tier{border:1px solid #d9dee5;border-radius:6px;padding:8px 10px}"
    ".tier h3{margin:0 0 6px;font-size:15px;display:flex;justify-content:space-between;gap:6px}"
    ".tier ul{list-style:none;margin:0;padding:0}.host{padding:2px 0}"
    ".host:before{content:'';display:inline-block;width:9px;height:9px;border-radius:50%;"
    "margin-right:7px}.connected:before{background:#1f9d55}.missing:before{background:#d64545}"
    ".muted{color:#7a8899;font-weight:400;font-size:13px}"
    "table{border-collapse:collapse;width:100%;font-size:13px}"
    "td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef1f5;vertical-align:top}"
    "th{color:#5b6b7e;font-weight:600}"
    "#alarms ul{margin:0;padding-left:18px}.alarm{color:#b42323;font-weight:600}"
    ".warn{color:#9a6700}.ok{color:#1f7a45}"
    "form{display:flex;gap:8px;flex-wrap:wrap;align-items:center}"
    "button{font:inherit;padding:5px 12px;border-radius:6px;border:1px solid #8795a6;"
    "background:#f6f8fa;cursor:pointer}"
    "footer{padding:0 20px 16px;color:#5b6b7e;font-size:12px}footer a{color:#2b6cb0}"
)


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


def _kv(data, limit=110):
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


def _dl(rows):
    out = "<dl>"
    for ident, name, value in rows:
        out += '<dt>%s</dt><dd%s>%s</dd>' % (name, ' id="%s"' % ident if ident else "",
                                             esc(value))
    return out + "</dl>"


def alarms(st):
    """[(css class, text)]: what needs a person's eye now."""
    out = []
    u = st["ups"]
    if u.get("alarm"):
        out.append(("alarm", "UPS alarm: " + u["alarm"]))
    elif "ALARM" in u["status"].split():
        out.append(("alarm", "UPS reports an alarm"))
    m = st["mains"]
    if m["lost"]:
        out.append(("alarm", "Mains lost"))
    elif not m["good"]:
        out.append(("warn", "Mains out of tolerance"))
    if st["state"]["ponr"]:
        out.append(("alarm", "Point of no return passed: the shutdown runs to its end"))
    for t in st["tiers"]:
        mis = t["missing"]
        if mis:
            out.append(("warn", "Tier %s: %d of %d hosts not connected (%s)" % (
                t["name"], len(mis), len(mis) + len(t["connected"]),
                ", ".join(h["host"] for h in mis))))
        if t.get("unknown"):
            out.append(("warn", "Tier %s: clients not in the plan: %s"
                        % (t["name"], ", ".join(t["unknown"]))))
    if st["errors"]:
        out.append(("warn", "%d firmware hook failures since boot" % st["errors"]))
    return out


def render(st, site, refresh_s=10, records=(), note=None):
    """Yield the page for status dict `st` (Ops.status()); site: the configured name;
    records: the last journal records [(seq, epoch, ms, type, data)], newest last;
    note: (css class, text) shown at the top, or None."""
    s = st["state"]
    name = s["name"]
    yield ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">')
    if refresh_s:
        yield '<meta http-equiv="refresh" content="%d">' % refresh_s
    yield '<title>%s: %s - Power Sentinel</title><style>%s</style></head><body>' % (
        esc(site), esc(name), _CSS)
    yield ('<header><h1>%s</h1><span id="state" class="badge s-%s" data-state="%s">%s</span>'
           '<span class="sub">since: <span id="cause">%s</span>%s%s</span></header><main>') % (
        esc(site), esc(name), esc(name), esc(name.replace("_", " ")), esc(s["cause"]),
        " &middot; DRILL" if s["drill"] else "",
        " &middot; point of no return passed" if s["ponr"] else "")
    if note:
        yield '<section class="wide" id="note"><p class="%s">%s</p></section>' % (
            esc(note[0]), esc(note[1]))

    al = alarms(st)
    yield '<section class="wide" id="alarms"><h2>Alarms</h2>'
    if al:
        yield "<ul>" + "".join('<li class="%s">%s</li>' % (c, esc(t)) for c, t in al) + "</ul>"
    else:
        yield '<p class="ok">No alarms: mains good, every planned host connected.</p>'
    yield "</section>"

    m = st["mains"]
    supply = "lost" if m["lost"] else ("good" if m["good"] else "out of tolerance")
    yield '<section id="mains"><h2>Mains</h2><div class="big"><span id="mains-v">%.1f</span> V</div>' % m["v"]
    yield _dl((("mains-hz", "Frequency", "-" if m["hz"] is None else "%.2f Hz" % m["hz"]),
               ("mains-supply", "Supply", supply)))
    ev = m["events"]
    yield '<h2 style="margin-top:10px">Recent events</h2>'
    if ev:
        yield '<table id="events"><tr><th>kind</th><th>duration</th><th>level</th></tr>'
        for e in reversed(ev):
            yield '<tr data-kind="%s"><td>%s</td><td>%s ms</td><td>%s%% (%s V)</td></tr>' % (
                esc(e["type"]), esc(e["type"]), esc(e["duration_ms"]), esc(e["pct"]), esc(e["v"]))
        yield "</table>"
    else:
        yield '<p class="muted" id="events">none since boot</p>'
    yield "</section>"

    u = st["ups"]
    yield '<section id="ups"><h2>UPS</h2><div class="big"><span id="ups-charge">%d</span> %%</div>' % u["charge"]
    yield _dl((("ups-status", "Status", u["status"]),
               ("ups-runtime", "Runtime", dur(u["runtime"])),
               ("ups-link", "Link", u["link"]),
               (None, "Figures from", u.get("source", "-"))))
    yield "</section>"

    p = st["plan"]
    ptiers = p.get("tiers") or []
    done = 0
    for t in ptiers:
        if t["phase"] in ("done", "timeout", "off", "up"):
            done += 1
    mode = p.get("mode") or "none"
    yield '<section id="plan" data-mode="%s"><h2>Plan</h2>' % esc(mode)
    yield _dl((("plan-id", "Plan", "#%s%s" % (p.get("plan") or 0,
                                              " (drill)" if p.get("drill") else "")),
               ("plan-mode", "Mode", mode),
               ("plan-progress", "Progress", "%d of %d tiers%s" % (
                   done, len(ptiers), ", complete" if p.get("complete") else "")),
               ("plan-elapsed", "Elapsed", dur(p.get("elapsed_s"))),
               ("plan-load", "UPS load", "off" if p.get("load_off") else "on")))
    yield "</section>"

    yield '<section class="wide"><h2>Tiers (shutdown order)</h2><div class="tiers">'
    hstate = {}
    ttook = {}
    for t in ptiers:
        ttook[t["name"]] = t.get("took_s")
        for h in t["hosts"]:
            hstate[h["host"]] = h["state"]
    for t in st["tiers"]:
        ph = t["phase"] or "idle"
        yield ('<div class="tier" data-tier="%s" data-phase="%s" data-fsd="%d"><h3>%s'
               '<span class="badge p-%s">%s%s</span></h3><ul>') % (
            esc(t["name"]), esc(ph), 1 if t["fsd"] else 0, esc(t["name"]), esc(ph), esc(ph),
            " &middot; FSD" if t["fsd"] else "")
        for h in t["connected"]:
            yield '<li class="host connected" data-host="%s">%s <span class="muted">%s%s</span></li>' % (
                esc(h["host"]), esc(h["host"]), esc(h["addr"]), _plan_state(hstate, h["host"]))
        for h in t["missing"]:
            yield '<li class="host missing" data-host="%s">%s <span class="muted">missing %s%s</span></li>' % (
                esc(h["host"]), esc(h["host"]), dur(h["since_s"]), _plan_state(hstate, h["host"]))
        if not t["connected"] and not t["missing"]:
            yield '<li class="muted">no hosts configured</li>'
        yield "</ul>"
        took = ttook.get(t["name"])
        if took is not None:
            yield '<div class="muted">step took %s</div>' % dur(took)
        yield "</div>"
    if not st["tiers"]:
        yield '<p class="muted">No tiers configured.</p>'
    yield "</div></section>"

    alerts = st.get("alerts")
    if isinstance(alerts, dict):
        yield '<section class="wide" id="alerts"><h2>Alert delivery</h2><table>'
        yield '<tr><td>queued</td><td id="alerts-depth">%s</td></tr>' % esc(alerts.get("depth", 0))
        for k in alerts:
            v = alerts[k]
            if isinstance(v, dict):
                yield '<tr data-transport="%s"><td>%s</td><td>%s</td></tr>' % (
                    esc(k), esc(k), esc(_kv(v, 200)))
        yield "</table></section>"

    yield '<section class="wide"><h2>Last records</h2>'
    if records:
        now = st.get("time") or 0
        yield '<table id="records"><tr><th>#</th><th>when</th><th>record</th><th>details</th></tr>'
        for r in reversed(records):
            data = r[4]
            t = r[3]
            when = "%s ago" % dur(now - r[1]) if r[1] > 1600000000 and now >= r[1] else "-"
            yield '<tr data-type="%s"><td>%d</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                esc(t), r[0], when, esc(t), esc(_kv(data)))
        yield "</table>"
    else:
        yield '<p class="muted">none</p>'
    yield "</section>"

    yield ('<section class="wide"><h2>Drill</h2><form id="drill" method="post" action="/drill">'
           '<button name="action" value="start">Start drill</button>'
           '<button name="action" value="stop">Stop drill</button>'
           '<span class="muted">A rehearsal: FSD to each tier in turn, no UPS load-off. '
           'Asks for a NUT user with the primary role or the drill instant command.</span>'
           '</form></section>')
    h = st["heap"]
    lp = st["loop"]
    net = st["network"]
    yield ('</main><footer>Power Sentinel %s &middot; up %s &middot; heap %d B free &middot; '
           'loop stall %d ms (1 min) &middot; ADC overruns %d &middot; NUT %s, %d clients '
           '&middot; <a href="/metrics">metrics</a></footer></body></html>\n') % (
        esc(VERSION), dur(st["uptime_ms"] // 1000), h["free"], lp["stall_ms_1m"],
        st["adc"]["overruns"], "serving" if net["nut"] else "not serving",
        st["nut"]["clients"])


def _plan_state(hstate, host):
    s = hstate.get(host)
    return "" if s is None else " &middot; " + esc(s)


def message(site, code, text, back=True):
    """A small page for the answer to a form (drill) or an error."""
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">%s'
            '<title>%s - Power Sentinel</title><style>%s</style></head><body><header><h1>%s'
            '</h1></header><main><section class="wide"><h2>%d</h2><p id="message">%s</p>%s'
            '</section></main></body></html>\n') % (
        '<meta http-equiv="refresh" content="3;url=/">' if back else "", esc(site), _CSS,
        esc(site), code, esc(text), '<p><a href="/">Back to the status page</a></p>'
        if back else "")
