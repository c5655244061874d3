"""Run reports: a timeline PNG (mains rms, UPS charge, sentinel state, each host up/down), an
HTML page with the verdicts and notes, and JUnit XML for CI. Paths: DIR/<scenario>.{png,html,xml}.
"""
from __future__ import annotations

import html
import os
import xml.etree.ElementTree as ET

STATE_ROWS = ("ONLINE", "ON_BATTERY", "SHUTTING_DOWN", "LOAD_OFF", "WAIT_MAINS", "RESTORING")
HOST_COLOURS = {"up": "#2e7d32", "stopping": "#f9a825", "halted": "#9e9e9e", "off": "#ffffff",
                "booting": "#64b5f6"}


def _story_axis(res, walls):
    return [res.story(w) / 60.0 for w in walls]


def timeline_png(res, path):
    # imported here, not at the top: matplotlib costs a third of a second at every CLI start,
    # and its backend must be chosen before pyplot loads
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [x for x in res.samples if x["wall"] >= res.t0]
    nh = len(res.hosts)
    fig, ax = plt.subplots(4, 1, figsize=(11, 7 + 0.25 * nh), sharex=True,
                           gridspec_kw={"height_ratios": [2, 2, 2, max(1.5, 0.35 * nh)]})
    t = _story_axis(res, [x["wall"] for x in s])
    nominal = float(res.config.get("mains", {}).get("nominal_v", 230.0))
    # several mains channels (phases, feeds): each one's commanded level
    chans = sorted({c for x in s for c in x.get("channels") or {}})
    if len(chans) < 2:
        ax[0].step(t, [(x.get("mains_level") or 0) * nominal for x in s], where="post",
                   label="rig (commanded)", color="#999")
    for c in chans if len(chans) >= 2 else ():
        ax[0].step(t, [((x.get("channels") or {}).get(c) or 0) * nominal for x in s],
                   where="post", label="rig %s (commanded)" % c, lw=1)
    ax[0].plot(t, [x.get("dev_v") for x in s], ".", ms=3, label="sentinel Urms", color="#1565c0")
    ax[0].set_ylabel("mains V rms")
    ax[0].legend(loc="lower right", fontsize=7)
    ax[1].plot(t, [x.get("ups_charge") for x in s], label="UPS (simulator)", color="#999")
    ax[1].plot(t, [x.get("dev_charge") for x in s], ".", ms=3, label="sentinel", color="#6a1b9a")
    ax[1].set_ylabel("UPS charge %")
    ax[1].set_ylim(-5, 105)
    ax[1].legend(loc="lower right", fontsize=7)
    ys = [STATE_ROWS.index(x["state"]) if x.get("state") in STATE_ROWS else None for x in s]
    ax[2].step(t, ys, where="post", color="#c62828")
    ax[2].set_yticks(range(len(STATE_ROWS)))
    ax[2].set_yticklabels(STATE_ROWS, fontsize=7)
    ax[2].set_ylabel("state")
    t_end = res.story(res.t_end) / 60.0 if res.t_end else (t[-1] if t else 0)
    for i, h in enumerate(res.hosts):
        hist = [(res.story(w) / 60.0, st) for w, st in h.history]
        for j, (ts, st) in enumerate(hist):
            te = hist[j + 1][0] if j + 1 < len(hist) else t_end
            ts = max(ts, 0.0)
            if te > ts:
                ax[3].broken_barh([(ts, te - ts)], (i - 0.4, 0.8), color=HOST_COLOURS.get(st, "#000"),
                                  edgecolor="#555", linewidth=0.3)
    ax[3].set_yticks(range(nh))
    ax[3].set_yticklabels(["%s (%s)" % (h.spec.name, h.spec.tier) for h in res.hosts], fontsize=7)
    ax[3].set_xlabel("story time (min)   [scale %g: 1 wall s = %g story s]" % (res.scale, res.scale))
    ax[3].set_ylabel("hosts")
    for st in res.stimuli:  # short disturbances fall between status polls: draw them
        a = res.story(st["wall"]) / 60.0
        b = res.story(st.get("wall_end", st["wall"] + st["duration_s"])) / 60.0
        ax[0].axvspan(a, max(b, a + 1e-3), color="#ef6c00", alpha=0.25)
    for w, _ in res.mains_events:
        if w is not None:
            ax[0].axvline(res.story(w) / 60.0, color="#ef6c00", lw=0.5, alpha=0.6)
    fig.suptitle("%s — %s" % (res.scenario.name, "PASS" if res.passed else "FAIL"))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def html_page(res, path, png_name):
    e = html.escape
    rows = []
    for v in res.verdicts:
        rows.append("<tr class='%s'><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            "pass" if v.passed else "fail", "PASS" if v.passed else "FAIL", e(v.name),
            e(", ".join(v.needs)), e(v.detail)))
    stim = "".join("<li>%s</li>" % e(_stim_line(s)) for s in res.stimuli)
    notes = "".join("<li>%s</li>" % e(n) for n in res.notes)
    metrics = "".join("<li>%s: %s</li>" % (e(k), e(str(v))) for k, v in res.metrics.items())
    tr = "".join("<li>%s %s &rarr; %s (%s)</li>" % (e("%.1f s" % res.story(w)), e(str(f)), e(str(t)), e(str(c)))
                 for w, f, t, c in res.transitions if w >= res.t0)
    doc = """<!doctype html><html><head><meta charset="utf-8"><title>HIL %(name)s</title>
<style>body{font-family:sans-serif;margin:1.5em}td{padding:3px 8px;vertical-align:top}
tr.pass td:first-child{color:#2e7d32;font-weight:bold}tr.fail td:first-child{color:#c62828;font-weight:bold}
table{border-collapse:collapse}tr{border-bottom:1px solid #ddd}</style></head><body>
<h1>%(name)s: %(verdict)s</h1><p>%(desc)s</p>
<p>time scale %(scale)g (story seconds per wall second); wall time %(wall).1f s; source %(src)s</p>
<img src="%(png)s" style="max-width:100%%">
<h2>Expectations</h2><table><tr><th></th><th>expectation</th><th>needs</th><th>detail</th></tr>%(rows)s</table>
<h2>Metrics</h2><ul>%(metrics)s</ul>
<h2>Mains stimuli</h2><ul>%(stim)s</ul>
<h2>State transitions (story time)</h2><ul>%(tr)s</ul>
<h2>Notes</h2><ul>%(notes)s</ul></body></html>""" % {
        "name": e(res.scenario.name), "verdict": "PASS" if res.passed else "FAIL",
        "desc": e(res.scenario.description), "scale": res.scale, "wall": res.t_end - res.t0 if res.t0 else 0,
        "src": e(res.scenario.path), "png": e(png_name), "rows": "".join(rows), "metrics": metrics or "<li>none</li>",
        "stim": stim or "<li>none</li>", "tr": tr or "<li>none</li>", "notes": notes or "<li>none</li>"}
    with open(path, "w") as f:
        f.write(doc)


def _stim_line(s):
    line = "%s to %.2f pu, %.0f ms at %g deg" % (s["kind"], s["level"], s["duration_s"] * 1000, s["phase"])
    if s.get("truth"):
        line += "; host analysis %.1f ms" % (s["truth"]["duration_s"] * 1000)
    if s.get("device"):
        line += "; device %s ms" % s["device"].get("duration_ms")
    if s.get("note"):
        line += "; " + s["note"]
    if s.get("error"):
        line += "; " + s["error"]
    return line


def junit_xml(res, path):
    suite = ET.Element("testsuite", name="hil.%s" % res.scenario.name, tests=str(len(res.verdicts)),
                       failures=str(sum(1 for v in res.verdicts if not v.passed)),
                       time="%.2f" % ((res.t_end - res.t0) if res.t0 else 0))
    for v in res.verdicts:
        tc = ET.SubElement(suite, "testcase", classname="hil.%s" % res.scenario.name, name=v.name)
        if not v.passed:
            f = ET.SubElement(tc, "failure", message=v.detail[:200])
            f.text = v.detail
        out = ET.SubElement(tc, "system-out")
        out.text = v.detail + ("\nneeds: " + ", ".join(v.needs) if v.needs else "")
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def write_report(res, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, res.scenario.name)
    paths = {"png": base + ".png", "html": base + ".html", "junit": base + ".xml"}
    try:
        timeline_png(res, paths["png"])
    except Exception as e:  # a plot failure must not hide the verdicts
        res.notes.append("timeline plot failed: %s" % e)
    html_page(res, paths["html"], os.path.basename(paths["png"]))
    junit_xml(res, paths["junit"])
    return paths
