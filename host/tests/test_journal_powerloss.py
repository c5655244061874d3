"""Power-loss test of the firmware journal: kill the MicroPython process at random instants
while it appends to a littlefs2 image, remount, and check nothing committed was lost or corrupted.

journal_harness.py (run under the real MicroPython unix port) mounts the image at / like the
virtual board, prints every record it recovers, then appends batches, printing `W` before each
flush, `B` on each block program inside it and `C <last>` when flush() returns. Two kinds of kill:
  - SIGKILL after a random number of `B` lines plus a random few hundred microseconds, so most
    kills land inside a flush (littlefs is between block programs or inside one),
  - a torn block program: the harness writes only part of its K-th program (a power cut during a
    flash program), reports `TORN` and waits to be killed.
A third of the SIGKILL runs use --chunked: the harness syncs each segment append in ~100-byte
pieces (a filesystem without atomic appends), so kills leave torn records at the segment tail and
the next mount must cut them (littlefs alone never shows a torn tail).
Each next process is the check of the previous kill: its dump must hold every record reported
committed (or seen in an earlier dump), each field right, in order, with no duplicate, and the
recovered sequence must continue after it. At the end the image is also read with littlefs-python
and decoded with the journal codec under CPython.

Knobs: PS_JOURNAL_KILLS (default 500), PS_JOURNAL_SEED, PS_JOURNAL_BUDGET_S (default 80).
"""
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from powersentinel.paths import use_firmware_lib

use_firmware_lib()
from sentinel.journalread import decode_records  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
HARNESS = os.path.join(HERE, "journal_harness.py")
LIB = os.path.join(REPO, "firmware", "lib")
ROM = os.path.join(REPO, "host", "powersentinel", "virtual", "rom")
SEG_SIZE, MAX_SEGS = 4096, 4  # as in the harness
# Rotation keeps at least MAX_SEGS - 1 full segments: a segment is closed only when the next
# batch (<= 24 records of <= 84 bytes) does not fit, so each holds >= (4096 - 2016) / 84 records.
MIN_KEEP = (MAX_SEGS - 1) * ((SEG_SIZE - 24 * 84) // 84)


def _micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else (shutil.which("micropython") or "")


class Harness:
    """One harness process with a line reader that waits on the pipe with a deadline."""

    def __init__(self, img, seed, *extra):
        self.p = subprocess.Popen(
            [_micropython(), HARNESS, img, LIB, ROM, str(seed), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.p.stdout is not None
        self.out = self.p.stdout
        self.buf = b""
        self.lines = []

    def line(self, deadline):
        """Next stdout line, or None at EOF; fails the test at the deadline."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail("harness silent past its deadline; last lines: %r" % self.lines[-5:])
            r, _, _ = select.select([self.out], [], [], left)
            if r:
                chunk = os.read(self.out.fileno(), 65536)
                if not chunk:
                    if self.buf:
                        break
                    return None
                self.buf += chunk
        if b"\n" in self.buf:
            ln, self.buf = self.buf.split(b"\n", 1)
        else:
            ln, self.buf = self.buf, b""
        s = ln.decode()
        self.lines.append(s)
        del self.lines[:-20]
        return s

    def kill(self):
        try:
            os.kill(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait(timeout=10)

    def drain(self, deadline):
        """The lines still in the pipe after the process died."""
        out = []
        while True:
            s = self.line(deadline)
            if s is None:
                return out
            out.append(s)

    def stderr(self):
        """What the harness wrote to stderr (for failure messages, once it has died)."""
        assert self.p.stderr is not None
        return self.p.stderr.read().decode()[-2000:]

    def close(self):
        for s in (self.p.stdin, self.p.stdout, self.p.stderr):
            if s is not None:
                s.close()


def expected(seq):
    return ("test", {"s": seq, "p": "x" * (seq % 41)}, 3 * seq, 7 * seq)


class Checker:
    def __init__(self):
        self.durable = 0  # highest seq reported committed or seen on flash
        self.records_checked = 0
        self.dumps = 0
        self.torn_tails = 0  # remounts where the journal cut a torn tail

    def dump(self, h, deadline):
        """Read a harness's recovery dump up to READY; check it. Returns the seqs read."""
        s = h.line(deadline)
        assert s is not None and not s.startswith("MOUNTFAIL"), \
            "filesystem did not mount: %r / %s" % (s, h.stderr())
        assert s.startswith("F "), s
        _, first, last, nxt, recovered, _nseg = s.split()
        self.torn_tails += recovered != "0"
        seqs = []
        while True:
            s = h.line(deadline)
            assert s is not None, "harness died during its dump: %s" % h.stderr()
            if s.startswith("READY"):
                ready = int(s.split()[1])
                break
            assert s.startswith("R "), s
            _, seq, epoch, ms, typ, data = s.split(" ", 5)
            seq = int(seq)
            assert (typ, json.loads(data), int(epoch), int(ms)) == expected(seq), s
            assert not seqs or seq == seqs[-1] + 1, "gap or disorder: %d after %d" % (
                seq, seqs[-1])
            seqs.append(seq)
        self.dumps += 1
        self.records_checked += len(seqs)
        if self.durable:
            assert seqs, "all records lost (committed up to %d)" % self.durable
            assert seqs[-1] >= self.durable, "committed records lost: last %d < committed %d" % (
                seqs[-1], self.durable)
            if self.durable >= MIN_KEEP:
                assert seqs[0] <= self.durable - MIN_KEEP + 1, \
                    "rotation dropped too much: first %d, committed %d" % (seqs[0], self.durable)
        if seqs:
            assert (int(first), int(last)) == (seqs[0], seqs[-1])
            assert ready > seqs[-1], "sequence does not continue: next %d, last %d" % (
                ready, seqs[-1])
            self.durable = max(self.durable, seqs[-1])
        assert int(nxt) == ready
        return seqs

    def progress(self, s):
        """Track one line of the append phase; True if it opens a flush."""
        if s.startswith("C "):
            self.durable = max(self.durable, int(s.split()[1]))
        elif s.startswith("FLUSHFAIL"):
            pytest.fail(s)
        return s.startswith("W ")


def test_journal_survives_power_loss(tmp_path, capsys):
    mp = _micropython()
    if not mp:
        pytest.skip("micropython not installed")
    kills_wanted = int(os.environ.get("PS_JOURNAL_KILLS", "500"))
    budget = float(os.environ.get("PS_JOURNAL_BUDGET_S", "80"))
    seed = int(os.environ.get("PS_JOURNAL_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    img = str(tmp_path / "flash.img")
    with open(img, "wb") as f:
        f.truncate(2 * 1024 * 1024)

    chk = Checker()
    kills = torn = in_flush = flushes = chunked = 0
    t_start = time.monotonic()
    first = True
    while kills < kills_wanted and time.monotonic() - t_start < budget:
        deadline = time.monotonic() + 20
        tear = not first and rng.random() < 0.25
        extra = ["--mkfs"] if first else []
        if tear:
            extra += ["--torn", str(rng.randint(1, 150)), "%.3f" % rng.random()]
        elif rng.random() < 0.33:
            extra.append("--chunked")
            chunked += 1
        h = Harness(img, rng.randrange(1 << 30), *extra)
        try:
            chk.dump(h, deadline)
            if tear:
                while True:
                    s = h.line(deadline)
                    assert s is not None, "harness ended: %s" % h.stderr()
                    if s == "TORN":  # always inside a flush: the program is a littlefs one
                        break
                    flushes += chk.progress(s)
                torn += 1
            else:
                target = rng.randint(1, 160)
                seen = 0
                while seen < target:
                    s = h.line(deadline)
                    assert s is not None, "harness ended: %s" % h.stderr()
                    seen += s == "B"
                    flushes += chk.progress(s)
                delay = rng.choice((0, rng.uniform(0, 0.0004)))
                if delay:
                    time.sleep(delay)  # a random instant after the chosen block program
            h.kill()
            kills += 1
            # lines written before the kill are facts: a C among them was committed
            for s in h.drain(deadline):
                flushes += chk.progress(s)
            if not tear:
                # the kill landed inside a flush if the last W has no C after it
                last_wc = [x for x in h.lines if x[:2] in ("W ", "C ")]
                in_flush += bool(last_wc) and last_wc[-1].startswith("W ")
        finally:
            if h.p.poll() is None:
                h.kill()
            h.close()
        first = False

    # final remount, then read the same image independently under CPython
    h = Harness(img, 0, "--check")
    try:
        final = chk.dump(h, time.monotonic() + 20)
        assert h.p.wait(timeout=10) == 0
    finally:
        h.close()
    cpython_checked = _cpython_decode_matches(img, final)
    elapsed = time.monotonic() - t_start

    summary = ("journal power-loss: seed %d, %d kills (%d SIGKILL of which %d inside a flush "
               "and %d with chunked appends, %d torn block programs), %d flushes started, "
               "%d remounts checked, %d records checked (%d with a torn tail cut), "
               "%d committed seqs, %d records re-decoded under CPython, %.1f s"
               % (seed, kills, kills - torn, in_flush, chunked, torn, flushes, chk.dumps,
                  chk.records_checked, chk.torn_tails, chk.durable, cpython_checked, elapsed))
    with capsys.disabled():
        print("\n" + summary)
    out = os.environ.get("PS_JOURNAL_SUMMARY")
    if out:
        with open(out, "w") as f:
            f.write(summary + "\n")
    assert kills >= min(kills_wanted, 200), "too few kills within the time budget: " + summary
    assert in_flush + torn >= kills // 3, "kills did not land inside writes: " + summary
    if chunked >= 20:
        assert chk.torn_tails > 0, "no torn tail was ever recovered: " + summary


def _cpython_decode_matches(img, mp_seqs):
    try:  # optional: littlefs-python reads the image on the host
        from littlefs import LittleFS, UserContext
    except ImportError:
        return 0

    with open(img, "rb") as f:
        data = f.read()
    ctx = UserContext(len(data))
    ctx.buffer[:] = data
    # MicroPython's VfsLfs2 defaults: 32-byte read/prog sizes and lookahead
    fs = LittleFS(context=ctx, block_size=4096, block_count=len(data) // 4096, read_size=32,
                  prog_size=32, lookahead_size=32, mount=True)
    recs = []
    for name in sorted(fs.listdir("/log")):
        with fs.open("/log/" + name, "rb") as f:
            segrecs = decode_records(f.read())
        assert segrecs and segrecs[0][0] == int(name[:8], 16)
        recs += segrecs
    assert [r[0] for r in recs] == mp_seqs
    for r in recs:
        assert (r[3], r[4], r[1], r[2]) == expected(r[0])
    return len(recs)
