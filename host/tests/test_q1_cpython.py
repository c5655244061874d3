"""sentinel.q1 runs on CPython (the host's UPS simulator reuses it) and gives exactly the same
results as on MicroPython: the same cases are evaluated in-process and by the real MicroPython
interpreter, floats compared bit for bit."""
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

try:
    from powersentinel.paths import use_firmware_lib

    try:
        use_firmware_lib()
    except RuntimeError:  # checkout without firmware/main.py yet
        use_firmware_lib = None
except ImportError:
    use_firmware_lib = None

FIRMWARE_LIB = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "firmware", "lib"))
if use_firmware_lib is None and FIRMWARE_LIB not in sys.path:
    sys.path.insert(0, FIRMWARE_LIB)

from sentinel import q1, q1fmt  # noqa: E402
from sentinel.q1 import Q1Error, Q1Status  # noqa: E402

# MicroPython must load the very file CPython just imported.
Q1_LIB = os.path.dirname(os.path.dirname(os.path.abspath(q1.__file__)))

REPLIES = [
    b"(226.0 195.0 226.0 014 49.0 27.5 30.0 00001000\r",
    b"(000.0 000.0 228.0 045 50.1 22.1 31.5 11001000\r",
    b"(230.4 ---.- 229.9 --- 49.9 2.27 -5.5 00111111\r",
    b"(119.7 120.3 119.9 100 59.95 13.65 0.1 10000001\r",
    b"(233.3 233.3 233.3 033 50.3 27.37 33.3 00000000\r",
    b"(1.1 2.22 3.333 4 5.5555 6.66666 7.777777 00000001\r",
    b"(NaN inf 1e3 +5 -0.0 .5 5. 00001000\r",
    b"\x00(226.0 195.0 226.0 014 49.0 27.5 30.0 00001000\r\n",
    b"(226.0 195.0 226.0 014 49.0 27.5 30.0\r",
    b"(226.0 195.0 226.0 014 49.0 27.5 30.0 0000100x\r",
    b"(NAK\r",
    b"Q1\r",
    b"\xff\xfe",
    b"",
]
F_REPLIES = [b"#220.0 000 024.0 50.0\r", b"#120.0 012 012.00 60.0\r", b"#1 2\r", b"#--- --- --- ---\r"]
I_REPLIES = [q1fmt.format_i("Best Power Inc", "Fortress", "V2.1"), b"#ACME UPS X1000 1.0\r", b"#a b\r"]
COMMANDS = [b"S.5R0002\r", b"S10R0000\r", b"S03\r", b"C\r", b"T\r", b"TL\r", b"T07\r", b"CT\r",
            b"Q\r", b"Q1\r", b"F\r", b"I\r", b"S.1R0001\r", b"X\r", b"S11\r"]
STATES = [
    [226.0, 195.0, 226.0, 14, 49.0, 27.5, 30.0, 8],
    [229.95, 0.05, 230.049, 7, 50.04, 2.275, -3.25, 201],
    [7.25, None, 1234.5, 5, 60.04, 2.27, -12.0, 137],
    [0.15, 0.25, 0.35, 0, 0.45, 99.96, 99.96, 255],
    [None, None, None, None, None, None, None, 0],
]
SHUTDOWNS = [[0.2, 0], [0.3, 1], [0.7, 9999], [1, 2], [1.0, 3], [10, 15], [0.25, 1], [11, 0], [1, 10000]]
CHARGES = [[27.5, 24.0], [23.4, 24.0], [22.61, 24.0], [1.95, 24.0], [2.11, 12.0], [None, 24.0], [12.6, 12.0]]

# One dump function, run by both interpreters: floats as the hex of their IEEE-754 doubles.
DUMP = r'''
import struct, binascii
from sentinel import q1, q1fmt

def canon(x):
    if isinstance(x, float):
        return "f:" + binascii.hexlify(struct.pack("<d", x)).decode()
    if isinstance(x, (tuple, list)):
        return [canon(v) for v in x]
    if isinstance(x, (bytes, bytearray)):
        return "b:" + binascii.hexlify(bytes(x)).decode()
    if x is None or isinstance(x, (int, str, bool)):
        return x
    return canon(x.fields())

def attempt(fn, *a):
    try:
        return ["ok", canon(fn(*a))]
    except q1.Q1Error as e:
        return ["Q1Error", e.kind]
    except ValueError as e:
        return ["ValueError"]

def dump(cases):
    out = {}
    h = binascii.unhexlify
    out["q1"] = [attempt(q1.parse_q1, h(c)) for c in cases["replies"]]
    out["tokens"] = [attempt(lambda c: q1.status_tokens(q1.parse_q1(h(c))), c) for c in cases["replies"]]
    out["f"] = [attempt(q1.parse_f, h(c)) for c in cases["f"]]
    out["i"] = [attempt(q1.parse_i, h(c)) for c in cases["i"]]
    out["cmd"] = [attempt(q1fmt.parse_command, h(c)) for c in cases["commands"]]
    out["fmt"] = [attempt(q1fmt.format_q1, q1.Q1Status(*s)) for s in cases["states"]]
    out["fmt_rt"] = [attempt(lambda s: q1.parse_q1(q1fmt.format_q1(q1.Q1Status(*s))), s) for s in cases["states"]]
    out["fmt_f"] = [attempt(q1fmt.format_f, *s[:4]) for s in cases["states"]]
    out["sd"] = [attempt(q1.format_shutdown_restore, d, r) for d, r in cases["shutdowns"]]
    out["charge"] = [attempt(q1.battery_charge, v, n) for v, n in cases["charges"]]
    return out
'''


def _cases():
    hx = lambda b: b.hex()  # noqa: E731
    return {"replies": [hx(b) for b in REPLIES], "f": [hx(b) for b in F_REPLIES],
            "i": [hx(b) for b in I_REPLIES], "commands": [hx(b) for b in COMMANDS],
            "states": STATES, "shutdowns": SHUTDOWNS, "charges": CHARGES}


def _micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else shutil.which("micropython")


def test_known_values_on_cpython():
    s = q1.parse_q1(REPLIES[0])
    assert s == Q1Status(226.0, 195.0, 226.0, 14, 49.0, 27.5, 30.0, 0x08)
    assert q1fmt.format_q1(s) == REPLIES[0]
    assert q1.status_tokens(q1.parse_q1(REPLIES[1])) == ("OB", "LB")
    assert q1fmt.parse_command(b"S.5R0002\r") == ("shutdown", 0.5, 2)
    assert q1.format_shutdown_restore(0.5, 2) == b"S.5R0002\r"
    assert q1.format_shutdown_restore(10, 0) == b"S10R0000\r"
    with pytest.raises(Q1Error) as ei:
        q1.parse_q1(b"(NAK\r")
    assert ei.value.kind == "nak"
    # parsed decimals equal CPython's own correctly rounded float()
    assert q1.parse_q1(REPLIES[5]).fields()[:7] == (1.1, 2.22, 3.333, 4, 5.5555, 6.66666, 7.777777)


def test_same_results_as_micropython(tmp_path):
    mp = _micropython()
    if mp is None:
        pytest.skip("micropython not installed")
    cases = _cases()
    ns = {}
    exec(DUMP, ns)
    here = ns["dump"](cases)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "dump.py").write_text(
        "import sys, json\nsys.path.insert(0, %r)\n%s\n"
        "print(json.dumps(dump(json.load(open(%r)))))\n"
        % (Q1_LIB, DUMP, str(tmp_path / "cases.json")))
    r = subprocess.run([mp, str(tmp_path / "dump.py")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    there = json.loads(r.stdout)
    for key in here:
        assert there[key] == here[key], key
    # and the comparison is not vacuous
    assert sum(1 for v in here["q1"] if v[0] == "ok") >= 7
    assert sum(1 for v in here["q1"] if v[0] == "Q1Error") >= 5
