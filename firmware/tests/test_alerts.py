# Alerts' pure parts under the real MicroPython: the kind table, RFC 5424 formatting, HMAC,
# SMTP dot-stuffing, backoff, and the outbox over a real Journal in a temporary directory
# (delivery order, retries per lane, rejection, cursor resume across a "reboot", rotation).
import asyncio
import os

from mpunit import TestCase
from sentinel import journalread
from sentinel.alerts import Rejected
from sentinel.alerts import delivery, kinds, outbox, smtp, syslog, util, webhook
from sentinel.journal import Journal


def _alert(**kw):
    a = {"id": 42, "ts": 1796447334, "site": "paris dc", "kind": "mains_lost",
         "severity": "crit", "text": "mains lost (3.1 V)", "data": {"v": 3.1}}
    a.update(kw)
    return a


class Kinds(TestCase):
    def test_state_severity_follows_the_state_entered(self):
        self.assertEqual(kinds.classify("state", {"from": "ONLINE", "to": "ON_BATTERY",
                                                  "cause": "mains_lost"}),
                         ("warning", "state ONLINE -> ON_BATTERY (mains_lost)"))
        self.assertEqual(kinds.classify("state", {"to": "SHUTTING_DOWN"})[0], "crit")
        self.assertEqual(kinds.classify("state", {"to": "ONLINE"})[0], "notice")

    def test_non_alert_records_are_skipped(self):
        for k in ("policy", "wol", "nut_login", "alert_rejected", "test", "capture", "mains",
                  "boo", "power_on/"):
            self.assertIsNone(kinds.classify(k, {}), k)

    def test_every_entry_is_a_known_severity_and_fills(self):
        ks = kinds.kinds()
        self.assertGreater(len(ks), 30)
        self.assertEqual(len(set(ks)), len(ks))
        for k in ks:
            sev, tpl = kinds.entry(k)
            self.assertIn(sev, kinds.SEVERITIES, k)
            self.assertNotIn("{", kinds.fill(tpl, {}), k)

    def test_fill(self):
        self.assertEqual(kinds.fill("tier {tier}: {n} {missing}", {"tier": "db", "n": 3}),
                         "tier db: 3 ?")
        self.assertEqual(kinds.fill("tiers {tiers}", {"tiers": ["a", "b"]}), "tiers a, b")
        self.assertEqual(kinds.fill("{unclosed", {}), "{unclosed")

    def test_failures_are_more_severe(self):
        self.assertEqual(kinds.classify("drill", {"ok": False})[0], "err")
        self.assertEqual(kinds.classify("drill", {"ok": True})[0], "notice")
        self.assertEqual(kinds.classify("ups_off", {"ok": False})[0], "alert")
        self.assertEqual(kinds.classify("network", {"state": "down"})[0], "warning")
        self.assertEqual(kinds.classify("network", {"state": "up"})[0], "notice")
        self.assertEqual(kinds.classify("power_on", {"tier": "db", "up": 2, "failed": []}),
                         ("notice", "power-on: tier db, 2 host(s) up, not up: "))
        self.assertEqual(kinds.classify("power_on", {"done": True, "failed": ["pg1"]}),
                         ("err", "power-on finished; hosts not up: pg1"))

    def test_alert_dict(self):
        a = kinds.alert((7, 1796447334, 5, "mains_lost", {"v": 2.0}), "s1")
        self.assertEqual(a, {"id": 7, "ts": 1796447334, "site": "s1", "kind": "mains_lost",
                             "severity": "crit", "text": "mains lost (2.0 V)",
                             "data": {"v": 2.0}})
        self.assertIsNone(kinds.alert((8, 0, 0, "policy", {}), "s1"))


class Time(TestCase):
    def test_utc(self):
        self.assertEqual(util.utc(0), (1970, 1, 1, 0, 0, 0, 3))
        self.assertEqual(util.utc(1796447334), (2026, 12, 5, 5, 8, 54, 5))
        self.assertEqual(util.utc(1709251199)[:6], (2024, 2, 29, 23, 59, 59))

    def test_formats(self):
        self.assertEqual(util.iso(1796447334), "2026-12-05T05:08:54Z")
        self.assertIsNone(util.iso(1000))
        self.assertEqual(util.rfc5322(1796447334), "Sat, 05 Dec 2026 05:08:54 +0000")
        self.assertEqual(util.rfc5322(1709251199), "Thu, 29 Feb 2024 23:59:59 +0000")
        self.assertEqual(util.rfc5322(1767225600), "Thu, 01 Jan 2026 00:00:00 +0000")

    def test_facility_codes_match_the_schema(self):
        from sentinel import schema
        for i, name in enumerate(schema.FACILITIES):
            self.assertEqual(syslog.facility_code(name), i)


class Syslog(TestCase):
    def test_rfc5424_message(self):
        m = syslog.format_message(_alert(), syslog.facility_code("local0"))
        self.assertEqual(m, '<130>1 2026-12-05T05:08:54Z paris_dc powersentinel - mains_lost '
                            '[ps@32473 id="42" severity="crit" site="paris dc"] mains lost (3.1 V)')

    def test_facility_severity_and_unknown_time(self):
        m = syslog.format_message(_alert(severity="notice", ts=0, kind="boot"),
                                  syslog.facility_code("daemon"))
        self.assertTrue(m.startswith("<29>1 - paris_dc powersentinel - boot "), m)

    def test_structured_data_escapes(self):
        m = syslog.format_message(_alert(site='a"b]c\\'), 23)
        self.assertIn('site="a\\"b\\]c\\\\"', m)

    def test_octet_counting(self):
        f = syslog.frame("<1>1 x é")
        self.assertEqual(f, b"9 <1>1 x \xc3\xa9")


class Hmac(TestCase):
    # RFC 4231 test cases 2 and 6 (a key longer than the block is hashed first)
    def test_rfc4231(self):
        import binascii
        h = webhook.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
        self.assertEqual(binascii.hexlify(h),
                         b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        h = webhook.hmac_sha256(b"\xaa" * 131,
                                b"Test Using Larger Than Block-Size Key - Hash Key First")
        self.assertEqual(binascii.hexlify(h),
                         b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")

    def test_request_and_outcome(self):
        req = webhook.request(_alert(), "127.0.0.1", 8080, "/hook", "s3cret")
        head, body = req.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"POST /hook HTTP/1.1\r\n"))
        self.assertIn(b"Content-Length: %d" % len(body), head)
        self.assertIn(b"X-PowerSentinel-Id: 42", head)
        self.assertIn(webhook.signature("s3cret", body).encode(), head)
        self.assertIsNone(webhook.outcome(b"HTTP/1.1 204 No Content\r\n"))
        self.assertRaises(Rejected, webhook.outcome, b"HTTP/1.1 401 Unauthorized\r\n")
        self.assertRaises(OSError, webhook.outcome, b"HTTP/1.1 429 Too Many\r\n")
        self.assertRaises(OSError, webhook.outcome, b"HTTP/1.1 503 Busy\r\n")
        self.assertRaises(OSError, webhook.outcome, b"garbage")

    def test_parse_url(self):
        self.assertEqual(webhook.parse_url("http://10.0.0.5:8080/a/b"), ("10.0.0.5", 8080, "/a/b"))
        self.assertEqual(webhook.parse_url("http://hooks.lan"), ("hooks.lan", 80, "/"))
        self.assertRaises(ValueError, webhook.parse_url, "https://x/")


class Smtp(TestCase):
    def test_dot_stuffing(self):
        self.assertEqual(smtp.dot_stuff("a\n.b\n..c\nd."), "a\r\n..b\r\n...c\r\nd.")
        self.assertEqual(smtp.dot_stuff(".\r\nx"), "..\r\nx")

    def test_message(self):
        m = smtp.message(_alert(text="lost\n.evil"), "ps@site", ["a@x", "b@y"])
        self.assertIn("Subject: [paris dc] crit: lost .evil\n", m)
        self.assertIn("Message-ID: <alert-42.paris_dc@powersentinel>\n", m)
        self.assertIn("Date: Sat, 05 Dec 2026 05:08:54 +0000\n", m)
        self.assertIn("To: a@x, b@y\n", m)
        self.assertEqual(smtp.recipients(" a@x, ,b@y "), ["a@x", "b@y"])


class Backoff(TestCase):
    def test_doubles_to_the_cap(self):
        d = 0
        seen = []
        for _ in range(12):
            d = delivery.next_delay(d, 1000, 300000)
            seen.append(d)
        self.assertEqual(seen[:4], [1000, 2000, 4000, 8000])
        self.assertEqual(seen[-1], 300000)

    def test_jitter_bounds(self):
        for r in (0, 1, 499, 500, 501, 123456789):
            j = delivery.jitter(1000, r)
            self.assertTrue(750 <= j <= 1250, j)
        self.assertEqual(delivery.jitter(1000, 0), 750)


# ---- the outbox over a real journal ---------------------------------------------------------

def _tmpdir():
    d = "/tmp/ps_alerts_%s" % "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(d)
    return d


def _rmtree(d):
    for name in os.listdir(d):
        p = d + "/" + name
        try:
            _rmtree(p)
        except OSError:
            os.remove(p)
    os.rmdir(d)


class FakeTransport:
    """Records what it is asked to send; fails while `down`, rejects ids in `reject`."""

    def __init__(self):
        self.got = []
        self.down = False
        self.reject = ()
        self.closed = 0

    async def send(self, alert):
        if self.down:
            raise OSError("receiver down")
        if alert["id"] in self.reject:
            raise Rejected("401")
        self.got.append(alert["id"])

    async def close(self):
        self.closed += 1


def _cfg(**kw):
    sec = {"enabled": False, "timeout_ms": 1000}
    a = {"min_severity": "notice", "backoff_min_ms": 1000, "backoff_max_ms": 8000,
         "syslog": sec, "webhook": sec, "smtp": sec, "mqtt": sec}
    a.update(kw)
    return {"site": {"name": "t"}, "alerts": a}


class OutboxBase:
    """A fresh journal in a temporary directory, fake transports, a hand-driven outbox."""

    def setUp(self):
        self.d = _tmpdir()
        self.t = [0]  # the outbox's ms clock, moved by hand
        self.j = Journal(self.d, seg_size=2048, max_segments=2)

    def tearDown(self):
        _rmtree(self.d)

    def box(self, names=("syslog", "webhook"), **kw):
        self.ts = {n: FakeTransport() for n in names}
        log = lambda k, d=None, critical=False: self.j.append(k, d, critical=critical)  # noqa
        return outbox.Outbox(self.j, _cfg(**kw), self.d, lambda: self.t[0], log,
                             transports=self.ts, rnd=lambda: 0)

    def pump(self, box, rounds=50):
        async def go():
            for _ in range(rounds):
                for lane in box.lanes:
                    delivery.scan(box, lane)
                    if lane.ids and box.now() >= lane.next_at:
                        await delivery.deliver(box, lane)
        asyncio.run(go())


class OutboxTest(OutboxBase, TestCase):
    def test_in_order_only_alerts_above_min_severity(self):
        b = self.box()
        ids = [self.j.append("mains_lost", {"v": 1.0}), self.j.append("policy", {}),
               self.j.append("host_up", {"host": "h"}),  # info: below notice
               self.j.append("state", {"to": "ON_BATTERY"}), self.j.append("alert_test", {})]
        self.pump(b)
        want = [ids[0], ids[3], ids[4]]
        self.assertEqual(self.ts["syslog"].got, want)
        self.assertEqual(self.ts["webhook"].got, want)
        # the batched records were flushed before being sent
        self.assertEqual(self.j.committed, ids[-1])
        st = b.status()
        self.assertEqual(st["transports"]["syslog"]["delivered"], ids[4])
        self.assertEqual(st["depth"], 0)

    def test_a_failing_lane_retries_with_backoff_and_others_go_on(self):
        b = self.box()
        self.ts["webhook"].down = True
        a1 = self.j.append("alert_test", {})
        a2 = self.j.append("alert_test", {})
        self.pump(b, 5)
        self.assertEqual(self.ts["syslog"].got, [a1, a2])
        self.assertEqual(self.ts["webhook"].got, [])
        wl = [ln for ln in b.lanes if ln.name == "webhook"][0]
        self.assertEqual(wl.failures, 1)  # the clock did not move: no second try yet
        self.assertEqual(wl.next_at, 750)
        self.assertEqual(b.status()["transports"]["webhook"]["pending"], 2)
        self.assertIn("receiver down", b.status()["transports"]["webhook"]["error"])
        self.t[0] = 800
        self.pump(b, 1)
        self.assertEqual(wl.failures, 2)
        self.assertEqual(wl.next_at, 800 + 1500)  # 2000 ms jittered down by the fixed rnd
        self.ts["webhook"].down = False
        self.t[0] = 5000
        self.pump(b)
        self.assertEqual(self.ts["webhook"].got, [a1, a2])
        self.assertEqual(wl.delay, 0)

    def test_rejected_is_logged_and_skipped(self):
        b = self.box(("webhook",))
        a1 = self.j.append("alert_test", {})
        a2 = self.j.append("alert_test", {})
        self.ts["webhook"].reject = (a1,)
        self.pump(b)
        self.assertEqual(self.ts["webhook"].got, [a2])
        recs = [r for r in journalread.read(self.j, 0, 50) if r[3] == "alert_rejected"]
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0][4]["id"], a1)

    def test_cursor_resumes_after_a_reboot(self):
        b = self.box(("smtp",))
        a1 = self.j.append("alert_test", {})
        self.pump(b)
        self.ts["smtp"].down = True
        a2 = self.j.append("alert_test", {}, critical=True)
        a3 = self.j.append("mains_lost", {}, critical=True)
        self.pump(b, 3)
        # reboot: a new journal and outbox over the same directory
        self.j = Journal(self.d, seg_size=2048, max_segments=2)
        b2 = self.box(("smtp",))
        self.pump(b2)
        self.assertEqual(self.ts["smtp"].got, [a2, a3])
        self.assertNotIn(a1, self.ts["smtp"].got)

    def test_new_transport_starts_at_the_present(self):
        self.j.append("alert_test", {}, critical=True)
        b = self.box(("syslog",))
        self.pump(b)
        self.assertEqual(self.ts["syslog"].got, [])

    def test_rotation_past_the_cursor_is_logged(self):
        b = self.box(("syslog",))
        self.ts["syslog"].down = True
        first = self.j.append("alert_test", {}, critical=True)
        for i in range(120):  # 2 segments of 2 KB: the first record is rotated away
            self.j.append("policy", {"pad": "x" * 40, "i": i}, critical=True)
        self.assertGreater(journalread.first_seq(self.j), first)
        self.ts["syslog"].down = False
        self.pump(b, 80)
        lost = [r for r in journalread.read(self.j, 0, 200) if r[3] == "alerts_lost"]
        self.assertEqual(len(lost), 1)
        self.assertGreater(lost[0][4]["count"], 0)
        self.assertEqual(self.ts["syslog"].got, [lost[0][0]])


class Config(TestCase):
    def test_off_by_default(self):
        from sentinel import config
        cfg = config.defaults()["alerts"]
        for name in ("syslog", "webhook", "smtp", "mqtt"):
            self.assertFalse(cfg[name]["enabled"], name)
        self.assertEqual(cfg["syslog"]["proto"], "tcp")
        self.assertEqual(cfg["mqtt"]["port"], 1883)

    def test_clear_errors_for_an_unusable_transport(self):
        from sentinel import config
        cfg, errs = config.validate({"alerts": {
            "backoff_min_ms": 5000, "backoff_max_ms": 2000,
            "syslog": {"enabled": True, "facility": "local9"},
            "webhook": {"enabled": True, "url": "https://x/"},
            "smtp": {"enabled": True, "host": "10.0.0.1", "to": "a@b"}}})
        self.assertIn('alerts.syslog.facility: "local9" is not allowed; allowed: "kern", "user", '
                      '"mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", '
                      '"authpriv", "ftp", "ntp", "audit", "console", "cron2", "local0", "local1", '
                      '"local2", "local3", "local4", "local5", "local6", "local7"', errs)
        self.assertIn("alerts.syslog.host: must be given when alerts.syslog.enabled is true",
                      errs)
        self.assertIn('alerts.webhook.url: https://x/ must start with http:// (https is not '
                      'supported)', errs)
        self.assertIn("alerts.smtp.sender: must be given when alerts.smtp.enabled is true", errs)
        self.assertIn("alerts.backoff_max_ms: must be at least backoff_min_ms (5000)", errs)
        self.assertEqual(len(errs), 5, errs)

    def test_mqtt_topic_prefixes_without_wildcards(self):
        from sentinel import config
        _, errs = config.validate({"alerts": {"mqtt": {
            "enabled": True, "host": "broker", "topic_prefix": "site/#",
            "discovery_prefix": "ha/"}}})
        self.assertEqual(errs, [
            "alerts.mqtt.topic_prefix: site/# must not hold + or # nor start or end with /",
            "alerts.mqtt.discovery_prefix: ha/ must not hold + or # nor start or end with /"])
        _, errs = config.validate({"alerts": {"mqtt": {"enabled": True, "host": "b",
                                                        "topic_prefix": "a/b"}}})
        self.assertEqual(errs, [])


class OutboxFlash(OutboxBase, TestCase):
    def test_only_records_on_flash_are_sent(self):
        b = self.box(("syslog",))
        real = self.j.flush
        self.j.flush = lambda: 0  # flash failing: the batch stays in RAM
        a1 = self.j.append("alert_test", {})
        lane = b.lanes[0]
        self.assertFalse(delivery.scan(b, lane))
        self.assertEqual(lane.ids, [])
        self.pump(b, 3)
        self.assertEqual(self.ts["syslog"].got, [])
        self.j.flush = real
        self.pump(b)
        self.assertEqual(self.ts["syslog"].got, [a1])


class Slow(FakeTransport):
    """A receiver that accepts the connection and never answers."""

    async def send(self, alert):
        await asyncio.sleep_ms(60000)


class OutboxFaults(OutboxBase, TestCase):
    def test_a_send_past_its_timeout_is_retried_and_others_go_on(self):
        b = self.box(("syslog", "webhook"))
        b.lanes[1].t = Slow()
        b.lanes[1].timeout_ms = 50
        a1 = self.j.append("alert_test", {}, critical=True)
        self.pump(b, 2)
        self.assertEqual(self.ts["syslog"].got, [a1])
        st = b.status()["transports"]["webhook"]
        self.assertEqual((st["failures"], st["pending"], st["delivered"] < a1), (1, 1, True))
        self.assertIn("TimeoutError", st["error"])
        self.assertEqual(b.lanes[1].t.closed, 1)  # the half-open connection is dropped

    def test_a_transport_that_cannot_be_built_is_reported_not_fatal(self):
        saved = outbox.TRANSPORTS
        outbox.TRANSPORTS = (("syslog", "sentinel.alerts.no_such_module"),) + saved[1:]
        try:
            cfg = _cfg(syslog={"enabled": True, "timeout_ms": 1000})
            log = lambda k, d=None, critical=False: self.j.append(k, d)  # noqa: E731
            b = outbox.Outbox(self.j, cfg, self.d, lambda: 0, log)
        finally:
            outbox.TRANSPORTS = saved
        self.assertEqual(b.enabled(), ["syslog"])
        st = b.status()["transports"]["syslog"]
        self.assertFalse(st["ok"])
        self.assertIn("ImportError", st["error"])
        self.j.append("alert_test", {}, critical=True)

        async def one_round():  # the task skips the lane that cannot send
            t = asyncio.create_task(b.run())
            await asyncio.sleep_ms(50)
            t.cancel()
        asyncio.run(one_round())
        asyncio.new_event_loop()  # drop the cancelled task: the next test starts clean
        self.assertEqual(b.status()["transports"]["syslog"]["pending"], 0)


class OutboxShared(OutboxBase, TestCase):
    """Each step of the outbox runs under its lock (the web handlers' too), with the delivery
    code imported for the step only."""

    def test_no_send_while_the_lock_is_held_and_the_work_is_not_kept(self):
        import sys
        lock = asyncio.Lock()
        self.ts = {"syslog": FakeTransport()}
        log = lambda k, d=None, critical=False: self.j.append(k, d, critical=critical)  # noqa
        b = outbox.Outbox(self.j, _cfg(), self.d, lambda: 0, log, transports=self.ts,
                          rnd=lambda: 0, lock=lock)
        self.assertNotIn("sentinel.alerts.delivery", sys.modules)
        a1 = self.j.append("alert_test", {}, critical=True)
        seen = {}

        async def go():
            await lock.acquire()  # a page being rendered
            t = asyncio.create_task(b.run())
            await asyncio.sleep_ms(300)
            seen["held"] = list(self.ts["syslog"].got)
            lock.release()
            for _ in range(100):
                if self.ts["syslog"].got:
                    break
                await asyncio.sleep_ms(10)
            await asyncio.sleep_ms(20)
            seen["loaded"] = "sentinel.alerts.delivery" in sys.modules
            t.cancel()
        asyncio.run(go())
        asyncio.new_event_loop()
        self.assertEqual(seen["held"], [])
        self.assertEqual(self.ts["syslog"].got, [a1])
        self.assertFalse(seen["loaded"])
