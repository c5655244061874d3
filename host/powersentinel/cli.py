"""`powersentinel`: the command table. Each command is a thin layer over the library; expected
failures are one line on stderr and a non-zero exit status, never a traceback."""
import json
import os
import sys

import click

from . import __version__

# Exceptions that mean "the user's situation", not a bug: printed as one line, exit 2.
EXPECTED = ()


def _expected():
    global EXPECTED
    if not EXPECTED:
        from .captures import CaptureError
        from .deploy import DeployError
        from .link import LinkError
        from .logs import LogStoreError
        from .siteconfig import ConfigPushError, SiteConfigError
        from .virtual import VirtualError
        EXPECTED = (DeployError, LinkError, VirtualError, SiteConfigError, ConfigPushError,
                    LogStoreError, CaptureError)
    return EXPECTED


def fail(msg, code=2):
    click.echo("error: %s" % msg, err=True)
    sys.exit(code)


PORT_HELP = ("serial port of the sentinel: a device such as /dev/ttyACM0, a virtual board's "
             "pty, or virtual:DIR for the virtual board running in DIR")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="powersentinel")
def cli():
    """Power Sentinel: ordered shutdown and power-on of servers when mains power fails.

    Deploy and configure the sentinel, watch it, pull its history, analyse its waveform
    captures, and rehearse outages on the virtual board or a bench.
    """


# -- virtual board -----------------------------------------------------------------------------
@cli.group()
def virtual():
    """Run the firmware on a virtual board (real MicroPython, littlefs flash, pty console)."""


@virtual.command("start")
@click.option("--dir", "d", required=True, type=click.Path(file_okay=False),
              help="directory holding the board (flash.img, board.json, logs)")
@click.option("--config", type=click.Path(exists=True, dir_okay=False),
              help="device config (JSON) to install before the firmware starts")
@click.option("--heap", default="128wK", show_default=True,
              help="MicroPython heap; 'w' scales by word size, so 128wK holds what 128 KB holds on a 32-bit board (an ESP32 heap)")
@click.option("--nut-port", type=int, default=0, help="TCP port for the NUT server (0 = free port)")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="UPS battery and delay minutes run this many times faster (mains physics "
                   "is never scaled)")
def virtual_start(d, config, heap, nut_port, time_scale):
    """Start a virtual board in DIR and return once its firmware is running.

    A new DIR gets a fresh 2 MiB littlefs flash image, and the current firmware is deployed
    onto it through the console, exactly as onto a real board. board.json in DIR describes the
    running board (serial pty, NUT address, pids, flash image).
    """
    from . import virtual as v
    extra = ["--time-scale", str(time_scale)] if time_scale != 1.0 else []
    meta = v.start(d, config=config, heap=heap, nut_port=nut_port, extra_args=extra)
    click.echo(json.dumps(meta, indent=1))


@virtual.command("stop")
@click.option("--dir", "d", required=True, type=click.Path(file_okay=False))
def virtual_stop(d):
    """Stop the virtual board in DIR (its supervisor and interpreter); the flash image stays."""
    from . import virtual as v
    if v.stop(d):
        click.echo("stopped %s" % d)
    else:
        click.echo("no virtual board running in %s" % d)


@virtual.command("set")
@click.option("--dir", "d", required=True, type=click.Path(file_okay=False))
@click.option("--at-phase", type=float, default=None,
              help="apply mains/frequency changes when the waveform reaches this phase (deg)")
@click.argument("assignments", nargs=-1, required=True)
def virtual_set(d, at_phase, assignments):
    """Drive the board's wires: KEY=VALUE ...

    \b
    mains=on|off|0.5        mains level (fraction of nominal rms)
    frequency=47.5          mains frequency, Hz (phase-continuous)
    noise=0.01              noise rms, fraction of nominal
    harmonic.N=0.05         Nth harmonic, fraction of the fundamental
    contact.NAME=0|1        a UPS dry-contact input line (number or configured name)
    ups.status=OL|OB|OB LB|auto, ups.charge=%, ups.runtime=s, ups.load=%
    ups.link=ok|lost|garbage
    adc=run|stall           fault injection: the ADC stops delivering samples
    """
    from . import virtual as v
    values = {}
    for a in assignments:
        if "=" not in a:
            fail("expected KEY=VALUE, got %r" % a)
        k, val = a.split("=", 1)
        values[k.strip()] = val
    st = v.set_wires(d, values, at_phase=at_phase)
    click.echo(json.dumps({"mains": st["mains"], "ups": st["ups"], "contacts": st["contacts"]}))


@virtual.command("get")
@click.option("--dir", "d", required=True, type=click.Path(file_okay=False))
def virtual_get(d):
    """Print the wires' state and the board's reset history as JSON."""
    from . import virtual as v
    click.echo(json.dumps(v.state(d), indent=1))


# -- device ------------------------------------------------------------------------------------
@cli.command()
@click.option("--port", required=True, help=PORT_HELP)
@click.option("--dry-run", is_flag=True, help="show what would change, change nothing")
@click.option("--no-reboot", is_flag=True, help="leave the board in the REPL after copying")
def deploy(port, dry_run, no_reboot):
    """Compile the firmware for the board's architecture (mpy-cross), copy it (mpremote),
    verify every file by SHA-256, and reboot the board.

    Only changed files are sent. They land under temporary names and are renamed into place
    once all are verified, so an interrupted deploy leaves the previous firmware runnable.
    """
    from rich.progress import Progress

    from .deploy import deploy as do_deploy
    with Progress(transient=True) as prog:
        tasks = {}

        def progress(stage, n, total):
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
            prog.update(tasks[stage], completed=n, total=total)

        s = do_deploy(port, dry_run=dry_run, progress=progress, reboot=not no_reboot)
    verb = "would send" if dry_run else "sent"
    click.echo("%s: %s %d of %d files (%d bytes) for %s; removed %d%s" % (
        port, verb, len(s["changed"]), s["files"], s["bytes"], s["arch"] or "bytecode",
        len(s["removed"]), "; rebooted" if s.get("rebooted") else ""))
    for f in s["changed"]:
        click.echo("  %s" % f)


@cli.command()
@click.option("--port", required=True, help=PORT_HELP)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(port, as_json):
    """One screen of truth: mains, UPS, state, heap."""
    from .link import Link
    with Link(port) as link:
        ident = link.identify()
        st = link.request("status")
    if as_json:
        click.echo(json.dumps({"identify": ident, "status": st}, indent=1))
        return
    from .ui import render_status
    from rich.console import Console
    Console().print(render_status(ident, st))


@cli.command()
@click.option("--dir", "d", default=None, type=click.Path(file_okay=False),
              help="where the demo board lives (default: a new temporary directory)")
@click.option("--keep", is_flag=True, help="leave the virtual board running at the end")
def demo(d, keep):
    """Boot a virtual board from a freshly deployed flash image, show its live status, cut the
    mains, and show the firmware noticing. Exit status 0 only if every step worked."""
    from .demo import run_demo
    sys.exit(run_demo(d, keep))


def _register_optional():
    # Commands whose implementation lives in its own package; imported lazily so a missing
    # optional part never breaks the rest of the CLI.
    try:
        from .analysis.cli import analyze
        cli.add_command(analyze)
    except ImportError:
        pass


_register_optional()


def main(argv=None):
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except _expected() as e:
        fail(str(e))
    except SystemExit:
        raise
    return 0


if __name__ == "__main__":
    main()
