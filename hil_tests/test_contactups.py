"""The bench's contact UPS (bench/contactups.py): its lines follow its status, the board's
output pulse cuts its load, which comes back with its feed."""
import pytest

from powersentinel.bench.contactups import contact_upses, rule_lines


class FakeRig:
    def __init__(self):
        self.sets = []

    def set_contact(self, line, value):
        self.sets.append((line, value))


SITE = {"ups": {"feed": "A", "battery_runtime_s": 1200, "shutdown_delay_min": 1,
                "feeds": [{"feed": "B", "link": "contacts", "contacts": "OB=2;LB=^3;",
                           "shutdown_output": 0}]},
        "mains": {"channels": [{"name": "A"}, {"name": "B"}]}}


def test_rules_of_one_line_each_and_a_clear_refusal_of_the_rest():
    assert rule_lines("OB=2;LB=^3;") == {"OB": (2, False), "LB": (3, True)}
    with pytest.raises(ValueError, match="one line per OB, OL or LB"):
        rule_lines("OB=1&^4;")


def test_lines_follow_the_feed_and_the_pulse_cuts_the_load():
    clock = [0.0]
    (cu,) = contact_upses(SITE, 60.0)
    cu.sim.clock = lambda: clock[0]
    cu.sim._last = 0.0
    rig = FakeRig()
    state = {"channels": {"A": 1.0, "B": 1.0}, "outputs": [0, 0, 0, 0]}
    cu.step(rig, state)
    assert rig.sets == [(2, 0), (3, 1)]        # OL; LB inverted: line 3 high while not low
    assert state["upses"]["B"]["output_on"] is True
    state["channels"]["B"] = 0.0
    cu.step(rig, state)
    assert rig.sets[-1] == (2, 1)              # on battery: the AC-fail line closes
    state["outputs"][0] = 1                    # the board's pulse
    cu.step(rig, state)
    cu.step(rig, state)                        # still high: one pulse, one command
    assert state["upses"]["B"]["commands"] == ["pulse"]
    clock[0] = 1.1                             # a story minute later (scale 60)
    state["outputs"][0] = 0
    cu.step(rig, state)
    assert state["upses"]["B"]["output_on"] is False
    state["channels"]["B"] = 1.0               # feed B back: its load with it
    cu.step(rig, state)
    assert state["upses"]["B"]["output_on"] is True
    assert rig.sets[-1] == (2, 0)
