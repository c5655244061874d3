# What NUT clients see from the Snapshot: statuses beyond OL/OB from the UPS link or contacts,
# ups.alarm, nominal ratings from the config, and list variables that are never empty strings.
from mpunit import TestCase

from sentinel.contacts import ContactMonitor
from sentinel.nutview import NutView, Snapshot
from sentinel.q1 import Q1Status, status_tokens


class FakeLink:
    """The UpsLink attributes the snapshot reads: link_ok, q1, status."""

    def __init__(self, q=None):
        self.link_ok = q is not None
        self.q1 = q
        self.status = status_tokens(q) if q is not None else ()

    def reply(self, q):
        self.link_ok = True
        self.q1 = q
        self.status = status_tokens(q)


def q1(bits, vin=230.0, vout=230.0):
    return Q1Status(vin, vin, vout, 20, 50.0, 27.0, 30.0, bits)


B_OB, B_AVR, B_FAILED, B_TEST, B_SHUTDOWN = 0x80, 0x20, 0x10, 0x04, 0x02


class Base(TestCase):
    def view(self, nominal=(120.0, 60)):
        snap = Snapshot(["apps", "db"])
        snap.seen = True
        snap.sampler_at = snap.at = 10000
        return snap, NutView("fake", ["apps", "db"], snap, lambda: 10000, 15000, nominal)


class TestStatuses(Base):
    def test_q1_statuses_are_served_on_every_tier_alike(self):
        snap, v = self.view()
        link = FakeLink(q1(0))
        snap.take_ups(link, None)
        self.assertEqual(v.status("apps"), "OL")
        for bits, vout, want in ((B_AVR, 200.0, "OL TRIM"), (B_AVR, 230.0, "OL BYPASS"),
                                 (B_AVR, 260.0, "OL BOOST"), (0, 0.0, "OL OFF"),
                                 (B_TEST | B_AVR, 200.0, "OL TRIM")):  # never CAL
            link.reply(q1(bits, vout=vout))
            snap.take_ups(link, None)
            self.assertEqual([v.status("apps"), v.status("db")], [want, want])
            self.assertNotIn("ups.alarm", dict(v.vars("db")))

    def test_alarm_with_ups_alarm_as_nut_q1_drivers_word_it(self):
        snap, v = self.view()
        link = FakeLink(q1(B_FAILED | B_TEST))
        snap.take_ups(link, None)
        self.assertEqual(v.status("db"), "ALARM OL")
        self.assertEqual(dict(v.vars("db"))["ups.alarm"], "UPS selftest failed!")
        link.reply(q1(B_FAILED | B_SHUTDOWN))
        snap.take_ups(link, None)
        self.assertEqual(dict(v.vars("apps"))["ups.alarm"], "UPS selftest failed! Shutdown imminent!")
        link.reply(q1(0))
        snap.take_ups(link, None)
        self.assertEqual(v.status("apps"), "OL")
        self.assertNotIn("ups.alarm", dict(v.vars("apps")))

    def test_ob_and_lb_stay_the_sentinels_call(self):
        # OB/OL is the sentinel's own decision (snap.ob) and LB is never served, whatever the
        # UPS says: a stock upsmon seeing OB LB would shut down on its own, out of tier order
        snap, v = self.view()
        link = FakeLink(q1(B_OB | 0x40 | B_AVR, vout=260.0))
        snap.take_ups(link, None)
        self.assertEqual(v.status("apps"), "OL BOOST")
        snap.ob = True
        self.assertEqual(v.status("apps"), "OB BOOST")
        snap.lb = True
        self.assertEqual(v.status("apps"), "OB BOOST")
        self.assertEqual(snap.tokens(), "OB BOOST LB")  # the console shows LB

    def test_link_lost_serves_no_ups_statuses(self):
        snap, v = self.view()
        link = FakeLink(q1(B_FAILED | B_TEST))
        snap.take_ups(link, None)
        link.link_ok = False
        snap.take_ups(link, None)
        self.assertEqual(v.status("apps"), "OL")
        self.assertNotIn("ups.alarm", dict(v.vars("apps")))

    def test_contact_statuses(self):
        snap, v = self.view()
        con = ContactMonitor("OB=0;BYPASS=1;CAL=2;OFF=3;OVER=4;RB=5;LB=6", 7, 0)
        con.update(0, 0)
        snap.take_ups(None, con)
        self.assertEqual(v.status("apps"), "OL")
        con.update(0b1111110, 10)
        snap.take_ups(None, con)
        self.assertEqual(v.status("apps"), "OL RB BYPASS OFF OVER")
        self.assertEqual(v.status("db"), "OL RB BYPASS OFF OVER")

    def test_unchanged_inputs_are_not_recomputed(self):
        # the control step calls take_ups every 100 ms: same reply, same tuple, no allocation
        snap, v = self.view()
        link = FakeLink(q1(B_AVR, vout=200.0))
        snap.take_ups(link, None)
        first = snap.ups_toks
        self.assertEqual(first, ("TRIM",))
        snap.take_ups(link, None)
        self.assertIs(snap.ups_toks, first)


class TestVars(Base):
    def test_nominal_ratings_from_the_config(self):
        snap, v = self.view((120.0, 60))
        d = dict(v.vars("apps"))
        self.assertEqual((d["input.voltage.nominal"], d["input.frequency.nominal"]), (120, 60))
        snap, v = self.view((230.5, 50))
        d = dict(v.vars("db"))
        self.assertEqual((d["input.voltage.nominal"], d["input.frequency.nominal"]), (230.5, 50))

    def test_empty_coverage_lists_are_none(self):
        snap, v = self.view()
        snap.coverage["apps"] = [("sentinel.coverage.connected", ""),
                                 ("sentinel.coverage.expected", 0),
                                 ("sentinel.coverage.missing", "")]
        snap.coverage["db"] = [("sentinel.coverage.connected", "pg1,pg2"),
                               ("sentinel.coverage.expected", 3),
                               ("sentinel.coverage.missing", "pg3")]
        a = dict(v.vars("apps"))
        self.assertEqual((a["sentinel.coverage.connected"], a["sentinel.coverage.expected"],
                          a["sentinel.coverage.missing"]), ("none", 0, "none"))
        d = dict(v.vars("db"))
        self.assertEqual((d["sentinel.coverage.connected"], d["sentinel.coverage.missing"]),
                         ("pg1,pg2", "pg3"))
        for k, x in v.vars("apps") + v.vars("db"):
            self.assertNotEqual(str(x), "", k)


class TestPairMode(TestCase):
    def view(self, pair=True):
        snap = Snapshot(["apps", "db"])
        snap.seen = True
        snap.sampler_at = snap.at = 10000
        v = NutView("fake", ["apps", "db"], snap, lambda: 10000, 15000, pair=pair)
        fsd = {}
        v.fsd = lambda ups: fsd.get(ups, False)
        return snap, v, fsd

    def test_unreached_tiers_see_ol_on_battery(self):
        snap, v, fsd = self.view()
        snap.ob = True
        self.assertEqual((v.status("apps"), v.status("db")), ("OL", "OL"))
        snap.phases["apps"] = "fsd"
        self.assertEqual((v.status("apps"), v.status("db")), ("OB", "OL"))
        snap.phases["apps"] = "off"
        snap.phases["db"] = "idle"   # waiting for its delay: not reached yet
        self.assertEqual((v.status("apps"), v.status("db")), ("OB", "OL"))
        fsd["db"] = True             # a client's FSD reaches a tier too
        self.assertEqual(v.status("db"), "OB")
        self.assertEqual(snap.tokens(), "OB")  # the console sees the truth

    def test_unreached_tiers_see_neither_bypass_nor_off(self):
        snap, v, fsd = self.view()
        snap.ups_toks = ("BYPASS", "OFF", "TRIM")
        self.assertEqual(v.status("apps"), "OL TRIM")
        snap.phases["apps"] = "waiting"
        self.assertEqual(v.status("apps"), "OL BYPASS OFF TRIM")
        snap.ob = True
        self.assertEqual(v.status("apps"), "OB BYPASS OFF TRIM")

    def test_single_mode_serves_ob(self):
        snap, v, _ = self.view(pair=False)
        snap.ob = True
        self.assertEqual((v.status("apps"), v.status("db")), ("OB", "OB"))

    def test_redundancy_lost_alarm_combines_with_the_ups_alarm(self):
        snap, v, _ = self.view()
        snap.pair_alarm = "redundancy lost: no heartbeat"
        self.assertEqual(v.status("apps"), "ALARM OL")
        self.assertEqual(dict(v.vars("apps"))["ups.alarm"], "redundancy lost: no heartbeat")
        snap.alarm = "UPS selftest failed!"
        self.assertEqual(dict(v.vars("db"))["ups.alarm"],
                         "UPS selftest failed! redundancy lost: no heartbeat")
        snap.pair_alarm = ""
        self.assertEqual(dict(v.vars("db"))["ups.alarm"], "UPS selftest failed!")
        snap.alarm = ""
        self.assertEqual(v.status("apps"), "OL")
        self.assertFalse("ups.alarm" in dict(v.vars("apps")))

    def test_feed_alarm_on_every_tier_after_the_others(self):
        snap, v, _ = self.view(pair=False)
        snap.feed_alarm = "redundancy lost: feed B lost"
        self.assertEqual((v.status("apps"), v.status("db")), ("ALARM OL", "ALARM OL"))
        self.assertEqual(dict(v.vars("db"))["ups.alarm"], "redundancy lost: feed B lost")
        snap.alarm = "UPS selftest failed!"
        snap.pair_alarm = "redundancy lost: no heartbeat"
        self.assertEqual(dict(v.vars("apps"))["ups.alarm"], "UPS selftest failed! redundancy "
                         "lost: no heartbeat redundancy lost: feed B lost")
        snap.alarm = snap.pair_alarm = snap.feed_alarm = ""
        self.assertEqual(v.status("apps"), "OL")


class TestChannelVars(Base):
    def test_per_channel_inputs_on_every_tier_only_when_set(self):
        snap, v = self.view()
        names = [k for k, _ in v.vars("apps")]
        self.assertFalse([k for k in names if k.startswith("input.L") or k == "input.phases"])
        snap.inputs = [("input.L1-N.voltage", 231.2), ("input.L2-N.voltage", 0.0),
                       ("input.L3-N.voltage", 229.8), ("input.phases", 3)]
        for ups in ("apps", "db"):
            got = dict(v.vars(ups))
            self.assertEqual(got["input.phases"], 3)
            self.assertEqual(got["input.L2-N.voltage"], 0.0)
