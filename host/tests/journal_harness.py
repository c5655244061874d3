# MicroPython script driven by test_journal_powerloss.py: mounts a littlefs2 image at / the way
# the virtual board does, dumps what the journal recovers, then appends batches until killed.
#
#   micropython journal_harness.py IMAGE LIB_DIR ROM_DIR SEED [--mkfs] [--check]
#                                  [--torn K FRAC] [--chunked]
# --chunked: segment appends go to flash in ~100-byte pieces, each synced (a filesystem without
# atomic appends), so kills leave torn records at segment tails for the journal's recovery.
# stdout protocol (one line each, written before the next step starts):
#   MOUNTFAIL <err>                 the image did not mount (never reformatted here)
#   F <first> <last> <next> <recovered> <segments>
#   R <seq> <epoch> <ms> <type> <json data>    every record read back, oldest first
#   READY <next>
#   W <first> <last>                a flush of seqs first..last starts
#   B                               the block device programs a block (littlefs inside a flush)
#   C <last>                        flush() returned: every seq <= last is committed
#   TORN                            (--torn) block program K was cut after FRAC of its bytes;
#                                   the harness then blocks until it is killed
# Record i carries data {"s": i, "p": "x" * (i % 41)}, epoch 3*i and ms 7*i, so the test can
# check every field of every record it reads back.
import json
import os
import sys

import vfs

argv = sys.argv[1:]
IMG, LIB, ROM, SEED = argv[0], argv[1], argv[2], int(argv[3])
MKFS = "--mkfs" in argv
CHECK = "--check" in argv
CHUNKED = "--chunked" in argv
TORN_K = -1
TORN_FRAC = 0.0
if "--torn" in argv:
    k = argv.index("--torn")
    TORN_K = int(argv[k + 1])
    TORN_FRAC = float(argv[k + 2])
SEG_SIZE = 4096
MAX_SEGS = 4

sys.path.insert(0, LIB)
sys.path.insert(0, ROM)
from blockdev import FileBlockDev  # noqa: E402

import sentinel.journal as jmod  # noqa: E402
from sentinel.journal import Journal  # noqa: E402
from sentinel import journalread as JR  # noqa: E402

out = sys.stdout


class TracingBlockDev(FileBlockDev):
    """Reports each block program (so kills can be aimed inside a flush) and, with --torn,
    cuts one program short, as a power cut during a flash program would."""

    armed = False
    n = 0

    def writeblocks(self, n, buf, off=None):
        if self.armed:
            self.n += 1
            if self.n == TORN_K:
                cut = int(len(buf) * TORN_FRAC)
                self.f.seek(n * self.bs + (off or 0))
                self.f.write(bytes(buf)[:cut])
                self.f.flush()
                out.write("TORN\n")
                sys.stdin.read(1)  # wait for the SIGKILL (EOF only if the test died)
                sys.exit(9)
            out.write("B\n")
        FileBlockDev.writeblocks(self, n, buf, off)


# Seeded xorshift: MicroPython's random is not on every build, and the runs must be repeatable.
_state = [SEED * 2654435761 & 0xFFFFFFFF or 1]


def rnd(n):
    x = _state[0]
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    _state[0] = x
    return x % n


class ChunkedAppend:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()

    def write(self, data):
        mv = memoryview(data)
        for i in range(0, len(mv), 100):
            self.f.write(mv[i:i + 100])
            self.f.flush()  # littlefs sync: this piece is now on flash whatever follows


_open = open


def chunked_open(path, mode="r"):
    f = _open(path, mode)
    return ChunkedAppend(f) if mode == "ab" else f


if CHUNKED:
    jmod.open = chunked_open  # the journal module's global `open` shadows the builtin


f = open(IMG, "r+b")  # before / is replaced by the image
bd = TracingBlockDev(f)
if MKFS:
    vfs.VfsLfs2.mkfs(bd)
try:
    fs = vfs.VfsLfs2(bd)
    vfs.umount("/")
    vfs.mount(fs, "/")
    os.chdir("/")
except OSError as e:
    out.write("MOUNTFAIL %r\n" % (e,))
    sys.exit(3)

j = Journal("/", seg_size=SEG_SIZE, max_segments=MAX_SEGS, batch_n=1000, batch_bytes=4096)
out.write("F %s %s %d %d %d\n" % (JR.first_seq(j), j.last_seq(), j.next_seq(), j.recovered,
                                   len(j.segments())))
seq = 0
while True:
    page = JR.read(j, seq + 1, 32)
    if not page:
        break
    for r in page:
        out.write("R %d %d %d %s %s\n" % (r[0], r[1], r[2], r[3], json.dumps(r[4])))
    seq = page[-1][0]
out.write("READY %d\n" % j.next_seq())
if CHECK:
    sys.exit(0)

bd.armed = True
while True:
    nb = 1 + rnd(24)
    first = j.next_seq()
    for _ in range(nb):
        s = j.next_seq()
        j.append("test", {"s": s, "p": "x" * (s % 41)}, now_ms=7 * s, epoch=3 * s)
    out.write("W %d %d\n" % (first, j.next_seq() - 1))
    if j.flush() != nb:
        out.write("FLUSHFAIL %r\n" % (j.stats(),))
        sys.exit(4)
    out.write("C %d\n" % (j.next_seq() - 1))
