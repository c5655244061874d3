"""NUT request latency: the sentinel (virtual board, real firmware) against the real upsd.

    .venv/bin/python benchmarks/bench_nut_latency.py [--clients 16,64] [--duration 20]
        [--max-conns 16] [--timeout 2] [--json FILE]

One process starts both servers and keeps them running for the whole benchmark, so both see
the same background load:
  * the sentinel: a fresh virtual board (MicroPython unix port running the deployed firmware,
    its ADC fed a 50 Hz waveform in real time) with 3 tiers (= 3 NUT UPS names), one secondary
    NUT user and nut.max_conns = --max-conns (16 is the schema's maximum);
  * the real upsd 2.8.0 with one dummy-ups per tier serving the variables the sentinel served
    for that tier a moment after boot (dummy-ups adds its driver.* variables), MAXCONN default
    (1024).
For each client count N, against each server in turn, N asyncio clients (loopback) behave like
upsmon: connect, USERNAME / PASSWORD / LOGIN <tier> (tiers round-robin), then send
`GET VAR <tier> ups.status` once a second on a fixed schedule, the N clients' phases spread
evenly over the second. A client whose connection is refused or closed, or whose request times
out (--timeout), counts the error and reconnects at its next tick, as upsmon does at its next
poll. Latency = time from sending GET VAR to the reply line (CPython asyncio on the same cores:
the client's own overhead is in both columns alike).

Reported per (server, N): requests, median / p90 / p99 / max latency, connect+login median,
errors by kind, how many clients were being served at the end (a reply in the last quarter
of the run), and for the sentinel its free heap in mid-run (console `status`, after
gc.collect()). Prints a table; --json writes everything.
"""
import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if os.path.join(REPO, "host") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "host"))

from powersentinel import nutreal, virtual  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.paths import use_firmware_lib  # noqa: E402

use_firmware_lib()
from sentinel import schema  # noqa: E402
from sentinel.passwd import hash_password  # noqa: E402

TIERS = ("apps", "db", "storage")
USER, PASSWORD = "upsmon", "bench-secondary-7"
SCHEMA_MAX_CONNS = schema.field("nut.max_conns")["max"]
DEFAULT_MAX_CONNS = schema.field("nut.max_conns")["d"]


def make_config(max_conns):
    return {
        "version": 1,
        "site": {"name": "nut-bench"},
        "nut": {"max_conns": max_conns, "idle_timeout_s": 60,
                "users": [{"name": USER, "password": hash_password(PASSWORD),
                           "role": "secondary"}]},
        "tiers": [{"name": t, "max_wait_s": 120, "hosts": []} for t in TIERS],
    }


def percentile(xs, p):
    """Nearest-rank percentile of a sorted list (p in 0..100)."""
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


class _Client:
    def __init__(self, idx, host, port, tier, timeout, stats):
        self.idx, self.host, self.port, self.tier = idx, host, port, tier
        self.timeout = timeout
        self.st = stats
        self.r = None  # type: asyncio.StreamReader | None
        self.w = None  # type: asyncio.StreamWriter | None
        self.last_ok = None

    async def _line(self):
        assert self.r is not None
        line = await asyncio.wait_for(self.r.readline(), self.timeout)
        if not line.endswith(b"\n"):
            raise EOFError("closed")
        return line.decode("latin-1").rstrip("\r\n")

    def _close(self):
        if self.w is not None:
            try:
                self.w.close()
            except Exception:
                pass
        self.r = self.w = None

    async def _connect(self):
        st = self.st
        st["connects"] += 1
        t0 = time.perf_counter()
        try:
            self.r, self.w = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout)
            for line in ("USERNAME %s" % USER, "PASSWORD %s" % PASSWORD, "LOGIN %s" % self.tier):
                self.w.write(line.encode() + b"\n")
                await self.w.drain()
                rep = await self._line()
                if not rep.startswith("OK"):
                    key = "login:" + rep
                    st["errors"][key] = st["errors"].get(key, 0) + 1
                    self._close()
                    return False
        except asyncio.TimeoutError:
            st["errors"]["connect_timeout"] += 1
            self._close()
            return False
        except (EOFError, ConnectionError, OSError):
            # the sentinel at max_conns accepts and closes at once (no reply)
            st["errors"]["refused"] += 1
            self._close()
            return False
        st["login_s"].append(time.perf_counter() - t0)
        return True

    async def run(self, t_start, t_end, offset):
        st = self.st
        k = 0
        while True:
            tick = t_start + offset + k
            k += 1
            now = time.monotonic()
            if tick >= t_end:
                # stay connected to the end: leaving early would free slots for the others
                await asyncio.sleep(max(0.0, t_end - now))
                break
            if tick < now - 0.5:  # fell a whole tick behind: skip it, as a timer would
                st["skipped"] += 1
                continue
            await asyncio.sleep(tick - now)
            if self.w is None and not await self._connect():
                continue
            assert self.w is not None
            st["requests"] += 1
            t0 = time.perf_counter()
            try:
                self.w.write(b"GET VAR %s ups.status\n" % self.tier.encode())
                await self.w.drain()
                rep = await self._line()
            except asyncio.TimeoutError:
                st["errors"]["timeout"] += 1
                self._close()
                continue
            except (EOFError, ConnectionError, OSError):
                st["errors"]["closed"] += 1
                self._close()
                continue
            dt = time.perf_counter() - t0
            if rep.startswith("VAR "):
                st["lat_s"].append(dt)
                self.last_ok = time.monotonic()
            else:
                key = "reply:" + rep
                st["errors"][key] = st["errors"].get(key, 0) + 1
        self._close()


async def _load(host, port, n, duration, timeout):
    stats = {"requests": 0, "connects": 0, "skipped": 0, "lat_s": [], "login_s": [],
             "errors": {"refused": 0, "connect_timeout": 0, "timeout": 0, "closed": 0}}
    t_start = time.monotonic() + 0.2
    t_end = t_start + duration
    clients = [_Client(i, host, port, TIERS[i % len(TIERS)], timeout, stats) for i in range(n)]
    await asyncio.gather(*(c.run(t_start, t_end, c.idx / float(n)) for c in clients))
    recent = t_end - max(1.5, duration / 4.0)
    stats["served_at_end"] = sum(1 for c in clients if c.last_ok is not None and c.last_ok >= recent)
    return stats


def summarize(server, n, stats, duration):
    lat = sorted(stats["lat_s"])
    ms = lambda x: None if x is None else round(x * 1000.0, 3)  # noqa: E731
    errs = dict((k, v) for k, v in stats["errors"].items() if v)
    return {
        "server": server, "clients": n, "duration_s": duration,
        "requests": stats["requests"], "ok": len(lat),
        "median_ms": ms(statistics.median(lat)) if lat else None,
        "p90_ms": ms(percentile(lat, 90)), "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(lat[-1] if lat else None),
        "login_median_ms": ms(statistics.median(stats["login_s"])) if stats["login_s"] else None,
        "connects": stats["connects"], "errors": errs, "error_total": sum(errs.values()),
        "skipped_ticks": stats["skipped"], "served_at_end": stats["served_at_end"],
    }


def _heap_probe(serial, out):
    try:
        with Link(serial) as link:
            out.update(link.request("status")["heap"])
    except Exception as e:  # a figure is missing, the benchmark goes on
        out["error"] = repr(e)


def snapshot_vars(host, port, tier):
    """The sentinel's variables for a tier (what the real upsd's dummy-ups will serve)."""
    with nutreal.NutClient(host, port, timeout=5) as c:
        lines = c.cmd("LIST VAR %s" % tier)
    out = []
    prefix = "VAR %s " % tier
    for ln in lines:
        if ln.startswith(prefix):
            name, _, val = ln[len(prefix):].partition(" ")
            out.append((name, val[1:-1].replace('\\"', '"').replace("\\\\", "\\")))
    return out


def run(clients=(16, 64), duration=20.0, max_conns=SCHEMA_MAX_CONNS, timeout=2.0,
        settle=1.0, log=None):
    """Start both servers, run every (N, server) configuration; returns the result dict."""
    say = log or (lambda *a: None)
    base = tempfile.mkdtemp(prefix="nutbench-")
    d = os.path.join(base, "board")
    cfg_path = os.path.join(base, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(make_config(max_conns), f)
    upsd = None
    out = {"max_conns": max_conns, "schema_max_conns": SCHEMA_MAX_CONNS,
           "default_max_conns": DEFAULT_MAX_CONNS, "duration_s": duration, "timeout_s": timeout,
           "tiers": list(TIERS), "results": [], "loadavg_start": os.getloadavg()}
    try:
        meta = virtual.start(d, config=cfg_path)  # bounded, with one power-cycle retry
        host, port = meta["nut"].split(":")
        port = int(port)
        # let the monitor settle so the variables are the steady ones (input.voltage ~230)
        virtual.wait_for(lambda: float(dict(snapshot_vars(host, port, TIERS[0]))
                                       .get("input.voltage", "0")) > 200, 15,
                         "the sentinel to measure mains", interval=0.2)
        specs = [nutreal.UpsSpec(t, snapshot_vars(host, port, t), "Power Sentinel tier %s" % t)
                 for t in TIERS]
        upsd = nutreal.RealUpsd(specs, [nutreal.NutUser(USER, PASSWORD, upsmon="secondary")])
        upsd.start()
        say("sentinel on %s:%d (max_conns %d), upsd on %s:%d" % (
            host, port, max_conns, upsd.host, upsd.port))
        servers = (("sentinel", host, port), ("upsd", upsd.host, upsd.port))
        for n in clients:
            for name, h, p in servers:
                heap = {}
                probe = None
                if name == "sentinel":
                    # the firmware's heap in mid-run (console status reads it after gc.collect())
                    probe = threading.Timer(0.2 + duration / 2.0, _heap_probe,
                                            (meta["serial"], heap))
                    probe.start()
                stats = asyncio.run(_load(h, p, n, duration, timeout))
                if probe is not None:
                    probe.join()
                r = summarize(name, n, stats, duration)
                if heap:
                    r["heap_mid"] = heap
                out["results"].append(r)
                say(format_row(r))
                time.sleep(settle)  # let the server drop the closed connections
                if name == "sentinel" and not virtual._alive(meta["interpreter_pid"]):
                    raise RuntimeError("the sentinel's interpreter died")
        out["loadavg_end"] = os.getloadavg()
    finally:
        if upsd is not None:
            upsd.stop()
        virtual.stop(d)
        shutil.rmtree(base, ignore_errors=True)
    return out


HEADER = ("%-9s %4s %6s %6s %8s %8s %8s %8s %8s %7s  %s" % (
    "server", "N", "reqs", "ok", "med ms", "p90 ms", "p99 ms", "max ms", "login ms", "served",
    "errors"))


def format_row(r):
    f = lambda x: "-" if x is None else "%.2f" % x  # noqa: E731
    errs = ", ".join("%s %d" % kv for kv in sorted(r["errors"].items())) or "none"
    if r.get("heap_mid", {}).get("free") is not None:
        errs += "  (heap free %d B)" % r["heap_mid"]["free"]
    return "%-9s %4d %6d %6d %8s %8s %8s %8s %8s %3d/%-3d  %s" % (
        r["server"], r["clients"], r["requests"], r["ok"], f(r["median_ms"]), f(r["p90_ms"]),
        f(r["p99_ms"]), f(r["max_ms"]), f(r["login_median_ms"]), r["served_at_end"],
        r["clients"], errs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--clients", default="16,64", help="comma-separated client counts")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per configuration")
    ap.add_argument("--max-conns", type=int, default=SCHEMA_MAX_CONNS,
                    help="the sentinel's nut.max_conns (schema: %d..%d, default %d)" % (
                        schema.field("nut.max_conns")["min"], SCHEMA_MAX_CONNS,
                        DEFAULT_MAX_CONNS))
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout (s)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    clients = [int(x) for x in a.clients.split(",") if x]
    print("NUT latency: %s clients, %.0f s each, sentinel max_conns %d (schema max %d)" % (
        ",".join(map(str, clients)), a.duration, a.max_conns, SCHEMA_MAX_CONNS))
    print(HEADER)
    res = run(clients, a.duration, a.max_conns, a.timeout, log=print)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
