"""One bad sensor never shuts the site down alone: a virtual pair (A reads the UPS over Q1, B
has no UPS link) and the REAL upsmon (NUT 2.8.0) monitoring the tier on both sentinels, power
value 1 each, MINSUPPLIES 2 (docs/redundancy.md), so either sentinel's FSD alone would shut the
server down.

1. A's sensor reads 0 V while mains is fine (the UPS says OL) for longer than grace: A holds
   (ONLINE, no plan), 0 shutdowns; both sentinels log `pair_disagree` once and serve ALARM
   with "sensor disagrees: ..." (real upsc); mains back on A's sensor: cleared, `pair_agree`.
2. B's sensor reads a false low (60 % of nominal), set through the CLI's `--board b`: the same.
3. B's sensor stuck at "good" while A's sensor and the UPS say mains is lost: B is outvoted
   and starts its outage too (cause `mains_outvoted`); mains back within grace: no shutdown.
4. A real outage (both sensors off, the UPS on battery): the plan runs and the server shuts
   down at its turn (the end of grace). The delay pair mode adds from each board's own
   detection (`mains_lost` record) to its ON_BATTERY is measured from the journals.
"""
import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from powersentinel import nutreal  # noqa: E402
from powersentinel import logs  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import pair as vpair  # noqa: E402
from powersentinel.virtual import wait_for  # noqa: E402

HEARTBEAT_MS, DEAD_MS = 300, 1500
GRACE_S = 8
POLL = 1

pytestmark = pytest.mark.skipif(not nutreal.available(), reason="NUT binaries not installed")


def upsc(nut):
    r = subprocess.run(["upsc", "%s@%s" % (rc.TIER, nut)], capture_output=True, text=True,
                       timeout=10)
    return dict(ln.split(": ", 1) for ln in r.stdout.splitlines() if ": " in ln)


def records(link, kinds):
    return logs.read(link, kinds)


def state(link):
    return link.request("status")["state"]["name"]


def sensor(link):
    return (link.request("status").get("pair") or {}).get("sensor") or {}


def alarmed(nut, text):
    v = upsc(nut)
    return (v.get("ups.status", "").split()[:1] == ["ALARM"]
            and text in v.get("ups.alarm", "")) and v


def hold_past_grace(mon, links, seconds):
    """For `seconds`: no shutdown and no sentinel leaving ONLINE (the plan never starts)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert mon.shutdown_time() is None, mon.log()[-3000:]
        for side, lk in links.items():
            assert state(lk) == "ONLINE", (side, lk.request("status")["state"])
        time.sleep(0.5)


def cli(args):
    from fakeboard import invoke  # pyright: ignore[reportMissingImports]
    code, so, se = invoke(args)
    assert code == 0, se
    return json.loads(so)


def test_one_bad_sensor_never_shuts_the_site_down(tmp_path):
    d = str(tmp_path / "pair")
    os.makedirs(d)
    cfg = os.path.join(d, "site.json")
    with open(cfg, "w") as f:
        json.dump(rc.make_config(**{"policy.grace_s": GRACE_S, "ups.link": "q1",
                                    "policy.stable_mains_s": 1}), f)
    meta = vpair.start_pair(d, config=cfg, heartbeat_ms=HEARTBEAT_MS, dead_ms=DEAD_MS)
    nut = {s: meta[s]["board"]["nut"] for s in ("a", "b")}
    mon = None
    try:
        monitors = []
        for side in ("a", "b"):
            host, port = nut[side].rsplit(":", 1)
            monitors.append(nutreal.Monitor(rc.TIER, host, int(port), "monuser",
                                            rc.USERS["monuser"][0]))
        mon = nutreal.RealUpsmon(monitors, pollfreq=POLL, pollfreqalert=POLL, deadtime=3,
                                 hostsync=3, minsupplies=2)
        mon.start()
        mon.wait_logged_in(15)
        with Link(meta["a"]["board"]["serial"]) as la, Link(meta["b"]["board"]["serial"]) as lb:
            links = {"a": la, "b": lb}
            for lk in links.values():
                wait_for(lambda: (lk.request("status").get("pair") or {}).get("state")
                         == "ALIVE", 30, "both sentinels to see each other")

            # 1. A's sensor reads 0 V; the UPS (on A's wires) stays on line
            vpair.set_pair_wires(d, {"mains": "off", "ups.status": "OL"}, board="a")
            t0 = time.monotonic()
            va = wait_for(lambda: alarmed(nut["a"], "sensor disagrees: A reads mains lost, "
                                          "B reads good, UPS on line; not acted on"),
                          10, "A's NUT alarm")
            print("A's sensor at 0 V -> ALARM over NUT in %.1f s" % (time.monotonic() - t0))
            assert va["ups.status"].split()[1] == "OL"
            wait_for(lambda: alarmed(nut["b"], "sensor disagrees: B reads mains good, A reads "
                                     "lost, UPS on line"), 10, "B's NUT alarm")
            hold_past_grace(mon, links, GRACE_S + 4 - (time.monotonic() - t0))
            assert sensor(la)["held"] is True
            for side, lk in links.items():
                recs = records(lk, ("pair_disagree",))
                assert len(recs) == 1, (side, recs)
            assert records(la, ("pair_disagree",))[0]["data"] == {
                "cause": "sensor disagrees: A reads mains lost, B reads good, UPS on line; "
                         "not acted on", "own": "lost", "peer": "good", "ups": "on line",
                "held": True, "outvoted": False}
            rb = records(lb, ("pair_disagree",))[0]["data"]
            assert (rb["cause"], rb["held"]) == (
                "sensor disagrees: B reads mains good, A reads lost, UPS on line", False)
            # agree again: cleared everywhere
            vpair.set_pair_wires(d, {"mains": "on", "ups.status": "auto"}, board="a")
            for side in ("a", "b"):
                wait_for(lambda: "ALARM" not in upsc(nut[side]).get("ups.status", "ALARM"),
                         10, "%s's alarm to clear" % side)
                assert len(records(links[side], ("pair_agree",))) == 1

            # 2. B's sensor reads a false low (60 % of nominal), driven through the CLI
            st = cli(["virtual", "set", "--dir", d, "--board", "b", "mains=0.6"])
            assert st["a"] is None and st["b"]["mains"]["level"] == 0.6
            t0 = time.monotonic()
            wait_for(lambda: alarmed(nut["b"], "sensor disagrees: B reads mains out of "
                                     "tolerance, A reads good, UPS on line; not acted on"),
                     10, "B's NUT alarm")
            wait_for(lambda: alarmed(nut["a"], "A reads mains good, B reads out of tolerance"),
                     10, "A's NUT alarm")
            hold_past_grace(mon, links, GRACE_S + 4 - (time.monotonic() - t0))
            assert len(records(lb, ("pair_disagree",))) == 2
            cli(["virtual", "set", "--dir", d, "--board", "b", "mains=on"])
            for side in ("a", "b"):
                wait_for(lambda: "ALARM" not in upsc(nut[side]).get("ups.status", "ALARM"),
                         10, "%s's alarm to clear" % side)
            assert "on battery" not in mon.log()

            # 3. B's sensor stuck at "good" through a real outage (only A's wires lose mains,
            # the UPS on them goes on battery): A's sensor and the UPS's OB, which A's frames
            # carry to B (B has no UPS link), outvote B's: B starts its outage too. Mains back
            # before grace: both return, nothing shut down
            vpair.set_pair_wires(d, {"mains": "off"}, board="a")
            t0 = time.monotonic()
            wait_for(lambda: state(lb) == "ON_BATTERY", 5, "B's sensor to be outvoted")
            assert lb.request("status")["state"]["cause"] == "mains_outvoted"
            # (a tier the plan has not reached is served OL in pair mode: upsmon sees no OB)
            assert upsc(nut["b"])["ups.status"].split()[-1] == "OL"
            wait_for(lambda: alarmed(nut["b"], "sensor disagrees: B reads mains good, A reads "
                                     "lost, UPS on battery; B outvoted"), 5, "B's NUT alarm")
            assert time.monotonic() - t0 < GRACE_S - 2, "too slow to stay inside grace"
            vpair.set_pair_wires(d, {"mains": "on"}, board="a")
            for side, lk in links.items():
                wait_for(lambda: state(lk) == "ONLINE", 10, "%s back on line" % side)
            assert mon.shutdown_time() is None, mon.log()[-3000:]
            assert records(lb, ("pair_disagree",))[-1]["data"]["outvoted"] is True

            # 4. a real outage: both sensors off, the UPS on battery
            vpair.set_pair_wires(d, {"mains": "off"})
            wall0 = time.time()
            took = mon.wait_shutdown(GRACE_S + 15)
            assert took is not None, mon.log()[-3000:]
            took -= wall0
            assert took >= GRACE_S - 1, took  # at the first FSD, not before
            # upsmon acts on the first sentinel's FSD; the other board's grace started up to
            # one heartbeat later (it heard its wires later, or the peer's word), so wait for it
            for side, lk in links.items():
                t1 = time.monotonic()
                wait_for(lambda: state(lk) in ("SHUTTING_DOWN", "LOAD_OFF"), 5,
                         "%s to run the plan" % side)
                print("%s runs the plan (%.1f s after upsmon's shutdown was seen)"
                      % (side.upper(), time.monotonic() - t1))
                assert not sensor(lk)["disagree"], (side, sensor(lk))
            print("real outage: server shut down %.1f s after mains off (grace %d s)"
                  % (took, GRACE_S))
            for side, lk in links.items():
                recs = records(lk, ("mains_lost", "state"))
                onb = [r for r in recs if r["type"] == "state" and r["data"]["to"] == "ON_BATTERY"]
                lost = [r for r in recs if r["type"] == "mains_lost"
                        and r["seq"] < onb[-1]["seq"]]
                delay = onb[-1]["ms"] - lost[-1]["ms"]
                print("%s: own detection -> ON_BATTERY %d ms (heartbeat %d ms, cause %s)"
                      % (side.upper(), delay, HEARTBEAT_MS, onb[-1]["data"]["cause"]))
                assert delay <= HEARTBEAT_MS + 500, (side, delay)
    finally:
        if mon is not None:
            mon.stop()
        vpair.stop_pair(d)


def test_board_option_needs_a_pair(tmp_path):
    from fakeboard import invoke  # pyright: ignore[reportMissingImports]
    code, _, se = invoke(["virtual", "set", "--dir", str(tmp_path), "--board", "b", "mains=0"])
    assert code == 2
    assert se.strip() == "error: --board applies to a virtual pair; %s holds one board" % tmp_path


def test_the_pair_row_shows_a_disagreement_in_red():
    from powersentinel import ui
    line = ui.pair_line({"state": "ALIVE", "peer": "10.0.0.2", "since_ms": 5000, "last_ms": 200,
                         "sensor": {"disagree": "sensor disagrees: A reads mains lost, B reads "
                                                "good; not acted on", "held": True}})
    assert line.endswith("  [red]sensor disagrees: A reads mains lost, B reads good; not acted "
                         "on[/red]")
    assert "sensor" not in ui.pair_line({"state": "ALIVE", "peer": "10.0.0.2",
                                         "sensor": {"disagree": "", "held": False}})
