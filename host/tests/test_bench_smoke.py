"""Smoke test of the NUT benchmarks: each runs in a tiny mode, as a user runs it
(`.venv/bin/python benchmarks/...`), and its JSON must make sense. ~30 s; needs the real NUT
binaries (nut-server, nut-client)."""
import json
import os
import subprocess
import sys

import pytest

from powersentinel import nutreal

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "benchmarks")

pytestmark = pytest.mark.skipif(not nutreal.available(), reason="real NUT binaries not installed")


def _run(script, args, out, timeout):
    # timeout: a board that does not come up is power-cycled once by virtual.start (up to 2 x 60 s)
    p = subprocess.run([sys.executable, os.path.join(BENCH, script)] + args + ["--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    with open(out) as f:
        return json.load(f), p.stdout


def test_nut_latency_tiny(tmp_path):
    # 4 sentinel slots, 3 then 6 clients: the sentinel serves 4 of the 6 and refuses the rest
    res, text = _run("bench_nut_latency.py", ["--clients", "3,6", "--duration", "2.5",
                                              "--max-conns", "4"], tmp_path / "lat.json", 300)
    assert res["max_conns"] == 4 and res["schema_max_conns"] == 16
    rows = {(r["server"], r["clients"]): r for r in res["results"]}
    assert sorted(rows) == [("sentinel", 3), ("sentinel", 6), ("upsd", 3), ("upsd", 6)]
    for (server, n), r in rows.items():
        served = min(n, 4) if server == "sentinel" else n
        assert r["served_at_end"] == served, r
        # every served client polls once a second: 2 or 3 ticks in 2.5 s
        assert 2 * served <= r["ok"] <= 3 * served, r
        assert 0 < r["median_ms"] <= r["p99_ms"] <= r["max_ms"] < 1000, r
        assert r["login_median_ms"] > 0, r
        for kind, count in r["errors"].items():
            assert kind == "refused" and server == "sentinel" and n > 4, r
    assert rows[("sentinel", 6)]["errors"]["refused"] >= 2 * 2  # 2 clients, every tick
    assert rows[("sentinel", 6)]["heap_mid"]["free"] > 0
    assert "sentinel" in text and "upsd" in text


def test_shutdown_timing_tiny(tmp_path):
    res, text = _run("bench_shutdown_timing.py", ["--tiers", "2", "--per-tier", "1", "--grace",
                                                  "1", "--max-wait", "5", "--runs", "1"],
                     tmp_path / "sd.json", 300)
    assert res["summary"]["ok"] == 1
    run = res["runs"][0]
    # the fast loss trigger (120 degrees at 50 Hz plus a block) is seen well inside a second
    assert 0 < run["loss_seen_s"] < 0.5, run["loss_seen_s"]
    assert run["on_battery_cause"] == "mains_lost"
    assert 1.0 <= run["shutting_down_s"] < 2.0, run["shutting_down_s"]
    rows = run["tier_rows"]
    assert [r["tier"] for r in rows] == ["apps", "db"]
    prev_end = 0
    for r in rows:
        # tier order: FSD only after the previous tier is down; upsmon obeys within its poll
        assert r["fsd_s"] >= prev_end - 0.05 and r["fsd_s"] >= run["shutting_down_s"] - 0.05, r
        assert r["clients_at_fsd"] == 1 and r["end"] == "tier_done", r
        assert 0 <= r["fsd_to_shutdowncmd_last_s"] < 2.5, r
        assert r["shutdowncmd_last_s"] <= r["exit_last_s"] <= r["end_s"] + 0.05, r
        assert 0 < r["fw_fsd_to_logout_ms"] < 3000, r
        prev_end = r["end_s"]
    assert "summary" in text
