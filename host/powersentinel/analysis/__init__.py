"""Power-quality analysis of mains recordings (IEC 61000-4-30 style methods, EN 50160 summary).

Public API:
    Analyzer, analyze_array, AnalysisResult, Event, Thresholds   (pipeline: streaming analysis)
    open_recording, write_capture, Recording                      (readers)
    Synth, dip, swell, interruption                               (synthetic signals)
    harmonic_groups                                               (harmonics of one window)
    AnalysisError, AnalysisInputError                             (errors)
    kernel_backend()                                              ("cython" or "numpy")
"""
from .errors import AnalysisError, AnalysisInputError
from .harmonics import harmonic_groups
from .kernels import backend_name as _backend_name, get as _get
from .pipeline import AnalysisResult, Analyzer, Event, Thresholds, analyze_array
from .readers import Recording, open_recording, write_capture
from .synth import Synth, dip, interruption, swell


def kernel_backend() -> str:
    """Which kernels run by default: "cython" or "numpy" (POWERSENTINEL_NO_CYTHON=1)."""
    return _backend_name(_get())


__all__ = ["AnalysisError", "AnalysisInputError", "AnalysisResult", "Analyzer", "Event",
           "Recording", "Synth", "Thresholds", "analyze_array", "dip", "harmonic_groups",
           "interruption", "kernel_backend", "open_recording", "swell", "write_capture"]
