from mpunit import TestCase

from sentinel import q1, q1fmt
from sentinel.q1 import Q1Error, Q1Info, Q1Rating, Q1Status

GOOD = b"(226.0 195.0 226.0 014 49.0 27.5 30.0 00001000\r"


class TestParseQ1(TestCase):
    def test_good_reply_all_fields(self):
        s = q1.parse_q1(GOOD)
        self.assertEqual(s.vin, 226.0)
        self.assertEqual(s.vin_fault, 195.0)
        self.assertEqual(s.vout, 226.0)
        self.assertEqual(s.load, 14)
        self.assertEqual(s.freq, 49.0)
        self.assertEqual(s.vbat, 27.5)
        self.assertEqual(s.temp, 30.0)
        self.assertEqual(s.bits, 0x08)
        self.assertTrue(s.line_interactive)
        self.assertFalse(s.on_battery)
        self.assertFalse(s.battery_low)
        self.assertEqual(q1.status_tokens(s), ("OL",))

    def test_value_objects(self):
        s = q1.parse_q1(GOOD)
        self.assertEqual(repr(s), "Q1Status(vin=226.0, vin_fault=195.0, vout=226.0, load=14, "
                                  "freq=49.0, vbat=27.5, temp=30.0, bits=8)")
        self.assertEqual(repr(Q1Info("a", "b", "c")), "Q1Info(mfr='a', model='b', fw='c')")
        self.assertTrue(Q1Rating(230.0, 4, 24.0, 50.0) != Q1Rating(230.0, 4, 24.0, 60.0))
        self.assertFalse(Q1Rating() == Q1Info())
        with self.assertRaises(AttributeError):
            s.no_such_flag

    def test_every_status_bit(self):
        names = ("on_battery", "battery_low", "avr", "failed", "line_interactive", "testing",
                 "shutdown_active", "beeper")
        for k in range(8):
            bits = "".join("1" if j == k else "0" for j in range(8))
            s = q1.parse_q1("(230.0 230.0 230.0 010 50.0 27.0 25.0 %s" % bits)
            for j in range(8):
                self.assertEqual(getattr(s, names[j]), j == k, "%s with %s" % (names[j], bits))

    def test_on_battery_low(self):
        s = q1.parse_q1(b"(000.0 000.0 228.0 045 50.1 22.1 31.5 11001000\r")
        self.assertEqual(q1.status_tokens(s), ("OB", "LB"))

    def test_avr_tokens_by_voltage_ratio(self):
        def tok(vin, vout):
            return q1.status_tokens(Q1Status(vin, vin, vout, 10, 50.0, 27.0, 25.0, 0x28))
        self.assertIn("TRIM", tok(260.0, 230.0))
        self.assertIn("BOOST", tok(190.0, 225.0))
        self.assertIn("BYPASS", tok(230.0, 231.0))
        self.assertIn("BYPASS", tok(None, 231.0))
        t = tok(230.0, 0.0)
        self.assertNotIn("BYPASS", t)
        self.assertIn("OFF", t)

    def test_cal_alarm_off(self):
        s = q1.parse_q1(b"(230.0 230.0 000.0 000 50.0 27.0 25.0 00010100\r")
        self.assertEqual(q1.status_tokens(s), ("OL", "CAL", "OFF", "ALARM"))

    def test_dashes_and_nan_fields_are_none(self):
        s = q1.parse_q1(b"(230.0 ---.- 230.0 --- 50.0 NaN --.- 00001001\r")
        self.assertIsNone(s.vin_fault)
        self.assertIsNone(s.load)
        self.assertIsNone(s.vbat)
        self.assertIsNone(s.temp)
        self.assertEqual(s.vin, 230.0)
        self.assertTrue(s.beeper)
        for junk in (b"inf", b"1e3", b"1.2.3", b"-", b".", b"+-1", b"12a"):
            s = q1.parse_q1(b"(" + junk + b" 195.0 226.0 014 49.0 27.5 30.0 00001000\r")
            self.assertIsNone(s.vin, junk)

    def test_negative_temperature_and_per_cell_battery(self):
        s = q1.parse_q1(b"(230.0 230.0 230.0 010 50.0 2.27 -5.5 00001000\r")
        self.assertEqual(s.temp, -5.5)
        self.assertEqual(s.vbat, 2.27)

    def test_bad_replies_raise_q1error_with_kind(self):
        cases = (
            (b"", "empty"),
            (b"\r", "empty"),
            (b"\x00\r\n", "empty"),
            (b"226.0 195.0 226.0 014 49.0 27.5 30.0 00001000\r", "lead"),
            (b"#226.0 195.0 226.0 014 49.0 27.5 30.0 00001000\r", "lead"),
            (b"Q1\r", "lead"),  # echo from a UPS that does not speak Q1
            (b"(NAK\r", "nak"),
            (b"NAK\r", "nak"),
            (b"(226.0 195.0 226.0\r", "short"),
            (b"(226.0 195.0 226.0 014 49.0 27.5 30.0\r", "short"),
            (b"(226.0 195.0 226.0 014 49.0 27.5 30.0 00001000 11\r", "long"),
            (b"(226.0 195.0 226.0 014 49.0 27.5 30.0 0000100\r", "bits"),
            (b"(226.0 195.0 226.0 014 49.0 27.5 30.0 000010002\r", "bits"),
            (b"(226.0 195.0 226.0 014 49.0 27.5 30.0 0000x000\r", "bits"),
            (b"(226.0 195.0 226.0 014 49.0\xff27.5 30.0 00001000\r", "bytes"),
            (b"(226.0 195.0\x07226.0 014 49.0 27.5 30.0 00001000\r", "bytes"),
            (bytes(range(256)), "bytes"),
        )
        for data, kind in cases:
            with self.assertRaises(Q1Error) as cm:
                q1.parse_q1(data)
            self.assertEqual(cm.exception.kind, kind, repr(data))
            self.assertTrue(isinstance(cm.exception, ValueError))

    def test_tolerates_lf_and_leading_nul(self):
        self.assertEqual(q1.parse_q1(b"\x00" + GOOD + b"\n"), q1.parse_q1(GOOD))
        self.assertEqual(q1.parse_q1(GOOD[:-1]), q1.parse_q1(GOOD))
        self.assertEqual(q1.parse_q1(bytearray(GOOD)), q1.parse_q1(GOOD))
        self.assertEqual(q1.parse_q1(memoryview(GOOD)), q1.parse_q1(GOOD))

    def test_random_garbage_never_crashes(self):
        # Deterministic LCG: only Q1Error may come out of the parsers.
        x = 12345
        for n in range(300):
            buf = bytearray()
            for k in range(n % 60):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                buf.append(b"(#0123456789. -NAK\r\x00\xff"[x % 21])
            for fn in (q1.parse_q1, q1.parse_f, q1.parse_i, q1fmt.parse_command):
                try:
                    fn(bytes(buf))
                except Q1Error:
                    pass


class TestParseFI(TestCase):
    def test_f(self):
        r = q1.parse_f(b"#220.0 000 024.0 50.0\r")
        self.assertEqual(r, Q1Rating(220.0, 0, 24.0, 50.0))
        for bad, kind in ((b"#220.0 000\r", "short"), (b"(220.0 000 024.0 50.0\r", "lead"),
                          (b"#--- --- --- ---\r", "field"), (b"#1 2 3 4 5\r", "long")):
            with self.assertRaises(Q1Error) as cm:
                q1.parse_f(bad)
            self.assertEqual(cm.exception.kind, kind)

    def test_i_fixed_columns(self):
        raw = q1fmt.format_i("Best Power Inc", "Fortress", "V2.1")
        self.assertEqual(len(raw), 39)
        self.assertEqual(q1.parse_i(raw), Q1Info("Best Power Inc", "Fortress", "V2.1"))

    def test_i_loose_and_empty(self):
        self.assertEqual(q1.parse_i(b"#ACME UPS  X1000 1.0\r"), Q1Info("ACME UPS", "X1000", "1.0"))
        self.assertEqual(q1.parse_i(b"#" + b" " * 37 + b"\r"), Q1Info("", "", ""))
        with self.assertRaises(Q1Error):
            q1.parse_i(b"#only two\r")
        with self.assertRaises(Q1Error):
            q1.parse_i(b"(ACME X 1\r")


class TestFormat(TestCase):
    def test_format_q1_exact(self):
        st = Q1Status(226.0, 195.0, 226.0, 14, 49.0, 27.5, 30.0, 0x08)
        self.assertEqual(q1fmt.format_q1(st), GOOD)
        self.assertEqual(len(GOOD) - 1, q1.Q1_REPLY_LEN)

    def test_format_q1_dict_and_widths(self):
        out = q1fmt.format_q1({"vin": 7.25, "vout": 1234.5, "load": 5, "freq": 60.04, "vbat": 2.27,
                            "temp": -12.0, "bits": q1fmt.make_bits(on_battery=True, beeper=True)})
        self.assertEqual(out, b"(007.3 ---.- 999.9 005 60.0 2.27 -9.9 10001001\r")
        self.assertEqual(len(out), 47)

    def test_round_trip(self):
        for st in (Q1Status(226.0, 195.0, 226.0, 14, 49.0, 27.5, 30.0, 0x08),
                   Q1Status(0.0, 0.0, 228.3, 100, 50.1, 2.05, -3.2, 0xC9),
                   Q1Status(None, None, None, None, None, None, None, 0xFF),
                   Q1Status(120.1, 119.9, 120.0, 0, 59.9, 110.0, 45.1, 0x00)):
            self.assertEqual(q1.parse_q1(q1fmt.format_q1(st)), st)
        self.assertEqual(q1.parse_f(q1fmt.format_f(230.0, 5, 48.0, 50.0)), Q1Rating(230.0, 5, 48.0, 50.0))

    def test_format_f(self):
        self.assertEqual(q1fmt.format_f(220.0, 0, 24.0, 50.0), b"#220.0 000 024.0 50.0\r")

    def test_format_i_truncates(self):
        self.assertEqual(q1fmt.format_i("A" * 20, "B" * 12, "C"),
                         b"#" + b"A" * 15 + b" " + b"B" * 10 + b" C" + b" " * 9 + b"\r")

    def test_make_bits(self):
        self.assertEqual(q1fmt.make_bits(), 0x08)
        self.assertEqual(q1fmt.make_bits(on_battery=True, battery_low=True, line_interactive=False), 0xC0)


class TestCommands(TestCase):
    def test_parse_commands(self):
        self.assertEqual(q1fmt.parse_command(b"S.5R0002\r"), ("shutdown", 0.5, 2))
        self.assertEqual(q1fmt.parse_command(b"S10R0000\r"), ("shutdown", 10, 0))
        self.assertEqual(q1fmt.parse_command(b"S03\r"), ("shutdown", 3, None))
        self.assertEqual(q1fmt.parse_command(b"C\r"), ("cancel",))
        self.assertEqual(q1fmt.parse_command(b"T\r"), ("test_quick",))
        self.assertEqual(q1fmt.parse_command(b"TL\r"), ("test_low",))
        self.assertEqual(q1fmt.parse_command(b"T05\r"), ("test_minutes", 5))
        self.assertEqual(q1fmt.parse_command(b"CT\r"), ("test_cancel",))
        self.assertEqual(q1fmt.parse_command(b"Q\r"), ("beeper",))
        self.assertEqual(q1fmt.parse_command(b"Q1\r"), ("status",))
        self.assertEqual(q1fmt.parse_command("F"), ("rating",))
        self.assertEqual(q1fmt.parse_command(b"I\r"), ("info",))

    def test_bad_commands(self):
        for bad in (b"", b"X\r", b"S.1R0001\r", b"S11\r", b"S00\r", b"S.5R12\r", b"S.5X0002\r",
                    b"T00\r", b"T1\r", b"S5\r", b"Q2\r", b"S.5R000a\r", b"C\xff\r"):
            with self.assertRaises(Q1Error) as cm:
                q1fmt.parse_command(bad)
            self.assertEqual(cm.exception.kind, "command" if bad else "command", repr(bad))

    def test_format_shutdown_restore_forms(self):
        self.assertEqual(q1.format_shutdown_restore(0.5, 2), b"S.5R0002\r")
        self.assertEqual(q1.format_shutdown_restore(0.2, 0), b"S.2R0000\r")
        self.assertEqual(q1.format_shutdown_restore(0.9, 9999), b"S.9R9999\r")
        self.assertEqual(q1.format_shutdown_restore(1, 1), b"S01R0001\r")
        self.assertEqual(q1.format_shutdown_restore(10, 15), b"S10R0015\r")
        self.assertEqual(q1.format_shutdown_restore(3.0, 120), b"S03R0120\r")
        self.assertEqual(q1.format_shutdown(0.3), b"S.3\r")
        for d in (0, 0.1, 0.25, 1.5, 11, -1):
            self.assertRaises(ValueError, q1.format_shutdown_restore, d, 1)
        for r in (-1, 10000, 1.5):
            self.assertRaises(ValueError, q1.format_shutdown_restore, 1, r)

    def test_command_round_trip(self):
        for raw in (b"S.2R0000\r", b"S.9R0001\r", b"S01R0010\r", b"S10R9999\r", b"S05\r", b"C\r",
                    b"T\r", b"TL\r", b"T99\r", b"T01\r", b"CT\r", b"Q\r", b"Q1\r", b"F\r", b"I\r"):
            self.assertEqual(q1fmt.format_command(*q1fmt.parse_command(raw)), raw)
        for n in range(2, 10):
            self.assertEqual(q1fmt.parse_command(q1.format_shutdown_restore(n / 10, 7)),
                             ("shutdown", n / 10, 7))
        for n in range(1, 11):
            self.assertEqual(q1fmt.parse_command(q1.format_shutdown_restore(n, 7)), ("shutdown", n, 7))


class TestCharge(TestCase):
    def test_pack_voltage(self):
        self.assertEqual(q1.battery_charge(27.5, 24.0), 100)
        self.assertEqual(q1.battery_charge(21.0, 24.0), 0)
        self.assertEqual(q1.battery_charge(23.4, 24.0), 50)
        self.assertEqual(q1.battery_charge(18.0, 24.0), 0)

    def test_per_cell_voltage(self):
        self.assertEqual(q1.battery_charge(1.95, 24.0), 50)
        self.assertEqual(q1.battery_charge(2.27, 12.0), 100)

    def test_unknown(self):
        self.assertIsNone(q1.battery_charge(None, 24.0))
        self.assertIsNone(q1.battery_charge(27.0, None))
        self.assertIsNone(q1.battery_charge(27.0, 0.0))
        self.assertIsNone(q1.battery_charge(0.0, 24.0))
