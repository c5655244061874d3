from mpunit import TestCase

from sentinel.contacts import (STATUSES, ContactMonitor, ContactRuleError, Debouncer, parse_rules,
                               status_names)


def names(rules, lines):
    return status_names(rules.eval(lines))


class TestRules(TestCase):
    def test_generic_gpio_example(self):
        r = parse_rules("OL=^0;OB=0;LB=3;RB=1;")
        self.assertEqual(names(r, 0b0000), ["OL"])
        self.assertEqual(names(r, 0b0001), ["OB"])
        self.assertEqual(names(r, 0b1001), ["OB", "LB"])
        self.assertEqual(names(r, 0b0010), ["OL", "RB"])
        self.assertEqual(r.used_lines, 0b1011)

    def test_and_or_precedence(self):
        # & binds tighter than |: LB = (1 & 2) | ^3
        r = parse_rules("LB=1&2|^3;OB=0")
        lb = 1 << STATUSES.index("LB")
        self.assertEqual(r.eval(0b1110) & lb, lb)  # 1&2
        self.assertEqual(r.eval(0b1010) & lb, 0)  # only 1, 3 high
        self.assertEqual(r.eval(0b0000) & lb, lb)  # ^3
        self.assertEqual(r.eval(0b1100) & lb, 0)

    def test_inverted_and(self):
        r = parse_rules("DISCHRG=0&^6; OB = 0 ;")
        self.assertEqual(names(r, 0b0000001), ["OB", "DISCHRG"])
        self.assertEqual(names(r, 0b1000001), ["OB"])

    def test_ol_derived_from_ob_and_back(self):
        r = parse_rules("OB=1;LB=2;")  # the shipped default
        self.assertEqual(names(r, 0), ["OL"])
        self.assertEqual(names(r, 0b010), ["OB"])
        self.assertEqual(names(r, 0b110), ["OB", "LB"])
        r = parse_rules("ol=^4")
        self.assertEqual(names(r, 0), ["OL"])
        self.assertEqual(names(r, 0b10000), ["OB"])

    def test_empty_rules(self):
        r = parse_rules("")
        self.assertEqual(names(r, 0xFF), [])
        self.assertEqual(names(parse_rules(" ;; "), 0), [])

    def test_errors_name_position_and_allowed(self):
        cases = (
            ("XX=1", 0, "unknown status"),
            ("OB=1;FOO=2", 5, "allowed: OL/OB"),
            ("OB1", 2, "expected '='"),
            ("OB=", 3, "line number"),
            ("OB=^", 4, "line number 0-15"),
            ("OB=a", 3, "or '^'"),
            ("OB=1&", 5, "line number"),
            ("OB=1|", 5, "line number"),
            ("OB=1 2", 5, "expected '&', '|' or ';'"),
            ("OB=16", 3, "out of range 0-15"),
            ("OB=1;OB=2", 5, "defined twice"),
            ("=1", 0, "expected a status name"),
            ("OB=1&^1", 7, "both high and low"),
            ("OB=1;3", 5, "expected a status name"),
        )
        for text, pos, words in cases:
            with self.assertRaises(ContactRuleError) as cm:
                parse_rules(text)
            e = cm.exception
            self.assertEqual(e.pos, pos, "%s -> %s" % (text, e))
            self.assertIn(words, str(e), text)
            self.assertIn("position %d" % pos, str(e))
            self.assertTrue(isinstance(e, ValueError))

    def test_line_count_limit(self):
        parse_rules("OB=3", lines=4)
        with self.assertRaises(ContactRuleError) as cm:
            parse_rules("OB=4", lines=4)
        self.assertIn("0-3", str(cm.exception))


class TestDebouncer(TestCase):
    def test_not_ready_until_settled(self):
        d = Debouncer(4, 50)
        self.assertFalse(d.update(0b0001, 1000))
        self.assertFalse(d.ready)
        self.assertIsNone(d.level(0))
        self.assertFalse(d.update(0b0001, 1049))
        self.assertTrue(d.update(0b0001, 1050))
        self.assertTrue(d.ready)
        self.assertEqual(d.stable, 0b0001)
        self.assertEqual(d.level(0), 1)
        self.assertEqual(d.level(1), 0)

    def test_change_reported_after_debounce(self):
        d = Debouncer(2, 50)
        d.update(0, 0)
        d.update(0, 50)
        self.assertFalse(d.update(0b10, 100))
        self.assertEqual(d.stable, 0)
        self.assertFalse(d.update(0b10, 149))
        self.assertTrue(d.update(0b10, 150))
        self.assertEqual(d.stable, 0b10)
        self.assertFalse(d.update(0b10, 200))
        self.assertEqual(list(d.chatter), [0, 0])

    def test_chatter_is_counted_and_filtered(self):
        d = Debouncer(3, 50)
        d.update(0, 0)
        d.update(0, 60)
        t = 100
        # line 2 bounces 6 times 5 ms apart, ending high
        level = 0
        for k in range(7):
            level ^= 1
            self.assertFalse(d.update(level << 2, t), "no change while bouncing")
            t += 5
        self.assertEqual(level, 1)
        self.assertEqual(d.stable, 0)
        self.assertEqual(d.chatter[2], 6)  # the first edge is a real edge, the next 6 bounced
        self.assertEqual(d.chatter[0], 0)
        self.assertTrue(d.update(0b100, 130 + 50))
        self.assertEqual(d.stable, 0b100)

    def test_short_glitch_never_reaches_stable(self):
        d = Debouncer(1, 50)
        d.update(1, 0)
        d.update(1, 50)
        self.assertFalse(d.update(0, 100))
        self.assertFalse(d.update(1, 120))  # back before 50 ms
        self.assertFalse(d.update(1, 300))
        self.assertEqual(d.stable, 1)
        self.assertEqual(d.chatter[0], 1)

    def test_ticks_wrap(self):
        d = Debouncer(1, 50)
        top = (1 << 30) - 20
        d.update(0, top)
        self.assertTrue(d.update(0, top + 60 - (1 << 30)))  # clock wrapped at 2**30
        self.assertFalse(d.update(1, 10))
        self.assertTrue(d.update(1, 60))
        self.assertEqual(d.stable, 1)

    def test_update_does_not_allocate(self):
        try:
            import micropython
        except ImportError:
            self.skipTest("CPython")
        m = ContactMonitor("OL=^0;OB=0;LB=3|4&^5;RB=1;", 8, 20)
        m.update(0, 0)
        m.update(0, 20)
        micropython.heap_lock()
        try:
            t = 40
            raw = 0
            changes = 0
            for k in range(200):
                raw = (raw * 5 + 3) & 0x3F
                if m.update(raw, t):
                    changes += 1
                t += 7 if k & 1 else 25
        finally:
            micropython.heap_unlock()
        self.assertGreater(changes, 0)


class TestMonitor(TestCase):
    def test_outage_sequence(self):
        m = ContactMonitor("OB=1;LB=2;", 4, 50)
        self.assertFalse(m.update(0, 0))
        self.assertEqual(m.statuses(), [])
        self.assertTrue(m.update(0, 50))
        self.assertEqual(m.statuses(), ["OL"])
        m.update(0b010, 1000)
        self.assertEqual(m.statuses(), ["OL"])  # still debouncing
        self.assertTrue(m.update(0b010, 1050))
        self.assertEqual(m.statuses(), ["OB"])
        self.assertTrue(m.has("OB"))
        m.update(0b110, 2000)
        m.update(0b110, 2050)
        self.assertEqual(m.statuses(), ["OB", "LB"])
        # unused line 3 chatters: status unchanged, chatter counted
        self.assertFalse(m.update(0b1110, 2060))
        self.assertFalse(m.update(0b0110, 2065))
        self.assertFalse(m.update(0b0110, 2200))
        self.assertEqual(m.statuses(), ["OB", "LB"])
        st = m.line_states()
        self.assertEqual(st[1], (1, 1, 1, 0))
        self.assertEqual(st[3], (3, 0, 0, 1))
        m.update(0, 3000)
        m.update(0, 3050)
        self.assertEqual(m.statuses(), ["OL"])

    def test_bad_rules_raise_at_construction(self):
        self.assertRaises(ContactRuleError, ContactMonitor, "OB=9", 4, 50)
