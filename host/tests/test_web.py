"""The status page and /metrics of a virtual board (the real firmware on the MicroPython unix
port), read by the real clients: a Prometheus server scraping it, headless Chromium rendering
the page during an outage (with and without JavaScript), Python's reference parser of the
Prometheus text format and `promtool check metrics`; logins for the drill; and hostile HTTP
clients that must never stall NUT or the sampler.

One board for the module (the tests run in file order): three tiers, the apps tier's web1
(127.0.0.1) logged in by a NUT client that never logs out, so a shutdown or a drill waits on it.
"""
import fcntl
import html.parser
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]

CHROMIUM = shutil.which("chromium")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIERS = [("apps", [("web1", "127.0.0.1"), ("web2", "127.0.0.2")]),
         ("db", [("db1", "127.0.0.3")]),
         ("storage", [("nas1", "127.0.0.4")])]
PRIMARY = ("primo", rc.USERS["primo"][0])
SECONDARY = ("monuser", rc.USERS["monuser"][0])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout, what, interval=0.1):
    return rc.virtual.wait_for(cond, timeout, what, interval=interval)


@pytest.fixture(scope="module")
def site():
    d = tempfile.mkdtemp(prefix="web-test-")
    port = free_port()
    cfg = rc.make_config(**{
        "policy.grace_s": 2,
        "site.name": "Main server room",
        "http": {"enabled": True, "port": port, "timeout_ms": 2000, "max_conns": 3,
                 "refresh_s": 5},
        "tiers": [{"name": n, "max_wait_s": 120, "delay_s": 0,
                   "hosts": [{"name": h, "address": a, "health": "none"} for h, a in hosts]}
                  for n, hosts in TIERS]})
    b = rc.Board(os.path.join(d, "b"), cfg)
    nut = None
    try:
        b.wait_serving(15)
        base = "http://127.0.0.1:%d" % port
        wait_for(lambda: get(base + "/metrics")[0] == 200, 15, "the web server")
        nut = b.nut_client(3.0)
        assert [r.split()[0] for r in nut.login(*SECONDARY, ups="apps")] == ["OK"] * 3
        with rc.link(b) as lk:
            wait_for(lambda: lk.request("status")["tiers"][0]["connected"], 15,
                     "web1 counted as connected")
        yield b, base, port
    finally:
        if nut is not None:
            nut.close()
        b.stop()
        shutil.rmtree(d, ignore_errors=True)


def get(url, data=None, headers=None, timeout=5):
    """(status, headers, body) of one request; errors (4xx, 5xx) are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError:
        return None, {}, b""


def status(b):
    with rc.link(b) as lk:
        return lk.request("status")


# -- /metrics ------------------------------------------------------------------------------------

def test_metrics_pass_the_reference_parser_and_promtool_and_agree_with_the_console(site):
    from prometheus_client.parser import text_string_to_metric_families
    b, base, _ = site
    code, hdrs, body = get(base + "/metrics")
    st = status(b)
    assert code == 200
    assert hdrs["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    # counters lose `_total` in the family name (the parser's rule), keep it in their samples
    for name in ("powersentinel_mains_events", "powersentinel_adc_overruns",
                 "powersentinel_loop_stalls", "powersentinel_http_requests"):
        assert fams[name].type == "counter", name
        assert all(s.name == name + "_total" for s in fams[name].samples)
    v = fams["powersentinel_mains_voltage_volts"].samples[0]
    assert v.labels == {"channel": "L1"}
    assert abs(v.value - st["mains"]["v"]) < 0.02 * 230, (v.value, st["mains"])
    assert 225 < v.value < 235
    hz = fams["powersentinel_mains_frequency_hertz"].samples[0].value
    assert abs(hz - 50) < 0.2
    states = {s.labels["state"]: s.value for s in fams["powersentinel_state"].samples}
    assert states == {k: float(k == "ONLINE") for k in
                      ("ONLINE", "ON_BATTERY", "SHUTTING_DOWN", "LOAD_OFF", "WAIT_MAINS",
                       "RESTORING")}
    conn = {s.labels["tier"]: s.value for s in fams["powersentinel_tier_hosts_connected"].samples}
    assert conn == {"apps": 1, "db": 0, "storage": 0}
    assert fams["powersentinel_nut_clients"].samples[0].value >= 1
    assert fams["powersentinel_heap_free_bytes"].samples[0].value > 0
    assert fams["powersentinel_alert_queue_depth"].samples[0].value == 0
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    # promtool's lint: no naming or HELP problem reported either
    assert p.stdout.strip() == b"" and p.stderr.strip() == b"", p.stdout + p.stderr


def test_a_real_prometheus_scrapes_the_board_and_promql_returns_the_voltage(site, tmp_path):
    b, _, port = site
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   "scrape_configs:\n  - job_name: sentinel\n    static_configs:\n"
                   "      - targets: ['127.0.0.1:%d']\n" % port)
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, "--config.file=%s" % cfg,
                             "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % prom_port],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    api = "http://127.0.0.1:%d/api/v1/" % prom_port

    def query(q):
        code, _, body = get(api + "query?" + urllib.parse.urlencode({"query": q}))
        if code != 200:
            return None
        r = json.loads(body)
        return r["data"]["result"] if r["status"] == "success" else None

    try:
        res = wait_for(lambda: query("powersentinel_mains_voltage_volts"), 40,
                       "Prometheus to have scraped the voltage", interval=0.25)
        st = status(b)
        assert len(res) == 1
        assert res[0]["metric"]["channel"] == "L1"
        assert res[0]["metric"]["job"] == "sentinel"
        assert abs(float(res[0]["value"][1]) - st["mains"]["v"]) < 0.02 * 230
        # the scrape itself was healthy, and a PromQL expression over the series works
        assert query('up{job="sentinel"}')[0]["value"][1] == "1"
        on = query('powersentinel_state == 1')
        assert [r["metric"]["state"] for r in on] == [st["state"]["name"]]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# -- login --------------------------------------------------------------------------------------

def _auth(user, password):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()}


def test_a_drill_needs_a_login_with_the_right_role(site):
    b, base, _ = site
    url = base + "/drill"
    form = b"action=start"
    plan0 = status(b)["plan"]["plan"]
    assert get(url, form)[0] == 401
    code, hdrs, _ = get(url, form, _auth(PRIMARY[0], "not-the-password"))
    assert code == 401 and hdrs["WWW-Authenticate"].startswith("Basic ")
    assert get(url, form, _auth(*SECONDARY))[0] == 403   # right password, no right to drill
    assert status(b)["plan"]["plan"] == plan0             # nothing started so far
    code, _, body = get(url, form, _auth(*PRIMARY))
    assert code == 200, body
    assert b"Drill start requested by primo" in body
    # the drill runs (no FSD: it notes who is logged in, then probes health checks) and ends
    def reported():
        s = status(b)
        r = s["drill"]
        return r and r["plan"] > (plan0 or 0) and s["plan"]["drill"] and r
    report = wait_for(reported, 20, "the drill report")
    assert report["tiers"][0]["hosts"][0]["connected"]     # web1, seen by the drill
    assert get(url, b"action=stop", _auth(*PRIMARY))[0] == 409   # no drill to stop now
    with rc.link(b) as lk:
        recs, _, _ = rc.read_log(lk, max(0, lk.request("log_read", max=1)["last"] - 60))
    web = [r["data"] for r in recs if r["type"] == "web_drill"]
    assert [(w["action"], w["user"], w["addr"], w["result"]) for w in web] == [
        ("start", "primo", "127.0.0.1", "ok"), ("stop", "primo", "127.0.0.1", "refused")]
    assert "drill" in [r["data"].get("cause") for r in recs if r["type"] == "state"]


def test_wrong_passwords_are_slowed_down_like_nut_logins(site):
    b, base, _ = site
    url = base + "/drill"
    took = []
    for _ in range(4):
        t0 = time.monotonic()
        assert get(url, b"action=stop", _auth(PRIMARY[0], "guess"))[0] == 401
        took.append(time.monotonic() - t0)
    # NUT's limiter: two free failures, then 250 ms, 500 ms, ... per further attempt
    assert took[0] < 0.2 and took[1] < 0.2, took
    assert took[2] >= 0.24 and took[3] >= 0.49, took
    t0 = time.monotonic()
    assert get(url, b"action=stop")[0] == 401       # no credentials: nothing to slow down
    assert time.monotonic() - t0 < 0.2
    # the right password after failures is delayed as much, then clears the address
    assert get(url, b"action=stop", _auth(*PRIMARY))[0] == 409   # no drill to stop
    t0 = time.monotonic()
    assert get(url, b"action=stop", _auth(*PRIMARY))[0] == 409
    assert time.monotonic() - t0 < 0.2


# -- hostile clients ----------------------------------------------------------------------------

def test_bad_http_clients_never_stall_nut_or_the_sampler(site):
    b, base, port = site
    st0 = status(b)
    nut = b.nut_client(3.0)
    base_lat = []
    for _ in range(10):
        t0 = time.monotonic()
        assert nut.cmd("GET VAR apps ups.status").startswith("VAR apps ups.status")
        base_lat.append(time.monotonic() - t0)
    slow = []
    for _ in range(3):   # slowloris: the request line, then one header byte every 0.3 s
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        slow.append(s)
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    answers = {}

    def once(name, data):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(data)
            buf = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
            answers[name] = buf
        finally:
            s.close()

    lat = []
    t_end = time.monotonic() + 4.0
    k = 0
    while time.monotonic() < t_end:
        for s in slow:
            try:
                s.sendall(b"a")
            except OSError:
                pass
        if k == 2:
            once("oversized", b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"x" * 20000 + b"\r\n\r\n")
        elif k == 4:
            once("garbage", bytes(c for c in os.urandom(600) if c not in b" \n")[:300] +
                 b"\r\n\r\n")
        elif k == 6:
            once("page", b"GET / HTTP/1.1\r\nHost: s\r\n\r\n")   # served despite the slowloris
        t0 = time.monotonic()
        r = nut.cmd("GET VAR apps ups.status")
        lat.append(time.monotonic() - t0)
        assert r.startswith("VAR apps ups.status"), r
        k += 1
        time.sleep(0.3)
    for s in slow + [silent]:
        s.close()
    nut.close()
    st1 = status(b)
    code, _, body = get(base + "/metrics")
    assert code == 200
    print("NUT GET VAR: before %.1f ms max, during the attack %.1f ms max over %d polls"
          % (1000 * max(base_lat), 1000 * max(lat), len(lat)))
    assert max(lat) < 0.5, lat   # a stalled loop would show the 2 s request timeout
    assert answers["oversized"].startswith(b"HTTP/1.1 431 "), answers["oversized"][:80]
    assert answers["garbage"].startswith(b"HTTP/1.1 400 "), answers["garbage"][:80]
    assert answers["page"].startswith(b"HTTP/1.1 200 OK"), answers["page"][:80]
    assert b'id="state"' in answers["page"]
    assert st1["adc"]["overruns"] == st0["adc"]["overruns"]
    assert st1["adc"]["gaps"] == st0["adc"]["gaps"]
    text = body.decode()
    rejected = {}
    for line in text.splitlines():
        if line.startswith("powersentinel_http_rejected_total{"):
            rejected[line.split('"')[1]] = float(line.split()[-1])
    assert rejected["bad"] >= 2 and rejected["timeouts"] + rejected["shed"] >= 4, rejected


# -- the page in a browser, during an outage ---------------------------------------------------

class Dom(html.parser.HTMLParser):
    """The elements of a rendered DOM with their attributes and text (descendants' included)."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "wbr"}

    def __init__(self, text):
        super().__init__()
        self.elems = []
        self.stack = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elems.append(e)
        if tag not in self.VOID:
            self.stack.append(e)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for e in self.stack:
            e["text"] += data

    def by_id(self, ident):
        for e in self.elems:
            if e["attrs"].get("id") == ident:
                return e
        raise AssertionError("no #%s" % ident)

    def by_class(self, cls):
        return [e for e in self.elems if cls in (e["attrs"].get("class") or "").split()]


def chromium(url, tmp, *extra, dump=True):
    """Headless Chromium on `url`: its rendered DOM (--dump-dom), or with dump=False only what
    the extra flags make (a screenshot)."""
    args = [CHROMIUM] + CHROME_FLAGS + ["--user-data-dir=%s" % tmp] + list(extra)
    if dump:
        args.append("--dump-dom")
    p = subprocess.run(args + [url], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.decode()


def _high_fd(fd):
    h = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return h


def chromium_without_javascript(url, tmp, timeout=40):
    """The DOM Chromium renders with scripts disabled. --dump-dom cannot give it (it reads the
    DOM with a script, which the setting blocks: the output is empty), so this asks over the
    DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ending in NUL, commands
    on the browser's fd 3, answers on its fd 4) with DOM.getOuterHTML, which runs no script."""
    cmd_r, cmd_w = [_high_fd(x) for x in os.pipe()]
    res_r, res_w = [_high_fd(x) for x in os.pipe()]
    sh = 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (cmd_r, res_w, cmd_r, res_w)
    proc = subprocess.Popen(["bash", "-c", sh, CHROMIUM] + CHROME_FLAGS + [
        "--user-data-dir=%s" % tmp, "--remote-debugging-pipe",
        "--blink-settings=scriptEnabled=false", "about:blank"], pass_fds=(cmd_r, res_w),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(cmd_r)
    os.close(res_w)
    deadline = time.monotonic() + timeout
    state = {"buf": b"", "id": 0}

    def send(method, params=None, session=None):
        state["id"] += 1
        m = {"id": state["id"], "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        os.write(cmd_w, json.dumps(m).encode() + b"\0")
        return state["id"]

    def recv():
        while b"\0" not in state["buf"]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("Chromium did not answer over its DevTools pipe")
            if select.select([res_r], [], [], left)[0]:
                data = os.read(res_r, 65536)
                if not data:
                    raise AssertionError("Chromium closed its DevTools pipe")
                state["buf"] += data
        m, state["buf"] = state["buf"].split(b"\0", 1)
        return json.loads(m)

    def call(method, params=None, session=None):
        i = send(method, params, session)
        while True:
            m = recv()
            if m.get("id") == i:
                assert "error" not in m, (method, m["error"])
                return m["result"]

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        call("Page.enable", session=s)
        call("Page.navigate", {"url": url}, session=s)
        while True:
            m = recv()
            if m.get("method") == "Page.loadEventFired" and m.get("sessionId") == s:
                break
        root = call("DOM.getDocument", {"depth": 0}, session=s)["root"]["nodeId"]
        html = call("DOM.getOuterHTML", {"nodeId": root}, session=s)["outerHTML"]
        send("Browser.close")
        return html
    finally:
        os.close(cmd_w)
        os.close(res_r)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_chromium_shows_the_outage_state_and_tiers_with_and_without_javascript(site, tmp_path):
    b, base, _ = site
    wait_for(lambda: status(b)["state"]["name"] == "ONLINE", 15, "ONLINE")
    b.wires({"mains": "off"})
    wait_for(lambda: status(b)["state"]["name"] != "ONLINE", 10, "the outage to be seen")
    before = status(b)["state"]["name"]
    dom = Dom(chromium(base + "/", tmp_path / "c1"))
    after = status(b)["state"]["name"]
    shown = dom.by_id("state")["attrs"]["data-state"]
    assert shown in ("ON_BATTERY", "SHUTTING_DOWN") and shown in (before, after), (
        shown, before, after)
    assert dom.by_id("mains-supply")["text"] == "lost"
    assert [t["attrs"]["data-tier"] for t in dom.by_class("tier")] == ["apps", "db", "storage"]

    # the shutdown runs: apps has FSD and waits for web1, which never logs out
    def shutting():
        s = status(b)
        return s if s["state"]["name"] == "SHUTTING_DOWN" and s["tiers"][0]["phase"] == \
            "waiting" else None
    st = wait_for(shutting, 15, "the apps tier waiting for its hosts")
    assert get(base + "/drill", b"action=start", _auth(*PRIMARY))[0] == 409  # not ONLINE
    dom = Dom(chromium_without_javascript(base + "/", tmp_path / "c2"))
    assert dom.by_id("state")["attrs"]["data-state"] == "SHUTTING_DOWN"
    assert dom.by_id("state")["text"] == "SHUTTING DOWN"
    assert float(dom.by_id("mains-v")["text"]) < 50
    tiers = {t["attrs"]["data-tier"]: t for t in dom.by_class("tier")}
    assert tiers["apps"]["attrs"]["data-phase"] == "waiting"
    assert tiers["apps"]["attrs"]["data-fsd"] == "1"
    assert tiers["db"]["attrs"]["data-fsd"] == "0"
    hosts = {h["attrs"]["data-host"]: h["attrs"]["class"] for h in dom.by_class("host")}
    assert hosts == {"web1": "host connected", "web2": "host missing", "db1": "host missing",
                     "nas1": "host missing"}
    assert dom.by_id("plan")["attrs"]["data-mode"] == "shutdown"
    assert dom.by_id("plan-id")["text"] == "#%d" % st["plan"]["plan"]
    alarms = dom.by_id("alarms")["text"]
    assert "Mains lost" in alarms and "Tier apps: 1 of 2 hosts not connected" in alarms
    recs = [r["attrs"]["data-type"] for r in dom.elems if r["tag"] == "tr" and
            "data-type" in r["attrs"]]
    assert set(recs) & {"mains_lost", "state", "shutdown_start", "tier_fsd"}, recs
    assert not [e for e in dom.elems if e["tag"] == "script"]

    shot = tmp_path / "status-page.png"
    chromium(base + "/", tmp_path / "c3", "--screenshot=%s" % shot, "--window-size=1280,900",
             "--hide-scrollbars", dump=False)
    assert shot.stat().st_size > 20000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("PS_WEB_SCREENSHOT")   # docs/img/status-page.png is made this way
    if keep:
        shutil.copyfile(shot, keep)
    b.wires({"mains": "on"})
