"""Harmonic subgroups (IEC 61000-4-7) of one 10/12-cycle window, by FFT or by Goertzel.

The pipeline batches the FFT over many windows; this function is the single-window form, and
uses the Goertzel kernel when only a few orders are asked for (3 bins per order)."""
from __future__ import annotations

import numpy as np

from . import kernels as _kmod


def harmonic_groups(x: np.ndarray, cycles: int, orders=None, method: str = "auto",
                    backend: str | None = None) -> np.ndarray:
    """rms of harmonic subgroups (bins h*cycles-1 .. h*cycles+1) of a window holding `cycles`
    nominal cycles, in the units of x. orders: iterable of harmonic orders (default 1..40,
    limited by the Nyquist bin). method: "fft", "goertzel" or "auto" (Goertzel for <= 4
    orders)."""
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    hmax = (n // 2 - 2) // cycles
    orders = np.arange(1, min(40, hmax) + 1) if orders is None else np.asarray(list(orders))
    if orders.size and (orders.min() < 1 or orders.max() > hmax):
        raise ValueError(f"orders must be within 1..{hmax} for this window")
    if method == "auto":
        method = "goertzel" if orders.size <= 4 else "fft"
    bins = (orders[:, None] * cycles + np.array([-1, 0, 1])[None, :]).ravel()
    if method == "fft":
        p = np.abs(np.fft.rfft(x.astype(np.float64))[bins]) ** 2
    elif method == "goertzel":
        p = np.abs(_kmod.get(backend).goertzel(x, bins / n)) ** 2
    else:
        raise ValueError(method)
    return np.sqrt(p.reshape(-1, 3).sum(axis=1) * 2.0) / n
