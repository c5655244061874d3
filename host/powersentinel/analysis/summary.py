"""Statistics, the EN 50160 summary, and the stable JSON form of an analysis result.

JSON schema "powersentinel.analyze/1" is documented in docs/analysis.md; add fields, never
rename or remove them without bumping the version.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np

from .pipeline import FLAG_EVENT, AnalysisResult

SCHEMA = "powersentinel.analyze/1"

# EN 50160 (LV) individual harmonic limits, % of the fundamental, 95 % of 10-min values
HARMONIC_LIMITS = {3: 5.0, 5: 6.0, 7: 5.0, 9: 1.5, 11: 3.5, 13: 3.0}
WEEK_S = 7 * 24 * 3600.0


def _f(v, nd=4):
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if math.isfinite(v) else None


def statistics(r: AnalysisResult) -> dict:
    s150 = r.agg150
    good = s150.flags == 0
    w = s150.duration
    out: dict = {"duration_s": _f(r.duration_s, 6), "flagged_share_pct": None,
                 "urms": None, "frequency": None, "thd_pct": None}
    if w.size:
        out["flagged_share_pct"] = _f(100.0 * w[~good].sum() / w.sum(), 3)
        sel = good if good.any() else np.ones_like(good)
        ms = (s150.rms[sel] ** 2 * w[sel, None]).sum(axis=0) / w[sel].sum()
        out["urms"] = {"mean_v": [_f(v) for v in np.sqrt(ms)],
                       "min_v": [_f(v) for v in s150.min.min(axis=0)],
                       "max_v": [_f(v) for v in s150.max.max(axis=0)],
                       "basis": "unflagged 150/180-cycle values" if good.any() else
                                "all 150/180-cycle values (all flagged)"}
    t10, f10, n10, fl10 = r.freq10s
    fc_t, fc = r.freq_cycles
    if f10.size:
        ok = fl10 == 0
        sel = f10[ok] if ok.any() else f10
        fcg = fc[r.freq_cycles_flags == 0]
        out["frequency"] = {"mean_hz": _f(np.average(sel), 5), "min_hz": _f(sel.min(), 5),
                            "max_hz": _f(sel.max(), 5), "values_10s": int(f10.size),
                            "cycle_min_hz": _f(fcg.min(), 4) if fcg.size else None,
                            "cycle_max_hz": _f(fcg.max(), 4) if fcg.size else None}
    h = r.harmonics
    if h is not None and h["windows"]:
        mv = h["mean_v"]
        with np.errstate(divide="ignore", invalid="ignore"):
            thd = 100.0 * np.sqrt((mv[:, 2:] ** 2).sum(axis=1)) / mv[:, 1]
        out["thd_pct"] = [_f(v, 3) for v in thd]
        out["harmonics_pct"] = {int(o): [_f(100.0 * mv[c, o] / mv[c, 1], 3)
                                         for c in range(mv.shape[0])]
                                for o in range(2, mv.shape[1])}
    return out


def _share(values: np.ndarray, weights: np.ndarray, ok: np.ndarray) -> float | None:
    if values.size == 0 or weights.sum() <= 0:
        return None
    return float(100.0 * weights[ok].sum() / weights.sum())


def en50160(r: AnalysisResult) -> dict:
    """Which EN 50160 limits the recording meets, over what share of (unflagged) time."""
    un, fn = r.nominal_v, r.nominal_hz
    checks = []

    def add(name, limit, required, share, basis):
        checks.append({"name": name, "limit": limit, "required_pct": required,
                       "share_pct": None if share is None else round(share, 3),
                       "pass": None if share is None else share >= required - 1e-9,
                       "basis": basis})
    t10, f10, _, fl = r.freq10s
    ok = fl == 0
    fv = f10[ok]
    wts = np.ones(fv.size)
    basis = f"{fv.size} unflagged 10 s frequency values ({int((~ok).sum())} flagged left out)"
    add("frequency within +-1 %", f"{fn * 0.99:g}..{fn * 1.01:g} Hz", 99.5,
        _share(fv, wts, np.abs(fv - fn) <= 0.01 * fn), basis)
    add("frequency within +4 % / -6 %", f"{fn * 0.94:g}..{fn * 1.04:g} Hz", 100.0,
        _share(fv, wts, (fv >= 0.94 * fn) & (fv <= 1.04 * fn)), basis)
    s = r.agg10min
    good = s.flags & FLAG_EVENT == 0
    v = s.rms[good]
    d = s.duration[good]
    basis = (f"{int(good.sum())} unflagged 10-min values, {d.sum() / 3600:.2f} h "
             f"({int((~good).sum())} flagged left out)")
    if v.size:
        okv = np.all(np.abs(v - un) <= 0.10 * un, axis=1)
        okr = np.all((v >= 0.85 * un) & (v <= 1.10 * un), axis=1)
    else:
        okv = okr = np.zeros(0, bool)
    add("10-min voltage within +-10 %", f"{0.9 * un:g}..{1.1 * un:g} V", 95.0,
        _share(v, d, okv), basis)
    add("10-min voltage within +10 % / -15 %", f"{0.85 * un:g}..{1.1 * un:g} V", 100.0,
        _share(v, d, okr), basis)
    h = r.harmonics
    if h is not None and len(h["t10min"]):
        thd = h["thd10min_pct"]
        vm = h["v10min"]  # [m, ch, order]
        n = thd.shape[0]
        ones = np.ones(n)
        hb = f"{n} 10-min harmonic values (flagged windows left out)"
        add("THD (to h40) <= 8 %", "8 %", 95.0, _share(thd, ones, np.all(thd <= 8.0, axis=1)), hb)
        for o, lim in HARMONIC_LIMITS.items():
            if o < vm.shape[2]:
                with np.errstate(divide="ignore", invalid="ignore"):
                    pct = 100.0 * vm[:, :, o] / vm[:, :, 1]
                add(f"harmonic {o} <= {lim:g} %", f"{lim:g} %", 95.0,
                    _share(pct, ones, np.all(pct <= lim, axis=1)), hb)
    ints = [e for e in r.events if e.type == "interruption"]
    short = sum(1 for e in ints if (e.duration_s or 0) <= 180.0)
    covered = r.duration_s
    return {
        "checks": checks,
        "passed": all(c["pass"] for c in checks if c["pass"] is not None),
        "interruptions": {"short": short, "long": len(ints) - short},
        "dips": sum(1 for e in r.events if e.type == "dip"),
        "swells": sum(1 for e in r.events if e.type == "swell"),
        "recording_s": round(covered, 3),
        "note": None if covered >= WEEK_S else
        f"indicative only: EN 50160 assesses a week (this recording covers "
        f"{100.0 * covered / WEEK_S:.2f} % of one)",
    }


def to_json(r: AnalysisResult, path: str, report: str | None = None) -> dict:
    st = None if r.start_time is None else \
        datetime.fromtimestamp(r.start_time, timezone.utc).isoformat().replace("+00:00", "Z")
    th = r.thresholds
    return {
        "file": path, "sample_rate": r.sample_rate, "channels": r.channels, "samples": r.samples,
        "duration_s": round(r.duration_s, 6), "start_time": st, "nominal_v": r.nominal_v,
        "nominal_hz": r.nominal_hz, "volts_per_count": r.volts_per_count, "backend": r.backend,
        "thresholds": {"dip_pct": th.dip_pct, "swell_pct": th.swell_pct,
                       "interruption_pct": th.interruption_pct,
                       "hysteresis_pct": th.hysteresis_pct},
        "warnings": list(r.warnings),
        "events": [e.to_dict(r.nominal_v) for e in r.events],
        "statistics": statistics(r),
        "en50160": en50160(r),
        "report": report,
    }
