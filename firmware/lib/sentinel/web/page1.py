"""The status page's second part: mains (voltage, frequency, recent events; on a site with
several mains channels each channel, and each feed with the servers it leaves degraded or
without power), the UPS, the plan's progress. See page.py (the first part) for why the page is rendered in parts."""
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
    yield "</table>"
    for piece in _channels(m.get("channels"), st.get("feeds")):
        yield piece
    yield "</section>"

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


def _channels(chans, feeds):
    """Each mains channel (name, feed, V, Hz, supply) when there are several, then each feed's
    state and the servers that are not fully powered (FeedPolicy.status()). Stable elements:
    #channels tr[data-channel][data-supply], #feeds tr[data-feed][data-state],
    #feeds li.host[data-host][data-state][data-action]."""
    if not chans:
        return
    yield '<table id="channels"><tr><th>Channel</th><th>Feed</th><th>V</th><th>Hz</th><th></th></tr>'
    for c in chans:
        sup = "lost" if c["lost"] else ("good" if c["good"] else "out of tolerance")
        yield ('<tr data-channel="%s" data-supply="%s"><td>%s</td><td>%s</td><td>%.1f</td>'
               '<td>%s</td><td class="%s">%s</td></tr>') % (
            esc(c["name"]), sup, esc(c["name"]), esc(c["feed"] or "-"), c["v"],
            "-" if c["hz"] is None else "%.2f" % c["hz"],
            "ok" if c["good"] else ("alarm" if c["lost"] else "warn"), sup)
    yield "</table>"
    if not isinstance(feeds, dict):
        return
    yield '<div id="feeds"><table>'
    for f, state in feeds["feeds"].items():
        yield '<tr data-feed="%s" data-state="%s"><td>Feed %s</td><td class="%s">%s</td></tr>' % (
            esc(f), esc(state), esc(f), "ok" if state == "ok" else "alarm", esc(state))
    yield "</table>"
    hit = [h for h in feeds["hosts"] if h["state"] != "ok" or h["action"]]
    if hit:
        yield '<ul class="m">'
        for h in hit:
            yield ('<li class="host" data-host="%s" data-state="%s" data-action="%s">%s: %s%s'
                   '</li>') % (esc(h["host"]), esc(h["state"]), esc(h["action"]), esc(h["host"]),
                               esc(h["state"]), " (%s)" % esc(h["action"]) if h["action"] else "")
        yield "</ul>"
    yield "</div>"
