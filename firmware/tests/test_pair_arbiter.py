# Pair mode's sensor arbitration (pure logic) and the state machine obeying it: one bad sensor
# never starts the plan alone; a corroborated loss does; with nothing to corroborate with, the
# sensor is acted on alone.
from mpunit import TestCase
from sentinel import config
from sentinel.pair.arbiter import CLEARED, RAISED, Arbiter, load_off_turn
from sentinel.statemachine import Inputs, StateMachine, ONLINE, ON_BATTERY, SHUTTING_DOWN

# frame codes: mains unknown/good/lost/bad; UPS none/OL/OB/OB LB
UNKNOWN, GOOD, LOST, BAD = 0, 1, 2, 3
NONE, OL, OB, OBLB = 0, 1, 2, 3
CONFIRM = 3000


def _arb():
    return Arbiter("A", "B", CONFIRM)


class Corroboration(TestCase):
    def test_own_loss_against_the_ups_on_line_is_held(self):
        a = _arb()
        a.update(0, LOST, OL, UNKNOWN)
        self.assertTrue(a.unconfirmed)

    def test_own_loss_against_a_good_peer_is_held(self):
        a = _arb()
        a.update(0, BAD, NONE, GOOD)
        self.assertTrue(a.unconfirmed)

    def test_the_ups_on_battery_corroborates(self):
        for ups in (OB, OBLB):
            a = _arb()
            a.update(0, LOST, ups, GOOD)
            self.assertFalse(a.unconfirmed)

    def test_the_peers_sensor_corroborates_even_before_the_ups_poll(self):
        a = _arb()
        a.update(0, LOST, OL, LOST)
        self.assertFalse(a.unconfirmed)
        a.update(100, LOST, NONE, BAD)
        self.assertFalse(a.unconfirmed)

    def test_nothing_to_corroborate_with_acts_alone(self):
        # peer dead or partitioned (no verdict) and no UPS status: the sensor alone decides
        a = _arb()
        self.assertIsNone(a.update(0, LOST, NONE, UNKNOWN))
        self.assertFalse(a.unconfirmed)
        self.assertIsNone(a.update(CONFIRM * 10, LOST, NONE, UNKNOWN))
        self.assertEqual(a.disagree, "")

    def test_own_good_is_never_held(self):
        a = _arb()
        a.update(0, GOOD, OL, LOST)
        self.assertFalse(a.unconfirmed)


class Outvote(TestCase):
    def test_a_good_sensor_against_the_peer_and_the_ups_on_battery_is_outvoted(self):
        for own in (GOOD, UNKNOWN):
            for ups in (OB, OBLB):
                for peer in (LOST, BAD):
                    a = _arb()
                    a.update(0, own, ups, peer)
                    self.assertTrue(a.outvoted)
                    self.assertFalse(a.unconfirmed)

    def test_one_view_against_a_good_sensor_is_not_enough(self):
        # the peer's sensor alone (UPS on line or unknown), or the UPS alone (peer good or not
        # alive): the sensor reading fine stands
        for ups, peer in ((OL, LOST), (NONE, LOST), (OB, GOOD), (OB, UNKNOWN), (NONE, BAD)):
            a = _arb()
            a.update(0, GOOD, ups, peer)
            self.assertFalse(a.outvoted)

    def test_the_alarm_says_so_and_clears(self):
        a = _arb()
        a.update(0, GOOD, OB, LOST)
        self.assertEqual(a.update(CONFIRM, GOOD, OB, LOST)[0], RAISED)
        self.assertEqual(a.disagree, "sensor disagrees: A reads mains good, B reads lost, UPS on "
                                     "battery; A outvoted")
        self.assertTrue(a.record()["outvoted"])
        self.assertEqual(a.update(CONFIRM + 100, GOOD, OL, GOOD)[0], CLEARED)
        self.assertFalse(a.outvoted)


class Disagreement(TestCase):
    def test_declared_after_confirm_ms_once_then_cleared(self):
        a = _arb()
        self.assertIsNone(a.update(0, LOST, OL, GOOD))
        self.assertIsNone(a.update(CONFIRM - 100, LOST, OL, GOOD))
        ch = a.update(CONFIRM, LOST, OL, GOOD)
        self.assertEqual(ch[0], RAISED)
        self.assertEqual(a.disagree, "sensor disagrees: A reads mains lost, B reads good, "
                                     "UPS on line; not acted on")
        self.assertIsNone(a.update(CONFIRM + 100, LOST, OL, GOOD))  # once per episode
        self.assertEqual(a.record(), {"cause": a.disagree, "own": "lost", "peer": "good",
                                      "ups": "on line", "held": True, "outvoted": False})
        ch = a.update(CONFIRM + 5000, GOOD, OL, GOOD)
        self.assertEqual(ch, (CLEARED, CONFIRM + 5000))
        self.assertEqual((a.disagree, a.unconfirmed), ("", False))
        self.assertIsNone(a.update(CONFIRM + 5100, GOOD, OL, GOOD))

    def test_the_onset_skew_of_a_real_outage_is_never_reported(self):
        # our sensor first; the peer's frame a heartbeat later; the UPS at its next poll
        a = _arb()
        seen = [a.update(0, LOST, OL, GOOD), a.update(500, LOST, OL, LOST),
                a.update(2000, LOST, OB, LOST), a.update(60000, LOST, OB, LOST)]
        self.assertEqual(seen, [None] * 4)
        self.assertEqual(a.disagree, "")

    def test_the_peer_sees_it_from_its_side(self):
        # B's sensor good, A (the peer) reads lost, A's UPS on line: B reports A's sensor
        b = Arbiter("B", "A", CONFIRM)
        b.update(0, GOOD, OL, LOST)
        self.assertFalse(b.unconfirmed)
        b.update(CONFIRM, GOOD, OL, LOST)
        self.assertEqual(b.disagree, "sensor disagrees: B reads mains good, A reads lost, "
                                     "UPS on line")

    def test_a_false_low_reading(self):
        a = Arbiter("B", "A", CONFIRM)
        a.update(0, BAD, OL, GOOD)
        a.update(CONFIRM, BAD, OL, GOOD)
        self.assertTrue(a.unconfirmed)
        self.assertEqual(a.disagree, "sensor disagrees: B reads mains out of tolerance, "
                                     "A reads good, UPS on line; not acted on")

    def test_the_alarm_follows_the_views_while_it_lasts(self):
        a = _arb()
        a.update(0, LOST, OL, GOOD)
        a.update(CONFIRM, LOST, OL, GOOD)
        a.update(CONFIRM + 100, LOST, OL, UNKNOWN)  # the peer dies meanwhile
        self.assertEqual(a.disagree, "sensor disagrees: A reads mains lost, B reads nothing "
                                     "(not alive), UPS on line; not acted on")

    def test_a_short_split_that_ends_raises_nothing(self):
        a = _arb()
        a.update(0, LOST, OL, GOOD)
        self.assertIsNone(a.update(1000, GOOD, OL, GOOD))
        self.assertIsNone(a.update(CONFIRM + 1000, LOST, OL, GOOD))  # counted afresh
        self.assertEqual(a.disagree, "")

    def test_a_step_that_changes_nothing_allocates_nothing(self):
        import gc
        a = _arb()
        a.update(0, LOST, OL, GOOD)
        a.update(CONFIRM, LOST, OL, GOOD)
        gc.collect()
        before = gc.mem_alloc()
        for t in range(10):
            a.update(CONFIRM + 100 * t, LOST, OL, GOOD)
        self.assertEqual(gc.mem_alloc() - before, 0)


class Rig:
    """A state machine fed the arbiter's verdict each step, as the control loop does."""

    def __init__(self, grace_s=5):
        cfg = config.defaults()
        cfg["policy"]["grace_s"] = grace_s
        self.sm = StateMachine(cfg, 0)
        self.arb = _arb()
        self.i = Inputs(ups_charge=100, ups_runtime=1200, ups_link_configured=False)
        self.now = 0
        self.recs = []

    def run(self, ms, own, ups, peer):
        i = self.i
        i.mains_lost = own == LOST
        i.mains_good = own == GOOD
        end = self.now + ms
        while self.now < end:
            self.now += 100
            self.arb.update(self.now, own, ups, peer)
            i.mains_unconfirmed = self.arb.unconfirmed
            i.mains_outvoted = self.arb.outvoted
            self.recs.extend(self.sm.update(self.now, i))


class StateMachineObeys(TestCase):
    def test_a_stuck_sensor_never_leaves_online(self):
        r = Rig()
        r.run(60000, LOST, NONE, GOOD)  # B with no UPS link, A says good
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.recs, [])
        self.assertTrue(r.arb.disagree.startswith("sensor disagrees"))

    def test_a_false_low_never_leaves_online(self):
        r = Rig()
        r.run(60000, BAD, OL, GOOD)
        self.assertEqual(r.sm.state, ONLINE)

    def test_corroborated_one_heartbeat_later_the_plan_runs(self):
        r = Rig(grace_s=5)
        r.run(500, LOST, NONE, GOOD)      # the peer's next frame has not come yet
        self.assertEqual(r.sm.state, ONLINE)
        r.run(100, LOST, NONE, LOST)
        self.assertEqual(r.sm.state, ON_BATTERY)
        self.assertEqual(r.sm.outage_start, 600)
        r.run(5000, LOST, NONE, LOST)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)

    def test_alone_the_sensor_decides(self):
        r = Rig(grace_s=5)
        r.run(5100, LOST, NONE, UNKNOWN)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)

    def test_an_outage_ends_when_the_ups_and_peer_say_mains_is_back(self):
        # our sensor stays stuck low after a real outage: the others' return counts
        r = Rig(grace_s=60)
        r.run(1000, LOST, NONE, LOST)
        self.assertEqual(r.sm.state, ON_BATTERY)
        r.run(3000, LOST, NONE, GOOD)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.recs[-1][3], "mains_restored")


    def test_a_sensor_stuck_at_good_is_outvoted_then_follows_the_return(self):
        # B's sensor stuck at good, no UPS link of its own; A's sensor and the UPS's OB (carried
        # in A's frames) say lost: B runs the plan as A does, and the return ends it
        r = Rig(grace_s=5)
        r.run(1000, GOOD, OL, GOOD)
        self.assertEqual(r.sm.state, ONLINE)
        r.run(100, GOOD, OB, LOST)
        self.assertEqual(r.sm.state, ON_BATTERY)
        self.assertEqual(r.recs[-1][3], "mains_outvoted")
        r.run(3000, GOOD, OB, LOST)
        r.run(3000, GOOD, OL, GOOD)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.recs[-1][3], "mains_restored")
        r.run(5100, GOOD, OB, LOST)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)

    def test_the_peer_alone_does_not_outvote(self):
        r = Rig(grace_s=5)
        r.run(10000, GOOD, NONE, LOST)
        self.assertEqual(r.sm.state, ONLINE)


class Frame:
    """The fields of a peer's frame.Message that load_off_turn reads."""

    def __init__(self, ups=1, state=2, loadoff=0):
        self.ups = ups
        self.state = state
        self.loadoff = loadoff


class LoadOffTurn(TestCase):
    def test_without_a_live_peer_a_sends_b_after_the_handover_wait(self):
        self.assertEqual(load_off_turn("A", None, 0, 13000, False, 5000), "send")
        self.assertEqual(load_off_turn("B", None, 0, 13000, False, 5000), "wait")
        self.assertEqual(load_off_turn("B", None, 4999, 13000, False, 5000), "wait")
        self.assertEqual(load_off_turn("B", None, 5000, 13000, False, 5000), "send")
        self.assertEqual(load_off_turn("B", None, 0, 13000), "send")   # no wait asked

    def test_a_load_off_already_at_the_ups_is_not_sent_again(self):
        # partitioned (no live peer) or a peer that died before its flag reached this one:
        # the UPS counts a shutdown down or has cut its output
        for me in ("A", "B"):
            for peer in (None, Frame(), Frame(state=2, loadoff=0)):
                for waited in (0, 99999):
                    self.assertEqual(load_off_turn(me, peer, waited, 13000, True, 5000), "ups")

    def test_both_read_the_ups_a_sends_b_waits_for_a_then_takes_over(self):
        self.assertEqual(load_off_turn("A", Frame(), 0, 13000), "send")
        self.assertEqual(load_off_turn("B", Frame(), 0, 13000), "wait")
        self.assertEqual(load_off_turn("B", Frame(), 12999, 13000), "wait")
        self.assertEqual(load_off_turn("B", Frame(), 13000, 13000), "send")

    def test_the_peer_s_sent_flag_inside_a_plan_means_it_is_done(self):
        for st in (2, 3, 4):  # SHUTTING_DOWN, LOAD_OFF, WAIT_MAINS
            self.assertEqual(load_off_turn("A", Frame(state=st, loadoff=1), 0, 13000), "peer")
            self.assertEqual(load_off_turn("B", Frame(state=st, loadoff=1), 99999, 13000),
                             "peer")

    def test_a_flag_left_from_an_earlier_outage_is_stale(self):
        for st in (0, 1, 5, 255):  # ONLINE, ON_BATTERY, RESTORING, unknown
            self.assertEqual(load_off_turn("A", Frame(state=st, loadoff=1), 0, 13000), "send")

    def test_a_peer_that_reads_no_ups_leaves_it_to_this_one(self):
        self.assertEqual(load_off_turn("B", Frame(ups=0), 0, 13000), "send")

