"""`powersentinel analyze FILE... [--json] [--report DIR]`: events and statistics of recordings."""
from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .errors import AnalysisInputError
from .pipeline import Analyzer, Thresholds
from .readers import open_recording
from .summary import SCHEMA, to_json

CHUNK = 1 << 20
PROGRESS_MIN = 16 * CHUNK  # samples: show progress on recordings longer than this


def analyze_file(path: str, opts: dict, err: Console, progress: bool = True):
    """Open and analyse one file; returns (result, recording). Raises AnalysisInputError."""
    rec = open_recording(path, sample_rate=opts.get("sample_rate"),
                         volts_per_count=opts.get("volts_per_count"),
                         nominal_v=opts.get("nominal_v"), nominal_hz=opts.get("nominal_hz"),
                         start_time=opts.get("start_time"))
    an = Analyzer(rec.sample_rate, nominal_v=rec.nominal_v, nominal_hz=rec.nominal_hz,
                  volts_per_count=rec.volts_per_count, channels=rec.channels,
                  thresholds=opts.get("thresholds"), start_time=rec.start_time,
                  harmonics=opts.get("harmonics", True))
    an.warnings.extend(rec.warnings)
    if progress and rec.n_samples > PROGRESS_MIN:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeRemainingColumn(), console=err, transient=True) as bar:
            task = bar.add_task(os.path.basename(path), total=rec.n_samples)
            for chunk in rec.chunks(CHUNK):
                an.feed(chunk)
                bar.advance(task, chunk.shape[0])
    else:
        for chunk in rec.chunks(CHUNK):
            an.feed(chunk)
    return an.finish(), rec


def _print(doc: dict, out: Console) -> None:
    out.print(f"[bold]{doc['file']}[/]: {doc['samples']} samples, {doc['sample_rate']:g} Hz, "
              f"{doc['channels']} ch, {doc['duration_s']:.3f} s, nominal {doc['nominal_v']:g} V "
              f"{doc['nominal_hz']:g} Hz")
    for w in doc["warnings"]:
        out.print(f"[yellow]warning:[/] {w}")
    t = Table(title=f"{len(doc['events'])} events")
    for col in ("#", "type", "start s", "duration s", "residual/peak V", "pu", "IEEE 1159"):
        t.add_column(col)
    for e in doc["events"]:
        v, pu = (e["residual_v"], e["residual_pu"]) if e["residual_v"] is not None else \
            (e["peak_v"], e["peak_pu"])
        t.add_row(str(e["id"]), e["type"], f"{e['start_s']:.4f}",
                  "" if e["duration_s"] is None else f"{e['duration_s']:.4f}",
                  "" if v is None else f"{v:.1f}", "" if pu is None else f"{pu:.3f}",
                  str(e["ieee1159"]))
    out.print(t)
    st = doc["statistics"]
    if st["urms"]:
        out.print("Urms: mean " + ", ".join(f"{v:.2f}" for v in st["urms"]["mean_v"]) +
                  " V; min " + ", ".join(f"{v:.2f}" for v in st["urms"]["min_v"]) +
                  " V; max " + ", ".join(f"{v:.2f}" for v in st["urms"]["max_v"]) + " V")
    if st["frequency"]:
        f = st["frequency"]
        out.print(f"Frequency (10 s): mean {f['mean_hz']:.4f} Hz, min {f['min_hz']:.4f}, "
                  f"max {f['max_hz']:.4f}")
    if st.get("thd_pct"):
        out.print("THD: " + ", ".join(f"{v:.2f} %" for v in st["thd_pct"] if v is not None))
    en = doc["en50160"]
    t = Table(title="EN 50160" + (f" ({en['note']})" if en["note"] else ""))
    for col in ("criterion", "required %", "share %", "result"):
        t.add_column(col)
    for c in en["checks"]:
        res = "n/a" if c["pass"] is None else ("[green]pass[/]" if c["pass"] else "[red]FAIL[/]")
        t.add_row(c["name"], f"{c['required_pct']:g}",
                  "" if c["share_pct"] is None else f"{c['share_pct']:.2f}", res)
    out.print(t)
    if doc["report"]:
        out.print(f"report: {doc['report']}")


@click.command("analyze")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema powersentinel.analyze/1).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write an HTML report with PNG plots into DIR.")
@click.option("--sample-rate", type=float, help="Samples per second (overrides metadata).")
@click.option("--volts-per-count", type=float, help="Calibration (overrides metadata).")
@click.option("--nominal-v", type=float, help="Declared voltage Udin (default 230).")
@click.option("--nominal-hz", type=float, help="Nominal frequency (default 50).")
@click.option("--start-time", help="Start of the recording, ISO 8601 or epoch seconds.")
@click.option("--dip", "dip_pct", type=float, default=90.0, show_default=True,
              help="Dip threshold, % of Udin.")
@click.option("--swell", "swell_pct", type=float, default=110.0, show_default=True,
              help="Swell threshold, % of Udin.")
@click.option("--interruption", "int_pct", type=float, default=10.0, show_default=True,
              help="Interruption threshold, % of Udin.")
@click.option("--hysteresis", "hyst_pct", type=float, default=2.0, show_default=True,
              help="Hysteresis, % of Udin.")
@click.option("--no-harmonics", is_flag=True, help="Skip harmonics and THD (faster).")
def analyze(files, as_json, report_dir, sample_rate, volts_per_count, nominal_v, nominal_hz,
            start_time, dip_pct, swell_pct, int_pct, hyst_pct, no_harmonics):
    """Analyse mains recordings (WAV, .npy, .npz, CSV, device captures): dips, swells,
    interruptions, Urms, frequency, harmonics and an EN 50160 summary."""
    err = Console(stderr=True)
    out = Console()
    th = Thresholds(dip_pct=dip_pct, swell_pct=swell_pct, interruption_pct=int_pct,
                    hysteresis_pct=hyst_pct)
    opts = {"sample_rate": sample_rate, "volts_per_count": volts_per_count,
            "nominal_v": nominal_v, "nominal_hz": nominal_hz, "start_time": start_time,
            "thresholds": th, "harmonics": not no_harmonics}
    docs = []
    for path in files:
        try:
            th.check()
            result, rec = analyze_file(path, opts, err, progress=True)
        except AnalysisInputError as e:
            click.echo(f"error: {path}: {e}", err=True)
            sys.exit(2)
        except OSError as e:
            click.echo(f"error: {path}: {e.strerror or e}", err=True)
            sys.exit(2)
        doc = to_json(result, path)
        doc["channel_names"] = rec.channel_names or ["L%d" % (c + 1) for c in range(rec.channels)]
        if report_dir:
            from .report import write_report
            name = os.path.splitext(os.path.basename(path))[0]
            doc["report"] = write_report(result, doc, report_dir, name)
        docs.append(doc)
        if not as_json:
            _print(doc, out)
    if as_json:
        click.echo(json.dumps({"schema": SCHEMA, "files": docs}, indent=1))


main = analyze
