from mpunit import TestCase

from sentinel import config
from sentinel.battery import ESTIMATE, UPS, BatteryModel

RUNTIME = config.defaults()["ups"]["battery_runtime_s"]


class TestEstimate(TestCase):
    def test_full_on_line(self):
        b = BatteryModel(runtime_full_s=1200)
        b.update(0, False)
        self.assertEqual(b.charge_pct, 100.0)
        self.assertEqual(b.runtime_s, 1200)
        self.assertEqual(b.charge_source, ESTIMATE)
        self.assertEqual(b.runtime_source, ESTIMATE)

    def test_linear_discharge(self):
        b = BatteryModel(runtime_full_s=1200)
        b.update(0, True)  # mains lost now
        b.update(300000, True)  # 5 min on battery
        self.assertAlmostEqual(b.charge_pct, 75.0, delta=1e-6)
        self.assertEqual(b.runtime_s, 900)
        self.assertEqual(b.on_battery_s, 300)
        b.update(1200000, True)
        self.assertEqual(b.charge_pct, 0.0)
        self.assertEqual(b.runtime_s, 0)
        b.update(1500000, True)  # never below 0
        self.assertEqual(b.charge_pct, 0.0)

    def test_interval_counts_in_previous_state(self):
        b = BatteryModel(runtime_full_s=1000)
        b.update(0, False)
        b.update(100000, True)  # on line until now: still full
        self.assertEqual(b.charge_pct, 100.0)
        self.assertEqual(b.on_battery_s, 0)
        b.update(200000, False)  # 100 s on battery, then mains back
        self.assertAlmostEqual(b.charge_pct, 90.0, delta=1e-6)
        self.assertEqual(b.on_battery_s, 0)

    def test_recharge_rate(self):
        b = BatteryModel(runtime_full_s=1200, recharge_s=3600, initial_pct=100)
        b.update(0, True)
        b.update(600000, False)  # 10 min out: 50 %
        self.assertAlmostEqual(b.charge_pct, 50.0, delta=1e-6)
        b.update(600000 + 900000, False)  # 15 min of a 60-min full recharge: +25 %
        self.assertAlmostEqual(b.charge_pct, 75.0, delta=1e-6)
        b.update(600000 + 99000000, False)
        self.assertEqual(b.charge_pct, 100.0)

    def test_initial_pct_and_validation(self):
        b = BatteryModel(runtime_full_s=600, initial_pct=40)
        self.assertEqual(b.runtime_s, 240)
        self.assertRaises(ValueError, BatteryModel, -1)
        self.assertRaises(ValueError, BatteryModel, 100, 0)

    def test_zero_runtime_the_schema_allows(self):
        # a valid config may say 0: no estimated runtime, and the estimate empties on battery
        cfg, errs = config.validate({"ups": {"battery_runtime_s": 0}})
        self.assertEqual(errs, [])
        b = BatteryModel(runtime_full_s=cfg["ups"]["battery_runtime_s"])
        b.update(0, False)
        self.assertEqual((b.charge_pct, b.runtime_s), (100.0, 0))
        b.update(1000, True)
        self.assertEqual((b.charge_pct, b.runtime_s), (100.0, 0))  # no time on battery yet
        b.update(1001, True)
        self.assertEqual((b.charge_pct, b.runtime_s, b.charge_source), (0.0, 0, ESTIMATE))
        b.update(2000, True, ups_charge=80, ups_runtime_s=500)  # the UPS's own figures win
        self.assertEqual((b.charge_pct, b.runtime_s, b.runtime_source), (80.0, 500, UPS))
        b.update(3000, False)
        self.assertEqual(b.charge_pct, 0.0)  # the second on battery emptied the estimate
        b.update(3000 + 28800 * 1000, False)
        self.assertEqual((b.charge_pct, b.runtime_s), (100.0, 0))

    def test_ticks_wrap(self):
        b = BatteryModel(runtime_full_s=100)
        t0 = (1 << 30) - 5000
        b.update(t0, True)
        b.update(5000, True)  # 10 s later, across the 2**30 wrap
        self.assertAlmostEqual(b.charge_pct, 90.0, delta=1e-6)


class TestPreferUps(TestCase):
    def test_ups_figures_win(self):
        b = BatteryModel(runtime_full_s=1200)
        b.update(0, True, ups_charge=80, ups_runtime_s=500)
        self.assertEqual(b.charge_pct, 80.0)
        self.assertEqual(b.runtime_s, 500)
        self.assertEqual(b.charge_source, UPS)
        self.assertEqual(b.runtime_source, UPS)

    def test_charge_only_scales_configured_runtime(self):
        b = BatteryModel(runtime_full_s=1200)
        b.update(0, True, ups_charge=50)
        self.assertEqual(b.runtime_s, 600)
        self.assertEqual(b.charge_source, UPS)
        self.assertEqual(b.runtime_source, ESTIMATE)

    def test_link_lost_continues_from_last_ups_value(self):
        b = BatteryModel(runtime_full_s=1200)
        b.update(0, True, ups_charge=60)
        b.update(120000, True)  # link gone: 120 s of 1200 s = 10 %
        self.assertAlmostEqual(b.charge_pct, 50.0, delta=1e-6)
        self.assertEqual(b.charge_source, ESTIMATE)
        self.assertEqual(b.runtime_s, 600)

    def test_ups_values_clamped(self):
        b = BatteryModel(RUNTIME)
        b.update(0, False, ups_charge=130)
        self.assertEqual(b.charge_pct, 100.0)
        b.update(1, False, ups_charge=-3)
        self.assertEqual(b.charge_pct, 0.0)
