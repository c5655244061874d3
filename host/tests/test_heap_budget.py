"""The firmware's heap budget on the virtual board: at 128wK (the default), under the heap_bench
scenario (Q1 link, 3 tiers x 2 hosts, 2 NUT users, 8 NUT clients logged in and polling, a mains
outage with its waveform capture), the firmware must survive and keep at least 20 % of its heap
free at the peak. Twice, one ~20 s scenario run each, shared by the tests below it:
  * the firmware as deployed by default (no optional part);
  * everything enabled (heap_bench's `all`): alerts through syslog, webhook, e-mail and MQTT to
    real receivers on loopback, delivering the outage's alerts, and the status page and
    /metrics fetched back to back for the whole run.

Figures: `pytest -s host/tests/test_heap_budget.py` prints them; the full benchmark (128wK and
112wK) is `python benchmarks/heap_bench.py` (`--features all` for the second run)."""
import importlib.util
import os

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUDGET_FREE_PCT = 20.0  # "room to spare": a fifth of the heap free at the worst moment


def _heap_bench():
    path = os.path.join(REPO, "benchmarks", "heap_bench.py")
    spec = importlib.util.spec_from_file_location("heap_bench", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod




def _run(heap, tmp_path_factory, features=()):
    hb = _heap_bench()
    r = hb.scenario(heap, duration=20.0, workdir=str(tmp_path_factory.mktemp("heap")),
                    features=features)
    if r["samples"]:
        print("\nheap %s %s: total %d B, peak alloc %d B, min free %d B (%.1f %%), %d readings, "
              "%d NUT logins, mains lost seen %s, captures %s, loop %s, loads %s, error %s" % (
                  heap, ",".join(features) or "(no optional part)", r["total"], r["peak_alloc"],
                  r["min_free"], r["min_free_pct"], len(r["samples"]), r["nut_logins"],
                  r["mains_lost_seen"], r["captures"], r["loop"], r["loads"], r["error"]))
    return r


@pytest.fixture(scope="module")
def run128(tmp_path_factory):
    return _run("128wK", tmp_path_factory)


def _assert_budget(r):
    assert r["ok"], r["error"]
    assert r["min_free_pct"] >= BUDGET_FREE_PCT, (
        "%s: peak alloc %d B of %d B: %.1f %% free, budget %.0f %%"
        % (",".join(r["features"]) or "no optional part", r["peak_alloc"], r["total"],
           r["min_free_pct"], BUDGET_FREE_PCT))


def test_peak_keeps_a_quarter_of_the_heap_free_at_128wK(run128):
    _assert_budget(run128)


def test_firmware_survives_the_scenario_at_128wK(run128):
    r = run128
    assert r["ok"], r["error"]
    # the scenario really ran: clients logged in, the outage was seen, a capture was stored
    assert r["nut_logins"] == 8
    assert r["mains_lost_seen"]
    assert r["captures"] and r["captures"] >= 1
    assert len(r["samples"]) >= 20
    # 128wK on the 64-bit unix port
    assert 250000 < r["total"] <= 262144


# -- everything enabled ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_all128(tmp_path_factory):
    pytest.importorskip("aiosmtpd")
    return _run("128wK", tmp_path_factory, features=("all",))


def test_firmware_survives_everything_enabled_at_128wK(run_all128):
    r = run_all128
    assert r["ok"], r["error"]  # no MemoryError, still answering, every load's answers whole
    assert r["nut_logins"] == 8 and r["mains_lost_seen"] and r["captures"]
    assert len(r["samples"]) >= 20
    web = r["loads"]["web"]
    assert web["failed"] == 0 and min(web["ok"].values()) >= 50, web
    alerts = r["loads"]["alerts"]
    assert {"syslog", "webhook", "smtp"} <= set(alerts) and min(alerts.values()) >= 3, alerts
    # sending alerts and serving pages does not stall the loop past half the ADC ring (256 ms):
    # what the firmware itself counts as a stall. A quiet machine measures 4-7 ms here; one
    # shared with other jobs has shown up to 106 ms without any optional part (wall clock).
    assert r["loop"]["stalls"] == 0 and r["loop"]["max_stall_ms"] < 128, r["loop"]
    assert r["overruns"] == 0


def test_everything_enabled_keeps_a_fifth_of_the_heap_free_at_128wK(run_all128):
    _assert_budget(run_all128)
