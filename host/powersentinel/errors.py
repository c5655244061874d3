"""The base of every expected failure: the user's situation (no such port, a board that does
not answer, a bad site file), not a bug. The CLI prints any PowerSentinelError as one line on
stderr and exits with status 2; anything else is a bug and keeps its traceback."""


class PowerSentinelError(Exception):
    """An expected failure, reported to the user as one line."""
