"""Pair mode with the REAL upsmon (NUT 2.8.0): one server monitoring the tier on both
sentinels, power value 1 each, MINSUPPLIES 2 (docs/redundancy.md).

Mains fails; sentinel B dies during the grace period. B was last seen OL by the tier (pair mode
masks OB until the tier's turn), so upsmon never promotes it to OB LB: no shutdown, although B
has been dead far longer than DEADTIME + HOSTSYNC (in single mode, a sentinel lost while
serving OB shuts the server down after DEADTIME: test_reliability_network.py). When A's grace
ends, A's FSD on the tier shuts the server down alone."""
import json
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from powersentinel import nutreal, virtual  # noqa: E402
from powersentinel.virtual import wait_for  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import pair as vpair  # noqa: E402

DEADTIME, HOSTSYNC, POLL = 3, 3, 1
GRACE_S = 20

pytestmark = pytest.mark.skipif(not nutreal.available(), reason="NUT binaries not installed")


def test_a_sentinel_dead_in_grace_blocks_nothing_and_shuts_nothing(tmp_path):
    d = str(tmp_path / "pair")
    os.makedirs(d)
    cfg = os.path.join(d, "site.json")
    with open(cfg, "w") as f:
        json.dump(rc.make_config(**{"policy.grace_s": GRACE_S}), f)
    meta = vpair.start_pair(d, config=cfg, heartbeat_ms=300, dead_ms=1500)
    mon = None
    try:
        monitors = []
        for side in ("a", "b"):
            host, port = meta[side]["board"]["nut"].rsplit(":", 1)
            monitors.append(nutreal.Monitor(rc.TIER, host, int(port), "monuser",
                                            rc.USERS["monuser"][0]))
        mon = nutreal.RealUpsmon(monitors, pollfreq=POLL, pollfreqalert=POLL,
                                 deadtime=DEADTIME, hostsync=HOSTSYNC, minsupplies=2)
        mon.start()
        mon.wait_logged_in(15)
        with Link(meta["a"]["board"]["serial"]) as la:
            wait_for(lambda: (la.request("status").get("pair") or {}).get("state") == "ALIVE",
                     30, "A to see B")
            vpair.set_pair_wires(d, {"mains": "off"})
            t0 = time.monotonic()
            wall0 = time.time()
            wait_for(lambda: la.request("status")["state"]["name"] == "ON_BATTERY", 5,
                     "A on battery")
            with Link(meta["b"]["board"]["serial"]) as lb:
                wait_for(lambda: lb.request("status")["state"]["name"] == "ON_BATTERY", 5,
                         "B on battery")
            # upsmon polls both a few times: B serves the tier OL, as A does (not reached yet)
            time.sleep(3 * POLL + 0.5)
            assert "on battery" not in mon.log(), mon.log()[-2000:]
            virtual.stop(meta["b"]["dir"])
            b_dead = time.time()
            # B dead for much longer than DEADTIME + HOSTSYNC + a poll, still in A's grace
            while time.monotonic() - t0 < GRACE_S - 4:
                assert mon.shutdown_time() is None, mon.log()[-3000:]
                time.sleep(0.5)
            assert la.request("status")["pair"]["state"] == "DEAD"
            assert "Promoting dead UPS" not in mon.log()
            # A alone runs the plan: its FSD shuts the server down
            wait_for(lambda: mon.shutdown_time() is not None, 20, "the server's shutdown")
            took = mon.shutdown_time() - wall0
            assert took >= GRACE_S - 1, took  # at A's FSD, not before
            st = la.request("status")["state"]
            assert st["name"] in ("SHUTTING_DOWN", "LOAD_OFF") and st["plan_id"] >= 1, st
            print("server shut down %.1f s after the outage (grace %d s), B dead %.1f s before"
                  % (took, GRACE_S, mon.shutdown_time() - b_dead))
    finally:
        if mon is not None:
            mon.stop()
        vpair.stop_pair(d)
