"""The scenario keys added for the resilience scenarios: validation, default names, and how
they reach the device config."""
import pytest

from powersentinel.bench.runner import device_config
from powersentinel.bench.scenario import ScenarioError, from_dict
from powersentinel.bench.site import Site


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
    raw = _base(ups={"link_lost": "0.2s"}, expect=[
        {"kind": "audit", "host": "web1", "flagged": "no"},
        {"kind": "stays_down", "tier": "databases"},
        {"kind": "board_reboots", "count": -1},
        {"kind": "shutdown_order", "order": ["apps"], "within": ["5m", "1m"]},
        {"kind": "state", "state": "ONLINE", "needs": "lb_tier_order"}])
    with pytest.raises(ScenarioError) as ei:
        from_dict(raw, "k.toml")
    errs = ei.value.errors
    for frag in ("ups.link_lost: 1 s..10 min", "expect[0].flagged: must be true or false",
                 "expect[1].tier: no tier 'databases'", "expect[2].count: -1 is out of range",
                 "expect[3].within: from (5m) is after to (1m)"):
        assert any(frag in e for e in errs), (frag, errs)
    assert len(errs) == 5, errs  # lb_tier_order is a known feature name


def test_link_lost_is_never_scaled_and_roundings_are_noted():
    sc = from_dict(_base(ups={"link_lost": "3s"}, policy={"grace": "30s", "stable_mains": "2m"}))
    site = Site(sc, ("127.0.0.1", 1), "u", "p", 60)
    cfg, full, notes = device_config(sc, site, 60, "hilmon", "sha256$abcd$" + "0" * 64)
    assert full["ups"]["link_lost_s"] == 3
    assert full["policy"]["grace_s"] == 0 and full["policy"]["stable_mains_s"] == 2
    assert any("policy.grace" in n and "rounded to 0" in n for n in notes), notes
    assert not any("stable_mains" in n for n in notes), notes
    # without the key the device keeps its own default
    sc = from_dict(_base())
    cfg, full, notes = device_config(sc, Site(sc, ("127.0.0.1", 1), "u", "p", 60), 60, "hilmon",
                                     "sha256$abcd$" + "0" * 64)
    assert "link_lost_s" not in cfg["ups"] and full["ups"]["link_lost_s"] == 10
