"""The heap budget still holds with alerts: the heap benchmark's scenario (test_heap_budget.py:
Q1 link, 3 tiers x 2 hosts, 8 NUT clients, a mains outage with its capture) on a 128wK virtual
board with syslog, webhook and e-mail enabled and their real receivers on loopback, so alerts
are built and sent during the outage. At least 20 % of the heap stays free at the peak.

`pytest -s` prints the figures (docs/alerts.md has them)."""
import pytest

from alerts_receivers import Rsyslog, Smtp, Webhook
from test_heap_budget import BUDGET_FREE_PCT, _heap_bench  # the same budget, a fresh module

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def test_heap_budget_holds_with_three_transports(tmp_path):
    syslog = Rsyslog(tmp_path / "rsyslog")
    hook = Webhook("s3cret")
    smtp = Smtp("u", "pw")
    for r in (syslog, hook, smtp):
        r.start()
    hb = _heap_bench()
    site = hb.make_config

    def with_alerts():
        c = site()
        c["alerts"] = {
            "syslog": {"enabled": True, "host": "127.0.0.1", "port": syslog.tcp},
            "webhook": {"enabled": True, "url": hook.url(), "secret": "s3cret"},
            "smtp": {"enabled": True, "host": "127.0.0.1", "port": smtp.port, "user": "u",
                     "password": "pw", "sender": "lab@site.lan", "to": "ops@site.lan"}}
        return c

    hb.make_config = with_alerts  # the scenario builds its config with this module global
    try:
        w = tmp_path / "work"
        w.mkdir()
        r = hb.scenario("128wK", duration=20.0, workdir=str(w))
    finally:
        for rc in (syslog, hook, smtp):
            rc.stop()
    print("\nalerts on, 128wK: min free %s B (%.1f %%), peak alloc %s B; alerts received: "
          "syslog %d, webhook %d, e-mail %d" % (r["min_free"], r["min_free_pct"],
                                                r["peak_alloc"], len(set(syslog.ids())),
                                                len(set(hook.ids())), len(set(smtp.ids()))))
    assert r["ok"], r["error"]
    # the outage's alerts (mains lost, the state changes) went out during the scenario
    assert len(set(hook.ids())) >= 3 and len(set(smtp.ids())) >= 3 and len(set(syslog.ids())) >= 3
    assert r["min_free_pct"] >= BUDGET_FREE_PCT
