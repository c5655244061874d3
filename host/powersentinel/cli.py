"""`powersentinel`: the command table. Each command is a thin layer over the library; expected
failures are one line on stderr and a non-zero exit status, never a traceback."""
import json
import os
import sys
import time

import click
import serial
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                           TimeRemainingColumn)
from rich.table import Table

from . import __version__, siteconfig
from . import alerts as A
from . import captures as C
from . import logs as L
from . import virtual as vboard
from .bench.cli import hil
from .demo import run_demo
from .deploy import deploy as do_deploy
from .errors import PowerSentinelError
from .link import Link, LinkError
from .monitor import Monitor
from .ui import render_status
from .virtual.rom import _vprofiles as vprofiles

# Optional: the analysis needs NumPy and its compiled kernels. A broken build must neither take
# the other commands down nor make `analyze` vanish: the command stays and says what is wrong.
try:
    from .analysis.cli import analyze
except ImportError as e:
    ANALYSIS_BROKEN = "%s: %s" % (type(e).__name__, e)
else:
    ANALYSIS_BROKEN = None


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
              help="MicroPython heap; 'w' scales by word size, so 128wK holds what 128 KB holds on a 32-bit board (an ESP32's heap)")
@click.option("--nut-port", type=int, default=0, help="TCP port for the NUT server (0 = free port)")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="UPS battery and delay minutes run this many times faster (mains physics "
                   "is never scaled)")
@click.option("--profile", type=click.Choice(sorted(vprofiles.PROFILES)),
              default=vprofiles.DEFAULT, show_default=True,
              help="the port the board's `machine` behaves like (timers, reset causes, "
                   "watchdog, UART timing); rp2-pico: a plain Pico, no network module")
@click.option("--romfs/--no-romfs", default=True, show_default=True,
              help="give the board a ROMFS partition (the firmware's modules run in place); "
                   "--no-romfs: none, as the stock RPI_PICO image, so deploy uploads .mpy files "
                   "and their code takes heap")
@click.option("--pair", is_flag=True,
              help="start a redundant pair instead: DIR/a (id A, reads the UPS) and DIR/b "
                   "(id B), the same mains, the peer link on loopback with a shared key "
                   "(docs/redundancy.md); stop, set and get then act on the pair")
@click.option("--ups-both", is_flag=True,
              help="with --pair: B reads a UPS over Q1 too (its own simulator, on the same "
                   "mains), as two sentinels wired to one UPS; A sends the load-off")
def virtual_start(d, config, heap, nut_port, time_scale, profile, romfs, pair, ups_both):
    """Start a virtual board in DIR and return once its firmware is running.

    A new DIR gets a fresh 2 MiB littlefs flash image, and the current firmware is deployed
    onto it through the console, exactly as onto a real board. board.json in DIR describes the
    running board (serial pty, NUT address, pids, flash image).
    """
    extra = ["--time-scale", str(time_scale)] if time_scale != 1.0 else []
    extra += ["--profile", profile]
    if not romfs:
        extra += ["--romfs-kib", "0"]
    if pair:
        if nut_port:
            fail("--nut-port does not apply to a pair: each board takes a free port")
        from .virtual import pair as vpair
        meta = vpair.start_pair(d, config=config, heap=heap, extra_args=extra,
                                ups_both=ups_both)
        click.echo(json.dumps(meta, indent=1))
        return
    if ups_both:
        fail("--ups-both applies to a pair (--pair)")
    meta = vboard.start(d, config=config, heap=heap, nut_port=nut_port, extra_args=extra)
    click.echo(json.dumps(meta, indent=1))


@virtual.command("stop")
@click.option("--dir", "d", required=True, type=click.Path(file_okay=False))
def virtual_stop(d):
    """Stop the virtual board in DIR; return once every process of it (supervisor, interpreter
    and anything it started) has exited. The flash image stays. A pair's DIR stops both."""
    if _is_pair(d):
        from .virtual import pair as vpair
        click.echo("stopped %s" % d if vpair.stop_pair(d) else "no virtual pair running in %s" % d)
        return
    if vboard.stop(d):
        click.echo("stopped %s" % d)
    else:
        click.echo("no virtual board running in %s" % d)


@virtual.command("set")
@click.option("--dir", "d", required=True, type=click.Path(file_okay=False))
@click.option("--at-phase", type=float, default=None,
              help="apply mains/frequency changes when the waveform reaches this phase (deg)")
@click.option("--board", type=click.Choice(["a", "b"]), default=None,
              help="a pair: drive this board's wires alone (one board's sensor fault)")
@click.argument("assignments", nargs=-1, required=True)
def virtual_set(d, at_phase, board, assignments):
    """Drive the board's wires: KEY=VALUE ...

    \b
    mains=on|off|0.5        mains level (fraction of nominal rms), every channel
    mains.L2=off            one mains channel (by its mains.channels name)
    feed.B=0.5              every mains channel on feed B
    frequency=47.5          mains frequency, Hz (phase-continuous)
    noise=0.01              noise rms, fraction of nominal
    harmonic.N=0.05         Nth harmonic, fraction of the fundamental
    contact.NAME=0|1        a UPS dry-contact input line (number or configured name); every
                            contact UPS's, a feed's (ups.feeds link contacts) too
    ups.status=OL|OB|OB LB|auto, ups.charge=%, ups.runtime=s, ups.load=%
    ups.link=ok|lost|garbage
    ups.B.status=OB ...     one UPS per feed (ups.feeds): that feed's Q1 UPS, same fields
    adc=run|stall           fault injection: the ADC stops delivering samples
    """
    values = {}
    for a in assignments:
        if "=" not in a:
            fail("expected KEY=VALUE, got %r" % a)
        k, val = a.split("=", 1)
        values[k.strip()] = val
    if _is_pair(d):
        from .virtual import pair as vpair
        st = vpair.set_pair_wires(d, values, at_phase=at_phase, board=board)
        click.echo(json.dumps({s: None if v is None else
                               {"mains": v["mains"], "ups": v["ups"]} for s, v in st.items()}))
        return
    if board is not None:
        fail("--board applies to a virtual pair; %s holds one board" % d)
    st = vboard.set_wires(d, values, at_phase=at_phase)
    out = {"mains": st["mains"], "ups": st["ups"], "contacts": st["contacts"]}
    if len(st.get("upses") or ()) > 1:   # one UPS per feed: each one's
        out["upses"] = st["upses"]
    click.echo(json.dumps(out))


@virtual.command("get")
@click.option("--dir", "d", required=True, type=click.Path(file_okay=False))
def virtual_get(d):
    """Print the wires' state and the board's reset history as JSON (a pair: both boards)."""
    if _is_pair(d):
        click.echo(json.dumps({s: vboard.state(os.path.join(d, s)) for s in ("a", "b")},
                              indent=1))
        return
    click.echo(json.dumps(vboard.state(d), indent=1))


def _is_pair(d):
    """DIR holds a virtual pair (pair.json), not one board."""
    return os.path.exists(os.path.join(d, "pair.json"))


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
    with Link(port) as link:
        ident = link.identify()
        st = link.request("status")
    if as_json:
        click.echo(json.dumps({"identify": ident, "status": st}, indent=1))
        return
    Console().print(render_status(ident, st))


@cli.command()
@click.option("--dir", "d", default=None, type=click.Path(file_okay=False),
              help="where the demo board lives (default: a new temporary directory)")
@click.option("--keep", is_flag=True, help="leave the virtual board running at the end")
@click.option("--no-paris", is_flag=True, help="skip the Paris hospital outage scenario")
@click.option("--report", "report_dir", default=None, type=click.Path(file_okay=False),
              help="where the scenario report goes (default: a new temporary directory)")
def demo(d, keep, no_paris, report_dir):
    """Boot a virtual board from a freshly deployed flash image, show its live status, cut the
    mains and show the firmware noticing; then replay the Paris hospital outage (3 h without
    mains, 20 min of battery) with real upsmon clients: ordered shutdown, load off with restore,
    ordered power-on, and a report. Exit status 0 only if every step and expectation held."""
    sys.exit(run_demo(d, keep, paris=not no_paris, report_dir=report_dir))


# -- shared by the commands below --------------------------------------------------------------
def _link_timeout():
    # seconds per request attempt; raise it for a slow link, lower it in tests
    try:
        return float(os.environ.get("POWERSENTINEL_TIMEOUT", "3"))
    except ValueError:
        return 3.0


class _open_link:
    """`with _open_link(port) as link:` a Link whose serial failures mid-conversation (a board
    unplugged, a port closed under us) come out as one-line LinkErrors, not tracebacks."""

    def __init__(self, port):
        self.port = port

    def __enter__(self):
        self.link = Link(self.port, timeout=_link_timeout())
        return self.link

    def __exit__(self, typ, e, tb):
        try:
            self.link.close()
        except (OSError, serial.SerialException):
            pass
        if typ is not None and issubclass(typ, (serial.SerialException, OSError)) \
                and not issubclass(typ, LinkError):
            raise LinkError("lost the connection to the board on %s (%s)"
                            % (self.port, str(e).split(" (")[0] or typ.__name__)) from None
        return False


def _progress():
    con = Console(stderr=True)
    # no bar when stderr is a file or a pipe: it would only leave blank lines in a log
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TimeRemainingColumn(), console=con, transient=True,
                    disable=not con.is_terminal)


def _site_problems(e):
    """Print every problem of a SiteConfigError (one per line), then fail with its summary."""
    if len(e.problems) == 1:
        fail(str(e.problems[0]))
    for p in e.problems:
        click.echo("error: %s" % p, err=True)
    fail(str(e))


# -- configuration -----------------------------------------------------------------------------
@cli.group()
def config():
    """The site configuration: check a TOML site file, install it on a board, read it back.

    The site file (see docs/site.example.toml) has the sections of the device configuration
    (docs/configuration.md); NUT passwords are written in plaintext there and hashed by this
    tool, so no plaintext password ever reaches the board. The checks are the firmware's own.
    """


@config.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="also write the device JSON it converts to (passwords hashed) to this file")
def config_validate(file, output):
    """Check a TOML site file with the firmware's own rules.

    Each problem is printed as FILE:LINE: key.path: what is wrong; what is allowed. Exit
    status 0 when the file would be accepted by the board, 2 otherwise.
    """
    try:
        cfg = siteconfig.load(file)
    except siteconfig.SiteConfigError as e:
        _site_problems(e)
    for w in siteconfig.board_line_warnings(cfg, file):
        click.echo("warning: %s" % w, err=True)
    if output:
        siteconfig.write_pulled(cfg, output)
    hosts = sum(len(t["hosts"]) for t in cfg["tiers"])
    click.echo("%s: ok (site %s; ups link %s; %d tier%s, %d host%s; %d NUT user%s)" % (
        file, cfg["site"]["name"], cfg["ups"]["link"], len(cfg["tiers"]),
        "" if len(cfg["tiers"]) == 1 else "s", hosts, "" if hosts == 1 else "s",
        len(cfg["nut"]["users"]), "" if len(cfg["nut"]["users"]) == 1 else "s"))


@config.command("push")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--port", required=True, help=PORT_HELP)
@click.option("--dry-run", is_flag=True, help="show what would change, send nothing")
@click.option("--force", is_flag=True, help="send even when nothing changed")
@click.option("--no-wait", is_flag=True, help="do not wait for the board to restart with it")
def config_push(file, port, dry_run, force, no_wait):
    """Validate FILE, show what it changes on the board, and install it.

    The changes against the board's running configuration are listed first (passwords are
    never printed, only "changed"). The JSON goes up in checked pieces and is installed
    atomically by the board, which then restarts to apply it: an upload that is cut short
    leaves the previous configuration in force. Unchanged passwords keep their hash.
    """
    try:
        siteconfig.load(file)  # fail fast, before touching the port
    except siteconfig.SiteConfigError as e:
        _site_problems(e)
    with _open_link(port) as link:
        ident = link.identify()
        old, source = siteconfig.fetch(link)
        try:
            new = siteconfig.load(file, existing=old)
        except siteconfig.SiteConfigError as e:
            _site_problems(e)
        changes = siteconfig.diff(old, new)
        click.echo("%s: board %s runs %s config (%s)" % (port, ident.get("board"),
                                                         source or "?", ident.get("firmware")))
        for line in changes:
            click.echo("  " + line)
        if not changes:
            click.echo("  no changes")
            if not force or dry_run:
                return
        if dry_run:
            click.echo("dry run: nothing sent")
            return
        with _progress() as prog:
            task = prog.add_task("config", total=len(siteconfig.device_text(new)))
            link.events.clear()
            r = siteconfig.upload(link, new, lambda n, t: prog.update(task, completed=n, total=t))
        click.echo("installed" + (" (%s changed)" % ", ".join(r["changed"]) if r.get("changed") else ""))
        if no_wait:
            return
        if siteconfig.wait_restart(link, ident.get("uptime_ms") or 0) is None:
            fail("the board took the configuration but has not restarted within 30 s")
        now, source = siteconfig.fetch(link)
        if source != "config" or siteconfig.diff(new, now):
            fail("the board restarted but runs %s config, not the one pushed: %s" % (
                source, "; ".join(siteconfig.diff(new, now)[:3]) or "see `powersentinel status`"))
        click.echo("board restarted and runs the new configuration")


@config.command("pull")
@click.option("--port", required=True, help=PORT_HELP)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="write to this file (default: standard output)")
@click.option("--toml", "as_toml", is_flag=True,
              help="write a TOML site file (passwords as password_hash) instead of JSON")
def config_pull(port, output, as_toml):
    """Read the configuration the board runs (passwords stay hashed).

    The TOML form can be edited and pushed back with `config push`.
    """
    with _open_link(port) as link:
        link.identify()
        cfg, source = siteconfig.fetch(link)
    text = siteconfig.write_pulled(cfg, output, as_toml, source)
    if output:
        click.echo("%s: wrote the board's %s configuration to %s" % (port, source, output))
    else:
        click.echo(text, nl=False)
    if source != "config":
        click.echo("note: the board runs its %s configuration (no valid /config.json)" % source,
                   err=True)


# -- event log ---------------------------------------------------------------------------------
def _print_items(items, as_json, device, con):
    if as_json:
        for it in items:
            click.echo(L.json_line(it, device))
    elif items:
        con.print(L.table(items))


@cli.command()
@click.option("--port", help=PORT_HELP + " (without it: show what is stored)")
@click.option("--follow", "-f", is_flag=True, help="keep pulling, print records as they come")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table")
@click.option("--db", type=click.Path(dir_okay=False),
              help="SQLite file (default: $XDG_DATA_HOME/powersentinel/logs.sqlite, "
                   "~/.local/share/... without XDG_DATA_HOME)")
@click.option("--last", "last_n", type=int, default=50, show_default=True,
              help="show the newest N records (0: all)")
@click.option("--device", help="the board's name in the database (default: the device_id it "
                               "reports); without --port: whose stored log to show (default: all)")
def logs(port, follow, as_json, db, last_n, device):
    """Copy the board's event log into a local SQLite file and show it.

    Each pull resumes after the last record stored, so nothing is fetched or stored twice,
    across board reboots too. Records the board rotated away before they were pulled are
    recorded as a gap and shown as one. With --follow the log is printed as the board writes
    it, until Ctrl-C; a board that stops answering is waited for.
    """
    con = Console()
    err = Console(stderr=True)
    if follow and not port:
        raise click.UsageError("--follow needs --port")
    path = db or L.default_db()
    if not port and not os.path.exists(path):
        raise L.LogStoreError("no log database at %s yet: pull one with "
                              "`powersentinel logs --port PORT`" % path)
    with L.LogStore(path) as store:
        if not port:
            _print_items(store.rows(device, last_n or None), as_json, None, con)
            return
        with _open_link(port) as link:
            ident = link.identify()
            dev, note = L.device_id(ident, device)
            if note:
                err.print("[yellow]note:[/yellow] " + note)
            with _progress() as prog:
                task = prog.add_task("log", total=None)
                new = L.pull(link, store, dev, ident,
                             lambda s, last: prog.update(task, completed=s, total=last))
        nrec = sum(1 for x in new if not x.get("gap"))
        ngap = len(new) - nrec
        err.print("%s: %d new record%s from %s%s -> %s" % (
            port, nrec, "" if nrec == 1 else "s", dev,
            " (%d gap%s)" % (ngap, "" if ngap == 1 else "s") if ngap else "", path))
        _print_items(store.rows(dev, last_n or None), as_json, dev, con)
        if follow:
            _follow(port, store, dev, as_json, con, err)


def _follow(port, store, dev, as_json, con, err):
    """Print records as they come: `log` events at once, a pull every few seconds and after
    each event (catching anything the events missed), reconnecting when the board goes away."""
    printed = store.last_seq(dev) or 0
    link = None
    down = None
    next_pull = 0.0
    last_rx = 0.0

    def show(items):
        nonlocal printed
        fresh = [x for x in items if x.get("gap") or x["seq"] > printed]
        for x in fresh:
            if as_json:
                click.echo(L.json_line(x, dev))
            elif x.get("gap"):
                con.print("[yellow]gap: %s[/yellow]" % L.gap_text(x))
            else:
                con.print("%6d  %s  [bold]%s[/bold]  %s" % (x["seq"], L.when(x.get("epoch"), x.get("ms")),
                                                           x.get("type"), L.data_text(x.get("data"))),
                          highlight=False)
            if not x.get("gap"):
                printed = max(printed, x["seq"])
        sys.stdout.flush()

    try:
        while True:
            try:
                if link is None:
                    link = Link(port, timeout=_link_timeout())
                    ident = link.identify()
                    if down is not None:
                        err.print("[green]board answering again[/green]")
                    down = None
                    next_pull = 0.0
                    last_rx = time.monotonic()
                evs = link.poll_events(1.0)
                if evs:
                    last_rx = time.monotonic()
                elif time.monotonic() - last_rx > 3.0:
                    # the board streams status every second: silence means it may be gone
                    link.request("ping", retries=0)
                    last_rx = time.monotonic()
                logs_ev = [e for e in evs if e.get("ev") == "log" and isinstance(e.get("seq"), int)]
                show([{"seq": e["seq"], "type": e.get("type"), "data": e.get("data"),
                       "epoch": None, "ms": None} for e in logs_ev])
                if logs_ev or time.monotonic() >= next_pull:
                    show(L.pull(link, store, dev, ident))
                    next_pull = time.monotonic() + 5.0
            except (LinkError, serial.SerialException, OSError) as e:
                if link is not None:
                    try:
                        link.close()
                    except (OSError, serial.SerialException):
                        pass
                    link = None
                if down is None:
                    down = time.time()
                    err.print("[red]board not answering[/red] (%s); waiting for it"
                              % str(e).split(" (")[0])
                time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        if link is not None:
            link.close()


# -- captures ----------------------------------------------------------------------------------
@cli.group()
def captures():
    """Waveform captures of mains events stored on the board."""


@captures.command("list")
@click.option("--port", required=True, help=PORT_HELP)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def captures_list(port, as_json):
    """List the captures on the board: id, event, time, size, sample rate."""
    with _open_link(port) as link:
        link.identify()
        caps = C.list_captures(link)
    if as_json:
        click.echo(json.dumps(caps, indent=1))
        return
    t = Table(title="captures on %s" % port)
    for col in ("id", "event", "start", "samples", "rate", "length"):
        t.add_column(col, justify="right" if col in ("id", "samples", "rate", "length") else "left")
    for c in caps:
        m = c.get("meta") or {}
        rate = m.get("sample_rate") or m.get("rate")
        n = (c.get("bytes") or 0) // 2
        start = m.get("start_epoch") or m.get("epoch")
        t.add_row(str(c.get("id")), str(m.get("event") or m.get("type") or "-"),
                  L.when(start) if start else "-", str(n), "%s Hz" % rate if rate else "-",
                  "%.0f ms" % (1000.0 * n / rate) if rate else "-")
    Console().print(t)
    if not caps:
        click.echo("no captures on the board")


@captures.command("pull")
@click.option("--port", required=True, help=PORT_HELP)
@click.option("--out", "out_dir", default="captures", show_default=True,
              type=click.Path(file_okay=False), help="directory to write the captures into")
@click.option("--id", "ids", type=int, multiple=True, help="pull only this capture (repeatable)")
@click.option("--format", "fmt", type=click.Choice(["npz", "wav"]), default="npz",
              show_default=True, help="npz, or 16-bit WAV with a JSON sidecar")
@click.option("--force", is_flag=True, help="fetch again captures already in DIR")
def captures_pull(port, out_dir, ids, fmt, force):
    """Copy captures into files that `powersentinel analyze` reads.

    Each capture becomes capture-ID-EVENT.npz (or .wav + .json) with its sample rate,
    calibration, nominal voltage/frequency and start time, plus CAPTURE.meta.json with
    everything the board recorded. Captures already in DIR are skipped.
    """
    with _open_link(port) as link:
        link.identify()
        try:
            mains = siteconfig.fetch(link)[0].get("mains")
        except Exception:  # noqa: BLE001 - the capture meta alone may be enough
            mains = None
        with _progress() as prog:
            tasks = {}

            def progress(kind, cid, done, total):
                if cid not in tasks:
                    tasks[cid] = prog.add_task("capture %d" % cid, total=total)
                prog.update(tasks[cid], completed=done, total=total)

            res = C.pull(link, out_dir, ids=list(ids) or None, fmt=fmt, force=force,
                         progress=progress, cfg_mains=mains)
    for cid, path, status in res:
        click.echo("%s  %s" % (path, "(already there)" if status == "exists" else ""))
    n = sum(1 for r in res if r[2] == "pulled")
    click.echo("%d pulled, %d already in %s" % (n, len(res) - n, out_dir))


# -- alerts ------------------------------------------------------------------------------------
@cli.group()
def alerts():
    """Alerts the sentinel sends itself (syslog, webhook, e-mail, MQTT): docs/alerts.md."""


@alerts.command("test")
@click.option("--port", required=True, help=PORT_HELP)
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="seconds to wait for every transport to deliver")
def alerts_test(port, timeout):
    """Fire a test alert through every enabled transport and report each delivery.

    The board appends an `alert_test` record (severity notice) to its journal; each enabled
    transport delivers it like any alert, in order after those still queued. One line per
    transport: delivered, or failed with the transport's last error. Exit status 0 only if
    every transport delivered within --timeout.
    """
    con = Console(stderr=True)
    with _open_link(port) as link:
        link.identify()
        with con.status("waiting for the test alert to be delivered", spinner="dots") as sp:
            def progress(name, ok):
                sp.update("%s through %s" % ("delivered" if ok else "cannot send", name))
            aid, res = A.fire_test(link, timeout=timeout, progress=progress)
    bad = 0
    click.echo("test alert %d" % aid)
    for name, (ok, err) in res.items():
        if ok:
            click.echo("%-8s delivered" % name)
        else:
            bad += 1
            click.echo("%-8s failed: %s" % (name, err))
    sys.exit(1 if bad else 0)


# -- live view ---------------------------------------------------------------------------------
@cli.command()
@click.option("--port", required=True, help=PORT_HELP)
@click.option("--seconds", type=float, default=None, hidden=True,
              help="stop after this many seconds (tests)")
def monitor(port, seconds):
    """A live dashboard: mains, state and cause, UPS, tiers with their connected and missing
    servers, recent events and log lines.

    Refreshed from the board's status events; if the board stops answering a red banner says
    since when, and the view resumes by itself when it is back. q or Ctrl-C quits.
    """
    Monitor(port, link_timeout=min(_link_timeout(), 1.0)).run(seconds)


class AnalysisUnavailable(PowerSentinelError):
    """The analysis package cannot be imported (a broken or missing build)."""


def _analysis_unavailable(why):
    """`analyze` standing in for the real command when the analysis cannot be imported."""
    @click.command("analyze", short_help="UNAVAILABLE: the analysis cannot be loaded",
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                     "help_option_names": []})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def unavailable(args):
        raise AnalysisUnavailable(
            "`powersentinel analyze` cannot run: the analysis package does not load (%s). "
            "Rebuild it from the checkout with `make setup` or `pip install "
            "--no-build-isolation -e .`" % why)
    return unavailable


cli.add_command(analyze if ANALYSIS_BROKEN is None else _analysis_unavailable(ANALYSIS_BROKEN))
cli.add_command(hil)


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
    except PowerSentinelError as e:
        fail(str(e))
    except SystemExit:
        raise
    return 0


if __name__ == "__main__":
    main()
