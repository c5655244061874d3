"""Smoke test of the analysis benchmark, run as a user runs it, in a tiny size. The
benchmark itself checks that every Urms(1/2) formulation (Cython in each SIMD variant, NumPy
cumsum and the blocked NumPy ones) gives the same values; here its JSON must be complete."""
import json
import os
import subprocess
import sys

import pytest

from powersentinel.analysis import kernels

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(kernels.cython is None, reason="Cython kernels not built")
def test_bench_analysis_tiny(tmp_path):
    out = tmp_path / "a.json"
    p = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "bench_analysis.py"),
                        "--samples", str(1 << 18), "--repeat", "1", "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads(out.read_text())
    for regime in ("urms_dram", "urms_chunk"):
        r = res[regime]
        assert set(r["urms_cython_variants_Gsps"]) == set(kernels.cython.simd_variants())
        assert r["simd"] == kernels.cython.simd_variants()[-1]
        for key in ("read_bandwidth_GBps", "urms_cython_Gsps", "urms_numpy_best_Gsps",
                    "urms_vs_best_numpy", "urms_share_of_bandwidth"):
            assert r[key] > 0, (regime, key, r[key])
    assert res["pipeline_cython_Msps"] > 0 and res["per_call_10cycle_us"] > 0
    assert "Urms(1/2) best NumPy" in p.stdout
