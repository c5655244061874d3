"""The scenarios on the board (`--board`, virtual by default), one test per expectation, each
scenario run once at its CI time scale. Expectations that need firmware features not yet wired
(hilsupport.UNWIRED) are strict xfails: they must fail now and pass once the feature is wired;
those whose failure is a timing race (hilsupport.RACY) are xfails that may pass.
A file's [[variant]]s run each as a scenario of its own ("file.toml#variant"); those without
`ci = true` only in the nightly selection (-m nightly)."""
import glob
import os
import xml.etree.ElementTree as ET

import pytest

from hilsupport import RACY, SCENARIOS, UNWIRED, WHY
from powersentinel.bench.scenario import load_scenario

# every scenario file shipped, each run once (cached) at its CI scale
CI_SCENARIOS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SCENARIOS, "*.toml")))


def _runs():
    """(file or file#variant, nightly only) of every run."""
    out = []
    for name in CI_SCENARIOS:
        sc = load_scenario(os.path.join(SCENARIOS, name))
        if not sc.variants:
            out.append((name, False))
        out += [("%s#%s" % (name, v), not ci) for v, ci in sc.variants]
    return out


def _cases():
    out = []
    for run, nightly in _runs():
        name, _, variant = run.partition("#")
        sc = load_scenario(os.path.join(SCENARIOS, name), variant or None)
        for e in sc.expects:
            marks = [pytest.mark.nightly] if nightly else []
            missing = sorted(set(e.needs) & UNWIRED)
            if missing:
                racy = set(missing) <= RACY
                marks.append(pytest.mark.xfail(strict=not racy, reason="needs %s wiring%s%s" % (
                    ", ".join(missing), "".join(": " + WHY[m] for m in missing if m in WHY),
                    " (a race: seen both ways)" if racy else "")))
            out.append(pytest.param(run, e.index, id="%s:%s" % (sc.name, e.name), marks=marks))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("scenario,index", _cases())
def test_expectation(hil_runs, scenario, index):
    res = hil_runs(scenario)
    assert res.error is None, res.error
    v = [v for v in res.verdicts if v.kind != "run"][index]  # verdicts follow the file's order
    assert v.passed, v.detail


def test_reports_written(hil_runs):
    res = hil_runs("flickers.toml")
    for k in ("png", "html", "junit"):
        assert os.path.getsize(res.report[k]) > 500
    html = open(res.report["html"]).read()
    assert "flickers" in html and ("PASS" in html or "FAIL" in html)
    suite = ET.parse(res.report["junit"]).getroot()
    assert int(suite.get("tests")) == len(res.verdicts) >= 5
