# The power state machine under a fake clock: every transition and its cause.
import json

from mpunit import TestCase
from sentinel import config
from sentinel import statemachine as sm_mod
from sentinel.statemachine import (Inputs, StateMachine, ONLINE, ON_BATTERY, SHUTTING_DOWN,
                                   LOAD_OFF, WAIT_MAINS, RESTORING)

STEP = 100  # ms between updates, as main's policy task would run


def make_cfg(**policy):
    cfg = config.defaults()
    cfg["policy"].update(policy)
    return cfg


class Rig:
    """A state machine, its inputs and a fake clock; collects every record."""

    def __init__(self, cfg=None, now=1000, sm=None):
        self.cfg = cfg or make_cfg()
        self.now = now
        self.sm = sm or StateMachine(self.cfg, now)
        self.i = Inputs(ups_charge=100, ups_runtime=1200)
        self.recs = []

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += STEP
            self.recs.extend(self.sm.update(self.now, self.i))

    def call(self, name, *args):
        self.recs.extend(getattr(self.sm, name)(self.now, *args))

    def outage(self):  # mains gone and the UPS on battery
        self.i.mains_lost = True
        self.i.mains_good = False
        self.i.ups_on_battery = True

    def mains_back(self):
        self.i.mains_lost = False
        self.i.mains_good = True
        self.i.ups_on_battery = False

    def transitions(self):
        return [(r[1], r[2], r[3]) for r in self.recs if r[1] != r[2]]

    def events(self):
        return [r[3] for r in self.recs if r[1] == r[2]]

    def first(self, to):
        for r in self.recs:
            if r[2] == to and r[1] != to:
                return r
        raise AssertionError("no transition to %s in %r" % (to, self.transitions()))


class TestOutage(TestCase):
    def test_steady_online_records_nothing(self):
        r = Rig()
        r.run(10000)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.recs, [])

    def test_flicker_shorter_than_grace_is_only_logged(self):
        r = Rig()
        r.i.mains_lost = True  # fast trigger only: the UPS has not reported OB yet
        r.run(500)
        self.assertEqual(r.sm.state, ON_BATTERY)
        r.i.mains_lost = False
        r.run(1900)
        self.assertEqual(r.sm.state, ON_BATTERY)  # return not yet stable for 2 s
        r.run(200)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.transitions(), [(ONLINE, ON_BATTERY, "mains_lost"),
                                           (ON_BATTERY, ONLINE, "mains_restored")])
        back = r.first(ONLINE)
        self.assertEqual(back[4], 500)  # detail: how long the outage lasted
        self.assertEqual(r.sm.plan_id, 0)  # no plan was ever made

    def test_grace_expiry_starts_shutdown_exactly_on_time(self):
        r = Rig()
        r.outage()
        r.run(STEP)
        t0 = r.now
        r.run(59000)
        self.assertEqual(r.sm.state, ON_BATTERY)
        r.run(1000)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        rec = r.first(SHUTTING_DOWN)
        self.assertEqual(rec[3], "grace_expired")
        self.assertEqual(rec[0] - t0, 60000)
        self.assertEqual(r.sm.shutdown_cause, "grace_expired")
        self.assertEqual(r.sm.plan_id, 1)
        self.assertFalse(r.sm.ponr)

    def test_short_returns_do_not_reset_grace(self):
        r = Rig()
        r.outage()
        r.run(STEP)
        t0 = r.now
        for _ in range(3):  # 20 s out, 1.9 s back: the grace countdown keeps running
            r.run(20000 - STEP)
            r.mains_back()
            r.run(1900)
            r.outage()
            r.run(STEP)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        rec = r.first(SHUTTING_DOWN)
        self.assertEqual(rec[3], "grace_expired")
        self.assertEqual(rec[0] - t0, 60000)
        self.assertEqual([t[1] for t in r.transitions()], [ON_BATTERY, SHUTTING_DOWN])

    def test_ups_on_battery_alone_starts_an_outage(self):
        r = Rig()
        r.i.ups_on_battery = True
        r.run(STEP)
        self.assertEqual(r.transitions(), [(ONLINE, ON_BATTERY, "ups_on_battery")])

    def test_mains_out_of_tolerance_counts_only_without_ups_data(self):
        r = Rig()
        r.i.mains_good = False  # e.g. a generator off frequency, the UPS still on line
        r.run(5000)
        self.assertEqual(r.sm.state, ONLINE)
        r.i.ups_link_configured = False  # now the sensor is all we have
        r.run(STEP)
        self.assertEqual(r.sm.state, ON_BATTERY)
        self.assertEqual(r.transitions()[-1][2], "mains_out_of_tolerance")

    def test_no_information_keeps_last_belief(self):
        r = Rig()
        r.outage()
        r.run(1000)
        r.i.ups_link_ok = False
        r.i.mains_present = False
        r.i.mains_lost = False
        r.i.mains_good = True  # meaningless without the sensor
        r.sm.link_lost_shutdown = False
        r.run(10000)
        self.assertEqual(r.sm.state, ON_BATTERY)
        self.assertTrue(r.sm.on_battery)


class TestTriggers(TestCase):
    def trigger(self, cause, setup, **policy):
        r = Rig(make_cfg(**policy))
        r.outage()
        setup(r.i)
        r.run(STEP)
        self.assertEqual(r.transitions(), [(ONLINE, ON_BATTERY, "mains_lost"),
                                           (ON_BATTERY, SHUTTING_DOWN, cause)])
        self.assertEqual(r.sm.shutdown_cause, cause)
        return r

    def test_charge_floor(self):
        def s(i):
            i.ups_charge = 39
        self.trigger("charge_floor", s)

    def test_charge_at_floor_is_not_below(self):
        r = Rig()
        r.outage()
        r.i.ups_charge = 40
        r.run(10000)
        self.assertEqual(r.sm.state, ON_BATTERY)

    def test_runtime_floor(self):
        def s(i):
            i.ups_runtime = 299
        self.trigger("runtime_floor", s)

    def test_low_battery_on_battery_is_immediate(self):
        def s(i):
            i.ups_low_battery = True
        self.trigger("ups_low_battery", s)

    def test_link_lost_on_battery(self):
        def s(i):
            i.ups_link_ok = False
        r = self.trigger("ups_link_lost", s)
        self.assertIn("ups_link_lost", r.events())

    def test_link_lost_on_battery_ignored_when_configured_off(self):
        r = Rig(make_cfg(shutdown_on_link_lost=False))
        r.outage()
        r.run(STEP)
        r.i.ups_link_ok = False
        r.run(30000)
        self.assertEqual(r.sm.state, ON_BATTERY)  # still on battery per the mains sensor
        r.run(30000)
        self.assertEqual(r.first(SHUTTING_DOWN)[3], "grace_expired")

    def test_link_lost_on_line_is_only_an_event(self):
        r = Rig()
        r.i.ups_link_ok = False
        r.run(60000)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.events(), ["ups_link_lost"])
        r.i.ups_link_ok = True
        r.run(STEP)
        self.assertEqual(r.events(), ["ups_link_lost", "ups_link_restored"])

    def test_unconfigured_link_never_triggers(self):
        r = Rig()
        r.i.ups_link_configured = False
        r.i.ups_link_ok = False
        r.i.ups_charge = 5  # stale numbers from nowhere are ignored
        r.i.mains_lost = True
        r.i.mains_good = False
        r.run(59000)
        self.assertEqual(r.sm.state, ON_BATTERY)
        r.run(1100)
        self.assertEqual(r.first(SHUTTING_DOWN)[3], "grace_expired")

    def test_zero_grace_shuts_down_at_once(self):
        self.trigger("grace_expired", lambda i: None, grace_s=0)


class TestLowBatteryOnLine(TestCase):
    def test_lb_flash_on_line_is_ignored(self):
        r = Rig()
        for _ in range(5):
            r.i.ups_low_battery = True
            r.run(2900)
            r.i.ups_low_battery = False
            r.run(1000)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.events(), ["lb_flash"] * 5)
        # and a later outage still gets its full grace
        r.outage()
        r.run(STEP)
        t0 = r.now
        r.run(60000)
        self.assertEqual(r.first(SHUTTING_DOWN)[3], "grace_expired")
        self.assertEqual(r.first(SHUTTING_DOWN)[0] - t0, 60000)

    def test_lasting_lb_on_line_makes_the_next_outage_critical(self):
        r = Rig()
        r.i.ups_low_battery = True
        r.run(10000)
        self.assertEqual(r.sm.state, ONLINE)  # never shuts down on line
        self.assertEqual(r.events(), ["low_battery_on_line"])
        r.outage()
        r.run(STEP)
        self.assertEqual(r.first(SHUTTING_DOWN)[3], "ups_low_battery")


class TestPointOfNoReturn(TestCase):
    def start_shutdown(self):
        r = Rig()
        r.outage()
        r.run(60000 + STEP)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        r.recs = []
        return r

    def test_mains_back_before_ponr_cancels(self):
        r = self.start_shutdown()
        pid = r.sm.plan_id
        r.call("tier_progress", "apps", "waiting", pid)
        self.assertEqual(r.sm.plan, {"apps": "waiting"})
        r.mains_back()
        r.run(1000)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)  # a 1 s return is not trusted
        r.run(1000 + STEP)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.transitions(), [(SHUTTING_DOWN, ONLINE, "mains_restored")])
        self.assertEqual(r.sm.plan, {})
        self.assertIsNone(r.sm.shutdown_cause)
        # a late report from the cancelled plan changes nothing
        r.call("sequence_done", pid)
        self.assertEqual(r.sm.state, ONLINE)

    def test_mains_back_after_ponr_completes_the_cycle(self):
        r = self.start_shutdown()
        pid = r.sm.plan_id
        r.call("tier_progress", "apps", "fsd", pid)
        self.assertTrue(r.sm.ponr)
        self.assertEqual(r.events(), ["point_of_no_return"])
        r.mains_back()
        r.run(5000)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        self.assertEqual(r.events(), ["point_of_no_return", "mains_restored_after_ponr"])
        r.call("tier_progress", "apps", "down", pid)
        r.call("sequence_done", pid)
        self.assertEqual(r.sm.state, LOAD_OFF)
        t_off = r.now
        r.run(60000 + sm_mod.LOAD_OFF_MARGIN_MS)
        self.assertEqual(r.sm.state, WAIT_MAINS)
        self.assertEqual(r.first(WAIT_MAINS)[0] - t_off, 90000)
        r.run(60000)
        self.assertEqual(r.sm.state, RESTORING)
        self.assertEqual(r.first(RESTORING)[0] - r.first(WAIT_MAINS)[0], 60000)
        self.assertEqual(r.sm.plan_id, pid + 1)
        r.call("sequence_done", pid + 1)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.transitions(), [(SHUTTING_DOWN, LOAD_OFF, "sequence_done"),
                                           (LOAD_OFF, WAIT_MAINS, "load_off_elapsed"),
                                           (WAIT_MAINS, RESTORING, "mains_stable"),
                                           (RESTORING, ONLINE, "restore_done")])

    def test_explicit_ponr_and_sequence_done_without_tiers(self):
        r = self.start_shutdown()
        r.call("pass_point_of_no_return")
        self.assertTrue(r.sm.ponr)
        self.assertFalse(r.sm.cancellable)
        r = self.start_shutdown()
        r.call("sequence_done")  # no tiers at all: done implies the point is passed
        self.assertEqual(r.events(), ["point_of_no_return"])
        self.assertEqual(r.sm.state, LOAD_OFF)

    def test_load_off_done_notification(self):
        r = self.start_shutdown()
        r.call("sequence_done")
        r.call("load_off_done")
        self.assertEqual(r.sm.state, WAIT_MAINS)
        self.assertEqual(r.transitions()[-1][2], "load_off_done")

    def test_wait_mains_needs_stable_good_mains_and_charge(self):
        r = self.start_shutdown()
        r.call("sequence_done")
        r.call("load_off_done")
        r.run(30000)  # still on battery
        self.assertEqual(r.sm.state, WAIT_MAINS)
        r.mains_back()
        r.i.ups_charge = 10
        r.run(50000)
        r.i.mains_good = False  # a frequency excursion restarts the stability count
        r.run(STEP)
        r.i.mains_good = True
        r.run(59000)
        self.assertEqual(r.sm.state, WAIT_MAINS)
        r.run(1000 + STEP)
        self.assertEqual(r.sm.state, WAIT_MAINS)  # stable now, but the battery is at 10 %
        self.assertEqual(r.events(), ["point_of_no_return", "waiting_for_charge"])
        r.i.ups_charge = 20
        r.run(STEP)
        self.assertEqual(r.sm.state, RESTORING)

    def waiting_mains_back(self):
        r = self.start_shutdown()
        r.call("sequence_done")
        r.call("load_off_done")
        r.i.ups_output_off = True  # the UPS cut its load and keeps it off for restore_min
        r.mains_back()
        return r

    def test_restore_waits_for_the_ups_output(self):
        r = self.waiting_mains_back()
        r.run(r.sm.stable_ms + 30000)
        self.assertEqual(r.sm.state, WAIT_MAINS)
        self.assertEqual(r.events(), ["point_of_no_return", "waiting_for_ups_output"])
        r.i.ups_output_off = False  # restore_min elapsed: outlets powered
        r.run(STEP)
        self.assertEqual(r.sm.state, RESTORING)
        self.assertNotIn("ups_output_wait_expired", r.events())

    def test_restore_goes_ahead_when_the_output_never_comes_back(self):
        r = self.waiting_mains_back()
        r.run(r.sm.output_wait_ms - 2 * STEP)
        self.assertEqual(r.sm.state, WAIT_MAINS)
        r.run(4 * STEP)
        self.assertEqual(r.sm.state, RESTORING)
        self.assertEqual(r.events(), ["point_of_no_return", "waiting_for_ups_output",
                                      "ups_output_wait_expired"])

    def test_output_flag_ignored_without_a_working_link(self):
        r = self.waiting_mains_back()
        r.i.ups_link_ok = False
        r.run(r.sm.stable_ms + 2 * STEP)
        self.assertEqual(r.sm.state, RESTORING)
        self.assertNotIn("waiting_for_ups_output", r.events())


class TestLoadOffCompletion(TestCase):
    """The end of LOAD_OFF is the machine's own rule, from its inputs: a UPS on contacts and
    one on a Q1 link behave the same, and so does a board that restarts from the cut."""

    def load_off(self, cfg=None):
        r = Rig(cfg)
        r.outage()
        r.run(60000 + STEP)
        r.call("sequence_done")
        self.assertEqual(r.sm.state, LOAD_OFF)
        r.recs = []
        return r

    def test_contacts_only_ups_output_off_completes_the_load_off(self):
        cfg = make_cfg()
        cfg["ups"]["link"] = "contacts"
        r = self.load_off(cfg)
        # what the control loop sets for a contact UPS: its ready flag and an OFF contact
        r.i.ups_link_configured = True
        r.i.ups_link_ok = True
        r.i.ups_output_off = True
        r.run(STEP)
        self.assertEqual(r.sm.state, WAIT_MAINS)
        self.assertEqual(r.transitions(), [(LOAD_OFF, WAIT_MAINS, "load_off_done")])

    def test_q1_output_off_completes_the_load_off_in_update(self):
        r = self.load_off()
        r.run(5000)
        self.assertEqual(r.sm.state, LOAD_OFF)  # output still on: the UPS counts down
        r.i.ups_output_off = True
        r.run(STEP)
        self.assertEqual(r.transitions(), [(LOAD_OFF, WAIT_MAINS, "load_off_done")])

    def test_output_off_from_a_dead_link_does_not_count(self):
        r = self.load_off()
        r.i.ups_output_off = True
        r.i.ups_link_ok = False
        r.run(5000)
        self.assertEqual(r.sm.state, LOAD_OFF)

    def test_pair_without_a_ups_link_leaves_on_the_peer_s_output_off(self):
        r = self.load_off()
        r.i.ups_link_configured = False
        r.run(5000)
        self.assertEqual(r.sm.state, LOAD_OFF)
        r.i.peer_output_off = True  # an alive peer's frame: its UPS link shows the output off
        r.run(STEP)
        self.assertEqual(r.transitions(), [(LOAD_OFF, WAIT_MAINS, "load_off_done")])

    def test_the_peer_s_word_does_not_override_this_sentinel_s_own_ups_link(self):
        r = self.load_off()
        r.i.peer_output_off = True
        r.run(5000)
        self.assertEqual(r.sm.state, LOAD_OFF)  # our UPS still counts down: we believe it

    def test_power_on_boot_resuming_load_off_completes_it(self):
        r = self.load_off()
        d = json.loads(json.dumps(r.sm.to_dict(r.now)))
        r2 = Rig(r.cfg, r.now + 60000, StateMachine.from_dict(r.cfg, d, r.now + 60000))
        r2.i = Inputs(ups_charge=100, ups_runtime=1200, ups_on_battery=True, mains_lost=True,
                      mains_good=False, powered_up=True)
        r2.run(STEP)
        self.assertEqual(r2.transitions(), [(LOAD_OFF, WAIT_MAINS, "load_off_done")])
        self.assertFalse(r2.i.powered_up)  # consumed: it happens once per boot

    def test_resumed_on_battery_waits_for_the_link_to_answer(self):
        # A sentinel that saved ON_BATTERY reboots: its Q1 link has not answered yet. That is
        # not a lost link, so it must not shut the site down before the UPS had time to answer.
        r = Rig()
        r.outage()
        r.run(STEP)
        self.assertEqual(r.sm.state, ON_BATTERY)
        d = json.loads(json.dumps(r.sm.to_dict(r.now)))
        r2 = Rig(r.cfg, r.now + 5000, StateMachine.from_dict(r.cfg, d, r.now + 5000))
        r2.i = Inputs(mains_lost=True, mains_good=False, ups_link_ok=False, ups_link_known=False)
        r2.run(3000)
        self.assertEqual(r2.sm.state, ON_BATTERY)
        self.assertEqual(r2.events(), [])  # no ups_link_lost either
        # the link answers and the UPS is on line: the outage ends as usual
        r2.i = Inputs(ups_charge=100, ups_runtime=1200)
        r2.run(30000)
        self.assertEqual(r2.sm.state, ONLINE)

    def test_resumed_on_battery_with_a_link_that_never_answers(self):
        # once the link module declares it lost (link_lost_s without a reply), the policy holds
        r = Rig()
        r.outage()
        r.run(STEP)
        d = json.loads(json.dumps(r.sm.to_dict(r.now)))
        r2 = Rig(r.cfg, r.now + 5000, StateMachine.from_dict(r.cfg, d, r.now + 5000))
        r2.i = Inputs(mains_lost=True, mains_good=False, ups_link_ok=False, ups_link_known=False)
        r2.run(3000)
        r2.i.ups_link_known = True
        r2.run(STEP)
        self.assertEqual(r2.first(SHUTTING_DOWN)[3], "ups_link_lost")

    def test_powered_up_outside_load_off_changes_nothing(self):
        r = Rig()
        r.i.powered_up = True
        r.run(1000)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.recs, [])
        self.assertFalse(r.i.powered_up)


class TestSecondOutage(TestCase):
    def restoring(self):
        r = Rig()
        r.outage()
        r.run(60000 + STEP)
        r.call("sequence_done")
        r.call("load_off_done")
        r.mains_back()
        r.run(60000)
        self.assertEqual(r.sm.state, WAIT_MAINS)  # stable since the first update after the return
        r.run(STEP)
        self.assertEqual(r.sm.state, RESTORING)
        r.call("tier_progress", "storage", "up", r.sm.plan_id)
        r.recs = []
        return r

    def test_outage_during_restore_starts_a_new_shutdown(self):
        r = self.restoring()
        pid = r.sm.plan_id
        r.outage()
        r.run(STEP)
        self.assertEqual(r.sm.state, ON_BATTERY)
        self.assertEqual(r.sm.resume_to, RESTORING)
        r.run(60000)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        self.assertEqual(r.sm.plan_id, pid + 1)
        self.assertEqual(r.sm.plan, {})
        self.assertFalse(r.sm.ponr)
        self.assertTrue(r.sm.cancellable)
        # the old restore plan's report is stale
        r.call("sequence_done", pid)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        r.call("tier_progress", "apps", "fsd", pid + 1)
        r.call("sequence_done", pid + 1)
        self.assertEqual(r.sm.state, LOAD_OFF)
        self.assertEqual(r.transitions(), [(RESTORING, ON_BATTERY, "mains_lost"),
                                           (ON_BATTERY, SHUTTING_DOWN, "grace_expired"),
                                           (SHUTTING_DOWN, LOAD_OFF, "sequence_done")])

    def test_flicker_during_restore_resumes_restoring(self):
        r = self.restoring()
        pid = r.sm.plan_id
        r.i.mains_lost = True
        r.run(300)
        r.i.mains_lost = False
        r.run(2000 + STEP)
        self.assertEqual(r.sm.state, RESTORING)
        self.assertEqual(r.sm.plan_id, pid + 1)  # the sequencer walks the power-on again
        self.assertEqual(r.transitions(), [(RESTORING, ON_BATTERY, "mains_lost"),
                                           (ON_BATTERY, RESTORING, "mains_restored")])
        r.call("sequence_done", pid + 1)
        self.assertEqual(r.sm.state, ONLINE)

    def test_cancel_of_second_shutdown_goes_back_to_restoring(self):
        r = self.restoring()
        r.outage()
        r.run(60000 + STEP)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        r.mains_back()
        r.run(2000 + STEP)
        self.assertEqual(r.sm.state, RESTORING)


class TestCommands(TestCase):
    def test_drill_cycle(self):
        r = Rig()
        r.i.commands.append("drill")
        r.run(STEP)
        self.assertEqual(r.i.commands, [])  # consumed
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        self.assertTrue(r.sm.drill)
        r.call("tier_progress", "apps", "fsd")
        self.assertFalse(r.sm.ponr)  # a rehearsal never passes the point of no return
        r.call("sequence_done")
        self.assertEqual(r.sm.state, RESTORING)
        self.assertTrue(r.sm.drill)
        r.call("sequence_done")
        self.assertEqual(r.sm.state, ONLINE)
        self.assertFalse(r.sm.drill)
        self.assertEqual(r.transitions(), [(ONLINE, SHUTTING_DOWN, "drill"),
                                           (SHUTTING_DOWN, RESTORING, "sequence_done"),
                                           (RESTORING, ONLINE, "drill_done")])

    def test_real_outage_aborts_drill(self):
        r = Rig()
        r.i.commands.append("drill")
        r.run(1000)
        r.outage()
        r.run(STEP)
        self.assertEqual(r.sm.state, ON_BATTERY)
        self.assertFalse(r.sm.drill)
        self.assertIn("drill_aborted", r.events())
        r.run(60000)
        self.assertEqual(r.first(SHUTTING_DOWN)[3], "drill")
        self.assertEqual(r.sm.shutdown_cause, "grace_expired")

    def test_drill_rejected_unless_online_and_abort(self):
        r = Rig()
        r.outage()
        r.run(STEP)
        r.i.commands.append("drill")
        r.run(STEP)
        self.assertEqual(r.events(), ["command_rejected"])
        r.mains_back()
        r.run(3000)
        r.i.commands.append("drill")
        r.run(STEP)
        r.i.commands.append("abort")
        r.run(STEP)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.transitions()[-1][2], "drill_aborted")

    def test_manual_shutdown_is_not_cancelled_by_mains(self):
        r = Rig()
        r.i.commands.append("shutdown")
        r.run(10000)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        self.assertEqual(r.sm.shutdown_cause, "manual")
        r.i.commands.append("abort")
        r.run(STEP)
        self.assertEqual(r.sm.state, ONLINE)
        self.assertEqual(r.transitions()[-1], (SHUTTING_DOWN, ONLINE, "aborted"))

    def test_abort_refused_after_ponr_and_unknown_command(self):
        r = Rig()
        r.i.commands.append("shutdown")
        r.run(STEP)
        r.call("pass_point_of_no_return")
        r.i.commands.extend(["abort", "reboot-everything"])
        r.run(STEP)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
        self.assertEqual(r.events(), ["point_of_no_return", "command_rejected", "command_rejected"])


class TestPersistence(TestCase):
    def roundtrip(self, r, down_ms=0, elapsed_ms=0):
        d = json.loads(json.dumps(r.sm.to_dict(r.now)))  # as the journal stores it
        r.now += down_ms
        sm = StateMachine.from_dict(r.cfg, d, r.now, elapsed_ms)
        r2 = Rig(r.cfg, r.now, sm)
        r2.i = r.i
        return r2

    def test_resume_mid_plan_after_ponr(self):
        r = Rig()
        r.outage()
        r.run(60000 + STEP)
        pid = r.sm.plan_id
        r.call("tier_progress", "apps", "fsd", pid)
        r.call("tier_progress", "apps", "down", pid)
        r.call("tier_progress", "db", "fsd", pid)
        r2 = self.roundtrip(r, down_ms=7000)
        self.assertEqual(r2.sm.state, SHUTTING_DOWN)
        self.assertEqual(r2.sm.plan, {"apps": "down", "db": "fsd"})
        self.assertEqual(r2.sm.plan_id, pid)
        self.assertTrue(r2.sm.ponr)
        self.assertEqual(r2.sm.shutdown_cause, "grace_expired")
        self.assertEqual([x[3] for x in r2.sm.history()], ["resumed"])
        r2.mains_back()
        r2.run(5000)
        self.assertEqual(r2.sm.state, SHUTTING_DOWN)  # still past the point of no return
        r2.call("sequence_done", pid)
        self.assertEqual(r2.sm.state, LOAD_OFF)

    def test_resume_on_battery_keeps_grace_countdown(self):
        r = Rig()
        r.outage()
        r.run(STEP)
        t0 = r.now
        r.run(30000)
        r2 = self.roundtrip(r, down_ms=5000, elapsed_ms=5000)  # RTC says the board was down 5 s
        self.assertEqual(r2.sm.outage_start, t0)
        r2.run(20000)
        self.assertEqual(r2.sm.state, ON_BATTERY)
        r2.run(5000)
        self.assertEqual(r2.first(SHUTTING_DOWN)[0] - t0, 60000)

    def test_resume_before_ponr_is_still_cancellable(self):
        r = Rig()
        r.outage()
        r.run(60000 + STEP)
        r2 = self.roundtrip(r, down_ms=3000)
        self.assertTrue(r2.sm.cancellable)
        r2.mains_back()
        r2.run(2000 + STEP)
        self.assertEqual(r2.sm.state, ONLINE)

    def test_resume_load_off_and_restoring(self):
        r = Rig()
        r.outage()
        r.run(60000 + STEP)
        r.call("sequence_done")
        r2 = self.roundtrip(r, down_ms=120000)  # the board lost power with its servers
        self.assertEqual(r2.sm.state, LOAD_OFF)
        r2.i.powered_up = True  # a power-on reset while in LOAD_OFF
        r2.run(STEP)
        self.assertEqual(r2.sm.state, WAIT_MAINS)
        r2.mains_back()
        r2.run(60000 + STEP)
        self.assertEqual(r2.sm.state, RESTORING)
        r3 = self.roundtrip(r2, down_ms=1000)
        self.assertEqual(r3.sm.state, RESTORING)
        self.assertEqual(r3.sm.plan_id, r2.sm.plan_id)
        r3.call("sequence_done", r2.sm.plan_id)
        self.assertEqual(r3.sm.state, ONLINE)

    def test_invalid_dicts_give_a_fresh_machine(self):
        cfg = make_cfg()
        good = StateMachine(cfg, 0).to_dict(0)
        bad = [{}, None, {"state": "EXPLODING"}]
        for k, v in (("state", "EXPLODING"), ("plan", []), ("v", 99), ("resume_to", LOAD_OFF),
                     ("age_ms", "x")):
            d = dict(good)
            d[k] = v
            bad.append(d)
        d = dict(good)
        d["state"] = ON_BATTERY  # an outage without its start time
        bad.append(d)
        for d in bad:
            sm = StateMachine.from_dict(cfg, d, 500)
            self.assertEqual(sm.state, ONLINE)
            self.assertEqual([x[3] for x in sm.history()], ["resume_invalid"])


class TestHistory(TestCase):
    def test_ring_keeps_the_latest_in_order(self):
        r = Rig(sm=StateMachine(make_cfg(), 1000, history_len=4))
        for _ in range(5):
            r.i.mains_lost = True
            r.run(STEP)
            r.i.mains_lost = False
            r.run(2000 + STEP)
        h = r.sm.history()
        self.assertEqual(len(h), 4)
        self.assertEqual(h, r.recs[-4:])
        self.assertEqual([x[2] for x in h], [ON_BATTERY, ONLINE, ON_BATTERY, ONLINE])

    def test_update_does_not_allocate_when_nothing_happens(self):
        try:
            import micropython
            lock = micropython.heap_lock
        except (ImportError, AttributeError):
            self.skipTest("needs MicroPython")
        r = Rig()
        r.run(STEP)
        r.outage()
        r.run(2 * STEP)  # now timing the grace; the last update recorded nothing
        sm, i = r.sm, r.i
        now = r.now
        lock()
        try:
            for k in range(50):
                sm.update(now + k * STEP, i)
        finally:
            micropython.heap_unlock()
        self.assertEqual(sm.state, ON_BATTERY)


class TestClientFsd(TestCase):
    def test_allowed_says_what_update_would_obey(self):
        r = Rig()
        self.assertEqual([r.sm.allowed(c) for c in ("drill", "drill_stop", "shutdown", "abort")],
                         [True, False, True, False])
        r.i.commands.append("drill")
        r.run(STEP)
        self.assertEqual([r.sm.allowed(c) for c in ("drill", "drill_stop", "shutdown", "abort")],
                         [False, True, False, True])
        self.assertFalse(r.sm.allowed("bogus"))

    def test_client_fsd_is_a_forced_shutdown_from_its_tier_and_is_persisted(self):
        r = Rig()
        r.i.commands.append(("fsd", "db"))
        r.run(STEP)
        sm = r.sm
        self.assertEqual((sm.state, sm.shutdown_cause, sm.forced_tier, sm.cancellable),
                         (SHUTTING_DOWN, sm_mod.CLIENT_FSD, "db", False))
        d = json.loads(json.dumps(sm.to_dict(r.now)))
        self.assertEqual(StateMachine.from_dict(r.cfg, d, 0).forced_tier, "db")
        del d["forced_tier"]  # saved by earlier firmware
        back = StateMachine.from_dict(r.cfg, d, 0)
        self.assertEqual((back.state, back.forced_tier), (SHUTTING_DOWN, None))

    def test_a_running_outage_shutdown_is_no_longer_cancelled_by_mains(self):
        r = Rig(make_cfg(grace_s=0))
        r.outage()
        r.run(500)
        self.assertEqual((r.sm.state, r.sm.cancellable), (SHUTTING_DOWN, True))
        r.i.commands.append(("fsd", "apps"))
        r.run(STEP)
        self.assertFalse(r.sm.cancellable)
        self.assertEqual(r.recs[-1][3], sm_mod.CLIENT_FSD)
        r.i.mains_lost = False
        r.i.mains_good = True
        r.i.ups_on_battery = False
        r.run(10000)
        self.assertEqual(r.sm.state, SHUTTING_DOWN)
