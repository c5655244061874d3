"""Exactly one UPS load-off per outage in a pair where both sentinels read the UPS: a virtual
pair started with ups_both (`powersentinel virtual start --pair --ups-both`: each board reads
its own UPS simulator over Q1, both on the same mains). An outage runs the plan on both; A sends
the load-off, B sees A's "sent" flag in its frames and records `ups_off` with by "peer" instead
of sending a second command (docs/redundancy.md)."""
import json
import os

import pytest

import sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from powersentinel import logs  # noqa: E402
from powersentinel import virtual  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import pair as vpair  # noqa: E402
from powersentinel.virtual import wait_for  # noqa: E402

HEARTBEAT_MS, DEAD_MS = 300, 1500


def load_offs(d):
    """The shutdown-with-restore commands ("S..R....") a board's UPS simulator received."""
    return [c for c in virtual.state(d)["ups"]["commands"] if c.startswith("S")]


@pytest.mark.slow
def test_a_pair_reading_one_ups_sends_one_load_off(tmp_path):
    d = str(tmp_path / "pair")
    os.makedirs(d)
    cfg = os.path.join(d, "site.json")
    with open(cfg, "w") as f:
        json.dump(rc.make_config(**{"policy.grace_s": 2, "ups.link": "q1",
                                    "policy.stable_mains_s": 1}), f)
    meta = vpair.start_pair(d, config=cfg, heartbeat_ms=HEARTBEAT_MS, dead_ms=DEAD_MS,
                            ups_both=True)
    try:
        with Link(meta["a"]["board"]["serial"]) as la, Link(meta["b"]["board"]["serial"]) as lb:
            links = {"a": la, "b": lb}
            for lk in links.values():
                wait_for(lambda: (lk.request("status").get("pair") or {}).get("state")
                         == "ALIVE", 30, "both sentinels to see each other")
                assert lk.request("status")["ups"]["link"] != "none"
            vpair.set_pair_wires(d, {"mains": "off"})
            offs = {}
            for side, lk in links.items():
                offs[side] = wait_for(lambda: logs.read(lk, ("ups_off",)), 40,
                                      "%s to settle its load-off" % side)
            print("ups_off records: A %s, B %s" % (offs["a"], offs["b"]))
            a, b = offs["a"][0]["data"], offs["b"][0]["data"]
            assert a["ok"] is True and "by" not in a, a
            assert (b["ok"], b["by"]) == (True, "peer"), b
            assert len(offs["a"]) == len(offs["b"]) == 1
            assert len(load_offs(os.path.join(d, "a"))) == 1
            assert load_offs(os.path.join(d, "b")) == []
            vpair.set_pair_wires(d, {"mains": "on"})
    finally:
        vpair.stop_pair(d)


@pytest.mark.slow
def test_a_sentinel_without_a_ups_link_leaves_load_off_when_its_peer_sees_the_output_off(
        tmp_path):
    """Only A reads the UPS (B has no UPS link). After the load-off, A's Q1 link shows the
    output off; A's frames carry it (flags bit 1) and B leaves LOAD_OFF on it too, at once
    (load_off_done), instead of serving FSD for shutdown_delay_min + 30 s (load_off_elapsed):
    long enough for B to shut down again a server A powers back on."""
    d = str(tmp_path / "pair")
    os.makedirs(d)
    cfg = os.path.join(d, "site.json")
    with open(cfg, "w") as f:
        json.dump(rc.make_config(**{"policy.grace_s": 2, "ups.link": "q1",
                                    "ups.shutdown_delay_min": 1, "ups.restore_min": 1,
                                    "policy.stable_mains_s": 1}), f)
    # UPS minutes last 1 s: the output goes off 1 s after the command
    meta = vpair.start_pair(d, config=cfg, heartbeat_ms=HEARTBEAT_MS, dead_ms=DEAD_MS,
                            extra_args=["--time-scale", "60"])
    try:
        with Link(meta["a"]["board"]["serial"]) as la, Link(meta["b"]["board"]["serial"]) as lb:
            for lk in (la, lb):
                wait_for(lambda: (lk.request("status").get("pair") or {}).get("state")
                         == "ALIVE", 30, "both sentinels to see each other")
            assert lb.request("status")["ups"]["link"] == "none"
            vpair.set_pair_wires(d, {"mains": "off"})

            def left_load_off(lk):
                return [r for r in logs.read(lk, ("state",))
                        if r["data"].get("from") == "LOAD_OFF"]
            a = wait_for(lambda: left_load_off(la), 60, "A to see the UPS output off")
            b = wait_for(lambda: left_load_off(lb), 10, "B to leave LOAD_OFF on A's word")
            print("A: LOAD_OFF -> %s (%s); B: LOAD_OFF -> %s (%s)"
                  % (a[0]["data"]["to"], a[0]["data"]["cause"], b[0]["data"]["to"],
                     b[0]["data"]["cause"]))
            assert (a[0]["data"]["to"], a[0]["data"]["cause"]) == ("WAIT_MAINS", "load_off_done")
            assert (b[0]["data"]["to"], b[0]["data"]["cause"]) == ("WAIT_MAINS", "load_off_done")
            assert len(load_offs(os.path.join(d, "a"))) == 1
            vpair.set_pair_wires(d, {"mains": "on"})
            for lk in (la, lb):
                wait_for(lambda: lk.request("status")["state"]["name"] in ("RESTORING", "ONLINE"),
                         30, "the restore")
    finally:
        vpair.stop_pair(d)
