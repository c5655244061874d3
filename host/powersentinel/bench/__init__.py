"""The hardware-in-the-loop bench: scenario files (scenario.py), the device config made from a
scenario as from a site file (devconfig.py), the simulated site (site.py: upsmon fleet, hosts
answering Wake-on-LAN and health checks), the rig that drives the board's inputs (rig.py), the
runner (runner.py), what a run records (results.py), the judge of expectations (judge.py),
reports (report.py) and the `hil` CLI (cli.py).

    from powersentinel.bench import load_scenario, run_scenario
    sc = load_scenario("hil_tests/scenarios/flickers.toml")
    result = run_scenario(sc, report_dir="out")     # result.passed, result.verdicts
"""
from .runner import run_scenario
from .scenario import ScenarioError, load_scenario, parse_duration

__all__ = ["ScenarioError", "load_scenario", "parse_duration", "run_scenario"]
