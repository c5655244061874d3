"""The status page: server-rendered HTML from the console's status (Ops.status()) and the last
journal records. No scripts, no external assets: it refreshes itself with
<meta http-equiv="refresh">, so it works with JavaScript disabled and from a phone on the LAN.

Elements a test or a scraper may rely on (stable): #state[data-state], #cause, #mains-v,
#mains-hz, #mains-supply, #ups-status, #ups-charge, #ups-runtime, #plan[data-mode], #plan-id,
.tier[data-tier][data-phase][data-fsd] holding .host.connected / .host.missing [data-host],
#alarms li, #events tr[data-kind], #alerts, #records tr[data-type], form#drill.

Pure: render() yields the page in pieces, so it is never held whole in RAM. The page is
rendered by three modules, this one (head, style, alarms), page1 (mains, UPS, plan) and page2
(tiers, alert delivery, records, drill form, footer), imported one after the other and each
dropped before the next (site.PAGES): a module costs heap even from ROMFS (its function
objects, constants, strings), and a request then holds one part at a time.
"""
from sentinel.web.fmt import esc

# Kept short: what this module holds costs heap while the page is rendered, even from ROMFS
# (this module measured 9.2 KB imported from ROMFS on the virtual board).
_CSS = (
    "body{margin:0;font:15px/1.4 system-ui,sans-serif;background:#eef1f5;color:#1d2733}"
    "header{background:#1d2733;color:#fff;padding:12px 20px;display:flex;flex-wrap:wrap;"
    "align-items:center;gap:12px}h1{font-size:20px;margin:0}header small{color:#aeb9c7}"
    "main{display:grid;grid-template-columns:repeat(auto-fit,minmax(290px,1fr));gap:14px;"
    "padding:14px 20px}section{background:#fff;border-radius:8px;padding:12px 16px}"
    ".w{grid-column:1/-1}h2{font-size:13px;text-transform:uppercase;color:#5b6b7e;margin:0 0 8px}"
    "dl{display:grid;grid-template-columns:auto 1fr;gap:4px 14px;margin:0}dt,th,.m{color:#5b6b7e}"
    "dd{margin:0;font-weight:600}.big{font-size:26px;font-weight:700}"
    ".b{padding:3px 10px;border-radius:12px;font-weight:700;font-size:13px;background:#d9dee5}"
    ".s-ONLINE,.p-up,.p-done{background:#1f9d55;color:#fff}"
    ".s-ON_BATTERY,.p-fsd,.p-waiting,.p-waking{background:#f0a202}"
    ".s-SHUTTING_DOWN,.p-timeout{background:#d64545;color:#fff}.s-LOAD_OFF,.p-off{background:"
    "#6b2d5c;color:#fff}.s-WAIT_MAINS,.s-RESTORING{background:#2b6cb0;color:#fff}"
    ".tiers{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:10px}"
    ".tier{border:1px solid #d9dee5;border-radius:6px;padding:8px 10px}.tier h3{margin:0 0 6px;"
    "font-size:15px;display:flex;justify-content:space-between}ul{margin:0;padding-left:18px}"
    ".connected::marker{color:#1f9d55}.missing::marker{color:#d64545}.m{font-size:13px}"
    "table{border-collapse:collapse;width:100%;font-size:13px}td,th{text-align:left;"
    "padding:3px 6px;border-bottom:1px solid #eef1f5}.alarm{color:#b42323;font-weight:600}"
    ".warn{color:#9a6700}.ok{color:#1f7a45}footer{padding:0 20px 16px;font-size:12px}"
)


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
    if m.get("alarm"):   # a phase missing or out of tolerance
        out.append(("alarm", m["alarm"]))
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


def render(st, site, refresh_s=10, records=()):
    """Yield the page for status dict `st` (Ops.status()); site: the configured name;
    records: not used here (page2 lists them). The first part of the page: head, style,
    alarms; page1 and page2 render the rest."""
    s = st["state"]
    name = s["name"]
    yield '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    yield '<meta name="viewport" content="width=device-width,initial-scale=1">'
    if refresh_s:
        yield '<meta http-equiv="refresh" content="%d">' % refresh_s
    yield '<title>%s: %s</title><style>' % (esc(site), esc(name))
    yield _CSS  # as it is: formatted into another string, it would be on the heap twice
    yield '</style></head><body>'
    yield ('<header><h1>%s</h1><span id="state" class="b s-%s" data-state="%s">%s</span>'
           '<small>since: <span id="cause">%s</span>%s</small></header><main>') % (
        esc(site), esc(name), esc(name), esc(name.replace("_", " ")), esc(s["cause"]),
        " &middot; DRILL" if s["drill"] else "")

    al = alarms(st)
    yield '<section class="w" id="alarms"><h2>Alarms</h2>'
    if al:
        yield "<ul>" + "".join('<li class="%s">%s</li>' % (c, esc(t)) for c, t in al) + "</ul>"
    else:
        yield '<p class="ok">None: mains good, every planned host connected.</p>'

    yield "</section>"
