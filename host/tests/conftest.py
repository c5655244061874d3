import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)


def venv_tool(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


@pytest.fixture
def vboard(tmp_path):
    """A virtual board with freshly deployed firmware in its own directory; stopped after."""
    from powersentinel import virtual
    d = str(tmp_path / "board")
    meta = virtual.start(d)
    meta["dir"] = d
    try:
        yield meta
    finally:
        virtual.stop(d)


def no_leftover(pids):
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ", 1)[1][0] != "Z":
                    alive.append(pid)
        except (ProcessLookupError, FileNotFoundError):
            pass
    return alive
