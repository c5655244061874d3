# One UPS per feed: which UPSes a site's load-off commands, each once per plan, and the
# sequencer's load-off through them (fake UPS commands, fake clock).
from mpunit import TestCase
from sentinel import config
from sentinel.feedups import FeedUps
from sentinel.feedwire import load_off_feeds
from sentinel.sequencer import Sequencer


def site(hosts, ups=None):
    cfg, errs = config.validate({
        "mains": {"channels": [{"name": "A"}, {"name": "B"}]},
        "ups": ups or {"link": "q1", "feed": "A", "feeds": [{"feed": "B"}]},
        "tiers": [{"name": "apps", "hosts": hosts}]})
    assert not errs, errs
    return cfg


def host(name, n, feeds=None):
    h = {"name": name, "address": "10.0.0.%d" % n}
    if feeds is not None:
        h["feeds"] = feeds
    return h


class FakeUps:
    """A UPS command: answers from `replies` in turn (then True), counts the calls."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls = []

    def shutdown_restore(self, delay_min, restore_min):
        self.calls.append((delay_min, restore_min))
        return self.replies.pop(0) if self.replies else True


def finish(coro):
    """Run a coroutine that never really waits (the fakes answer at once); its result."""
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value
    raise AssertionError("the coroutine waited")


class Rig:
    def __init__(self, feeds, a=None, b=None):
        self.recs = []
        self.pid = 1
        self.a = a if a is not None else FakeUps()
        self.b = b if b is not None else FakeUps()
        self.fu = FeedUps([("A", self.a, None), ("B", self.b, None)], feeds,
                          lambda t, d, critical=False: self.recs.append((t, d)),
                          lambda: self.pid, lambda: 1000)

    def offs(self):
        return [(d["feed"], d["ok"]) for t, d in self.recs if t == "ups_off"]


class TestLoadOffFeeds(TestCase):
    def test_only_the_feeds_of_the_servers(self):
        cfg = site([host("b1", 1, ["B"]), host("b2", 2, ["B"])])
        self.assertEqual(load_off_feeds(cfg, ["A", "B"]), ["B"])

    def test_dual_corded_server_needs_both(self):
        cfg = site([host("ab", 1, ["A", "B"]), host("b1", 2, ["B"])])
        self.assertEqual(load_off_feeds(cfg, ["A", "B"]), ["A", "B"])

    def test_a_server_listing_no_feed_is_on_every_feed(self):
        cfg = site([host("any", 1), host("b1", 2, ["B"])])
        self.assertEqual(load_off_feeds(cfg, ["A", "B"]), ["A", "B"])

    def test_no_server_listed_cuts_every_ups(self):
        # tiers of NUT clients only: which servers they are is unknown, so every feed's UPS
        self.assertEqual(load_off_feeds(site([]), ["A", "B"]), ["A", "B"])


class TestFeedUps(TestCase):
    def test_each_ups_once_each_journaled(self):
        r = Rig(["A", "B"])
        self.assertTrue(finish(r.fu.shutdown_restore(1, 2)))
        self.assertEqual((r.a.calls, r.b.calls), ([(1, 2)], [(1, 2)]))
        self.assertEqual(r.offs(), [("A", True), ("B", True)])
        st = r.fu.status()
        self.assertEqual((st["A"]["load_offs"], st["B"]["load_offs"]), (1, 1))

    def test_ups_of_a_feed_no_server_uses_is_not_commanded(self):
        r = Rig(["B"])
        self.assertTrue(finish(r.fu.shutdown_restore(1, 2)))
        self.assertEqual((len(r.a.calls), len(r.b.calls)), (0, 1))
        self.assertEqual(r.offs(), [("B", True)])
        self.assertEqual(r.fu.status()["A"]["commanded"], False)

    def test_a_retry_sends_only_to_the_ups_that_failed(self):
        r = Rig(["A", "B"], b=FakeUps(False))
        self.assertFalse(finish(r.fu.shutdown_restore(1, 2)))
        self.assertTrue(finish(r.fu.shutdown_restore(1, 2)))
        self.assertEqual((len(r.a.calls), len(r.b.calls)), (1, 2))
        self.assertEqual(r.offs(), [("A", True), ("B", False), ("B", True)])
        r.pid = 2                                     # the next outage commands both again
        finish(r.fu.shutdown_restore(1, 2))
        self.assertEqual((len(r.a.calls), len(r.b.calls)), (2, 3))

    def test_a_ups_without_command_is_journaled_once(self):
        recs = []
        b = FakeUps()
        fu = FeedUps([("A", None, None), ("B", b, None)], ["A", "B"],
                     lambda t, d, critical=False: recs.append((t, d)), lambda: 1, lambda: 0)
        self.assertTrue(finish(fu.shutdown_restore(1, 2)))
        self.assertTrue(finish(fu.shutdown_restore(1, 2)))
        self.assertEqual([(d["feed"], d["ok"]) for _, d in recs], [("A", False), ("B", True)])
        self.assertEqual(len(b.calls), 1)


class FakeNut:
    def set_fsd(self, tier, on):
        pass

    def logged_in(self, tier):
        return []


class LoadOffSm:
    state = "LOAD_OFF"
    plan_id = 3
    drill = False
    forced_tier = None


class TestSequencerLoadOff(TestCase):
    def test_the_plan_commands_both_upses_once(self):
        recs = []
        r = Rig(["A", "B"])
        cfg = site([host("ab", 1, ["A", "B"])])
        seq = Sequencer(cfg, FakeNut(), r.fu, lambda t, d, now, critical=False: recs.append(
            (t, d)), wake=None, spawn=finish)
        r.fu.plan = lambda: seq.plan_id
        r.fu.log = lambda t, d, critical=False: recs.append((t, d))
        sm = LoadOffSm()
        for now in range(0, 30000, 100):
            seq.step(now, sm)
        self.assertEqual((len(r.a.calls), len(r.b.calls)), (1, 1))
        per_feed = [(d["feed"], d["ok"], d["plan"]) for t, d in recs
                    if t == "ups_off" and "feed" in d]
        self.assertEqual(per_feed, [("A", True, 3), ("B", True, 3)])


class FakeLink:
    def __init__(self, status="OL", ok=True):
        self.status = status.split()
        self.link_ok = ok


class TestSiteReading(TestCase):
    """One UPS on battery is its feed lost, not the site's outage (the state machine reads
    the site's: every feed's UPS on battery)."""

    def fu(self, b_link):
        # channel 0 senses A, channel 1 senses B
        return FeedUps([("A", None, FakeLink()), ("B", None, b_link)], ["A", "B"],
                       lambda *a, **k: None, lambda: 1, lambda: 0, cmasks=[0b01, 0b10])

    def inputs(self, ob, lb=False, ok=True):
        from sentinel.statemachine import Inputs
        return Inputs(ups_on_battery=ob, ups_low_battery=lb, ups_link_ok=ok)

    def test_the_first_ups_alone_on_battery_is_not_the_site_s_outage(self):
        i = self.inputs(True, lb=True)
        self.fu(FakeLink("OL")).site(i, 0b10)
        self.assertEqual((i.ups_on_battery, i.ups_low_battery), (False, False))

    def test_every_ups_on_battery_is(self):
        i = self.inputs(True)
        self.fu(FakeLink("OB LB")).site(i, 0)
        self.assertEqual((i.ups_on_battery, i.ups_low_battery), (True, True))

    def test_a_ups_not_read_counts_by_its_feed_s_mains(self):
        for mask, ob in ((0b00, True), (0b10, False)):
            i = self.inputs(True)
            self.fu(FakeLink("OB", ok=False)).site(i, mask)
            self.assertEqual(i.ups_on_battery, ob)
        i = self.inputs(False, ok=False)   # the first UPS's link down: feed A's channel
        self.fu(FakeLink("OB")).site(i, 0b01)
        self.assertFalse(i.ups_on_battery)

    def test_low_mask_in_the_feed_policy_s_order(self):
        fu = self.fu(FakeLink("OB LB"))
        i = self.inputs(False)
        fu.site(i, 0b01)
        self.assertEqual(fu.low_mask(["B", "A"]), 0b01)
        i = self.inputs(True, lb=True)
        fu.site(i, 0b01)
        self.assertEqual(fu.low_mask(["A", "B"]), 0b11)


class TestContactUps(TestCase):
    """A feed's UPS read over dry contacts: its own rules over the board's debounced lines
    (the first UPS's debouncer when it is on contacts too), read as a Q1 second UPS is."""

    def setUp(self):
        from sentinel.contacts import ContactMonitor, parse_rules
        from sentinel.feedups import ContactUps
        self.recs = []
        # the first UPS on lines 1-2, feed B's on lines 3-4; one debouncer (50 ms) for all
        self.first = ContactMonitor(parse_rules("OB=1;LB=2;", 8), 8, 50)
        self.b = ContactUps(parse_rules("OB=3;LB=4;", 8), self.first.deb, "B",
                            lambda t, d, critical=False: self.recs.append((t, d)))
        self.fu = FeedUps([("A", None, None), ("B", None, self.b)], ["A", "B"],
                          lambda *a, **k: None, lambda: 1, lambda: 0, cmasks=[0b01, 0b10])
        self.t = 0

    def lines(self, raw):
        """Hold `raw` on the lines past the debounce, as the contacts task reads them."""
        for _ in range(7):
            self.first.update(raw, self.t)
            self.t += 10

    def step(self, good_mask=0b11):
        """A control step: the first UPS's contacts as Control._gather reads them, then
        the site's reading."""
        from sentinel.statemachine import Inputs
        i = Inputs(ups_on_battery=self.first.has("OB"), ups_low_battery=self.first.has("LB"),
                   ups_link_ok=bool(self.first.ready))
        self.fu.site(i, good_mask)
        return i

    def test_read_once_settled_by_its_own_lines(self):
        self.first.update(0, 0)   # not settled: its feed's mains decide, as a link that is down
        self.assertFalse(self.b.link_ok)
        self.assertTrue(self.step(0b01).ups_on_battery is False)
        self.assertEqual(self.fu.status()["B"]["link"], "init")
        self.lines(0)
        i = self.step()
        self.assertEqual((self.b.link_ok, self.b.status), (True, ["OL"]))
        self.assertEqual(self.fu.status()["B"], {
            "link": "contacts", "status": "OL", "charge": None, "load": None, "load_offs": 0,
            "load_off_ago_ms": None, "commanded": True})
        self.lines(0b01000)   # line 3: feed B's UPS on battery; the first UPS's lines untouched
        i = self.step(0b01)
        self.assertEqual(self.b.status, ["OB"])
        self.assertEqual(self.first.statuses(), ["OL"])
        self.assertEqual((i.ups_on_battery, i.ups_low_battery), (False, False))
        self.assertEqual(self.recs, [("contacts", {"feed": "B", "status": ["OL"]}),
                                     ("contacts", {"feed": "B", "status": ["OB"]})])
        self.step(0b01)       # unchanged: no record, the same list
        st = self.b.status
        self.step(0b01)
        self.assertIs(self.b.status, st)
        self.assertEqual(len(self.recs), 2)

    def test_its_low_battery_ends_its_feed_s_grace_not_the_site_s(self):
        self.lines(0b11000)   # B: OB LB
        i = self.step(0b01)
        self.assertEqual(self.b.status, ["OB", "LB"])
        self.assertEqual((i.ups_on_battery, i.ups_low_battery), (False, False))
        self.assertEqual(self.fu.low_mask(["A", "B"]), 0b10)

    def test_both_on_battery_is_the_site_s_outage(self):
        self.lines(0b01010)   # line 1: the first UPS OB, line 3: B's OB
        i = self.step(0)
        self.assertEqual((i.ups_on_battery, i.ups_low_battery), (True, False))
        self.lines(0b11010)   # B's battery low too: the site's low battery
        i = self.step(0)
        self.assertEqual((i.ups_on_battery, i.ups_low_battery), (True, True))
        self.assertEqual(self.fu.low_mask(["A", "B"]), 0b10)
