"""Scenario keys: the device settings are the site file's keys (story time, scaled in one pass,
converted by the site file's converter); the resilience expectations' validation and default
names."""
import glob
import os

import pytest

from powersentinel import siteconfig
from powersentinel.bench.devconfig import STORY_KEYS, scale_story_times, site_document
from powersentinel.bench.runner import device_config
from powersentinel.bench.scenario import ScenarioError, from_dict, load_scenario
from powersentinel.bench.site import Site

SHIPPED = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios",
                                        "*.toml")))


def _base(**extra):
    raw = {"scenario": {"name": "t", "duration": "10m"},
           "tiers": [{"name": "apps", "hosts": [{"name": "web1"}]},
                     {"name": "storage", "hosts": [{"name": "nas1"}]}],
           "expect": [{"kind": "no_shutdown"}]}
    raw.update(extra)
    return raw


def test_new_expectations_load_with_default_names():
    sc = from_dict(_base(expect=[
        {"kind": "audit", "host": "web1", "flagged": False, "within": ["1m", "2m"]},
        {"kind": "stays_down", "tier": "apps", "within": ["0s", "5m"]},
        {"kind": "board_reboots", "count": 1},
        {"kind": "shutdown_order", "order": ["apps", "storage"], "within": ["1m", "9m"]},
        {"kind": "tier_wait", "tier": "storage", "waits_for": "apps", "slack": "2s"}]))
    assert [e.name for e in sc.expects] == [
        "audit web1", "stays_down apps", "board_reboots 1", "shutdown_order apps->storage",
        "tier_wait storage after apps"]


def test_new_keys_are_validated_with_their_paths():
    raw = _base(ups={"link_lost_s": 0}, expect=[
        {"kind": "audit", "host": "web1", "flagged": "no"},
        {"kind": "stays_down", "tier": "databases"},
        {"kind": "board_reboots", "count": -1},
        {"kind": "shutdown_order", "order": ["apps"], "within": ["5m", "1m"]},
        {"kind": "state", "state": "ONLINE", "needs": "lb_tier_order"}])
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw, "k.toml")
    errs = ei.value.errors
    for frag in ("ups.link_lost_s: 0 is out of range; allowed 1..600", "expect[0].flagged: must be true or false",
                 "expect[1].tier: no tier 'databases'", "expect[2].count: -1 is out of range",
                 "expect[3].within: from (5m) is after to (1m)"):
        assert any(frag in e for e in errs), (frag, errs)
    assert len(errs) == 5, errs  # lb_tier_order is a known feature name


def test_link_lost_is_never_scaled_and_roundings_are_noted():
    sc = from_dict(_base(ups={"link_lost_s": 3}, policy={"grace_s": 30, "stable_mains_s": 120}))
    site = Site(sc, ("127.0.0.1", 1), "u", "p", 60)
    full, notes = device_config(sc, site, 60, "hilmon", "sha256$abcd$" + "0" * 64)
    assert full["ups"]["link_lost_s"] == 3
    assert full["policy"]["grace_s"] == 0 and full["policy"]["stable_mains_s"] == 2
    assert any("policy.grace_s" in n and "rounded to 0" in n for n in notes), notes
    assert not any("stable_mains" in n for n in notes), notes
    # without the key the device keeps its own default
    sc = from_dict(_base())
    full, notes = device_config(sc, Site(sc, ("127.0.0.1", 1), "u", "p", 60), 60, "hilmon",
                                "sha256$abcd$" + "0" * 64)
    assert "link_lost_s" not in sc.site["ups"] and full["ups"]["link_lost_s"] == 10


def test_device_settings_are_the_site_files_keys():
    # the old bench-only spellings are refused, naming the site file's keys
    raw = _base(policy={"grace": "30s"}, ups={"runtime": "20m", "load_pct": 40})
    raw["tiers"][0]["max_wait"] = "2m"
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw, "old.toml")
    errs = ei.value.errors
    assert any(e.startswith("policy.grace: unknown key; allowed keys (the site file's): grace_s")
               for e in errs), errs
    assert any(e.startswith("ups.runtime: unknown key;") and "battery_runtime_s" in e
               for e in errs), errs
    assert any(e.startswith("tiers[0].max_wait: unknown key") for e in errs), errs
    assert len(errs) == 3, errs
    # a value the site file would refuse is refused with the site file's message
    with pytest.raises(ScenarioError) as ei:
        from_dict(_base(policy={"charge_floor_pct": 150}, mains={"nominal_hz": 55}))
    assert sorted(e.split(":")[0] for e in ei.value.errors) == ["mains.nominal_hz",
                                                                 "policy.charge_floor_pct"]


def test_story_times_are_scaled_in_one_pass_and_nothing_else_is():
    doc = {"ups": {"battery_runtime_s": 1200, "link_lost_s": 3, "restore_min": 4},
           "policy": {"grace_s": 600, "runtime_floor_s": 60, "stable_mains_s": 120,
                      "return_stable_ms": 2000, "lb_filter_ms": 3000, "charge_floor_pct": 40},
           "mains": {"nominal_hz": 50},
           "tiers": [{"name": "a", "max_wait_s": 120, "delay_s": 30},
                     {"name": "b", "max_wait_s": 30, "delay_s": 0}],
           "recovery": {"boot_timeout_s": 1200, "wol_port": 9}}
    notes = scale_story_times(doc, 60)
    assert doc == {"ups": {"battery_runtime_s": 20, "link_lost_s": 3, "restore_min": 4},
                   "policy": {"grace_s": 10, "runtime_floor_s": 1, "stable_mains_s": 2,
                              "return_stable_ms": 2000, "lb_filter_ms": 3000,
                              "charge_floor_pct": 40},
                   "mains": {"nominal_hz": 50},
                   "tiers": [{"name": "a", "max_wait_s": 2, "delay_s": 0},
                             {"name": "b", "max_wait_s": 1, "delay_s": 0}],
                   "recovery": {"boot_timeout_s": 20, "wol_port": 9}}
    said = {n.split(":")[0]: n for n in notes}
    assert sorted(said) == ["tiers.a.delay_s", "tiers.b.max_wait_s"], notes
    assert said["tiers.a.delay_s"].endswith("rounded to 0 s")
    assert said["tiers.b.max_wait_s"].endswith("clamped to 1 s")  # the schema's minimum
    assert set(STORY_KEYS) == {"ups.battery_runtime_s", "policy.grace_s", "policy.runtime_floor_s",
                               "policy.stable_mains_s", "tiers.max_wait_s", "tiers.delay_s",
                               "recovery.boot_timeout_s"}


def test_the_device_config_is_what_config_validate_makes_of_the_same_site_file(tmp_path):
    # the same converter: the scenario's site document written as a TOML site file and
    # loaded by `powersentinel config` gives the very config the bench installs
    sc = from_dict(_base(ups={"link": "q1", "battery_runtime_s": 900, "restore_min": 2},
                         policy={"grace_s": 120, "return_stable_ms": 1500},
                         mains={"nominal_hz": 60}))
    site = Site(sc, ("127.0.0.1", 1), "u", "p", 1)
    full, notes = device_config(sc, site, 1, "hilmon", "sha256$abcd$" + "0" * 64)
    doc = site_document(sc, site.device_hosts, site.wol_port, "hilmon", "sha256$abcd$" + "0" * 64)
    path = tmp_path / "site.toml"
    path.write_text(siteconfig.to_toml(siteconfig.convert(doc)[0]))
    assert siteconfig.load(str(path)) == full
    assert full["ups"]["restore_min"] == 2 and full["mains"]["nominal_hz"] == 60
    assert full["policy"]["grace_s"] == 120 and notes == []


@pytest.mark.parametrize("path", SHIPPED)
def test_every_shipped_scenario_converts_at_both_its_scales(path):
    sc = load_scenario(path)
    for scale in (sc.time_scale, sc.ci_time_scale):
        site = Site(sc, ("127.0.0.1", 1), "u", "p", scale)
        full, notes = device_config(sc, site, scale, "hilmon", "sha256$abcd$" + "0" * 64)
        assert full["site"]["name"] == sc.name[:32]
        assert [t["name"] for t in full["tiers"]] == [t.name for t in sc.tiers]


def _feeds_base(**extra):
    raw = {"scenario": {"name": "f", "duration": "10m"},
           "mains": {"channels": [{"name": "A"}, {"name": "B"}]},
           "ups": {"link": "q1", "feed": "A", "feeds": [{"feed": "B"}]},
           "tiers": [{"name": "apps", "hosts": [{"name": "a1", "feeds": ["A", "B"]},
                                                {"name": "b1", "feeds": ["B"]}]}],
           "timeline": [{"at": "30s", "do": "mains", "channel": "B", "value": "off"},
                        {"at": "1m", "do": "flicker", "channel": "B", "duration": "1s"}],
           "expect": [{"kind": "stays_up", "hosts": ["a1"]},
                      {"kind": "alarm", "text": "feed B lost", "cleared": ["1m", "2m"]},
                      {"kind": "ups_restored", "feed": "B"},
                      {"kind": "load_offs", "max": 1, "feed": "A"},
                      {"kind": "shutdown_order", "order": ["apps"], "hosts": ["b1"]}]}
    raw.update(extra)
    return raw


def test_feeds_channels_and_their_expectations_load():
    sc = from_dict(_feeds_base())
    assert [h.feeds for h in sc.hosts()] == [("A", "B"), ("B",)]
    assert [s.args.get("channel") for s in sc.timeline] == ["B", "B"]
    assert [e.name for e in sc.expects] == [
        "stays_up a1", "alarm feed B lost", "ups_restored on UPS B", "load_offs <= 1 on UPS A",
        "shutdown_order apps"]
    site = Site(sc, ("127.0.0.1", 1), "u", "p", 60)
    full, _ = device_config(sc, site, 60, "hilmon", "sha256$abcd$" + "0" * 64)
    assert [h["feeds"] for h in full["tiers"][0]["hosts"]] == [["A", "B"], ["B"]]
    assert full["ups"]["feed"] == "A" and full["ups"]["feeds"][0]["feed"] == "B"
    assert [c["name"] for c in full["mains"]["channels"]] == ["A", "B"]


def test_feeds_channels_and_their_expectations_are_validated_with_their_paths():
    raw = _feeds_base()
    raw["tiers"][0]["hosts"][1]["feeds"] = ["C"]
    raw["timeline"][0]["channel"] = "L2"
    raw["expect"] = [{"kind": "stays_up", "hosts": ["zz"]},
                     {"kind": "alarm", "text": "(", "cleared": ["2m", "1m"]},
                     {"kind": "ups_restored", "feed": "C"},
                     {"kind": "stays_up"}]
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw, "f.toml")
    errs = ei.value.errors
    for frag in ("timeline[0].channel: no mains channel or feed 'L2' (channels: A, B; feeds: A, B)",
                 "expect[0].hosts: no host 'zz' in the site",
                 "expect[1].cleared: from (2m) is after to (1m)",
                 "expect[1].text: not a regular expression",
                 "expect[2].feed: no UPS on feed 'C' (UPSes on: A, B)",
                 "expect[3]: missing required key 'hosts'",
                 "tiers[0].hosts[1].feeds[0]: feed C is not sensed by any mains channel"):
        assert any(frag in e for e in errs), (frag, errs)
    assert len(errs) == 7, errs
    # one mains input, one UPS: a channel or a feed's UPS has nothing to name
    raw = _base(timeline=[{"at": "1m", "do": "dip", "channel": "B", "residual": 0.5,
                           "duration": "1s"}],
                expect=[{"kind": "ups_command", "pattern": "^S", "feed": "B"}])
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw, "g.toml")
    assert [e.split(":")[0] for e in ei.value.errors] == ["timeline[0].channel", "expect[0].feed"]
    assert "add [[mains.channels]]" in ei.value.errors[0]
    assert "the site has one UPS" in ei.value.errors[1]
