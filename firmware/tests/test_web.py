# The web side's pure parts under the real MicroPython: request parsing and its bounds, Basic
# credentials, form bodies, HTML escaping, the page's stable elements, the metrics text, and
# who may start a drill. Then the server itself on loopback with a stub site: its connection
# cap sheds a slow sender, a silent client times out, a bad request gets its status code.
import asyncio
import binascii
import sys
import os

from mpunit import TestCase
from sentinel import config
from sentinel.journal import Journal
from sentinel.passwd import hash_password
from sentinel.web import http as H
from sentinel.web.server import Response, WebServer, response_head
from sentinel.web.site import PAGES, ROUTES, Site

PORT = 39481  # loopback only
page = metrics = None  # the modules under test, imported by the test classes' setUp


def feed_all(p, data, step=None):
    """Feed `data` whole or `step` bytes at a time; the last result."""
    if step is None:
        return p.feed(data)
    r = H.MORE
    for i in range(0, len(data), step):
        r = p.feed(data[i:i + step])
        if r != H.MORE:
            return r
    return r


def _pure(name):
    # imported per test: the server tests check that requests drop these modules again
    __import__("sentinel.web." + name)
    return sys.modules["sentinel.web." + name]


def two_channels(b):
    """status("ONLINE") on a site sensing feed A (good) and feed `b` (lost)."""
    st = status("ONLINE")
    st["mains"]["channels"] = [
        {"name": "A", "feed": "A", "v": 231.4, "hz": 50.01, "lost": False, "good": True,
         "event": None},
        {"name": b, "feed": b, "v": 0.4, "hz": None, "lost": True, "good": False,
         "event": "interruption"}]
    return st


def whole_page(*args):
    """The whole page, its parts joined as the site sends them."""
    return "".join("".join(_pure(name).render(*args)) for name in PAGES)


class Parser(TestCase):
    def test_a_browser_request_in_one_chunk_and_byte_by_byte(self):
        req = (b"GET /?x=1 HTTP/1.1\r\nHost: 10.0.0.9\r\nUser-Agent: Mozilla/5.0 (X11)\r\n"
               b"Accept: text/html\r\nAuthorization: Basic YTpi\r\n\r\n")
        for step in (None, 1, 7):
            p = H.RequestParser()
            self.assertEqual(feed_all(p, req, step), H.DONE)
            self.assertEqual((p.method, p.path, p.query, p.version),
                             ("GET", "/", "x=1", "HTTP/1.1"))
            # only the headers the server uses are kept
            self.assertEqual(p.headers, {"authorization": "Basic YTpi"})

    def test_bare_newlines_leading_blank_line_and_absolute_form(self):
        p = H.RequestParser()
        self.assertEqual(p.feed(b"\r\nGET http://sentinel:80/metrics HTTP/1.0\n\n"), H.DONE)
        self.assertEqual((p.path, p.version), ("/metrics", "HTTP/1.0"))

    def test_body_by_content_length_then_nothing_more(self):
        p = H.RequestParser()
        r = p.feed(b"POST /drill HTTP/1.1\r\nContent-Length: 12\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n\r\naction=")
        self.assertEqual(r, H.MORE)
        self.assertEqual(p.feed(b"startGARBAGE AFTER"), H.DONE)
        self.assertEqual(p.body, b"action=start")

    def test_bounds_give_their_status_codes(self):
        cases = (
            (b"GET /" + b"a" * 600 + b" HTTP/1.1\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 40 + b"\r\n", 431),
            (b"GET / HTTP/1.1\r\nAuthorization: Basic " + b"Q" * 600 + b"\r\n\r\n", 431),
            (b"POST /drill HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", 413),
            (b"POST /drill HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400),
            (b"POST /drill HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 400),  # a TLS hello
            (b"GET /\r\n\r\n", 400),                                   # HTTP/0.9
            (b"GET / HTTP/2.0\r\n\r\n", 501),
            (b"GET / FTP/1.0\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            (b"G(T / HTTP/1.1\r\n\r\n", 400),
            (b"GET nopath HTTP/1.1\r\n\r\n", 400),
        )
        for data, code in cases:
            self.assertEqual(H.RequestParser().feed(data), code, data[:40])

    def test_an_overlong_header_the_server_does_not_use_is_skipped(self):
        # a browser may send cookies another service on the same host name set
        p = H.RequestParser()
        r = p.feed(b"GET / HTTP/1.1\r\nCookie: " + b"c" * 1500 + b"\r\n\r\n")
        self.assertEqual(r, H.DONE)
        self.assertEqual(p.headers, {})

    def test_endless_headers_stop_at_the_head_limit_without_keeping_them(self):
        p = H.RequestParser(max_head=4096)
        r = p.feed(b"GET / HTTP/1.1\r\n")
        chunk = b"X-Filler: " + b"f" * 200 + b"\r\n"
        n = 0
        while r == H.MORE and n < 100:
            r = p.feed(chunk)
            n += 1
        self.assertEqual(r, 431)
        self.assertTrue(len(p.line) <= p.max_line)

    def test_started(self):
        p = H.RequestParser()
        self.assertFalse(p.started())
        p.feed(b"GE")
        self.assertTrue(p.started())


class Credentials(TestCase):
    def test_basic(self):
        enc = binascii.b2a_base64(b"admin:pa:ss word").decode().strip()
        self.assertEqual(H.basic_credentials("Basic " + enc), ("admin", "pa:ss word"))
        self.assertEqual(H.basic_credentials("basic  " + enc), ("admin", "pa:ss word"))

    def test_not_basic_or_malformed(self):
        for v in (None, "", "Bearer abc", "Basic", "Basic !!!!", "Basic " +
                  binascii.b2a_base64(b"nocolon").decode().strip(),
                  "Basic " + binascii.b2a_base64(b":nouser").decode().strip(),
                  "Basic " + binascii.b2a_base64(b"\xff\xfe:x").decode().strip()):
            self.assertEqual(H.basic_credentials(v), None, v)


class Forms(TestCase):
    def test_parse_form(self):
        self.assertEqual(H.parse_form(b"action=start&x=a+b%21&action=stop&flag"),
                         {"action": "start", "x": "a b!", "flag": ""})
        self.assertEqual(H.parse_form(b"\xff\xfe"), {})
        self.assertEqual(H.unquote("100%"), "100%")
        self.assertEqual(H.unquote("%zz%4"), "%zz%4")
        self.assertEqual(H.unquote("caf%C3%A9"), "caf\u00e9")

    def test_response_head(self):
        h = response_head(401, "text/plain", (("WWW-Authenticate", 'Basic realm="x"'),))
        self.assertTrue(h.startswith("HTTP/1.1 401 Unauthorized\r\n"))
        self.assertIn("WWW-Authenticate: Basic realm=\"x\"\r\n", h)
        self.assertTrue(h.endswith("Connection: close\r\n\r\n"))


def status(state="SHUTTING_DOWN", alerts=None):
    """A status dict of the shape Ops.status() returns (checked against the real one by the
    host tests), during an outage: two tiers, one host missing."""
    st = {"mains": {"v": 3.2, "hz": None, "lost": True, "good": False,
                    "events": [{"type": "interruption", "start_ms": 1000, "duration_ms": 840,
                                "pct": 1.4, "v": 3.2, "trig": 1}],
                    "counts": {"interruption": 1, "lost": 2}},
          "ups": {"link": "none", "status": "ALARM OB", "charge": 87, "runtime": 754,
                  "source": "model", "alarm": "UPS selftest failed! <now>"},
          "state": {"name": state, "cause": "grace_expired", "ponr": False, "plan_id": 3,
                    "drill": False},
          "tiers": [{"name": "apps", "connected": [{"host": "web1", "addr": "10.0.0.5"}],
                     "missing": [{"host": "web<2>", "since_s": 95}], "unknown": ["10.9.9.9"],
                     "phase": "waiting", "fsd": True},
                    {"name": "db", "connected": [], "missing": [], "unknown": [],
                     "phase": None, "fsd": False}],
          "plan": {"plan": 3, "mode": "shutdown", "drill": False, "complete": False,
                   "elapsed_s": 12, "load_off": False,
                   "tiers": [{"name": "apps", "phase": "waiting", "took_s": 12,
                              "hosts": [{"host": "web1", "state": "down", "took_s": 4,
                                         "tries": 0}]},
                             {"name": "db", "phase": "idle", "took_s": None, "hosts": []}]},
          "heap": {"free": 70000, "alloc": 190000},
          "loop": {"max_stall_ms": 17, "stall_ms_1m": 4, "stalls": 0},
          "adc": {"overruns": 0, "ring_ms": 256, "gaps": 1, "gap_samples": 16},
          "network": {"state": "up", "nut": True}, "nut": {"clients": 3},
          "errors": 0, "uptime_ms": 125000, "time": 1700000100}
    if alerts is not None:
        st["alerts"] = alerts
    return st


class Page(TestCase):
    def setUp(self):
        global page
        page = _pure("page")

    def test_esc(self):
        from sentinel.web.fmt import dur, esc
        self.assertEqual(esc('<a href="x">&\'</a>'),
                         "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;")
        self.assertEqual(esc(42), "42")

    def test_dur(self):
        from sentinel.web.fmt import dur
        self.assertEqual([dur(x) for x in (None, 5, 200, 7500)],
                         ["-", "5 s", "3 min 20 s", "2 h 05 min"])

    def test_outage_page_has_its_stable_elements_and_escapes_text(self):
        recs = [(41, 1700000090, 1000, "mains_lost", {"v": 3.2}),
                (42, 1700000095, 6000, "web_drill", {"user": "<b>"})]
        html = whole_page(status(), "site & co", 10, recs)
        for frag in ('<meta http-equiv="refresh" content="10">',
                     'id="state" class="b s-SHUTTING_DOWN" data-state="SHUTTING_DOWN"',
                     '<span id="cause">grace_expired</span>',
                     '<span id="mains-v">3.2</span>',
                     '<dd id="mains-hz">-</dd>', '<dd id="mains-supply">lost</dd>',
                     '<span id="ups-charge">87</span>', '<dd id="ups-status">ALARM OB</dd>',
                     '<dd id="ups-runtime">12 min 34 s</dd>',
                     'class="tier" data-tier="apps" data-phase="waiting" data-fsd="1"',
                     'class="tier" data-tier="db" data-phase="idle" data-fsd="0"',
                     'class="host connected" data-host="web1"',
                     'class="host missing" data-host="web&lt;2&gt;"',
                     '<li class="alarm">UPS alarm: UPS selftest failed! &lt;now&gt;</li>',
                     'Tier apps: 1 of 2 hosts not connected',
                     '<tr data-type="web_drill">', 'user=&lt;b&gt;', '5 s ago',
                     '<tr data-kind="interruption">', '<h1>site &amp; co</h1>',
                     'id="plan" data-mode="shutdown"', '<dd id="plan-progress">0 of 2 tiers</dd>',
                     'form id="drill" method="post" action="/drill"'):
            self.assertIn(frag, html)
        self.assertNotIn("<b>", html)
        self.assertNotIn("<script", html)
        self.assertNotIn("None", html)
        self.assertNotIn('id="alerts"', html)  # no alerts block without alerts configured
        self.assertTrue(html.endswith("</html>\n"))

    def test_each_channel_and_each_feed_with_the_servers_it_leaves_short(self):
        st = two_channels("B<")
        st["mains"]["alarm"] = "redundancy lost: phase L<2 lost"
        st["feeds"] = {"feeds": {"A": "ok", "B<": "lost"}, "alarm": "redundancy lost",
                       "hosts": [{"host": "dual", "state": "degraded", "action": ""},
                                 {"host": "b1", "state": "lost", "action": "fsd"},
                                 {"host": "a1", "state": "ok", "action": ""}]}
        html = whole_page(st, "s", 10, ())
        for frag in ('<tr data-channel="A" data-supply="good"><td>A</td><td>A</td>'
                     '<td>231.4</td><td>50.01</td>',
                     '<tr data-channel="B&lt;" data-supply="lost">', '<td>-</td>',
                     '<tr data-feed="A" data-state="ok">',
                     '<tr data-feed="B&lt;" data-state="lost"><td>Feed B&lt;</td>',
                     'data-host="dual" data-state="degraded" data-action="">dual: degraded</li>',
                     'data-host="b1" data-state="lost" data-action="fsd">b1: lost (fsd)</li>',
                     '<li class="alarm">redundancy lost: phase L&lt;2 lost</li>'):
            self.assertIn(frag, html)
        self.assertNotIn('data-host="a1"', html)  # fully powered: not listed
        self.assertNotIn('"B<', html)  # escaped in attributes and text
        self.assertNotIn("B<<", html)
        # one channel: no channel table, no feeds block
        html = whole_page(status("ONLINE"), "s", 10, ())
        self.assertNotIn('id="channels"', html)
        self.assertNotIn('id="feeds"', html)

    def test_alerts_block_when_status_has_one_and_no_refresh_at_zero(self):
        # the shape of Outbox.status()
        html = whole_page(status("ONLINE", {"depth": 4, "step_max_ms": 2, "transports": {
            "syslog": {"delivered": 9, "pending": 4}, "mqtt": {"delivered": 13}}}), "s", 0, ())
        self.assertIn('<td id="alerts-depth">4</td>', html)
        self.assertIn('<tr data-transport="syslog"><td>syslog</td><td>', html)
        self.assertIn("delivered=9", html)
        self.assertIn('<tr data-transport="mqtt">', html)
        self.assertNotIn('data-transport="transports"', html)
        self.assertNotIn("http-equiv", html)

    def test_message_page(self):
        m = _pure("drill").message("s", 409, "A drill cannot start <now>")
        self.assertIn('<p id="message">A drill cannot start &lt;now&gt;</p>', m)


def parse_metrics(text):
    """{(name, labels string): value} and {family: type}, checking the 0.0.4 layout: every
    sample follows the HELP and TYPE lines of its family, and no family repeats."""
    samples = {}
    types = {}
    fam = None
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# HELP "):
            fam = line.split(" ")[2]
            assert fam not in types, "family twice: " + fam
            continue
        if line.startswith("# TYPE "):
            w = line.split(" ")
            assert w[2] == fam, line
            types[fam] = w[3]
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{")[0]
        assert base == fam, "sample %s outside its family %s" % (base, fam)
        if types[fam] == "counter":
            assert base.endswith("_total"), base
        labels = name[len(base):]
        samples[(base, labels)] = float(value)
    return samples, types


class Metrics(TestCase):
    def setUp(self):
        global metrics
        metrics = _pure("metrics")

    def test_outage_figures(self):
        s, types = parse_metrics("".join(metrics.render(status(), {
            "requests": 5, "bad": 1, "timeouts": 0, "shed": 2, "refused": 0,
            "auth_failed": 3, "errors": 0})))
        self.assertEqual(s[("powersentinel_mains_voltage_volts", '{channel="L1"}')], 3.2)
        self.assertNotIn("powersentinel_mains_frequency_hertz", types)  # not known: absent
        self.assertEqual(s[("powersentinel_mains_events_total",
                            '{channel="L1",kind="interruption"}')], 1)
        self.assertEqual(s[("powersentinel_mains_events_total", '{channel="L1",kind="dip"}')], 0)
        self.assertEqual(s[("powersentinel_mains_losses_total", '{channel="L1"}')], 2)
        states = [k[1] for k, v in s.items() if k[0] == "powersentinel_state" and v == 1]
        self.assertEqual(states, ['{state="SHUTTING_DOWN"}'])
        self.assertEqual(len([k for k in s if k[0] == "powersentinel_state"]), 6)
        self.assertEqual(s[("powersentinel_tier_phase", '{tier="apps",phase="waiting"}')], 1)
        self.assertEqual(s[("powersentinel_tier_phase", '{tier="db",phase="idle"}')], 1)
        self.assertEqual(sum(v for k, v in s.items() if k[0] == "powersentinel_tier_phase"), 2)
        self.assertEqual(s[("powersentinel_tier_fsd", '{tier="apps"}')], 1)
        self.assertEqual(s[("powersentinel_tier_hosts_missing", '{tier="apps"}')], 1)
        self.assertEqual(s[("powersentinel_tier_hosts_connected", '{tier="db"}')], 0)
        self.assertEqual(s[("powersentinel_ups_on_battery", "")], 1)
        self.assertEqual(s[("powersentinel_ups_alarm", "")], 1)
        self.assertEqual(s[("powersentinel_ups_runtime_seconds", "")], 754)
        self.assertEqual(s[("powersentinel_nut_clients", "")], 3)
        self.assertEqual(s[("powersentinel_loop_stall_max_seconds", "")], 0.017)
        self.assertEqual(s[("powersentinel_alert_queue_depth", "")], 0)
        self.assertEqual(s[("powersentinel_http_rejected_total", '{reason="shed"}')], 2)
        self.assertEqual(types["powersentinel_adc_overruns_total"], "counter")

    def test_alert_depth_and_no_tiers_no_http(self):
        st = status("ONLINE", {"depth": 7})
        st["tiers"] = []
        s, types = parse_metrics("".join(metrics.render(st)))
        self.assertEqual(s[("powersentinel_alert_queue_depth", "")], 7)
        self.assertNotIn("powersentinel_tier_phase", types)
        self.assertNotIn("powersentinel_http_requests_total", types)

    def test_each_mains_channel_and_each_feed_on_a_two_feed_site(self):
        st = two_channels("B")
        st["feeds"] = {"feeds": {"A": "ok", "B": "lost"}, "hosts": [], "alarm": "x"}
        s, types = parse_metrics("".join(metrics.render(st)))
        v = sorted(k[1] for k in s if k[0] == "powersentinel_mains_voltage_volts")
        self.assertEqual(v, ['{channel="A"}', '{channel="B"}'])  # parse_metrics gives a dict
        self.assertEqual(s[("powersentinel_mains_voltage_volts", '{channel="B"}')], 0.4)
        self.assertEqual(s[("powersentinel_mains_frequency_hertz", '{channel="A"}')], 50.01)
        self.assertNotIn(("powersentinel_mains_frequency_hertz", '{channel="B"}'), s)
        self.assertEqual(s[("powersentinel_mains_lost", '{channel="B"}')], 1)
        self.assertEqual(s[("powersentinel_mains_good", '{channel="A"}')], 1)
        self.assertEqual(s[("powersentinel_mains_losses_total", '{channel="all"}')], 2)
        self.assertEqual(s[("powersentinel_feed_lost", '{feed="A"}')], 0)
        self.assertEqual(s[("powersentinel_feed_lost", '{feed="B"}')], 1)
        self.assertEqual(types["powersentinel_feed_lost"], "gauge")
        # a single-channel site: no feed family, the one channel is L1
        s, types = parse_metrics("".join(metrics.render(status("ONLINE"))))
        self.assertNotIn("powersentinel_feed_lost", types)
        self.assertEqual(s[("powersentinel_mains_voltage_volts", '{channel="L1"}')], 3.2)

    def test_label_and_number_formatting(self):
        self.assertEqual(metrics.label('a"b\\c\nd'), 'a\\"b\\\\c\\nd')
        self.assertEqual([metrics.num(x) for x in (True, False, 3, 2.5, None)],
                         ["1", "0", "3", "2.5", "NaN"])


def real_journal():
    """A real journal in a fresh directory holding 20 state records (the first flushed, the
    rest still batched: the page reads both)."""
    d = "/tmp/ps_web_%s" % "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(d)
    j = Journal(d, seg_size=2048, max_segments=2)
    for i in range(20):
        j.append("state", {"to": "ONLINE"}, now_ms=i * 1000, epoch=1700000000 + i)
        if i == 9:
            j.flush()
    return j


class FakeRt:
    def __init__(self, cfg):
        self.cfg = cfg
        self.logs = []
        self.journal = real_journal()

    def log(self, kind, data=None, critical=False):
        self.logs.append((kind, data))


class FakeSm:
    def __init__(self):
        self.state = "ONLINE"
        self.drill = False

    def allowed(self, c):
        return c == "drill" and not self.drill or c == "drill_stop" and self.drill


class FakeOps:
    def __init__(self, cfg):
        self.rt = FakeRt(cfg)
        self.sm = FakeSm()
        self.commands = []
        self.alerts = None  # Ops.alerts: no transport enabled

    def status(self, req=None):
        # the web reads the status a part at a time, never the whole dict (device heap)
        raise AssertionError("a web handler built the whole status")

    def part(self, k, brief=False):
        # Ops.part: one part of the status, built when asked
        return status("ONLINE").get(k)


def users_cfg():
    cfg, errs = config.validate({"nut": {"users": [
        {"name": "mon", "password": hash_password("mon-pass-1", "s1"), "role": "secondary"},
        {"name": "boss", "password": hash_password("boss-pass-1", "s2"), "role": "primary"},
        {"name": "ops", "password": hash_password("ops-pass-1", "s3"),
         "instcmds": ["sentinel.drill.start"]},
        {"name": "any", "password": hash_password("any-pass-1", "s4"), "actions": ["INSTCMD"]},
    ]}, "http": {"enabled": True, "port": PORT, "timeout_ms": 600, "max_conns": 2}})
    assert not errs, errs
    return cfg


class Access(TestCase):
    def test_who_may_start_a_drill(self):
        site = Site(FakeOps(users_cfg()), users_cfg()["http"])
        self.assertEqual(site.allowed("boss", "boss-pass-1", "drill"), True)
        self.assertEqual(site.allowed("ops", "ops-pass-1", "drill"), True)
        self.assertEqual(site.allowed("any", "any-pass-1", "drill"), True)
        self.assertEqual(site.allowed("mon", "mon-pass-1", "drill"), False)   # 403
        self.assertEqual(site.allowed("boss", "wrong", "drill"), None)        # 401
        self.assertEqual(site.allowed("nobody", "boss-pass-1", "drill"), None)

    def test_schema_defaults_are_off_and_bad_values_are_named(self):
        cfg, errs = config.validate({})
        self.assertEqual(cfg["http"], {"enabled": False, "port": 80, "bind": None,
                                       "refresh_s": 10, "recent": 6, "max_conns": 4,
                                       "timeout_ms": 5000})
        cfg, errs = config.validate({"http": {"port": 0, "bind": "10.0.0", "colour": 1}})
        self.assertEqual(len(errs), 3, errs)
        self.assertIn("http.port", errs[0])
        self.assertIn("http.bind", errs[1])
        self.assertIn("http.colour: unknown key", errs[2])


class Limiter:
    def __init__(self):
        self.failed_n = 0

    def delay_ms(self, addr, now):
        return 0

    def failed(self, addr, now):
        self.failed_n += 1

    def succeeded(self, addr, now):
        pass


async def exchange(data, pause_ms=0):
    """Send `data` (then wait pause_ms), read the answer until the server closes."""
    r, w = await asyncio.open_connection("127.0.0.1", PORT)
    try:
        w.write(data)
        await w.drain()
        if pause_ms:
            await asyncio.sleep_ms(pause_ms)
        out = b""
        while True:
            d = await asyncio.wait_for_ms(r.read(2048), 3000)
            if not d:
                return out
            out += d
    finally:
        w.close()
        await w.wait_closed()


def run_server(body, lock=None):
    cfg = users_cfg()
    ops = FakeOps(cfg)
    lim = Limiter()
    import time
    srv = WebServer(Site(ops, cfg["http"]), ROUTES, cfg["http"], lim, time.ticks_ms, lock)
    out = {}

    async def main():
        await srv.start("127.0.0.1", PORT)
        try:
            await body(srv, ops, out)
        finally:
            srv.close()
            await asyncio.sleep_ms(10)

    try:
        asyncio.run(main())
    finally:
        asyncio.new_event_loop()
    return srv, ops, lim, out


def auth(user, pw):
    return b"Authorization: Basic " + binascii.b2a_base64(
        ("%s:%s" % (user, pw)).encode()).strip() + b"\r\n"


def drill_req(a=b""):
    return b"POST /drill HTTP/1.1\r\n" + a + b"Content-Length: 12\r\n\r\naction=start"


class FakeWriter:
    """A stream writer: what the socket took (data); `stuck`: it takes nothing more (a client
    that stopped reading), so drain never returns."""

    def __init__(self, stuck=False):
        self.data = bytearray()
        self.stuck = stuck
        self.out_buf = b""
        self.drains = 0
        self.sizes = []

    def write(self, b):
        self.sizes.append(len(b))
        if self.stuck:
            self.out_buf += bytes(b)
        else:
            self.data += b

    async def drain(self):
        self.drains += 1
        while self.out_buf:
            await asyncio.sleep_ms(10)
        await asyncio.sleep_ms(0)


class ResponseWrites(TestCase):
    def test_pieces_go_out_as_their_utf8_bytes_in_buffer_sized_writes(self):
        import time
        w = FakeWriter()
        long = "\u00e9t\u00e9 " * 300  # non-ASCII, longer than the buffer: copied by slices
        body = ["<p>", long, b"raw bytes", "x" * 700, "end\n"]
        asyncio.run(Response(w, 1000, time.ticks_ms).send(200, "text/plain", iter(body)))
        head, _, rest = bytes(w.data).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertEqual(rest, b"<p>" + long.encode() + b"raw bytes" + b"x" * 700 + b"end\n")
        # through one 512-byte buffer: no write is longer, and a piece starts a new one only
        # when it does not fit in what is left
        self.assertTrue(max(w.sizes) <= 512, w.sizes)
        self.assertTrue(len(w.sizes) <= (len(w.data) + 511) // 512 + len(body), w.sizes)
        self.assertEqual(w.drains, len(w.sizes))

    def test_a_client_that_stops_reading_times_out(self):
        import time
        w = FakeWriter(stuck=True)
        t0 = time.ticks_ms()
        with self.assertRaises(asyncio.TimeoutError):
            asyncio.run(Response(w, 300, time.ticks_ms).send(200, "text/plain", "x" * 2000))
        ms = time.ticks_diff(time.ticks_ms(), t0)
        self.assertTrue(250 <= ms < 2000, ms)


class Server(TestCase):
    def test_a_handler_waits_for_the_shared_lock(self):
        # the lock is the alerts outbox's too: a page is not rendered while an alert is sent
        lock = asyncio.Lock()

        async def body(srv, ops, out):
            await lock.acquire()  # an alert being sent
            t = asyncio.create_task(exchange(b"GET /metrics HTTP/1.1\r\n\r\n"))
            await asyncio.sleep_ms(200)
            out["held"] = t.done()
            lock.release()
            out["after"] = await t

        srv, ops, lim, out = run_server(body, lock)
        self.assertFalse(out["held"])
        self.assertTrue(out["after"].startswith(b"HTTP/1.1 200 OK\r\n"))

    def test_routes_login_and_drill(self):
        async def body(srv, ops, out):
            out["metrics"] = await exchange(b"GET /metrics HTTP/1.1\r\n\r\n")
            out["page"] = await exchange(b"GET / HTTP/1.1\r\n\r\n")
            out["405"] = await exchange(b"DELETE /metrics HTTP/1.1\r\n\r\n")
            out["404"] = await exchange(b"GET /nope HTTP/1.0\r\n\r\n")
            out["none"] = await exchange(drill_req())
            out["wrong"] = await exchange(drill_req(auth("boss", "nope")))
            out["weak"] = await exchange(drill_req(auth("mon", "mon-pass-1")))
            out["right"] = await exchange(drill_req(auth("boss", "boss-pass-1")))
            ops.sm.drill = True
            out["again"] = await exchange(drill_req(auth("boss", "boss-pass-1")))

        srv, ops, lim, out = run_server(body)
        self.assertTrue(out["metrics"].startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(b"Content-Type: text/plain; version=0.0.4", out["metrics"])
        self.assertIn(b"\npowersentinel_state{state=\"ONLINE\"} 1\n", out["metrics"])
        self.assertTrue(out["page"].startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/html"))
        self.assertIn(b'<span id="state" class="b s-ONLINE"', out["page"])
        self.assertIn(b'class="tier" data-tier="apps"', out["page"])   # the second half too
        self.assertEqual(out["page"].count(b'<tr data-type="state">'), 6)  # http.recent
        self.assertTrue(out["page"].endswith(b"</html>\n"))
        self.assertTrue(out["405"].startswith(b"HTTP/1.1 405 "))
        self.assertIn(b"Allow: GET\r\n", out["405"])
        self.assertTrue(out["404"].startswith(b"HTTP/1.1 404 "))
        self.assertTrue(out["none"].startswith(b"HTTP/1.1 401 "))
        self.assertIn(b'WWW-Authenticate: Basic realm="Power Sentinel"', out["none"])
        self.assertTrue(out["wrong"].startswith(b"HTTP/1.1 401 "))
        self.assertTrue(out["weak"].startswith(b"HTTP/1.1 403 "))
        self.assertTrue(out["right"].startswith(b"HTTP/1.1 200 "))
        self.assertTrue(out["again"].startswith(b"HTTP/1.1 409 "))
        self.assertEqual(ops.commands, ["drill"])  # once: the refused one queued nothing
        self.assertEqual(lim.failed_n, 1)          # only a wrong password counts
        self.assertEqual(srv.stats["auth_failed"], 1)
        self.assertEqual(ops.rt.logs[0], ("web_drill", {"action": "start", "user": "boss",
                                                        "addr": "127.0.0.1", "result": "ok"}))
        self.assertEqual(ops.rt.logs[1][1]["result"], "refused")
        # the page and metrics modules were imported per request and dropped after it
        self.assertNotIn("sentinel.web.page", sys.modules)
        self.assertNotIn("sentinel.web.page2", sys.modules)
        self.assertNotIn("sentinel.web.page1", sys.modules)
        self.assertNotIn("sentinel.web.fmt", sys.modules)
        self.assertNotIn("sentinel.web.metrics", sys.modules)
        # the login's code (drill.login) too, after a refused login as after a drill
        self.assertNotIn("sentinel.web.drill", sys.modules)
        self.assertFalse(hasattr(WebServer, "_login"))

    def test_a_silent_client_times_out_and_a_slow_one_is_shed_for_a_newcomer(self):
        async def body(srv, ops, out):
            # max_conns 2, timeout 600 ms: a silent client is closed after the timeout
            t0 = asyncio.ticks()
            out["silent"] = await exchange(b"", 0)
            out["silent_ms"] = asyncio.ticks_diff(asyncio.ticks(), t0)
            # two slow senders fill the places; a newcomer sheds the older and is served
            r1, w1 = await asyncio.open_connection("127.0.0.1", PORT)
            w1.write(b"GET / HTTP/1.1\r\n")
            await w1.drain()
            await asyncio.sleep_ms(50)
            r2, w2 = await asyncio.open_connection("127.0.0.1", PORT)
            w2.write(b"GET / HTTP/1.1\r\n")
            await w2.drain()
            await asyncio.sleep_ms(50)
            out["newcomer"] = await exchange(b"GET /metrics HTTP/1.1\r\n\r\n")
            out["first"] = await asyncio.wait_for_ms(r1.read(100), 2000)  # closed: b""
            for w in (w1, w2):
                w.close()
                await w.wait_closed()
            out["bad"] = await exchange(b"\x16\x03\x01garbage\r\n\r\n")

        srv, ops, lim, out = run_server(body)
        self.assertEqual(out["silent"], b"")
        self.assertTrue(500 <= out["silent_ms"] < 2000, out["silent_ms"])
        self.assertTrue(out["newcomer"].startswith(b"HTTP/1.1 200 OK"))
        self.assertEqual(out["first"], b"")
        self.assertTrue(out["bad"].startswith(b"HTTP/1.1 400 "))
        self.assertTrue(srv.stats["timeouts"] >= 1)
        self.assertEqual(srv.stats["shed"], 1)
        self.assertEqual(srv.stats["bad"], 1)
        self.assertEqual(srv.conns, [])
