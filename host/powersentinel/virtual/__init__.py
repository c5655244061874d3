"""The virtual board's controls: start (deploying the firmware through the console, as onto a
real board), stop, wires (set/get) over the supervisor's control socket. The board itself is
the real MicroPython interpreter running the real firmware on a littlefs flash image, its
console on a pty, its pins driven from the host: see supervisor.py."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from .. import deploy as firmware  # firmware.deploy() is looked up at call time (tests patch it)
from ..deploy import Board, DeployError
from .board import VirtualError, board_json, info, port_of

__all__ = ["VirtualError", "info", "port_of", "wait_for", "control", "state", "set_wires",
           "start", "stop", "install_config"]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is not alive
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_for(cond, timeout, what, interval=0.05):
    """Poll cond() until true or raise VirtualError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise VirtualError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def control(d, req, timeout=5.0):
    path = info(d)["control"]
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError as e:
        raise VirtualError("the virtual board in %s does not answer (%s)" % (d, e))
    finally:
        s.close()
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise VirtualError(reply.get("error", "refused"))
    return reply


def state(d):
    return control(d, {"cmd": "get"})["state"]


def power(d, on):
    """Cut (on=False) or restore the board's supply: a power cut kills its interpreter and
    boots nothing (NUT port and peer link gone, RAM lost) while the supervisor's wires and UPS
    simulator, the site's, stay; power back boots it from its flash (cause power_on)."""
    return control(d, {"cmd": "power", "on": bool(on)})


def set_wires(d, values, at_phase=None):
    req = {"cmd": "set", "values": values}
    if at_phase is not None:
        req["at_phase"] = at_phase
    return control(d, req)["state"]


def start(d, config=None, heap="128wK", nut_port=0, deploy=True, progress=None,
          timeout=60.0, extra_args=(), _retry=True):
    """Start a board in directory d; on a new directory, format the flash and deploy the
    current firmware through the console exactly as onto a real board. Returns board.json."""
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    if os.path.exists(board_json(d)):
        pid = info(d).get("pid")
        if pid and _alive(pid):
            raise VirtualError("a virtual board is already running in %s (pid %d)" % (d, pid))
        os.unlink(board_json(d))
    fresh = not os.path.exists(os.path.join(d, "flash.img"))
    cmd = [sys.executable, "-m", "powersentinel.virtual.supervisor", "--dir", d,
           "--heap", heap, "--nut-port", str(nut_port)] + list(extra_args)
    if config:
        cfg = _load_config(config)
        m = cfg.get("mains", {})
        for key, opt in (("sample_rate", "--sample-rate"), ("nominal_hz", "--nominal-hz"),
                         ("nominal_v", "--nominal-v"), ("volts_per_count", "--volts-per-count")):
            if key in m:
                cmd += [opt, str(m[key])]
        if m.get("channels"):
            cmd += ["--channels", json.dumps(m["channels"])]
        u = cfg.get("ups", {})
        more = [e["feed"] for e in u.get("feeds", ()) if e.get("link", "q1") == "q1"]
        if more or (u.get("feed") and u.get("feeds")):
            # two feeds, one UPS each: the first on its feed's channels (its state keyed by
            # its feed), a second Q1 on the board's second UART (a contact one has no simulator)
            cmd += ["--ups-feeds", json.dumps([u.get("feed")] + more[:1])]
    log = open(os.path.join(d, "supervisor.log"), "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, close_fds=True)
    log.close()

    def ready():
        if proc.poll() is not None:
            raise VirtualError("the virtual board failed to start (see %s)"
                               % os.path.join(d, "supervisor.log"))
        return os.path.exists(board_json(d))

    try:
        _bring_up(d, proc, ready, fresh, config, deploy, progress, timeout)
    except (VirtualError, DeployError):
        # Seen only on a heavily loaded machine: a board that never reports, or a deploy whose
        # first try hung and still holds the port (the second then cannot open it). Power-cycle
        # it once (a fresh supervisor, a new console), as one would a real board.
        stop(d)
        if proc.poll() is None:
            proc.kill()
        if not _retry:
            raise
        if fresh:  # it never got a complete firmware: start again from a blank board
            for name in ("flash.img", "romfs.img"):
                try:
                    os.unlink(os.path.join(d, name))
                except OSError:
                    pass
        return start(d, config=config, heap=heap, nut_port=nut_port, deploy=deploy,
                     progress=progress, timeout=timeout, extra_args=extra_args, _retry=False)
    except BaseException:
        stop(d)  # never leave a half-started board behind
        if proc.poll() is None:
            proc.kill()
        raise
    return info(d)


def _bounded(fn, timeout, what, d):
    """Run fn() with a deadline: mpremote waits without one, and a board that dies mid-transfer
    must not hang the caller. On expiry the interpreter is reset, which ends the transfer."""
    box = {}

    def run():
        try:
            box["ok"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["err"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        # a reset alone can leave mpremote waiting on a reply that never comes, holding the
        # port's lock, and the next try could not open it: close the port under it first (the
        # reset's output then wakes a read blocked on it)
        try:
            Board.abort(info(d)["serial"])
        except (VirtualError, KeyError):
            pass
        try:
            boots = _boots(d)
            control(d, {"cmd": "reset", "cause": "hard"})
            # what is typed while no interpreter runs is lost: the next try waits for the new one
            wait_for(lambda: _boots(d) > boots, 10, "the board to reboot")
        except VirtualError:
            pass
        t.join(10)
        raise VirtualError("timed out after %.0f s %s" % (timeout, what))
    if "err" in box:
        raise box["err"]
    return box.get("ok")


def _boots(d):
    """How many times the board's interpreter has started (-1 while board.json is rewritten)."""
    try:
        return info(d).get("boots", 0)
    except VirtualError:
        return -1


def _bring_up(d, proc, ready, fresh, config, deploy, progress, timeout):
    wait_for(ready, timeout, "the virtual board to come up")
    if fresh and deploy:
        def flash():
            firmware.deploy(info(d)["serial"], progress=progress, reboot=False)
            if config:
                install_config(d, config)

        try:
            _bounded(flash, timeout, "deploying the firmware", d)
        except Exception:
            # one more try on the same flash, as one would re-run a deploy that failed midway
            _bounded(flash, timeout, "deploying the firmware (second try)", d)
        control(d, {"cmd": "reset", "cause": "power_on"})
    elif config:
        # let the firmware come up first: interrupting a half-booted interpreter can lose the
        # Ctrl-C, and mpremote would wait for the raw REPL for ever
        wait_for(lambda: info(d).get("firmware"), timeout, "the firmware to report ready")
        _bounded(lambda: install_config(d, config), timeout, "installing the config", d)
        control(d, {"cmd": "reset", "cause": "hard"})
    if deploy:
        try:
            wait_for(lambda: info(d).get("firmware"), min(timeout, 20.0),
                     "the firmware to report ready")
        except VirtualError:
            # seen only on a heavily loaded machine: the first boot never reports; a reset
            # (what an operator would do) brings it up
            control(d, {"cmd": "reset", "cause": "hard"})
            wait_for(lambda: info(d).get("firmware"), timeout, "the firmware to report ready")


def _load_config(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise VirtualError("cannot read config %s: %s" % (path, e))


def install_config(d, path):
    """Write a JSON config onto the board's flash (through the console, as a user would)."""
    with open(path, "rb") as f:
        data = f.read()
    with Board(info(d)["serial"]) as b:
        b.t.fs_writefile("/config.json.new", data)
        b.exec("import os\nos.rename('/config.json.new', '/config.json')")


def _live_in_groups(groups):
    """Processes (not zombies) whose process group is one of `groups`: the supervisor and the
    interpreter each lead a session of their own, so their groups hold the board's processes."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if fields[0] != "Z" and int(fields[2]) in groups:
            out.append(int(name))
    return out


def _reap(pid):
    # a supervisor started by this process stays a zombie until we wait for it
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(d, timeout=10.0):
    """Stop the board in d; return once every process of it (supervisor, interpreter and what
    they started) has exited. The flash image stays. Idempotent: False if none was running.

    An exited process whose parent has not yet collected it (a zombie) counts as exited: it
    holds no port, file or memory, and only its parent can collect it."""
    d = os.path.abspath(d)
    try:
        meta = info(d)
    except VirtualError:
        return False
    pid = meta.get("pid")
    groups = {p for p in (pid, meta.get("interpreter_pid")) if p}
    if pid and _alive(pid):
        try:
            control(d, {"cmd": "stop"}, timeout=2)
        except VirtualError:
            os.kill(pid, signal.SIGTERM)
        try:
            wait_for(lambda: not _alive(pid), timeout, "the supervisor to exit")
        except VirtualError:
            os.kill(pid, signal.SIGKILL)
    # the supervisor kills its interpreter on the way out; whatever is left (a supervisor that
    # had to be killed, a process the interpreter started) is killed here
    for g in groups:
        if _live_in_groups({g}):
            try:
                os.killpg(g, signal.SIGKILL)
            except ProcessLookupError:
                pass
    wait_for(lambda: not _live_in_groups(groups), timeout, "the board's processes to exit")
    if pid:
        _reap(pid)
    for name in ("board.json", "control.sock"):
        try:
            os.unlink(os.path.join(d, name))
        except OSError:
            pass
    return True
