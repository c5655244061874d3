"""What a scenario run records (RunResult), the verdicts judged from it, and the runner's polling
periods, which the judge's time slack depends on. Shared by runner.py (which fills a RunResult),
judge.py (which reads one) and report.py."""
from __future__ import annotations

from dataclasses import dataclass, field

POLL_STATUS_S = 0.5   # the runner asks the board for its status this often (wall)
POLL_RIG_S = 0.25     # and reads the rig's outputs this often


@dataclass
class Verdict:
    name: str
    kind: str
    passed: bool
    detail: str
    needs: tuple = ()


@dataclass
class RunResult:
    scenario: object
    scale: float
    verdicts: list = field(default_factory=list)
    samples: list = field(default_factory=list)      # periodic observations (runner.Runner._sample)
    transitions: list = field(default_factory=list)  # (wall, from, to, cause)
    mains_events: list = field(default_factory=list)  # (wall received, event dict)
    stimuli: list = field(default_factory=list)      # dicts for mains disturbances, with truth
    ups_commands: list = field(default_factory=list)  # (wall first seen, command)
    feed_ups_commands: list = field(default_factory=list)  # (wall, feed, command): a UPS per feed
    audit: list = field(default_factory=list)        # (wall, tier, missing names, unknown addrs)
    resets: list = field(default_factory=list)       # (wall, cause) of every board (re)start
    # a pair's: (wall, board, from, to, cause); (wall, action, board); (wall, board, console
    # text, NUT ups.status, NUT ups.alarm) at each status poll; (wall, board, UPS command) by
    # the UPS link (board) that carried it
    board_transitions: list = field(default_factory=list)
    ups_links: list = field(default_factory=list)
    pair_actions: list = field(default_factory=list)
    alarms: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    hosts: list = field(default_factory=list)        # SimHost objects (histories)
    t0: float = 0.0
    t_end: float = 0.0
    config: dict = field(default_factory=dict)
    error: str | None = None
    report: dict = field(default_factory=dict)

    @property
    def passed(self):
        return self.error is None and all(v.passed for v in self.verdicts)

    def story(self, wall):
        return (wall - self.t0) * self.scale
