"""Instant commands, writable variables and a client's FSD on the virtual board, with the real
NUT tools: Debian's `upscmd` and `upsrw`, and a real primary `upsmon` told to force a shutdown
(what `upsmon -c fsd` does: SIGUSR1 to the running upsmon).

Each request must reach the board's Q1 UPS simulator as the bytes NUT's own Megatec driver
sends, and the board's journal must hold who asked and the result. Every wait has a deadline.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from powersentinel import nutreal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from reliability_common import virtual  # noqa: E402  # pyright: ignore[reportMissingImports]

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "upscmd"], capture_output=True).returncode != 0
    or not nutreal.available(), reason="NUT's upscmd, upsrw and upsmon are needed (nut-client)")

ADMIN = ("admin", rc.USERS["admin"][0])
MON = ("monuser", rc.USERS["monuser"][0])
PRIMO = ("primo", rc.USERS["primo"][0])
BEEPER = ("beeper", "bee-Tz4Lq9Wm3k")
SCALE = 20  # the UPS simulator's minutes run this much faster (S01 cuts the load in 3 s)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    cfg = rc.make_config(**{"ups.link": "q1", "ups.poll_ms": 300, "policy.stable_mains_s": 2})
    cfg["nut"]["users"].append({"name": BEEPER[0], "password": rc.hash_password(BEEPER[1]),
                                "instcmds": ["beeper.toggle"]})
    b = rc.Board(str(tmp_path_factory.mktemp("instcmd") / "b"), cfg,
                 extra_args=("--time-scale", str(SCALE)))
    try:
        b.wait_serving(15)
        with rc.link(b) as lk:
            virtual.wait_for(lambda: lk.request("status")["ups"]["link"] == "ok", 15,
                             "the Q1 link to come up")
        yield b
    finally:
        b.stop()


def target(b):
    return "%s@%s:%d" % (rc.TIER, b.nut[0], b.nut[1])


def tool(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20)


def upscmd(b, user, *cmd):
    return tool("upscmd", "-u", user[0], "-p", user[1], target(b), *cmd)


def upsrw_set(b, user, assignment):
    return tool("upsrw", "-s", assignment, "-u", user[0], "-p", user[1], target(b))


def sim_commands(b):
    return b.state()["ups"]["commands"]


def wait_sim(b, cmd, before):
    """Until the simulator has received `cmd` beyond the `before` commands it had."""
    def got():
        cmds = sim_commands(b)
        return cmds[len(before):] if len(cmds) > len(before) else [c for c in cmds if c == cmd]
    virtual.wait_for(lambda: cmd in got(), 10, "the UPS simulator to receive %s" % cmd)


def last_seq(lk):
    return lk.request("log_read", from_seq=0, max=1)["last"] or 0


def records(lk, since, kind):
    return [r["data"] for r in rc.read_log(lk, since + 1)[0] if r["type"] == kind]


def wait_records(lk, since, kind, pred, what):
    out = []

    def found():
        out[:] = [d for d in records(lk, since, kind) if pred(d)]
        return bool(out)
    virtual.wait_for(found, 10, what, interval=0.2)
    return out


def test_upscmd_lists_and_runs_commands_through_the_ups_link(board):
    r = tool("upscmd", "-l", target(board))
    assert r.returncode == 0, r.stderr
    for line in ("beeper.toggle - Toggle the UPS beeper",
                 "load.off - Turn off the load immediately",
                 "shutdown.return - Turn off the load and return when power is back",
                 "test.battery.start.deep - Start a deep battery test",
                 "test.battery.start.quick - Start a quick battery test",
                 "test.battery.stop - Stop the battery test",
                 "sentinel.drill.start - "):
        assert line in r.stdout, r.stdout
    with rc.link(board) as lk:
        s0 = last_seq(lk)
        for cmd, wire in (("beeper.toggle", "Q"), ("test.battery.start.quick", "T"),
                          ("test.battery.stop", "CT")):
            before = sim_commands(board)
            r = upscmd(board, ADMIN, cmd)
            assert r.returncode == 0 and "OK" in r.stdout + r.stderr, r.stdout + r.stderr
            wait_sim(board, wire, before)
            wait_records(lk, s0, "nut_instcmd",
                         lambda d: d["cmd"] == cmd and d["user"] == "admin"
                         and d["result"] == "done", "the journal record of %s" % cmd)
        assert board.state()["ups"]["beeper"] is True  # toggled from off


def test_per_user_rights_and_refusals_are_journalled(board):
    with rc.link(board) as lk:
        s0 = last_seq(lk)
        r = upscmd(board, MON, "load.off")
        assert r.returncode != 0 and "ACCESS-DENIED" in r.stdout + r.stderr
        r = upscmd(board, BEEPER, "load.off")
        assert r.returncode != 0 and "ACCESS-DENIED" in r.stdout + r.stderr
        before = sim_commands(board)
        r = upscmd(board, BEEPER, "beeper.toggle")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_sim(board, "Q", before)
        assert "S00R0000" not in sim_commands(board)
        got = wait_records(lk, s0, "nut_instcmd", lambda d: d["result"] == "ACCESS-DENIED",
                           "the refusals in the journal")
        assert sorted(d["user"] for d in got) == ["beeper", "monuser"]
        assert all(d["cmd"] == "load.off" for d in got)


def test_upsrw_lists_and_sets_the_delays_of_shutdown_return(board):
    r = tool("upsrw", target(board))
    assert r.returncode == 0, r.stderr
    assert "[ups.delay.shutdown]\nInterval to wait after shutdown with delay command (seconds)" \
           "\nType: RANGE NUMBER\nOption: \"12-600\" SELECTED" in r.stdout, r.stdout
    assert "[ups.delay.start]" in r.stdout and "[sentinel.grace]" in r.stdout
    with rc.link(board) as lk:
        s0 = last_seq(lk)
        for a in ("ups.delay.shutdown=30", "ups.delay.start=120"):
            r = upsrw_set(board, ADMIN, a)
            assert r.returncode == 0 and "OK" in r.stdout + r.stderr, r.stdout + r.stderr
        r = upsrw_set(board, ADMIN, "ups.delay.shutdown=700")
        assert r.returncode != 0 and "INVALID-VALUE" in r.stdout + r.stderr
        r = upsrw_set(board, MON, "sentinel.grace=10")
        assert r.returncode != 0 and "ACCESS-DENIED" in r.stdout + r.stderr
        before = sim_commands(board)
        assert upscmd(board, ADMIN, "shutdown.return").returncode == 0
        wait_sim(board, "S.5R0002", before)
        before = sim_commands(board)
        assert upscmd(board, ADMIN, "shutdown.stop").returncode == 0
        wait_sim(board, "C", before)
        virtual.wait_for(lambda: not board.state()["ups"]["shutdown_pending"], 5,
                         "the simulator's shutdown to be cancelled")
        sets = records(lk, s0, "nut_set")
        assert [(d["var"], d["value"], d["user"], d["result"]) for d in sets] == [
            ("ups.delay.shutdown", "30", "admin", "ok"), ("ups.delay.start", "120", "admin", "ok"),
            ("ups.delay.shutdown", "700", "admin", "INVALID-VALUE"),
            ("sentinel.grace", "10", "monuser", "ACCESS-DENIED")]
    assert board.state()["ups"]["output_on"]


def test_a_primary_upsmon_forcing_fsd_starts_the_plan_and_the_flag_clears(board):
    """Last in this module: it power-cycles the simulated UPS."""
    mon = nutreal.RealUpsmon([nutreal.Monitor(rc.TIER, board.nut[0], board.nut[1], PRIMO[0],
                                              PRIMO[1], role="primary")], hostsync=1)
    with rc.link(board) as lk:
        s0 = last_seq(lk)
        before = sim_commands(board)
        mon.start()
        try:
            mon.wait_logged_in(10)
            os.kill(mon.proc.pid, signal.SIGUSR1)  # what `upsmon -c fsd` sends it
            assert mon.wait_log("User requested FSD", 5), mon.log()
            wait_records(lk, s0, "client_fsd", lambda d: d["user"] == "primo"
                         and d["ups"] == rc.TIER, "the client FSD in the journal")
            assert mon.wait_shutdown(15) is not None, mon.log()
        finally:
            mon.stop()
        wait_records(lk, s0, "state", lambda d: d["to"] == "SHUTTING_DOWN"
                     and d["cause"] == "client_fsd", "the forced shutdown to start")
        # the whole plan: the tier is down, then the UPS power cycle with restore
        wait_sim(board, "S01R0001", before)
        # FSD is cleared once the load is off, without a reboot
        wait_records(lk, s0, "state", lambda d: d["to"] == "WAIT_MAINS", "the load to be off")
        virtual.wait_for(lambda: "FSD" not in board.nut_get(), 5, "FSD to clear")
        wait_records(lk, s0, "state", lambda d: d["to"] == "ONLINE", "the power-on to end")
        assert board.nut_get() == 'VAR %s ups.status "OL"' % rc.TIER
