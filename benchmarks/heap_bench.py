"""Firmware heap on the virtual board under a realistic load.

    .venv/bin/python benchmarks/heap_bench.py [--heaps 128wK,112wK] [--duration 20] [--json F]
                                              [--no-romfs] [--features alerts,web]

For each heap size: start a fresh virtual board (the real MicroPython unix port running the
deployed firmware) with a realistic configuration -- Q1 UPS link, 3 tiers x 2 hosts, 2 NUT
users -- then for `duration` seconds read the console `status` (the firmware reads its heap
right after gc.collect()) every 0.5 s while:
  * 8 NUT clients connect and LOGIN (spread over the three tiers, both users), each polling
    `GET VAR <tier> ups.status` like upsmon; one also sends `LIST VAR`, one `GET DESC` (the
    rarely used description tables);
  * mains goes off (waveform capture, journal writes, on-battery UPS) and comes back.
`--features` adds optional parts (FEATURES, COMBOS), each with its load:
  * web: the status page and /metrics (the `http` section), a thread fetching `/` and
    `/metrics` back to back for the whole run (web-idle: the server on, no request);
  * alerts: syslog, webhook, e-mail and MQTT (when mosquitto is installed) to real receivers on
    loopback, delivering the outage's alerts;
  * all: alerts and web together.
Reports the minimum free heap and the peak allocation seen, the event loop's longest stall,
and whether the firmware survived (no MemoryError, still answering, every load's requests or
alerts answered). 64-bit port: 128wK = 262,144 bytes.

Importable: host/tests/test_heap_budget.py runs scenario() at 128wK.
"""
import argparse
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings

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


class Feature:
    """One optional part of the scenario: what it adds to the config (configure), what must run
    beside the board before it boots (up: receivers), the load it gets once the NUT clients
    are in (start), and what that load counted (counts; check raises when it went wrong)."""

    def configure(self, cfg, workdir):
        pass

    def up(self):
        pass

    def start(self):
        pass

    def stop(self):
        pass

    def counts(self):
        return {}

    def check(self):
        pass


class WebLoad(Feature):
    """The `http` section on; fetches the status page and the metrics back to back in a thread
    for the whole run (a harder load than a browser and a Prometheus: most of the firmware's
    once-a-second heap readings then fall inside a request, so the peak includes what a
    request holds); counts what came back whole."""

    PATHS = ("/", "/metrics")

    def __init__(self):
        self.base = None
        self.ok = {p: 0 for p in self.PATHS}
        self.failed = 0
        self._stop = threading.Event()
        self._thread = None

    def configure(self, cfg, workdir):
        cfg["http"] = {"enabled": True, "port": _free_port()}
        self.base = "http://127.0.0.1:%d" % cfg["http"]["port"]

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

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

    def counts(self):
        return {"ok": self.ok, "failed": self.failed}

    def check(self):
        if self.failed or not all(self.ok.values()):
            raise RuntimeError("web load: %r" % self.counts())


class IdleWeb(WebLoad):
    """The server on, no request."""

    def start(self):
        pass

    def check(self):
        pass


class OnceLoad(WebLoad):
    """One page and one scrape at the start, then nothing: what stays on the heap after use."""

    def _run(self):
        self.fetch_all()


class PageLoad(WebLoad):
    PATHS = ("/",)


class MetricsLoad(WebLoad):
    PATHS = ("/metrics",)


class MqttReceiver:
    """A private mosquitto (anonymous, no persistence) on a free loopback port and a
    mosquitto_sub collecting the alert topic's payloads. Only when both programs exist."""

    def __init__(self, workdir):
        self.port = _free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "user %s\n" % (self.port, getpass.getuser()))
        self.broker = None
        self.sub = None
        self.out = os.path.join(workdir, "mqtt-alerts.txt")

    @staticmethod
    def available():
        return bool(shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")) \
            and bool(shutil.which("mosquitto_sub"))

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.broker = subprocess.Popen([exe, "-c", self.conf], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        virtual.wait_for(lambda: _listening(self.port) or self.broker.poll() is not None, 10,
                         "mosquitto to listen")
        if self.broker.poll() is not None:
            raise RuntimeError("mosquitto exited (%s)" % self.conf)
        self.sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
             "-t", "powersentinel/+/alert", "-F", "%p"],
            stdout=open(self.out, "w"), stderr=subprocess.DEVNULL)

    def stop(self):
        for p in (self.sub, self.broker):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.sub = self.broker = None

    def ids(self):
        try:
            with open(self.out) as f:
                return [json.loads(ln)["id"] for ln in f if ln.strip()]
        except (OSError, ValueError):
            return []


class AlertsLoad(Feature):
    """Alerts through syslog (rsyslogd, TCP), a webhook (with its HMAC), e-mail (aiosmtpd, AUTH
    LOGIN) and MQTT with Home Assistant discovery (mosquitto, when installed): the real
    receivers of host/tests/alerts_receivers.py on loopback, started before the board boots.
    The scenario's outage is the load: its alerts (mains lost, the state changes) are built and
    sent while the heap is read. check: every receiver got at least 3 distinct alerts."""

    def __init__(self, mqtt=True):
        self.recv = {}
        self.mqtt = mqtt and MqttReceiver.available()

    def configure(self, cfg, workdir):
        # aiosmtpd warns about AUTH without TLS: on loopback that is the point
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        if os.path.join(REPO, "host", "tests") not in sys.path:
            sys.path.insert(0, os.path.join(REPO, "host", "tests"))
        from alerts_receivers import Rsyslog, Smtp, Webhook
        syslog = Rsyslog(os.path.join(workdir, "rsyslog"))
        hook = Webhook("s3cret")
        smtp = Smtp("u", "pw")
        self.recv = {"syslog": syslog, "webhook": hook, "smtp": smtp}
        a = {"syslog": {"enabled": True, "host": "127.0.0.1", "port": syslog.tcp},
             "webhook": {"enabled": True, "url": hook.url(), "secret": "s3cret"},
             "smtp": {"enabled": True, "host": "127.0.0.1", "port": smtp.port, "user": "u",
                      "password": "pw", "sender": "lab@site.lan", "to": "ops@site.lan"}}
        if self.mqtt:
            mq = MqttReceiver(workdir)
            self.recv["mqtt"] = mq
            a["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": mq.port}
        cfg["alerts"] = a

    def up(self):
        for r in self.recv.values():
            r.start()

    def stop(self):
        for r in self.recv.values():
            r.stop()

    def counts(self):
        return {name: len(set(r.ids())) for name, r in self.recv.items()}

    def check(self):
        got = self.counts()
        if not got or min(got.values()) < 3:
            raise RuntimeError("alerts received: %r" % got)


# optional parts: name -> a Feature class. web: the page and the metrics fetched alternately
# back to back; web-idle: the server on, no request; web-once: one page and one scrape, then
# none (what stays after use); alerts: four transports delivering the outage's alerts;
# alerts-3: the same without MQTT. COMBOS: names that stand for several.
FEATURES = {"web": WebLoad, "web-page": PageLoad, "web-metrics": MetricsLoad,
            "web-idle": IdleWeb, "web-once": OnceLoad, "alerts": AlertsLoad,
            "alerts-3": lambda: AlertsLoad(mqtt=False)}
COMBOS = {"all": ("alerts", "web")}


def expand(names):
    """Feature names with the COMBOS spelled out, in order, without repeats; ValueError for
    a name neither knows."""
    out = []
    for n in names:
        for f in COMBOS.get(n, (n,)):
            if f not in FEATURES:
                raise ValueError("unknown feature %r (known: %s)"
                                 % (f, ", ".join(list(FEATURES) + list(COMBOS))))
            if f not in out:
                out.append(f)
    return out


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def make_config():
    """The benchmark's device config (schema keys): Q1 link, 3 tiers x 2 hosts, 2 NUT users.
    Hosts are loopback addresses with health 'none': nothing leaves this machine, and the short
    outage stays inside the grace time, so no shutdown runs. The features add their sections
    (Feature.configure)."""
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
    nut_logins, captures, mains_lost_seen, features, loads ({feature: what its load counted}),
    loop ({max_stall_ms, stalls} at the end), overruns (ADC blocks lost), alerts (the status's
    alerts block at the end, when enabled). features: names in FEATURES or COMBOS."""
    say = log or (lambda *a: None)
    own = workdir is None
    base = workdir or tempfile.mkdtemp(prefix="heapbench-")
    d = os.path.join(base, "board-%s" % heap)
    cfg_path = os.path.join(base, "config-%s.json" % heap)
    names = expand(features)
    parts = {f: FEATURES[f]() for f in names}
    cfg = make_config()
    for p in parts.values():
        p.configure(cfg, base)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    res = {"heap": heap, "ok": False, "error": None, "samples": [], "nut_logins": 0,
           "mains_lost_seen": False, "captures": None, "features": names, "loads": {},
           "loop": None, "overruns": None, "alerts": None}
    clients = []
    try:
        for p in parts.values():
            p.up()
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
                    for p in parts.values():
                        p.start()
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
            st = link.request("status")
            res["loop"] = {"max_stall_ms": st["loop"]["max_stall_ms"],
                           "stalls": st["loop"]["stalls"]}
            res["overruns"] = st["adc"]["overruns"]
            res["alerts"] = st.get("alerts")
            for name, p in parts.items():
                p.stop()
                res["loads"][name] = p.counts()
                p.check()
            caps = link.request("capture_list")
            res["captures"] = len(caps) if isinstance(caps, list) else len(caps.get("captures", []))
            link.request("ping")
        res["ok"] = True
    except Exception as e:  # the figures say how far it got; the error says why it stopped
        res["error"] = "%s: %s | console: %s" % (type(e).__name__, e,
                                                 _console_tail(d, 600).strip()[-400:])
    finally:
        for p in parts.values():
            p.stop()
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
                    help="optional parts to enable, comma-separated: "
                         + ", ".join(list(FEATURES) + list(COMBOS)))
    ap.add_argument("--no-romfs", dest="romfs", action="store_false",
                    help="a board without a ROMFS partition (stock RPI_PICO): the modules are "
                         ".mpy files on littlefs, loaded into the heap")
    a = ap.parse_args()
    try:
        features = expand([f for f in a.features.split(",") if f])
    except ValueError as e:
        ap.error(str(e))
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
            if r["loop"] is not None:
                print("       loop max stall %d ms, stalls %d, ADC overruns %s%s" % (
                    r["loop"]["max_stall_ms"], r["loop"]["stalls"], r["overruns"],
                    "" if not r["alerts"] else ", alerts' longest step %s ms"
                    % r["alerts"].get("step_max_ms")))
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
