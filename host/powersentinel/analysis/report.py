"""HTML report with PNG plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import html
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .pipeline import AnalysisResult  # noqa: E402


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _urms_plot(r: AnalysisResult, names: list, path: str) -> None:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    t, u = r.urms_half
    if r.urms_half_complete and t.size:
        for c in range(u.shape[1]):
            ax.plot(t, u[:, c], lw=0.8, label=f"{names[c]} Urms(1/2)")
    else:
        s = r.agg150
        for c in range(s.rms.shape[1]):
            ax.fill_between(s.t, s.min[:, c], s.max[:, c], alpha=0.3, step="post",
                            label=f"{names[c]} min..max Urms(1/2) per 3 s")
            ax.plot(s.t, s.rms[:, c], lw=0.8, label=f"{names[c]} 3 s rms")
    un, th = r.nominal_v, r.thresholds
    for pct, style in ((th.dip_pct, ":"), (th.swell_pct, ":"), (th.interruption_pct, "--")):
        ax.axhline(un * pct / 100.0, color="grey", ls=style, lw=0.8)
    for e in r.events:
        ax.axvspan(e.start_s, e.start_s + (e.duration_s or 0.0), color="red", alpha=0.15)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("V")
    ax.set_title("Urms(1/2)")
    ax.legend(loc="lower right", fontsize=7)
    _save(fig, path)


def _freq_plot(r: AnalysisResult, path: str) -> None:
    fig, ax = plt.subplots(figsize=(10, 3))
    t, f = r.freq_cycles
    if t.size:
        ax.plot(t, f, lw=0.6, label="per cycle")
    t10, f10, _, _ = r.freq10s
    if t10.size:
        ax.step(t10, f10, where="post", lw=1.2, label="10 s")
    ax.axhline(r.nominal_hz, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Hz")
    ax.set_title("Frequency")
    ax.legend(loc="lower right", fontsize=7)
    _save(fig, path)


def _spectrum_plot(r: AnalysisResult, names: list, path: str) -> None:
    h = r.harmonics
    if h is None:
        return
    fig, ax = plt.subplots(figsize=(10, 3))
    mv = h["mean_v"]
    orders = np.arange(2, mv.shape[1])
    wdt = 0.8 / mv.shape[0]
    for c in range(mv.shape[0]):
        ax.bar(orders + c * wdt, 100.0 * mv[c, 2:] / mv[c, 1], width=wdt, label=names[c])
    ax.set_xlabel("harmonic order")
    ax.set_ylabel("% of fundamental")
    ax.set_title("Harmonic spectrum (rms over unflagged 10/12-cycle windows)")
    ax.legend(fontsize=7)
    _save(fig, path)


def _event_plot(r: AnalysisResult, ev, cap: dict, names: list, path: str) -> None:
    parts = [k for k in ("event", "start", "end") if k in cap]
    fig, axes = plt.subplots(len(parts), 1, figsize=(10, 2.8 * len(parts)), squeeze=False)
    for ax, k in zip(axes[:, 0], parts):
        t0, data = cap[k]
        t = t0 + np.arange(data.shape[0]) / r.sample_rate
        for c in range(data.shape[1]):
            ax.plot(t, data[:, c], lw=0.7, label=names[c])
        ax.axvline(ev.start_s, color="red", lw=0.8)
        if ev.duration_s is not None:
            ax.axvline(ev.start_s + ev.duration_s, color="green", lw=0.8)
        ax.set_ylabel("V")
        ax.set_title(f"{ev.type} #{ev.id} ({k})", fontsize=9)
        if data.shape[1] > 1:
            ax.legend(loc="lower right", fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    _save(fig, path)


def write_report(r: AnalysisResult, doc: dict, outdir: str, name: str) -> str:
    """Write NAME.html and NAME_*.png into outdir; return the HTML path."""
    os.makedirs(outdir, exist_ok=True)
    imgs = []
    # each channel's label: its name on the board (L1, L2, L3 / A, B), else L1, L2, ...
    names = doc.get("channel_names") or ["L%d" % (c + 1) for c in range(r.channels)]

    def img(suffix, fn, *args):
        p = os.path.join(outdir, f"{name}_{suffix}.png")
        fn(r, *args, p)
        imgs.append((suffix, os.path.basename(p)))
    img("urms", _urms_plot, names)
    img("frequency", _freq_plot)
    if r.harmonics is not None and r.harmonics["windows"]:
        img("spectrum", _spectrum_plot, names)
    ev_imgs = {}
    for ev in r.events:
        cap = r.captures.get(ev.id)
        if cap:
            p = os.path.join(outdir, f"{name}_event{ev.id:03d}.png")
            _event_plot(r, ev, cap, names, p)
            ev_imgs[ev.id] = os.path.basename(p)
    e = html.escape
    rows = []
    for d in doc["events"]:
        mag = (f"{d['residual_v']:.1f} V ({100 * d['residual_pu']:.1f} %)" if d["residual_v"]
               is not None else f"{d['peak_v']:.1f} V ({100 * d['peak_pu']:.1f} %)"
               if d["peak_v"] is not None else "")
        link = (f"<a href='{e(ev_imgs[d['id']])}'>waveform</a>" if d["id"] in ev_imgs else "")
        rows.append(f"<tr><td>{d['id']}</td><td>{e(d['type'])}</td><td>{d['start_s']:.4f}</td>"
                    f"<td>{(d['duration_s'] or 0):.4f}</td><td>{e(mag)}</td>"
                    f"<td>{e(str(d['ieee1159']))}</td><td>{link}</td></tr>")
    en = doc["en50160"]
    chk = "".join(
        f"<tr><td>{e(c['name'])}</td><td>{e(c['limit'])}</td><td>{c['required_pct']}</td>"
        f"<td>{'' if c['share_pct'] is None else c['share_pct']}</td>"
        f"<td>{'n/a' if c['pass'] is None else ('pass' if c['pass'] else 'FAIL')}</td>"
        f"<td>{e(c['basis'])}</td></tr>" for c in en["checks"])
    warn = "".join(f"<li>{e(w)}</li>" for w in doc["warnings"])
    pics = "".join(f"<h3>{e(s)}</h3><a href='{e(p)}'><img src='{e(p)}' width='900'></a>"
                   for s, p in imgs)
    st = doc["statistics"]
    body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Power quality: {e(doc['file'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}</style></head><body>
<h1>Power quality: {e(os.path.basename(doc['file']))}</h1>
<p>{doc['samples']} samples at {doc['sample_rate']:g} Hz, {doc['channels']} channel(s),
{doc['duration_s']:.3f} s; nominal {doc['nominal_v']:g} V / {doc['nominal_hz']:g} Hz;
start {e(str(doc['start_time']))}.</p>
{'<h2>Warnings</h2><ul>' + warn + '</ul>' if warn else ''}
<h2>Statistics</h2><pre>{e(_pretty(st))}</pre>
<h2>Events ({len(doc['events'])})</h2>
<table><tr><th>#</th><th>type</th><th>start (s)</th><th>duration (s)</th><th>residual / peak</th>
<th>IEEE 1159</th><th>plot</th></tr>{''.join(rows)}</table>
<h2>EN 50160</h2><p>{e(en['note'] or '')}</p>
<table><tr><th>criterion</th><th>limit</th><th>required %</th><th>share %</th><th>result</th>
<th>basis</th></tr>{chk}</table>
<p>Interruptions: {en['interruptions']['short']} short (&le; 3 min),
{en['interruptions']['long']} long; dips {en['dips']}; swells {en['swells']}.</p>
<h2>Plots</h2>{pics}
</body></html>"""
    out = os.path.join(outdir, f"{name}.html")
    with open(out, "w", encoding="utf-8") as f:
        f.write(body)
    return out


def _pretty(d) -> str:
    import json
    return json.dumps(d, indent=1)
