"""The bench's mains ground truth: the virtual board's waveform generator, measured by the host
analysis library, gives the programmed durations at every onset phase (so a device event can
be judged against it within half a cycle)."""
import math

import pytest

from powersentinel.bench import truth

HALF = 0.01


@pytest.mark.parametrize("phase", [0, 45, 90, 135, 270])
@pytest.mark.parametrize("level,dur", [(0.0, 0.02), (0.3, 0.1), (0.6, 0.5), (1.2, 0.08)])
def test_generator_durations_match_host_analysis(level, dur, phase):
    m = truth.measure(level, dur, phase, {})
    assert m is not None
    assert m["type"] == ("swell" if level > 1 else "dip")
    assert abs(m["duration_s"] - dur) <= HALF / 2, m


def test_replay_starts_on_the_onset_phase():
    x, start = truth.replay(0.0, 0.1, 90, {})
    # 90 deg: the positive peak; the sample before the change is near the peak amplitude
    peak = 230 * math.sqrt(2) / 0.02
    assert abs(x[start - 1]) > 0.95 * peak
    assert x[start] == 0


def test_a_change_that_is_no_event_gives_none():
    assert truth.measure(0.95, 0.2, 0, {}) is None
