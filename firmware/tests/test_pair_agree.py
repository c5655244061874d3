# Pair mode's plan agreement (pair/agree.py) with the real state machine and sequencer, the
# sequencer tests' fake NUT server and fleet, and a fake peer link carrying the peer's last
# authenticated frame: one plan id per outage, a walk that catches up with the peer's and
# never goes back.
from mpunit import TestCase
from sentinel import statemachine as S
from sentinel.pair import agree as G
from sentinel.pair.frame import Message
from sentinel.pair.peer import ALIVE, DEAD
from test_sequencer import STEP, Rig


class FakePeer:
    def __init__(self):
        self.state = ALIVE
        self.msg = None


class FakeLink:
    def __init__(self):
        self.peer = FakePeer()

    def says(self, state, plan_id, done=0, flags=G.REAL_PLAN):
        # the fields of frame.Message in frame order
        self.peer.msg = Message((b"PSP1", ord("A"), 5, 1, 0, 2, 2, state, 1 | flags,
                                 plan_id, done, 0))


def _pair_rig():
    """Board B: a Rig whose sequencer agrees with a fake peer A; B's inputs take A's plan id
    as pair/link.gate does."""
    r = Rig()
    link = FakeLink()
    r.seq.attach_agree(G.agreement(link))
    tick = r.tick

    def gated():
        m = G.peer_plan(link)
        r.i.peer_plan_id = 0 if m is None else m.plan_id
        tick()
    r.tick = gated
    return r, link


class JoinPlan(TestCase):
    def test_on_battery_the_peer_s_plan_ends_the_grace_and_its_id_is_taken(self):
        r, link = _pair_rig()
        r.sm.grace_ms = 600000
        r.outage()
        r.run(1000)
        self.assertEqual(r.sm.state, S.ON_BATTERY)  # grace still running here
        link.says(2, 41)
        r.tick()
        self.assertEqual(r.sm.state, S.SHUTTING_DOWN)
        self.assertEqual(r.sm.shutdown_cause, "peer_plan")
        self.assertEqual((r.sm.plan_id, r.seq.plan_id), (41, 41))
        self.assertEqual([x[3] for x in r.recs if x[3] == "plan_joined"], ["plan_joined"])
        self.assertEqual(r.records("shutdown_start")[0][1]["plan"], 41)

    def test_on_line_here_the_peer_s_plan_starts_nothing(self):
        r, link = _pair_rig()
        link.says(2, 41)
        r.run(5000)
        self.assertEqual(r.sm.state, S.ONLINE)
        self.assertEqual(r.fsd_times(), [])

    def test_a_drill_or_a_dead_peer_is_not_joined(self):
        for how in ("drill", "dead"):
            r, link = _pair_rig()
            r.sm.grace_ms = 600000
            link.says(2, 41, flags=0 if how == "drill" else G.REAL_PLAN)
            if how == "dead":
                link.peer.state = DEAD
            r.outage()
            r.run(3000)
            self.assertEqual(r.sm.state, S.ON_BATTERY, how)

    def test_mid_plan_a_newer_peer_id_renames_the_plan_without_restarting_the_walk(self):
        r, link = _pair_rig()
        r.outage()
        r.run_until(r.state(S.SHUTTING_DOWN))
        r.run_until(lambda: r.seq.phase("apps") == "done")
        own = r.sm.plan_id
        link.says(2, own + 7, done=0, flags=G.REAL_PLAN)
        r.tick()
        self.assertEqual((r.sm.plan_id, r.seq.plan_id), (own + 7, own + 7))
        self.assertEqual(len(r.records("shutdown_start")), 1)       # no second walk
        self.assertEqual(len(r.records("shutdown_cancelled")), 0)
        self.assertEqual(r.seq.phase("apps"), "done")                # nothing undone
        self.assertEqual([f for f in r.fsd_times(False)], [])        # no FSD cleared
        r.run_until(r.state(S.LOAD_OFF))
        self.assertEqual(r.sm.plan, {"apps": "done", "databases": "done", "storage": "done"})
        # an older peer id is never taken
        link.says(2, own)
        r.tick()
        self.assertEqual(r.sm.plan_id, own + 7)


class CatchUp(TestCase):
    def _in_plan(self, r, link):
        r.sm.grace_ms = 600000
        r.outage()
        r.run(STEP)
        link.says(2, 9)
        r.tick()
        self.assertEqual((r.sm.state, r.sm.plan_id), (S.SHUTTING_DOWN, 9))

    def test_tiers_the_peer_finished_are_done_here_once_nobody_is_logged_in_here(self):
        r, link = _pair_rig()
        self._in_plan(r, link)
        # apps' servers are still logged in here: the peer's "apps done" is not taken
        link.says(2, 9, done=1)
        r.tick()
        self.assertIn(r.seq.phase("apps"), ("fsd", "waiting"))
        self.assertEqual(r.records("tier_done"), [])
        # they log out here too (web2 after 5 s): done by this sentinel's own walk
        r.run_until(lambda: r.seq.phase("apps") == "done", 10000)
        self.assertNotIn("by", r.records("tier_done")[0][1])
        # the peer has finished databases (its db1 logged out there first): db1 never logged in
        # here (a server that reaches only the peer), so databases is taken as done at once,
        # without its 10 s delay or max_wait
        db = [h for h in r.fleet.hosts if h.name == "db1"][0]
        db.connected = False
        r.nut.clients["databases"].remove(db.addr)
        t = r.now
        link.says(2, 9, done=2)
        r.tick()
        done = r.records("tier_done")
        self.assertEqual([(d[1]["tier"], d[1].get("by")) for d in done],
                         [("apps", None), ("databases", "peer")])
        self.assertEqual(done[1][2], t + STEP)
        self.assertEqual(r.fsd_times()[1], ("databases", t + STEP))  # its FSD raised here too
        self.assertEqual(r.sm.plan["databases"], "done")

    def test_fsd_the_peer_raised_comes_here_without_the_tier_s_delay_again(self):
        r, link = _pair_rig()
        self._in_plan(r, link)
        r.run_until(lambda: r.seq.phase("apps") == "done", 10000)
        t = r.now
        r.run(3000)
        self.assertEqual([f[0] for f in r.fsd_times()], ["apps"])  # databases: delay 10 s
        link.says(2, 9, done=1, flags=G.REAL_PLAN | G.NEXT_FSD)
        r.tick()   # noted after this step's walk ...
        r.tick()   # ... raised by the next
        self.assertEqual(r.fsd_times()[1], ("databases", r.now))
        self.assertLess(r.now - t, 10000)
        self.assertEqual(len(r.records("pair_follow")), 1)

    def test_without_the_peer_the_walk_is_its_own(self):
        r, link = _pair_rig()
        self._in_plan(r, link)
        r.run_until(lambda: r.seq.phase("apps") == "done", 10000)
        t = r.now
        link.peer.state = DEAD
        r.run_until(lambda: len(r.fsd_times()) == 2, 20000)
        self.assertEqual(r.fsd_times()[1], ("databases", t + 10000))

    def test_a_peer_behind_or_on_another_plan_moves_nothing(self):
        for plan, done in ((9, 0), (8, 3)):
            r, link = _pair_rig()
            self._in_plan(r, link)
            r.run_until(lambda: r.seq.phase("apps") == "done", 10000)
            link.says(2, plan, done=done, flags=G.REAL_PLAN | G.NEXT_FSD)
            r.run(3000)
            self.assertEqual(r.seq.phase("apps"), "done")
            self.assertEqual(r.seq.phase("databases"), "idle")
            self.assertEqual(r.records("pair_follow"), [])


class Rejoin(TestCase):
    def test_back_from_a_reboot_the_walk_catches_up_without_replaying(self):
        r, link = _pair_rig()
        link.says(2, 9)
        r.outage()
        r.run_until(r.state(S.SHUTTING_DOWN))
        r.run_until(lambda: r.seq.phase("apps") == "done", 10000)
        n_fsd = len(r.fsd_times())
        r.reboot(down_ms=20000)   # every client connection died with the board
        r.seq.attach_agree(G.agreement(link))
        r.seq.booted(r.now)
        # meanwhile the peer finished databases and raised FSD on storage
        link.says(2, 9, done=2, flags=G.REAL_PLAN | G.NEXT_FSD)
        r.tick()
        self.assertEqual([d[1]["tier"] for d in r.records("tier_done") if d[1].get("by")],
                         ["databases"])
        r.tick()
        fsd = r.fsd_times()[n_fsd:]
        # apps' FSD re-raised by the resume (it lived in RAM), databases' by the catch-up,
        # storage's right after: no tier shut down twice, none skipped
        self.assertEqual([f[0] for f in fsd], ["apps", "databases", "storage"])
        self.assertEqual(len(r.records("shutdown_start")), 1)


class Flags(TestCase):
    def test_frames_say_a_real_plan_and_the_fsd_on_its_next_tier(self):
        r, link = _pair_rig()
        self.assertEqual(G.plan_flags(r.sm, r.seq), 0)
        r.outage()
        r.run_until(r.state(S.SHUTTING_DOWN))
        r.tick()
        self.assertEqual(G.plan_flags(r.sm, r.seq), G.REAL_PLAN | G.NEXT_FSD)  # apps told
        r.run_until(lambda: r.seq.phase("apps") == "done", 10000)
        self.assertEqual(G.plan_flags(r.sm, r.seq), G.REAL_PLAN)  # databases: its delay
        r.run_until(lambda: r.seq.phase("databases") == "fsd", 20000)
        self.assertEqual(G.plan_flags(r.sm, r.seq), G.REAL_PLAN | G.NEXT_FSD)

    def test_a_drill_is_not_a_plan_to_join(self):
        r, link = _pair_rig()
        r.i.commands.append("drill")
        r.sm.update(r.now, r.i)
        self.assertEqual((r.sm.state, r.sm.drill), (S.SHUTTING_DOWN, True))
        self.assertEqual(G.plan_flags(r.sm, r.seq), 0)
