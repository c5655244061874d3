# Coverage audit: who is connected per tier, who is missing and since when, warnings once.
import json

from mpunit import TestCase
from sentinel import config
from sentinel.coverage import Coverage


class FakeNut:
    def __init__(self):
        self.clients = {"apps": [], "databases": [], "storage": []}

    def logged_in(self, ups):
        return [(a, "upsmon") for a in self.clients[ups]]


def make_cfg():
    cfg, errs = config.validate({"tiers": [
        {"name": "apps", "hosts": [{"name": "web1", "address": "10.0.0.5"},
                                   {"name": "web2", "address": "10.0.0.6"}]},
        {"name": "databases", "hosts": [{"name": "db1", "address": "10.0.1.5"},
                                        {"name": "db2", "address": "10.0.1.6"},
                                        {"name": "db3", "address": "10.0.1.7"}]},
        {"name": "storage", "hosts": [{"name": "nas1", "address": "10.0.2.5"}]}]})
    assert not errs, errs
    return cfg


class Audit(TestCase):
    def setUp(self):
        self.nut = FakeNut()
        self.jr = []
        self.cov = Coverage(make_cfg(), self.nut, self.journal, now_ms=0, warn_after_ms=30000)

    def journal(self, t, data, now, critical=False):
        json.dumps(data)
        self.jr.append((t, data, now))

    def test_connected_missing_and_since(self):
        n = self.nut
        n.clients["apps"] = ["10.0.0.5", "10.0.0.6"]
        n.clients["databases"] = ["10.0.1.5"]
        n.clients["storage"] = ["::ffff:10.0.2.5"]  # IPv4-mapped form matches too
        self.cov.update(5000)
        st = self.cov.status(45000)
        self.assertEqual(st[0], {"name": "apps", "connected": [{"host": "web1", "addr": "10.0.0.5"},
                                                               {"host": "web2", "addr": "10.0.0.6"}],
                                 "missing": [], "unknown": []})
        # db2 and db3 were never seen: missing since monitoring began (t=0)
        self.assertEqual(st[1]["missing"], [{"host": "db2", "since_s": 45},
                                            {"host": "db3", "since_s": 45}])
        self.assertEqual(st[2]["connected"], [{"host": "nas1", "addr": "10.0.2.5"}])
        self.assertEqual(self.cov.nut_vars("databases"),
                         [("sentinel.coverage.connected", "db1"),
                          ("sentinel.coverage.expected", 3),
                          ("sentinel.coverage.missing", "db2,db3")])
        self.assertFalse(self.cov.all_connected())

    def test_each_hosts_feeds_reported(self):
        cfg, errs = config.validate({"mains": {"channels": [{"name": "A"}, {"name": "B"}]},
                                     "tiers": [{"name": "apps", "hosts": [
                                         {"name": "a1", "address": "10.0.0.5",
                                          "feeds": ["A", "B"]},
                                         {"name": "b1", "address": "10.0.0.6", "feeds": ["B"]},
                                         {"name": "x", "address": "10.0.0.7"}]}]})
        self.assertEqual(errs, [])
        self.nut.clients["apps"] = ["10.0.0.5"]
        cov = Coverage(cfg, self.nut, self.journal, now_ms=0)
        cov.update(1000)
        st = cov.status(1000)[0]
        self.assertEqual(st["connected"], [{"host": "a1", "addr": "10.0.0.5", "feeds": ["A", "B"]}])
        self.assertEqual(st["missing"], [{"host": "b1", "since_s": 1, "feeds": ["B"]},
                                         {"host": "x", "since_s": 1}])

    def test_warning_once_after_the_delay_and_back_record(self):
        n = self.nut
        n.clients["apps"] = ["10.0.0.5", "10.0.0.6"]
        n.clients["databases"] = ["10.0.1.5", "10.0.1.6", "10.0.1.7"]
        n.clients["storage"] = ["10.0.2.5"]
        self.cov.update(1000)
        self.assertEqual(self.jr, [])
        self.assertTrue(self.cov.all_connected())
        n.clients["databases"].remove("10.0.1.6")  # db2 drops out at 10 s
        for t in range(10000, 40000, 5000):
            self.cov.update(t)
        self.assertEqual(self.jr, [])  # 25 s: a reconnect gap, not yet a warning
        self.assertEqual(self.cov.status(39000)[1]["missing"], [{"host": "db2", "since_s": 29}])
        for t in range(40000, 120000, 5000):
            self.cov.update(t)
        self.assertEqual(self.jr, [("coverage_missing", {"tier": "databases", "host": "db2",
                                                         "addr": "10.0.1.6", "missing_ms": 30000},
                                    40000)])
        n.clients["databases"].append("10.0.1.6")
        self.cov.update(125000)
        self.assertEqual(self.jr[-1], ("coverage_back", {"tier": "databases", "host": "db2",
                                                         "addr": "10.0.1.6", "missing_ms": 115000},
                                       125000))
        self.assertEqual(self.cov.missing("databases"), [])
        self.assertEqual(len(self.jr), 2)

    def test_short_gap_writes_nothing(self):
        n = self.nut
        n.clients["storage"] = ["10.0.2.5"]
        self.cov.update(0)
        n.clients["storage"] = []
        self.cov.update(5000)
        n.clients["storage"] = ["10.0.2.5"]
        self.cov.update(20000)
        self.assertEqual([j for j in self.jr if j[1]["host"] == "nas1"], [])

    def test_quiet_during_a_plan(self):
        self.cov.update(60000, quiet=True)  # a shutdown is running: everyone leaves on purpose
        self.assertEqual(self.jr, [])
        self.assertEqual(self.cov.missing("storage"), ["nas1"])
        self.nut.clients["storage"] = ["10.0.2.5"]
        self.cov.update(70000)
        # no "back" for a warning never written; those still missing after the plan are
        # reported now, with their whole gap
        self.assertEqual([j[1]["host"] for j in self.jr], ["web1", "web2", "db1", "db2", "db3"])
        self.assertEqual(self.jr[0][1]["missing_ms"], 70000)

    def test_unknown_clients_listed(self):
        self.nut.clients["apps"] = ["10.0.0.5", "10.9.9.9"]
        self.cov.update(0)
        self.assertEqual(self.cov.status(0)[0]["unknown"], ["10.9.9.9"])
