"""The README's main job: a virtual board from a fresh flash image, live status, a mains
outage, and the firmware noticing it. Each step is checked; the exit status says if all held."""
import shutil
import tempfile
import time

from rich.console import Console
from rich.live import Live

from . import virtual
from .link import Link
from .ui import render_status


def run_demo(d=None, keep=False, console=None):
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
    if failures:
        con.print("[red bold]demo failed:[/red bold] %d step(s)" % len(failures))
        return 1
    con.print("[green bold]demo passed[/green bold]")
    return 0
