# cython: language_level=3
"""Cython kernels of the power-quality analysis.

Every function here has a NumPy twin of the same name and signature in `ref.py`; the tests
compare them (bit for bit where the arithmetic is integer or done in the same order), and
`kernels.py` falls back to `ref` when this extension is missing or POWERSENTINEL_NO_CYTHON=1.

The build compiles with -O3 and without -march=native, i.e. for baseline x86-64 (SSE2). Loops are
written so that gcc vectorises them there; the hot loops (Urms(1/2), block sums, FIR) are C
intrinsics in simd_kernels.h, one variant per instruction set chosen at run time, plain C off
x86.
Float loops are serial (C does not reassociate float sums): their results then do not depend on
how a recording is cut into chunks.
"""
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.math cimport cos, sin, sqrt, M_PI

import numpy as np

ctypedef fused sample_t:
    int16_t
    float
    double

ctypedef fused floatin_t:
    float
    double

ctypedef fused acc_t:
    int64_t
    double


def _check_edges(const int64_t[::1] edges, Py_ssize_t n):
    cdef Py_ssize_t i
    if edges.shape[0] < 1:
        raise ValueError("edges must hold at least one index")
    if edges[0] < 0 or edges[edges.shape[0] - 1] > n:
        raise ValueError("edges outside the array")
    for i in range(edges.shape[0] - 1):
        if edges[i + 1] < edges[i]:
            raise ValueError("edges must be non-decreasing")


# The hot loops (the int16 sum of squares of Urms(1/2); block sums and FIR of the frequency) are
# C intrinsics in simd_kernels.h, one variant per instruction set, the best the CPU runs chosen
# at import (POWERSENTINEL_SIMD=name forces one; the tests run them all).
cdef extern from "simd_kernels.h":
    ctypedef Py_ssize_t (*ps_sumsq_fn)(const int16_t *x, Py_ssize_t nx, const int64_t *edges,
                                       Py_ssize_t m, int64_t *out, int16_t *mn, int16_t *mx,
                                       double *u, int64_t prev_s, int64_t prev_n,
                                       double scale) noexcept nogil
    const char *ps_sumsq_names[]
    ps_sumsq_fn ps_sumsq_lookup(int level) noexcept nogil
    void ps_urms_1ch(const int64_t *s, const int64_t *n, Py_ssize_t m, int64_t prev_s,
                     int64_t prev_n, double scale, double *out, int level) noexcept nogil
    void ps_block_sum_i16(const int16_t *x, Py_ssize_t nb, Py_ssize_t d, double *out,
                          int level) noexcept nogil
    void ps_fir(const double *z, const double *taps, Py_ssize_t nt, Py_ssize_t n, double *y,
                int level) noexcept nogil

cdef ps_sumsq_fn _sumsq_impl = ps_sumsq_lookup(0)
cdef int _simd_level = 0  # index into ps_sumsq_names


def simd_variants():
    """Names of the int16 sum-of-squares variants this CPU runs, slowest first."""
    return [_names()[i] for i in range(4) if ps_sumsq_lookup(i) != NULL]


def _names():
    return [ps_sumsq_names[i].decode() for i in range(4)]


def simd_variant():
    """The variant in use."""
    return _names()[_simd_level]


def use_simd(name=None):
    """Use variant `name` (one of simd_variants()), or the best when None. Returns its name."""
    global _sumsq_impl, _simd_level
    avail = simd_variants()
    if name is None:
        name = avail[len(avail) - 1]  # (module compiled with wraparound=False)
    if name not in avail:
        raise ValueError(f"SIMD variant {name!r} not available here (have: {', '.join(avail)})")
    _simd_level = _names().index(name)
    _sumsq_impl = ps_sumsq_lookup(_simd_level)
    return name


def _init_simd():
    import os
    want = os.environ.get("POWERSENTINEL_SIMD") or None
    try:
        use_simd(want)
    except ValueError:
        use_simd(None)  # an unknown or unsupported request falls back to the best available


_init_simd()


cdef int _sumsq_i16(const int16_t[::1] x, const int64_t[::1] edges, int64_t[::1] out,
                    int16_t[::1] mn, int16_t[::1] mx, double *u, int64_t prev_s, int64_t prev_n,
                    double scale) except -1:
    # The ends are checked here, the rest by the driver as it goes (it stops at the first edge
    # that decreases or passes the end, before reading past it): no pass over the edges of its
    # own. With both ends in range, an edge past the end means a later one decreases.
    cdef Py_ssize_t m = edges.shape[0] - 1, bad
    if m < 0:
        raise ValueError("edges must hold at least one index")
    if edges[0] < 0 or edges[m] > x.shape[0]:
        raise ValueError("edges outside the array")
    if m == 0:
        return 0
    with nogil:
        bad = _sumsq_impl(&x[0] if x.shape[0] > 0 else NULL, x.shape[0], &edges[0], m,
                          &out[0], &mn[0], &mx[0], u, prev_s, prev_n, scale)
    if bad >= 0:
        raise ValueError("edges must be non-decreasing")
    return 0


cdef void _sumsq_f(const floatin_t[::1] x, const int64_t[::1] edges, double[::1] out,
                   floatin_t[::1] mn, floatin_t[::1] mx) noexcept nogil:
    cdef Py_ssize_t i, j, a, b
    cdef double acc, d
    cdef floatin_t lo, hi, v
    for i in range(edges.shape[0] - 1):
        a = edges[i]
        b = edges[i + 1]
        acc = 0.0
        if b > a:
            lo = x[a]
            hi = x[a]
        else:
            lo = 0
            hi = 0
        for j in range(a, b):
            v = x[j]
            d = <double>v
            acc = acc + d * d
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        out[i] = acc
        mn[i] = lo
        mx[i] = hi


def segment_sumsq(const sample_t[::1] x, const int64_t[::1] edges):
    """Sum of squares, min and max of x over segments [edges[i], edges[i+1]).

    Returns (sums, mins, maxs): sums int64 (exact) for int16 input, float64 otherwise; mins and
    maxs in the input dtype. An empty segment gives sum 0 and min = max = 0 (float) or
    32767 / -32768 (int16)."""
    if sample_t is not int16_t:
        _check_edges(edges, x.shape[0])
    cdef Py_ssize_t m = edges.shape[0] - 1
    cdef int64_t[::1] si
    cdef double[::1] sd
    cdef sample_t[::1] lo, hi
    if sample_t is int16_t:
        sums = np.empty(m, np.int64)
        si = sums
    else:
        sums = np.empty(m, np.float64)
        sd = sums
    mins = np.empty(m, np.asarray(x).dtype)
    maxs = np.empty(m, np.asarray(x).dtype)
    lo = mins
    hi = maxs
    if sample_t is int16_t:
        _sumsq_i16(x, edges, si, lo, hi, NULL, 0, 0, 0.0)
    else:
        with nogil:
            _sumsq_f(x, edges, sd, lo, hi)
    return sums, mins, maxs


def segment_urms(const sample_t[::1] x, const int64_t[::1] edges, prev_sum, int64_t prev_count,
                 double scale):
    """segment_sumsq of one channel and, in the same pass, Urms(1/2) of each segment with the
    one before it: (sums, mins, maxs, u), u[i] = sqrt((s[i-1] + s[i]) / (n[i-1] + n[i])) * scale
    with s[-1], n[-1] = prev_sum, prev_count; the same bits as urms_half on those sums."""
    cdef Py_ssize_t m = edges.shape[0] - 1
    cdef int64_t[::1] si
    cdef double[::1] uu
    if sample_t is int16_t:
        if m < 0:
            raise ValueError("edges must hold at least one index")
        sums = np.empty(m, np.int64)
        mins = np.empty(m, np.int16)
        maxs = np.empty(m, np.int16)
        u = np.empty(m, np.float64)
        si = sums
        uu = u
        _sumsq_i16(x, edges, si, mins, maxs, &uu[0] if m > 0 else NULL, <int64_t>prev_sum,
                   prev_count, scale)
        return sums, mins, maxs, u
    else:
        sums, mins, maxs = segment_sumsq(x, edges)
        u = urms_half(sums[:, None], np.diff(edges), np.array([prev_sum], sums.dtype),
                      prev_count, scale)
        return sums, mins, maxs, u[:, 0]


def total_sum(const int16_t[::1] x):
    """Plain int64 sum of an int16 array: the benchmark's memory-bandwidth yardstick."""
    cdef Py_ssize_t i
    cdef int64_t acc = 0
    with nogil:
        for i in range(x.shape[0]):
            acc += x[i]
    return acc


cdef void _block_sum_f(const floatin_t[::1] x, Py_ssize_t d, double[::1] out) noexcept nogil:
    cdef Py_ssize_t i, k, base
    cdef double acc
    for i in range(out.shape[0]):
        base = i * d
        acc = 0.0
        for k in range(d):
            acc = acc + <double>x[base + k]
        out[i] = acc


def block_sum(const sample_t[::1] x, Py_ssize_t d):
    """Sums of consecutive blocks of d samples (a boxcar low-pass and decimation by d), as
    float64; a trailing partial block is ignored. Sums run in index order (int16: exact)."""
    if d < 1 or d > 65536:
        raise ValueError("block length must be 1..65536")
    cdef Py_ssize_t nb = x.shape[0] // d
    out = np.empty(nb, np.float64)
    cdef double[::1] o = out
    if sample_t is int16_t:
        if nb > 0:
            with nogil:
                ps_block_sum_i16(&x[0], nb, d, &o[0], _simd_level)
    else:
        with nogil:
            _block_sum_f(x, d, o)
    return out


cdef Py_ssize_t _fir_crossings(const double[::1] z, const double[::1] taps, double h,
                               int* armed, double* prev, double[::1] y, int64_t[::1] idx,
                               double[::1] y0, double[::1] y1) noexcept nogil:
    cdef Py_ssize_t j, nt = taps.shape[0], n = z.shape[0] - taps.shape[0] + 1, nc = 0
    cdef double v, p = prev[0]
    cdef int arm = armed[0]
    # the FIR (simd_kernels.h: each output sums its taps in ascending order, the rounding of the
    # NumPy reference) block by block, so the outputs stay in L1 for the crossing search
    cdef Py_ssize_t b, e
    for b in range(0, n, 2048):
        e = b + 2048 if b + 2048 < n else n
        ps_fir(&z[b], &taps[0], nt, e - b, &y[0], _simd_level)
        for j in range(b, e):
            v = y[j - b]
            if v < -h:
                arm = 1
            elif arm and v >= 0.0 and p < 0.0:
                idx[nc] = j
                y0[nc] = p
                y1[nc] = v
                nc += 1
                arm = 0
            p = v
    armed[0] = arm
    prev[0] = p
    return nc


def fir(const double[::1] z, const double[::1] taps):
    """Valid-mode FIR y[j] = sum_k taps[k] * z[j + k], k ascending (fir_crossings' filter)."""
    cdef Py_ssize_t nt = taps.shape[0]
    if nt < 1:
        raise ValueError("need at least one tap")
    cdef Py_ssize_t n = z.shape[0] - nt + 1
    out = np.empty(max(n, 0), np.float64)
    cdef double[::1] y = out
    if n > 0:
        with nogil:
            ps_fir(&z[0], &taps[0], nt, n, &y[0], _simd_level)
    return out


def fir_crossings(const double[::1] z, const double[::1] taps, double h, bint armed, double prev):
    """FIR-filter z (valid part: y[j] = sum_k taps[k] * z[j + k], k ascending) and find the
    positive-going zero crossings of y with hysteresis h: a crossing counts only after y went
    below -h since the previous one. prev is y[-1] (the last output of the previous call).

    Returns (j, y0, y1, armed, last_y): for each crossing the output index j where y[j] >= 0
    follows y[j-1] = y0 < 0, and y1 = y[j] (the caller interpolates)."""
    cdef Py_ssize_t nt = taps.shape[0]
    if nt < 1:
        raise ValueError("need at least one tap")
    cdef Py_ssize_t n = z.shape[0] - nt + 1
    if n <= 0:
        return np.empty(0, np.int64), np.empty(0), np.empty(0), armed, prev
    cdef Py_ssize_t cap = n // 2 + 1
    idx = np.empty(cap, np.int64)
    a0 = np.empty(cap, np.float64)
    a1 = np.empty(cap, np.float64)
    cdef int64_t[::1] iv = idx
    cdef double[::1] v0 = a0
    cdef double[::1] v1 = a1
    ybuf = np.empty(min(n, 2048), np.float64)
    cdef double[::1] yv = ybuf
    cdef int arm = 1 if armed else 0
    cdef double p = prev
    cdef Py_ssize_t nc
    with nogil:
        nc = _fir_crossings(z, taps, h, &arm, &p, yv, iv, v0, v1)
    return idx[:nc].copy(), a0[:nc].copy(), a1[:nc].copy(), bool(arm), p


def hysteresis(const double[:, ::1] u, double start, double end, bint below,
               const uint8_t[::1] init):
    """Per-channel threshold state with hysteresis over rows of u (values x channels).

    below=True (dips, interruptions): the state turns on when u < start and off when u >= end.
    below=False (swells): on when u > start, off when u <= end.
    Returns (states uint8 [n, ch], final uint8 [ch])."""
    cdef Py_ssize_t n = u.shape[0], nch = u.shape[1], i, c
    if init.shape[0] != nch:
        raise ValueError("init must have one entry per channel")
    states = np.empty((n, nch), np.uint8)
    final = np.empty(nch, np.uint8)
    cdef uint8_t[:, ::1] st = states
    cdef uint8_t[::1] fin = final
    cdef uint8_t s
    cdef double v
    with nogil:
        for c in range(nch):
            s = init[c]
            for i in range(n):
                v = u[i, c]
                if below:
                    if s:
                        if v >= end:
                            s = 0
                    elif v < start:
                        s = 1
                else:
                    if s:
                        if v <= end:
                            s = 0
                    elif v > start:
                        s = 1
                st[i, c] = s
            fin[c] = s
    return states, final


cdef void _group_reduce(const acc_t[:, ::1] sums, const int64_t[::1] counts,
                        const double[:, ::1] umin, const double[:, ::1] umax,
                        const uint8_t[::1] flags, const int64_t[::1] starts,
                        acc_t[:, ::1] gsum, int64_t[::1] gcount, double[:, ::1] gmin,
                        double[:, ::1] gmax, uint8_t[::1] gflag) noexcept nogil:
    cdef Py_ssize_t g, i, c, a, b, nch = sums.shape[1], ng = starts.shape[0] - 1
    cdef acc_t s
    cdef int64_t cnt
    cdef double lo, hi
    cdef uint8_t f
    for g in range(ng):
        a = starts[g]
        b = starts[g + 1]
        cnt = 0
        f = 0
        for i in range(a, b):
            cnt += counts[i]
            f |= flags[i]
        gcount[g] = cnt
        gflag[g] = f
        for c in range(nch):
            s = 0
            lo = umin[a, c]
            hi = umax[a, c]
            for i in range(a, b):
                s += sums[i, c]
                if umin[i, c] < lo:
                    lo = umin[i, c]
                if umax[i, c] > hi:
                    hi = umax[i, c]
            gsum[g, c] = s
            gmin[g, c] = lo
            gmax[g, c] = hi


def group_reduce(const acc_t[:, ::1] sums, const int64_t[::1] counts, const double[:, ::1] umin,
                 const double[:, ::1] umax, const uint8_t[::1] flags, const int64_t[::1] starts):
    """Aggregate consecutive rows [starts[g], starts[g+1]) (non-empty groups): summed sums of
    squares and sample counts, min of umin, max of umax, OR of flags.
    Returns (gsum [g, ch] (dtype of sums), gcount [g], gmin [g, ch], gmax [g, ch], gflag [g])."""
    cdef Py_ssize_t n = sums.shape[0], nch = sums.shape[1], g
    if counts.shape[0] != n or umin.shape[0] != n or umax.shape[0] != n or flags.shape[0] != n:
        raise ValueError("inputs must have the same number of rows")
    if starts.shape[0] < 1 or starts[0] < 0 or starts[starts.shape[0] - 1] > n:
        raise ValueError("group starts outside the rows")
    for g in range(starts.shape[0] - 1):
        if starts[g + 1] <= starts[g]:
            raise ValueError("groups must be non-empty and increasing")
    cdef Py_ssize_t ng = starts.shape[0] - 1
    if acc_t is int64_t:
        gsum = np.empty((ng, nch), np.int64)
    else:
        gsum = np.empty((ng, nch), np.float64)
    gcount = np.empty(ng, np.int64)
    gmin = np.empty((ng, nch), np.float64)
    gmax = np.empty((ng, nch), np.float64)
    gflag = np.empty(ng, np.uint8)
    cdef acc_t[:, ::1] gs = gsum
    cdef int64_t[::1] gc = gcount
    cdef double[:, ::1] gmn = gmin
    cdef double[:, ::1] gmx = gmax
    cdef uint8_t[::1] gf = gflag
    with nogil:
        _group_reduce(sums, counts, umin, umax, flags, starts, gs, gc, gmn, gmx, gf)
    return gsum, gcount, gmin, gmax, gflag


def goertzel(const sample_t[::1] x, const double[::1] freqs):
    """DFT of x at a few frequencies (cycles per sample): X(f) = sum_n x[n] exp(-2j pi f n).
    The Goertzel recursion costs 1 multiply per sample and frequency: cheaper than an FFT for
    a handful of bins."""
    cdef Py_ssize_t n = x.shape[0], m = freqs.shape[0], i, k
    out = np.empty(m, np.complex128)
    cdef double complex[::1] o = out
    cdef double w, coeff, s0, s1, s2, re, im
    with nogil:
        for k in range(m):
            w = 2.0 * M_PI * freqs[k]
            coeff = 2.0 * cos(w)
            s1 = 0.0
            s2 = 0.0
            for i in range(n):
                s0 = <double>x[i] + coeff * s1 - s2
                s2 = s1
                s1 = s0
            # X = e^{-jw(n-1)} (s1 - e^{-jw} s2)
            re = s1 - cos(w) * s2
            im = sin(w) * s2
            o[k] = (re + 1j * im) * (cos(w * (n - 1)) - 1j * sin(w * (n - 1)))
    return out


def sum_words(const uint64_t[::1] w):
    """Wrap-around sum of 64-bit words: reads memory with the fewest instructions per byte, so
    its speed is the benchmark's single-core read bandwidth."""
    cdef Py_ssize_t i
    cdef uint64_t acc = 0
    with nogil:
        for i in range(w.shape[0]):
            acc += w[i]
    return acc


def urms_half(const acc_t[:, ::1] sums, const int64_t[::1] counts, const acc_t[::1] prev_sum,
              int64_t prev_count, double scale):
    """Urms(1/2) from half-cycle sums of squares: value i covers half cycles i-1 and i (the
    one before the first row is given by prev_sum / prev_count; prev_count 0 means none):
    u[i, c] = sqrt((s[i-1, c] + s[i, c]) / (n[i-1] + n[i])) * scale."""
    cdef Py_ssize_t n = sums.shape[0], nch = sums.shape[1], i, c
    if counts.shape[0] != n or prev_sum.shape[0] != nch:
        raise ValueError("shape mismatch")
    out = np.empty((n, nch), np.float64)
    cdef double[:, ::1] u = out
    cdef acc_t a
    cdef int64_t cnt
    if acc_t is int64_t:
        if nch == 1 and n > 0:  # the common case, vectorised in simd_kernels.h
            with nogil:
                ps_urms_1ch(&sums[0, 0], &counts[0], n, prev_sum[0], prev_count, scale,
                            &u[0, 0], _simd_level)
            return out
    with nogil:
        for i in range(n):
            cnt = counts[i] + (counts[i - 1] if i > 0 else prev_count)
            for c in range(nch):
                a = sums[i, c] + (sums[i - 1, c] if i > 0 else prev_sum[c])
                u[i, c] = sqrt(<double>a / <double>cnt) * scale
    return out
