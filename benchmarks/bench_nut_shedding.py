"""NUT connection shedding under an attacker: how many clients polling once a second the
sentinel serves with 0 errors while someone holds sockets open.

    .venv/bin/python benchmarks/bench_nut_shedding.py [--max-conns 8] [--pollers 6,8,9]
        [--attackers 8] [--modes none,silent,speaking,speaking-late] [--duration 20]
        [--json FILE]

One fresh virtual board (the deployed firmware, MicroPython unix port, its ADC fed a 50 Hz
waveform) with one tier `apps`, one secondary user and nut.max_conns = --max-conns. For each
mode and each poller count N, on loopback:
  * the attacker starts first and keeps --attackers sockets connected, reopening one 20 ms
    after the server closes it:
      none      no attacker;
      silent    the sockets never send a byte;
      speaking  each socket sends `VER` at once and then every 5 s (an "active" client that
                never logs in), so the server counts it as active;
      speaking-late  the same, but the attacker starts 2 s after the pollers;
  * 1 s after the attacker N pollers join, spread over one second, half of them upsmon-like (USERNAME,
    PASSWORD, LOGIN apps) and half collectd-like (no login), then each sends
    `GET VAR apps ups.status` once a second on a fixed schedule on one connection. A poller
    whose connection is refused, closed or silent for 2 s counts an error and reconnects at its
    next tick, as upsmon does.
Reported per (mode, N): poll requests and errors by kind, "steady" errors (once every poller
has had a first reply, i.e. not while joining), pollers served at the end (a reply in the last
quarter of the run), attacker sockets opened and how many the server closed.
"""
import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if os.path.join(REPO, "host") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "host"))

from powersentinel import nutreal, virtual  # noqa: E402
from powersentinel.paths import use_firmware_lib  # noqa: E402

use_firmware_lib()
from sentinel.passwd import hash_password  # noqa: E402

USER, PASSWORD = "upsmon", "bench-shed-7"
TIMEOUT = 2.0


def make_config(max_conns):
    return {"version": 1, "site": {"name": "shed-bench"},
            "nut": {"max_conns": max_conns, "idle_timeout_s": 60,
                    "users": [{"name": USER, "password": hash_password(PASSWORD),
                               "role": "secondary"}]},
            "tiers": [{"name": "apps", "max_wait_s": 120, "hosts": []}]}


async def _line(r):
    line = await asyncio.wait_for(r.readline(), TIMEOUT)
    if not line.endswith(b"\n"):
        raise EOFError("closed")
    return line.decode("latin-1").rstrip("\r\n")


async def poller(idx, addr, login, t_start, t_end, st):
    r = w = None
    k = 0
    last_ok = None
    while True:
        tick = t_start + k
        k += 1
        if tick >= t_end:
            # stay connected until every poller is done: leaving early frees a place
            await asyncio.sleep(max(0.0, t_end + 1.0 - time.monotonic()))
            break
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        try:
            if w is None:
                st["connects"] += 1
                r, w = await asyncio.wait_for(asyncio.open_connection(*addr), TIMEOUT)
                if login:
                    for line in ("USERNAME " + USER, "PASSWORD " + PASSWORD, "LOGIN apps"):
                        w.write(line.encode() + b"\n")
                        rep = await _line(r)
                        if rep != "OK":
                            raise EOFError(rep)
            st["requests"] += 1
            w.write(b"GET VAR apps ups.status\n")
            rep = await _line(r)
            if rep.startswith("VAR apps ups.status "):
                st["ok"] += 1
                st["joined"].add(idx)
                last_ok = time.monotonic()
            else:
                _error(st, "reply")
        except (asyncio.TimeoutError, EOFError, OSError) as e:
            _error(st, "timeout" if isinstance(e, asyncio.TimeoutError) else "closed")
            if w is not None:
                w.close()
            r = w = None
    if w is not None:
        w.close()
    return last_ok


def _error(st, kind):
    # "steady": once every poller has had a reply (not while they are still joining)
    st["errors"][kind] += 1
    if len(st["joined"]) == st["n"]:
        st["steady_errors"] += 1


async def attacker_socket(addr, speaking, t_begin, t_end, st):
    await asyncio.sleep(max(0.0, t_begin - time.monotonic()))
    while time.monotonic() < t_end:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(*addr), TIMEOUT)
        except (asyncio.TimeoutError, OSError):
            await asyncio.sleep(0.02)
            continue
        st["opened"] += 1
        try:
            while time.monotonic() < t_end:
                if speaking:
                    w.write(b"VER\n")
                    await _line(r)
                # a read that ends when the server closes the socket (EOF) or the period ends
                left = min(5.0, t_end - time.monotonic())
                try:
                    data = await asyncio.wait_for(r.read(100), max(0.01, left))
                except asyncio.TimeoutError:
                    continue
                if not data:
                    st["closed_by_server"] += 1
                    break
        except (EOFError, OSError, asyncio.TimeoutError):
            st["closed_by_server"] += 1
        w.close()
        await asyncio.sleep(0.02)


async def one_run(addr, mode, n, attackers, duration):
    st = {"connects": 0, "requests": 0, "ok": 0, "joined": set(), "n": n, "steady_errors": 0,
          "errors": {"closed": 0, "timeout": 0, "reply": 0}}
    att = {"opened": 0, "closed_by_server": 0}
    t0 = time.monotonic()
    t_end = t0 + 1.0 + duration
    tasks = []
    if mode != "none":
        late = mode == "speaking-late"
        t_begin = t0 + 3.0 if late else t0
        tasks = [asyncio.ensure_future(attacker_socket(addr, mode != "silent", t_begin, t_end,
                                                       att))
                 for _ in range(attackers)]
    t_start = t0 + 1.0
    lasts = await asyncio.gather(*(poller(i, addr, i % 2 == 0, t_start + i / float(n), t_end,
                                          st) for i in range(n)))
    await asyncio.gather(*tasks)
    recent = t_end - max(1.5, duration / 4.0)
    return {"mode": mode, "pollers": n, "attackers": 0 if mode == "none" else attackers,
            "requests": st["requests"], "ok": st["ok"], "connects": st["connects"],
            "errors": dict((k, v) for k, v in st["errors"].items() if v),
            "error_total": sum(st["errors"].values()), "steady_errors": st["steady_errors"],
            "served_at_end": sum(1 for x in lasts if x is not None and x >= recent),
            "attacker_opened": att["opened"], "attacker_closed": att["closed_by_server"]}


def run(max_conns, pollers, attackers, modes, duration, log=print):
    base = tempfile.mkdtemp(prefix="shedbench-")
    d = os.path.join(base, "board")
    cfg = os.path.join(base, "config.json")
    with open(cfg, "w") as f:
        json.dump(make_config(max_conns), f)
    out = {"max_conns": max_conns, "duration_s": duration, "results": [],
           "loadavg_start": os.getloadavg()}
    try:
        meta = virtual.start(d, config=cfg)
        host, port = meta["nut"].split(":")
        addr = (host, int(port))

        def answers():
            try:
                with nutreal.NutClient(*addr, timeout=2) as c:
                    return c.cmd("GET VAR apps ups.status")[0].startswith("VAR ")
            except OSError:
                return False

        virtual.wait_for(answers, 30, "the board to serve NUT", interval=0.2)
        for mode in modes:
            for n in pollers:
                r = asyncio.run(one_run(addr, mode, n, attackers, duration))
                out["results"].append(r)
                log(format_row(r))
                time.sleep(1.0)  # let the server see the closed connections
                if not virtual._alive(meta["interpreter_pid"]):
                    raise RuntimeError("the sentinel's interpreter died")
        out["loadavg_end"] = os.getloadavg()
    finally:
        virtual.stop(d)
        shutil.rmtree(base, ignore_errors=True)
    return out


HEADER = "%-13s %4s %4s %6s %6s %7s  %-22s %6s  %s" % (
    "attacker", "N", "att", "reqs", "ok", "served", "poller errors", "steady",
    "attacker opened/closed")


def format_row(r):
    errs = ", ".join("%s %d" % kv for kv in sorted(r["errors"].items())) or "none"
    return "%-13s %4d %4d %6d %6d %3d/%-3d  %-22s %6d  %d/%d" % (
        r["mode"], r["pollers"], r["attackers"], r["requests"], r["ok"], r["served_at_end"],
        r["pollers"], errs, r["steady_errors"], r["attacker_opened"], r["attacker_closed"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--max-conns", type=int, default=8)
    ap.add_argument("--pollers", default="6,8,9", help="comma-separated poller counts")
    ap.add_argument("--attackers", type=int, default=8, help="sockets the attacker holds")
    ap.add_argument("--modes", default="none,silent,speaking,speaking-late")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    pollers = [int(x) for x in a.pollers.split(",") if x]
    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in ("none", "silent", "speaking", "speaking-late"):
            ap.error("unknown mode %r (none, silent, speaking, speaking-late)" % m)
    print("NUT shedding: max_conns %d, %d attacker sockets, %.0f s per run" % (
        a.max_conns, a.attackers, a.duration))
    print(HEADER)
    res = run(a.max_conns, pollers, a.attackers, modes, a.duration)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
