"""The delay pair mode adds from an outage's onset to the start of the plan (ON_BATTERY, which
starts grace): a sentinel's own loss counts only once the UPS or the peer corroborates it.

    .venv/bin/python benchmarks/bench_pair_onset.py [--runs 10] [--heartbeat-ms 500]
        [--poll-ms 2000] [--single] [--json FILE]

A virtual pair (real firmware on two MicroPython interpreters, time scale 1; A reads the UPS
over Q1 every --poll-ms, B has no UPS link; the peer link on loopback every --heartbeat-ms),
grace one hour (the plan never runs). Each run: mains off on both boards (one call), wait for
both to be ON_BATTERY, mains on, wait for both to be ONLINE again. Per run and board, from its
journal (one clock, the board's own): ms from its own `mains_lost` record (its sensor's
detection) to its `state` record entering ON_BATTERY. In single mode that is the next control
step (<= 100 ms); the rest is the wait for corroboration: the peer's next frame saying lost
(at most a heartbeat after its own detection) or the UPS's next poll saying OB (A only), the
earlier of the two. --single measures the same on one board with the same config and no
pair (the baseline).
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if os.path.join(REPO, "host") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "host"))
sys.path.insert(0, HERE)

import reliability_common as rc  # noqa: E402
from powersentinel import logs, virtual  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import pair as vpair  # noqa: E402
from powersentinel.virtual import wait_for  # noqa: E402


def records(link, kinds, frm):
    return logs.read(link, kinds, frm)


def last_seq(link):
    return link.request("log_read", from_seq=0, max=1)["last"] or 0


def delay(recs):
    """ms from the last mains_lost to the ON_BATTERY after it, or None."""
    onb = [r for r in recs if r["type"] == "state" and r["data"]["to"] == "ON_BATTERY"]
    if not onb:
        return None
    lost = [r for r in recs if r["type"] == "mains_lost" and r["seq"] < onb[-1]["seq"]]
    return onb[-1]["ms"] - lost[-1]["ms"] if lost else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--poll-ms", type=int, default=2000)
    ap.add_argument("--single", action="store_true", help="one board, no pair: the baseline")
    ap.add_argument("--json")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="pair-onset-")
    cfg = rc.write_config(os.path.join(d, "site.json"), rc.make_config(**{
        "ups.link": "q1", "ups.poll_ms": a.poll_ms, "policy.grace_s": 3600,
        "policy.return_stable_ms": 300}))
    if a.single:
        info = virtual.start(os.path.join(d, "single"), config=cfg)
        serials, sides = (info["serial"],), ("single",)
        set_mains = lambda v: virtual.set_wires(os.path.join(d, "single"), {"mains": v})  # noqa
        stop = lambda: virtual.stop(os.path.join(d, "single"))  # noqa: E731
    else:
        meta = vpair.start_pair(d, config=cfg, heartbeat_ms=a.heartbeat_ms,
                                dead_ms=6 * a.heartbeat_ms)
        serials, sides = (meta["a"]["board"]["serial"], meta["b"]["board"]["serial"]), ("A", "B")
        set_mains = lambda v: vpair.set_pair_wires(d, {"mains": v})  # noqa: E731
        stop = lambda: vpair.stop_pair(d)  # noqa: E731
    out = {"heartbeat_ms": a.heartbeat_ms, "poll_ms": a.poll_ms, "single": a.single, "runs": []}
    try:
        with contextlib.ExitStack() as stack:
            links = {s: stack.enter_context(Link(p)) for s, p in zip(sides, serials)}
            for lk in links.values():
                if not a.single:
                    wait_for(lambda: (lk.request("status").get("pair") or {}).get("state")
                             == "ALIVE", 30, "the pair to see each other")
            for n in range(a.runs):
                seqs = {s: last_seq(lk) for s, lk in links.items()}
                set_mains("off")
                for lk in links.values():
                    wait_for(lambda: lk.request("status")["state"]["name"] == "ON_BATTERY",
                             15, "ON_BATTERY")
                row = {}
                for s, lk in links.items():
                    # the records are critical (written at once); read them through the journal
                    row[s] = wait_for(lambda: delay(records(lk, ("mains_lost", "state"),
                                                            seqs[s] + 1)), 5, "the records")
                out["runs"].append(row)
                print("run %d: %s" % (n + 1, ", ".join("%s %d ms" % kv for kv in row.items())))
                set_mains("on")
                for lk in links.values():
                    wait_for(lambda: lk.request("status")["state"]["name"] == "ONLINE", 20,
                             "ONLINE")
                time.sleep(0.5 + (n % 5) * 0.097)  # onsets at varied heartbeat phases
    finally:
        stop()
    for s in sides:
        v = [r[s] for r in out["runs"]]
        out[s] = {"median": statistics.median(v), "max": max(v), "min": min(v)}
        print("%s: own detection -> ON_BATTERY median %d ms, min %d, max %d (heartbeat %d ms, "
              "UPS poll %d ms)" % (s, out[s]["median"], out[s]["min"], out[s]["max"],
                                   a.heartbeat_ms, a.poll_ms))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
