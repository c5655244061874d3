"""`powersentinel hil run SCENARIO... [--variant NAME]... [--port PORT] [--report DIR]
[--time-scale X | --ci]`."""
import sys

import click

from .rig import SerialBoardRig
from .runner import run_scenario
from .scenario import ScenarioError, load_scenario


@click.group("hil")
def hil():
    """Hardware-in-the-loop bench: play scenario files against a board and a simulated site."""


@hil.command("run")
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--port", default=None,
              help="a physical board's serial port (default: a fresh virtual board per scenario)")
@click.option("--report", "report_dir", default=None, type=click.Path(file_okay=False),
              help="write DIR/<scenario>.png/.html/.xml")
@click.option("--time-scale", type=float, default=None, help="override the scenario's time scale")
@click.option("--ci", is_flag=True, help="use each scenario's ci_time_scale (the fast variant)")
@click.option("--variant", "variants", multiple=True,
              help="of a file with [[variant]]s, run only this one (repeatable; default: all)")
def hil_run(scenarios, port, report_dir, time_scale, ci, variants):
    """Run SCENARIO files; exit 0 only if every expectation of every scenario holds. A file
    with [[variant]]s runs each of them (or those named by --variant)."""
    try:
        loaded = []
        for p in scenarios:
            base = load_scenario(p)
            names = [v for v, _ in base.variants if not variants or v in variants]
            loaded += [load_scenario(p, v) for v in names] if base.variants else [base]
        if port and any(sc.pair is not None for sc in loaded):
            raise click.UsageError("a [pair] scenario runs on the virtual pair only (no --port)")
    except ScenarioError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    failed = 0
    for sc in loaded:
        scale = time_scale or (sc.ci_time_scale if ci else sc.time_scale)
        rig = SerialBoardRig(port) if port else None
        res = run_scenario(sc, rig=rig, scale=scale, report_dir=report_dir,
                           progress=lambda m: click.echo("  " + m, err=True))
        click.echo("%s %s (scale %g, %.0f s wall)" % ("PASS" if res.passed else "FAIL", sc.name,
                                                      scale, res.t_end - res.t0 if res.t0 else 0))
        for v in res.verdicts:
            click.echo("  [%s] %s%s: %s" % ("ok" if v.passed else "FAIL", v.name,
                                            " (needs %s)" % ", ".join(v.needs) if v.needs else "",
                                            v.detail))
        for n in res.notes:
            click.echo("  note: %s" % n)
        for k, v in res.metrics.items():
            click.echo("  metric %s = %s" % (k, v))
        if res.report:
            click.echo("  report: %s" % res.report["html"])
        failed += not res.passed
    sys.exit(1 if failed else 0)
