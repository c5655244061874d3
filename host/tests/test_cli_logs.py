"""`powersentinel logs`: incremental pull into SQLite, no duplicates, resume, reboots, rotation
gaps, a board whose log restarted, JSON lines, the default database path, and --follow."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from fakeboard import FakeBoard, fake, invoke  # noqa: F401 (fixture)
from powersentinel import logs as L

BIN = os.path.join(os.path.dirname(sys.executable), "powersentinel")


def pull(fb, db, *extra):
    code, so, se = invoke(["logs", "--port", fb.port, "--db", db, "--json", "--last", "0"] + list(extra))
    assert code == 0, se
    return [json.loads(x) for x in so.splitlines()], se


def stored(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT device, gen, seq, type FROM records ORDER BY gen, seq").fetchall()


def test_incremental_pull_resumes_without_duplicates_across_reboots(fake, tmp_path):
    db = str(tmp_path / "logs.sqlite")
    for i in range(40):  # more than one log_read batch
        fake.add_log("test", {"i": i}, emit=False)
    items, se = pull(fake, db)
    assert "41 new records from fake-0001" in se
    assert [x["seq"] for x in items] == list(range(1, 42))
    assert items[1] == {"device": "fake-0001", "seq": 2, "epoch": items[1]["epoch"],
                        "ms": items[1]["ms"], "type": "test", "data": {"i": 0}}
    reads = [a for op, a in fake.requests if op == "log_read"]
    # nothing new: one request from where we stopped, nothing stored twice
    _, se = pull(fake, db)
    assert "0 new records" in se
    assert [a for op, a in fake.requests if op == "log_read"][len(reads):] == [{"from_seq": 42, "max": 32}]
    fake.reboot()
    fake.add_log("mains_lost", {"v": 3.1}, emit=False)
    items, se = pull(fake, db)
    assert "2 new records" in se
    assert [(x["seq"], x["type"]) for x in items[-2:]] == [(42, "boot"), (43, "mains_lost")]
    rows = stored(db)
    assert len(rows) == 43 and len({r[2] for r in rows}) == 43


def test_rotated_records_leave_a_gap_notice(fake, tmp_path):
    db = str(tmp_path / "logs.sqlite")
    pull(fake, db)
    for i in range(20):
        fake.add_log("test", {"i": i}, emit=False)
    fake.rotate(15)  # the board dropped 2..14 before we pulled them
    items, se = pull(fake, db)
    assert "7 new records from fake-0001 (1 gap)" in se
    gaps = [x for x in items if x.get("gap")]
    assert gaps == [{"gap": True, "device": "fake-0001", "gen": 0, "from_seq": 2, "to_seq": 14,
                     "reason": "rotated",
                     "notice": "records 2..14 were rotated off the board before they were pulled"}]
    seqs = [x.get("seq") or x.get("from_seq") for x in items]
    assert seqs == [1, 2] + list(range(15, 22))  # the gap sits where the records were
    # the table shows the notice too; a second pull does not report the gap again
    code, so, se = invoke(["logs", "--db", db, "--last", "0"])
    assert "rotated off the board" in so and "gap" in so
    _, se = pull(fake, db)
    assert "0 new records" in se and "gap" not in se


def test_a_board_whose_log_went_backwards_starts_a_new_generation(tmp_path):
    db = str(tmp_path / "logs.sqlite")
    with FakeBoard() as fb:
        for i in range(9):
            fb.add_log("test", {"old": i}, emit=False)
        pull(fb, db)
    with FakeBoard() as fb2:  # same device id, flash erased: seq starts again at 1
        fb2.add_log("test", {"new": 1}, emit=False)
        items, se = pull(fb2, db)
    assert "restarted" in json.dumps(items)
    rows = stored(db)
    assert [r for r in rows if r[1] == 0][-1][2] == 10
    assert [(r[1], r[2]) for r in rows if r[1] == 1] == [(1, 1), (1, 2)]


def test_default_database_honours_xdg_and_offline_view(fake, tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    code, so, se = invoke(["logs", "--port", fake.port], env=env)
    assert code == 0, se
    path = tmp_path / "xdg" / "powersentinel" / "logs.sqlite"
    assert path.exists() and str(path) in se
    assert "boot" in so and "seq" in so   # the rich table
    env2 = {"XDG_DATA_HOME": None, "HOME": str(tmp_path / "home")}
    code, so, se = invoke(["logs", "--port", fake.port], env=env2)
    assert code == 0 and (tmp_path / "home" / ".local" / "share" / "powersentinel" / "logs.sqlite").exists()
    # without --port: what is stored; with no database yet: a clear error
    code, so, _ = invoke(["logs", "--json"], env=env)
    assert code == 0 and json.loads(so.splitlines()[0])["type"] == "boot"
    code, _, se = invoke(["logs"], env={"XDG_DATA_HOME": str(tmp_path / "none")})
    assert code == 2 and se.startswith("error: no log database at ") and se.count("\n") == 1


def test_follow_prints_records_as_they_stream_and_stops_on_ctrl_c(tmp_path):
    db = str(tmp_path / "logs.sqlite")
    with FakeBoard() as fb:
        env = dict(os.environ, POWERSENTINEL_TIMEOUT="1")
        p = subprocess.Popen([BIN, "logs", "--port", fb.port, "--db", db, "--follow", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            first = json.loads(p.stdout.readline())
            assert first["seq"] == 1 and first["type"] == "boot"
            time.sleep(0.5)
            t0 = time.monotonic()
            fb.add_log("mains_lost", {"v": 2.0})
            ev = json.loads(p.stdout.readline())
            latency = time.monotonic() - t0
            assert ev["seq"] == 2 and ev["type"] == "mains_lost" and ev["data"] == {"v": 2.0}
            assert latency < 2.5
            # a record whose event was lost on the wire still arrives (periodic pull)
            fb.add_log("mains_ok", {}, emit=False)
            assert json.loads(p.stdout.readline())["seq"] == 3
            # the board goes silent, then answers again: follow keeps going
            fb.silent = True
            time.sleep(4)
            fb.silent = False
            fb.add_log("ups_status", {"status": "OL"})
            assert json.loads(p.stdout.readline())["seq"] == 4
        finally:
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
        assert p.returncode == 0 and "Traceback" not in err, err
        assert "board not answering" in err and "board answering again" in err
    # every streamed record is stored once, with the board's epoch and ms
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT seq, epoch, ms FROM records ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4] and all(r[1] for r in rows)


def test_store_api_gap_sorting_and_last(tmp_path):
    with L.LogStore(str(tmp_path / "x.sqlite")) as s:
        s.add("d", 0, [{"seq": n, "epoch": 0, "ms": n, "type": "t", "data": {}} for n in (1, 2, 9, 10)])
        s.add_gap("d", 0, 3, 8, "rotated")
        rows = s.rows("d")
        assert [(r["kind"], r["seq"]) for r in rows] == [("record", 1), ("record", 2), ("gap", 3),
                                                        ("record", 9), ("record", 10)]
        # the newest N records, with the gap that explains the jump before them
        assert [(r["kind"], r["seq"]) for r in s.rows("d", last=2)] == [("gap", 3), ("record", 9),
                                                                        ("record", 10)]
        assert [(r["kind"], r["seq"]) for r in s.rows("d", last=1)] == [("record", 10)]
        assert s.last_seq("d") == 10
        assert s.add("d", 0, [{"seq": 10, "type": "t"}]) == []  # duplicate ignored


def test_a_firmware_without_device_id_is_named_by_board_or_by_device(tmp_path):
    db = str(tmp_path / "logs.sqlite")
    with FakeBoard(device_id=None, board="rp2") as fb:
        code, so, se = invoke(["logs", "--port", fb.port, "--db", db, "--json"])
        assert code == 0 and "no device_id; storing its log as 'rp2'" in " ".join(se.split())
        assert json.loads(so.splitlines()[0])["device"] == "rp2"
        code, so, se = invoke(["logs", "--port", fb.port, "--db", db, "--json", "--device", "shed-pico"])
        assert code == 0 and "note" not in se and json.loads(so.splitlines()[0])["device"] == "shed-pico"
    code, so, _ = invoke(["logs", "--db", db, "--json", "--device", "rp2"])
    assert {json.loads(x)["device"] for x in so.splitlines()} == {"rp2"}
