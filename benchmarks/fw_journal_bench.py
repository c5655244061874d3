# Flash wear of the journal per event, by batch size, on the virtual board's littlefs2 image
# (2 MiB, 4 KiB blocks) through the FileBlockDev counters (block erases and programs).
# Run under MicroPython from the repo root:
#   .venv/bin/micropython benchmarks/fw_journal_bench.py [N_EVENTS] [--out FILE]
# Prints a markdown table (and writes it to FILE with --out).
import os
import sys
import time

import vfs

sys.path.insert(0, "firmware/lib")
sys.path.insert(0, "host/powersentinel/virtual/rom")
from blockdev import FileBlockDev  # noqa: E402

from sentinel.journal import Journal  # noqa: E402
from sentinel import journalread  # noqa: E402

IMG = "/tmp/ps_journal_bench.img"
MNT = "/flash"


def run(batch, n_events):
    blank = bytes(4096)
    with open(IMG, "wb") as f:
        for _ in range(512):  # 2 MiB
            f.write(blank)
    f = open(IMG, "r+b")
    bd = FileBlockDev(f)
    vfs.VfsLfs2.mkfs(bd)
    vfs.mount(vfs.VfsLfs2(bd), MNT)
    try:
        j = Journal(MNT, batch_n=batch)  # default rotation: 8 x 32 KiB
        e0, w0 = bd.erases, bd.writes
        t0 = time.ticks_us()
        for k in range(n_events):
            # a typical event: a mains or tier record with a few numbers
            j.append("dip", {"v": 180.5 + k % 7, "dur_ms": 120 + k % 50, "ph": "L1"},
                     now_ms=k * 100, epoch=1700000000 + k)
        j.flush()
        us = time.ticks_diff(time.ticks_us(), t0)
        erases, writes = bd.erases - e0, bd.writes - w0
        segs = j.segments()
        rec_bytes = sum(s[1] for s in segs) / (j.last_seq() - journalread.first_seq(j) + 1)
        assert j.last_seq() == n_events
        return {"batch": batch, "events": n_events, "erases": erases, "programs": writes,
                "erase_per_event": erases / n_events, "prog_per_event": writes / n_events,
                "us_per_event": us / n_events, "segments": len(segs), "first": journalread.first_seq(j),
                "rec_bytes": rec_bytes}
    finally:
        vfs.umount(MNT)
        f.close()
        os.remove(IMG)


def run_captures(n_caps, size):
    blank = bytes(4096)
    with open(IMG, "wb") as f:
        for _ in range(512):
            f.write(blank)
    f = open(IMG, "r+b")
    bd = FileBlockDev(f)
    vfs.VfsLfs2.mkfs(bd)
    vfs.mount(vfs.VfsLfs2(bd), MNT)
    try:
        j = Journal(MNT)
        data = bytes(range(256)) * (size // 256)
        e0, w0 = bd.erases, bd.writes
        for k in range(n_caps):
            j.save_capture({"rate": 4000, "pre_ms": 100, "k": k}, data, now_ms=k)
        return (bd.erases - e0) / n_caps, (bd.writes - w0) / n_caps, len(j.list_captures())
    finally:
        vfs.umount(MNT)
        f.close()
        os.remove(IMG)


def main(argv):
    n = 6000  # ~330 KB of records: past the 8 x 32 KiB cap, so rotation deletes
    out = None
    i = 0
    while i < len(argv):
        if argv[i] == "--out":
            out = argv[i + 1]
            i += 1
        else:
            n = int(argv[i])
        i += 1
    lines = [
        "| batch | events | erases | programs | erases/event | programs/event "
        "| us/event (unix port) | segments kept | oldest seq kept |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rb = 0
    for b in (1, 8, 32):
        r = run(b, n)
        rb = r["rec_bytes"]
        lines.append("| %d | %d | %d | %d | %.3f | %.3f | %.0f | %d | %d |" % (
            r["batch"], r["events"], r["erases"], r["programs"], r["erase_per_event"],
            r["prog_per_event"], r["us_per_event"], r["segments"], r["first"]))
    lines.append("")
    lines.append("Record size on flash: %.1f bytes (21 bytes framing + JSON payload)." % rb)
    size = 4096
    e, w, kept = run_captures(40, size)
    lines.append("")
    lines.append("Captures of %d bytes (500 ms of int16 at 4 kHz), 40 saved, %d kept by the caps: "
                 "%.1f erases and %.1f programs per capture (file + its journal record)."
                 % (size, kept, e, w))
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


main(sys.argv[1:])
