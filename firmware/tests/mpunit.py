# A small unittest-compatible runner for the MicroPython unix port.
# micropython-lib's unittest is installed with `mip` from micropython.org, which this project's
# machines cannot reach, and the PyPI copies are 2018 sdists pip cannot install; so firmware tests
# use this subset of the CPython API (it runs unchanged under CPython too).
# Usage: micropython firmware/tests/mpunit.py [test_module ...]   (default: every test_*.py here)
# Exit status 1 if any test failed or errored, 2 if no test ran.
import gc
import sys


class SkipTest(Exception):
    pass


class _Raises:
    def __init__(self, exc):
        self.expected = exc
        self.exception = None

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            raise AssertionError("%s not raised" % self.expected.__name__)
        if issubclass(et, self.expected):
            self.exception = ev
            return True
        return False


class TestCase:
    # Tests import this module as `mpunit` while the runner may be `__main__`: mark the class
    # rather than compare identities.
    _mpunit_case = True

    def setUp(self):
        pass

    def tearDown(self):
        pass

    def skipTest(self, why):
        raise SkipTest(why)

    def fail(self, msg=None):
        raise AssertionError(msg or "failed")

    def assertEqual(self, a, b, msg=None):
        if not a == b:
            raise AssertionError(msg or "%r != %r" % (a, b))

    def assertNotEqual(self, a, b, msg=None):
        if a == b:
            raise AssertionError(msg or "%r == %r" % (a, b))

    def assertTrue(self, x, msg=None):
        if not x:
            raise AssertionError(msg or "%r is not true" % (x,))

    def assertFalse(self, x, msg=None):
        if x:
            raise AssertionError(msg or "%r is not false" % (x,))

    def assertIs(self, a, b, msg=None):
        if a is not b:
            raise AssertionError(msg or "%r is not %r" % (a, b))

    def assertIsNone(self, x, msg=None):
        if x is not None:
            raise AssertionError(msg or "%r is not None" % (x,))

    def assertIsNotNone(self, x, msg=None):
        if x is None:
            raise AssertionError(msg or "unexpected None")

    def assertIn(self, a, b, msg=None):
        if a not in b:
            raise AssertionError(msg or "%r not in %r" % (a, b))

    def assertNotIn(self, a, b, msg=None):
        if a in b:
            raise AssertionError(msg or "%r in %r" % (a, b))

    def assertIsInstance(self, x, t, msg=None):
        if not isinstance(x, t):
            raise AssertionError(msg or "%r is not a %r" % (x, t))

    def assertLess(self, a, b, msg=None):
        if not a < b:
            raise AssertionError(msg or "%r not < %r" % (a, b))

    def assertLessEqual(self, a, b, msg=None):
        if not a <= b:
            raise AssertionError(msg or "%r not <= %r" % (a, b))

    def assertGreater(self, a, b, msg=None):
        if not a > b:
            raise AssertionError(msg or "%r not > %r" % (a, b))

    def assertGreaterEqual(self, a, b, msg=None):
        if not a >= b:
            raise AssertionError(msg or "%r not >= %r" % (a, b))

    def assertAlmostEqual(self, a, b, places=None, msg=None, delta=None):
        if delta is not None:
            ok = abs(a - b) <= delta
        else:
            ok = round(abs(a - b), 7 if places is None else places) == 0
        if not ok:
            raise AssertionError(msg or "%r != %r within %r" % (a, b, delta if delta is not None else places))

    def assertRaises(self, exc, func=None, *args, **kwargs):
        ctx = _Raises(exc)
        if func is None:
            return ctx
        with ctx:
            func(*args, **kwargs)


def _run_module(name, counts, only=None):
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        cls = getattr(mod, attr)
        if not (isinstance(cls, type) and getattr(cls, "_mpunit_case", False) and cls.__name__ != "TestCase"):
            continue
        for meth in sorted(dir(cls)):
            if not meth.startswith("test"):
                continue
            label = "%s.%s.%s" % (name, attr, meth)
            if only and only not in label:
                continue
            case = cls()
            # every module stays imported in a whole run: collect the last test's garbage so a
            # test needing a large block finds one (as each module alone would)
            gc.collect()
            try:
                case.setUp()
                try:
                    getattr(case, meth)()
                finally:
                    case.tearDown()
                counts[0] += 1
            except Exception as e:  # report every failure, run the rest
                # tests raise mpunit.SkipTest while this may run as __main__: match by name
                if type(e).__name__ == "SkipTest":
                    counts[2] += 1
                    print("SKIP", label, "-", e)
                    continue
                counts[1] += 1
                print("FAIL", label)
                sys.print_exception(e) if hasattr(sys, "print_exception") else print(repr(e))


def main(argv):
    import os

    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    lib = here + "/../lib"
    for p in (here, lib):
        if p not in sys.path:
            sys.path.insert(0, p)
    only = None
    names = []
    for a in argv:
        if a.startswith("-k"):
            only = a[2:]
        else:
            names.append(a[:-3] if a.endswith(".py") else a.rsplit("/", 1)[-1])
    if not names:
        names = sorted(f[:-3] for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    counts = [0, 0, 0]  # passed, failed, skipped
    for n in names:
        _run_module(n, counts, only)
    print("%d passed, %d failed, %d skipped" % (counts[0], counts[1], counts[2]))
    if counts[1]:
        return 1
    return 0 if counts[0] else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
