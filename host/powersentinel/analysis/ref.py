"""NumPy reference implementations of the kernels in `_kernels.pyx` (same names, arguments and
results). They define what the kernels must compute, and are the fallback when the extension is
not built or POWERSENTINEL_NO_CYTHON=1.

Float results are computed in the same order as the Cython loops wherever the order matters for
chunking (block sums, FIR), so that streaming gives the same numbers as one whole array in both
paths; the int16 paths are exact."""
from __future__ import annotations

import numpy as np

_INT16_DT = np.dtype(np.int16)


def _check_edges(edges: np.ndarray, n: int) -> None:
    if edges.ndim != 1 or edges.shape[0] < 1:
        raise ValueError("edges must hold at least one index")
    if edges[0] < 0 or edges[-1] > n:
        raise ValueError("edges outside the array")
    if edges.shape[0] > 1 and np.any(np.diff(edges) < 0):
        raise ValueError("edges must be non-decreasing")


def segment_sumsq(x: np.ndarray, edges: np.ndarray):
    """Sum of squares, min and max over segments [edges[i], edges[i+1]); see the Cython twin."""
    edges = np.asarray(edges, np.int64)
    _check_edges(edges, x.shape[0])
    m = edges.shape[0] - 1
    a, b = edges[:-1], edges[1:]
    nonempty = b > a
    idx = a[nonempty]
    if x.dtype == _INT16_DT:
        sq = x.astype(np.int64)
        sq *= sq
        sums = np.zeros(m, np.int64)
        mins = np.full(m, 32767, np.int16)
        maxs = np.full(m, -32768, np.int16)
    else:
        xd = x.astype(np.float64)
        sq = xd * xd
        sums = np.zeros(m, np.float64)
        mins = np.zeros(m, x.dtype)
        maxs = np.zeros(m, x.dtype)
    if idx.size:
        # reduceat over the non-empty segments' starts; each ends where the next non-empty one
        # starts, which is its own end because empty segments in between hold no samples
        lim = int(b[nonempty][-1])
        sums[nonempty] = np.add.reduceat(sq[:lim], idx)
        mins[nonempty] = np.minimum.reduceat(x[:lim], idx)
        maxs[nonempty] = np.maximum.reduceat(x[:lim], idx)
    return sums, mins, maxs


def total_sum(x: np.ndarray) -> int:
    return int(x.sum(dtype=np.int64))


def block_sum(x: np.ndarray, d: int) -> np.ndarray:
    """Sums of consecutive blocks of d samples as float64, in index order (as the Cython loop)."""
    if d < 1 or d > 65536:
        raise ValueError("block length must be 1..65536")
    nb = x.shape[0] // d
    blocks = x[: nb * d].reshape(nb, d)
    if x.dtype == _INT16_DT:
        return blocks.sum(axis=1, dtype=np.int64).astype(np.float64)
    out = np.zeros(nb, np.float64)
    for k in range(d):
        out += blocks[:, k]
    return out


def fir(z: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Valid-mode FIR y[j] = sum_k taps[k] z[j+k], accumulated k ascending like the Cython loop."""
    nt = taps.shape[0]
    if nt < 1:
        raise ValueError("need at least one tap")
    n = z.shape[0] - nt + 1
    if n <= 0:
        return np.empty(0, np.float64)
    y = np.zeros(n, np.float64)
    for k in range(nt):
        y += taps[k] * z[k:k + n]
    return y


def fir_crossings(z: np.ndarray, taps: np.ndarray, h: float, armed: bool, prev: float):
    """FIR then positive-going zero crossings with hysteresis; see the Cython twin."""
    if taps.shape[0] < 1:
        raise ValueError("need at least one tap")
    y = fir(z, taps)
    if y.size == 0:
        return np.empty(0, np.int64), np.empty(0), np.empty(0), bool(armed), prev
    yp = np.empty_like(y)
    yp[0] = prev
    yp[1:] = y[:-1]
    low = y < -h
    cand = np.flatnonzero((y >= 0.0) & (yp < 0.0))
    # A candidate is valid iff a low sample lies between it and the previous candidate (proof in
    # docs/analysis.md); the first one also when the state was already armed.
    lowcum = np.concatenate(([0], np.cumsum(low)))
    before = lowcum[cand]  # lows strictly before each candidate
    prev_before = np.concatenate(([0], before[:-1]))
    valid = before - prev_before > 0
    if cand.size and armed:
        valid[0] = True
    c = cand[valid]
    # armed at the end: a low after the last candidate, or armed and no candidate at all
    last_c = cand[-1] if cand.size else -1
    if cand.size:
        end_armed = bool(lowcum[-1] - lowcum[last_c + 1] > 0)
    else:
        end_armed = bool(armed or lowcum[-1] > 0)
    return c.astype(np.int64), yp[c].copy(), y[c].copy(), end_armed, float(y[-1])


def hysteresis(u: np.ndarray, start: float, end: float, below: bool, init: np.ndarray):
    """Threshold state with hysteresis per channel, vectorised: the state at row i is that of
    the most recent 'set' or 'reset' row at or before i (else the initial state)."""
    u = np.asarray(u, np.float64)
    n, nch = u.shape
    init = np.asarray(init, np.uint8)
    if init.shape[0] != nch:
        raise ValueError("init must have one entry per channel")
    if below:
        set_, reset = u < start, u >= end
    else:
        set_, reset = u > start, u <= end
    # in the Cython loop an 'on' state ignores set rows and an 'off' state ignores reset rows;
    # the two conditions are disjoint whenever start/end are ordered as hysteresis implies, and
    # where both hold the loop toggles, so reject that configuration instead of emulating it
    if np.any(set_ & reset):
        raise ValueError("start and end thresholds overlap")
    idx = np.arange(n)[:, None]
    last_set = np.maximum.accumulate(np.where(set_, idx, -1), axis=0)
    last_reset = np.maximum.accumulate(np.where(reset, idx, -1), axis=0)
    states = np.where(last_set > last_reset, 1,
                      np.where(last_reset > last_set, 0, init[None, :])).astype(np.uint8)
    final = states[-1].copy() if n else init.copy()
    return states, final


def group_reduce(sums, counts, umin, umax, flags, starts):
    """Aggregate consecutive rows [starts[g], starts[g+1]); see the Cython twin."""
    starts = np.asarray(starts, np.int64)
    n = sums.shape[0]
    if counts.shape[0] != n or umin.shape[0] != n or umax.shape[0] != n or flags.shape[0] != n:
        raise ValueError("inputs must have the same number of rows")
    if starts.shape[0] < 1 or starts[0] < 0 or starts[-1] > n:
        raise ValueError("group starts outside the rows")
    if np.any(np.diff(starts) <= 0):
        raise ValueError("groups must be non-empty and increasing")
    if starts.shape[0] == 1:
        nch = sums.shape[1]
        return (np.empty((0, nch), sums.dtype), np.empty(0, np.int64),
                np.empty((0, nch)), np.empty((0, nch)), np.empty(0, np.uint8))
    idx = starts[:-1]
    lim = int(starts[-1])
    if sums.dtype == np.float64:
        # serial order per group, as the Cython loop (pairwise summation would differ)
        gsum = np.zeros((idx.size, sums.shape[1]))
        lens = np.diff(starts)
        for k in range(int(lens.max())):
            rows = idx + k
            ok = k < lens
            gsum[ok] += sums[rows[ok]]
    else:
        gsum = np.add.reduceat(sums[:lim], idx, axis=0)
    return (gsum, np.add.reduceat(counts[:lim], idx), np.minimum.reduceat(umin[:lim], idx, axis=0),
            np.maximum.reduceat(umax[:lim], idx, axis=0),
            np.bitwise_or.reduceat(flags[:lim], idx).astype(np.uint8))


def goertzel(x: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """DFT at a few frequencies (cycles per sample), computed directly."""
    n = np.arange(x.shape[0])
    xd = x.astype(np.float64)
    return np.array([np.dot(xd, np.exp(-2j * np.pi * f * n)) for f in np.asarray(freqs)],
                    np.complex128)


def segment_urms(x: np.ndarray, edges: np.ndarray, prev_sum, prev_count: int, scale: float):
    """segment_sumsq of one channel plus Urms(1/2) of each segment with the one before it; see
    the Cython twin (there one pass; here the two steps it fuses)."""
    sums, mins, maxs = segment_sumsq(x, edges)
    u = urms_half(sums[:, None], np.diff(np.asarray(edges, np.int64)),
                  np.array([prev_sum], sums.dtype), prev_count, scale)
    return sums, mins, maxs, u[:, 0]


def urms_half(sums, counts, prev_sum, prev_count, scale):
    """Urms(1/2) from half-cycle sums of squares; see the Cython twin (same operations)."""
    n = sums.shape[0]
    if counts.shape[0] != n or prev_sum.shape[0] != sums.shape[1]:
        raise ValueError("shape mismatch")
    sp = np.concatenate((np.asarray(prev_sum)[None, :], sums[:-1]))
    cp = np.concatenate(([prev_count], counts[:-1]))
    a = (sp + sums).astype(np.float64)
    return np.sqrt(a / (cp + counts).astype(np.float64)[:, None]) * scale
