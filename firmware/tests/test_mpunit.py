from mpunit import TestCase


class TestRunner(TestCase):
    def test_assert_raises_context(self):
        with self.assertRaises(ValueError) as cm:
            int("x")
        self.assertIsNotNone(cm.exception)

    def test_assert_raises_fails_when_not_raised(self):
        try:
            with self.assertRaises(ValueError):
                pass
        except AssertionError:
            return
        self.fail("assertRaises did not fail")
