"""`powersentinel captures list|pull`: waveforms pulled in pieces, written in the device capture
format that `powersentinel analyze` reads, with the board's meta; skips, ids and errors."""
import json
import os

import numpy as np

from fakeboard import fake, invoke  # noqa: F401 (fixture)
from powersentinel.analysis.readers import open_recording

FS = 4000


def dip_capture(fake, start=1767225600, event="dip", n=2000, depth=0.5):
    t = np.arange(n) / FS
    v = 230 * np.sqrt(2) * np.sin(2 * np.pi * 50 * t)
    v[800:1200] *= depth
    counts = np.round(v / 0.02).astype("<i2")
    meta = {"event": event, "sample_rate": FS, "volts_per_count": 0.02, "nominal_v": 230.0,
            "nominal_hz": 50, "start_epoch": start, "n": n, "fmt": "int16le"}
    return fake.add_capture(meta, counts.tobytes()), counts


def test_list_shows_every_capture(fake):
    a, _ = dip_capture(fake)
    b, _ = dip_capture(fake, event="interruption", n=1000, depth=0.0)
    code, so, se = invoke(["captures", "list", "--port", fake.port])
    assert code == 0, se
    assert "dip" in so and "interruption" in so and "4000 Hz" in so and "500 ms" in so and "250 ms" in so
    code, so, _ = invoke(["captures", "list", "--port", fake.port, "--json"])
    assert [c["id"] for c in json.loads(so)] == [a, b]


def test_pull_writes_files_analyze_reads(fake, tmp_path):
    cid, counts = dip_capture(fake)  # 4000 bytes: three capture_read pieces
    out = str(tmp_path / "caps")
    code, so, se = invoke(["captures", "pull", "--port", fake.port, "--out", out])
    assert code == 0, se
    assert "1 pulled, 0 already in" in so
    path = os.path.join(out, "capture-%06d-dip.npz" % cid)
    rec = open_recording(path)
    assert rec.sample_rate == FS and rec.volts_per_count == 0.02 and rec.nominal_hz == 50
    assert rec.start_time == 1767225600
    assert np.array_equal(np.asarray(rec.data[:, 0]), counts)
    reads = [a for op, a in fake.requests if op == "capture_read"]
    assert [r["offset"] for r in reads] == [0, 1536, 3072] and all(r["length"] <= 1536 for r in reads)
    meta = json.load(open(os.path.join(out, "capture-%06d-dip.meta.json" % cid)))
    assert meta["event"] == "dip" and meta["id"] == cid
    assert not [f for f in os.listdir(out) if f.startswith(".part")]
    # analyze finds the dip in it
    code, so, se = invoke(["analyze", path, "--json"])
    assert code == 0, se
    ev = json.loads(so)["files"][0]["events"]
    assert [e["type"] for e in ev] == ["dip"] and abs(ev[0]["residual_v"] - 115) < 2
    # again: nothing fetched
    n = len(fake.requests)
    code, so, _ = invoke(["captures", "pull", "--port", fake.port, "--out", out])
    assert code == 0 and "0 pulled, 1 already in" in so
    assert not [op for op, _ in fake.requests[n:] if op == "capture_read"]


def test_pull_wav_by_id_and_unknown_id(fake, tmp_path):
    dip_capture(fake)
    cid, counts = dip_capture(fake, event="swell", depth=1.2)
    out = str(tmp_path / "w")
    code, so, se = invoke(["captures", "pull", "--port", fake.port, "--out", out, "--id", str(cid),
                           "--format", "wav"])
    assert code == 0, se
    assert sorted(os.listdir(out)) == ["capture-%06d-swell.json" % cid, "capture-%06d-swell.meta.json" % cid,
                                       "capture-%06d-swell.wav" % cid]
    rec = open_recording(os.path.join(out, "capture-%06d-swell.wav" % cid))
    assert rec.sample_rate == FS and np.array_equal(np.asarray(rec.data[:, 0]), counts)
    code, _, se = invoke(["captures", "pull", "--port", fake.port, "--out", out, "--id", "999"])
    assert code == 2 and se.startswith("error: no capture 999 on the board (it has ")


def test_board_meta_without_calibration_uses_the_board_config(fake, tmp_path):
    # the capture module's own meta names the rate "rate" and has no nominal values
    counts = np.zeros(400, "<i2")
    cid = fake.add_capture({"trig": 1, "rate": 4000, "n": 400, "fmt": "int16le"}, counts.tobytes())
    out = str(tmp_path / "c")
    code, so, se = invoke(["captures", "pull", "--port", fake.port, "--out", out])
    assert code == 0, se
    rec = open_recording(os.path.join(out, "capture-%06d-event.npz" % cid))
    assert rec.sample_rate == 4000 and rec.volts_per_count == fake.cfg["mains"]["volts_per_count"]
    assert rec.start_time is None


def test_channels_each_calibration_one_scale_and_names(tmp_path):
    """A two-feed board's capture: interleaved A, B with their own calibrations -> one column
    per feed, named, in the coarser channel's counts (volts kept within one count)."""
    import pytest
    from powersentinel import captures as C

    n = 800
    t = np.arange(n) / FS
    v = 230 * np.sqrt(2) * np.sin(2 * np.pi * 50 * t)
    vpcs = [0.02, 0.025]
    x = np.empty((n, 2), "<i2")
    x[:, 0] = np.round(v / vpcs[0])
    x[:, 1] = np.round(0.5 * v / vpcs[1])                    # B at half voltage
    meta = {"event": "dip", "sample_rate": FS, "volts_per_count": 0.02, "nominal_v": 230.0,
            "nominal_hz": 50, "n": n, "fmt": "int16le", "channels": ["A", "B"],
            "channel_vpc": vpcs}
    path = C.save(str(tmp_path), 7, meta, x.tobytes())
    rec = open_recording(path)
    assert rec.channels == 2 and rec.channel_names == ["A", "B"]
    assert rec.volts_per_count == 0.025
    volts = rec.data.astype(float) * rec.volts_per_count
    assert np.abs(volts[:, 0] - v).max() <= 0.025 + 0.01
    assert np.abs(volts[:, 1] - 0.5 * v).max() <= 0.025 / 2 + 0.01
    with pytest.raises(C.CaptureError, match="do not divide into 2 channels"):
        C.save(str(tmp_path), 8, meta, x.tobytes()[:-2])
