"""The status page's last part: tiers with their hosts, alert delivery, the last journal
records, the drill form, the footer. See page.py (the first part) for why there are three."""
from sentinel.version import VERSION
from sentinel.web.fmt import dur, esc, kv


def render(st, site, refresh_s=10, records=()):
    """Yield the rest of the page for status dict `st`; records: the last journal records
    [(seq, epoch, ms, type, data)], newest last, or a function returning them (called when
    their turn comes: they are not on the heap beside the tiers and the alerts block)."""
    hstate = {}
    for t in st["plan"].get("tiers") or ():
        for h in t["hosts"]:
            hstate[h["host"]] = h["state"]
    yield '<section class="w"><h2>Tiers</h2><div class="tiers">'
    for t in st["tiers"]:
        ph = t["phase"] or "idle"
        yield ('<div class="tier" data-tier="%s" data-phase="%s" data-fsd="%d"><h3>%s'
               '<span class="b p-%s">%s%s</span></h3><ul>') % (
            esc(t["name"]), esc(ph), 1 if t["fsd"] else 0, esc(t["name"]), esc(ph), esc(ph),
            " FSD" if t["fsd"] else "")
        for h in t["connected"] + t["missing"]:
            miss = "since_s" in h
            yield '<li class="host %s" data-host="%s">%s <span class="m">%s %s</span></li>' % (
                "missing" if miss else "connected", esc(h["host"]), esc(h["host"]),
                "missing " + dur(h["since_s"]) if miss else esc(h["addr"]),
                esc(hstate.get(h["host"]) or ""))
        yield "</ul></div>"
    hstate = t = h = None  # a generator keeps its locals: let go of what is done with
    yield "</div></section>"

    alerts = st.get("alerts")
    if isinstance(alerts, dict):
        yield ('<section class="w" id="alerts"><h2>Alert delivery</h2><table><tr><td>queued</td>'
               '<td id="alerts-depth">%s</td></tr>') % esc(alerts.get("depth", 0))
        tr = alerts.get("transports") or {}  # the outbox's status: one row per transport
        for k in tr:
            yield '<tr data-transport="%s"><td>%s</td><td>%s</td></tr>' % (
                esc(k), esc(k), esc(kv(tr[k], 200)))
        yield "</table></section>"
    alerts = tr = None

    yield '<section class="w"><h2>Last records</h2><table id="records">'
    recs = records() if callable(records) else records
    now = st.get("time") or 0
    for r in reversed(recs):  # pyright: ignore[reportArgumentType, reportCallIssue]
        yield '<tr data-type="%s"><td>%d</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            esc(r[3]), r[0], dur(now - r[1]) + " ago" if 1600000000 < r[1] <= now else "-",
            esc(r[3]), esc(kv(r[4])))
    yield ('</table></section><section class="w"><h2>Drill</h2><form id="drill" method="post" '
           'action="/drill"><button name="action" value="start">Start drill</button> '
           '<button name="action" value="stop">Stop drill</button> <span class="m">No FSD, no '
           'load-off. Login: a NUT user with the primary role or the drill command.</span>'
           '</form></section></main>')
    yield ('<footer class="m">Power Sentinel %s &middot; up %s &middot; heap %d B free &middot; '
           'loop stall %d ms &middot; ADC overruns %d &middot; NUT clients %d &middot; '
           '<a href="/metrics">metrics</a></footer></body></html>\n') % (
        esc(VERSION), dur(st["uptime_ms"] // 1000), st["heap"]["free"],
        st["loop"]["stall_ms_1m"], st["adc"]["overruns"], st["nut"]["clients"])
