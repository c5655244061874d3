"""Readers, bad input, and the `analyze` CLI (click's CliRunner)."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from powersentinel.analysis import (AnalysisInputError, Synth, analyze_array, dip, open_recording,
                                    write_capture)
from powersentinel.analysis.cli import analyze

FS = 4_000
VPC = 0.02


def _x(seconds=2.0, **kw):
    s = Synth(FS, volts_per_count=VPC, noise_v=0.3, events=[dip(0.8, 0.2, 0.5)], **kw)
    return s.generate(seconds)


def _run(*args):
    return CliRunner().invoke(analyze, [str(a) for a in args])


def test_capture_formats_roundtrip(tmp_path):
    x = _x()
    for name in ("c.npz", "c.wav"):
        p = tmp_path / name
        write_capture(str(p), x, FS, VPC, start_time="2025-03-01T10:00:00Z")
        rec = open_recording(str(p))
        assert (rec.sample_rate, rec.volts_per_count, rec.nominal_v, rec.nominal_hz) == \
            (FS, VPC, 230.0, 50.0)
        assert rec.start_time == 1740823200.0
        np.testing.assert_array_equal(np.concatenate(list(rec.chunks(777)))[:, 0], x)
    assert json.load(open(tmp_path / "c.json"))["format"] == "powersentinel.capture/1"


def test_npy_with_sidecar_and_csv(tmp_path):
    x = _x()
    np.save(tmp_path / "a.npy", x)
    (tmp_path / "a.json").write_text(json.dumps({"sample_rate": FS, "volts_per_count": VPC}))
    rec = open_recording(str(tmp_path / "a.npy"))
    assert rec.sample_rate == FS and rec.volts_per_count == VPC
    t = np.arange(x.size) / FS
    np.savetxt(tmp_path / "b.csv", np.column_stack((t, x * VPC)), delimiter=",",
               header="time,v1", comments="")
    rec = open_recording(str(tmp_path / "b.csv"))
    assert rec.sample_rate == pytest.approx(FS) and rec.volts_per_count == 1.0
    r = analyze_array(rec.data, rec.sample_rate)
    assert [e.type for e in r.events] == ["dip"]


def test_cli_terminal_json_and_report(tmp_path):
    p = tmp_path / "cap.wav"
    write_capture(str(p), _x(), FS, VPC)
    res = _run(p)
    assert res.exit_code == 0, res.output
    assert "dip" in res.output and "EN 50160" in res.output
    res = _run(p, "--json", "--report", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["schema"] == "powersentinel.analyze/1"
    (f,) = doc["files"]
    (ev,) = f["events"]
    assert ev["type"] == "dip" and abs(ev["start_s"] - 0.8) < 0.01
    assert abs(ev["duration_s"] - 0.2) < 0.01
    assert abs(ev["residual_pu"] - 0.5) < 0.01 and ev["peak_v"] is None
    for key in ("residual_v", "iec_start_s", "iec_duration_s", "ieee1159", "channels"):
        assert key in ev
    assert {c["name"] for c in f["en50160"]["checks"]} >= {"THD (to h40) <= 8 %"}
    files = os.listdir(tmp_path / "rep")
    assert {"cap.html", "cap_urms.png", "cap_frequency.png", "cap_spectrum.png",
            "cap_event000.png"} <= set(files)
    html = (tmp_path / "rep" / "cap.html").read_text()
    assert "cap_event000.png" in html and "cap_urms.png" in html
    assert f["report"].endswith("cap.html")


def _err(res):
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_cli_bad_inputs(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert "empty file" in _err(_run(empty))
    good = tmp_path / "g.wav"
    write_capture(str(good), _x(), FS, VPC)
    raw = good.read_bytes()
    (tmp_path / "h.wav").write_bytes(raw[:30])
    (tmp_path / "h.json").write_text((tmp_path / "g.json").read_text())
    assert "truncated" in _err(_run(tmp_path / "h.wav"))
    # wrong sample rate: option disagrees with the file
    assert "mismatch" in _err(_run(good, "--sample-rate", 8000))
    # wrong sample rate: samples were taken at 4 kHz but declared 10 kHz
    np.save(tmp_path / "r.npy", _x())
    assert "wrong sample rate" in _err(_run(tmp_path / "r.npy", "--sample-rate", 10_000,
                                           "--volts-per-count", VPC))
    # NaN
    v = _x() * VPC
    v = v.astype(np.float64)
    v[3000] = np.nan
    np.save(tmp_path / "n.npy", v)
    assert "NaN" in _err(_run(tmp_path / "n.npy", "--sample-rate", FS))
    # integer samples without calibration
    assert "calibration" in _err(_run(tmp_path / "r.npy", "--sample-rate", FS))
    # no sample rate at all
    assert "sample rate unknown" in _err(_run(tmp_path / "r.npy", "--volts-per-count", VPC))
    assert "no such file" in _err(_run(tmp_path / "missing.wav"))
    (tmp_path / "bad.txt").write_text("a,b\nx,y\n")
    assert _err(_run(tmp_path / "bad.txt", "--sample-rate", FS))
    tiny = tmp_path / "tiny.npy"
    np.save(tiny, np.zeros(10))
    assert "too short" in _err(_run(tiny, "--sample-rate", FS))


def test_truncated_wav_data_is_flagged(tmp_path):
    good = tmp_path / "g.wav"
    write_capture(str(good), _x(), FS, VPC)
    raw = good.read_bytes()
    (tmp_path / "t.wav").write_bytes(raw[:len(raw) // 2 + 1])  # odd cut: half a frame too
    (tmp_path / "t.json").write_text((tmp_path / "g.json").read_text())
    rec = open_recording(str(tmp_path / "t.wav"))
    assert rec.n_samples == (len(raw) // 2 + 1 - 44) // 2
    assert any("truncated WAV" in w for w in rec.warnings)
    res = _run(tmp_path / "t.wav", "--json")
    assert res.exit_code == 0
    assert any("truncated" in w for w in json.loads(res.output)["files"][0]["warnings"])


def test_clipped_adc_is_flagged():
    # 0.012 V/count: the 230 V peak (325 V) needs 27 100 counts; a 30 % swell clips
    s = Synth(FS, volts_per_count=0.012, events=[dip(0.5, 0.2, 1.3)])
    x = s.generate(1.5)
    assert x.max() == 32767
    r = analyze_array(x, FS, volts_per_count=0.012)
    (ev,) = r.events
    assert ev.type == "swell" and ev.clipped
    assert r.clipped_halfcycles > 0 and any("clipped" in w for w in r.warnings)
    assert r.agg150.flags.any()
    assert ev.to_dict(230)["clipped"] is True


def test_analyzer_rejects_bad_parameters():
    with pytest.raises(AnalysisInputError):
        analyze_array(np.zeros(1000), 200)          # too slow for 50 Hz
    with pytest.raises(AnalysisInputError):
        analyze_array(np.zeros((1000, 2, 2)), FS)
    with pytest.raises(AnalysisInputError):
        analyze_array(np.array([], np.int16), FS, volts_per_count=VPC)
    with pytest.raises(AnalysisInputError):
        analyze_array(np.full(4000, np.inf), FS)
