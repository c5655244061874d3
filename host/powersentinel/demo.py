"""The README's main job: a virtual board from a fresh flash image, live status, a mains
outage, and the firmware noticing it. Each step is checked; the exit status says if all held."""
import os
import shutil
import tempfile
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import virtual
from .bench.runner import run_scenario
from .bench.scenario import load_scenario
from .link import Link
from .paths import firmware_dir
from .ui import render_status


def _paris_view(story_s, sample, st):
    """One live frame of the Paris story: story clock, mains, UPS, state, tiers and hosts."""
    t = Table(title="Paris hospital outage, story time %dh%02dm" % (story_s // 3600,
                                                                   story_s % 3600 // 60),
              show_header=True, expand=False)
    t.add_column("what")
    t.add_column("value")
    st = st or {}
    lvl = sample.get("mains_level")
    t.add_row("mains", "[red]OFF[/red]" if lvl is not None and lvl < 0.5 else "[green]on[/green]")
    t.add_row("UPS charge", "%s %%" % (round(sample["ups_charge"]) if sample.get("ups_charge")
                                       is not None else "-"))
    t.add_row("UPS output", "on" if sample.get("output_on", True) else "[red]off[/red]")
    t.add_row("sentinel state", "[bold]%s[/bold]" % (sample.get("state") or "-"))
    for tier in st.get("tiers", []):
        t.add_row("tier %s" % tier["name"], tier.get("phase", "-"))
    for name, state in sorted((sample.get("hosts") or {}).items()):
        t.add_row("  host %s" % name, state)
    return t


def run_paris(con, report_dir, scale=None):
    """The Paris hospital outage scenario on a fresh virtual board with real upsmon clients."""
    path = os.path.join(os.path.dirname(firmware_dir()), "hil_tests", "scenarios",
                        "paris_hospital.toml")
    sc = load_scenario(path)
    scale = scale or sc.ci_time_scale
    con.print("[bold]4. The Paris hospital outage[/bold] (3 h without mains, 20 min of battery; "
              "%d story seconds per second, real upsmon on every simulated server)" % scale)
    with Live(console=con, refresh_per_second=4) as live:
        res = run_scenario(sc, scale=scale, report_dir=report_dir,
                           observer=lambda s, sample, st: live.update(_paris_view(s, sample, st)))
    con.print()
    for v in res.verdicts:
        con.print(("[green]  ok[/green]  " if v.passed else "[red]FAIL[/red]  ")
                  + "%s: %s" % (v.name, v.detail))
    if res.error:
        con.print("[red]FAIL[/red]  %s" % res.error)
    for k, v in sorted(res.metrics.items()):
        con.print("  %s: %s" % (k, v))
    if res.report:
        con.print("report: %s" % res.report["html"])
    return res.passed


def run_demo(d=None, keep=False, console=None, paris=True, report_dir=None):
    con = console or Console()
    own_dir = d is None
    d = d or tempfile.mkdtemp(prefix="powersentinel-demo-")
    failures = []

    def step(ok, what):
        con.print(("[green]  ok[/green]  " if ok else "[red]FAIL[/red]  ") + what)
        if not ok:
            failures.append(what)
        return ok

    try:
        con.print("[bold]1. Boot a virtual board[/bold] in %s (fresh flash image, firmware "
                  "deployed with mpy-cross + mpremote)" % d)
        t = time.monotonic()
        meta = virtual.start(d)
        step(True, "board up in %.1f s: console %s, NUT %s" % (time.monotonic() - t,
                                                               meta["serial"], meta["nut"]))
        with Link(meta["serial"]) as link:
            ident = link.identify()
            step(True, "firmware %s answers (board %s, reset cause %s)" % (
                ident["firmware"], ident["board"], ident["reset_cause"]))
            con.print("[bold]2. Live status[/bold]")
            st = link.request("status")
            with Live(render_status(ident, st), console=con, refresh_per_second=4) as live:
                end = time.monotonic() + 3
                while time.monotonic() < end:
                    ev = link.wait_event(lambda e: e.get("ev") == "status", 1.5)
                    if ev:
                        live.update(render_status(ident, ev))
            con.print()
            v = (link.request("status").get("mains") or {}).get("v") or 0
            step(200 < v < 260, "mains measured at %.1f V (nominal 230 V)" % v)

            con.print("[bold]3. Cut the mains[/bold]")
            link.poll_events()
            t_cut = time.monotonic()
            virtual.set_wires(d, {"mains": "off"})
            ev = link.wait_event(lambda e: e.get("ev") == "mains" and e.get("lost"), 5)
            if step(ev is not None, "firmware reported mains lost" + (
                    " %.0f ms after the cut (host clock, through the console)"
                    % ((time.monotonic() - t_cut) * 1000) if ev else "")):
                con.print(render_status(ident, link.request("status"), title="after the outage"))
            virtual.set_wires(d, {"mains": "on"})
            ev = link.wait_event(lambda e: e.get("ev") == "mains" and not e.get("lost"), 5)
            step(ev is not None, "firmware reported mains back")
    except Exception as e:  # the demo reports, it does not crash
        step(False, "%s: %s" % (type(e).__name__, e))
    finally:
        if not keep:
            virtual.stop(d)
            if own_dir:
                shutil.rmtree(d, ignore_errors=True)
        else:
            con.print("board left running: powersentinel virtual stop --dir %s" % d)
    if paris and not failures:
        report_dir = report_dir or tempfile.mkdtemp(prefix="powersentinel-report-")
        try:
            step(run_paris(con, report_dir), "Paris outage: every expectation held")
        except Exception as e:
            step(False, "Paris outage: %s: %s" % (type(e).__name__, e))
    if failures:
        con.print("[red bold]demo failed:[/red bold] %d step(s)" % len(failures))
        return 1
    con.print("[green bold]demo passed[/green bold]")
    return 0
