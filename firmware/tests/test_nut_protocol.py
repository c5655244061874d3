# NUT protocol splitting/formatting (sentinel.nut.protocol), the failed-login limiter and the
# password checks the server uses (sentinel.nut.auth, re-exporting sentinel.passwd).
from mpunit import TestCase

from sentinel.nut import protocol as P
from sentinel.nut.auth import LoginLimiter, check_password
from sentinel.passwd import hash_password


class TestSplit(TestCase):
    def test_words_and_case_preserved(self):
        self.assertEqual(P.split("GET VAR apps ups.status"), ["GET", "VAR", "apps", "ups.status"])
        self.assertEqual(P.split("get Var APPS x\n"), ["get", "Var", "APPS", "x"])

    def test_whitespace_cr_tab_vt_ff(self):
        self.assertEqual(P.split("\rGET\rVAR apps\tups.status\r\n"),
                         ["GET", "VAR", "apps", "ups.status"])
        self.assertEqual(P.split("GET UPSDESC\x0bapps\x0c"), ["GET", "UPSDESC", "apps"])

    def test_empty_and_comment_lines(self):
        self.assertEqual(P.split(""), [])
        self.assertEqual(P.split("   "), [])
        self.assertEqual(P.split("# only a comment"), [])
        self.assertEqual(P.split("VER # trailing"), ["VER"])
        self.assertEqual(P.split("GET VAR apps#x ups.status"), ["GET", "VAR", "apps"])

    def test_quotes(self):
        self.assertEqual(P.split('SET VAR a b "two words"'), ["SET", "VAR", "a", "b", "two words"])
        self.assertEqual(P.split('GET VAR apps ""'), ["GET", "VAR", "apps", ""])
        # a quote inside a word is an ordinary byte; a closing quote ends the word
        self.assertEqual(P.split('GET UPSDESC ap"ps"'), ["GET", "UPSDESC", 'ap"ps"'])
        self.assertEqual(P.split('GET UPSDESC "ap"ps'), ["GET", "UPSDESC", "ap", "ps"])

    def test_backslash_escapes(self):
        self.assertEqual(P.split('X "a\\"b"'), ["X", 'a"b'])
        self.assertEqual(P.split("X a\\ b"), ["X", "a b"])
        self.assertEqual(P.split("X a\\\\b"), ["X", "a\\b"])
        self.assertEqual(P.split('X "a\\#b"'), ["X", "a#b"])
        # backslash-newline continues the line
        self.assertEqual(P.split("X ups.sta\\\ntus"), ["X", "ups.status"])

    def test_equals_is_a_word(self):
        self.assertEqual(P.split("a=b"), ["a", "=", "b"])
        self.assertEqual(P.split("=a"), ["=", "a"])
        self.assertEqual(P.split('"a=b"'), ["a=b"])

    def test_hash_inside_quotes_drops_line(self):
        self.assertIsNone(P.split('GET UPSDESC "apps#x"'))

    def test_quote_spans_newline_and_newline_is_dropped(self):
        p = P.LineParser()
        res = [p.push(b) for b in b'GET VAR apps "ups.status\n"\n']
        self.assertEqual(res.count(P.LINE), 1)
        self.assertEqual(p.args(), ["GET", "VAR", "apps", "ups.status"])

    def test_non_printable_discarded_but_start_word(self):
        self.assertEqual(P.split(b"GET UPSDESC a\x01pps\n"), ["GET", "UPSDESC", "apps"])
        self.assertEqual(P.split(b"GET UPSDESC a\xc3\xa9pps\x7f\n"), ["GET", "UPSDESC", "apps"])
        self.assertEqual(P.split(b"GET UPSDESC \x01 apps\n"), ["GET", "UPSDESC", "", "apps"])
        for w in P.split(bytes(range(11, 256))):
            for ch in w:
                self.assertTrue(" " <= ch <= "~")

    def test_word_limit(self):
        words = P.split("W " * 40)
        self.assertEqual(len(words), P.MAX_ARGS)
        self.assertEqual(words[-1], "W")

    def test_too_long_then_recovers(self):
        p = P.LineParser(maxline=64, maxraw=256)
        for b in b"GET UPSDESC " + b"a" * 80 + b"\n":
            r = p.push(b)
        self.assertEqual(r, P.LINE)
        self.assertTrue(p.too_long)
        for b in b"VER\n":
            r = p.push(b)
        self.assertEqual(r, P.LINE)
        self.assertFalse(p.too_long)
        self.assertEqual(p.args(), ["VER"])

    def test_buffer_starts_small_and_grows_to_maxline_for_a_long_line(self):
        p = P.LineParser(maxline=512, maxraw=2048)
        self.assertEqual(len(p.buf), 64)  # per client on the board: not a full line each
        for b in b"GET VAR apps ups.status\n":
            r = p.push(b)
        self.assertEqual((r, len(p.buf)), (P.LINE, 64))
        # the buffer keeps the words without their spaces: a 64-byte upsmon-style line fits
        line = b"GET VAR storage-tier-long ups.battery.runtime.low.warning"
        self.assertEqual(len(line), 57)
        for b in line + b"\n":
            r = p.push(b)
        self.assertEqual((r, len(p.buf)), (P.LINE, 64))
        self.assertEqual(p.args()[3], "ups.battery.runtime.low.warning")
        val = "v" * 400
        for b in b'SET VAR apps ups.id "' + val.encode() + b'"\n':
            r = p.push(b)
        self.assertEqual(r, P.LINE)
        self.assertFalse(p.too_long)
        self.assertEqual(p.args(), ["SET", "VAR", "apps", "ups.id", val])
        self.assertEqual(len(p.buf), 512)
        for b in b"X " + b"a" * 520 + b"\n":  # past maxline: too long, the buffer not grown
            r = p.push(b)
        self.assertEqual(r, P.LINE)
        self.assertTrue(p.too_long)
        self.assertEqual(len(p.buf), 512)

    def test_raw_bound_is_abuse(self):
        p = P.LineParser(maxline=64, maxraw=100)
        res = [p.push(b) for b in b"#" * 101]
        self.assertEqual(res[99], P.MORE)
        self.assertEqual(res[100], P.ABUSE)

    def test_two_lines_in_one_buffer(self):
        p = P.LineParser()
        got = []
        for b in b"VER\r\nGET VAR apps ups.status\n":
            if p.push(b) == P.LINE:
                got.append(p.args())
        self.assertEqual(got, [["VER"], ["GET", "VAR", "apps", "ups.status"]])

    def test_push_does_not_allocate(self):
        try:
            import micropython
        except ImportError:
            return  # CPython: nothing to prove
        p = P.LineParser()
        data = b'GET VAR apps "ups.status" # c\n'
        results = [0] * len(data)
        p.push(10)  # first line completes, so the next push resets the state
        micropython.heap_lock()
        try:
            for i in range(len(data)):
                results[i] = p.push(data[i])
        finally:
            micropython.heap_unlock()
        self.assertEqual(results[-1], P.LINE)
        self.assertEqual(p.args(), ["GET", "VAR", "apps", "ups.status"])


class TestReplies(TestCase):
    def test_error_codes_name_upsd_words(self):
        # small ints on the device; the words on the wire and in journal records are upsd's
        self.assertEqual(P.err(P.ACCESS_DENIED), "ERR ACCESS-DENIED\n")
        self.assertEqual(P.err(P.INVALID_VALUE), "ERR INVALID-VALUE\n")
        self.assertEqual(P.name(P.DATA_STALE), "DATA-STALE")
        self.assertEqual(P.name(P.TOO_LONG), "TOO-LONG")
        names = ("ACCESS_DENIED UNKNOWN_UPS VAR_NOT_SUPPORTED CMD_NOT_SUPPORTED INVALID_ARGUMENT "
                 "INSTCMD_FAILED SET_FAILED READONLY TOO_LONG FEATURE_NOT_SUPPORTED "
                 "FEATURE_NOT_CONFIGURED ALREADY_SSL_MODE DRIVER_NOT_CONNECTED DATA_STALE "
                 "ALREADY_LOGGED_IN INVALID_PASSWORD ALREADY_SET_PASSWORD INVALID_USERNAME "
                 "ALREADY_SET_USERNAME USERNAME_REQUIRED PASSWORD_REQUIRED UNKNOWN_COMMAND "
                 "INVALID_VALUE").split()
        codes = set()
        for n in names:
            c = getattr(P, n)
            codes.add(c)
            self.assertEqual(P.name(c), n.replace("_", "-"))
        self.assertEqual(len(codes), len(names))

    def test_encode(self):
        self.assertEqual(P.encode('say "hi" #1 \\ back'), 'say \\"hi\\" \\#1 \\\\ back')
        self.assertEqual(P.encode("plain"), "plain")
        self.assertEqual(P.encode(230.5), "230.5")

    def test_var_lines(self):
        self.assertEqual(P.var_line("apps", "ups.status", "OL"), 'VAR apps ups.status "OL"\n')
        self.assertEqual(P.var_line("apps", "x", 'a"b', "RW"), 'RW apps x "a\\"b"\n')
        self.assertEqual(P.numlogins_line("apps", 3), "NUMLOGINS apps 3\n")
        self.assertEqual(P.upsdesc_line("apps", "A #1"), 'UPSDESC apps "A \\#1"\n')

    def test_status_fsd_prefix(self):
        self.assertEqual(P.status_value("OB LB", True), "FSD OB LB")
        self.assertEqual(P.status_value("OL", False), "OL")

    def test_type_desc_list(self):
        self.assertEqual(P.type_line("a", "v", True, "STRING:32"), "TYPE a v RW STRING:32\n")
        self.assertEqual(P.type_line("a", "v", False, "NUMBER"), "TYPE a v NUMBER\n")
        self.assertEqual(P.desc_line("a", "v", None), 'DESC a v "Description unavailable"\n')
        self.assertEqual(P.desc_line("a", "load.off", "Turn", "CMDDESC"), 'CMDDESC a load.off "Turn"\n')
        self.assertEqual(P.begin_list("VAR apps"), "BEGIN LIST VAR apps\n")
        self.assertEqual(P.end_list("UPS"), "END LIST UPS\n")
        self.assertEqual(P.ups_line("apps", ""), 'UPS apps "Description unavailable"\n')
        self.assertEqual(P.client_line("apps", "10.0.0.5"), "CLIENT apps 10.0.0.5\n")
        self.assertEqual(P.err(P.DATA_STALE), "ERR DATA-STALE\n")

    def test_descriptions_load_on_demand_and_leave(self):
        import sys
        self.assertEqual(P.describe("UPS.Status"), "UPS status")
        self.assertEqual(P.describe("load.off", True), "Turn off the load immediately")
        self.assertIsNone(P.describe("load.off"))  # a command is not a variable
        self.assertIsNone(P.describe("no.such.var"))
        # the tables are not kept on the heap after the request
        self.assertNotIn("sentinel.nut.descs", sys.modules)
        self.assertFalse("descs" in sys.modules["sentinel.nut"].__dict__)

    def test_parser_word_ends_hold_a_full_line(self):
        # 16-bit word ends: offsets up to maxline survive a round trip
        p = P.LineParser(600, 4096)
        for c in b"A" * 590 + b" B\n":
            r = p.push(c)
        self.assertEqual(r, P.LINE)
        self.assertEqual([len(w) for w in p.args()], [590, 1])


class TestAuth(TestCase):
    def test_hash_roundtrip(self):
        h = hash_password("monpass", "abc")
        self.assertTrue(h.startswith("sha256$abc$"))
        self.assertEqual(len(h.split("$")[2]), 64)
        self.assertTrue(check_password(h, "monpass"))
        self.assertFalse(check_password(h, "monpasS"))
        self.assertFalse(check_password(h, ""))
        # the hashing code is imported for a check and dropped after it (not resident)
        import sys
        self.assertNotIn("sentinel.passwd", sys.modules)

    def test_known_vector(self):
        # sha256("s" + "p") computed independently (hashlib on CPython)
        want = "sha256$s$be18b85f77fc024db379acf19e8a1ce62307ab7bb1bca395389ecfc2dafaf741"
        self.assertEqual(hash_password("p", "s"), want)
        self.assertTrue(check_password(want, "p"))

    def test_never_a_default_or_plain_password(self):
        for stored in (None, "", "monpass", "sha256$$" + "0" * 64, "md5$a$" + "0" * 64,
                       "sha256$a$short", "sha256$a$" + "0" * 64 + "$x"):
            self.assertFalse(check_password(stored, "monpass"))
            self.assertFalse(check_password(stored, ""))

    def test_bad_salt(self):
        with self.assertRaises(ValueError):
            hash_password("x", "")
        with self.assertRaises(ValueError):
            hash_password("x", "a$b")

    def test_random_salt(self):
        a, b = hash_password("x"), hash_password("x")
        self.assertNotEqual(a, b)
        self.assertTrue(check_password(a, "x") and check_password(b, "x"))

    def test_limiter_delays_grow_and_cap(self):
        lim = LoginLimiter(size=4, free=2, base_ms=250, max_ms=4000, forget_ms=60000)
        t = 1000
        seen = []
        for _ in range(9):
            seen.append(lim.delay_ms("10.0.0.9", t))
            lim.failed("10.0.0.9", t)
            t += 10
        self.assertEqual(seen, [0, 0, 250, 500, 1000, 2000, 4000, 4000, 4000])
        self.assertEqual(lim.delay_ms("10.0.0.8", t), 0)  # other addresses unaffected
        lim.succeeded("10.0.0.9", t)
        self.assertEqual(lim.delay_ms("10.0.0.9", t), 0)

    def test_limiter_forgets_and_is_bounded(self):
        lim = LoginLimiter(size=4, free=0, base_ms=100, forget_ms=5000)
        lim.failed("a", 0)
        self.assertEqual(lim.delay_ms("a", 4000), 100)
        self.assertEqual(lim.delay_ms("a", 5001), 0)  # window passed
        for i in range(20):
            lim.failed("h%d" % i, 6000 + i)
        self.assertEqual(lim.tracked(), 4)
        self.assertEqual(lim.delay_ms("h19", 6100), 100)  # newest kept
        self.assertEqual(lim.delay_ms("h0", 6100), 0)  # oldest evicted
