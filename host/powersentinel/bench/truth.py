"""Ground truth for mains stimuli: replay a disturbance through the virtual board's own waveform
generator (powersentinel.virtual.waveform.Waveform, the very code that feeds the board's ADC)
and measure it with the host analysis library (powersentinel.analysis.Analyzer). The device's
reported event durations are compared with these, not with the programmed numbers: a dip's
measured duration depends on its depth and onset phase through the Urms(1/2) thresholds.
"""
from __future__ import annotations

import numpy as np

from ..analysis import Analyzer, Thresholds
from ..virtual.waveform import Waveform


def replay(level, duration_s, phase_deg, mains_cfg, pre_s=0.3, post_s=0.5):
    """Samples of: nominal, then `level` from the first time the fundamental reaches phase_deg,
    back to nominal `duration_s` later (the end lands on the same point of the cycle the bench
    aims at). Returns (int16 array, start index)."""
    rate = int(mains_cfg.get("sample_rate", 4000))
    f = float(mains_cfg.get("nominal_hz", 50))
    w = Waveform(rate=rate, nominal_v=float(mains_cfg.get("nominal_v", 230.0)), frequency=f,
                 volts_per_count=float(mains_cfg.get("volts_per_count", 0.02)))
    parts = [w.generate(int(pre_s * rate))]
    phase = 0.0 if phase_deg is None else float(phase_deg)
    w.set(at_phase=phase, level=level)
    start = None
    for _ in range(rate):  # at most one cycle until the onset phase
        parts.append(w.generate(1))
        if w.level == level:
            start = w.n - 1
            break
    n_dur = int(round(duration_s * rate))
    parts.append(w.generate(max(0, n_dur - 1)))
    w.set(level=1.0)
    parts.append(w.generate(int(post_s * rate)))
    x = np.concatenate([np.frombuffer(p, dtype=np.int16) for p in parts])
    return x, start


def measure(level, duration_s, phase_deg, mains_cfg):
    """The host analysis of the replayed stimulus: {"type", "duration_s", "iec_duration_s",
    "programmed_s", "events"} (the longest event found), or None when it finds no event."""
    x, _ = replay(level, duration_s, phase_deg, mains_cfg)
    th = Thresholds(dip_pct=float(mains_cfg.get("dip_pct", 90.0)),
                    swell_pct=float(mains_cfg.get("swell_pct", 110.0)),
                    interruption_pct=float(mains_cfg.get("interruption_pct", 10.0)),
                    hysteresis_pct=float(mains_cfg.get("hysteresis_pct", 2.0)))
    an = Analyzer(float(mains_cfg.get("sample_rate", 4000)),
                  nominal_v=float(mains_cfg.get("nominal_v", 230.0)),
                  nominal_hz=float(mains_cfg.get("nominal_hz", 50)),
                  volts_per_count=float(mains_cfg.get("volts_per_count", 0.02)),
                  thresholds=th, harmonics=False)
    an.feed(x)
    res = an.finish()
    evs = [e for e in res.events if e.duration_s is not None]
    if not evs:
        return None
    main = max(evs, key=lambda e: e.duration_s)
    return {"type": main.type, "duration_s": main.duration_s, "iec_duration_s": main.iec_duration_s,
            "programmed_s": duration_s, "events": len(evs)}
