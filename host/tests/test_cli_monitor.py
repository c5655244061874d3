"""`powersentinel monitor` in a real terminal: tmux runs it against the fake board, and the
tests read the screen (tmux capture-pane) while the board's state changes, goes silent, comes
back, and the user quits with q or Ctrl-C."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from fakeboard import FakeBoard
from powersentinel.monitor import Monitor, event_line

BIN = os.path.join(os.path.dirname(sys.executable), "powersentinel")
TMUX = shutil.which("tmux")


class Tmux:
    def __init__(self, tmp_path, cmd):
        self.sock = "ps-test-%d-%d" % (os.getpid(), id(self))
        self.rc_file = str(tmp_path / "rc")
        shell = "%s; echo $? > %s; sleep 30" % (cmd, self.rc_file)
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "mon", shell)

    def tmux(self, *args):
        return subprocess.run([TMUX, "-L", self.sock, "-f", "/dev/null"] + list(args),
                              capture_output=True, text=True, timeout=10)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "mon").stdout

    def wait_screen(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; screen:\n%s" % (what, s))
            time.sleep(0.2)

    def keys(self, *k):
        self.tmux("send-keys", "-t", "mon", *k)

    def exit_code(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.rc_file):
                with open(self.rc_file) as f:
                    txt = f.read().strip()
                if txt:
                    return int(txt)
            time.sleep(0.1)
        raise AssertionError("monitor did not exit; screen:\n%s" % self.screen())

    def close(self):
        self.tmux("kill-server")


@pytest.fixture
def board_and_tmux(tmp_path):
    if TMUX is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    fb = FakeBoard().start()
    t = Tmux(tmp_path, "env -u COLUMNS -u LINES POWERSENTINEL_TIMEOUT=1 %s monitor --port %s"
             % (BIN, fb.port))
    try:
        yield fb, t
    finally:
        t.close()
        fb.stop()


def test_dashboard_follows_the_board_and_quits_on_q(board_and_tmux):
    fb, t = board_and_tmux
    s = t.wait_screen(lambda s: "229.8 V" in s and "web2" in s, 15, "the first status")
    for text in ("Power Sentinel 0.1.0 on esp32", "50.01 Hz", "normal", "mains ok", "OL", "charge 100 %",
                 "runtime 30 min 00 s", "apps", "web1", "web2 (42 s)", "databases", "pg1, pg2",
                 "dip 80 ms residual 171.0 V", "q quits"):
        assert text in s, (text, s)
    # an outage: status events change the panels, state/log events land in "recent"
    with fb.lock:
        fb.status["mains"].update(v=0.4, lost=True, good=False)
        fb.status["ups"].update(status="OB", charge=97)
        fb.status["state"].update(name="on_battery", cause="mains lost")
        fb._send({"ev": "state", "from": "normal", "to": "on_battery", "cause": "mains lost"})
        fb.add_log("mains_lost", {"v": 0.4})
    s = t.wait_screen(lambda s: "LOST" in s and "on_battery" in s, 5, "the outage")
    assert "state normal -> on_battery (mains lost)" in s and "log #2 mains_lost v=0.4" in s
    assert "OB" in s and "charge 97 %" in s
    # the board stops answering: a banner says so; it comes back: the banner goes
    fb.silent = True
    s = t.wait_screen(lambda s: "BOARD NOT ANSWERING" in s, 10, "the not-answering banner")
    assert "stopped answering" in s and "no answer since" in s, s
    fb.silent = False
    s = t.wait_screen(lambda s: "BOARD NOT ANSWERING" not in s and "board answering again" in s,
                      10, "the board to be back")
    t.keys("q")
    assert t.exit_code(10) == 0
    assert "Traceback" not in t.screen()


def test_ctrl_c_quits_cleanly_and_a_vanished_port_is_shown(board_and_tmux):
    fb, t = board_and_tmux
    t.wait_screen(lambda s: "229.8 V" in s, 15, "the first status")
    fb.unplug()
    s = t.wait_screen(lambda s: "BOARD NOT ANSWERING" in s, 10, "the banner after unplugging")
    assert "Traceback" not in s
    t.keys("C-c")
    assert t.exit_code(10) == 0
    s = t.screen()
    assert "Traceback" not in s and "BOARD NOT ANSWERING" not in s  # alternate screen left


def test_monitor_steps_without_a_terminal():
    with FakeBoard() as fb:
        m = Monitor(fb.port, link_timeout=0.5)
        m.connect()
        assert m.ident["device_id"] == "fake-0001" and m.st["mains"]["v"] == 229.8
        fb.add_log("test", {"k": 1})
        deadline = time.monotonic() + 5
        while not any("log #2 test k=1" in r for r in m.recent) and time.monotonic() < deadline:
            m.step()
        assert any("log #2 test k=1" in r for r in m.recent)
        m.close()
    assert event_line({"ev": "mains", "lost": True, "v": 1.5}).endswith("mains LOST (1.5 V)")
    assert event_line({"ev": "status"}) is None
