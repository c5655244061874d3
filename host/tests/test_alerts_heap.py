"""The heap budget still holds with alerts: the heap benchmark's scenario (test_heap_budget.py:
Q1 link, 3 tiers x 2 hosts, 8 NUT clients, a mains outage with its capture) on a 128wK virtual
board with syslog, webhook, e-mail and MQTT (with Home Assistant discovery) enabled and their
real receivers on loopback (rsyslogd, an HTTP receiver checking the HMAC, aiosmtpd, mosquitto:
heap_bench's `alerts` feature), so alerts are built and sent during the outage. At least 20 %
of the heap stays free at the peak.

`pytest -s` prints the figures (docs/alerts.md and benchmarks/README.md have them)."""
import pytest

from test_heap_budget import BUDGET_FREE_PCT, _heap_bench  # the same budget, a fresh module

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def test_heap_budget_holds_with_every_transport(tmp_path):
    hb = _heap_bench()
    r = hb.scenario("128wK", duration=20.0, workdir=str(tmp_path), features=("alerts",))
    print("\nalerts on, 128wK: min free %s B (%s %%), peak alloc %s B; alerts received %s; "
          "loop %s" % (r.get("min_free"), r.get("min_free_pct"), r.get("peak_alloc"),
                       r["loads"].get("alerts"), r["loop"]))
    assert r["ok"], r["error"]
    # the outage's alerts (mains lost, the state changes) went out during the scenario, through
    # every transport (the feature's check: at least 3 distinct ids each)
    got = r["loads"]["alerts"]
    assert {"syslog", "webhook", "smtp"} <= set(got) and min(got.values()) >= 3, got
    assert r["min_free_pct"] >= BUDGET_FREE_PCT
