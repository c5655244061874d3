"""The sample history: the last samples of the stream, and requests for sample ranges that may
start in it (the event stage's refinement and waveform captures)."""
from __future__ import annotations

from typing import Callable

import numpy as np

Callback = Callable[[int, np.ndarray], None]


class _Request:
    __slots__ = ("a", "b", "parts", "have", "cb")

    def __init__(self, a: int, b: int, cb: Callback):
        self.a, self.b, self.cb = a, b, cb
        self.parts: list[np.ndarray] = []
        self.have = a  # next global index wanted


class SampleHistory:
    """Serves requests for the samples [a, b) of the stream, [n, ch] in the stream's dtype.

    request(a, b, cb): cb(a0, samples) once the samples up to b have been fed; a range may start
    up to `length` samples before the current step (older samples are gone: a0 is then where
    the kept part starts).
    feed(x, n0): the step's samples [n, ch], the first at global index n0; serves the requests
    and keeps the last `length` samples.
    finish(n_done): serves what requests made since the last step want from the history, then
    calls every unfinished request back with the samples it has (the stream ended)."""

    def __init__(self, channels: int, length: int):
        self.nch = channels
        self.L = length
        self.tail: np.ndarray | None = None  # typed by the first step
        self.requests: list[_Request] = []

    def request(self, a: int, b: int, cb: Callback) -> None:
        self.requests.append(_Request(a, b, cb))

    def feed(self, x: np.ndarray, n0: int) -> None:
        if self.tail is None:
            self.tail = np.empty((0, self.nch), x.dtype)
        n1 = n0 + x.shape[0]
        if self.requests:
            t0 = n0 - self.tail.shape[0]
            still = []
            for r in self.requests:
                if r.have < n0:  # fill from the tail (requests made during this step)
                    lo = max(r.have, t0)
                    hi = min(r.b, n0)
                    if lo > r.a and not r.parts:
                        r.a = lo  # history no longer holds the start: keep what exists
                    if hi > lo:
                        r.parts.append(self.tail[lo - t0:hi - t0])
                    r.have = max(r.have, hi) if hi > lo else max(r.have, lo)
                lo = max(r.have, n0)
                hi = min(r.b, n1)
                if hi > lo:
                    r.parts.append(x[lo - n0:hi - n0].copy())
                    r.have = hi
                if r.have >= r.b:
                    r.cb(r.a, np.concatenate(r.parts) if r.parts else np.empty((0, self.nch)))
                else:
                    still.append(r)
            self.requests = still
        if x.shape[0] >= self.L:
            self.tail = x[-self.L:].copy()
        else:
            self.tail = np.concatenate((self.tail, x))[-self.L:]

    def finish(self, n_done: int) -> None:
        if self.tail is not None:
            self.feed(self.tail[:0], n_done)
        for r in self.requests:
            if r.parts:
                r.cb(r.a, np.concatenate(r.parts))
        self.requests = []
