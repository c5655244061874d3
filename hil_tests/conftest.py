"""HIL bench tests. `--board virtual` (default) runs each scenario on a fresh virtual board;
`--board /dev/ttyUSB0` targets a physical board (stimuli then need the bench controller, see
docs/bench.md). Scenario runs are cached per session: one run serves all its expectations."""
import os

import pytest

from hilsupport import SCENARIOS, UNWIRED  # noqa: F401
from powersentinel.bench.rig import SerialBoardRig
from powersentinel.bench.runner import run_scenario
from powersentinel.bench.scenario import load_scenario


def pytest_addoption(parser):
    parser.addoption("--board", default="virtual",
                     help="virtual (default) or the serial port of a physical board")
    parser.addoption("--hil-report", default=None,
                     help="directory for HIL reports (PNG, HTML, JUnit XML)")


@pytest.fixture(scope="session")
def hil_runs(request, tmp_path_factory):
    """scenario file name (or "file.toml#variant") -> RunResult, each run once at its
    ci_time_scale."""
    cache = {}
    board = request.config.getoption("--board")
    report = request.config.getoption("--hil-report") or str(tmp_path_factory.mktemp("hil-report"))

    def get(name):
        if name not in cache:
            path, _, variant = name.partition("#")
            sc = load_scenario(os.path.join(SCENARIOS, path), variant or None)
            rig = None if board == "virtual" else SerialBoardRig(board)
            cache[name] = run_scenario(sc, rig=rig, scale=sc.ci_time_scale, report_dir=report,
                                       workdir=str(tmp_path_factory.mktemp(sc.name)))
        return cache[name]
    return get
