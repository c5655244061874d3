"""Two feeds, one UPS each (ups.feed and ups.feeds): every feed's UPS is read, and a plan's
load-off goes to each UPS that powers a server the plan shut down, once each, each journaled.

Loaded only when ups.feeds lists more UPSes (device heap: a single-UPS site never imports it).

The sequencer's load-off (its ups_actions) is a FeedUps: shutdown_restore() commands, one after
the other, the UPS of every feed in `feeds` (feedwire.load_off_feeds: the feeds the plan's
servers list) that has not yet taken this plan's command: Q1 `S<n>R<m>` over its link (the UPS restores its
load when its feed returns), or its contact output's pulse. An `ups_off` record per UPS (plan,
feed, ok); a UPS that failed is tried again with the sequencer's retry, one that took it is not.
A feed whose UPS cannot be commanded (link none, no output) gets one `ups_off` (ok false, why).

A feed's UPS is read over a Q1 link (an UpsLink) or over dry contacts (a ContactUps: its own
rules over the board's debounced contact lines); both look the same here (link_ok, status).

What the UPSes tell the state machine and the feed policy (site(), low_mask()): one UPS on
battery is its feed lost, not the site's outage. The site is on battery when every feed is:
each UPS that is read says OB, a feed whose UPS is not read has lost its mains channels. A low
battery counts for the site only then; otherwise it ends the grace of the servers left on
that UPS's feed alone (FeedPolicy.step's low mask).
"""


def _awaitable(r):
    return r is not None and (hasattr(r, "send") or hasattr(r, "__await__"))


class ContactUps:
    """A feed's UPS read over dry contacts, seen as an UpsLink is (link_ok, status, state):
    its rules (contacts.Rules) over the stable lines of `deb`, the Debouncer the contacts
    task feeds (the first UPS's when that one is read over contacts too: one debounce for
    every line). log(type, data): its status changes as `contacts` records with its feed
    (None: journaled by the contacts task, the first UPS's)."""
    charge = None   # contacts tell neither
    load = None
    # until the lines first settle, as class defaults (written then: device heap)
    bits = -1
    status = ()             # status names, as an UpsLink's tokens
    link_ok = False         # until every line has settled once
    state = "init"

    def __init__(self, rules, deb, feed, log):
        self.rules = rules
        self.deb = deb
        self.feed = feed
        self.log = log

    def poll(self):
        """Read the lines again (every control step): the status list is rebuilt and
        journaled only when it changes (no garbage while it holds)."""
        d = self.deb
        if not d.ready:
            return
        b = self.rules.eval(d.stable)
        if b == self.bits:
            return
        from sentinel.contacts import status_names
        self.bits = b
        self.link_ok = True
        self.state = "contacts"
        self.status = status_names(b)
        if self.log is not None:
            self.log("contacts", {"feed": self.feed, "status": self.status})


class FeedUps:
    """units: [(feed, actions, link)] in config order, the first being ups.feed's: actions has
    shutdown_restore(delay_min, restore_min) -> bool or awaitable (UpsLink, ContactLoadOff), or
    None (cannot be commanded); link: the UpsLink or ContactUps read for status, or None.
    feeds: the feeds to command (feedwire.load_off_feeds). log(type, data, critical=False); plan(): the
    sequencer's plan id; now(): ms clock. A ContactUps link is polled by site(), each control
    step."""

    # written when they first change (class defaults: device heap)
    first_lb = False    # the first UPS's own low battery, as site() last read it
    _plan = None
    sent = None         # feeds whose UPS took this plan's command (a list from the first)
    done = None         # feed -> [commands sent and taken since boot, ms of the last one]

    def __init__(self, units, feeds, log, plan, now, cmasks=None):
        self.units = units
        self.polled = tuple(u[2] for u in units if isinstance(u[2], ContactUps))
        self.cmasks = cmasks or [0] * len(units)   # per unit: its feed's mains channel bits
        self.feeds = feeds
        self.log = log
        self.plan = plan
        self.now = now

    # two booleans, not a tuple: the control step calls these every 100 ms (no garbage)
    def _ob(self, k, good_mask):
        """Unit k on battery: its UPS link's status while the link is up, else its feed's
        mains channels (none good)."""
        link = self.units[k][2]
        if link is not None and link.link_ok:
            return "OB" in link.status
        return not good_mask & self.cmasks[k]

    def _lb(self, k):
        """Unit k's low battery (unknown, False, without a link that is up)."""
        link = self.units[k][2]
        return link is not None and bool(link.link_ok) and "LB" in link.status

    def site(self, i, good_mask):
        """Turn the first UPS's reading in Inputs `i` (set by the control loop) into the
        site's: on battery only when every feed's UPS is, low battery only then."""
        for c in self.polled:
            c.poll()
        ob = i.ups_on_battery if i.ups_link_ok else not good_mask & self.cmasks[0]
        lb = i.ups_low_battery
        if lb != self.first_lb:
            self.first_lb = lb
        for k in range(1, len(self.units)):
            ob = ob and self._ob(k, good_mask)
            lb = lb or self._lb(k)
        i.ups_on_battery = ob
        i.ups_low_battery = ob and lb

    def low_mask(self, names):
        """Bit j set when feed names[j]'s UPS says low battery (the feed policy's feed order)."""
        m = 0
        for k in range(len(self.units)):
            feed = self.units[k][0]
            if feed in names and (self.first_lb if k == 0 else self._lb(k)):
                m |= 1 << names.index(feed)
        return m

    async def shutdown_restore(self, delay_min, restore_min):
        """Every feed's UPS not yet commanded in this plan: True when each one took it."""
        pid = self.plan()
        sent = self.sent
        if pid != self._plan or sent is None:   # a new plan (or the first)
            self._plan = pid
            sent = self.sent = []
        ok_all = True
        for feed, act, _ in self.units:
            if feed not in self.feeds or feed in sent:
                continue
            if act is None:
                sent.append(feed)   # nothing to retry
                self.log("ups_off", {"plan": pid, "feed": feed, "ok": False,
                                     "why": "no UPS command configured"}, critical=True)
                continue
            try:
                r = act.shutdown_restore(delay_min, restore_min)
                if _awaitable(r):
                    r = await r
            except Exception:
                r = False
            ok = bool(r)
            self.log("ups_off", {"plan": pid, "feed": feed, "ok": ok, "delay_min": delay_min,
                                 "restore_min": restore_min}, critical=True)
            if ok:
                sent.append(feed)
                done = self.done
                if done is None:
                    done = self.done = {}
                n = done.get(feed)
                done[feed] = [1 if n is None else n[0] + 1, self.now()]
            else:
                ok_all = False
        return ok_all

    def status(self):
        """The console's per-feed UPS block: {feed: {link, status, charge, load, load_offs,
        load_off_ago_ms}} (link: the link's state, "none" when it is not read)."""
        out = {}
        now = self.now()
        done = self.done or {}
        for feed, _, link in self.units:
            e = {"link": "none", "status": "", "charge": None, "load": None,
                 "load_offs": 0, "load_off_ago_ms": None,
                 "commanded": feed in self.feeds}
            if link is not None:
                e["link"] = link.state
                e["status"] = " ".join(link.status)
                e["charge"] = link.charge
                e["load"] = link.load
            n = done.get(feed)
            if n is not None:
                e["load_offs"] = n[0]
                e["load_off_ago_ms"] = now - n[1]
            out[feed] = e
        return out
