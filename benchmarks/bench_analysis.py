"""Benchmark of the power-quality analysis kernels and pipeline (one core, int16, 10 kHz, 50 Hz).

    .venv/bin/python benchmarks/bench_analysis.py [--samples N] [--repeat R] [--json OUT]

All ratios are measured in this one process, best of R repeats (the machine is shared), so that
they do not depend on what else runs. Prints a table and, with --json, writes the figures.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from typing import Any

import numpy as np

from powersentinel.analysis import Analyzer, Synth, kernels, ref

FS = 10_000
F = 50.0
VPC = 0.025


def best(fn, repeat) -> tuple[float, Any]:
    t = math.inf
    out: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


def make_signal(n):
    base = Synth(FS, freq=F, harmonics={3: 0.04, 5: 0.03}, noise_v=0.5,
                 volts_per_count=VPC).generate(60.0)  # 600 000 samples = 30 000 cycles
    reps = -(-n // base.size)
    return np.ascontiguousarray(np.tile(base, reps)[:n])


# -- Urms(1/2) formulations --------------------------------------------------------------------
def edges_for(n):
    h = FS / (2 * F)
    k = np.arange(int(n / h) + 1)
    e = np.floor(k * h + 0.5).astype(np.int64)
    return e[e <= n]


def urms_cython(x, e, K):
    """The pipeline's path: half-cycle sums (plus min/max for clipping), then Urms(1/2)."""
    s, _, _ = K.segment_sumsq(x, e)
    c = np.diff(e)
    u = K.urms_half(s[:, None], c, s[:1], c[0], VPC)
    return u[1:, 0]


def urms_numpy_cumsum(x, e):
    c = np.concatenate(([0], np.cumsum(x.astype(np.int64) ** 2)))
    s = np.diff(c[e])
    n = np.diff(e)
    return np.sqrt((s[:-1] + s[1:]) / (n[:-1] + n[1:])) * VPC


def urms_numpy_blocked(x, e, how, block=1 << 16):
    """The best NumPy formulations we found: half cycles of equal length H (integer here), the
    array cut in cache-sized blocks of whole half cycles, squares summed per row. float64 is
    exact for int16 (each sum < 2**53)."""
    H = int(e[1] - e[0])
    assert np.all(np.diff(e) == H), "blocked NumPy variant needs integer samples per half cycle"
    rows = (e[-1] - e[0]) // H
    bl = (block // H) * H
    out = np.empty(rows)
    o = 0
    for a in range(int(e[0]), int(e[0] + rows * H), bl):
        blk = x[a:min(a + bl, int(e[0] + rows * H))]
        if how == "einsum":
            r = blk.astype(np.float64).reshape(-1, H)
            s = np.einsum("ij,ij->i", r, r)
        elif how == "int32":
            r = blk.astype(np.int32)
            r *= r
            s = r.reshape(-1, H).sum(axis=1, dtype=np.int64)
        else:  # "dot"
            r = blk.astype(np.float64)
            r *= r
            s = r.reshape(-1, H) @ np.ones(H)
        out[o:o + s.size] = s
        o += s.size
    return np.sqrt((out[:-1] + out[1:]) / (2 * H)) * VPC


# -- zero-crossing frequency ---------------------------------------------------------------------
def frequency(x, K):
    D = int(round(FS / (10 * F)))  # as the pipeline
    fs_dec = FS / D
    ntap = max(3, int(round(fs_dec * 2.0 / (3.0 * F))) - 1)
    w = np.hanning(ntap + 2)[1:-1]
    taps = w / w.sum()
    z = K.block_sum(x, D)
    j, y0, y1, _, _ = K.fir_crossings(z, taps, 0.05 * 325 / VPC * D * 0.7, False, 0.0)
    wd = 2 * np.pi * F / fs_dec
    frac = np.arctan(-y0 * np.sin(wd) / (y1 - y0 * np.cos(wd))) / wd
    t = ((j - 1 + frac + (ntap - 1) / 2) * D + (D - 1) / 2) / FS
    return (t.size - 1) / (t[-1] - t[0])


def pipeline(x, backend, harmonics=False, chunk=None):
    an = Analyzer(FS, nominal_hz=F, volts_per_count=VPC, harmonics=harmonics, backend=backend)
    if chunk is None:
        an.feed(x)
    else:
        for s in range(0, x.shape[0], chunk):
            an.feed(x[s:s + chunk])
    return an.finish()


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--samples", type=int, default=1 << 26)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args(argv)
    K = kernels.cython
    if K is None:
        sys.exit("Cython kernels not built: pip install --no-build-isolation -e .")
    n = a.samples
    x = make_signal(n)
    e = edges_for(n)
    R = a.repeat
    res: dict = {"samples": n, "sample_rate": FS, "repeat": R, "python": sys.version.split()[0],
                 "numpy": np.__version__, "machine": platform.processor() or platform.machine()}

    t_words, _ = best(lambda: K.sum_words(x.view(np.uint64)), R)
    res["read_bandwidth_GBps"] = x.nbytes / t_words / 1e9
    t_sum16, _ = best(lambda: K.total_sum(x), R)
    res["cython_int16_sum_Gsps"] = n / t_sum16 / 1e9

    t_cy, u_cy = best(lambda: urms_cython(x, e, K), R)
    t_cs, u_cs = best(lambda: urms_numpy_cumsum(x, e), max(2, R // 2))
    np.testing.assert_array_equal(u_cy, u_cs)
    bests = {}
    for how in ("einsum", "int32", "dot"):
        t, u = best(lambda how=how: urms_numpy_blocked(x, e, how), R)
        np.testing.assert_array_equal(u, u_cy)
        bests[how] = n / t / 1e9
    best_np = max(bests, key=lambda k: bests[k])
    res["urms_cython_Gsps"] = n / t_cy / 1e9
    res["urms_numpy_cumsum_Gsps"] = n / t_cs / 1e9
    res["urms_numpy_best_Gsps"] = bests[best_np]
    res["urms_numpy_best_variant"] = best_np
    res["urms_numpy_variants_Gsps"] = bests
    res["urms_vs_cumsum"] = t_cs / t_cy
    res["urms_vs_best_numpy"] = res["urms_cython_Gsps"] / bests[best_np]
    res["urms_share_of_bandwidth"] = res["urms_cython_Gsps"] * 2e9 / (res["read_bandwidth_GBps"] * 1e9)

    m = min(n, 1 << 24)
    t_fc, f_c = best(lambda: frequency(x[:m], K), R)
    t_fn, f_n = best(lambda: frequency(x[:m], ref), max(2, R // 2))
    assert f_c == f_n and abs(f_c - F) < 1e-3, (f_c, f_n)
    res["freq_cython_Gsps"] = m / t_fc / 1e9
    res["freq_numpy_Gsps"] = m / t_fn / 1e9
    res["freq_speedup"] = t_fn / t_fc

    t_pc, r = best(lambda: pipeline(x, "cython"), R)
    assert r.events == [], [ev.to_dict(230) for ev in r.events]
    res["pipeline_cython_Msps"] = n / t_pc / 1e6
    t_pn, _ = best(lambda: pipeline(x[:m], "numpy"), max(2, R // 2))
    res["pipeline_numpy_Msps"] = m / t_pn / 1e6
    t_ph, _ = best(lambda: pipeline(x[:m], "cython", harmonics=True), max(2, R // 2))
    res["pipeline_cython_with_harmonics_Msps"] = m / t_ph / 1e6

    c10 = int(10 * FS / F)  # 10 cycles
    sm = 500 * c10          # 100 s of signal in 500 calls
    t_small, _ = best(lambda: pipeline(x[:sm], "cython", chunk=c10), R)
    t_big, _ = best(lambda: pipeline(x[:sm], "cython"), R)
    res["per_call_10cycle_us"] = t_small / 500 * 1e6
    res["per_call_overhead_us"] = (t_small - t_big) / 500 * 1e6
    res["pipeline_10cycle_chunks_Msps"] = sm / t_small / 1e6

    rows = [
        ("single-core read bandwidth (Cython uint64 sum)", f"{res['read_bandwidth_GBps']:.2f} GB/s"),
        ("Cython int16 sum", f"{res['cython_int16_sum_Gsps']:.2f} G samples/s"),
        ("Urms(1/2) Cython", f"{res['urms_cython_Gsps']:.2f} G samples/s "
         f"({100 * res['urms_share_of_bandwidth']:.0f} % of read bandwidth)"),
        ("Urms(1/2) NumPy cumsum", f"{res['urms_numpy_cumsum_Gsps']:.3f} G samples/s "
         f"-> Cython x{res['urms_vs_cumsum']:.1f}"),
        (f"Urms(1/2) best NumPy ({best_np})", f"{bests[best_np]:.3f} G samples/s "
         f"-> Cython x{res['urms_vs_best_numpy']:.1f}"),
        ("zero-crossing frequency Cython / NumPy",
         f"{res['freq_cython_Gsps']:.2f} / {res['freq_numpy_Gsps']:.3f} G samples/s "
         f"-> x{res['freq_speedup']:.1f}"),
        ("pipeline (Urms, events, frequency, aggregation), Cython",
         f"{res['pipeline_cython_Msps']:.0f} M samples/s"),
        ("same, NumPy fallback", f"{res['pipeline_numpy_Msps']:.0f} M samples/s"),
        ("pipeline + harmonics (batched FFT), Cython",
         f"{res['pipeline_cython_with_harmonics_Msps']:.0f} M samples/s"),
        ("feed() of 10-cycle chunks (2000 samples)",
         f"{res['per_call_10cycle_us']:.0f} us per call, overhead "
         f"{res['per_call_overhead_us']:.0f} us ({res['pipeline_10cycle_chunks_Msps']:.1f} M samples/s)"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{n} int16 samples at {FS} Hz, best of {R}")
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
