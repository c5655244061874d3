"""The firmware's event-loop latency budget on the virtual board, against its ADC ring.

    .venv/bin/python benchmarks/latency_bench.py [--duration 600] [--outages 3] [--json F]
                                                 [--features alerts,web]

A fresh virtual board (the real MicroPython unix port running the deployed firmware through the
same hal/_mcu.py board code as a Pico) runs the heap benchmark's site: Q1 UPS link polled every
second, 3 tiers x 2 hosts, 2 NUT users. For `duration` seconds:
  * 8 NUT clients log in and poll `GET VAR <tier> ups.status` every second (one also `LIST VAR`,
    one `GET DESC`), as upsmon does;
  * the console is busy: `status` every 0.5 s, `log_read` and `capture_list`/`capture_read` every
    few seconds, as `powersentinel monitor` and `logs` do;
  * `outages` mains cuts of 4 s each (fast loss trigger, waveform capture, journal writes).
With `--features` the optional parts named (heap_bench.FEATURES: `alerts` sends every alert to
real receivers, `web` fetches the status page and /metrics back to back) run too, with their
tasks inside the same measurement; the alerts outbox also reports its own longest synchronous
step (`alerts.step_max_ms`).
The firmware measures its own event-loop stalls (a task that sleeps 10 ms and records how late it
wakes) and counts the ADC blocks it lost (ring overruns). Reported: the worst stall, the ADC
ring's span, the margin between them, and the blocks lost. Exit status 1 when any block was lost
or the firmware stopped answering.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from heap_bench import (COMBOS, FEATURES, N_CLIENTS, TIERS, USERS, NutClient,  # noqa: E402
                        expand, make_config)
from powersentinel import virtual  # noqa: E402
from powersentinel.link import Link  # noqa: E402


def _fields(st):
    loop = st.get("loop") or {}
    adc = st.get("adc") or {}
    return loop.get("max_stall_ms"), adc.get("overruns"), adc.get("ring_ms")


def scenario(duration=600.0, outages=3, workdir=None, log=None, features=()):
    """Run on a fresh board; returns a dict: ok, error, max_stall_ms, ring_ms, margin,
    overruns, polls, status_reads, captures, gaps, features, loads, alerts (the outbox's
    status at the end, with `alerts` among the features)."""
    say = log or (lambda *a: None)
    own = workdir is None
    base = workdir or tempfile.mkdtemp(prefix="latbench-")
    d = os.path.join(base, "board")
    cfg_path = os.path.join(base, "config.json")
    names = expand(features)
    parts = {f: FEATURES[f]() for f in names}
    cfg = make_config()
    for p in parts.values():
        p.configure(cfg, base)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    res = {"ok": False, "error": None, "duration_s": duration, "polls": 0, "status_reads": 0,
           "log_reads": 0, "capture_reads": 0, "mains_lost_seen": 0,
           "features": names, "loads": {}}
    clients = []
    try:
        for p in parts.values():
            p.up()
        meta = virtual.start(d, config=cfg_path, timeout=60)
        say("board up (%s)" % meta["serial"])
        pw = dict((u, p) for u, p, _, _ in USERS)
        for i in range(N_CLIENTS):
            user = USERS[i % 2][0]
            extra = ["LIST VAR %s" % TIERS[0]] if i == 0 else []
            if i == 1:
                extra.append("GET DESC %s ups.status" % TIERS[0])
            clients.append(NutClient(meta["nut"], user, pw[user], TIERS[i % 3], extra))
        for p in parts.values():
            p.start()
        # outage k runs from cuts[k] for 4 s, spread over the run after a quiet first tenth
        cuts = [duration * (0.1 + 0.8 * (k + 0.5) / outages) for k in range(outages)]
        with Link(meta["serial"]) as link:
            t0 = time.monotonic()
            next_poll = next_console = next_report = 0.0
            mains_off_until = None
            last_seq = 0
            st = {}
            while True:
                t = time.monotonic() - t0
                if t >= duration:
                    break
                if cuts and t >= cuts[0] and mains_off_until is None:
                    cuts.pop(0)
                    virtual.set_wires(d, {"mains": "off"})
                    mains_off_until = t + 4.0
                elif mains_off_until is not None and t >= mains_off_until:
                    virtual.set_wires(d, {"mains": "on"})
                    mains_off_until = None
                if t >= next_poll:
                    next_poll += 1.0
                    for c in clients:
                        c.poll()
                        res["polls"] += 1
                st = link.request("status")
                res["status_reads"] += 1
                if st["mains"]["lost"]:
                    res["mains_lost_seen"] += 1
                if t >= next_console:
                    next_console += 5.0
                    recs = link.request("log_read", from_seq=last_seq + 1, max=32)
                    res["log_reads"] += 1
                    if recs["records"]:
                        last_seq = recs["records"][-1]["seq"]
                    caps = link.request("capture_list")
                    if caps:
                        link.request("capture_read", capture_id=caps[-1]["id"], offset=0,
                                     length=1536)
                        res["capture_reads"] += 1
                if t >= next_report:
                    next_report += 30.0
                    stall, over, _ = _fields(st)
                    say("%4.0f s: worst stall %s ms, ADC blocks lost %s, NUT polls %d"
                        % (t, stall, over, res["polls"]))
                time.sleep(0.5)
            st = link.request("status")
        for name, p in parts.items():
            p.stop()
            res["loads"][name] = p.counts()
            p.check()
        if "alerts" in st:
            res["alerts"] = st["alerts"]
        stall, over, ring_ms = _fields(st)
        if stall is None or over is None or ring_ms is None:
            raise RuntimeError("the firmware's status has no loop/adc figures: %r"
                               % {k: st.get(k) for k in ("loop", "adc")})
        res.update(max_stall_ms=stall, overruns=over, ring_ms=ring_ms,
                   margin=round(ring_ms / stall, 1) if stall else None,
                   gaps=(st.get("adc") or {}).get("gaps"))
        res["ok"] = over == 0
        if over:
            res["error"] = "%d ADC blocks lost" % over
    except Exception as e:  # the figures say how far it got; the error says why it stopped
        res["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        for p in parts.values():
            p.stop()
        for c in clients:
            c.close()
        virtual.stop(d)
        if own:
            shutil.rmtree(base, ignore_errors=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    ap.add_argument("--outages", type=int, default=3, help="mains cuts during the run")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--features", default="",
                    help="optional parts to enable, comma separated: %s"
                    % ", ".join(list(FEATURES) + list(COMBOS)))
    a = ap.parse_args(argv)
    features = [f for f in a.features.split(",") if f]
    try:
        expand(features)
    except ValueError as e:
        ap.error(str(e))
    r = scenario(a.duration, a.outages, log=print, features=features)
    print("duration %.0f s: worst loop stall %s ms, ADC ring %s ms, margin x%s, ADC blocks lost "
          "%s, gaps %s, NUT polls %d, status reads %d, capture reads %d -> %s"
          % (r["duration_s"], r.get("max_stall_ms"), r.get("ring_ms"), r.get("margin"),
             r.get("overruns"), r.get("gaps"), r["polls"], r["status_reads"],
             r["capture_reads"], "ok" if r["ok"] else "FAILED"))
    if r.get("alerts"):
        tr = r["alerts"].get("transports", {})
        print("alerts: outbox longest step %s ms, queue depth %s, delivered %s"
              % (r["alerts"].get("step_max_ms"), r["alerts"].get("depth"),
                 ", ".join("%s %s" % (k, v.get("delivered")) for k, v in sorted(tr.items()))))
    for name, ld in r["loads"].items():
        print("%s load: %s" % (name, ld))
    if r["error"]:
        print("error: %s" % r["error"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
