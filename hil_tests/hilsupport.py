"""Constants shared by the HIL tests (imported by name: two conftest modules exist)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")

# Firmware features not yet wired into firmware/lib/sentinel/app.py. An expectation that
# `needs` one of these is marked xfail(strict=True): when a feature is wired, remove it from
# this set and those expectations must pass (a strict xfail that passes fails the run).
#
# lb_tier_order: the NUT server shows the UPS's LB on every tier (app.py Sentinel.ups_tokens),
# so a stock upsmon whose tier has no FSD yet "gives up on the primary" after HOSTSYNC and shuts
# its server down by itself, out of tier order (hil_tests/scenarios/early_low_battery.toml).
# The pair's pair_load_off_handover, pair_partition_load_off and pair_rejoin are wired too
# (docs/redundancy.md, "HIL pair scenarios").
UNWIRED = set()

# Of those, the ones whose failure depends on a race within one heartbeat (an xfail that may
# pass: a strict one would make the run flaky); none today.
RACY = set()

# the xfail reason shown for each, by feature
WHY = {}
