"""Terminal rendering shared by `status`, `monitor` and the demo (rich).

Every function takes the status shape of the console protocol (`status` op / `status` event)
and tolerates missing parts: an older firmware sends fewer fields, and nothing here may raise
on a partial status.
"""
import time

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATE_STYLE = {"normal": "green", "online": "green", "on_battery": "yellow", "grace": "yellow",
               "shutdown": "red", "shutting_down": "red", "off": "red", "restore": "cyan",
               "recovering": "cyan", "powering_on": "cyan"}


def _fmt(v, unit="", nd=1):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return ("%." + str(nd) + "f%s") % (v, unit)
    return "%s%s" % (v, unit)


def _dur(s):
    if s is None:
        return "-"
    s = int(s)
    if s < 120:
        return "%d s" % s
    if s < 7200:
        return "%d min %02d s" % (s // 60, s % 60)
    return "%d h %02d min" % (s // 3600, (s % 3600) // 60)


def _who(c):
    """A connected server: its configured name, else the address its upsmon logs in from; and
    the feeds powering it when the site file lists them."""
    who = str(c.get("host") or c.get("addr") or "?")
    return escape(who + (" (%s)" % "+".join(c["feeds"]) if c.get("feeds") else ""))


def _state(st):
    """(name, cause, dict) whether the firmware sends state as a dict or a bare name."""
    s = st.get("state")
    if isinstance(s, dict):
        return s.get("name"), s.get("cause"), s
    return s, st.get("cause"), {}


def mains_line(mains):
    if not mains:
        return "-"
    if mains.get("lost"):
        txt = "[bold red]LOST[/bold red]"
    elif mains.get("good") is False:
        txt = "[yellow]present, out of tolerance[/yellow]"
    else:
        txt = "[green]present[/green]"
    if mains.get("alarm"):   # several channels: a phase missing or out of tolerance
        txt += "  [red]%s[/red]" % escape(str(mains["alarm"]))
    return txt


def event_text(e):
    kind = e.get("type", "event")
    extra = ""
    if e.get("residual_v") is not None:
        extra = " residual %.1f V" % e["residual_v"]
    elif e.get("peak_v") is not None:
        extra = " peak %.1f V" % e["peak_v"]
    dur = e.get("duration_ms")
    return "%s %s%s" % (kind, "(ongoing)" if dur is None else "%d ms" % dur, extra)


def ups_line(ups):
    link = ups.get("link", "-")
    style = {"ok": "green", "lost": "red", "init": "yellow", "none": "dim",
             "config_error": "red"}.get(link, "")
    return "%s  link [%s]%s[/%s]" % (ups.get("status") or "-", style or "default", link,
                                      style or "default")


def feed_ups_line(u):
    """One feed's UPS (one UPS per feed, docs/feeds.md): its status and link as ups_line, its
    charge and load, and the load-off commands it took."""
    line = ups_line(u)
    if u.get("charge") is not None:
        line += "  charge %s" % _fmt(u["charge"], " %", 0)
    if u.get("load") is not None:
        line += "  load %s" % _fmt(u["load"], " %", 0)
    if u.get("load_offs"):
        line += "  [yellow]load cut %dx[/yellow]" % u["load_offs"]
        if u.get("load_off_ago_ms") is not None:
            line += " (%s ago)" % _dur(u["load_off_ago_ms"] / 1000.0)
    if not u.get("commanded", True):
        line += "  [dim]not cut: no server on its feed[/dim]"
    return line


def alerts_lines(al):
    """One line per alert transport: what it delivered, what waits, and why it is failing."""
    out = []
    for name, tr in sorted((al.get("transports") or {}).items()):
        line = "delivered up to #%s" % tr.get("delivered")
        if tr.get("pending"):
            line += ", [yellow]%d waiting[/yellow]" % tr["pending"]
            if tr.get("retry_ms"):
                line += " (retry in %s)" % _dur(tr["retry_ms"] / 1000.0)
        if tr.get("rejected"):
            line += ", %d rejected" % tr["rejected"]
        if tr.get("error") and tr.get("pending"):
            line += "  [red]%s[/red]" % escape(str(tr["error"]))
        out.append((name, line))
    return out


def pair_line(p):
    """The pair row: the peer's state (red "redundancy lost" unless ALIVE), why, since when,
    the age of its last frame and the frames refused."""
    state = p.get("state") or "-"
    if state == "ALIVE":
        head = "[green]peer %s ALIVE[/green]" % escape(str(p.get("peer")))
    else:
        head = "[red]redundancy lost[/red]: peer %s %s (%s)" % (
            escape(str(p.get("peer"))), state, escape(str(p.get("cause"))))
    line = "%s  since %s" % (head, _dur((p.get("since_ms") or 0) / 1000.0))
    if p.get("last_ms") is not None:
        line += ", last frame %s ago" % _dur(p["last_ms"] / 1000.0)
    bad = [(p.get(k) or 0, k.replace("_", " ")) for k in ("bad_key", "replayed", "same_id")]
    bad = ["%d %s" % kv for kv in bad if kv[0]]
    if bad:
        line += "  [yellow]refused: %s[/yellow]" % ", ".join(bad)
    dis = (p.get("sensor") or {}).get("disagree")
    if dis:
        line += "  [red]%s[/red]" % escape(str(dis))
    return line


def feeds_line(fd):
    """The feeds row (a two-feed site, docs/feeds.md): each feed ok or lost (red "redundancy
    lost" while one is), then each server that is not plainly ok: degraded, lost, and what the
    policy did (fsd, off, back, waking)."""
    feeds = fd.get("feeds") or {}
    head = "  ".join("[%s]%s %s[/%s]" % ("green" if s == "ok" else "red", escape(str(n)), s,
                                         "green" if s == "ok" else "red")
                     for n, s in feeds.items())
    if any(s != "ok" for s in feeds.values()):
        head = "[red]redundancy lost[/red]  " + head
    hosts = []
    for h in fd.get("hosts") or ():
        if h.get("state") == "ok" and not h.get("action"):
            continue
        style = "yellow" if h.get("state") == "degraded" else "red"
        txt = "%s %s" % (escape(str(h.get("host"))), h.get("state"))
        if h.get("action"):
            txt += " (%s)" % h["action"]
        hosts.append("[%s]%s[/%s]" % (style, txt, style))
    return head + ("  servers: " + ", ".join(hosts) if hosts else "  [green]every server "
                   "powered[/green]")


def render_status(ident, st, title=None):
    t = Table(title=title or "Power Sentinel %s on %s" % (ident.get("firmware"), ident.get("board")),
              show_header=False, expand=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    mains = st.get("mains") or {}
    t.add_row("mains", mains_line(mains))
    t.add_row("  voltage", _fmt(mains.get("v"), " V"))
    if "hz" in mains:
        t.add_row("  frequency", _fmt(mains.get("hz"), " Hz", 2))
    for e in (mains.get("events") or [])[-3:]:
        t.add_row("  event", event_text(e))
    ups = st.get("ups")
    if ups:
        t.add_row("ups", ups_line(ups))
        t.add_row("  charge / runtime", "%s / %s" % (_fmt(ups.get("charge"), " %", 0),
                                                     _dur(ups.get("runtime"))))
        if ups.get("source"):
            t.add_row("  source", str(ups["source"]))
        for feed, u in (ups.get("feeds") or {}).items():
            t.add_row("  feed %s" % escape(str(feed)), feed_ups_line(u))
    name, cause, sd = _state(st)
    if name is not None:
        style = STATE_STYLE.get(name, "bold")
        flags = []
        if sd.get("drill"):
            flags.append("[magenta]DRILL[/magenta]")
        if sd.get("ponr"):
            flags.append("[red]past the point of no return[/red]")
        if sd.get("plan_id") is not None:
            flags.append("plan %s" % sd["plan_id"])
        t.add_row("state", "[%s]%s[/%s]%s%s" % (style, name, style, " (%s)" % cause if cause else "",
                                                "  " + " ".join(flags) if flags else ""))
        if sd.get("since_ms") is not None and st.get("uptime_ms") is not None:
            t.add_row("  for", _dur((st["uptime_ms"] - sd["since_ms"]) / 1000.0))
    for tier in st.get("tiers") or ():
        conn = [_who(c) for c in tier.get("connected") or ()]
        miss = [str(m.get("host", "?")) for m in tier.get("missing") or ()]
        row = "%s%s  up: %s" % (tier.get("phase") or "-", " [red]FSD[/red]" if tier.get("fsd") else "",
                                ", ".join(conn) or "-")
        if miss:
            row += "  [red]missing: %s[/red]" % ", ".join(miss)
        t.add_row("tier %s" % tier.get("name"), row)
    if st.get("pair"):
        t.add_row("pair %s" % st["pair"].get("id", ""), pair_line(st["pair"]))
    if st.get("feeds"):
        t.add_row("feeds", feeds_line(st["feeds"]))
    al = st.get("alerts")
    if al:
        t.add_row("alerts", "%d waiting for the slowest transport" % al.get("depth", 0)
                  if al.get("depth") else "[green]all delivered[/green]")
        for name, line in alerts_lines(al):
            t.add_row("  " + name, line)
    errs = st.get("errors")
    if errs:
        items = errs.items() if isinstance(errs, dict) else enumerate(errs if isinstance(errs, list) else [errs])
        t.add_row("errors", "[red]%s[/red]" % "; ".join(
            "%s: %s" % kv if isinstance(errs, dict) else str(kv[1]) for kv in items))
    heap = st.get("heap") or {}
    if heap:
        t.add_row("heap", "%d B free of %d" % (heap.get("free", 0),
                                               heap.get("free", 0) + heap.get("alloc", 0)))
    t.add_row("uptime", _dur((st.get("uptime_ms") or 0) / 1000.0))
    if st.get("time"):
        t.add_row("board clock", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st["time"])))
    if ident.get("config_source") and ident.get("config_source") != "config":
        t.add_row("config", "[yellow]running on %s[/yellow]" % ident["config_source"])
    for e in ident.get("config_errors") or ():
        t.add_row("  config error", "[red]%s[/red]" % e)
    return t


# -- the live dashboard -------------------------------------------------------------------------

def _tiers_table(st):
    t = Table(expand=True, box=None, padding=(0, 1))
    t.add_column("tier", style="bold")
    t.add_column("phase")
    t.add_column("connected", style="green")
    t.add_column("missing", style="red")
    for tier in st.get("tiers") or ():
        t.add_row(str(tier.get("name")),
                  (tier.get("phase") or "-") + (" FSD" if tier.get("fsd") else ""),
                  ", ".join(_who(c) for c in tier.get("connected") or ()) or "-",
                  ", ".join("%s (%s)" % (m.get("host", "?"), _dur(m.get("since_s")))
                            for m in tier.get("missing") or ()) or "-")
    if not st.get("tiers"):
        t.add_row("-", "no tiers reported", "", "")
    return t


def render_dashboard(ident, st, recent, port, problem=None, updated=None):
    """The `monitor` screen. `recent`: newest-last list of short text lines (events, log);
    `problem`: None, or why the board is not answering (shown as a banner)."""
    st = st or {}
    head = Text.from_markup("[bold]Power Sentinel[/bold] %s on %s  [dim]%s[/dim]  ([bold]q[/bold] "
                            "quits)" % (ident.get("firmware", "?"), ident.get("board", "?"), port))
    parts = [head]
    if problem:
        parts.append(Panel(Text.from_markup("[bold red]BOARD NOT ANSWERING[/bold red]: %s" % problem),
                           border_style="red"))
    mains = st.get("mains") or {}
    m = Table.grid(padding=(0, 2))
    m.add_row("mains", mains_line(mains), _fmt(mains.get("v"), " V"), _fmt(mains.get("hz"), " Hz", 2))
    ev = mains.get("events") or []
    m.add_row("events", "; ".join(event_text(e) for e in ev[-3:]) or "-", "", "")
    name, cause, sd = _state(st)
    style = STATE_STYLE.get(name, "bold")
    m.add_row("state", "[%s]%s[/%s]" % (style, name or "-", style), cause or "",
              ("[magenta]DRILL[/magenta] " if sd.get("drill") else "") +
              ("[red]PONR[/red]" if sd.get("ponr") else ""))
    ups = st.get("ups") or {}
    m.add_row("ups", ups_line(ups) if ups else "-",
              "charge %s" % _fmt(ups.get("charge"), " %", 0),
              "runtime %s" % _dur(ups.get("runtime")))
    for feed, u in (ups.get("feeds") or {}).items():
        m.add_row("ups %s" % escape(str(feed)), feed_ups_line(u), "", "")
    if st.get("pair"):
        m.add_row("pair", pair_line(st["pair"]), "", "")
    if st.get("feeds"):
        m.add_row("feeds", feeds_line(st["feeds"]), "", "")
    al = st.get("alerts")
    if al:
        m.add_row("alerts", "%d waiting" % al.get("depth", 0) if al.get("depth") else "delivered",
                  "; ".join("%s %s" % (n, "[red]failing[/red]" if (al["transports"][n].get("error")
                                                               and al["transports"][n].get("pending"))
                                      else "ok") for n in sorted(al.get("transports") or {})),
                  "")
    parts.append(Panel(m, title="now", title_align="left"))
    parts.append(Panel(_tiers_table(st), title="tiers", title_align="left"))
    lines = Text()
    for i, line in enumerate(recent[-8:]):
        if i:
            lines.append("\n")
        lines.append(line)
    parts.append(Panel(lines if recent else Text("-", style="dim"), title="recent",
                       title_align="left"))
    heap = st.get("heap") or {}
    foot = "uptime %s   heap free %s   %s" % (
        _dur((st.get("uptime_ms") or 0) / 1000.0), _fmt(heap.get("free"), " B"),
        "updated %s" % time.strftime("%H:%M:%S", time.localtime(updated)) if updated else "")
    parts.append(Text(foot, style="dim"))
    return Group(*parts)
