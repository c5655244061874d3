"""Benchmark of the power-quality analysis kernels and pipeline (one core, int16, 10 kHz, 50 Hz).

    .venv/bin/python benchmarks/bench_analysis.py [--samples N] [--repeat R] [--json OUT]

All ratios are measured in this one process, best of R repeats (the machine is shared), so that
they do not depend on what else runs. Prints a table and, with --json, writes the figures.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Any

# One core: OpenBLAS worker threads (loaded with NumPy) otherwise spin on the second core after
# any BLAS call and take memory bandwidth from whatever is measured.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

from powersentinel.analysis import Analyzer, Synth, kernels, ref  # noqa: E402

FS = 10_000
F = 50.0
VPC = 0.025
CHUNK = 1 << 20  # what the CLI feeds the pipeline per call (powersentinel.analysis.cli)


def best(fn, repeat, inner=1) -> tuple[float, Any]:
    """Best time of one call over `repeat` rounds of `inner` calls each."""
    t = math.inf
    out: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn()
        t = min(t, (time.perf_counter() - t0) / inner)
    return t, out


def urms_figures(x, e, K, R, inner=1) -> dict:
    """Urms(1/2) of x (edges e) by each formulation, against the read bandwidth over the same
    array. The yardstick is the faster of two plain reads (Cython uint64 sum, NumPy's SIMD uint64
    sum), so the share of bandwidth is not flattered by a slow yardstick."""
    n = x.size
    r: dict = {"samples": n}
    w = x.view(np.uint64)
    t_words, _ = best(lambda: K.sum_words(w), R, inner)
    t_npw, _ = best(lambda: w.sum(), R, inner)
    r["read_bandwidth_GBps"] = x.nbytes / min(t_words, t_npw) / 1e9
    t_sum16, _ = best(lambda: K.total_sum(x), R, inner)
    r["cython_int16_sum_Gsps"] = n / t_sum16 / 1e9
    variants = {}
    for v in K.simd_variants():
        K.use_simd(v)
        t, _ = best(lambda: urms_cython(x, e, K), R, inner)
        variants[v] = n / t / 1e9
    K.use_simd(None)
    r["urms_cython_variants_Gsps"] = variants
    r["simd"] = K.simd_variant()
    t_cy, u_cy = best(lambda: urms_cython(x, e, K), R, inner)
    t_k, _ = best(lambda: K.segment_sumsq(x, e), R, inner)  # the same pass without Urms(1/2)
    r["sumsq_kernel_Gsps"] = n / t_k / 1e9
    t_cs, u_cs = best(lambda: urms_numpy_cumsum(x, e), max(2, R // 2), max(1, inner // 4))
    np.testing.assert_array_equal(u_cy, u_cs)
    bests = {}
    for how in ("einsum", "int32", "dot"):
        t, u = best(lambda how=how: urms_numpy_blocked(x, e, how), R, max(1, inner // 2))
        np.testing.assert_array_equal(u, u_cy)
        bests[how] = n / t / 1e9
    best_np = max(bests, key=lambda k: bests[k])
    r["urms_cython_Gsps"] = n / t_cy / 1e9
    r["urms_numpy_cumsum_Gsps"] = n / t_cs / 1e9
    r["urms_numpy_best_Gsps"] = bests[best_np]
    r["urms_numpy_best_variant"] = best_np
    r["urms_numpy_variants_Gsps"] = bests
    r["urms_vs_cumsum"] = t_cs / t_cy
    r["urms_vs_best_numpy"] = r["urms_cython_Gsps"] / bests[best_np]
    r["sumsq_kernel_vs_best_numpy"] = r["sumsq_kernel_Gsps"] / bests[best_np]
    r["urms_share_of_bandwidth"] = r["urms_cython_Gsps"] * 2e9 / (r["read_bandwidth_GBps"] * 1e9)
    return r


def urms_rows(label, r) -> list:
    v = ", ".join(f"{k} {g:.2f}" for k, g in r["urms_cython_variants_Gsps"].items())
    return [
        (f"[{label}] read bandwidth (best plain uint64 sum)", f"{r['read_bandwidth_GBps']:.2f} GB/s"),
        (f"[{label}] Urms(1/2) Cython ({r['simd']})", f"{r['urms_cython_Gsps']:.2f} G samples/s "
         f"({100 * r['urms_share_of_bandwidth']:.0f} % of read bandwidth)"),
        (f"[{label}] Urms(1/2) Cython by SIMD variant", f"{v} G samples/s"),
        (f"[{label}] the same pass without Urms(1/2) (segment_sumsq)",
         f"{r['sumsq_kernel_Gsps']:.2f} G samples/s "
         f"(x{r['sumsq_kernel_vs_best_numpy']:.1f} the best NumPy Urms(1/2))"),
        (f"[{label}] Urms(1/2) NumPy cumsum", f"{r['urms_numpy_cumsum_Gsps']:.3f} G samples/s "
         f"-> Cython x{r['urms_vs_cumsum']:.1f}"),
        (f"[{label}] Urms(1/2) best NumPy ({r['urms_numpy_best_variant']})",
         f"{r['urms_numpy_best_Gsps']:.3f} G samples/s -> Cython x{r['urms_vs_best_numpy']:.1f}"),
    ]


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
    """The pipeline's path: one pass for the half-cycle sums, min/max (clipping) and
    Urms(1/2); the first value (no half cycle before it) is dropped, as by the NumPy ones."""
    _, _, _, u = K.segment_urms(x, e, 0, 0, VPC)
    return u[1:]


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

    # Two regimes: the whole array (larger than this machine's share of cache: DRAM-bound), and
    # one chunk of CHUNK samples as the streaming pipeline feeds them (just decoded, so in cache).
    res["urms_dram"] = urms_figures(x, e, K, R)
    nc = min(CHUNK, n)
    xc = np.ascontiguousarray(x[:nc])
    res["urms_chunk"] = urms_figures(xc, edges_for(nc), K, R, inner=max(1, (1 << 26) // CHUNK))
    for key in ("read_bandwidth_GBps", "cython_int16_sum_Gsps", "urms_cython_Gsps",
                "urms_numpy_cumsum_Gsps", "urms_numpy_best_Gsps", "urms_vs_cumsum",
                "urms_vs_best_numpy", "urms_share_of_bandwidth"):
        res[key] = res["urms_dram"][key]  # flat keys as before: the DRAM-bound figures

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
        *urms_rows("whole array", res["urms_dram"]),
        *urms_rows(f"{nc}-sample chunk", res["urms_chunk"]),
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
