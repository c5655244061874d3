"""Device and host agree on polyphase events: one three-phase recording (analysis.synth) is fed
to the firmware's PhaseSet under the real MicroPython and to `powersentinel analyze`; both must
find the same events (kind, the phases involved), starts and durations within one cycle.

Mapping: the device reports one event per polyphase dip, of kind "interruption" when every
phase was below interruption_pct at once; the host reports that dip (includes_interruption)
and the interruption inside it as a second event. Dips and swells are compared one to one; the
host's interruption events must lie inside the device's interruptions."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from powersentinel.analysis import synth

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LIB = os.path.join(ROOT, "firmware", "lib")
RATE = 4000
VPC = 0.02
CYCLE_S = 0.02

DEVICE = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
from sentinel import config
from sentinel.phases import PhaseSet
cfg = config.defaults()["mains"]
cfg["sample_rate"] = int(sys.argv[3])
cfg["volts_per_count"] = float(sys.argv[4])
cfg["channels"] = [{"name": n, "pin": None, "volts_per_count": None, "feed": None}
                   for n in ("L1", "L2", "L3")]
ps = PhaseSet(cfg)
bl = cfg["block_len"]
buf = bytearray(2 * 3 * bl)
mv = memoryview(buf)
from array import array
blk = array("h", bytes(2 * 3 * bl))
out = []
with open(sys.argv[2], "rb") as f:
    while f.readinto(buf) == len(buf):
        blk[:] = array("h", buf)   # little-endian int16, the host's tobytes()
        ps.feed(blk)
        while ps.pending():
            e = ps.pop_event()
            out.append({"kind": e["kind"], "start_s": e["start"] / cfg["sample_rate"],
                        "duration_s": e["samples"] / cfg["sample_rate"],
                        "phases": e["phases"], "pct": e["pct"]})
print(json.dumps(out))
"""


def _micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else shutil.which("micropython")


def _recording():
    s = synth.Synth(RATE, channels=3, volts_per_count=VPC, noise_v=0.5,
                    harmonics={3: 0.03, 5: 0.02}, seed=7)
    s.add(synth.dip(0.50, 0.100, 0.30, onset_deg=40), phases=[1])          # L2 alone
    s.add(synth.dip(1.00, 0.200, 0.50, onset_deg=0), phases=[0])           # L1, then L3
    s.add(synth.dip(1.12, 0.230, 0.60, onset_deg=200), phases=[2])         # overlapping
    s.add(synth.interruption(1.80, 0.150, onset_deg=90))                   # every phase
    s.add(synth.interruption(2.40, 0.100, onset_deg=300), phases=[0])      # L1 only: a dip
    s.add(synth.swell(2.80, 0.120, 1.20, onset_deg=130), phases=[2])       # L3 swell
    return s.generate(3.3)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    mp = _micropython()
    if mp is None:
        pytest.skip("no micropython")
    d = tmp_path_factory.mktemp("phases")
    x = _recording()
    assert x.shape[1] == 3 and x.dtype == np.int16
    rec = str(d / "rec.npy")
    np.save(rec, x)
    raw = str(d / "rec.raw")
    with open(raw, "wb") as f:
        f.write(np.ascontiguousarray(x, "<i2").tobytes())    # interleaved L1 L2 L3 per tick
    dev = subprocess.run([mp, "-X", "heapsize=4M", "-c", DEVICE, LIB, raw, str(RATE), str(VPC)],
                         capture_output=True, text=True, timeout=120)
    assert dev.returncode == 0, dev.stderr + dev.stdout
    cli = os.path.join(os.path.dirname(sys.executable), "powersentinel")
    host = subprocess.run([cli, "analyze", rec, "--json", "--sample-rate", str(RATE),
                           "--volts-per-count", str(VPC), "--no-harmonics"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert host.returncode == 0, host.stderr + host.stdout
    events = json.loads(host.stdout)["files"][0]["events"]
    return json.loads(dev.stdout.strip().splitlines()[-1]), events


def test_same_events_starts_and_durations_within_one_cycle(both):
    dev, host = both
    names = ("L1", "L2", "L3")
    hd = sorted([e for e in host if e["type"] in ("dip", "swell")], key=lambda e: e["start_s"])
    print("device:", json.dumps(dev, indent=0))
    print("host:", json.dumps(hd, indent=0))
    assert [e["kind"] for e in dev] == ["dip", "dip", "interruption", "dip", "swell"]
    assert len(hd) == len(dev)
    for d, h in zip(dev, hd):
        want = "interruption" if h["type"] == "dip" and h["includes_interruption"] else h["type"]
        assert d["kind"] == want, (d, h)
        assert sorted(d["phases"]) == sorted(names[c] for c in h["channels"]), (d, h)
        assert abs(d["start_s"] - h["start_s"]) <= CYCLE_S, (d, h)
        assert abs(d["duration_s"] - h["duration_s"]) <= CYCLE_S, (d, h)
    # the host's interruptions (every phase below 10 %) lie inside the device's
    ints = [e for e in host if e["type"] == "interruption"]
    assert len(ints) == 1
    di = [e for e in dev if e["kind"] == "interruption"][0]
    assert di["start_s"] - CYCLE_S <= ints[0]["start_s"]
    assert ints[0]["start_s"] + ints[0]["duration_s"] <= di["start_s"] + di["duration_s"] + CYCLE_S
