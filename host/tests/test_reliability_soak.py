"""Accelerated soak (issue 8, item 7): benchmarks/reliability_soak.py for ~45 s (the long run is
`--duration 3600`, see docs/reliability.md). Knob: PS_REL_SOAK_S (default 45)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_soak as soak  # noqa: E402  # pyright: ignore[reportMissingImports]


def test_soak_short(tmp_path):
    s = soak.run(float(os.environ.get("PS_REL_SOAK_S", "45")), clients=4,
                 workdir=str(tmp_path), log=None)
    print("soak figures:", s)
    assert soak.check(s) == [], s
    assert s["flickers"] >= 8 and s["polls_ok"] >= 80, s
