"""Errors of the analysis. The CLI turns AnalysisInputError into a one-line message, exit 2."""
from ..errors import PowerSentinelError


class AnalysisError(PowerSentinelError):
    """Base class of the analysis errors."""


class AnalysisInputError(AnalysisError, ValueError):
    """The input cannot be analysed as given: empty, unreadable, truncated beyond use, NaN or
    infinite samples, a sample rate that does not fit the signal, inconsistent metadata."""
