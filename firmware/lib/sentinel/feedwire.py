"""One UPS per feed: the app's wiring of the other feeds' UPSes (ups.feeds), run once at boot.
Imported by the app for that and dropped after it (device heap: this code and its strings are
not kept for the board's life)."""
import time

from sentinel.runtime import bind
from sentinel.sequencer import ContactLoadOff


def load_off_feeds(cfg, names):
    """The feeds (of `names`, the sensed feeds in order) whose UPS a site's load-off commands:
    every feed some server of a tier lists (a server listing none: every feed). The site's
    sequence shuts every tier down, so every server counts as shut down. No server listed at
    all (tiers of NUT clients only): every feed, as the servers are unknown."""
    out = []
    hosts = 0
    for t in cfg["tiers"]:
        for h in t["hosts"]:
            hosts += 1
            for f in h.get("feeds") or names:
                if f in names and f not in out:
                    out.append(f)
    return [f for f in names if f in out] if hosts else list(names)


def feed_ups(app, ups, first, chan_feeds):
    """One UPS per feed: the other feeds' UPSes (a Q1 link on the board's second UART, dry
    contacts, and a contact output; their links in app.more_links) and the load-off that
    commands each one whose feed powers a server: the FeedUps."""
    # feedups is loaded only when ups.feeds lists more UPSes (device heap: single-UPS sites
    # never import it). Closures are made by bind(), in a resident module: one made here
    # would keep this module's globals alive
    from sentinel.feedups import ContactUps, FeedUps
    rt = app.rt
    link = app.link
    con = app.sensing.contacts
    if con is not None:
        # the first UPS read over contacts: its row in the console's feeds block (its own
        # contacts task journals its changes)
        link = ContactUps(con.rules, con.deb, ups["feed"], None)
    units = [(ups["feed"], first, link)]
    links = []
    for e in ups["feeds"]:
        act = link = None
        if e["link"] == "q1":
            from sentinel.upslink import UpsLink
            key = "ups_" + e["feed"]
            link = UpsLink(rt.board.uart(e["baud"], True), time.ticks_ms,
                           progress=bind(rt.progress, key), poll_ms=ups["poll_ms"],
                           link_lost_s=ups["link_lost_s"])
            links.append((key, link))
            act = link
        elif e["link"] == "contacts":
            link = _contact_ups(app, ups, e, len(units) - 1)
        if act is None and e["shutdown_output"] is not None:
            act = ContactLoadOff(bind(app._pulse_output, e["shutdown_output"]))
        units.append((e["feed"], act, link))
    app.more_links = links
    names = []
    for f in chan_feeds:
        if f and f not in names:
            names.append(f)
    cmasks = [sum(1 << c for c, cf in enumerate(chan_feeds) if cf == u[0]) for u in units]
    # plan: replaced by the app once the sequencer is built
    return FeedUps(units, load_off_feeds(rt.cfg, names), rt.log, lambda: None, rt.now, cmasks)


def _contact_ups(app, ups, e, i):
    """A feed's UPS read over dry contacts (ups.feeds[i]): its rules over the lines the
    first UPS's contacts task debounces, or, when the first UPS is not read over contacts,
    over a debouncer of its own (no rules: it journals nothing itself), run as a task.
    None, and a config_error record naming the key, when its rules name a line this board
    does not have (the validator allows lines 0-31): not read, its feed's mains stand for
    it, rather than a board that cannot boot."""
    from sentinel.contacts import ContactMonitor, parse_rules
    from sentinel.feedups import ContactUps
    lines = app.rt.board.contacts().lines
    rules = app._board_rules(e["contacts"], lines, "ups.feeds[%d].contacts" % i)
    if rules is None:
        return None
    mon = app.sensing.contacts or app.more_contacts
    if mon is None:
        mon = app.more_contacts = ContactMonitor(parse_rules("", lines), lines,
                                                 ups["debounce_ms"])
    return ContactUps(rules, mon.deb, e["feed"], app.rt.log)
