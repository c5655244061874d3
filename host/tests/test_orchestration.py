"""The whole plan on the virtual board with its Q1 UPS: outage, tiers, load-off with restore,
mains back, ordered power-on, and a flicker that changes nothing. The UPS simulator's minutes
run 60x faster; mains sensing is never scaled."""
import json
import time

import pytest

from powersentinel import virtual
from powersentinel.link import Link
from powersentinel.virtual import wait_for

CONFIG = {
    "ups": {"link": "q1", "poll_ms": 500, "shutdown_delay_min": 1, "restore_min": 1},
    "policy": {"grace_s": 3, "stable_mains_s": 3},
    "tiers": [
        {"name": "apps", "max_wait_s": 5,
         "hosts": [{"name": "web1", "address": "127.0.0.1", "health": "none"}]},
        {"name": "databases", "max_wait_s": 5,
         "hosts": [{"name": "db1", "address": "127.0.0.2", "health": "none"}]},
        {"name": "storage", "max_wait_s": 5,
         "hosts": [{"name": "san1", "address": "127.0.0.3", "health": "none"}]},
    ],
}


@pytest.fixture
def site(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    d = str(tmp_path / "board")
    meta = virtual.start(d, config=str(cfg), extra_args=["--time-scale", "60"])
    link = Link(meta["serial"])
    wait_for(lambda: link.request("status")["ups"]["link"] == "ok", 10, "the UPS link")
    try:
        yield d, link
    finally:
        link.close()
        virtual.stop(d)


def states_seen(link, until, timeout):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = link.request("status")
        name = s["state"]["name"]
        if not seen or seen[-1] != name:
            seen.append(name)
        if until(s):
            return seen, s
        time.sleep(0.2)
    raise AssertionError("timed out; states seen: %s" % seen)


def journal(link):
    out = []
    frm = 0
    while True:
        recs = link.request("log_read", from_seq=frm, max=32)["records"]
        if not recs:
            return out
        out += recs
        frm = recs[-1]["seq"] + 1


def test_outage_runs_the_plan_and_power_on_brings_tiers_back(site):
    d, link = site
    virtual.set_wires(d, {"mains": "off"})
    states_seen(link, lambda s: s["state"]["name"] == "WAIT_MAINS", 30)
    ups = virtual.state(d)["ups"]
    assert "S01R0001" in ups["commands"], ups  # told to cut the load and restore it
    virtual.set_wires(d, {"mains": "on"})
    seen, s = states_seen(link, lambda s: s["state"]["name"] == "ONLINE", 30)
    assert s["plan"]["mode"] == "power_on" and s["plan"]["complete"]
    assert [t["name"] for t in s["plan"]["tiers"]] == ["storage", "databases", "apps"]
    assert all(t["phase"] == "up" for t in s["tiers"])
    assert not any(t["fsd"] for t in s["tiers"])  # FSD is not a latch
    log = journal(link)
    path = [r["data"]["to"] for r in log if r["type"] == "state"]
    assert path == ["ON_BATTERY", "SHUTTING_DOWN", "LOAD_OFF", "WAIT_MAINS", "RESTORING",
                    "ONLINE"], path
    fsd_order = [r["data"].get("tier") for r in log if r["type"] == "tier_fsd"]
    assert fsd_order == ["apps", "databases", "storage"], fsd_order


def test_a_flicker_shorter_than_grace_shuts_nothing_down(site):
    d, link = site
    virtual.set_wires(d, {"mains": "off"})
    time.sleep(0.3)
    virtual.set_wires(d, {"mains": "on"})
    ev = link.wait_event(lambda e: e.get("ev") == "event" and e.get("type") == "interruption", 5)
    assert ev is not None and 200 <= ev["duration_ms"] <= 450, ev
    time.sleep(3)  # longer than the grace period: nothing may have started
    s = link.request("status")
    assert s["state"]["name"] == "ONLINE" and s["state"]["plan_id"] == 0
    assert virtual.state(d)["ups"]["commands"] == []
