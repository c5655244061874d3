"""Three phases on the virtual board, end to end: the site file's mains.channels reaches the
supervisor (one waveform per phase, 120 degrees apart) and the firmware (three channels sampled
in turn by one hard IRQ through hal/_mcu.py); `virtual set mains.L2=off` loses one phase only:
the console shows it per channel, the aggregate stays on mains, the real `upsc` reads the
per-phase NUT variables; `mains=off` loses them all."""
import json
import os
import shutil
import subprocess

import pytest

from powersentinel import logs, virtual
from powersentinel.link import Link
from powersentinel.virtual import wait_for

CHANNELS = [{"name": "L1"}, {"name": "L2"}, {"name": "L3"}]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    base = tmp_path_factory.mktemp("phases")
    cfg = {"version": 1, "site": {"name": "three-phase"},
           "mains": {"nominal_v": 230.0, "nominal_hz": 50, "channels": CHANNELS},
           "tiers": [{"name": "apps", "max_wait_s": 60, "hosts": []}]}
    path = str(base / "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    d = str(base / "board")
    meta = virtual.start(d, config=path)
    meta["dir"] = d
    try:
        yield meta
    finally:
        virtual.stop(d)


def _chans(link):
    return {c["name"]: c for c in link.request("status")["mains"].get("channels", [])}


def _upsc(meta):
    exe = shutil.which("upsc")
    if exe is None:
        pytest.skip("no upsc (make nut)")
    r = subprocess.run([exe, "apps@" + meta["nut"]], capture_output=True, text=True, timeout=10)
    if r.returncode:
        return {}
    return dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)


def test_supervisor_plays_three_phases_120_degrees_apart(board):
    st = virtual.state(board["dir"])["mains"]["channels"]
    assert [(c["name"], c["pin"], c["phase_deg"]) for c in st] == [
        ("L1", 26, 0.0), ("L2", 27, -120.0), ("L3", 28, -240.0)]


def test_one_phase_lost_then_all(board):
    d = board["dir"]
    with Link(board["serial"]) as link:
        wait_for(lambda: all(200 < c["v"] < 260 and c["good"] for c in _chans(link).values())
                 and len(_chans(link)) == 3, 20, "three good phases")
        nv = {}

        def nut_ok():
            nv.update(_upsc(board))
            return (nv.get("input.phases") == "3"
                    and 200 < float(nv.get("input.L3-N.voltage", 0)) < 260)
        wait_for(nut_ok, 20, "upsc to show three phases")
        link.poll_events()

        virtual.set_wires(d, {"mains.L2": "off"})
        ev = link.wait_event(lambda e: e.get("ev") == "mains" and e.get("lost_channels") == ["L2"],
                             5)
        assert ev is not None, "the firmware did not see L2 go"
        assert ev["lost"] is False and ev["good"] is True     # L1 and L3 still there
        ch = _chans(link)
        assert ch["L2"]["lost"] and not ch["L1"]["lost"] and not ch["L3"]["lost"]
        st = link.request("status")
        assert st["mains"]["lost"] is False and "OL" in st["ups"]["status"]

        def l2_low():
            nv.update(_upsc(board))
            return float(nv.get("input.L2-N.voltage", 999)) < 20
        wait_for(l2_low, 20, "upsc to show L2 at 0 V")
        assert 200 < float(nv["input.L1-N.voltage"]) < 260

        virtual.set_wires(d, {"mains": "off"})
        ev = link.wait_event(lambda e: e.get("ev") == "mains" and e.get("lost"), 5)
        assert ev is not None and sorted(ev["lost_channels"]) == ["L1", "L2", "L3"]
        virtual.set_wires(d, {"mains": "on"})
        wait_for(lambda: all(c["good"] for c in _chans(link).values()), 20, "phases back")
        # the polyphase event: the dip on L2 widened into the interruption of every phase
        evs = link.request("status")["mains"]["events"]
        assert evs and evs[-1]["type"] == "interruption", evs
        assert evs[-1]["phases"] == ["L1", "L2", "L3"]


def test_feed_key_and_bad_names_are_refused(board):
    with pytest.raises(virtual.VirtualError):
        virtual.set_wires(board["dir"], {"mains.L4": "off"})
    with pytest.raises(virtual.VirtualError):
        virtual.set_wires(board["dir"], {"feed.B": "0.5"})   # phases have no feed here


def test_feeds_a_and_b_in_phase_and_feed_level(tmp_path):
    """Feeds A and B (in phase): `virtual set feed.B=0.5` halves B only; upsc reads the feeds as
    input.1.voltage and input.2.voltage, and no input.phases."""
    cfg = {"version": 1, "mains": {"channels": [{"name": "A"}, {"name": "B", "pin": 28}]},
           "tiers": [{"name": "apps", "max_wait_s": 60, "hosts": []}]}
    path = str(tmp_path / "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    d = str(tmp_path / "board")
    meta = virtual.start(d, config=path)
    try:
        st = virtual.state(d)["mains"]["channels"]
        assert [(c["name"], c["feed"], c["pin"], c["phase_deg"]) for c in st] == [
            ("A", "A", 26, 0.0), ("B", "B", 28, 0.0)]
        with Link(meta["serial"]) as link:
            wait_for(lambda: len(_chans(link)) == 2
                     and all(c["good"] for c in _chans(link).values()), 20, "two good feeds")
            virtual.set_wires(d, {"feed.B": "0.5"})
            wait_for(lambda: 105 < _chans(link)["B"]["v"] < 125, 10, "feed B at half")
            ch = _chans(link)
            assert 220 < ch["A"]["v"] < 240 and ch["A"]["good"] and not ch["B"]["good"]
            st = link.request("status")["mains"]
            assert st["good"] and not st["lost"]      # one healthy feed: still on mains
        nv = {}

        def nut_ok():
            nv.update(_upsc(meta))
            return 105 < float(nv.get("input.2.voltage", 0)) < 125
        wait_for(nut_ok, 20, "upsc to show feed B at half")
        assert 220 < float(nv["input.1.voltage"]) < 240 and "input.phases" not in nv
    finally:
        virtual.stop(d)


def test_captures_keep_every_phase_and_the_report_plots_each(board, tmp_path):
    """A disturbance on L2 alone: the board's capture holds the three phases, `captures pull`
    writes one named column per phase, and `analyze` finds the dip and labels each phase."""
    import numpy as np
    from fakeboard import invoke

    d = board["dir"]
    with Link(board["serial"]) as link:
        wait_for(lambda: len(_chans(link)) == 3 and all(c["good"] for c in _chans(link).values()),
                 20, "three good phases")
        before = {c["id"] for c in link.request("capture_list")}
        virtual.set_wires(d, {"mains.L2": "off"})
        new = []

        def captured():
            new[:] = [c for c in link.request("capture_list") if c["id"] not in before]
            return bool(new)
        wait_for(captured, 10, "a capture of the L2 loss")
        virtual.set_wires(d, {"mains.L2": "on"})
        wait_for(lambda: all(c["good"] for c in _chans(link).values()), 20, "L2 back")
    cid = new[0]["id"]
    out = str(tmp_path / "caps")
    env = {"POWERSENTINEL_TIMEOUT": "10"}
    code, so, se = invoke(["captures", "pull", "--port", "virtual://" + d, "--out", out,
                           "--id", str(cid)], env)
    assert code == 0, so + se
    path = next(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".npz"))
    z = np.load(path)
    x = z["samples"]
    assert x.ndim == 2 and x.shape[1] == 3, x.shape
    assert [str(n) for n in z["channel_names"]] == ["L1", "L2", "L3"]
    tail = x[-x.shape[0] // 4:].astype(float)   # after the loss: L2 flat, L1 and L3 whole
    rms = np.sqrt((tail ** 2).mean(axis=0)) * float(z["volts_per_count"])
    assert rms[1] < 20 and rms[0] > 180 and rms[2] > 180, rms
    rep = str(tmp_path / "report")
    code, so, se = invoke(["analyze", path, "--json", "--report", rep], env)
    assert code == 0, so + se
    doc = json.loads(so)["files"][0]
    assert doc["channels"] == 3 and doc["channel_names"] == ["L1", "L2", "L3"]
    assert any(e["type"] in ("dip", "interruption") for e in doc["events"]), doc["events"]
    assert os.path.getsize(os.path.join(rep, os.path.splitext(os.path.basename(path))[0]
                                        + "_urms.png")) > 1000


def test_a_phase_missing_or_at_70_percent_raises_the_alarm_everywhere(board):
    """One phase at 70 % (a brown-out), then at 0 V: "redundancy lost" at once in the console
    status, over NUT (ALARM in ups.status, the cause in ups.alarm, read by the real upsc) and
    in the log; the rest of the site stays on mains. Cleared when the phase is back."""
    d = board["dir"]
    nv = {}

    def nut(pred):
        def ok():
            nv.clear()
            nv.update(_upsc(board))
            return pred(nv)
        return ok
    with Link(board["serial"]) as link:
        wait_for(lambda: len(_chans(link)) == 3 and all(c["good"] for c in _chans(link).values()),
                 20, "three good phases")
        virtual.set_wires(d, {"mains.L3": 0.7})
        wait_for(lambda: link.request("status")["mains"].get("alarm")
                 == "redundancy lost: phase L3 out of tolerance", 5, "the brown-out alarm")
        st = link.request("status")
        assert st["mains"]["lost"] is False and st["state"]["name"] == "ONLINE", st["state"]
        wait_for(nut(lambda v: v.get("ups.status", "").startswith("ALARM OL")
                     and "phase L3 out of tolerance" in v.get("ups.alarm", "")), 10,
                 "upsc to show the alarm")
        virtual.set_wires(d, {"mains.L3": "off"})
        wait_for(lambda: link.request("status")["mains"].get("alarm")
                 == "redundancy lost: phase L3 lost", 5, "the lost-phase alarm")
        virtual.set_wires(d, {"mains.L3": "on"})
        wait_for(lambda: link.request("status")["mains"].get("alarm") == "", 10, "alarm cleared")
        wait_for(nut(lambda v: v.get("ups.status") == "OL" and "ups.alarm" not in v), 10,
                 "upsc to show OL without an alarm")
        recs = logs.read(link, types=("phase_alarm", "phase_ok"))
        assert [r["data"]["alarm"] for r in recs if r["type"] == "phase_alarm"][-2:] == [
            "redundancy lost: phase L3 out of tolerance", "redundancy lost: phase L3 lost"], recs
        assert recs[-1]["type"] == "phase_ok", recs
        # the whole mains going and coming back (the other tests on this board) raised none:
        # its phases cross their thresholds ms apart, shorter than the alarm's hold
        assert not any("L1" in r["data"].get("alarm", "") for r in recs), recs


def test_the_mains_row_shows_the_phase_alarm_in_red():
    from powersentinel.ui import mains_line
    row = mains_line({"lost": False, "good": True, "alarm": "redundancy lost: phase L2 lost"})
    assert "[red]redundancy lost: phase L2 lost[/red]" in row
    assert "red" not in mains_line({"lost": False, "good": True, "alarm": ""})


@pytest.mark.parametrize("onset_deg", [0, 90, 225])
def test_device_and_analyze_agree_on_a_captured_polyphase_dip(board, tmp_path, onset_deg):
    """A dip on L2 and L3 together, short enough to fit in the capture (33 ms before, 133 ms
    after its start with three channels): the board's polyphase event and `analyze` on the
    pulled capture agree on the kind, the phases and the duration within one cycle."""
    import time

    from fakeboard import invoke

    d = board["dir"]
    with Link(board["serial"]) as link:
        wait_for(lambda: len(_chans(link)) == 3 and all(c["good"] for c in _chans(link).values()),
                 20, "three good phases")
        before = {c["id"] for c in link.request("capture_list")}
        last = (link.request("status")["mains"]["events"] or [None])[-1]   # status keeps 5
        virtual.set_wires(d, {"mains.L2": 0.5, "mains.L3": 0.5}, at_phase=onset_deg)
        time.sleep(0.06)  # the dip's length (the stimulus), not a wait for a result
        virtual.set_wires(d, {"mains.L2": "on", "mains.L3": "on"})
        evs = []

        def event_done():
            evs[:] = link.request("status")["mains"]["events"]
            return bool(evs) and evs[-1] != last and evs[-1]["duration_ms"] is not None
        wait_for(event_done, 10, "the device's dip event")
        new = []

        def captured():
            new[:] = [c for c in link.request("capture_list") if c["id"] not in before]
            return bool(new)
        wait_for(captured, 10, "the dip's capture")
    dev = evs[-1]
    assert dev["type"] == "dip" and sorted(dev["phases"]) == ["L2", "L3"], dev
    out = str(tmp_path / "caps")
    env = {"POWERSENTINEL_TIMEOUT": "10"}
    code, so, se = invoke(["captures", "pull", "--port", "virtual://" + d, "--out", out,
                           "--id", str(new[0]["id"])], env)
    assert code == 0, so + se
    path = next(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".npz"))
    code, so, se = invoke(["analyze", path, "--json"], env)
    assert code == 0, so + se
    host = [e for e in json.loads(so)["files"][0]["events"] if e["type"] == "dip"]
    assert len(host) == 1, json.loads(so)["files"][0]["events"]
    assert host[0]["duration_s"] is not None
    assert sorted(host[0]["channels"]) == [1, 2], host[0]     # L2, L3 (0-based columns)
    assert abs(host[0]["duration_s"] * 1000 - dev["duration_ms"]) <= 20, (host[0], dev)
    print("onset %d deg: device dip %d ms on %s, analyze %.1f ms" % (
        onset_deg, dev["duration_ms"], dev["phases"], host[0]["duration_s"] * 1000))
