"""Smoke test of the event-loop latency benchmark (benchmarks/latency_bench.py) in a short run
(~45 s): 40 s of its load with one mains outage on a fresh virtual board. Its figures must be
there and say that no ADC block was lost and the loop never stalled for half the ADC ring.
It needs no NUT binaries (its clients are the benchmark's own), unlike test_bench_smoke.py."""
import importlib.util
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _latency_bench():
    spec = importlib.util.spec_from_file_location(
        "latency_bench", os.path.join(REPO, "benchmarks", "latency_bench.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_latency_bench_short_run(tmp_path):
    r = _latency_bench().scenario(duration=40, outages=1, workdir=str(tmp_path))
    assert r["ok"] and r["error"] is None, r
    for key in ("max_stall_ms", "ring_ms", "overruns"):
        assert isinstance(r.get(key), int), (key, r)
    assert r["overruns"] == 0, r
    assert r["ring_ms"] > 0 and r["max_stall_ms"] < r["ring_ms"] / 2, r
    # the load really ran: NUT polls, console reads, and the outage seen by the firmware
    assert r["polls"] > 0 and r["status_reads"] > 0 and r["mains_lost_seen"] > 0, r
