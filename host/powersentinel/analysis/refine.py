"""Sub-cycle timing of an event's start and end.

Urms(1/2) (IEC 61000-4-30) decides *whether* there is a dip, swell or interruption, but its
one-cycle window refreshed each half cycle places the start and end up to about a cycle late
(and the lag depends on depth and onset phase). To report when the voltage really changed, we
fit the undisturbed waveform (fundamental, odd harmonics 3..7 and DC, frequency fitted too) on
samples known to be outside the event, and find the change point(s) that best explain the
samples inside as that waveform scaled by a constant gain (least squares, exact search over
every sample position using prefix sums).
"""
from __future__ import annotations

import numpy as np

_ORDERS = (1, 3, 5, 7)


def _basis(t: np.ndarray, f: float) -> np.ndarray:
    cols = [np.ones_like(t)]
    for h in _ORDERS:
        w = 2.0 * np.pi * h * f * t
        cols.append(np.sin(w))
        cols.append(np.cos(w))
    return np.stack(cols, axis=1)


def _fit(t: np.ndarray, y: np.ndarray, f: float):
    b = _basis(t, f)
    coef, *_ = np.linalg.lstsq(b, y, rcond=None)
    r = y - b @ coef
    return float(r @ r), coef


def fit_waveform(t: np.ndarray, y: np.ndarray, f_hint: float, span: float = 0.04):
    """Least-squares fit of DC + harmonics 1,3,5,7 with the frequency searched within
    f_hint * (1 +- span). t in seconds. Returns (frequency, coefficients)."""
    grid = f_hint * (1.0 + np.linspace(-span, span, 17))
    costs = [_fit(t, y, f)[0] for f in grid]
    i = int(np.argmin(costs))
    lo = grid[max(i - 1, 0)]
    hi = grid[min(i + 1, len(grid) - 1)]
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = _fit(t, y, c)[0], _fit(t, y, d)[0]
    for _ in range(30):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = _fit(t, y, c)[0]
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = _fit(t, y, d)[0]
    f = 0.5 * (a + b)
    return f, _fit(t, y, f)[1]


def change_points(y: np.ndarray, fs: float, fit_mask: np.ndarray, lo: int, hi: int, mode: str,
                  f_hint: float):
    """Change points in y[lo:hi] (sample indices relative to y).

    fit_mask marks samples outside the event (used to fit the undisturbed waveform p). Inside
    the event the model is DC + r * (p - DC) with r fitted. mode "start": one change, normal
    before, event after; "end": event before, normal after; "both": normal, event, normal.
    Returns (s1, s2): s1 the first sample of the event (mode start/both), s2 the first normal
    sample after it (end/both); the unused one is None."""
    n = y.shape[0]
    t = np.arange(n) / fs
    if fit_mask.sum() < 8:
        raise ValueError("too few samples outside the event to fit the waveform")
    f, coef = fit_waveform(t[fit_mask], y[fit_mask], f_hint)
    seg_t = t[lo:hi]
    p0 = _basis(seg_t, f)[:, 1:] @ coef[1:]
    yc = y[lo:hi] - coef[0]
    z = np.zeros(1)
    A = np.concatenate((z, np.cumsum((yc - p0) ** 2)))
    Y = np.concatenate((z, np.cumsum(yc * yc)))
    X = np.concatenate((z, np.cumsum(yc * p0)))
    P = np.concatenate((z, np.cumsum(p0 * p0)))
    m = hi - lo

    def gain_cost(a, b):
        # least-squares cost of yc ~ r * p0 on [a, b) with the best r; 0 for an empty range
        a = np.asarray(a)
        b = np.asarray(b)
        pp = P[b] - P[a]
        xx = X[b] - X[a]
        with np.errstate(divide="ignore", invalid="ignore"):
            red = np.where(pp > 0, xx * xx / np.where(pp > 0, pp, 1.0), 0.0)
        return (Y[b] - Y[a]) - red

    idx = np.arange(m + 1)
    if mode == "start":
        cost = A[idx] - A[0] + gain_cost(idx, m)
        return lo + int(np.argmin(cost)), None
    if mode == "end":
        cost = gain_cost(0, idx) + A[m] - A[idx]
        return None, lo + int(np.argmin(cost))
    if mode != "both":
        raise ValueError(mode)
    best = (np.inf, 0, 0)
    step = 64
    for r0 in range(0, m + 1, step):
        s1 = idx[r0:r0 + step][:, None]
        s2 = idx[None, :]
        c = A[s1] - A[0] + gain_cost(s1, np.maximum(s2, s1)) + A[m] - A[np.maximum(s2, s1)]
        c = np.where(s2 >= s1, c, np.inf)
        k = int(np.argmin(c))
        if c.flat[k] < best[0]:
            best = (float(c.flat[k]), r0 + k // (m + 1), k % (m + 1))
    return lo + best[1], lo + best[2]
