"""The CLI against the real firmware on a virtual board (the same checks as the fake-board
tests, end to end).

FIRMWARE_OPS lists the console ops the firmware implements. A test that needs an op not listed
is not defined at all (neither skipped nor xfailed: CI counts a skip as a failure), and
test_firmware_ops_list_is_current fails as soon as the firmware answers an op that is missing
from the list -- so enabling the tests is one edit here, made when the firmware lands.
"""
import json
import os
import sys
import time

import pytest

from fakeboard import invoke
from powersentinel import virtual
from powersentinel.analysis.readers import open_recording
from powersentinel.link import Link, LinkError
from powersentinel.monitor import Monitor

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(REPO, "docs", "site.example.toml")

# Ops the firmware answers today (firmware/lib/sentinel/app.py). Add ops as they land.
FIRMWARE_OPS = {"ping", "identify", "status", "config_get", "config_put_chunk",
                "config_put_commit", "log_read", "capture_list", "capture_read"}
# Ops the firmware answers, but not yet as the host needs: op -> what to change. Tests needing
# them stay undefined; remove the entry (and add the op above) once the firmware is fixed.
FIRMWARE_OPS_PENDING = {
}

# Every op the CLI uses, with harmless arguments to probe it.
PROBES = {
    "ping": {}, "identify": {}, "status": {}, "config_get": {},
    "config_put_chunk": {"offset": 0, "text": ""},  # starts (and leaves) an empty upload
    "config_put_commit": {"length": 1, "sha256": "0" * 64},  # refused: wrong length
    "log_read": {"from_seq": 0, "max": 1}, "capture_list": {},
    "capture_read": {"capture_id": -1, "offset": 0, "length": 1},
}


def vinvoke(args):
    # the real interpreter shares two cores with the rest of the suite: give it time
    return invoke(args, env={"POWERSENTINEL_TIMEOUT": "5"})


def needs(*ops):
    """Define the test only when the firmware has every op it needs."""
    def deco(fn):
        return fn if set(ops) <= FIRMWARE_OPS else None
    return deco


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("vb") / "board")
    meta = virtual.start(d)
    meta["dir"] = d
    try:
        yield meta
    finally:
        virtual.stop(d)


def answers(link, op):
    try:
        link.request(op, timeout=3, retries=0, **PROBES[op])
        return True
    except LinkError as e:
        return "unknown op" not in str(e)


def test_firmware_ops_list_is_current(board):
    with Link(board["serial"]) as link:
        link.identify()
        have = {op for op in PROBES if answers(link, op)}
    missing = FIRMWARE_OPS - have
    assert not missing, "FIRMWARE_OPS lists ops the firmware does not answer: %s" % sorted(missing)
    new = have - FIRMWARE_OPS - set(FIRMWARE_OPS_PENDING)
    assert not new, ("the firmware now answers %s: add them to FIRMWARE_OPS in %s to run the CLI "
                     "tests that need them" % (sorted(new), __file__))


@needs("identify", "status")
def test_status_and_monitor_follow_the_real_firmware(board):
    code, so, se = vinvoke(["status", "--port", board["serial"], "--json"])
    assert code == 0, se
    st = json.loads(so)["status"]
    assert 200 < st["mains"]["v"] < 260
    m = Monitor(board["serial"], link_timeout=1.0)
    m.connect()
    try:
        virtual.set_wires(board["dir"], {"mains": "off"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("mains LOST" in r for r in m.recent):
            m.step()
        assert any("mains LOST" in r for r in m.recent), m.recent
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (m.st.get("mains") or {}).get("lost"):
            m.step()
        assert m.st["mains"]["lost"] is True and m.problem is None
    finally:
        virtual.set_wires(board["dir"], {"mains": "on"})
        m.close()


@needs("identify", "config_get", "config_put_chunk", "config_put_commit")
def test_config_push_and_pull_on_the_real_firmware(board, tmp_path):
    code, so, se = vinvoke(["config", "push", EXAMPLE, "--port", board["serial"]])
    assert code == 0, se
    assert "board restarted and runs the new configuration" in so
    out = str(tmp_path / "pulled.toml")
    assert vinvoke(["config", "pull", "--port", board["serial"], "--toml", "-o", out])[0] == 0
    code, so, _ = vinvoke(["config", "push", out, "--port", board["serial"]])
    assert code == 0 and "no changes" in so
    # a bad file is refused by the host before anything is sent
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\ngrace_s = -1\n")
    code, _, se = vinvoke(["config", "push", str(bad), "--port", board["serial"]])
    assert code == 2 and "policy.grace_s: -1 is out of range" in se


@needs("identify", "log_read")
def test_logs_pull_is_incremental_on_the_real_firmware(board, tmp_path):
    db = str(tmp_path / "l.sqlite")
    code, so, se = vinvoke(["logs", "--port", board["serial"], "--db", db, "--json", "--last", "0"])
    assert code == 0, se
    first = [json.loads(x) for x in so.splitlines()]
    assert first and any(r.get("type") == "boot" for r in first)
    code, so, se = vinvoke(["logs", "--port", board["serial"], "--db", db, "--json", "--last", "0"])
    assert code == 0, se
    again = [json.loads(x) for x in so.splitlines()]
    seqs = [r["seq"] for r in again if not r.get("gap")]
    assert seqs[:len(first)] == [r["seq"] for r in first if not r.get("gap")]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)  # nothing stored twice


@needs("identify", "capture_list", "capture_read", "config_get")
def test_captures_pull_from_the_real_firmware(board, tmp_path):
    virtual.set_wires(board["dir"], {"mains": "0.5"})
    time.sleep(1.0)
    virtual.set_wires(board["dir"], {"mains": "on"})
    out = str(tmp_path / "caps")
    deadline = time.monotonic() + 10
    while True:
        code, so, se = vinvoke(["captures", "list", "--port", board["serial"], "--json"])
        assert code == 0, se
        if json.loads(so) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert json.loads(so), "no capture after a dip to 50 %"
    code, so, se = vinvoke(["captures", "pull", "--port", board["serial"], "--out", out])
    assert code == 0, se
    files = [f for f in os.listdir(out) if f.endswith(".npz")]
    rec = open_recording(os.path.join(out, files[0]))
    assert rec.sample_rate > 0 and rec.n_samples > 0


# the list of tests that exist in this run, for the report (python test_cli_virtual.py)
if __name__ == "__main__":
    for name, fn in sorted(globals().items()):
        if name.startswith("test_"):
            print(name, "defined" if fn else "waiting for ops")
    sys.exit(0)
