"""Scenario files: every shipped one loads; mistakes give one clear line each, all at once."""
import glob
import os

import pytest

from powersentinel.bench.runner import device_config
from powersentinel.bench.scenario import ScenarioError, from_dict, load_scenario, parse_duration
from powersentinel.bench.site import Site

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(HERE, "scenarios", "*.toml"))),
                         ids=os.path.basename)
def test_shipped_scenarios_load(path):
    base = load_scenario(path)
    for sc in [base] + [load_scenario(path, v) for v, _ in base.variants]:
        assert sc.expects and sc.duration_s > 0
        assert sc.ci_time_scale >= sc.time_scale
        # a CI variant must fit the CI budget (about a minute of story per run)
        assert sc.duration_s / sc.ci_time_scale <= 120, sc.name  # CI variants: 2 min at most


def test_durations():
    assert parse_duration("200ms") == pytest.approx(0.2)
    assert parse_duration("1h30m") == 5400
    assert parse_duration("3h05m") == 11100
    assert parse_duration(90) == 90
    for bad in ("3 hours", "", "1x", "-2s", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def _base():
    return {"scenario": {"name": "t", "duration": "10s"},
            "tiers": [{"name": "apps", "hosts": [{"name": "web1"}]}],
            "expect": [{"kind": "no_shutdown"}]}


def test_minimal_scenario_and_defaults():
    sc = from_dict(_base())
    assert sc.time_scale == 1 and sc.ups.link == "q1" and sc.ups.runtime_s == 1200
    assert sc.hosts()[0].tier == "apps" and sc.hosts()[0].wake == "wol"


def test_every_problem_is_reported_with_its_path():
    raw = _base()
    raw["scenario"]["time_scale"] = 0
    raw["ups"] = {"link": "usb", "runtim": "20m"}
    raw["tiers"].append({"name": "db", "hosts": [{"name": "web1"}]})
    raw["timeline"] = [{"at": "20s", "do": "mains", "value": "off"},
                       {"at": "1s", "do": "dip", "residual": 0.3, "duration": "30s"},
                       {"at": "1s", "do": "explode"},
                       {"at": "2s", "do": "host", "host": "nobody", "set": "crash"}]
    raw["expect"] = [{"kind": "shutdown_order", "order": ["apps", "storage"]},
                     {"kind": "state", "state": "ASLEEP"},
                     {"kind": "state", "state": "ONLINE", "needs": "magic"}]
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw, "bad.toml")
    errs = ei.value.errors
    text = str(ei.value)
    assert text.startswith("bad.toml: ")
    expected = ["scenario.time_scale", "ups.link", "ups.runtim: unknown key",
                "tiers[1].hosts[0].name: host 'web1' appears twice",
                "timeline[0].at: 20s is after the end", "timeline[1].duration: mains disturbances",
                "timeline[2].do: 'explode' is not a stimulus", "timeline[3].host: no host 'nobody'",
                "expect[0].order: no tier 'storage'", "expect[1].state: 'ASLEEP' is not one of",
                "expect[2].needs: unknown feature 'magic'"]
    for frag in expected:
        assert any(frag in e for e in errs), (frag, errs)
    assert len(errs) == len(expected), errs


def test_toml_syntax_error_is_one_clear_line(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[scenario\nname = 1\n")
    with pytest.raises(ScenarioError) as ei:
        load_scenario(str(p))
    assert "not valid TOML" in str(ei.value) and str(p) in str(ei.value)


def test_a_scenario_without_expectations_is_refused():
    raw = _base()
    raw["expect"] = []
    with pytest.raises(ScenarioError, match="at least one"):
        from_dict(raw)


def test_device_config_scales_policy_and_reports_clamps():
    raw = _base()
    raw["policy"] = {"grace_s": 60, "stable_mains_s": 300, "return_stable_ms": 2000}
    raw["tiers"][0]["max_wait_s"] = 120
    sc = from_dict(raw)
    site = Site(sc, ("127.0.0.1", 1), "u", "p", 240)
    full, notes = device_config(sc, site, 240, "hilmon", "sha256$abcd$" + "0" * 64)
    assert full["policy"]["grace_s"] == 0 and full["policy"]["stable_mains_s"] == 1
    assert full["policy"]["return_stable_ms"] == 2000  # a debounce: physics, never scaled
    assert full["tiers"][0]["max_wait_s"] == 1 and any("max_wait_s" in n for n in notes)
    assert full["tiers"][0]["hosts"][0]["address"].startswith("127.0.0.")
    assert full["recovery"]["wol_broadcast"] == "127.0.0.1"
    assert full["ups"]["battery_runtime_s"] == 5  # 20 min / 240

def _pair_base(**extra):
    raw = _base()
    raw["tiers"].append({"name": "db", "hosts": [{"name": "db1"}]})
    raw["pair"] = {"heartbeat_ms": 300, "dead_ms": 1500, "ups": "both"}
    raw.update(extra)
    return raw


def test_pair_section_actions_and_triggers():
    sc = from_dict(_pair_base(timeline=[
        {"at": "tier:db", "do": "kill", "board": "b"},
        {"at": "state:RESTORING", "do": "revive", "board": "b"},
        {"at": "1s", "do": "partition"}, {"at": "2s", "do": "heal"},
        {"at": "3s", "do": "sensor", "board": "a", "value": 0.6}]))
    assert (sc.pair.heartbeat_ms, sc.pair.dead_ms, sc.pair.ups) == (300, 1500, "both")
    assert [(s.action, s.trigger) for s in sc.timeline][:2] == [("kill", "tier:db"),
                                                                 ("revive", "state:RESTORING")]
    assert from_dict(_base()).pair is None
    assert from_dict(_pair_base(pair={"enabled": False})).pair is None
    # mistakes, all at once
    raw = _pair_base(timeline=[{"at": "tier:storage", "do": "kill", "board": "c"},
                               {"at": "state:ASLEEP", "do": "sensor", "board": "a", "value": 3}],
                     expect=[{"kind": "pair_alarm", "board": "x"}])
    raw["pair"] = {"heartbeat_ms": 1000, "dead_ms": 1500, "ups": "b", "x": 1}
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw)
    errs = ei.value.errors
    for frag in ("pair.x: unknown key", "pair.dead_ms: at least two heartbeats",
                 "pair.ups: 'b' is not one of", "timeline[0].at: 'tier:storage'",
                 "timeline[0].board: 'c' is not one of", "timeline[1].at: 'state:ASLEEP'",
                 "timeline[1].value:", "expect[0].board: 'x'"):
        assert any(frag in e for e in errs), (frag, errs)
    # a pair's actions and verdicts need a pair
    raw = dict(_base(), timeline=[{"at": "1s", "do": "kill", "board": "a"}],
               expect=[{"kind": "pair_alarm", "board": "a"}])
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw)
    assert sorted(e.split(":")[0] for e in ei.value.errors) == ["expect[0].kind",
                                                                 "timeline[0].do"]


def test_variants_add_their_steps_and_expectations():
    raw = _pair_base(timeline=[{"at": "5s", "do": "mains", "value": "off"}], variant=[
        {"name": "calm", "ci": True},
        {"name": "b-dies", "description": "B killed", "timeline": [
            {"at": "tier:apps", "do": "kill", "board": "b"}],
         "expect": [{"kind": "pair_alarm", "board": "a"}]}])
    base = from_dict(raw)
    assert base.variants == (("calm", True), ("b-dies", False)) and base.variant is None
    v = from_dict(raw, variant="b-dies")
    assert v.name == "t-b-dies" and v.description.endswith("B killed")
    assert sorted(s.action for s in v.timeline) == ["kill", "mains"]
    assert [e.kind for e in v.expects] == ["no_shutdown", "pair_alarm"]
    assert [e.index for e in v.expects] == [0, 1]
    assert len(from_dict(raw, variant="calm").timeline) == 1
    with pytest.raises(ScenarioError, match="no variant 'nope'"):
        from_dict(raw, variant="nope")
    raw["variant"].append({"name": "calm", "extra": 1})
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw)
    assert any("defined twice" in e for e in ei.value.errors)
    assert any("variant[2].extra: unknown key" in e for e in ei.value.errors)


def test_a_variant_marks_a_base_expectation_as_needing_a_feature():
    raw = _pair_base(expect=[{"kind": "load_offs", "max": 1, "name": "one load-off"},
                             {"kind": "no_shutdown"}],
                     variant=[{"name": "k", "needs": {"one load-off": "pair_load_off_handover"}}])
    assert from_dict(raw).expects[0].needs == ()  # the base story needs nothing
    v = from_dict(raw, variant="k")
    assert [e.needs for e in v.expects] == [("pair_load_off_handover",), ()]
    raw["variant"][0]["needs"] = {"two": "pair_load_off_handover", "one load-off": "magic"}
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw)
    assert sorted(e.split(":")[0] for e in ei.value.errors) == ["variant[0].needs.one load-off",
                                                                 "variant[0].needs.two"]


def test_cli_refuses_a_pair_on_a_serial_port():
    from click.testing import CliRunner

    from powersentinel.bench.cli import hil
    r = CliRunner().invoke(hil, ["run", "--port", "/dev/null",
                                 os.path.join(HERE, "scenarios", "pair_sensor.toml")])
    assert r.exit_code == 2 and "virtual pair only" in r.output, r.output


def test_a_contact_feed_ups_the_bench_cannot_play_is_refused_clearly():
    raw = _base()
    raw["ups"] = {"feed": "A", "feeds": [{"feed": "B", "link": "contacts",
                                          "contacts": "OB=1&^2;", "shutdown_output": 0}]}
    raw["mains"] = {"channels": [{"name": "A"}, {"name": "B"}]}
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw, "bad.toml")
    assert any(e.startswith("ups.feeds[0].contacts: the bench plays contact rules of one line")
               for e in ei.value.errors), ei.value.errors
    raw["ups"]["feeds"][0]["contacts"] = "OB=1;LB=^2;"
    from_dict(raw, "ok.toml")
