# STARTTLS in the NUT server without a network: the reply, ALREADY-SSL-MODE, plain text after
# STARTTLS dropped, certificates the device refuses (TLS stays off, plain NUT goes on), and the
# journal de-duplication of handshake results. The handshake itself runs against the real
# upsmon in host/tests/test_nut_tls.py.
import asyncio

from mpunit import TestCase

from sentinel import config
from sentinel.nut import protocol as P
from sentinel.nut.server import Conn, NutServer
from sentinel.nut.tls import Tls

# a self-signed P-256 certificate for CN sentinel.test (valid 100 years) and its key, DER in
# base64 as config push writes them: test data only, never used by a site
CERT = (
    "MIIBhzCCAS2gAwIBAgIUdMj0usmKCdA6g2YOCJO07lu4Ug4wCgYIKoZIzj0EAwIwGDEWMBQGA1UEAwwNc2VudGlu"
    "ZWwudGVzdDAgFw0yNjEyMDUwNTEzNTlaGA8yMTI2MTExMTA1MTM1OVowGDEWMBQGA1UEAwwNc2VudGluZWwudGVz"
    "dDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGktdhoyv2BDs5WgUBONES0xiXRmSnUeEaOyXIEdgCWA+9kgnGso"
    "pigPGzeyzJhtKwQrB4bwY8/+qoDIBoR0mM6jUzBRMB0GA1UdDgQWBBRMZCpL/VijauSTiiIgY87Pd7FTTzAfBgNV"
    "HSMEGDAWgBRMZCpL/VijauSTiiIgY87Pd7FTTzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIG4n"
    "EzF6yQO8H60CI/s7jV0mcNMUnxWEQWNo+Y5UyepUAiEAm531tZzW+G0zTfVBDxAWDBO+DY1RWCUEgJSISYMRmlg="
)
KEY = (
    "MHcCAQEEIO+B+0oaObHAOLiNgvEQfMBFz/zjnYyWabvmmcDrsO1UoAoGCCqGSM49AwEHoUQDQgAEaS12GjK/YEOz"
    "laBQE40RLTGJdGZKdR4Ro7JcgR2AJYD72SCcayimKA8bN7LMmG0rBCsHhvBjz/6qgMgGhHSYzg=="
)


class Provider:
    def ups_names(self):
        return [("apps", "Apps")]

    def status(self, ups):
        return "OL"

    def vars(self, ups):
        return [("battery.charge", 100)]


class Writer:
    def __init__(self):
        self.out = b""

    def write(self, data):
        self.out += data

    async def drain(self):
        pass


class Upgrades:
    """Stands in for Tls in _feed: records the upgrade instead of wrapping a socket."""

    handshake_ms = 1000

    def __init__(self):
        self.upgraded = []

    def upgrade(self, writer, addr):
        self.upgraded.append(writer)
        return "raw"


def nut(**kw):
    cfg, errs = config.validate({"nut": kw})
    assert not errs, errs
    return cfg["nut"]


class TestStartTls(TestCase):
    def server(self, **kw):
        return NutServer(nut(**kw), Provider(), lambda: 1000)

    def test_plain_by_default(self):
        srv = self.server()
        self.assertIsNone(srv.tls)
        self.assertIsNone(srv.tls_error)
        c = Conn("10.0.0.5", 4000, 1000, 512)
        self.assertEqual(srv.handle(c, P.split("STARTTLS")), "ERR FEATURE-NOT-CONFIGURED\n")
        self.assertEqual(c.tls, 0)

    def test_configured_answers_ok_then_already(self):
        srv = self.server(tls_cert=CERT, tls_key=KEY, tls_handshake_s=3)
        self.assertIsNone(srv.tls_error)
        self.assertEqual(srv.tls.handshake_ms, 3000)
        c = Conn("10.0.0.5", 4000, 1000, 512)
        self.assertEqual(srv.handle(c, P.split("STARTTLS")), "OK STARTTLS\n")
        self.assertEqual(c.tls, 1)
        self.assertEqual(srv.handle(c, P.split("STARTTLS")), "ERR ALREADY-SSL-MODE\n")

    def test_plain_text_behind_starttls_is_dropped(self):
        srv = self.server()
        srv.tls = Upgrades()
        c = Conn("10.0.0.5", 4000, 1000, 512)
        w = Writer()
        how = asyncio.run(srv._feed(c, w, b"STARTTLS\nUSERNAME mallory\nPASSWORD x\nLOGIN a"))
        self.assertIsNone(how)
        self.assertEqual(w.out, b"OK STARTTLS\n")  # nothing answered after it
        self.assertEqual(srv.tls.upgraded, [w])
        self.assertIsNone(c.user)
        # the parser starts afresh: the half line "LOGIN a" is gone
        asyncio.run(srv._feed(c, w, b"VER\n"))
        self.assertTrue(w.out.endswith(P.VERSION_LINE.encode() + b"\n"))

    def test_an_upgrade_without_memory_fails_that_connection_only(self):
        seen = []
        srv = NutServer(nut(tls_cert=CERT, tls_key=KEY), Provider(), lambda: 1000,
                        on_tls=lambda addr, result: seen.append((addr, result)))

        class NoMemory:
            def wrap_socket(self, *a, **kw):
                raise MemoryError("no room for the TLS session")

        srv.tls.ctx = NoMemory()
        c = Conn("10.0.0.5", 4000, 1000, 512)
        w = Writer()
        w.s = "tcp socket"
        self.assertEqual(asyncio.run(srv._feed(c, w, b"STARTTLS\n")), "tls_fail")
        self.assertEqual(w.out, b"OK STARTTLS\n")
        self.assertEqual(w.s, "tcp socket")  # left as it was, closed with the connection
        self.assertEqual(seen, [("10.0.0.5", "failed")])

    def test_bad_certificates_leave_plain_nut(self):
        for cert, key, why in ((CERT[:100], KEY, "tls_cert"), (CERT, "", "tls_key is empty"),
                               ("not base64!", KEY, "tls_cert")):
            srv = self.server(tls_cert=cert, tls_key=key)
            self.assertIsNone(srv.tls)
            self.assertIn(why, srv.tls_error)
            c = Conn("10.0.0.5", 4000, 1000, 512)
            self.assertEqual(srv.handle(c, P.split("STARTTLS")),
                             "ERR FEATURE-NOT-CONFIGURED\n")

    def test_repeated_results_are_reported_once(self):
        seen = []
        t = Tls(CERT, KEY, 1000, lambda addr, result: seen.append((addr, result)))
        for addr, result in (("10.0.0.5", "timeout"), ("10.0.0.5", "timeout"),
                             ("10.0.0.5", "ok"), ("10.0.0.6", "ok"), ("10.0.0.5", "ok")):
            t.report(addr, result)
        self.assertEqual(seen, [("10.0.0.5", "timeout"), ("10.0.0.5", "ok"),
                                ("10.0.0.6", "ok"), ("10.0.0.5", "ok")])
        t.on_result = lambda addr, result: 1 // 0  # a failing callback is counted, not raised
        t.report("10.0.0.7", "failed")
        self.assertEqual(t.errors, 1)
