"""Cython kernels against their NumPy references (bit-exact where the arithmetic allows)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from powersentinel.analysis import kernels, ref

K = kernels.cython
needs_cython = pytest.mark.skipif(K is None, reason="Cython kernels not built")


def _edges(rng, n, m):
    e = np.sort(rng.integers(0, n + 1, m))
    e[0] = 0
    e[-1] = n
    e[3] = e[4]  # an empty segment
    return e.astype(np.int64)


@needs_cython
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_sumsq_int16_exact(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-32768, 32768, 100_003, dtype=np.int16)
    x[:50] = -32768  # worst case for 32-bit products
    e = _edges(rng, x.size, 400)
    for a, b in zip(K.segment_sumsq(x, e), ref.segment_sumsq(x, e)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    s, _, _ = K.segment_sumsq(x, e)
    direct = [int((x[a:b].astype(np.int64) ** 2).sum()) for a, b in zip(e[:-1], e[1:])]
    assert s.tolist() == direct


@needs_cython
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_segment_sumsq_float(dt):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(50_000) * 300).astype(dt)
    e = _edges(rng, x.size, 100)
    a, b = K.segment_sumsq(x, e), ref.segment_sumsq(x, e)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    a, b = K.segment_urms(x, e, 12.5, 7, 0.5), ref.segment_urms(x, e, 12.5, 7, 0.5)
    np.testing.assert_allclose(a[3], b[3], rtol=1e-12)


@needs_cython
def test_segment_sumsq_rejects_bad_edges():
    x = np.zeros(10, np.int16)
    for mod in (K, ref):
        with pytest.raises(ValueError):
            mod.segment_sumsq(x, np.array([0, 11], np.int64))
        with pytest.raises(ValueError):
            mod.segment_sumsq(x, np.array([0, 5, 3], np.int64))


@needs_cython
@pytest.mark.parametrize("d", [1, 3, 8, 10, 25])
@pytest.mark.parametrize("dt", [np.int16, np.float32, np.float64])
def test_block_sum_exact(d, dt):
    rng = np.random.default_rng(d)
    x = (rng.integers(-32768, 32768, 10_007)).astype(dt)
    np.testing.assert_array_equal(K.block_sum(x, d), ref.block_sum(x, d))


@needs_cython
@pytest.mark.parametrize("armed,prev", [(False, 0.0), (True, -1.0), (True, 0.5)])
def test_fir_crossings_exact(armed, prev):
    rng = np.random.default_rng(3)
    z = np.sin(np.arange(20_000) * 0.3) + 0.3 * rng.standard_normal(20_000)
    taps = np.hanning(13)[1:-1]
    taps /= taps.sum()
    a = K.fir_crossings(z, taps, 0.2, armed, prev)
    b = ref.fir_crossings(z, taps, 0.2, armed, prev)
    assert a[0].size > 100
    for u, v in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(u, v)
    assert a[3:] == b[3:]
    assert np.all(a[1] < 0) and np.all(a[2] >= 0)


@needs_cython
def test_fir_crossings_chunked_equals_whole():
    rng = np.random.default_rng(4)
    z = np.sin(np.arange(5000) * 0.2) + 0.2 * rng.standard_normal(5000)
    taps = np.array([0.25, 0.5, 0.25])
    for mod in (K, ref):
        whole = mod.fir_crossings(z, taps, 0.1, False, 0.0)
        parts, armed, prev, base = [], False, 0.0, 0
        for cut in (777, 778, 2500, 5000):
            # carry the last len(taps) - 1 inputs, like the pipeline
            seg = z[max(base - 2, 0):cut]
            j, y0, y1, armed, prev = mod.fir_crossings(seg, taps, 0.1, armed, prev)
            parts.append(j + max(base - 2, 0))
            base = cut
        np.testing.assert_array_equal(np.concatenate(parts), whole[0])


@needs_cython
@pytest.mark.parametrize("below", [True, False])
def test_hysteresis_equal(below):
    rng = np.random.default_rng(6)
    u = rng.random((2000, 3))
    s, e = (0.3, 0.35) if below else (0.7, 0.65)
    init = np.array([0, 1, 0], np.uint8)
    a = K.hysteresis(u, s, e, below, init)
    b = ref.hysteresis(u, s, e, below, init)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert 0 < a[0].mean() < 1


@needs_cython
@pytest.mark.parametrize("dt", [np.int64, np.float64])
def test_group_reduce_equal(dt):
    rng = np.random.default_rng(7)
    n = 1000
    sums = rng.integers(0, 2**40, (n, 2)).astype(dt)
    counts = rng.integers(1, 200, n).astype(np.int64)
    umin = rng.random((n, 2))
    umax = umin + 1
    flags = (rng.random(n) < 0.05).astype(np.uint8)
    starts = np.unique(np.concatenate(([0, n], rng.integers(1, n, 50)))).astype(np.int64)
    for a, b in zip(K.group_reduce(sums, counts, umin, umax, flags, starts),
                    ref.group_reduce(sums, counts, umin, umax, flags, starts)):
        np.testing.assert_array_equal(a, b)


@needs_cython
@pytest.mark.parametrize("dt", [np.int16, np.float64])
def test_goertzel_matches_dft(dt):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(2000) * 1000).astype(dt)
    f = np.array([10, 11, 30, 250]) / 2000
    X = np.fft.fft(x.astype(np.float64))[[10, 11, 30, 250]]
    np.testing.assert_allclose(K.goertzel(x, f), X, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(ref.goertzel(x, f), X, rtol=1e-9, atol=1e-6)


def test_env_forces_numpy():
    code = "from powersentinel.analysis import kernel_backend; print(kernel_backend())"
    env = dict(os.environ, POWERSENTINEL_NO_CYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "numpy"
    if K is not None:
        env["POWERSENTINEL_NO_CYTHON"] = "0"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == "cython"


# -- the int16 sum of squares and Urms(1/2) in every SIMD variant this CPU runs ----------------
VARIANTS = K.simd_variants() if K is not None else []


@pytest.fixture
def simd(request):
    name = K.use_simd(request.param)
    yield name
    K.use_simd(None)


def _check_sumsq(x, e):
    for a, b in zip(K.segment_sumsq(x, e), ref.segment_sumsq(x, e)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    # the fused pass (sums, min/max and Urms(1/2) together): the same bits as the two steps
    prev = (int(np.sum(x[:100].astype(np.int64) ** 2)), 100)
    with np.errstate(invalid="ignore"):  # two empty segments in a row: 0 / 0, NaN in both
        want = ref.segment_urms(x, e, *prev, 0.025)
    for a, b in zip(K.segment_urms(x, e, *prev, 0.025), want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@needs_cython
def test_simd_variants_listed():
    assert VARIANTS[0] == "scalar"
    if os.uname().machine == "x86_64":
        assert "sse2" in VARIANTS  # part of the x86-64 baseline
    assert K.simd_variant() == VARIANTS[-1]  # the best by default
    with pytest.raises(ValueError, match="not available"):
        K.use_simd("neon9000")


@needs_cython
@pytest.mark.parametrize("simd", VARIANTS, indirect=True)
def test_sumsq_variant_every_length_and_offset(simd):
    # every tail length of every vector width, at unaligned starts, and empty segments
    rng = np.random.default_rng(7)
    x = rng.integers(-32768, 32768, 12_000, dtype=np.int16)
    lengths = [0, 0, 1] + list(range(1, 140)) + [0, 257, 1000]
    e = np.concatenate(([3], 3 + np.cumsum(lengths))).astype(np.int64)
    _check_sumsq(x, e)


@needs_cython
@pytest.mark.parametrize("simd", VARIANTS, indirect=True)
@pytest.mark.parametrize("amp", [100, 2047, 16000, 23170, 23171, 32767])
def test_sumsq_variant_amplitudes(simd, amp):
    # mains-like half cycles at amplitudes either side of where the 32-bit fast sum of the
    # AVX-512 variant stops being provably exact (2 * 23170**2 * 4 < 2**32 <= 2 * 23171**2 * 4)
    rng = np.random.default_rng(amp)
    t = np.arange(200_000)
    x = np.round(amp * np.sin(2 * np.pi * t / 200.0 + 0.3)).astype(np.int16)
    x[rng.integers(0, x.size, 50)] = -amp  # peaks also on the negative side
    e = np.arange(0, x.size + 1, 100, dtype=np.int64)  # 100 samples: four 32-lane steps
    _check_sumsq(x, e)
    e2 = np.sort(rng.integers(0, x.size, 3000)).astype(np.int64)
    _check_sumsq(x, e2)


@needs_cython
@pytest.mark.parametrize("simd", VARIANTS, indirect=True)
@pytest.mark.parametrize("v", [-32768, 32767, 23170, -23171, 1])
@pytest.mark.parametrize("n", [1, 31, 32, 33, 64, 65, 128, 129, 4096])
def test_sumsq_variant_constant_worst_cases(simd, v, n):
    x = np.full(n + 5, v, np.int16)
    e = np.array([2, 2 + n], np.int64)
    s, lo, hi = K.segment_sumsq(x, e)
    assert int(s[0]) == n * v * v
    assert lo[0] == hi[0] == v


@needs_cython
@pytest.mark.parametrize("simd", VARIANTS, indirect=True)
def test_urms_half_variant_matches_numpy(simd):
    rng = np.random.default_rng(3)
    s = rng.integers(0, 2**40, (5000, 1)).astype(np.int64)
    c = rng.integers(80, 120, 5000).astype(np.int64)
    a = K.urms_half(s, c, s[0], 100, 0.025)
    b = ref.urms_half(s, c, s[0], 100, 0.025)
    np.testing.assert_array_equal(a, b)


@needs_cython
@pytest.mark.parametrize("simd", VARIANTS, indirect=True)
@pytest.mark.parametrize("at", [1, 15, 16, 17, 40])
def test_sumsq_variant_rejects_bad_edges_anywhere(simd, at):
    # the order of the edges is checked by the driver as it goes, block by block: a decreasing
    # edge or one past the end is refused wherever it is, before any sample past it is read
    x = np.ones(1000, np.int16)
    e = np.arange(0, 50 * 10, 10, dtype=np.int64)
    bad = e.copy()
    bad[at] = bad[at - 1] - 1
    far = e.copy()
    far[at] = 10**9  # then decreasing back to in range
    for edges in (bad, far):
        for fn in (lambda: K.segment_sumsq(x, edges), lambda: K.segment_urms(x, edges, 0, 0, 1.0),
                   lambda: ref.segment_sumsq(x, edges)):
            with pytest.raises(ValueError, match="non-decreasing"):
                fn()


@needs_cython
@pytest.mark.parametrize("simd", VARIANTS, indirect=True)
@pytest.mark.parametrize("d", [1, 2, 19, 20, 31, 32, 33, 64, 100, 1000, 65536])
def test_block_sum_variant(simd, d):
    # 37 blocks: two groups of 16 reduced together and a partial group of 5; full-scale blocks
    # (d = 65536 of -32768 sums to exactly -2**31, the int32 limit)
    rng = np.random.default_rng(d)
    x = rng.integers(-32768, 32768, d * 37 + d // 2 + 1, dtype=np.int16)
    x[:d] = -32768
    x[d:2 * d] = 32767
    got = K.block_sum(x, d)
    np.testing.assert_array_equal(got, ref.block_sum(x, d))
    assert got[0] == -32768.0 * d and got[1] == 32767.0 * d


@needs_cython
@pytest.mark.parametrize("simd", VARIANTS, indirect=True)
@pytest.mark.parametrize("nt", [1, 2, 13, 40])
def test_fir_variant_bit_exact(simd, nt):
    # every output count around the 8- and 64-output steps and the 2048-output blocks
    rng = np.random.default_rng(nt)
    taps = rng.random(nt)
    taps /= taps.sum()
    for n in [1, 7, 8, 9, 63, 64, 65, 127, 130, 2047, 2048, 2049, 5000]:
        z = rng.standard_normal(n + nt - 1) * 1e3
        np.testing.assert_array_equal(K.fir(z, taps), ref.fir(z, taps))
    z = np.sin(np.arange(9000) * 0.3) + 0.3 * rng.standard_normal(9000)
    a, b = K.fir_crossings(z, taps, 0.2, False, 0.0), ref.fir_crossings(z, taps, 0.2, False, 0.0)
    for u, v in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(u, v)
    assert a[3:] == b[3:]


@needs_cython
def test_simd_env_forces_a_variant():
    code = "from powersentinel.analysis import _kernels as K; print(K.simd_variant())"
    for want, got in (("scalar", "scalar"), ("nosuch", VARIANTS[-1])):
        env = dict(os.environ, POWERSENTINEL_SIMD=want)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == got


@needs_cython  # built here, so the compiler that built it is here
def test_simd_header_builds_without_x86(tmp_path):
    # Off x86 (aarch64 boards, Apple silicon) only the plain C loops exist: build the header as
    # such (x86 macro undefined) with warnings as errors, and run each plain loop once.
    import sysconfig
    cc = sysconfig.get_config_var("CC") or "cc"
    hdr = os.path.join(os.path.dirname(ref.__file__))
    src = tmp_path / "noarch.c"
    src.write_text(
        "#include <stdint.h>\n#include <stddef.h>\n#include <math.h>\n#undef __x86_64__\n"
        '#include "simd_kernels.h"\n'
        "int main(void) {\n"
        "    int16_t x[100]; int64_t e[3] = {0, 40, 100}, s[2]; int16_t lo[2], hi[2];\n"
        "    double u[2], d[10], y[9], t[2] = {0.5, 0.5};\n"
        "    for (int i = 0; i < 100; i++) x[i] = (int16_t)(i - 50);\n"
        "    if (ps_sumsq_lookup(1) != NULL || ps_sumsq_lookup(0)(x, 100, e, 2, s, lo, hi, u,"
        " 0, 0, 1.0) != -1) return 1;\n"
        "    if (s[0] != 42540 || lo[1] != -10 || hi[1] != 49) return 2;\n"
        "    ps_block_sum_i16(x, 10, 10, d, 3);\n"
        "    if (d[0] != -455.0 || d[9] != 445.0) return 3;\n"
        "    ps_fir(d, t, 2, 9, y, 3);\n"
        "    return y[0] == -405.0 ? 0 : 4;\n}\n")
    exe = tmp_path / "noarch"
    r = subprocess.run(cc.split() + ["-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
                                     "-I", hdr, str(src), "-o", str(exe), "-lm"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(exe)]).returncode == 0
