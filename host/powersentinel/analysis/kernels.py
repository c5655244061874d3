"""Choose the kernel implementation: the Cython extension when it is built, else the NumPy
reference. POWERSENTINEL_NO_CYTHON=1 forces the NumPy path (tests run both)."""
from __future__ import annotations

import os
from types import ModuleType

from . import ref

NAMES = ("segment_sumsq", "segment_urms", "block_sum", "fir", "fir_crossings", "hysteresis",
         "group_reduce", "goertzel", "total_sum", "urms_half")


def _load_cython() -> ModuleType | None:
    try:
        from . import _kernels  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _kernels


cython: ModuleType | None = _load_cython()


def get(name: str | None = None) -> ModuleType:
    """The kernel module to use: name "cython" or "numpy", or None for the default (Cython if
    built and not disabled by POWERSENTINEL_NO_CYTHON=1)."""
    if name == "numpy":
        return ref
    if name == "cython":
        if cython is None:
            raise RuntimeError("the Cython kernels are not built (pip install -e . builds them)")
        return cython
    if name is not None:
        raise ValueError(f"unknown kernel backend {name!r}")
    if os.environ.get("POWERSENTINEL_NO_CYTHON") == "1" or cython is None:
        return ref
    return cython


def backend_name(mod: ModuleType) -> str:
    return "numpy" if mod is ref else "cython"
