"""End to end on the virtual board: fresh flash, deploy, the real mpremote and pyserial on its
pty, wires changing what the firmware sees, reboots of every kind, and a clean stop."""
import json
import os
import subprocess
import time

import pytest

from support import no_leftover, venv_tool
from powersentinel import deploy as dep
from powersentinel import virtual
from powersentinel.deploy import DeployError, deploy
from powersentinel.link import Link
from powersentinel.virtual import wait_for


def mpremote(port, *args, timeout=30, board=None):
    try:
        r = subprocess.run([venv_tool("mpremote"), "connect", port, "resume"] + list(args),
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        # mpremote blocks on a pty until its prompt arrives: show what the board said instead
        tail = open(os.path.join(board, "console.log"), "rb").read()[-3000:] if board else b"?"
        raise AssertionError("mpremote %s: no answer in %d s; board %s; console tail:\n%r"
                             % (" ".join(args), timeout, board and virtual.info(board), tail)) from e
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def boots(d):
    return virtual.info(d)["boots"]


def wait_serving(d, after_boots, timeout=20):
    wait_for(lambda: boots(d) > after_boots and virtual.info(d).get("firmware"), timeout,
             "the firmware to boot again")


def test_board_json_describes_the_running_board(vboard):
    d = vboard["dir"]
    meta = virtual.info(d)
    assert meta["serial"].startswith("/dev/pts/") and os.path.exists(meta["serial"])
    host, port = meta["nut"].split(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert meta["flash"] == os.path.join(d, "flash.img")
    assert os.path.getsize(meta["flash"]) == 2 * 1024 * 1024
    assert meta["firmware"]["fw"]


def test_mpremote_sees_only_the_flash_and_can_copy_files(vboard, tmp_path):
    port = vboard["serial"]
    listing = mpremote(port, "fs", "ls", ":/")
    assert "main.py" in listing and "rom/" in listing
    # the compiled modules went into the board's ROMFS partition, where they run in place
    assert "app.mpy" in mpremote(port, "fs", "ls", ":/rom/lib/sentinel")
    # the host's filesystem is not the board's
    out = mpremote(port, "exec", "import os; print(sorted(os.listdir('/')))")
    assert "'home'" not in out and "'usr'" not in out
    src = tmp_path / "note.txt"
    src.write_text("hello flash\n")
    mpremote(port, "fs", "cp", str(src), ":note.txt")
    assert "hello flash" in mpremote(port, "fs", "cat", ":note.txt")
    # the firmware went back to running? No: mpremote left it in the REPL; a reset restarts it
    b = boots(vboard["dir"])
    mpremote(port, "exec", "--no-follow", "import machine; machine.reset()")
    wait_serving(vboard["dir"], b)
    assert virtual.info(vboard["dir"])["reset_cause"] == "hard"
    # files survive the reboot: they are on the flash image
    assert "hello flash" in mpremote(port, "fs", "cat", ":note.txt")


def test_soft_reset_restarts_on_the_same_pty_and_flash(vboard):
    d, port = vboard["dir"], vboard["serial"]
    b = boots(d)
    mpremote(port, "soft-reset")
    wait_for(lambda: boots(d) > b, 20, "a reboot")
    meta = virtual.info(d)
    assert meta["serial"] == port and meta["reset_cause"] == "soft"
    log = open(os.path.join(d, "console.log"), "rb").read()
    assert log.count(b"MPY: soft reboot") >= 1
    assert b"PowerSentinel virtual board" in log.rsplit(b"MPY: soft reboot", 1)[1]


def test_pyserial_link_wires_and_interrupt_recovery(vboard):
    d, port = vboard["dir"], vboard["serial"]
    with Link(port) as link:
        ident = link.identify()
        assert ident["board"] == "virtual"
        wait_for(lambda: 200 < link.request("status")["mains"]["v"] < 260, 5,
                 "the firmware to measure the mains")
        link.poll_events()
        virtual.set_wires(d, {"mains": "off"})
        ev = link.wait_event(lambda e: e.get("ev") == "mains" and e.get("lost"), 5)
        assert ev is not None, "the firmware did not notice the outage"
        assert link.request("status")["mains"]["lost"] is True
        virtual.set_wires(d, {"mains": "on"})
        assert link.wait_event(lambda e: e.get("ev") == "mains" and not e.get("lost"), 5)
    # the REPL interrupts the application (Ctrl-C through the pty), then a reset brings it back
    b = boots(d)
    out = mpremote(port, "exec", "print('in the repl', 6 * 7)", board=d)
    assert "in the repl 42" in out
    with Link(port) as link:
        with pytest.raises(Exception):
            link.request("ping", timeout=1, retries=0)  # application stopped: nobody answers
    mpremote(port, "exec", "--no-follow", "import machine; machine.reset()")
    wait_serving(d, b)
    with Link(port) as link:
        assert link.request("ping") == "pong"


def test_noise_on_the_console_does_not_stop_the_firmware(vboard):
    with Link(vboard["serial"]) as link:
        link.ser.write(b"garbage without newline \x00\xff" * 50)
        link.ser.write(b"\r\n@PS1 {\"id\":5,\"op\":\"status\"} deadbeef\r\n")  # bad CRC
        link.ser.write(b"x" * 10000 + b"\r\n")  # oversized line
        assert link.request("ping") == "pong"


def test_redeploy_sends_only_changes_and_verifies(vboard):
    s = deploy(vboard["serial"], dry_run=True)
    assert s["arch"] == "x64" and s["changed"] == [] and s["files"] > 5
    b = boots(vboard["dir"])
    s = deploy(vboard["serial"])
    assert s["changed"] == [] and s["rebooted"]
    wait_serving(vboard["dir"], b)


def test_two_boards_side_by_side_and_stop_leaves_nothing(tmp_path):
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    metas = []
    try:
        for d in dirs:
            metas.append(virtual.start(d))
        assert metas[0]["serial"] != metas[1]["serial"]
        assert metas[0]["nut"] != metas[1]["nut"]
        virtual.set_wires(dirs[0], {"mains": "off"})
        assert virtual.state(dirs[1])["mains"]["level"] == 1.0
    finally:
        for d in dirs:
            virtual.stop(d)
    pids = [m["pid"] for m in metas] + [m["interpreter_pid"] for m in metas]
    assert no_leftover(pids) == []
    for d in dirs:
        assert not os.path.exists(os.path.join(d, "board.json"))


def test_a_flash_that_will_not_mount_gives_a_degraded_board_not_a_reformat(tmp_path):
    d = str(tmp_path / "bad")
    virtual.start(d)
    virtual.stop(d)
    flash = os.path.join(d, "flash.img")
    with open(flash, "r+b") as f:  # destroy both littlefs superblocks
        f.write(b"\xff" * 8192)
    before = open(flash, "rb").read()
    try:
        virtual.start(d, deploy=False)
        log = os.path.join(d, "console.log")
        wait_for(lambda: b"DEGRADED MODE" in open(log, "rb").read(), 20, "degraded mode banner")
        # still reports over the console
        out = mpremote(virtual.info(d)["serial"], "exec",
                       "import _vboard; print('REASON', _vboard.DEGRADED)")
        assert "REASON filesystem will not mount" in out
    finally:
        virtual.stop(d)
    assert open(flash, "rb").read() == before, "the flash image was modified"


def test_a_deploy_that_fails_twice_at_bring_up_power_cycles_the_board(tmp_path, monkeypatch):
    # as when the first try hangs and still holds the port: start() must power-cycle the board
    # from blank once and deploy again, not give up
    real = dep.deploy
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) <= 2:
            raise DeployError("cannot open /dev/pts/X: failed to access (simulated)")
        return real(*a, **kw)

    monkeypatch.setattr(dep, "deploy", flaky)
    d = str(tmp_path / "b")
    try:
        meta = virtual.start(d)
        assert len(calls) == 3 and meta["firmware"], (calls, meta)
    finally:
        virtual.stop(d)


def test_a_deploy_hung_holding_the_port_does_not_lock_out_the_second_try(tmp_path, monkeypatch):
    # the first try opens the console and then waits for ever for a reply (as mpremote does when
    # the board stops answering mid-transfer); at the deadline the port is closed under it, so
    # the second try on the same board can open it: no power-cycle needed (_retry=False)
    real = dep.deploy
    calls, ended = [], []

    def hangs_once(port, **kw):
        calls.append(1)
        if len(calls) > 1:
            return real(port, **kw)
        try:
            with dep.Board(port) as b:
                b.t.read_until(1, b"a reply that never comes", timeout=None)
        finally:
            ended.append(1)

    monkeypatch.setattr(dep, "deploy", hangs_once)
    d = str(tmp_path / "b")
    try:
        meta = virtual.start(d, timeout=40, _retry=False)
        assert len(calls) == 2 and meta["firmware"], (calls, meta)
        wait_for(lambda: ended, 10, "the hung transfer to end")
    finally:
        virtual.stop(d)


def test_a_port_held_by_another_board_says_why_it_cannot_be_opened(tmp_path):
    d = str(tmp_path / "b")
    try:
        meta = virtual.start(d)
        with dep.Board(meta["serial"]):
            with pytest.raises(DeployError) as e:
                dep.Board(meta["serial"], open_wait=0.5)
        assert "lock" in str(e.value).lower(), str(e.value)
        with dep.Board(meta["serial"]) as b:  # released on exit
            assert b.eval("1 + 1") == 2
    finally:
        virtual.stop(d)


def live_in_groups(pgids):
    """Processes (zombies aside: they have exited) whose process group is one of pgids."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    fields = f.read().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) in pgids:
                out.append(int(name))
    return out


def test_virtual_stop_returns_once_every_process_of_the_board_has_exited(tmp_path):
    # started and stopped by the console script, as a user does: the supervisor outlives the
    # command that started it
    ps = venv_tool("powersentinel")
    d = str(tmp_path / "b")
    r = subprocess.run([ps, "virtual", "start", "--dir", d], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    sup, interp = meta["pid"], meta["interpreter_pid"]
    try:
        # a process the board's interpreter started
        mpremote(meta["serial"], "exec", "import os\nos.system('sleep 600 &')")
        children = wait_for(lambda: [p for p in live_in_groups({interp}) if p != interp], 20,
                            "the interpreter's child")
        r = subprocess.run([ps, "virtual", "stop", "--dir", d], capture_output=True, text=True,
                           timeout=60)
        left = live_in_groups({sup, interp})  # right when the command has returned
        assert r.returncode == 0 and r.stdout.startswith("stopped"), r.stdout + r.stderr
        assert left == [], left
        assert no_leftover([sup, interp] + children) == []
        assert not os.path.exists(os.path.join(d, "board.json"))
    finally:
        virtual.stop(d)


def test_a_board_without_romfs_gets_mpy_files_and_runs(tmp_path):
    # the stock RPI_PICO image: no ROMFS partition, so deploy uploads .mpy files to littlefs
    # and their code loads into the heap (which needs more of it than 128wK)
    d = str(tmp_path / "board")
    r = subprocess.run([venv_tool("powersentinel"), "virtual", "start", "--dir", d,
                        "--no-romfs", "--heap", "192wK"],
                       capture_output=True, text=True, timeout=240)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        port = virtual.info(d)["serial"]
        out = mpremote(port, "exec", "import os, vfs; print(vfs.rom_ioctl(1)); "
                       "print(sorted(os.listdir('/lib/sentinel')))")
        segments, files = out.strip().splitlines()[-2:]
        assert segments == "0"
        assert "'app.mpy'" in files and "'app.py'" not in files
        mpremote(port, "exec", "--no-follow", "import machine; machine.reset()")
        wait_serving(d, 1, timeout=60)
        with Link(port) as link:
            st = link.request("status")
        assert st["state"]["name"] == "ONLINE" and st["heap"]["free"] > 0
    finally:
        virtual.stop(d)
