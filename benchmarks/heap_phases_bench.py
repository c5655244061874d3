"""Heap cost of multi-channel mains sensing on the virtual board, against one channel, same run.

    .venv/bin/python benchmarks/heap_phases_bench.py [--heap 128wK] [--duration 20] [--json F]
                                                     [--no-romfs]

Runs benchmarks/heap_bench.py's scenario (realistic site, 8 NUT clients, an outage with a
capture) on fresh virtual boards, once per configuration: mains.channels absent (the single-
channel site as before), three phases L1..L3, feeds A + B, and feeds A + B with the site model
(`2feeds-site`: the first server of each tier on feeds A and B, the second on B alone, so the
feed policy, sentinel/feeds.py, is loaded), and `2feeds-2ups`: that site with one UPS per
feed (ups.feed A, ups.feeds B: sentinel/feedups.py and a second Q1 link), and
`2feeds-2ups-contacts`: that site with feed B's UPS read over dry contacts. It only adds a
`mains.channels` feature (and for 2feeds-2ups the ups keys) to heap_bench's FEATURES table at
run time (heap_bench.py itself is unchanged).
Prints, per configuration, the peak allocation and minimum free heap, and the difference to
the single-channel run.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import heap_bench  # noqa: E402

CONFIGS = {
    "1ch": None,
    "3ph": [{"name": "L1"}, {"name": "L2"}, {"name": "L3"}],
    "2feeds": [{"name": "A"}, {"name": "B"}],
    "2feeds-site": [{"name": "A"}, {"name": "B"}],
    "2feeds-2ups": [{"name": "A"}, {"name": "B"}],
    "2feeds-2ups-contacts": [{"name": "A"}, {"name": "B"}],
}


def _channels(chans, site=False, ups2=None):
    """A heap_bench Feature (a class, as FEATURES holds) setting mains.channels, with site the
    servers' feeds, with ups2 one UPS per feed too: "q1", the second Q1 UPS on the second UART;
    "contacts", feed B's UPS read over dry contacts (lines 3-4, its own debouncing task)."""
    class Channels(heap_bench.Feature):
        def configure(self, cfg, workdir):
            cfg["mains"]["channels"] = chans
            if ups2:
                cfg["ups"]["feed"] = "A"
                cfg["ups"]["feeds"] = [{"feed": "B"} if ups2 == "q1" else
                                       {"feed": "B", "link": "contacts", "contacts": "OB=3;LB=4;"}]
            if site:
                for t in cfg["tiers"]:
                    for j, h in enumerate(t["hosts"]):
                        h["feeds"] = ["A", "B"] if j == 0 else ["B"]
    return Channels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heap", default="128wK")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--json")
    ap.add_argument("--no-romfs", action="store_true")
    ap.add_argument("--configs", default="1ch,3ph,2feeds,2feeds-site")
    a = ap.parse_args()
    out = {}
    for name in a.configs.split(","):
        feats = ()
        if CONFIGS[name] is not None:
            ups2 = name.partition("-2ups")[2]
            heap_bench.FEATURES["ch-" + name] = _channels(
                CONFIGS[name], name.endswith("-site") or "-2ups" in name,
                (ups2[1:] or "q1") if "-2ups" in name else None)
            feats = ("ch-" + name,)
        r = heap_bench.scenario(heap=a.heap, duration=a.duration, romfs=not a.no_romfs,
                                features=feats)
        out[name] = r
        print("%-7s %s peak alloc %s B  min free %s B (%s %%)  captures %s  lost seen %s  %s" % (
            name, "ok    " if r["ok"] else "FAILED", r.get("peak_alloc"), r.get("min_free"),
            r.get("min_free_pct"), r.get("captures"), r.get("mains_lost_seen"),
            r["error"] or ""), flush=True)
    base = out.get("1ch")
    if base and base.get("peak_alloc"):
        for name, r in out.items():
            if name != "1ch" and r.get("peak_alloc"):
                print("%-7s peak alloc %+d B, min free %+d B against 1ch" % (
                    name, r["peak_alloc"] - base["peak_alloc"], r["min_free"] - base["min_free"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0 if all(r["ok"] for r in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
