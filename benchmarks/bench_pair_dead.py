"""The time from a peer's death (a power cut of the board) to "redundancy lost" shown by the
survivor, on its console status and over NUT.

    .venv/bin/python benchmarks/bench_pair_dead.py [--runs 10] [--heartbeat-ms 500]
        [--dead-ms 3000] [--json FILE]

A virtual pair (real firmware on two MicroPython interpreters, time scale 1, peer link on
loopback). Each run: both boards see each other ALIVE; board B's power is cut
(`virtual.power(dir, False)`: its interpreter is killed and nothing restarts it); A is polled
every 20 ms, its console status until `pair.state` is DEAD and its NUT server (a plain NUT
client, GET VAR) until `ups.status` has ALARM and `ups.alarm` says "redundancy lost"; both
delays are counted from the moment the power-cut command returned (host clock). B's power
comes back and the next run waits for ALIVE again. A declares B dead dead_ms after B's last
frame, which went out up to one heartbeat before the cut: expect dead_ms - heartbeat to
dead_ms, plus A's 50 ms link tick and this poll (a console status request takes ~70 ms, so
the NUT check, asked second, often sees it first).
"""
import argparse
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
from powersentinel import nutreal, virtual  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.virtual import pair as vpair  # noqa: E402
from powersentinel.virtual import wait_for  # noqa: E402

POLL_S = 0.02


def nut_alarm(nut):
    """True when the NUT server at nut ("host:port") serves ALARM and "redundancy lost"."""
    host, port = nut.rsplit(":", 1)
    try:
        with nutreal.NutClient(host, int(port), timeout=1.0) as c:
            st = c.cmd("GET VAR %s ups.status" % rc.TIER)[0]
            al = c.cmd("GET VAR %s ups.alarm" % rc.TIER)[0]
    except (OSError, EOFError):
        return False
    return "ALARM" in st and "redundancy lost" in al


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--dead-ms", type=int, default=3000)
    ap.add_argument("--json")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="pair-dead-")
    cfg = rc.write_config(os.path.join(d, "site.json"), rc.make_config(**{"ups.link": "q1"}))
    meta = vpair.start_pair(d, config=cfg, heartbeat_ms=a.heartbeat_ms, dead_ms=a.dead_ms)
    b_dir, nut_a = meta["b"]["dir"], meta["a"]["board"]["nut"]
    out = {"heartbeat_ms": a.heartbeat_ms, "dead_ms": a.dead_ms, "runs": []}
    try:
        with Link(meta["a"]["board"]["serial"]) as la:
            def peer():
                return (la.request("status").get("pair") or {}).get("state")
            for n in range(a.runs):
                wait_for(lambda: peer() == "ALIVE", 60, "A to see B alive")
                time.sleep(0.3 + (n % 5) * 0.113)  # deaths at varied heartbeat phases
                virtual.power(b_dir, False)
                t0 = time.monotonic()
                console = nut = None
                while console is None or nut is None:
                    now = time.monotonic() - t0
                    if now > a.dead_ms / 1000 + 10:
                        raise SystemExit("no redundancy lost after %.1f s" % now)
                    if console is None and peer() == "DEAD":
                        console = time.monotonic() - t0
                    if nut is None and nut_alarm(nut_a):
                        nut = time.monotonic() - t0
                    time.sleep(POLL_S)
                row = {"console_ms": round(console * 1000), "nut_ms": round(nut * 1000)}
                out["runs"].append(row)
                print("run %d: console %d ms, NUT %d ms" % (n + 1, row["console_ms"],
                                                            row["nut_ms"]))
                virtual.power(b_dir, True)
    finally:
        vpair.stop_pair(d)
    for k in ("console_ms", "nut_ms"):
        v = [r[k] for r in out["runs"]]
        out[k] = {"median": statistics.median(v), "min": min(v), "max": max(v)}
        print("B's power cut -> redundancy lost on A's %s: median %d ms, min %d, max %d "
              "(heartbeat %d ms, dead_ms %d, %d runs)" % (
                  k.split("_")[0], out[k]["median"], out[k]["min"], out[k]["max"],
                  a.heartbeat_ms, a.dead_ms, len(v)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
