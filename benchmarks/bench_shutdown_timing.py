"""Ordered shutdown timing with the real upsmon: outage onset -> FSD -> SHUTDOWNCMD -> logout.

    .venv/bin/python benchmarks/bench_shutdown_timing.py [--tiers 3] [--per-tier 2]
        [--grace 3] [--max-wait 10] [--runs 1] [--json FILE] [--pair [--heartbeat-ms 500]]

A fresh virtual board (real firmware, time scale 1: nothing is accelerated) with --tiers tiers
(apps, db, storage...), each with --per-tier hosts, no UPS link (the sentinel's own mains
sensing decides), policy.grace_s = --grace, tier max_wait_s = --max-wait. For every host a real
upsmon 2.8.0 (powersentinel.nutreal.RealUpsmon, own mount namespace and state directory;
POLLFREQ 1, POLLFREQALERT 1, DEADTIME 3, HOSTSYNC 3, FINALDELAY 0) MONITORs its tier's UPS on
the board's NUT port (`tier@127.0.0.1:PORT`) as a secondary; its SHUTDOWNCMD writes the time.

Then mains goes off (virtual.set_wires mains=off; the waveform changes at the next sample) and
the host timestamps (time.time(), the clock SHUTDOWNCMD's `date` uses):
  * the firmware's decisions, from its console events (pty, received by this process):
    "mains" lost=true (the fast loss trigger), the state transitions, and per tier the journal
    records tier_fsd (FSD raised) and tier_done / tier_timeout (with the firmware's own
    FSD -> last-logout time, took_ms / waited_ms);
  * per upsmon: SHUTDOWNCMD (the time it wrote) and the exit of its process (upsmon 2.8.0 in
    one-process mode exits right after SHUTDOWNCMD: that closes its NUT connection, which is
    its logout as the sentinel sees it).
All times are reported relative to the onset (the moment set_wires returned, the call taking
`set_wires_ms`). Prints a table per run; --json writes everything.

--pair: the extra delay a redundant pair adds from the onset to each tier's FSD. Each run is a
single board then a virtual pair (`powersentinel.virtual.pair`, heartbeat --heartbeat-ms, the
same config, neither reads a UPS), one after the other in this process with the same seed.
In the pair every upsmon MONITORs its tier on both sentinels, power value 1 each,
MINSUPPLIES 2 (docs/redundancy.md); mains goes off on both boards in one call. Per tier the
FSD time is the first `tier_fsd` of either sentinel (upsmon acts on the first); the summary
gives single and pair side by side, and their difference per tier.
"""
import argparse
import json
import os
import random
import select
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if os.path.join(REPO, "host") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "host"))

from powersentinel import nutreal, virtual  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.paths import use_firmware_lib  # noqa: E402
from powersentinel.virtual import pair as vpair  # noqa: E402

use_firmware_lib()
from sentinel import console  # noqa: E402
from sentinel.passwd import hash_password  # noqa: E402

TIER_NAMES = ("apps", "db", "storage", "backup", "net", "t6", "t7", "t8")
USER, PASSWORD = "upsmon", "bench-secondary-7"


def make_config(tiers, grace_s, max_wait_s):
    """Tiers without a host list: every upsmon connects from 127.0.0.1 and host addresses must
    be unique, so hosts could not be told apart anyway. The sequencer does not need them: a
    tier is down when nobody is logged in to its UPS any more."""
    ts = []
    for i in range(tiers):
        ts.append({"name": TIER_NAMES[i], "max_wait_s": max_wait_s, "delay_s": 0, "hosts": []})
    return {
        "version": 1,
        "site": {"name": "shutdown-bench"},
        "ups": {"link": "none"},
        "policy": {"grace_s": grace_s, "stable_mains_s": 3},
        "nut": {"max_conns": 16, "users": [{"name": USER, "password": hash_password(PASSWORD),
                                             "role": "secondary"}]},
        "tiers": ts,
    }


def _console_tail(d, n=1500):
    try:
        with open(os.path.join(d, "console.log"), "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def read_events(link, timeout):
    """[(time.time() at arrival, event)] from the console within `timeout` s. Link's own reader
    returns only every 50 ms (pyserial's read timeout), too coarse here: wait on the pty with
    select and stamp each chunk as it arrives. Uses the Link's buffer, so no half line is lost."""
    out = []
    fd = link.ser.fileno()
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return out
    now = time.time()
    try:
        link.buf += os.read(fd, 65536)
    except BlockingIOError:
        return out
    while b"\n" in link.buf:
        line, link.buf = link.buf.split(b"\n", 1)
        obj = console.decode(line)
        if isinstance(obj, dict) and "ev" in obj:
            out.append((now, obj))
    return out


class _Single:
    """One board: start, its NUT address(es), its console Link(s) by side, mains off, stop."""
    minsupplies = 1

    def __init__(self, base, cfg_path):
        self.d = os.path.join(base, "board")
        meta = virtual.start(self.d, config=cfg_path, extra_args=["--time-scale", "1"])
        self.nuts = [meta["nut"]]
        self.links = {"a": Link(meta["serial"])}

    def mains_off(self):
        virtual.set_wires(self.d, {"mains": "off"})

    def console_tail(self):
        return _console_tail(self.d, 400)

    def stop(self):
        for lk in self.links.values():
            lk.close()
        virtual.stop(self.d)


class _Pair(_Single):
    minsupplies = 2  # docs/redundancy.md: either sentinel's FSD shuts a host down

    def __init__(self, base, cfg_path, heartbeat_ms):
        self.d = os.path.join(base, "pair")
        meta = vpair.start_pair(self.d, config=cfg_path, heartbeat_ms=heartbeat_ms,
                                dead_ms=max(1500, 5 * heartbeat_ms),
                                extra_args=["--time-scale", "1"])
        self.nuts = [meta[s]["board"]["nut"] for s in vpair.SIDES]
        self.links = {s: Link(meta[s]["board"]["serial"]) for s in vpair.SIDES}
        for lk in self.links.values():
            virtual.wait_for(lambda: (lk.request("status").get("pair") or {}).get("state")
                             == "ALIVE", 30, "both sentinels to see each other", interval=0.2)

    def mains_off(self):
        vpair.set_pair_wires(self.d, {"mains": "off"})

    def console_tail(self):
        return _console_tail(os.path.join(self.d, "a"), 400)

    def stop(self):
        for lk in self.links.values():
            lk.close()
        vpair.stop_pair(self.d)


def one_run(tiers=3, per_tier=2, grace_s=3, max_wait_s=10, timeout=None, seed=0, log=None,
            pair_heartbeat_ms=None):
    """One outage on a fresh board (or a fresh pair: pair_heartbeat_ms); returns a dict of
    timestamps and derived figures. The upsmon start at random moments (`seed`) within one
    POLLFREQ and the outage comes at a random point of the poll cycle, so their poll phases are
    independent of their tiers and of the onset, as on a real site."""
    say = log or (lambda *a: None)
    base = tempfile.mkdtemp(prefix="shutbench-")
    cfg_path = os.path.join(base, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(make_config(tiers, grace_s, max_wait_s), f)
    names = list(TIER_NAMES[:tiers])
    # the whole plan must fit: grace + each tier's wait (+ slack for polls and a loaded machine)
    timeout = timeout or grace_s + tiers * (max_wait_s + 2) + 15
    mons = []
    res = {"tiers": names, "per_tier": per_tier, "grace_s": grace_s, "max_wait_s": max_wait_s,
           "pair_heartbeat_ms": pair_heartbeat_ms,
           "ok": False, "error": None, "events": [], "hosts": []}
    rig = None
    try:
        rig = (_Single(base, cfg_path) if pair_heartbeat_ms is None
               else _Pair(base, cfg_path, pair_heartbeat_ms))
        for lk in rig.links.values():
            virtual.wait_for(lambda: lk.request("status")["mains"]["good"], 15,
                             "the sentinel to see good mains", interval=0.2)
        addrs = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in rig.nuts)]
        for t in names:
            for j in range(per_tier):
                m = nutreal.RealUpsmon([nutreal.Monitor(t, h, p, USER, PASSWORD, "secondary")
                                        for h, p in addrs], minsupplies=rig.minsupplies)
                mons.append((t, "%s%d" % (t, j + 1), m))
        rng = random.Random(seed)
        order = list(mons)
        rng.shuffle(order)
        starts = sorted(rng.uniform(0.0, 1.0) for _ in order)
        t_s = time.monotonic()
        for at, (_, _, m) in zip(starts, order):
            time.sleep(max(0.0, t_s + at - time.monotonic()))
            m.start()
        for _, _, m in mons:
            m.wait_logged_in(10)
        # every upsmon logged in as each sentinel sees it
        for host, port in addrs:
            with nutreal.NutClient(host, port, timeout=5) as c:
                virtual.wait_for(lambda: all(
                    c.cmd("GET NUMLOGINS %s" % t)[0] == "NUMLOGINS %s %d" % (t, per_tier)
                    for t in names), 10, "the logins", interval=0.2)
        for lk in rig.links.values():
            lk.poll_events(0.3)  # drop the backlog
        time.sleep(rng.uniform(0.0, 1.0))  # the outage at a random point of the poll cycle
        say("%s up, %d upsmon logged in; mains off"
            % ("board" if pair_heartbeat_ms is None else "pair", len(mons)))
        t_a = time.time()
        rig.mains_off()
        t0 = time.time()
        res["t_onset"] = t0
        res["set_wires_ms"] = round((t0 - t_a) * 1000, 1)
        exited = {}
        deadline = time.monotonic() + timeout
        done_tiers = set()
        while time.monotonic() < deadline:
            got = [(now, side, ev) for side, lk in rig.links.items()
                   for now, ev in read_events(lk, 0.02 / len(rig.links))]
            for now, side, ev in sorted(got, key=lambda x: x[0]):
                kind = ev.get("ev")
                if kind == "status":
                    continue
                rec = {"t": round(now - t0, 4), "ev": kind, "board": side}
                if kind == "mains":
                    rec.update(lost=ev.get("lost"), good=ev.get("good"))
                elif kind == "state":
                    rec.update(frm=ev.get("from"), to=ev.get("to"), cause=ev.get("cause"))
                elif kind == "log":
                    rec.update(type=ev.get("type"), data=ev.get("data"))
                    if ev.get("type") in ("tier_done", "tier_timeout"):
                        done_tiers.add((side, ev["data"]["tier"]))
                elif kind == "event":
                    rec.update(type=ev.get("type"), duration_ms=ev.get("duration_ms"))
                else:
                    rec["raw"] = ev
                res["events"].append(rec)
            now = time.time()
            for t, h, m in mons:
                if h not in exited and m.proc is not None and m.proc.poll() is not None:
                    exited[h] = now
            if len(done_tiers) == len(names) * len(rig.links) and len(exited) == len(mons):
                break
        for t, h, m in mons:
            sd = m.shutdown_time()
            res["hosts"].append({
                "tier": t, "host": h,
                "shutdowncmd": None if sd is None else round(sd - t0, 4),
                "exit": None if h not in exited else round(exited[h] - t0, 4)})
        derive(res)
        res["ok"] = len(done_tiers) == len(names) * len(rig.links) and all(
            x["shutdowncmd"] is not None for x in res["hosts"])
        if not res["ok"]:
            res["error"] = "incomplete: tiers done %s, hosts %s" % (sorted(done_tiers),
                                                                    res["hosts"])
    except Exception as e:
        res["error"] = "%s: %s | console: %s" % (type(e).__name__, e,
                                                 rig.console_tail() if rig else "")
    finally:
        for _, _, m in mons:
            m.stop()
        if rig is not None:
            rig.stop()
        shutil.rmtree(base, ignore_errors=True)
    return res


def _first(events, pred):
    for e in events:
        if pred(e):
            return e
    return None


def derive(res):
    """Per-tier figures from the event list and the host records."""
    ev = res["events"]
    lost = _first(ev, lambda e: e["ev"] == "mains" and e.get("lost"))
    res["loss_seen_s"] = None if lost is None else lost["t"]
    ob = _first(ev, lambda e: e["ev"] == "state" and e.get("to") == "ON_BATTERY")
    res["on_battery_s"] = None if ob is None else ob["t"]
    res["on_battery_cause"] = None if ob is None else ob.get("cause")
    sd = _first(ev, lambda e: e["ev"] == "state" and e.get("to") == "SHUTTING_DOWN")
    res["shutting_down_s"] = None if sd is None else sd["t"]
    tiers = []
    for t in res["tiers"]:
        fsd = _first(ev, lambda e: e.get("type") == "tier_fsd" and e["data"].get("tier") == t)
        end = _first(ev, lambda e: e.get("type") in ("tier_done", "tier_timeout")
                     and e["data"].get("tier") == t)
        hs = [h for h in res["hosts"] if h["tier"] == t]
        sds = [h["shutdowncmd"] for h in hs if h["shutdowncmd"] is not None]
        exits = [h["exit"] for h in hs if h["exit"] is not None]
        by_board = {}
        for e in ev:
            if e.get("type") == "tier_fsd" and e["data"].get("tier") == t:
                by_board.setdefault(e.get("board", "a"), e["t"])
        row = {"tier": t, "fsd_s": fsd and fsd["t"], "fsd_by_board": by_board,
               "clients_at_fsd": fsd and fsd["data"].get("clients"),
               "shutdowncmd_first_s": min(sds) if sds else None,
               "shutdowncmd_last_s": max(sds) if sds else None,
               "exit_last_s": max(exits) if exits else None,
               "end": end and end["type"], "end_s": end and end["t"],
               "fw_fsd_to_logout_ms": end and (end["data"].get("took_ms")
                                               or end["data"].get("waited_ms"))}
        if row["fsd_s"] is not None and sds:
            row["fsd_to_shutdowncmd_last_s"] = round(max(sds) - row["fsd_s"], 3)
        tiers.append(row)
    res["tier_rows"] = tiers


def _f(x, unit=1.0, fmt="%.2f"):
    return "-" if x is None else fmt % (x * unit)


def print_run(res, out=print):
    if res.get("t_onset") is None:
        out("run failed: %s" % res["error"])
        return
    out("onset -> fast loss decision seen on the console: %s ms (set_wires call %.1f ms); "
        "-> ON_BATTERY (%s) %s ms; -> SHUTTING_DOWN %s s (grace_s %d)" % (
            _f(res["loss_seen_s"], 1000, "%.0f"), res["set_wires_ms"],
            res["on_battery_cause"], _f(res["on_battery_s"], 1000, "%.0f"),
            _f(res["shutting_down_s"]), res["grace_s"]))
    out("%-8s %8s %10s %10s %10s %9s %12s %-13s" % (
        "tier", "FSD s", "SHUTCMD s", "(first)", "exit s", "FSD->SC s", "fw logout ms",
        "end"))
    for r in res["tier_rows"]:
        out("%-8s %8s %10s %10s %10s %9s %12s %-13s" % (
            r["tier"], _f(r["fsd_s"]), _f(r["shutdowncmd_last_s"]),
            _f(r["shutdowncmd_first_s"]), _f(r["exit_last_s"]),
            _f(r.get("fsd_to_shutdowncmd_last_s")),
            "-" if r["fw_fsd_to_logout_ms"] is None else str(r["fw_fsd_to_logout_ms"]),
            "%s %s" % (r["end"], _f(r["end_s"]))))
    if res["error"]:
        out("error: %s" % res["error"])


def _spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "min": round(min(xs), 3), "median": round(statistics.median(xs), 3),
            "max": round(max(xs), 3)}


def summarize(runs):
    """min / median / max over the successful runs of each figure."""
    ok = [r for r in runs if r["ok"]]
    s = {"runs": len(runs), "ok": len(ok)}  # type: dict
    if not ok:
        return s
    rows = [t for r in ok for t in r["tier_rows"]]
    hosts = [h for r in ok for h in r["hosts"]]
    gaps = []
    for r in ok:
        tr = r["tier_rows"]
        for a, b in zip(tr, tr[1:]):
            if a["end_s"] is not None and b["fsd_s"] is not None:
                gaps.append((b["fsd_s"] - a["end_s"]) * 1000)
    s["figures"] = {
        "onset_to_loss_seen_ms": _spread([r["loss_seen_s"] * 1000 for r in ok
                                          if r["loss_seen_s"] is not None]),
        "onset_to_on_battery_ms": _spread([r["on_battery_s"] * 1000 for r in ok
                                           if r["on_battery_s"] is not None]),
        "on_battery_to_shutting_down_s": _spread([
            r["shutting_down_s"] - r["on_battery_s"] for r in ok
            if r["shutting_down_s"] is not None and r["on_battery_s"] is not None]),
        "fsd_to_shutdowncmd_first_s": _spread([
            t["shutdowncmd_first_s"] - t["fsd_s"] for t in rows
            if t["shutdowncmd_first_s"] is not None and t["fsd_s"] is not None]),
        "fsd_to_shutdowncmd_last_s": _spread([t.get("fsd_to_shutdowncmd_last_s")
                                              for t in rows]),
        "shutdowncmd_to_upsmon_exit_ms": _spread([
            (h["exit"] - h["shutdowncmd"]) * 1000 for h in hosts
            if h["exit"] is not None and h["shutdowncmd"] is not None]),
        "last_exit_to_tier_done_ms": _spread([
            (t["end_s"] - t["exit_last_s"]) * 1000 for t in rows
            if t["end_s"] is not None and t["exit_last_s"] is not None]),
        "fw_fsd_to_logout_ms": _spread([t["fw_fsd_to_logout_ms"] for t in rows]),
        "tier_done_to_next_fsd_ms": _spread(gaps),
        "onset_to_last_tier_done_s": _spread([r["tier_rows"][-1]["end_s"] for r in ok]),
    }
    return s


def print_summary(s, out=print):
    out("summary over %d/%d successful runs (min / median / max):" % (s["ok"], s["runs"]))
    for k, v in (s.get("figures") or {}).items():
        if v:
            out("  %-34s %9.3f %9.3f %9.3f   (n=%d)" % (k, v["min"], v["median"], v["max"],
                                                          v["n"]))


def fsd_table(single, pair):
    """Per tier: median onset -> FSD (first of either sentinel) single and pair, the
    difference, and the pair's per-board medians."""
    rows = []
    for i, t in enumerate((single and single[0]["tiers"]) or []):
        def med(runs, key=None):
            xs = []
            for r in runs:
                if not r["ok"]:
                    continue
                row = r["tier_rows"][i]
                x = row["fsd_s"] if key is None else row["fsd_by_board"].get(key)
                if x is not None:
                    xs.append(x)
            return statistics.median(xs) if xs else None
        s1, p1 = med(single), med(pair)
        rows.append({"tier": t, "single_s": s1, "pair_s": p1,
                     "extra_ms": None if s1 is None or p1 is None else (p1 - s1) * 1000,
                     "pair_a_s": med(pair, "a"), "pair_b_s": med(pair, "b")})
    return rows


def print_fsd_table(rows, out=print):
    out("onset -> tier FSD, medians: %-8s %9s %9s %10s %9s %9s" % (
        "tier", "single s", "pair s", "extra ms", "A s", "B s"))
    for r in rows:
        out("                           %-8s %9s %9s %10s %9s %9s" % (
            r["tier"], _f(r["single_s"], fmt="%.3f"), _f(r["pair_s"], fmt="%.3f"),
            _f(r["extra_ms"], fmt="%.0f"), _f(r["pair_a_s"], fmt="%.3f"),
            _f(r["pair_b_s"], fmt="%.3f")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--tiers", type=int, default=3)
    ap.add_argument("--per-tier", type=int, default=2, help="upsmon per tier")
    ap.add_argument("--grace", type=int, default=3, help="policy.grace_s")
    ap.add_argument("--max-wait", type=int, default=10, help="each tier's max_wait_s")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1, help="upsmon start order of the first run")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--pair", action="store_true",
                    help="each run: a single board, then a pair; compare onset -> tier FSD")
    ap.add_argument("--heartbeat-ms", type=int, default=500, help="the pair's heartbeat")
    a = ap.parse_args(argv)
    if a.runs < 1 or a.tiers < 1 or a.tiers > len(TIER_NAMES) or a.per_tier < 1:
        ap.error("--runs, --tiers (1..%d) and --per-tier must be positive" % len(TIER_NAMES))
    if not nutreal.available():
        print("the real NUT binaries are not installed (apt-get install nut-server nut-client)")
        return 2
    runs, pair_runs = [], []
    for i in range(a.runs):
        for hb, into in ((None, runs), (a.heartbeat_ms, pair_runs)) if a.pair else ((None, runs),):
            print("run %d/%d%s: %d tiers x %d upsmon, grace_s %d, max_wait_s %d" % (
                i + 1, a.runs, "" if hb is None else " (pair, heartbeat %d ms)" % hb,
                a.tiers, a.per_tier, a.grace, a.max_wait))
            r = one_run(a.tiers, a.per_tier, a.grace, a.max_wait, seed=a.seed + i, log=print,
                        pair_heartbeat_ms=hb)
            print_run(r)
            into.append(r)
    s = summarize(runs)
    print_summary(s)
    out = {"summary": s, "runs": runs}
    ok = s["ok"] == s["runs"]
    if a.pair:
        ps = summarize(pair_runs)
        print("pair:")
        print_summary(ps)
        out.update(pair_summary=ps, pair_runs=pair_runs, fsd=fsd_table(runs, pair_runs))
        print_fsd_table(out["fsd"])
        ok = ok and ps["ok"] == ps["runs"]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
