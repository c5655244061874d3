"""Soak: the firmware on the virtual board under steady load for a long time.

Workload: `--clients` upsmon-style NUT clients (login, GET VAR ups.status once a second), one
real `upsc` every 10 s, mains flickers (mains off for 20..200 ms, every 1.5..4 s), and the log
topped up offline before the start so that it rotates during the run (the flickers' records
then close segments and delete the oldest). Checked:
  - heap flat: gc'd heap in use (status heap.alloc, after gc.collect), lowest value in the
    last 15 % of the run vs the lowest at 25..40 % (after the bounded histories filled up);
  - no watchdog (or any) reset: boot count unchanged;
  - no missed event: one mains_lost record per flicker, every poll answered;
  - the log rotated (first seq moved on) and stayed readable; it is read every 30 s as the run
    goes, and no record was rotated away before it was read.

    .venv/bin/python benchmarks/reliability_soak.py --duration 3600 --out build/reliability_soak.json
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
import reliability_powerloss as pl  # noqa: E402  # pyright: ignore[reportMissingImports]
from reliability_common import virtual  # noqa: E402  # pyright: ignore  # pyright: ignore[reportMissingImports]


class Poller(threading.Thread):
    def __init__(self, b, period=1.0):
        super().__init__(daemon=True)
        self.b, self.period = b, period
        self.ok = 0
        self.fail = []
        self.max_lat = 0.0
        self.stop = False

    def run(self):
        c = None
        while not self.stop:
            try:
                if c is None:
                    c = self.b.nut_client(timeout=5)
                    r = c.login("monuser", rc.USERS["monuser"][0])
                    if r[-1] != "OK":
                        self.fail.append("login %r" % r)
                t = time.monotonic()
                r = c.cmd("GET VAR %s ups.status" % rc.TIER)
                lat = time.monotonic() - t
                self.max_lat = max(self.max_lat, lat)
                if r.startswith("VAR "):
                    self.ok += 1
                else:
                    self.fail.append(r)
                time.sleep(max(0.0, self.period - lat))
            except (OSError, EOFError) as e:
                self.fail.append(repr(e))
                if c is not None:
                    c.close()
                c = None
                time.sleep(1.0)
        if c is not None:
            c.close()


def run(duration_s, clients=4, seed=None, workdir=None, log=print):
    seed, rng = rc.rng(seed)
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="rel-soak-")
    d = os.path.join(workdir, "board")
    b = rc.Board(d, rc.make_config(**{"policy.grace_s": 3600, "nut.max_conns": 16}))
    out = {"seed": seed, "duration_s": duration_s, "clients": clients}
    pollers = []
    try:
        virtual.stop(d)
        pl.topup_log(os.path.join(d, "flash.img"), fill_to=pl.SEG_SIZE - 3000)
        virtual.start(d)
        b.refresh()
        b.wait_serving(15)
        lk = rc.link(b)
        boots0 = b.boots()
        first0 = lk.request("log_read", from_seq=0, max=1)["first"]
        last0 = lk.request("log_read", from_seq=0, max=1)["last"]
        pollers = [Poller(b) for _ in range(clients)]
        for p in pollers:
            p.start()
        heap = []     # (t, alloc)
        # The log is read as the run goes (as `powersentinel logs` would), not once at the end:
        # in an hour the journal rotates away more than the run writes at its start.
        got = {}      # seq -> record type, every record written since the start
        gaps = []     # (expected seq, oldest on the board): records rotated away before read
        nxt = [last0 + 1]

        def drain():
            recs, first, _ = rc.read_log(lk, nxt[0])
            if first is not None and first > nxt[0] and (not recs or recs[0]["seq"] > nxt[0]):
                gaps.append((nxt[0], first))
            for r in recs:
                if r["seq"] < nxt[0] or r["seq"] in got:
                    gaps.append(("out of order", r["seq"]))
                got[r["seq"]] = r["type"]
                nxt[0] = r["seq"] + 1
        flickers = 0
        upsc_ok = upsc_fail = 0
        t0 = time.monotonic()
        next_drain = t0 + 30
        next_flicker = t0 + rng.uniform(1.5, 4.0)
        next_upsc = t0 + 5
        next_heap = t0
        while time.monotonic() - t0 < duration_s:
            now = time.monotonic()
            if now >= next_flicker:
                b.wires({"mains": "off"})
                time.sleep(rng.uniform(0.02, 0.2))
                b.wires({"mains": "on"})
                flickers += 1
                next_flicker = time.monotonic() + rng.uniform(1.5, 4.0)
            if now >= next_upsc:
                r = subprocess.run(["upsc", "%s@%s:%d" % ((rc.TIER,) + b.nut), "ups.status"],
                                   capture_output=True, text=True, timeout=15)
                if r.returncode == 0:
                    upsc_ok += 1
                else:
                    upsc_fail += 1
                next_upsc = now + 10
            if now >= next_heap:
                heap.append((now - t0, lk.request("status", timeout=5)["heap"]["alloc"]))
                next_heap = now + max(1.0, duration_s / 600)
            if now >= next_drain:
                drain()
                next_drain = now + 30
            lk.poll_events()
            time.sleep(0.05)
        time.sleep(3.0)  # the last flicker's records (return_stable_ms 2 s) are written
        for p in pollers:
            p.stop = True
        for p in pollers:
            p.join(10)
        drain()
        first = lk.request("log_read", from_seq=0, max=1)["first"]
        lost = [q for q, t in got.items() if t == "mains_lost"]
        # after a warm-up (the status keeps the last 8 mains events, the state machine its
        # history: both fill during the first flickers), the lowest gc'd heap of a window at
        # 25..40 % of the run against the lowest of the last 15 %
        n = len(heap)
        h_first = min(a for _, a in heap[n // 4:max(n // 4 + 1, (2 * n) // 5)])
        h_last = min(a for _, a in heap[-max(1, (3 * n) // 20):])
        st = lk.request("status")
        lk.close()
        out.update({
            "flickers": flickers, "mains_lost_records": len(lost),
            "log_records_written": len(got), "log_first_before": first0, "log_first_after": first,
            "log_rotated": first is not None and first0 is not None and first > first0,
            "log_in_order": not gaps, "log_gaps": gaps[:10],
            "polls_ok": sum(p.ok for p in pollers),
            "poll_failures": [f for p in pollers for f in p.fail][:20],
            "poll_max_latency_ms": round(1000 * max(p.max_lat for p in pollers), 1),
            "upsc_ok": upsc_ok, "upsc_fail": upsc_fail,
            "heap_alloc_first": h_first, "heap_alloc_last": h_last,
            "heap_growth_bytes": h_last - h_first, "heap_samples": len(heap),
            "heap_free_last": st["heap"]["free"],
            "resets": b.boots() - boots0, "reset_cause": b.info()["reset_cause"],
            "state_end": st["state"]["name"],
        })
        return out
    finally:
        for p in pollers:
            p.stop = True
        b.stop()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def check(s, heap_tolerance=4096):
    """The soak's pass criteria; returns the list of failures."""
    bad = []
    if s["resets"]:
        bad.append("the board reset %d times (%s)" % (s["resets"], s["reset_cause"]))
    if s["heap_growth_bytes"] > heap_tolerance:
        bad.append("heap grew by %d bytes" % s["heap_growth_bytes"])
    if s["mains_lost_records"] != s["flickers"]:
        bad.append("%d flickers but %d mains_lost records" % (s["flickers"],
                                                             s["mains_lost_records"]))
    if s["poll_failures"]:
        bad.append("poll failures: %r" % s["poll_failures"][:5])
    if s["upsc_fail"]:
        bad.append("upsc failed %d times" % s["upsc_fail"])
    if not s["log_in_order"]:
        bad.append("log records missed (rotated away unread) or out of order: %r" % s["log_gaps"])
    if not s["log_rotated"]:
        bad.append("the log did not rotate")
    if s["state_end"] != "ONLINE":
        bad.append("ended in state %s" % s["state_end"])
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=3600)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    s = run(a.duration, a.clients, a.seed)
    s["failures"] = check(s)
    print(json.dumps(s, indent=1))
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(s, f, indent=1)
    return 1 if s["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
