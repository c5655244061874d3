"""The status page's second part: mains (voltage, frequency, recent events), the UPS, the plan's
progress. See page.py (the first part) for why the page is rendered in parts."""
from sentinel.web.fmt import dl, dur, esc


def render(st, site, refresh_s=10, records=()):
    """Yield this part of the page for status dict `st` (the arguments are page.render's)."""
    m = st["mains"]
    yield ('<section id="mains"><h2>Mains</h2><div class="big"><span id="mains-v">'
           '%.1f</span> V</div>') % m["v"]
    yield dl((("mains-hz", "Frequency", "-" if m["hz"] is None else "%.2f Hz" % m["hz"]),
               ("mains-supply", "Supply", "lost" if m["lost"] else (
                   "good" if m["good"] else "out of tolerance"))))
    yield '<table id="events">'
    for e in reversed(m["events"]):
        yield '<tr data-kind="%s"><td>%s</td><td>%s ms</td><td>%s V</td></tr>' % (
            esc(e["type"]), esc(e["type"]), e["duration_ms"], e["v"])
    yield "</table></section>"

    u = st["ups"]
    yield ('<section id="ups"><h2>UPS</h2><div class="big"><span id="ups-charge">%d</span> %%'
           '</div>') % u["charge"]
    yield dl((("ups-status", "Status", u["status"]), ("ups-runtime", "Runtime", dur(u["runtime"])),
               ("ups-link", "Link", u["link"])))

    p = st["plan"]
    ptiers = p.get("tiers") or []
    done = 0
    for t in ptiers:
        if t["phase"] in ("done", "timeout", "off", "up"):
            done += 1
    mode = p.get("mode") or "none"
    yield '</section><section id="plan" data-mode="%s"><h2>Plan</h2>' % esc(mode)
    yield dl((("plan-id", "Plan", "#%s%s" % (p.get("plan") or 0,
                                              " (drill)" if p.get("drill") else "")),
               ("plan-mode", "Mode", mode),
               ("plan-progress", "Progress", "%d of %d tiers" % (done, len(ptiers))),
               ("plan-elapsed", "Elapsed", dur(p.get("elapsed_s")))))
    yield "</section>"
