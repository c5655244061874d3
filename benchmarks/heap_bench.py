"""Firmware heap on the virtual board under a realistic load.

    .venv/bin/python benchmarks/heap_bench.py [--heaps 128wK,112wK] [--duration 20] [--json F]
                                              [--no-romfs] [--features web]

For each heap size: start a fresh virtual board (the real MicroPython unix port running the
deployed firmware) with a realistic configuration -- Q1 UPS link, 3 tiers x 2 hosts, 2 NUT
users -- then for `duration` seconds read the console `status` (the firmware reads its heap
right after gc.collect()) every 0.5 s while:
  * 8 NUT clients connect and LOGIN (spread over the three tiers, both users), each polling
    `GET VAR <tier> ups.status` like upsmon; one also sends `LIST VAR`, one `GET DESC` (the
    rarely used description tables);
  * mains goes off (waveform capture, journal writes, on-battery UPS) and comes back.
With `--features web` the config also enables the status page and /metrics (the `http`
section), and a thread fetches `/` and `/metrics` back to back for the whole run (FEATURES: one
entry per optional part, so that `alerts` can be added the same way).
Reports the minimum free heap and the peak allocation seen, and whether the firmware survived
(no MemoryError, still answering). 64-bit port: 128wK = 262,144 bytes.

Importable: host/tests/test_heap_budget.py runs scenario() at 128wK.
"""
import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if os.path.join(REPO, "host") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "host"))

from powersentinel import virtual  # noqa: E402
from powersentinel.link import Link  # noqa: E402
from powersentinel.paths import use_firmware_lib  # noqa: E402

use_firmware_lib()
from sentinel.passwd import hash_password  # noqa: E402

USERS = (("upsmon", "secondary-pass", "secondary", []),
         ("admin", "primary-pass", "primary", ["FSD"]))
TIERS = ("apps", "db", "storage")
N_CLIENTS = 8


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _enable_web(cfg):
    cfg["http"] = {"enabled": True, "port": _free_port()}


class WebLoad:
    """Fetches the status page and the metrics back to back in a thread for the whole run (a
    harder load than a browser and a Prometheus: most of the firmware's once-a-second heap
    readings then fall inside a request, so the peak includes what a request holds);
    counts what came back whole."""

    PATHS = ("/", "/metrics")

    def __init__(self, cfg):
        self.base = "http://127.0.0.1:%d" % cfg["http"]["port"]
        self.ok = {p: 0 for p in self.PATHS}
        self.failed = 0
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self):
        while not self._stop.is_set():
            self.fetch_all()

    def fetch_all(self):
        for path in self.PATHS:
            end = b"</html>\n" if path == "/" else b"\n"
            try:
                with urllib.request.urlopen(self.base + path, timeout=5) as r:
                    if r.status == 200 and r.read().endswith(end):
                        self.ok[path] += 1
                        continue
            except OSError:
                pass
            self.failed += 1


class OnceLoad(WebLoad):
    """One page and one scrape at the start, then nothing: what stays on the heap after use."""

    def _run(self):
        self.fetch_all()


class PageLoad(WebLoad):
    PATHS = ("/",)


class MetricsLoad(WebLoad):
    PATHS = ("/metrics",)


# optional parts: name -> (what it adds to the config, the load it gets during the run);
# web-idle: the server on, no request; web-once: one page and one scrape, then none (what
# stays after use)
FEATURES = {"web": (_enable_web, WebLoad), "web-page": (_enable_web, PageLoad),
            "web-metrics": (_enable_web, MetricsLoad), "web-idle": (_enable_web, None),
            "web-once": (_enable_web, OnceLoad)}


def make_config(features=()):
    """The benchmark's device config (schema keys): Q1 link, 3 tiers x 2 hosts, 2 NUT users.
    Hosts are loopback addresses with health 'none': nothing leaves this machine, and the short
    outage stays inside the grace time, so no shutdown runs. features: names in FEATURES."""
    tiers = []
    n = 0
    for name in TIERS:
        hosts = []
        for j in range(2):
            n += 1
            hosts.append({"name": "%s%d" % (name, j + 1), "address": "127.0.0.%d" % (n + 1),
                          "mac": "02:00:00:00:00:%02x" % n, "health": "none"})
        tiers.append({"name": name, "max_wait_s": 120, "delay_s": 0, "hosts": hosts})
    cfg = {
        "version": 1,
        "site": {"name": "heap-bench"},
        "mains": {"nominal_v": 230.0, "nominal_hz": 50, "sample_rate": 4000, "block_len": 16,
                  "volts_per_count": 0.02, "capture_pre_ms": 100, "capture_post_ms": 400},
        "ups": {"link": "q1", "baud": 2400, "poll_ms": 1000, "link_lost_s": 10,
                "battery_runtime_s": 1200},
        "policy": {"grace_s": 60},
        "nut": {"port": 3493, "max_conns": N_CLIENTS, "idle_timeout_s": 60, "stale_s": 15,
                "users": [{"name": u, "password": hash_password(p), "role": r, "actions": a}
                          for u, p, r, a in USERS]},
        "tiers": tiers,
        "recovery": {"wol_port": 9, "wol_broadcast": "127.255.255.255", "boot_timeout_s": 300,
                     "wake_retries": 3},
    }
    for f in features:
        FEATURES[f][0](cfg)
    return cfg


class NutClient:
    """A plain-socket NUT client: logs in like upsmon and keeps polling."""

    def __init__(self, addr, user, password, tier, extra=()):
        host, port = addr.split(":")
        self.s = socket.create_connection((host, int(port)), timeout=5)
        self.buf = b""
        self.tier = tier
        self.extra = list(extra)
        for line in ("USERNAME %s" % user, "PASSWORD %s" % password, "LOGIN %s" % tier):
            r = self.cmd(line)
            if not r.startswith("OK"):
                raise RuntimeError("%s: %s" % (line, r))

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n")
        first = self._line()
        if first.startswith("BEGIN "):
            while not self._line().startswith("END "):
                pass
        return first

    def poll(self):
        r = self.cmd("GET VAR %s ups.status" % self.tier)
        for line in self.extra:
            self.cmd(line)
        return r

    def close(self):
        try:
            self.s.sendall(b"LOGOUT\n")
        except OSError:
            pass
        self.s.close()


def _console_tail(d, n=2000):
    try:
        with open(os.path.join(d, "console.log"), "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def scenario(heap="128wK", duration=20.0, workdir=None, log=None, romfs=True, features=()):
    """Run the scenario on a fresh board; returns a dict of figures:
    heap, ok, error, samples [(t, free, alloc)], min_free, peak_alloc, total, min_free_pct,
    nut_logins, captures, mains_lost_seen, features, loads ({feature: what its load counted})."""
    say = log or (lambda *a: None)
    own = workdir is None
    base = workdir or tempfile.mkdtemp(prefix="heapbench-")
    d = os.path.join(base, "board-%s" % heap)
    cfg_path = os.path.join(base, "config-%s.json" % heap)
    cfg = make_config(features)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    loads = {f: FEATURES[f][1](cfg) for f in features if FEATURES[f][1] is not None}
    res = {"heap": heap, "ok": False, "error": None, "samples": [], "nut_logins": 0,
           "mains_lost_seen": False, "captures": None, "features": list(features), "loads": {}}
    clients = []
    try:
        try:
            meta = virtual.start(d, config=cfg_path, heap=heap, timeout=40,
                                 extra_args=() if romfs else ("--romfs-kib", "0"))
        except virtual.VirtualError as e:
            res["error"] = "start: %s | %s" % (e, _console_tail(d, 600).strip()[-400:])
            return res
        say("%s: board up (%s)" % (heap, meta["serial"]))
        pw = dict((u, p) for u, p, _, _ in USERS)
        with Link(meta["serial"]) as link:
            t0 = time.monotonic()
            phase = 0
            while True:
                t = time.monotonic() - t0
                if t >= duration:
                    break
                if phase == 0 and t >= 1.0:
                    for i in range(N_CLIENTS):
                        user = USERS[i % 2][0]
                        extra = []
                        if i == 0:
                            extra.append("LIST VAR %s" % TIERS[0])
                        if i == 1:
                            extra.append("GET DESC %s ups.status" % TIERS[0])
                        clients.append(NutClient(meta["nut"], user, pw[user], TIERS[i % 3],
                                                 extra))
                    res["nut_logins"] = len(clients)
                    for ld in loads.values():
                        ld.start()
                    phase = 1
                elif phase == 1 and t >= duration * 0.3:
                    virtual.set_wires(d, {"mains": "off"})
                    phase = 2
                elif phase == 2 and t >= duration * 0.6:
                    virtual.set_wires(d, {"mains": "on"})
                    phase = 3
                for c in clients:
                    c.poll()
                st = link.request("status")
                h = st["heap"]
                res["samples"].append((round(t, 2), h["free"], h["alloc"]))
                if st["mains"]["lost"]:
                    res["mains_lost_seen"] = True
                time.sleep(0.5)
            for name, ld in loads.items():
                ld.stop()
                res["loads"][name] = {"ok": ld.ok, "failed": ld.failed}
                if ld.failed or not all(ld.ok.values()):
                    raise RuntimeError("%s load: %r" % (name, res["loads"][name]))
            caps = link.request("capture_list")
            res["captures"] = len(caps) if isinstance(caps, list) else len(caps.get("captures", []))
            link.request("ping")
        res["ok"] = True
    except Exception as e:  # the figures say how far it got; the error says why it stopped
        res["error"] = "%s: %s | console: %s" % (type(e).__name__, e,
                                                 _console_tail(d, 600).strip()[-400:])
    finally:
        for ld in loads.values():
            ld.stop()
        for c in clients:
            c.close()
        virtual.stop(d)
        if "MemoryError" in _console_tail(d, 200000):
            res["ok"] = False
            res["error"] = (res["error"] or "") + " MemoryError in console.log"
        if own:
            shutil.rmtree(base, ignore_errors=True)
    s = res["samples"]
    if s:
        res["min_free"] = min(x[1] for x in s)
        res["peak_alloc"] = max(x[2] for x in s)
        res["total"] = s[0][1] + s[0][2]
        res["min_free_pct"] = round(100.0 * res["min_free"] / res["total"], 1)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heaps", default="128wK,112wK")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--json", help="also write the full results here")
    ap.add_argument("--features", default="",
                    help="optional parts to enable, comma-separated: " + ", ".join(FEATURES))
    ap.add_argument("--no-romfs", dest="romfs", action="store_false",
                    help="a board without a ROMFS partition (stock RPI_PICO): the modules are "
                         ".mpy files on littlefs, loaded into the heap")
    a = ap.parse_args()
    features = [f for f in a.features.split(",") if f]
    for f in features:
        if f not in FEATURES:
            ap.error("unknown feature %r (known: %s)" % (f, ", ".join(FEATURES)))
    out = []
    for heap in a.heaps.split(","):
        r = scenario(heap, a.duration, log=print, romfs=a.romfs, features=features)
        out.append(r)
        if r["samples"]:
            print("%-6s %s  total %d B  peak alloc %d B  min free %d B (%.1f %%)  samples %d  "
                  "NUT logins %d  mains lost seen %s  captures %s" % (
                      heap, "ok    " if r["ok"] else "FAILED", r["total"], r["peak_alloc"],
                      r["min_free"], r["min_free_pct"], len(r["samples"]), r["nut_logins"],
                      r["mains_lost_seen"], r["captures"]))
            for name, ld in r["loads"].items():
                print("       %s: %s" % (name, ld))
        else:
            print("%-6s FAILED before the first reading" % heap)
        if r["error"]:
            print("       error: %s" % r["error"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0 if all(r["ok"] for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
